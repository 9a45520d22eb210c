"""English and Simplified Chinese for every UI string.

Messages are written in English in code and templates, wrapped in `_()` (gettext style); the Chinese
catalogue is the union of `translations/*.zh.json` (one file per area, so areas do not collide), each
mapping an English message id to its translation. A test extracts every
`_()` call from Python and templates and fails when a message has no Chinese entry. Metadata labels are
`{"en": ..., "zh": ...}` objects shown with `label()`. The locale comes from the user's setting, then the
`lang` cookie, then the browser's Accept-Language, then the configured default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("en", "zh")
_DIR = Path(__file__).parent / "translations"


@cache
def catalogue(locale: str) -> Mapping[str, str]:
    """Return the message catalogue of a locale (English is the identity)."""
    if locale == "en":
        return {}
    merged: dict[str, str] = {}
    for path in sorted(_DIR.glob(f"*.{locale}.json")):
        with path.open(encoding="utf-8") as fh:
            merged.update(json.load(fh))
    return merged


def N_(message: str) -> str:
    """Mark a message for the catalogue without translating it yet (display names of stored codes)."""
    return message


def gettext(message: str, locale: str, /, **params: Any) -> str:
    """Translate `message` into `locale` and fill `%(name)s` placeholders."""
    # Positional-only: placeholders may be called `message` or `locale` (a reminder's `%(message)s`).
    text = catalogue(locale).get(message, message) if locale != "en" else message
    return text % params if params else text


def label(value: Any, locale: str) -> str:
    """Show a bilingual metadata label ({"en","zh"}) in `locale`, falling back to the other language."""
    if isinstance(value, Mapping):
        return str(value.get(locale) or value.get("en") or value.get("zh") or "")
    return "" if value is None else str(value)


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """Pick en or zh from an Accept-Language header."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language.split(","):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            b = b.strip()
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        lang = "zh" if tag.startswith("zh") else "en" if tag.startswith("en") else None
        if lang and q > best_q:
            best, best_q = lang, q
    return best
