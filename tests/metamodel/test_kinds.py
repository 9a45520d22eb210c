"""Definition kinds and document validation: a minimal valid document per kind, broken documents that
fail at an exact JSON pointer with English and Chinese messages, the envelope (kind, key, schema_version,
size, depth), upgrades, the registry, and validators compiled once.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from salesmesh.metamodel import kinds as kinds_module
from salesmesh.metamodel.fastcheck import Uncertain, compile_check
from salesmesh.metamodel.kinds import (
    FORMAT_CHECKER,
    DuplicateKind,
    Kind,
    UnknownKind,
    all_kinds,
    get_kind,
    register_kind,
)
from salesmesh.metamodel.validation import (
    MAX_DOCUMENT_BYTES,
    DocumentInvalid,
    ValidationError,
    canonical_json,
    checksum,
    document_references,
    upgrade_document,
    validate_document,
    validate_manifest,
)

L = {"en": "Label", "zh": "标签"}
T = {"en": "Text", "zh": "文本"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _doc(kind: str, key: str, **body: Any) -> dict[str, Any]:
    return {"kind": kind, "key": key, "schema_version": 1, "label": L, **body}


MINIMAL: dict[str, dict[str, Any]] = {
    "form": _doc(
        "form",
        "lead-form",
        record_type="lead",
        sections=[
            {
                "key": "main",
                "label": L,
                "fields": [
                    {"key": "name", "type": "text", "label": L, "required": True},
                    {"key": "grade", "type": "select", "label": L, "options": [{"value": "a", "label": L}]},
                ],
            }
        ],
    ),
    "pipeline": _doc(
        "pipeline",
        "sales",
        mode="free",
        allow_any=True,
        stages=[
            {"key": "open", "label": L, "probability": 10, "outcome": "open"},
            {"key": "won", "label": L, "probability": 100, "outcome": "won"},
        ],
    ),
    "routing": _doc(
        "routing",
        "routing",
        form="lead-form",
        channels=[{"key": "main", "label": L}],
        rules=[{"key": "all", "label": L, "when": True, "channel": "main", "strategy": "round_robin"}],
        fallback={"channel": "main", "strategy": "least_loaded"},
    ),
    "action_pack": _doc(
        "action_pack",
        "demo-pack",
        steps=[
            {
                "key": "remind",
                "label": L,
                "offset": {"after_hours": 48, "relative_to": "stage_entry"},
                "action": {"kind": "remind", "params": {"message": T}},
            }
        ],
    ),
    "pool": _doc(
        "pool",
        "open-pool",
        who_may_claim={"roles": ["rep"]},
        cooldown={"no_followup_hours": 72, "qualifying_activities": ["call"], "unavailable_hours": 24},
    ),
    "rep_attributes": _doc(
        "rep_attributes", "rep-attrs", attributes=[{"key": "years_medical", "label": L, "type": "integer"}]
    ),
    "calendar": _doc(
        "calendar",
        "office",
        timezone="Asia/Shanghai",
        working_hours={"mon": [{"start": "09:00", "end": "18:00"}]},
    ),
    "objection_library": _doc(
        "objection_library",
        "objections",
        types=[{"key": "price", "label": L, "responses": [{"key": "value", "label": L, "text": T}]}],
    ),
    "commission_policy": _doc("commission_policy", "commission", currency="CNY", default_rate=0.03),
    "scoring": _doc(
        "scoring", "heat", signals=[{"event": "email_open", "points": 2}], thresholds={"warm": 10, "hot": 30}
    ),
    "list_view": _doc("list_view", "all-leads", record_type="lead", columns=[{"field": "name"}]),
}


def minimal(kind: str) -> dict[str, Any]:
    """Return a fresh copy of the kind's minimal document (no shared sub-objects)."""
    return json.loads(json.dumps(MINIMAL[kind]))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Return a mutation that sets the value at a slash path (creating nothing but the last key)."""

    def mutate(doc: dict[str, Any]) -> None:
        parts = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
        node: Any = doc
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        parts = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
        node: Any = doc
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]

    return mutate


def _append(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]:
            node = node[part]
        node.append(copy.deepcopy(value))

    return mutate


def _deep(levels: int) -> Any:
    node: Any = {"var": "x"}
    for _ in range(levels):
        node = {"!": [node]}
    return node


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for m in mutations:
            m(doc)

    return mutate


F0 = "/sections/0/fields/0"
BROKEN: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    # form
    ("form", "missing section label", _delete("/sections/0/label"), "/sections/0/label"),
    ("form", "empty zh label", _set("/label/zh", ""), "/label/zh"),
    ("form", "label too long", _set("/label/en", "x" * 201), "/label/en"),
    ("form", "label without zh", _set("/label", {"en": "x"}), "/label/zh"),
    ("form", "unknown field property", _set(F0 + "/colour", "red"), F0 + "/colour"),
    ("form", "unknown top-level property", _set("/extra", 1), "/extra"),
    ("form", "bad field type", _set(F0 + "/type", "rating"), F0 + "/type"),
    ("form", "bad record type", _set("/record_type", "invoice"), "/record_type"),
    ("form", "bad field key", _set(F0 + "/key", "Name"), F0 + "/key"),
    ("form", "required not boolean", _set(F0 + "/required", "yes"), F0 + "/required"),
    (
        "form",
        "select without options",
        _delete("/sections/0/fields/1/options"),
        "/sections/0/fields/1/options",
    ),
    ("form", "options on text", _set(F0 + "/options", [{"value": "a", "label": L}]), F0 + "/options"),
    ("form", "duplicate field key", _set("/sections/0/fields/1/key", "name"), "/sections/0/fields/1/key"),
    ("form", "unsafe regex", _set(F0 + "/pattern", "^(a+)+$"), F0 + "/pattern"),
    ("form", "broken regex", _set(F0 + "/pattern", "(abc"), F0 + "/pattern"),
    (
        "form",
        "default not an option",
        _set("/sections/0/fields/1/default", "z"),
        "/sections/0/fields/1/default",
    ),
    ("form", "condition names unknown field", _set(F0 + "/visible_if", {"var": "ghost"}), F0 + "/visible_if"),
    ("form", "condition is a string", _set(F0 + "/visible_if", "grade == a"), F0 + "/visible_if"),
    (
        "form",
        "condition with two operators",
        _set(F0 + "/required_if", {"==": [1, 1], "!=": [1, 2]}),
        F0 + "/required_if",
    ),
    ("form", "condition too deep", _set(F0 + "/visible_if", _deep(9)), F0 + "/visible_if"),
    ("form", "no sections", _set("/sections", []), "/sections"),
    (
        "form",
        "min above max",
        _set(F0, {"key": "n", "type": "number", "label": L, "min": 5, "max": 1}),
        F0 + "/max",
    ),
    # pipeline
    (
        "pipeline",
        "locked without transitions",
        _both(_set("/mode", "locked"), _delete("/allow_any")),
        "/transitions",
    ),
    ("pipeline", "locked with allow_any", _set("/mode", "locked"), "/allow_any"),
    (
        "pipeline",
        "transition to unknown stage",
        _set("/transitions", [{"from": "open", "to": "ghost"}]),
        "/transitions/0/to",
    ),
    ("pipeline", "duplicate stage key", _set("/stages/1/key", "open"), "/stages/1/key"),
    ("pipeline", "probability above 100", _set("/stages/0/probability", 101), "/stages/0/probability"),
    ("pipeline", "won stage below 100", _set("/stages/1/probability", 50), "/stages/1/probability"),
    ("pipeline", "bad outcome", _set("/stages/0/outcome", "maybe"), "/stages/0/outcome"),
    ("pipeline", "no won stage", _set("/stages/1/outcome", "open"), "/stages"),
    (
        "pipeline",
        "red not after yellow",
        _set("/lights", {"yellow_after_days": 3, "red_after_days": 1}),
        "/lights/red_after_days",
    ),
    ("pipeline", "lights missing red", _set("/lights", {"yellow_after_days": 1}), "/lights/red_after_days"),
    (
        "pipeline",
        "unknown required key node",
        _set("/stages/0/exit_criteria", {"required_key_nodes": ["technical_qa"]}),
        "/stages/0/exit_criteria/required_key_nodes/0",
    ),
    (
        "pipeline",
        "bad activity type in exit criteria",
        _set("/stages/0/exit_criteria", {"required_activities": [{"activity_type": "fax"}]}),
        "/stages/0/exit_criteria/required_activities/0/activity_type",
    ),
    ("pipeline", "single stage", _set("/stages", [MINIMAL["pipeline"]["stages"][0]]), "/stages"),
    ("pipeline", "unknown initial stage", _set("/initial_stage", "ghost"), "/initial_stage"),
    # routing
    ("routing", "unknown channel", _set("/rules/0/channel", "vip"), "/rules/0/channel"),
    ("routing", "pool strategy without pool", _set("/rules/0/strategy", "pool"), "/rules/0/pool"),
    ("routing", "weighted without weights", _set("/rules/0/strategy", "weighted"), "/rules/0/weights"),
    ("routing", "pool on round robin", _set("/rules/0/pool", "open-pool"), "/rules/0/pool"),
    ("routing", "bad strategy", _set("/rules/0/strategy", "random"), "/rules/0/strategy"),
    ("routing", "missing fallback", _delete("/fallback"), "/fallback"),
    ("routing", "missing when", _delete("/rules/0/when"), "/rules/0/when"),
    ("routing", "duplicate rule key", _append("/rules", MINIMAL["routing"]["rules"][0]), "/rules/1/key"),
    (
        "routing",
        "bad sla breach",
        _set("/first_response_sla", {"minutes": 30, "on_breach": "ignore"}),
        "/first_response_sla/on_breach",
    ),
    (
        "routing",
        "sla zero minutes",
        _set("/first_response_sla", {"minutes": 0, "on_breach": "escalate"}),
        "/first_response_sla/minutes",
    ),
    (
        "routing",
        "bad team key",
        _set("/rules/0/candidates", {"teams": ["no spaces"]}),
        "/rules/0/candidates/teams/0",
    ),
    ("routing", "daily cap zero", _set("/rules/0/daily_cap", 0), "/rules/0/daily_cap"),
    ("routing", "form key malformed", _set("/form", "Lead Form"), "/form"),
    ("routing", "high grade not a condition", _set("/high_grade", ["tertiary_a"]), "/high_grade"),
    ("routing", "high grade unknown operator", _set("/high_grade", {"bogus": [1]}), "/high_grade"),
    (
        "routing",
        "high grade bad inner condition",
        _set("/high_grade", {"or": [{"==": [{"var": "grade"}, "a"]}, {"var": [1, 2, 3, 4]}]}),
        "/high_grade/or/1",
    ),
    # action pack
    (
        "action_pack",
        "two offset amounts",
        _set("/steps/0/offset", {"after_hours": 1, "after_minutes": 5, "relative_to": "stage_entry"}),
        "/steps/0/offset",
    ),
    (
        "action_pack",
        "offset relative to unknown step",
        _set("/steps/0/offset", {"after_hours": 1, "relative_to": "step", "step": "ghost"}),
        "/steps/0/offset/step",
    ),
    (
        "action_pack",
        "date field without field",
        _set("/steps/0/offset", {"after_hours": -24, "relative_to": "date_field"}),
        "/steps/0/offset/field",
    ),
    (
        "action_pack",
        "negative offset after stage entry",
        _set("/steps/0/offset/after_hours", -1),
        "/steps/0/offset/after_hours",
    ),
    (
        "action_pack",
        "remind without message",
        _set("/steps/0/action/params", {}),
        "/steps/0/action/params/message",
    ),
    (
        "action_pack",
        "remind with unknown param",
        _set("/steps/0/action/params/url", "x"),
        "/steps/0/action/params/url",
    ),
    ("action_pack", "bad action kind", _set("/steps/0/action/kind", "sms"), "/steps/0/action/kind"),
    (
        "action_pack",
        "webhook with ftp url",
        _set("/steps/0/action", {"kind": "webhook", "params": {"url": "ftp://example.com/x"}}),
        "/steps/0/action/params/url",
    ),
    (
        "action_pack",
        "email without body",
        _set("/steps/0/action", {"kind": "email", "params": {"to": "primary_contact", "subject": L}}),
        "/steps/0/action/params/body",
    ),
    ("action_pack", "bad on_exit", _set("/on_exit", "pause"), "/on_exit"),
    ("action_pack", "no steps", _set("/steps", []), "/steps"),
    # pool
    ("pool", "cooldown without hours", _delete("/cooldown/no_followup_hours"), "/cooldown/no_followup_hours"),
    ("pool", "no roles", _set("/who_may_claim/roles", []), "/who_may_claim/roles"),
    ("pool", "bad role", _set("/who_may_claim/roles", ["intern"]), "/who_may_claim/roles/0"),
    (
        "pool",
        "bad activity",
        _set("/cooldown/qualifying_activities", ["fax"]),
        "/cooldown/qualifying_activities/0",
    ),
    (
        "pool",
        "duplicate activity",
        _set("/cooldown/qualifying_activities", ["call", "call"]),
        "/cooldown/qualifying_activities",
    ),
    ("pool", "zero cooldown", _set("/cooldown/no_followup_hours", 0), "/cooldown/no_followup_hours"),
    ("pool", "cap not integer", _set("/claim_cap_per_rep", 2.5), "/claim_cap_per_rep"),
    # rep attributes
    ("rep_attributes", "enum without options", _set("/attributes/0/type", "enum"), "/attributes/0/options"),
    ("rep_attributes", "reserved key", _set("/attributes/0/key", "lead"), "/attributes/0/key"),
    ("rep_attributes", "bad type", _set("/attributes/0/type", "date"), "/attributes/0/type"),
    ("rep_attributes", "default mismatch", _set("/attributes/0/default", "five"), "/attributes/0/default"),
    (
        "rep_attributes",
        "options on integer",
        _set("/attributes/0/options", [{"value": "a", "label": L}]),
        "/attributes/0/options",
    ),
    # calendar
    ("calendar", "unknown time zone", _set("/timezone", "Mars/Olympus_Mons"), "/timezone"),
    ("calendar", "end before start", _set("/working_hours/mon/0/end", "08:00"), "/working_hours/mon/0/end"),
    ("calendar", "bad time", _set("/working_hours/mon/0/start", "25:00"), "/working_hours/mon/0/start"),
    ("calendar", "unknown weekday", _set("/working_hours/funday", []), "/working_hours/funday"),
    ("calendar", "impossible date", _set("/holidays", [{"date": "2026-02-30"}]), "/holidays/0/date"),
    (
        "calendar",
        "holiday end before start",
        _set("/holidays", [{"date": "2026-10-07", "end_date": "2026-10-01"}]),
        "/holidays/0/end_date",
    ),
    (
        "calendar",
        "workday that is a holiday",
        _both(
            _set("/holidays", [{"date": "2026-10-01", "end_date": "2026-10-07"}]),
            _set("/workdays", [{"date": "2026-10-03", "hours": [{"start": "09:00", "end": "18:00"}]}]),
        ),
        "/workdays/0/date",
    ),
    ("calendar", "no working hours at all", _set("/working_hours", {"mon": []}), "/working_hours"),
    # objection library
    (
        "objection_library",
        "eleven responses",
        _set("/types/0/responses", [{"key": f"r{i}", "label": L, "text": T} for i in range(11)]),
        "/types/0/responses",
    ),
    (
        "objection_library",
        "duplicate response key",
        _append("/types/0/responses", {"key": "value", "label": L, "text": T}),
        "/types/0/responses/1/key",
    ),
    (
        "objection_library",
        "approval without deadline",
        _set("/custom_response_requires_approval", True),
        "/approval_deadline_hours",
    ),
    (
        "objection_library",
        "response without zh text",
        _set("/types/0/responses/0/text", {"en": "x"}),
        "/types/0/responses/0/text/zh",
    ),
    # commission policy
    ("commission_policy", "rate above 1", _set("/default_rate", 1.5), "/default_rate"),
    ("commission_policy", "lowercase currency", _set("/currency", "rmb"), "/currency"),
    (
        "commission_policy",
        "step with two targets",
        _set(
            "/quality_coefficient",
            {
                "required_steps": [
                    {"key": "qa", "label": L, "key_node": "technical_qa", "activity_type": "visit"}
                ],
                "penalty_per_skipped_step": 0.1,
                "floor": 0.5,
            },
        ),
        "/quality_coefficient/required_steps/0",
    ),
    (
        "commission_policy",
        "quality without floor",
        _set(
            "/quality_coefficient",
            {
                "required_steps": [{"key": "qa", "label": L, "key_node": "qa"}],
                "penalty_per_skipped_step": 0.1,
            },
        ),
        "/quality_coefficient/floor",
    ),
    (
        "commission_policy",
        "product rate without product field",
        _set("/rates", [{"key": "imaging", "product": "imaging", "rate": 0.02}]),
        "/rates/0/product",
    ),
    # scoring
    ("scoring", "hot not above warm", _set("/thresholds/hot", 5), "/thresholds/hot"),
    (
        "scoring",
        "duplicate event",
        _append("/signals", {"event": "email_open", "points": 1}),
        "/signals/1/event",
    ),
    ("scoring", "unknown event", _set("/signals/0/event", "tweet"), "/signals/0/event"),
    (
        "scoring",
        "bad leaderboard period",
        _set("/leaderboard", {"enabled": True, "period": "year"}),
        "/leaderboard/period",
    ),
    ("scoring", "points not a number", _set("/signals/0/points", "2"), "/signals/0/points"),
    # list_view (more in test_list_view_kind.py)
    ("list_view", "unknown field", _set("/columns/0/field", "nickname"), "/columns/0/field"),
    ("list_view", "no columns", _set("/columns", []), "/columns"),
    (
        "list_view",
        "operator unfit for the field",
        _set("/filters", [{"key": "s", "field": "status", "operator": "contains", "label": L}]),
        "/filters/0/operator",
    ),
]


def test_every_registered_kind_has_a_minimal_example() -> None:
    assert {k.name for k in all_kinds()} == set(MINIMAL)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_document_is_valid(kind: str) -> None:
    assert validate_document(minimal(kind)) == []
    assert validate_document(minimal(kind), expected_kind=kind) == []


@pytest.mark.parametrize(
    ("kind", "case", "mutate", "path"), BROKEN, ids=[f"{k}:{c}" for k, c, _, _ in BROKEN]
)
def test_broken_document_fails_at_pointer(kind: str, case: str, mutate: Callable, path: str) -> None:
    doc = minimal(kind)
    mutate(doc)
    errors = validate_document(doc)
    assert errors, f"{case}: expected errors"
    assert path in [e.path for e in errors], f"{case}: {[e.to_dict() for e in errors]}"
    for error in errors:
        assert error.message and error.message_zh
        assert CJK.search(error.message_zh), error
        assert error.to_dict() == {
            "path": error.path,
            "message": error.message,
            "message_zh": error.message_zh,
        }


def test_every_kind_has_broken_examples() -> None:
    assert {k for k, *_ in BROKEN} == set(MINIMAL)


def test_required_and_additional_properties_point_at_the_property() -> None:
    doc = minimal("form")
    del doc["sections"][0]["label"]
    doc["sections"][0]["fields"][0]["bogus"] = 1
    errors = {e.path: e for e in validate_document(doc)}
    assert errors["/sections/0/label"].message == "Required property 'label' is missing"
    assert errors["/sections/0/label"].message_zh == "缺少必填项“label”"
    assert errors["/sections/0/fields/0/bogus"].message == "Unknown property 'bogus' is not allowed"
    assert errors["/sections/0/fields/0/bogus"].message_zh == "不允许未知属性“bogus”"


def test_all_errors_are_returned_sorted_by_path() -> None:
    doc = minimal("form")
    fields = [{"key": f"f{i}", "type": "text", "label": L} for i in range(12)]
    for i in (11, 2, 10):
        fields[i]["type"] = "bogus"
    doc["sections"][0]["fields"] = fields
    doc["label"]["zh"] = ""
    paths = [e.path for e in validate_document(doc)]
    assert paths == [
        "/label/zh",
        "/sections/0/fields/2/type",
        "/sections/0/fields/10/type",
        "/sections/0/fields/11/type",
    ]


def test_semantic_checks_run_only_on_schema_valid_documents() -> None:
    doc = minimal("pipeline")
    doc["stages"][1]["key"] = "open"  # semantic problem
    doc["stages"][0]["probability"] = 500  # schema problem
    assert [e.path for e in validate_document(doc)] == ["/stages/0/probability"]


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        ([], "", "JSON object"),
        ("form", "", "JSON object"),
        ({"key": "abc", "schema_version": 1}, "/kind", "'kind' is missing"),
        ({"kind": "invoice", "key": "abc", "schema_version": 1}, "/kind", "Unknown kind 'invoice'"),
        ({"kind": 7, "key": "abc", "schema_version": 1}, "/kind", "type string"),
        ({"kind": "form", "key": "abc"}, "/schema_version", "'schema_version' is missing"),
        (
            {"kind": "form", "key": "abc", "schema_version": 2},
            "/schema_version",
            "Unsupported schema_version 2",
        ),
        ({"kind": "form", "key": "abc", "schema_version": 0}, "/schema_version", "positive integer"),
        ({"kind": "form", "key": "abc", "schema_version": "1"}, "/schema_version", "positive integer"),
        ({"kind": "form", "key": "abc", "schema_version": True}, "/schema_version", "positive integer"),
    ],
)
def test_envelope_errors(doc: Any, path: str, fragment: str) -> None:
    errors = validate_document(doc)
    match = [e for e in errors if e.path == path]
    assert match and fragment in match[0].message, errors
    assert CJK.search(match[0].message_zh)


@pytest.mark.parametrize("key", ["A", "a", "Lead", "1abc", "a b", "a" * 81, 42, "lead.form"])
def test_bad_key_reported_once(key: Any) -> None:
    doc = minimal("calendar")
    doc["key"] = key
    errors = validate_document(doc)
    assert [e.path for e in errors] == ["/key"]
    assert "2-80 characters" in errors[0].message and "2–80" in errors[0].message_zh


def test_expected_kind_mismatch() -> None:
    errors = validate_document(minimal("calendar"), expected_kind="form")
    assert [e.path for e in errors] == ["/kind"]
    assert "Expected a 'form' definition, got 'calendar'" in errors[0].message


def test_oversized_document_is_refused_before_schema_validation() -> None:
    doc = minimal("form")
    doc["description"] = {"en": "x" * MAX_DOCUMENT_BYTES, "zh": "长"}
    errors = validate_document(doc)
    assert len(errors) == 1 and errors[0].path == ""
    assert "too large" in errors[0].message and "过大" in errors[0].message_zh


def test_overly_deep_document_is_refused() -> None:
    doc = minimal("form")
    node: dict[str, Any] = {}
    doc["sections"][0]["fields"][0]["visible_if"] = node
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    errors = validate_document(doc)
    assert len(errors) == 1 and "nested deeper" in errors[0].message


def test_non_json_values_do_not_raise() -> None:
    doc = minimal("scoring")
    doc["signals"][0]["points"] = float("nan")
    errors = validate_document(doc)
    assert errors and errors[0].path == ""
    doc["signals"][0]["points"] = {1, 2}
    assert validate_document(doc)


def test_canonical_json_and_checksum_are_stable() -> None:
    a = {"b": 1, "a": {"z": "中文", "y": [1, 2]}}
    b = {"a": {"y": [1, 2], "z": "中文"}, "b": 1}
    assert canonical_json(a) == '{"a":{"y":[1,2],"z":"中文"},"b":1}'
    assert checksum(a) == checksum(b)
    assert re.fullmatch(r"[0-9a-f]{64}", checksum(a))
    assert checksum(a) != checksum({**a, "b": 2})


def test_get_kind_and_unknown_kind() -> None:
    assert get_kind("form").name == "form"
    assert get_kind("form").label == {"en": "Form", "zh": "表单"}
    with pytest.raises(UnknownKind):
        get_kind("invoice")
    with pytest.raises(KeyError):
        get_kind("invoice")


def test_duplicate_kind_registration_raises() -> None:
    kind = get_kind("calendar")
    with pytest.raises(DuplicateKind):
        register_kind(Kind(name="calendar", schema_version=1, label=kind.label, schema=kind.schema))


def _v2_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.salesmesh.dev/v1/test_widget.json",
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "key", "schema_version", "label", "size"],
        "properties": {
            "kind": {"const": "test_widget"},
            "key": {"$ref": "common.json#/$defs/key"},
            "schema_version": {"const": 3},
            "label": {"$ref": "common.json#/$defs/label"},
            "size": {"type": "integer"},
        },
    }


@pytest.fixture
def widget_kind() -> Any:
    def one_to_two(doc: dict[str, Any]) -> dict[str, Any]:
        doc["dimensions"] = {"width": doc.pop("width")}
        return doc

    def two_to_three(doc: dict[str, Any]) -> dict[str, Any]:
        doc["size"] = doc.pop("dimensions")["width"]
        return doc

    kind = Kind(
        name="test_widget",
        schema_version=3,
        label={"en": "Widget", "zh": "小部件"},
        schema=_v2_schema(),
        upgraders={1: one_to_two, 2: two_to_three},
    )
    register_kind(kind)
    yield kind
    kinds_module.unregister_kind("test_widget")


def test_plugin_kind_validates_and_upgrades(widget_kind: Kind) -> None:
    old = {"kind": "test_widget", "key": "w1", "schema_version": 1, "label": L, "width": 5}
    errors = validate_document(old)
    assert [e.path for e in errors] == ["/schema_version"] and "outdated" in errors[0].message
    new = upgrade_document(old)
    assert new == {"kind": "test_widget", "key": "w1", "schema_version": 3, "label": L, "size": 5}
    assert old["width"] == 5 and old["schema_version"] == 1  # the input is not modified
    assert validate_document(new) == []
    assert upgrade_document(new) == new


def test_upgrade_refuses_newer_and_unknown_versions(widget_kind: Kind) -> None:
    with pytest.raises(DocumentInvalid) as newer:
        upgrade_document({"kind": "test_widget", "key": "w1", "schema_version": 4})
    assert newer.value.errors[0].path == "/schema_version"
    assert "Unsupported" in newer.value.errors[0].message and CJK.search(newer.value.errors[0].message_zh)
    with pytest.raises(DocumentInvalid) as unknown:
        upgrade_document({"kind": "invoice", "key": "w1", "schema_version": 1})
    assert unknown.value.errors[0].path == "/kind"
    with pytest.raises(DocumentInvalid):
        upgrade_document({"kind": "test_widget", "key": "w1", "schema_version": "1"})


def test_upgrade_without_a_path_is_refused() -> None:
    kind = Kind(
        name="test_gap", schema_version=2, label={"en": "Gap", "zh": "缺口"}, schema={"type": "object"}
    )
    register_kind(kind)
    try:
        with pytest.raises(DocumentInvalid) as exc:
            upgrade_document({"kind": "test_gap", "key": "g1", "schema_version": 1})
        assert "No upgrade" in exc.value.errors[0].message
    finally:
        kinds_module.unregister_kind("test_gap")


def test_kind_rejects_bad_definitions() -> None:
    with pytest.raises(ValueError, match="upgraders"):
        Kind(name="x_bad", schema_version=1, label=L, schema={}, upgraders={1: dict})
    with pytest.raises(ValueError, match="label"):
        Kind(name="x_bad", schema_version=1, label={"en": "x"}, schema={})
    with pytest.raises(Exception, match="is not valid"):
        Kind(name="x_bad", schema_version=1, label=L, schema={"type": "nonsense"})


def test_validators_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    roots = {id(k.validator.schema) for k in all_kinds()}
    validators = {k.name: k.validator for k in all_kinds()}
    built_for_root: list[int] = []
    original = Draft202012Validator.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        schema = kwargs.get("schema", args[0] if args else None)
        if id(schema) in roots:
            built_for_root.append(id(schema))
        original(self, *args, **kwargs)

    def no_compiling(_schema: Any) -> Any:
        raise AssertionError("validate_document compiled a schema")

    monkeypatch.setattr(Draft202012Validator, "__init__", counting_init)
    monkeypatch.setattr(kinds_module, "compile_schema", no_compiling)
    for kind in MINIMAL:
        assert validate_document(minimal(kind)) == []
        broken = minimal(kind)
        broken["label"] = {"en": ""}
        assert validate_document(broken)
    assert built_for_root == []
    assert {k.name: k.validator for k in all_kinds()} == validators
    Draft202012Validator(all_kinds()[0].validator.schema)  # the counter does see root schemas
    assert len(built_for_root) == 1


def test_document_references() -> None:
    doc = minimal("routing")
    doc["rules"][0].update(strategy="pool", pool="open-pool")
    doc["first_response_sla"] = {"minutes": 30, "on_breach": "escalate", "calendar": "office"}
    assert document_references(doc) == [
        ("/form", "form", "lead-form"),
        ("/rules/0/pool", "pool", "open-pool"),
        ("/first_response_sla/calendar", "calendar", "office"),
    ]
    pipeline = minimal("pipeline")
    pipeline["stages"][0]["action_packs"] = ["demo-pack"]
    pipeline["calendar"] = "office"
    assert document_references(pipeline) == [
        ("/calendar", "calendar", "office"),
        ("/stages/0/action_packs/0", "action_pack", "demo-pack"),
    ]
    assert document_references(minimal("scoring")) == []
    assert document_references({"kind": "invoice"}) == []


MANIFEST: dict[str, Any] = {
    "kind": "pack",
    "schema_version": 1,
    "key": "demo-pack",
    "name": {"en": "Demo", "zh": "演示"},
    "version": "1.2.0",
    "requires": {"salesmesh": ">=0.1", "packs": {"base-pack": ">=1.0, <2"}},
    "description": {"en": "A demo.", "zh": "演示用。"},
    "definitions": ["definitions/form.json", "pipeline.json"],
    "sample_data": "sample_data/",
}


def test_valid_manifest() -> None:
    assert validate_manifest(copy.deepcopy(MANIFEST)) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"version": "1.2"}, "/version"),
        ({"version": "v1.2.0"}, "/version"),
        ({"requires": {}}, "/requires/salesmesh"),
        ({"requires": {"salesmesh": "latest"}}, "/requires/salesmesh"),
        ({"definitions": ["../outside.json"]}, "/definitions/0"),
        ({"definitions": ["/etc/passwd.json"]}, "/definitions/0"),
        ({"definitions": ["a/./b.json"]}, "/definitions/0"),
        ({"definitions": ["form.yaml"]}, "/definitions/0"),
        ({"definitions": ["a.json", "a.json"]}, "/definitions/1"),
        ({"definitions": []}, "/definitions"),
        ({"sample_data": "../data"}, "/sample_data"),
        ({"kind": "form"}, "/kind"),
        ({"name": {"en": "Demo"}}, "/name/zh"),
        ({"extra": True}, "/extra"),
        ({"checksum": "abc"}, "/checksum"),
    ],
)
def test_broken_manifest(change: dict[str, Any], path: str) -> None:
    doc = {**copy.deepcopy(MANIFEST), **change}
    errors = validate_manifest(doc)
    assert path in [e.path for e in errors], errors
    assert all(CJK.search(e.message_zh) for e in errors)


def test_manifest_must_be_an_object() -> None:
    assert [e.path for e in validate_manifest(["pack"])] == [""]


def test_ops_guide_examples_are_valid() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "ops-guide.md"
    examples = [
        json.loads(b) for b in re.findall(r"```json\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    ]
    documents = [d for d in examples if isinstance(d, dict) and "kind" in d]
    assert {d["kind"] for d in documents} == set(MINIMAL) | {"pack"}
    for doc in documents:
        errors = validate_manifest(doc) if doc["kind"] == "pack" else validate_document(doc)
        assert errors == [], (doc["kind"], [e.to_dict() for e in errors])


def test_document_invalid_summarises_errors() -> None:
    exc = DocumentInvalid([ValidationError("/a", "bad", "坏"), ValidationError("/b", "worse", "更坏")])
    assert str(exc) == "/a: bad (+1 more)"
    assert len(exc.errors) == 2


_JUNK: list[Any] = [
    None,
    True,
    0,
    -1,
    2.5,
    10**9,
    "",
    "x",
    "Bad Key",
    "09:00",
    "2026-02-30",
    [],
    ["a"],
    [1, "a"],
    {},
    {"en": "x"},
    {"var": "ghost"},
]


def _mutations(doc: Any, rng: random.Random, rounds: int) -> Any:
    """Replace `rounds` random nodes of a copy of `doc` with junk values."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rounds):
        parents: list[tuple[Any, Any]] = []
        stack = [doc]
        while stack:
            node = stack.pop()
            items = (
                node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            )
            for key, child in items:
                parents.append((node, key))
                stack.append(child)
        if not parents:
            break
        node, key = rng.choice(parents)
        node[key] = copy.deepcopy(rng.choice(_JUNK))
    return doc


def test_mutated_documents_never_raise_and_the_fast_check_agrees_with_jsonschema() -> None:
    rng = random.Random(20261101)
    shipped = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((Path(__file__).resolve().parents[2] / "packs").glob("*/definitions/**/*.json"))
    ]
    seeds = [minimal(k) for k in MINIMAL] + shipped
    decided = 0
    for seed in seeds:
        kind = get_kind(seed["kind"])
        for rounds in (1, 1, 1, 1, 2, 2, 3, 5):
            doc = _mutations(seed, rng, rounds)
            errors = validate_document(doc)
            assert all(isinstance(e, ValidationError) and e.message and e.message_zh for e in errors)
            try:
                fast = kind.fast_check(doc)
            except Uncertain:
                continue
            decided += 1
            assert fast == kind.validator.is_valid(doc), (seed["key"], doc)
    assert decided > 200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schema_version": 1.0}, True),  # JSON Schema: 1.0 is the integer 1
        ({"schema_version": True}, False),
        ({"label": {"en": "a", "zh": "b", "fr": "c"}}, False),
        ({"working_hours": {"mon": [{"start": "09:00", "end": "24:00"}]}}, True),
        ({"working_hours": {"mon": [{"start": "9:00", "end": "18:00"}]}}, False),
        ({"holidays": [{"date": "2026-02-29"}]}, False),
        ({"holidays": [{"date": "2028-02-29"}]}, True),
        ({"timezone": ""}, False),
    ],
)
def test_fast_check_matches_jsonschema_on_edge_cases(change: dict[str, Any], expected: bool) -> None:
    doc = {**minimal("calendar"), **change}
    kind = get_kind("calendar")
    assert kind.validator.is_valid(doc) is expected
    assert kind.fast_check(doc) is expected


def test_fast_check_defers_when_it_cannot_decide() -> None:
    doc = minimal("scoring")
    doc["signals"][0]["points"] = Decimal("2")
    with pytest.raises(Uncertain):
        get_kind("scoring").fast_check(doc)
    assert compile_check({"type": "object", "dependentRequired": {"a": ["b"]}}, FORMAT_CHECKER) is None
    assert compile_check({"$ref": "#/$defs/x"}, FORMAT_CHECKER) is None


def test_schemas_are_inlined_for_the_validator() -> None:
    for kind in all_kinds():
        compiled = {k: v for k, v in kind.validator.schema.items() if k != "$defs"}
        assert "$ref" not in json.dumps(compiled), kind.name
        assert kind.fast_check is not None, kind.name
    assert "$ref" in json.dumps(get_kind("form").schema)  # the registered schema itself is untouched
