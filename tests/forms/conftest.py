"""Fixtures of the form runtime tests: shipped form documents, a small form builder, a fresh compile
cache per test, and an app whose templates can import the form macros."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesmesh.forms.compile import FormSpec, clear_cache, compile_document

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "md-lead": ROOT / "packs" / "medical-device-direct" / "definitions" / "lead_form.json",
    "md-deal": ROOT / "packs" / "medical-device-direct" / "definitions" / "deal_form.json",
    "saas-lead": ROOT / "packs" / "saas-remote-team" / "definitions" / "lead_form.json",
}


def shipped(key: str) -> dict[str, Any]:
    """Return a fresh copy of a shipped form document."""
    return json.loads(SHIPPED[key].read_text(encoding="utf-8"))


def form_doc(*fields: dict[str, Any], key: str = "test-form", sections: list[dict] | None = None) -> dict:
    """Build a one-section form document around `fields` (each needs key and type; label is added)."""
    filled = []
    for f in fields:
        f = copy.deepcopy(f)
        f.setdefault("label", {"en": f["key"].replace("_", " ").title(), "zh": "字段" + f["key"]})
        filled.append(f)
    return {
        "kind": "form",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Test form", "zh": "测试表单"},
        "record_type": "lead",
        "sections": sections or [{"key": "main", "label": {"en": "Main", "zh": "主要"}, "fields": filled}],
    }


@pytest.fixture(autouse=True)
def _fresh_form_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def spec_of() -> Callable[..., FormSpec]:
    """Compile a form built from field dicts (see form_doc)."""

    def build(*fields: dict[str, Any], **kwargs: Any) -> FormSpec:
        return compile_document(form_doc(*fields, **kwargs))

    return build


@pytest.fixture
def forms_app(app):  # type: ignore[no-untyped-def]
    """The app with the form templates registered (idempotent when create_app already does it)."""
    from salesmesh.forms.web import init_app

    init_app(app)
    return app


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_path: str) -> dict:
    """Drive Debian's chromium (as tests/browser does; nothing is downloaded)."""
    return {
        **browser_type_launch_args,
        "executable_path": chromium_path,
        "args": ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
    }
