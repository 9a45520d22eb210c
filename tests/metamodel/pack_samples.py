"""Small valid definition documents and a writer for throw-away template packs, shared by the definitions
store tests (versions, packs, API, CLI, UI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHIPPED_PACKS = Path(__file__).resolve().parents[2] / "packs"


def calendar_doc(key: str = "office-hours", **overrides: Any) -> dict[str, Any]:
    """Return a valid working-calendar definition."""
    doc: dict[str, Any] = {
        "kind": "calendar",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Office hours", "zh": "办公时间"},
        "timezone": "Asia/Shanghai",
        "working_hours": {
            "mon": [{"start": "09:00", "end": "18:00"}],
            "tue": [{"start": "09:00", "end": "18:00"}],
        },
    }
    doc.update(overrides)
    return doc


def objections_doc(key: str = "standard-objections", **overrides: Any) -> dict[str, Any]:
    """Return a valid objection-library definition."""
    doc: dict[str, Any] = {
        "kind": "objection_library",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Standard objections", "zh": "标准异议"},
        "types": [
            {
                "key": "price",
                "label": {"en": "Too expensive", "zh": "价格太高"},
                "responses": [
                    {
                        "key": "value",
                        "label": {"en": "Total cost", "zh": "总成本"},
                        "text": {"en": "Compare the five-year cost.", "zh": "请比较五年总成本。"},
                    }
                ],
            }
        ],
    }
    doc.update(overrides)
    return doc


def pool_doc(key: str = "open-pool", calendar: str = "office-hours", **overrides: Any) -> dict[str, Any]:
    """Return a valid pool definition whose cooldown counts working time on `calendar`."""
    doc: dict[str, Any] = {
        "kind": "pool",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Open pool", "zh": "公海"},
        "who_may_claim": {"roles": ["rep"]},
        "cooldown": {
            "no_followup_hours": 72,
            "qualifying_activities": ["call", "visit"],
            "unavailable_hours": 24,
            "calendar": calendar,
        },
    }
    doc.update(overrides)
    return doc


def manifest(key: str = "test-pack", files: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Return a valid pack manifest listing `files`."""
    doc: dict[str, Any] = {
        "kind": "pack",
        "schema_version": 1,
        "key": key,
        "name": {"en": "Test pack", "zh": "测试模板包"},
        "version": "1.0.0",
        "requires": {"salesmesh": ">=0.1"},
        "description": {"en": "A pack for tests.", "zh": "用于测试的模板包。"},
        "definitions": files or [],
    }
    doc.update(overrides)
    return doc


def write_pack(
    root: Path,
    documents: dict[str, Any],
    *,
    key: str = "test-pack",
    extra: dict[str, Any] | None = None,
    **manifest_overrides: Any,
) -> Path:
    """Write a pack folder: `documents` maps file paths to JSON values; `extra` adds unlisted files."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"pack.json": manifest(key, list(documents), **manifest_overrides), **documents, **(extra or {})}
    for name, value in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
    return root


def simple_pack(root: Path, **manifest_overrides: Any) -> Path:
    """Write a two-definition pack (a calendar and an objection library)."""
    return write_pack(
        root,
        {"definitions/calendar.json": calendar_doc(), "definitions/objections.json": objections_doc()},
        **manifest_overrides,
    )
