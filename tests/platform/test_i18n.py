"""Every UI string has a Chinese translation, and locale negotiation picks the right language."""

import re
from pathlib import Path

import pytest

from salesmesh.platform.i18n import catalogue, gettext, label, negotiate

ROOT = Path(__file__).resolve().parents[2] / "salesmesh"
# _("literal") or _('literal') in Python and Jinja, and N_("literal") marking display names of stored
# codes; dynamic _(variable) calls are covered by the catalogue entries of the values they take.
CALL = re.compile(r"""(?<![\w.])N?_\(\s*(?P<q>["'])(?P<msg>(?:\\.|(?!(?P=q)).)*?)(?P=q)""", re.S)


def _messages() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in ROOT.rglob("*"):
        if path.suffix not in (".py", ".html"):
            continue
        for m in CALL.finditer(path.read_text(encoding="utf-8")):
            msg = m.group("msg").replace("\\'", "'").replace('\\"', '"')
            found.setdefault(msg, f"{path.relative_to(ROOT)}")
    return found


def test_every_ui_message_has_chinese() -> None:
    zh = catalogue("zh")
    messages = _messages()
    assert len(messages) > 20, "the extractor found suspiciously few messages"
    missing = sorted(f"{where}: {msg!r}" for msg, where in messages.items() if not zh.get(msg, "").strip())
    assert missing == [], "messages without a Chinese translation:\n" + "\n".join(missing)


def test_chinese_entries_keep_placeholders() -> None:
    for msg, zh in catalogue("zh").items():
        assert sorted(re.findall(r"%\(\w+\)s", msg)) == sorted(re.findall(r"%\(\w+\)s", zh)), msg


@pytest.mark.parametrize("value", ["admin", "ops", "lead", "rep", "new", "contacted", "pooled"])
def test_dynamic_values_are_translated(value: str) -> None:
    assert catalogue("zh").get(value)


def test_gettext_and_labels() -> None:
    assert gettext("Home", "en") == "Home"
    assert gettext("Home", "zh") == "首页"
    assert gettext("Good to see you, %(name)s", "zh", name="王") == "王，你好"
    # placeholders may share the names of gettext's own parameters (an action reminder's %(message)s)
    assert gettext("%(message)s (%(locale)s)", "en", message="Call back", locale="zh") == "Call back (zh)"
    assert label({"en": "Signed", "zh": "签单"}, "zh") == "签单"
    assert label({"en": "Signed"}, "zh") == "Signed"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR", "en"),
        ("en;q=0.5, zh-TW;q=0.8", "zh"),
        (None, "en"),
    ],
)
def test_negotiate(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_catalogue_files_agree_with_each_other() -> None:
    """The same English message must not get two Chinese translations in different area files."""
    import json

    from salesmesh.platform.i18n import _DIR

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted(_DIR.glob("*.zh.json")):
        for msg, zh in json.loads(path.read_text(encoding="utf-8")).items():
            if msg in seen and seen[msg][1] != zh:
                clashes.append(f"{msg!r}: {seen[msg][0]} says {seen[msg][1]!r}, {path.name} says {zh!r}")
            seen.setdefault(msg, (path.name, zh))
    assert clashes == []
