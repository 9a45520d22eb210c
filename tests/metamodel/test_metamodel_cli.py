"""`salesmesh pack ...` and `salesmesh definition ...` through click's runner against a real SQLite file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from salesmesh.metamodel import versions
from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.cli import CliState, cli
from tests.metamodel.pack_samples import SHIPPED_PACKS, calendar_doc, objections_doc, simple_pack, write_pack

TABLES = (Definition, DefinitionVersion, PackInstall, AuditEvent)


@pytest.fixture
def run(runtime):  # type: ignore[no-untyped-def]
    def invoke(*args: str, answer: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliState(runtime.settings, runtime), input=answer)

    return invoke


def counts(runtime) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with runtime.db.Session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in TABLES}


def broken_pack(root: Path) -> Path:
    simple_pack(root)
    doc = objections_doc()
    doc["types"][0]["responses"][0]["text"] = {"en": "English only"}
    doc["approver"] = "nobody"
    (root / "definitions/objections.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


def test_pack_validate(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok = run("pack", "validate", str(simple_pack(tmp_path / "good")))
    assert ok.exit_code == 0 and ok.stdout.startswith("OK: pack test-pack 1.0.0 with 2 definition(s)")
    bad = run("pack", "validate", str(broken_pack(tmp_path / "bad")))
    assert bad.exit_code == 1
    lines = bad.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "definitions/objections.json:/approver",
        "definitions/objections.json:/types/0/responses/0/text/zh",
    ]
    assert "invalid: 2 error(s)" in bad.stderr


def test_pack_import_dry_run_then_apply_then_noop(run, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = str(simple_pack(tmp_path / "p"))
    before = counts(runtime)
    dry = run("pack", "import", root, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "  created    calendar/office-hours" in dry.stdout
    assert "Summary: 2 created, 0 changed, 0 unchanged, 0 conflict(s)" in dry.stdout
    assert "Dry run: nothing was written." in dry.stdout
    assert counts(runtime) == before

    applied = run("pack", "import", root, "--yes")
    assert applied.exit_code == 0, applied.output
    assert "Imported test-pack 1.0.0: 2 created, 0 changed" in applied.stdout
    after = counts(runtime)
    assert after["definitions"] == 2 and after["pack_installs"] == 1

    again = run("pack", "import", root, "--yes")
    assert again.exit_code == 0, again.output
    assert "  unchanged  calendar/office-hours" in again.stdout
    assert "is already installed (same checksum): nothing changed." in again.stdout
    assert counts(runtime) == after


def test_pack_import_shows_changes_and_asks(run, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("pack", "import", str(simple_pack(tmp_path / "v1")), "--yes").exit_code == 0
    v2 = write_pack(
        tmp_path / "v2",
        {
            "definitions/calendar.json": calendar_doc(timezone="UTC"),
            "definitions/objections.json": objections_doc(),
        },
        version="1.1.0",
    )
    before = counts(runtime)
    declined = run("pack", "import", str(v2), answer="n\n")
    assert declined.exit_code == 1
    assert "  changed    calendar/office-hours" in declined.stdout
    assert '      replace  /timezone: "Asia/Shanghai" → "UTC"' in declined.stdout
    assert "not applied; nothing was written" in declined.stderr
    assert counts(runtime) == before
    accepted = run("pack", "import", str(v2), answer="y\n")
    assert accepted.exit_code == 0, accepted.output
    with runtime.db.Session() as s:
        assert versions.get_published(s, "calendar", "office-hours").number == 2


def test_broken_pack_is_refused_and_nothing_written(run, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = counts(runtime)
    result = run("pack", "import", str(broken_pack(tmp_path / "bad")), "--yes")
    assert result.exit_code == 1
    assert "definitions/objections.json:/types/0/responses/0/text/zh: " in result.stdout
    assert "refused: 2 error(s)" in result.stderr and "nothing was written" in result.stderr
    assert counts(runtime) == before


def test_unsafe_zip_is_refused(run, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pack.json", "{}")
        archive.writestr("../../etc/cron.d/evil.json", "{}")
    result = run("pack", "import", str(path), "--yes")
    assert result.exit_code == 1
    assert "../../etc/cron.d/evil.json:/: unsafe path in the zip: '..' in the path" in result.stdout
    assert counts(runtime)["definitions"] == 0


def test_pack_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("pack", "import", str(simple_pack(tmp_path / "p")), "--yes").exit_code == 0
    folder = run("pack", "export", "test-pack", "--out", str(tmp_path / "out"))
    assert folder.exit_code == 0, folder.output
    assert "Exported test-pack 1.0.0: 2 definition(s)" in folder.stdout
    assert run("pack", "validate", str(tmp_path / "out")).exit_code == 0
    archive = run("pack", "export", "--all", "--out", str(tmp_path / "all.zip"))
    assert archive.exit_code == 0, archive.output
    assert zipfile.is_zipfile(tmp_path / "all.zip")
    assert run("pack", "validate", str(tmp_path / "all.zip")).exit_code == 0
    assert run("pack", "export", "--out", str(tmp_path / "x")).exit_code == 2
    unknown = run("pack", "export", "nope", "--out", str(tmp_path / "y"))
    assert unknown.exit_code == 1 and "no pack 'nope' is installed" in unknown.stderr
    again = run("pack", "export", "test-pack", "--out", str(tmp_path / "out"))
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_definition_commands(run, runtime, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("definition", "list").stdout.strip() == "No definitions."
    with runtime.db.session_scope() as s:
        v1 = versions.create_definition_draft(s, None, calendar_doc(), clock)
        versions.publish_version(s, None, v1.id, clock)
        versions.create_definition_draft(s, None, calendar_doc(timezone="UTC"), clock)
    listing = run("definition", "list", "--kind", "calendar")
    assert listing.exit_code == 0
    assert listing.stdout.splitlines()[1].split() == ["calendar", "office-hours", "v1", "v2", "-"]
    assert run("definition", "list", "--kind", "nope").exit_code == 1

    shown = run("definition", "show", "calendar", "office-hours")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["timezone"] == "Asia/Shanghai"
    assert "# calendar/office-hours version 1 (published)" in shown.stderr
    draft = run("definition", "show", "calendar", "office-hours", "--version", "2")
    assert json.loads(draft.stdout)["timezone"] == "UTC"
    missing = run("definition", "show", "calendar", "office-hours", "--version", "9")
    assert missing.exit_code == 1 and "has no version 9" in missing.stderr
    assert run("definition", "show", "calendar", "nope").exit_code == 1

    good = tmp_path / "good.json"
    good.write_text(json.dumps(calendar_doc()), encoding="utf-8")
    assert run("definition", "validate", str(good)).stdout.strip() == "OK: calendar/office-hours is valid"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(calendar_doc(timezone=5)), encoding="utf-8")
    result = run("definition", "validate", str(bad))
    assert result.exit_code == 1 and result.stdout.startswith(f"{bad}:/timezone: ")
    syntax = tmp_path / "syntax.json"
    syntax.write_text('{"kind": "calendar",\n "key": }', encoding="utf-8")
    result = run("definition", "validate", str(syntax))
    assert result.exit_code == 1 and f"{syntax}:/: invalid JSON at line 2, column 9" in result.stdout


def test_shipped_medical_device_pack_imports_twice(run, runtime) -> None:  # type: ignore[no-untyped-def]
    root = SHIPPED_PACKS / "medical-device-direct"
    assert (root / "pack.json").is_file(), "the shipped pack packs/medical-device-direct is missing"
    first = run("pack", "import", str(root), "--yes")
    assert first.exit_code == 0, first.output
    after = counts(runtime)
    second = run("pack", "import", str(root), "--yes")
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.stdout
    assert counts(runtime) == after
