"""Compiling form definitions: the shipped forms, the submission schema, conditions, unsafe patterns,
compile errors with JSON pointers, visibility order, and the per-version cache."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from salesmesh.forms.compile import (
    FormCompileError,
    compile_document,
    compile_form,
    published_form,
    spec_for_version_id,
)
from salesmesh.metamodel.patterns import MAX_PATTERN_INPUT, UnsafePattern, check_pattern
from salesmesh.metamodel.versions import create_definition_draft, publish_version, update_draft
from tests.forms.conftest import form_doc, shipped


@pytest.mark.parametrize("key", ["md-lead", "md-deal", "saas-lead"])
def test_shipped_forms_compile(key: str) -> None:
    doc = shipped(key)
    spec = compile_document(doc)
    keys = [f["key"] for s in doc["sections"] for f in s["fields"]]
    assert [f.key for f in spec.fields] == keys
    assert [s.key for s in spec.sections] == [s["key"] for s in doc["sections"]]
    assert spec.record_type == doc["record_type"]
    Draft202012Validator.check_schema(spec.json_schema)
    assert set(spec.json_schema["properties"]) == {f.key for f in spec.fields if f.takes_input}
    assert spec.json_schema["additionalProperties"] is False
    for f in spec.fields:
        if f.document.get("visible_if"):
            assert f.visible_if is not None and f.visible_if_json
        if f.document.get("required") and not f.document.get("visible_if"):
            assert f.key in spec.json_schema["required"]


def test_md_lead_details() -> None:
    spec = compile_document(shipped("md-lead"))
    tender = spec.by_key["tender_date"]
    assert tender.visible_if.variables == frozenset({"tender_planned"})
    assert tender.visible_if_json == '{"==":[{"var":"tender_planned"},true]}'
    assert "tender_date" not in spec.json_schema["required"]
    grade = spec.json_schema["properties"]["institution_grade"]
    assert grade["enum"][0] == "tertiary_a"
    assert spec.by_key["wechat"].pattern.pattern == "^[A-Za-z][A-Za-z0-9_-]{5,19}$"
    assert spec.by_key["purchase_timeframe"].default == "unknown"
    assert spec.by_key["region"].option_label("jiangsu") == {"en": "Jiangsu", "zh": "江苏"}
    assert spec.sections[0].columns == 2
    assert not spec.has_files


def test_md_deal_details() -> None:
    spec = compile_document(shipped("md-deal"))
    assert spec.has_files
    contract = spec.json_schema["properties"]["contract_file"]
    assert contract["maxItems"] == 3
    assert contract["items"]["properties"]["type"]["enum"] == ["jpg", "pdf", "png"]
    assert spec.json_schema["properties"]["amount"]["type"] == "string"  # money: string decimal
    state = spec.state({"competitor_type": "domestic_brand"})
    assert "competitor_name" not in state.hidden and "trial_result" in state.hidden
    state = spec.state({"trial_start_date": "2026-01-05"})
    assert state.hidden == frozenset({"competitor_name"})


@pytest.mark.parametrize(
    "pattern",
    [
        "(a+)+$",
        "^(\\d{2,5})*$",
        "^(a|aa)*$",
        "(x+x+)+y",
        "(\\w)\\1",
        "^a*b*c*d*$",
        "(" * 300,
        "x" * 201,
    ],
)
def test_unsafe_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(UnsafePattern) as info:
        check_pattern(pattern)
    assert info.value.message and info.value.message_zh


@pytest.mark.parametrize(
    "pattern",
    ["^[A-Za-z][A-Za-z0-9_-]{5,19}$", "^\\d{6}$", "^[^@]+@[^@]+$", "^(ab|cd)?x+$", "^[a-z]+(-[a-z]{2,3})?$"],
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    assert check_pattern(pattern).pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "en", "zh"),
    [
        ("^(a+)+$", "Unsafe", "不安全"),  # the definition validator and the compiler share the rules
        ("^(a|aa)*$", "alternatives", "多个分支"),
        ("^\\w*-\\w*-\\w*-\\w*$", "open-ended", "开放式重复"),
    ],
)
def test_refused_pattern_is_a_compile_error_at_its_pointer(pattern: str, en: str, zh: str) -> None:
    doc = form_doc({"key": "a", "type": "text"}, {"key": "b", "type": "text", "pattern": pattern})
    with pytest.raises(FormCompileError) as info:
        compile_document(doc)
    [error] = info.value.errors
    assert error["path"] == "/sections/0/fields/1/pattern"
    assert en in error["message"] and zh in error["message_zh"]


def test_allowed_pattern_stays_fast_on_hostile_input() -> None:
    # Polynomial backtracking on an input capped at MAX_PATTERN_INPUT returns (a refused exponential
    # pattern would not); no wall-clock assertion, the call completing is the check.
    compiled = check_pattern("^[^@]+@[^@]+\\.[a-z]+$")
    assert compiled.search("a" * MAX_PATTERN_INPUT + "!") is None


def test_invalid_documents_and_conditions_report_pointers() -> None:
    with pytest.raises(FormCompileError) as info:
        compile_document({"kind": "form", "key": "x", "schema_version": 1})
    assert any(e["path"] == "/label" for e in info.value.errors)
    with pytest.raises(FormCompileError) as info:
        compile_document({"kind": "form", "key": "x", "schema_version": 9})
    assert info.value.errors[0]["path"] == "/schema_version"
    doc = form_doc(
        {"key": "a", "type": "text"}, {"key": "b", "type": "text", "visible_if": {"no_such_op": [1]}}
    )
    with pytest.raises(FormCompileError) as info:
        compile_document(doc)
    assert info.value.errors[0]["path"].startswith("/sections/0/fields/1/visible_if")
    assert info.value.errors[0]["message_zh"]


def test_literal_conditions() -> None:
    spec = compile_document(
        form_doc(
            {"key": "a", "type": "text", "visible_if": True},
            {"key": "b", "type": "text", "visible_if": False, "required": True},
        )
    )
    assert spec.by_key["a"].visible_if is None
    assert spec.state({}).hidden == frozenset({"b"})
    assert spec.state({}).required == frozenset()


def test_visibility_chains_follow_dependencies_in_any_document_order() -> None:
    # c reads b, b reads a, but c comes first in the document: evaluation order still settles it.
    doc = form_doc(
        {"key": "c", "type": "text", "visible_if": {"==": [{"var": "b"}, "yes"]}},
        {"key": "b", "type": "text", "visible_if": {"==": [{"var": "a"}, True]}},
        {"key": "a", "type": "boolean"},
    )
    spec = compile_document(doc)
    assert spec.acyclic
    assert [node.key for _kind, node in spec.plan] == ["b", "c"]
    assert spec.state({"a": True, "b": "yes"}).hidden == frozenset()
    # a off hides b, so c sees b as absent and hides too, although b's stale value says "yes".
    assert spec.state({"a": False, "b": "yes"}).hidden == frozenset({"b", "c"})


def test_section_conditions_hide_their_fields() -> None:
    doc = form_doc(
        sections=[
            {
                "key": "s1",
                "label": {"en": "One", "zh": "一"},
                "fields": [{"key": "kind", "type": "text", "label": {"en": "K", "zh": "K"}}],
            },
            {
                "key": "s2",
                "label": {"en": "Two", "zh": "二"},
                "visible_if": {"==": [{"var": "kind"}, "hospital"]},
                "fields": [
                    {
                        "key": "beds",
                        "type": "number",
                        "label": {"en": "Beds", "zh": "床位"},
                        "required": True,
                    },
                    {
                        "key": "note",
                        "type": "text",
                        "label": {"en": "N", "zh": "N"},
                        "visible_if": {"!!": [{"var": "beds"}]},
                    },
                ],
            },
        ]
    )
    spec = compile_document(doc)
    assert "beds" not in spec.json_schema["required"]  # required only while its section shows
    state = spec.state({"kind": "clinic", "beds": 10})
    assert state.hidden_sections == frozenset({"s2"}) and state.hidden == frozenset({"beds", "note"})
    state = spec.state({"kind": "hospital", "beds": 10})
    assert state.hidden == frozenset() and state.required == frozenset({"beds"})


def test_cyclic_conditions_fall_back_to_the_browser_rule() -> None:
    doc = form_doc(
        {"key": "a", "type": "text", "visible_if": {"!": [{"var": "b"}]}},
        {"key": "b", "type": "text", "visible_if": {"!": [{"var": "a"}]}},
    )
    spec = compile_document(doc)
    assert not spec.acyclic
    assert spec.state({}).hidden == frozenset()
    assert spec.state({"a": "x"}).hidden == frozenset({"b"})
    # Both filled: each hides the other, then both reappear... the bounded rounds end deterministically.
    assert spec.state({"a": "x", "b": "y"}) == spec.state({"a": "x", "b": "y"})


def test_compile_form_caches_per_version(session, clock) -> None:
    draft = create_definition_draft(
        session, None, form_doc({"key": "a", "type": "text"}, key="cache-form"), clock
    )
    first = compile_form(draft)
    assert compile_form(draft) is first
    draft = update_draft(
        session,
        None,
        draft.id,
        form_doc({"key": "b", "type": "text"}, key="cache-form"),
        draft.lock_version,
        clock,
    )
    second = compile_form(draft)
    assert second is not first and list(second.by_key) == ["b"]  # a draft is re-compiled per checksum
    published = publish_version(session, None, draft.id, clock)
    assert compile_form(published) is second
    assert spec_for_version_id(session, published.id) is second
    assert published_form(session, "cache-form") is second
    assert published_form(session, "no-such-form") is None
    with pytest.raises(LookupError):
        spec_for_version_id(session, 999_999)
    assert second.version_id == published.id and second.version_number == published.number
