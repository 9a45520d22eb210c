"""Binding submissions: conversion of a whole form, conditional visibility and requiredness, errors per
field in both languages, JSON specifics (unknown keys, defaults), read-only fields, the form → JSON round
trip, and records pinned to the form version they were written with."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict

from salesmesh.forms.binding import bind, display_values, validate_data
from salesmesh.forms.compile import compile_document, spec_for_version_id
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from tests.forms.conftest import form_doc, shipped

MD_LEAD = {
    "institution_name": " 江苏省人民医院 ",
    "institution_grade": "tertiary_a",
    "institution_type": "hospital",
    "region": "jiangsu",
    "bed_count": "1,800",
    "contact_name": "王医生",
    "phone": "138 1234 5678",
    "email": "Wang@Hospital.CN",
    "product_interest": ["imaging", "ultrasound"],
    "purchase_timeframe": "within_3_months",
    "source_channel": "hotline",
}


def form_data(values: dict[str, Any]) -> MultiDict:
    """Encode values the way a browser posts them (lists as repeated names)."""
    pairs = []
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return MultiDict(pairs)


def test_a_valid_html_submission_becomes_typed_values() -> None:
    spec = compile_document(shipped("md-lead"))
    bound = bind(spec, form_data({**MD_LEAD, "csrf_token": "x", "submit": "save"}))
    assert bound.valid, bound.errors
    assert bound.values == {
        "institution_name": "江苏省人民医院",
        "institution_grade": "tertiary_a",
        "institution_type": "hospital",
        "region": "jiangsu",
        "bed_count": 1800,
        "contact_name": "王医生",
        "phone": "+8613812345678",
        "email": "wang@hospital.cn",
        "product_interest": ["imaging", "ultrasound"],
        "purchase_timeframe": "within_3_months",
        "tender_planned": False,
        "source_channel": "hotline",
    }


def test_required_fields_and_errors_per_field_in_both_languages() -> None:
    spec = compile_document(shipped("md-lead"))
    bound = bind(spec, form_data({"institution_name": "X", "institution_grade": "nope", "bed_count": "many"}))
    assert not bound.valid
    assert bound.errors["institution_grade"] == [
        {
            "path": "/institution_grade",
            "message": "Choose one of the listed options",
            "message_zh": "请从列出的选项中选择",
        }
    ]
    assert bound.errors["bed_count"][0]["message_zh"] == "必须是数字"
    for key in ("institution_type", "region", "contact_name", "phone", "product_interest", "source_channel"):
        assert bound.errors[key] == [
            {"path": f"/{key}", "message": "This field is required", "message_zh": "此项为必填项"}
        ]
    assert "institution_name" not in bound.errors and "tender_date" not in bound.errors
    assert bound.redisplay["bed_count"] == "many"  # the form shows what was typed
    paths = [e["path"] for e in bound.error_list()]
    assert paths.index("/institution_grade") < paths.index("/contact_name") < paths.index("/source_channel")


def test_conditional_field_is_required_only_when_its_condition_holds() -> None:
    spec = compile_document(shipped("md-lead"))
    planned = bind(spec, form_data({**MD_LEAD, "tender_planned": "on"}))
    assert planned.errors == {
        "tender_date": [
            {"path": "/tender_date", "message": "This field is required", "message_zh": "此项为必填项"}
        ]
    }
    assert "tender_date" in planned.state.required
    planned = bind(spec, form_data({**MD_LEAD, "tender_planned": "on", "tender_date": "2026-05-20"}))
    assert planned.valid and planned.values["tender_date"] == "2026-05-20"


def test_hidden_field_is_ignored_even_when_invalid() -> None:
    spec = compile_document(shipped("md-lead"))
    bound = bind(spec, form_data({**MD_LEAD, "tender_date": "not a date"}))  # tender_planned unchecked
    assert bound.valid, bound.errors
    assert "tender_date" not in bound.values and "tender_date" in bound.state.hidden
    bound = bind(spec, form_data({**MD_LEAD, "tender_date": "2026-05-20"}))
    assert "tender_date" not in bound.values  # a stale value of a hidden field is dropped


def test_saas_trial_email_follows_the_checkbox() -> None:
    spec = compile_document(shipped("saas-lead"))
    base = {
        "company_name": "Acme",
        "company_size": "21_100",
        "contact_name": "Li",
        "email": "li@acme.io",
        "source": "webinar",
    }
    assert bind(spec, form_data(base)).valid
    bound = bind(spec, form_data({**base, "trial_requested": "true", "trial_account_email": "bad"}))
    assert bound.errors["trial_account_email"][0]["message_zh"] == "不是有效的电子邮件地址"
    bound = bind(spec, base | {"trial_requested": True}, source="json")
    assert bound.errors["trial_account_email"][0]["message"] == "This field is required"


def test_json_input_unknown_keys_defaults_and_types() -> None:
    spec = compile_document(shipped("md-lead"))
    typed = {**MD_LEAD, "bed_count": 1800, "phone": "+8613812345678", "institution_name": "X"}
    bound = bind(spec, {**typed, "colour": "blue"}, source="json")
    assert bound.errors == {
        "colour": [{"path": "/colour", "message": "Unknown field 'colour'", "message_zh": "未知字段“colour”"}]
    }
    bound = bind(spec, {k: v for k, v in typed.items() if k != "purchase_timeframe"}, source="json")
    assert bound.valid, bound.errors
    assert bound.values["purchase_timeframe"] == "unknown"  # the default of a missing key
    assert bound.values["budget_status"] == "unknown" and bound.values["tender_planned"] is False
    bound = bind(spec, {"institution_name": "X"}, source="json", apply_defaults=False)
    assert "budget_status" not in bound.values
    bound = bind(spec, ["not", "an", "object"], source="json")  # type: ignore[arg-type]
    assert bound.errors[""][0]["path"] == "" and bound.errors[""][0]["message_zh"]


def test_read_only_fields_keep_the_stored_value(spec_of) -> None:
    spec = spec_of({"key": "score", "type": "number", "read_only": True}, {"key": "note", "type": "text"})
    bound = bind(spec, {"score": "99", "note": "hi"}, existing={"score": 42})
    assert bound.values == {"score": 42, "note": "hi"}
    assert bind(spec, {"note": "x"}).values == {"note": "x"}


def test_form_values_round_trip_through_json(spec_of) -> None:
    spec = spec_of(
        {"key": "t", "type": "text"},
        {"key": "lt", "type": "long_text"},
        {"key": "n", "type": "number", "decimals": 2},
        {"key": "m", "type": "money", "currency": "CNY"},
        {"key": "d", "type": "date"},
        {"key": "dt", "type": "datetime"},
        {"key": "s", "type": "select", "options": [{"value": "x", "label": {"en": "X", "zh": "X"}}]},
        {"key": "ms", "type": "multi_select", "options": [{"value": "x", "label": {"en": "X", "zh": "X"}}]},
        {"key": "b", "type": "boolean"},
        {"key": "p", "type": "phone"},
        {"key": "e", "type": "email"},
        {"key": "u", "type": "url"},
        {"key": "r", "type": "reference", "reference": {"target": "contact"}},
    )
    raw = {
        "t": "a",
        "lt": "l1\r\nl2",
        "n": "3.25",
        "m": "12",
        "d": "2026-01-02",
        "dt": "2026-01-02T08:00",
        "s": "x",
        "ms": ["x"],
        "b": "on",
        "p": "13812345678",
        "e": "A@B.CN",
        "u": "example.com",
        "r": "5",
    }
    from_form = bind(spec, form_data(raw))
    assert from_form.valid, from_form.errors
    again = bind(spec, from_form.values, source="json")
    assert again.valid and again.values == from_form.values
    assert validate_data(spec, from_form.values) == {}


def test_record_written_under_v1_validates_and_displays_under_v1_after_v2(session, clock, make_lead) -> None:
    v1_doc = form_doc(
        {"key": "hospital", "type": "text", "required": True},
        {"key": "wechat", "type": "text", "pattern": "^[a-z0-9_]{3,20}$"},
        key="pinned-form",
    )
    v1 = publish_version(session, None, create_definition_draft(session, None, v1_doc, clock).id, clock)
    spec_v1 = spec_for_version_id(session, v1.id)
    bound = bind(spec_v1, {"hospital": "Ruijin", "wechat": "ruijin_01"})
    assert bound.valid
    lead = make_lead(form_version_id=v1.id, data=bound.values)

    v2_doc = form_doc(
        {"key": "hospital", "type": "text", "required": True},
        {
            "key": "grade",
            "type": "select",
            "required": True,
            "options": [{"value": "a", "label": {"en": "A", "zh": "甲"}}],
        },
        key="pinned-form",
    )
    v2 = publish_version(session, None, create_definition_draft(session, None, v2_doc, clock).id, clock)
    session.refresh(v1)
    assert v1.status == "archived" and v2.status == "published"

    pinned = spec_for_version_id(session, lead.form_version_id)
    assert pinned is spec_v1 and pinned.version_id == v1.id
    assert validate_data(pinned, lead.data) == {}
    spec_v2 = spec_for_version_id(session, v2.id)
    errors = validate_data(spec_v2, lead.data)
    assert set(errors) == {"wechat", "grade"}  # the record is not valid under v2, by design

    shown = display_values(pinned, lead.data, "zh")
    assert [(e.key, e.text, e.removed) for e in shown] == [
        ("hospital", "Ruijin", False),
        ("wechat", "ruijin_01", False),
    ]
    history = display_values(spec_v2, lead.data, "en")
    removed = [e for e in history if e.removed]
    assert [(e.key, e.text) for e in removed] == [("wechat", "ruijin_01")]
    assert [e.key for e in history if not e.removed] == ["hospital", "grade"]


def test_display_values_labels_references_and_hidden_fields() -> None:
    spec = compile_document(shipped("md-deal"))
    data = {
        "product_line": "ivd",
        "amount": "1200000.00",
        "budget_approved": True,
        "trial_result": "positive",
    }
    entries = {e.key: e for e in display_values(spec, data, "zh")}
    assert entries["product_line"].text == "体外诊断"
    assert entries["amount"].text == "¥1,200,000.00"
    assert entries["budget_approved"].text == "是"
    assert entries["trial_result"].hidden  # no trial start date: the field is not shown
    assert entries["decision_maker"].text == ""
    spec = compile_document(form_doc({"key": "owner", "type": "reference", "reference": {"target": "user"}}))
    [entry] = display_values(spec, {"owner": 3}, "en", names={("user", 3): "Wang Li"})
    assert entry.text == "Wang Li"
