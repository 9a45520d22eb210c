"""The `list_view` definition kind: schema and semantic checks fail at exact JSON pointers with English and
Chinese messages, references to the form and pipeline are listed, and the list views shipped in the packs
name form fields that exist with the type the form gives them.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from salesmesh.metamodel import semantics_views as sv
from salesmesh.metamodel.kinds import get_kind
from salesmesh.metamodel.validation import document_references, validate_document

CJK = re.compile(r"[\u4e00-\u9fff]")
L = {"en": "Label", "zh": "标签"}
PACKS = Path(__file__).resolve().parents[2] / "packs"

BASE: dict[str, Any] = {
    "kind": "list_view",
    "key": "deals",
    "schema_version": 1,
    "label": L,
    "record_type": "deal",
    "pipeline": "sales",
    "form": "deal-form",
    "columns": [
        {"field": "name", "sortable": True, "searchable": True, "link": True},
        {"field": "stage", "sortable": True},
        {"field": "data.product", "type": "choice", "options": [{"value": "ct", "label": L}]},
        {"field": "data.beds", "label": L, "type": "number", "sortable": True},
    ],
    "filters": [
        {"key": "status", "field": "status", "operator": "in", "label": L},
        {"key": "mine", "field": "owner", "operator": "me", "label": L},
        {"key": "beds", "field": "data.beds", "operator": "between", "label": L},
        {
            "key": "closing",
            "field": "expected_close",
            "operator": "days_ahead_lt",
            "label": L,
            "options": [{"value": "30", "label": L}],
        },
    ],
    "where": [
        {"field": "status", "operator": "in", "value": ["open", "won"]},
        {"field": "amount", "operator": "between", "value": [0, 1000]},
        {"field": "expected_close", "operator": "gte", "value": "2026-01-01"},
        {"field": "team", "operator": "my_team"},
    ],
    "sort": [{"field": "stage"}, {"field": "data.beds", "direction": "desc"}],
    "page_size": 50,
}


def base(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


def test_the_example_is_valid_and_names_its_form_and_pipeline() -> None:
    assert validate_document(base()) == []
    assert document_references(base()) == [("/form", "form", "deal-form"), ("/pipeline", "pipeline", "sales")]
    assert get_kind("list_view").label == {"en": "List view", "zh": "列表视图"}


def _filter(**item: Any) -> dict[str, Any]:
    return {"key": "f", "label": L, **item}


BROKEN: list[tuple[str, dict[str, Any], str]] = [
    ("unknown record type", {"record_type": "invoice"}, "/record_type"),
    ("bad field name", {"columns": [{"field": "Name"}]}, "/columns/0/field"),
    ("field of another record type", {"columns": [{"field": "received_at"}]}, "/columns/0/field"),
    ("duplicate column", {"columns": [{"field": "name"}, {"field": "name"}]}, "/columns/1/field"),
    (
        "data column without label or form",
        {"form": None, "columns": [{"field": "data.x"}]},
        "/columns/0/label",
    ),
    ("searchable number", {"columns": [{"field": "amount", "searchable": True}]}, "/columns/0/searchable"),
    (
        "options on a money column",
        {"columns": [{"field": "amount", "options": [{"value": "a", "label": L}]}]},
        "/columns/0/options",
    ),
    ("type on a standard field", {"columns": [{"field": "amount", "type": "number"}]}, "/columns/0/type"),
    (
        "data field typed twice differently",
        {"filters": [_filter(field="data.beds", operator="eq", type="text")]},
        "/filters/0/type",
    ),
    (
        "reserved filter key",
        {"filters": [_filter(key="sort", field="status", operator="eq")]},
        "/filters/0/key",
    ),
    (
        "duplicate filter key",
        {"filters": [_filter(field="status", operator="eq"), _filter(field="name", operator="eq")]},
        "/filters/1/key",
    ),
    (
        "contains on a choice",
        {"filters": [_filter(field="status", operator="contains")]},
        "/filters/0/operator",
    ),
    ("me on a text field", {"filters": [_filter(field="name", operator="me")]}, "/filters/0/operator"),
    ("between on text", {"filters": [_filter(field="name", operator="between")]}, "/filters/0/operator"),
    ("unknown operator", {"filters": [_filter(field="name", operator="like")]}, "/filters/0/operator"),
    (
        "filter without label",
        {"filters": [{"key": "f", "field": "name", "operator": "eq"}]},
        "/filters/0/label",
    ),
    (
        "option outside the known values",
        {"filters": [_filter(field="status", operator="in", options=[{"value": "maybe", "label": L}])]},
        "/filters/0/options/0/value",
    ),
    (
        "options with a range operator",
        {"filters": [_filter(field="amount", operator="gte", options=[{"value": "1", "label": L}])]},
        "/filters/0/options",
    ),
    (
        "days option that is not a day count",
        {
            "filters": [
                _filter(
                    field="expected_close", operator="days_ago_lt", options=[{"value": "week", "label": L}]
                )
            ]
        },
        "/filters/0/options/0/value",
    ),
    (
        "where value on a valueless operator",
        {"where": [{"field": "owner", "operator": "me", "value": 1}]},
        "/where/0/value",
    ),
    ("where without a value", {"where": [{"field": "status", "operator": "eq"}]}, "/where/0/value"),
    (
        "where in without a list",
        {"where": [{"field": "status", "operator": "in", "value": "open"}]},
        "/where/0/value",
    ),
    (
        "where unknown status",
        {"where": [{"field": "status", "operator": "eq", "value": "maybe"}]},
        "/where/0/value",
    ),
    (
        "where bad in item",
        {"where": [{"field": "status", "operator": "in", "value": ["open", "x"]}]},
        "/where/0/value/1",
    ),
    (
        "where amount as text",
        {"where": [{"field": "amount", "operator": "gt", "value": "10"}]},
        "/where/0/value",
    ),
    (
        "where bad date",
        {"where": [{"field": "expected_close", "operator": "lt", "value": "2026-02-30"}]},
        "/where/0/value",
    ),
    (
        "where between reversed",
        {"where": [{"field": "amount", "operator": "between", "value": [5, 1]}]},
        "/where/0/value/1",
    ),
    (
        "where between of one",
        {"where": [{"field": "amount", "operator": "between", "value": [5]}]},
        "/where/0/value",
    ),
    (
        "where days of zero",
        {"where": [{"field": "closed_at", "operator": "days_ago_lt", "value": 0}]},
        "/where/0/value",
    ),
    (
        "where eq with a list",
        {"where": [{"field": "name", "operator": "eq", "value": ["a"]}]},
        "/where/0/value",
    ),
    (
        "where unfit operator",
        {"where": [{"field": "team", "operator": "eq", "value": "a"}]},
        "/where/0/operator",
    ),
    ("sort on an unknown field", {"sort": [{"field": "nickname"}]}, "/sort/0/field"),
    ("sort on a data field without column", {"sort": [{"field": "data.other"}]}, "/sort/0/field"),
    ("duplicate sort", {"sort": [{"field": "name"}, {"field": "name"}]}, "/sort/1/field"),
    ("bad direction", {"sort": [{"field": "name", "direction": "up"}]}, "/sort/0/direction"),
    ("page size too large", {"page_size": 1000}, "/page_size"),
    (
        "pipeline on a lead list",
        {
            "record_type": "lead",
            "columns": [{"field": "name"}],
            "filters": [],
            "where": [],
            "sort": [{"field": "name"}],
        },
        "/pipeline",
    ),
    ("unknown role", {"roles": ["boss"]}, "/roles/0"),
    ("extra property", {"colour": "blue"}, "/colour"),
]


@pytest.mark.parametrize(("case", "changes", "path"), BROKEN, ids=[c for c, _, _ in BROKEN])
def test_broken_list_views_fail_at_the_pointer(case: str, changes: dict[str, Any], path: str) -> None:
    doc = base(**changes)
    for key in [k for k, v in changes.items() if v is None]:
        del doc[key]
    errors = validate_document(doc)
    assert path in [e.path for e in errors], (case, [e.to_dict() for e in errors])
    assert all(e.message and CJK.search(e.message_zh) for e in errors), errors


def test_operator_table_covers_every_type_and_schema_operator() -> None:
    schema_ops = set(get_kind("list_view").schema["$defs"]["operator"]["enum"])
    assert set().union(*sv.OPERATORS.values()) == schema_ops
    types = {f.type for fields in sv.RECORD_FIELDS.values() for f in fields.values()}
    assert types | set(get_kind("list_view").schema["$defs"]["data_type"]["enum"]) == set(sv.OPERATORS)
    for fields in sv.RECORD_FIELDS.values():
        for field in fields.values():
            assert CJK.search(field.label["zh"]) and field.label["en"]
            assert all(CJK.search(label["zh"]) for _, label in field.values)


# --- the shipped list views ----------------------------------------------------------------------------


def _pack_docs(name: str) -> list[dict[str, Any]]:
    manifest = json.loads((PACKS / name / "pack.json").read_text(encoding="utf-8"))
    return [json.loads((PACKS / name / rel).read_text(encoding="utf-8")) for rel in manifest["definitions"]]


FORM_TYPES = {
    "text": "text",
    "long_text": "text",
    "phone": "text",
    "email": "text",
    "url": "text",
    "number": "number",
    "money": "money",
    "date": "date",
    "datetime": "datetime",
    "select": "choice",
    "boolean": "boolean",
}


@pytest.mark.parametrize("pack", ["medical-device-direct", "saas-remote-team"])
def test_shipped_list_views_match_their_forms(pack: str) -> None:
    docs = _pack_docs(pack)
    views = [d for d in docs if d["kind"] == "list_view"]
    forms = {d["key"]: d for d in docs if d["kind"] == "form"}
    assert {v["record_type"] for v in views} >= {"lead", "customer", "deal", "task"}
    for view in views:
        defaults = [v for v in views if v["record_type"] == view["record_type"] and v.get("default")]
        assert len(defaults) == 1, view["record_type"]
        types = sv.data_types(view)
        data_fields = {i["field"] for g in ("columns", "filters", "where") for i in view.get(g, [])}
        data_fields = {f for f in data_fields if sv.is_data_field(f)}
        if data_fields:
            assert view.get("form") in forms, view["key"]
            fields = {f["key"]: f for s in forms[view["form"]]["sections"] for f in s["fields"]}
            for name in data_fields:
                key = name.removeprefix("data.")
                assert key in fields, (view["key"], name)
                assert types.get(name, "text") == FORM_TYPES[fields[key]["type"]], (view["key"], name)
        if view["record_type"] == "deal":
            assert "pipeline" in view, view["key"]


def test_shipped_views_cover_what_reps_and_leads_need() -> None:
    keys = {d["key"] for name in ("medical-device-direct", "saas-remote-team") for d in _pack_docs(name)}
    assert {"md-leads-all", "md-leads-new", "md-customers", "md-deals-open", "md-tasks-mine"} <= keys
    assert {"saas-leads-all", "saas-leads-pool", "saas-deals-open", "saas-tasks-mine"} <= keys
