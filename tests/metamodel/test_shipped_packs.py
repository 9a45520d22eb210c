"""The two shipped template packs: every listed definition validates, every label is bilingual, references
resolve inside the pack, and the content says what PRODUCT.md asks for (the six medical stages, eleven key
nodes, key-account and inclusive channels, five responses per objection, the quality coefficient, the
SaaS pool's 72-hour cooldown and the engagement thermometer).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from salesmesh.metamodel.semantics import condition_vars, iter_conditions
from salesmesh.metamodel.validation import document_references, validate_document, validate_manifest

PACKS = Path(__file__).resolve().parents[2] / "packs"
PACK_NAMES = ("medical-device-direct", "saas-remote-team")
CJK = re.compile(r"[\u4e00-\u9fff]")


def load_pack(name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Return (manifest, documents by relative path)."""
    root = PACKS / name
    manifest = json.loads((root / "pack.json").read_text(encoding="utf-8"))
    docs = {rel: json.loads((root / rel).read_text(encoding="utf-8")) for rel in manifest["definitions"]}
    return manifest, docs


def by_kind(docs: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs.values() if d["kind"] == kind]


def one(docs: dict[str, dict[str, Any]], kind: str, key: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if key is None or d["key"] == key]
    assert len(found) == 1, (kind, key, [d["key"] for d in found])
    return found[0]


def form_fields(form: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for s in form["sections"] for f in s["fields"]}


def evaluate(rule: Any, data: dict[str, Any]) -> Any:
    """Evaluate the small JsonLogic subset the shipped packs use (the real compiler comes later)."""
    if not isinstance(rule, dict):
        return rule
    ((op, args),) = rule.items()
    if op == "var":
        return data.get(args)
    args = args if isinstance(args, list) else [args]
    values = [evaluate(a, data) for a in args]
    ops = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">=": lambda a, b: a is not None and a >= b,
        "<": lambda a, b: a is not None and a < b,
        "in": lambda a, b: a in b,
        "!": lambda a: not a,
        "!!": lambda a: bool(a),
        "and": lambda *v: all(v),
        "or": lambda *v: any(v),
    }
    return ops[op](*values)


def bilingual_problems(node: Any, path: str = "") -> list[str]:
    """List the {"en","zh"} objects with a missing or empty language, or a zh text without Chinese."""
    problems: list[str] = []
    if isinstance(node, dict):
        if "en" in node or "zh" in node:
            en, zh = node.get("en"), node.get("zh")
            if not (isinstance(en, str) and en.strip() and isinstance(zh, str) and zh.strip()):
                problems.append(path)
            elif not CJK.search(zh):
                problems.append(path + " (zh has no Chinese)")
        for key, value in node.items():
            problems.extend(bilingual_problems(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems.extend(bilingual_problems(value, f"{path}/{i}"))
    return problems


@pytest.mark.parametrize("name", PACK_NAMES)
def test_manifest_is_valid_and_lists_every_json_file(name: str) -> None:
    manifest, docs = load_pack(name)
    assert validate_manifest(manifest) == []
    assert manifest["key"] == name
    on_disk = {p.relative_to(PACKS / name).as_posix() for p in (PACKS / name).rglob("*.json")}
    assert on_disk == {"pack.json", *manifest["definitions"]}
    assert bilingual_problems(manifest) == []


@pytest.mark.parametrize("name", PACK_NAMES)
def test_every_definition_validates(name: str) -> None:
    _, docs = load_pack(name)
    for rel, doc in docs.items():
        assert validate_document(doc) == [], (rel, [e.to_dict() for e in validate_document(doc)])


@pytest.mark.parametrize("name", PACK_NAMES)
def test_every_label_and_text_is_bilingual(name: str) -> None:
    _, docs = load_pack(name)
    for rel, doc in docs.items():
        assert "description" in doc, rel
        assert bilingual_problems(doc) == [], rel


@pytest.mark.parametrize("name", PACK_NAMES)
def test_keys_are_unique_and_references_resolve_inside_the_pack(name: str) -> None:
    _, docs = load_pack(name)
    keys = [(d["kind"], d["key"]) for d in docs.values()]
    assert len(keys) == len(set(keys))
    for doc in docs.values():
        for pointer, kind, key in document_references(doc):
            assert (kind, key) in keys, (doc["key"], pointer, kind, key)


def test_packs_do_not_collide_when_both_are_installed() -> None:
    keys = [(d["kind"], d["key"]) for name in PACK_NAMES for d in load_pack(name)[1].values()]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("name", PACK_NAMES)
def test_conditions_name_fields_that_exist(name: str) -> None:
    """Routing `when` reads lead fields, candidate filters read rep attributes, stage and step conditions read
    deal fields (or, without a deal form, lead fields)."""
    _, docs = load_pack(name)
    lead = form_fields(next(f for f in by_kind(docs, "form") if f["record_type"] == "lead"))
    deal_forms = [f for f in by_kind(docs, "form") if f["record_type"] == "deal"]
    deal = form_fields(deal_forms[0]) if deal_forms else lead
    attrs = {a["key"] for a in one(docs, "rep_attributes")["attributes"]}
    for doc in docs.values():
        for pointer, condition in iter_conditions(doc):
            names = condition_vars(condition)
            if doc["kind"] == "routing":
                allowed = attrs if "/candidates/" in pointer or "/weights/" in pointer else set(lead)
            elif doc["kind"] == "form":
                allowed = set(form_fields(doc))
            else:
                allowed = set(deal)
            assert names <= allowed, (doc["key"], pointer, names - allowed)


def test_medical_pipeline_has_the_six_stages_in_order() -> None:
    _, docs = load_pack("medical-device-direct")
    pipeline = one(docs, "pipeline", "md-sales")
    assert pipeline["mode"] == "locked"
    path = [s for s in pipeline["stages"] if s["outcome"] != "lost"]
    assert [s["label"]["zh"] for s in path] == [
        "初步接触",
        "需求确认",
        "方案演示",
        "试用申请",
        "合同谈判",
        "签单",
    ]
    assert [s["key"] for s in path] == [
        "initial_contact",
        "needs_confirmed",
        "solution_demo",
        "trial_request",
        "contract_negotiation",
        "signed",
    ]
    assert [s["outcome"] for s in path] == ["open"] * 5 + ["won"]
    assert [s["probability"] for s in path] == sorted(s["probability"] for s in path)
    assert [s["key"] for s in pipeline["stages"] if s["outcome"] == "lost"] == ["lost"]
    assert pipeline["lights"]["yellow_after_days"] == 1 and pipeline["lights"]["red_after_days"] == 3


def test_medical_pipeline_key_nodes_transitions_and_bindings() -> None:
    _, docs = load_pack("medical-device-direct")
    pipeline = one(docs, "pipeline", "md-sales")
    nodes = [n["key"] for s in pipeline["stages"] for n in s.get("key_nodes", [])]
    assert len(nodes) == 11
    assert {"technical_qa", "trial_application", "budget_approval"} <= set(nodes)
    pairs = {(t["from"], t["to"]): t.get("requires_approval", False) for t in pipeline["transitions"]}
    keys = [s["key"] for s in pipeline["stages"] if s["outcome"] != "lost"]
    for a, b in zip(keys, keys[1:], strict=False):
        assert pairs[(a, b)] is False  # the normal path needs no approval
    skips = [(a, b) for (a, b) in pairs if a in keys and b in keys and keys.index(b) > keys.index(a) + 1]
    assert skips and all(pairs[s] for s in skips)  # skipping a stage needs approval
    deal = form_fields(one(docs, "form", "md-deal"))
    for stage in pipeline["stages"]:
        for field in stage.get("exit_criteria", {}).get("required_fields", []):
            assert field in deal, (stage["key"], field)
    assert one(docs, "pipeline")["stages"][2]["action_packs"] == ["md-solution-demo"]


def test_medical_solution_demo_pack_reminds_at_48h_and_surveys_at_72h() -> None:
    _, docs = load_pack("medical-device-direct")
    steps = {s["key"]: s for s in one(docs, "action_pack", "md-solution-demo")["steps"]}
    remind, survey = steps["send_case_studies"], steps["satisfaction_survey"]
    assert remind["offset"] == {"after_hours": 48, "relative_to": "stage_entry"}
    assert remind["action"]["kind"] == "remind" and remind["action"]["params"]["to"] == "owner"
    assert survey["offset"] == {"after_hours": 72, "relative_to": "stage_entry"}
    assert survey["action"]["kind"] == "survey_link" and survey["action"]["params"]["to"] == "primary_contact"
    deal = form_fields(one(docs, "form", "md-deal"))
    for pack in by_kind(docs, "action_pack"):
        for step in pack["steps"]:
            if step["offset"]["relative_to"] == "date_field":
                assert deal[step["offset"]["field"]]["type"] in ("date", "datetime")
            if step["action"]["kind"] == "set_field":
                field = deal[step["action"]["params"]["field"]]
                assert step["action"]["params"]["value"] in {o["value"] for o in field["options"]}


def test_medical_routing_sends_tertiary_a_to_key_account_and_township_to_inclusive() -> None:
    _, docs = load_pack("medical-device-direct")
    routing = one(docs, "routing", "md-lead-routing")
    lead_form = form_fields(one(docs, "form", "md-lead"))
    grades = {o["value"]: o["label"]["zh"] for o in lead_form["institution_grade"]["options"]}
    assert "三甲" in grades["tertiary_a"]
    types = {o["value"]: o["label"]["zh"] for o in lead_form["institution_type"]["options"]}
    assert types["township_health_center"] == "乡镇卫生院"

    def route(lead: dict[str, Any]) -> dict[str, Any]:
        return next(r for r in routing["rules"] if evaluate(r["when"], lead))

    tertiary = route({"institution_grade": "tertiary_a", "institution_type": "hospital"})
    assert tertiary["channel"] == "key_account"
    filt = tertiary["candidates"]["filter"]
    assert evaluate(filt, {"years_medical": 5}) and evaluate(filt, {"years_medical": 12})
    assert not evaluate(filt, {"years_medical": 4})
    township = route({"institution_grade": "primary", "institution_type": "township_health_center"})
    assert township["channel"] == "inclusive"
    assert evaluate(township["candidates"]["filter"], {"seniority": "junior", "years_medical": 1})
    assert not evaluate(township["candidates"]["filter"], {"seniority": "principal", "years_medical": 9})
    assert (
        route({"institution_grade": "secondary_a", "institution_type": "hospital"})["channel"] == "standard"
    )
    assert routing["fallback"]["channel"] == "standard"
    assert routing["first_response_sla"]["calendar"] == "md-workweek"
    attrs = {a["key"]: a for a in one(docs, "rep_attributes")["attributes"]}
    assert {"years_medical", "skills", "seniority", "regions", "key_account_certified"} <= set(attrs)
    assert [o["value"] for o in attrs["regions"]["options"]] == [
        o["value"] for o in lead_form["region"]["options"]
    ]


def test_medical_trade_fair_leads_wait_in_the_pool() -> None:
    _, docs = load_pack("medical-device-direct")
    routing = one(docs, "routing", "md-lead-routing")
    pool = one(docs, "pool", "md-exhibition-pool")
    assert pool["form"] == routing["form"] and pool["who_may_claim"]["roles"] == ["rep"]
    assert pool["cooldown"]["calendar"] == one(docs, "calendar")["key"]

    def route(lead: dict[str, Any]) -> dict[str, Any] | None:
        return next((r for r in routing["rules"] if evaluate(r["when"], lead)), None)

    fair_clinic = {
        "institution_grade": "secondary",
        "institution_type": "private_clinic",
        "source_channel": "exhibition",
    }
    pooled = route(fair_clinic)
    assert pooled is not None and pooled["strategy"] == "pool" and pooled["pool"] == pool["key"]
    assert pooled["channel"] in {c["key"] for c in routing["channels"]}
    assert route({**fair_clinic, "source_channel": "website"}) is None  # other clinics: the fallback
    fair_hospital = {
        "institution_grade": "tertiary_a",
        "institution_type": "hospital",
        "source_channel": "exhibition",
    }
    assert route(fair_hospital)["channel"] == "key_account"  # type: ignore[index]


def test_medical_objections_have_five_standard_responses_per_type() -> None:
    _, docs = load_pack("medical-device-direct")
    library = one(docs, "objection_library", "md-objections")
    assert len(library["types"]) >= 5
    assert {"price", "competitor", "budget", "timing", "clinical_evidence"} <= {
        t["key"] for t in library["types"]
    }
    for otype in library["types"]:
        assert len(otype["responses"]) == 5, otype["key"]
        for response in otype["responses"]:
            assert len(response["text"]["en"]) > 60 and len(response["text"]["zh"]) > 25
    assert library["custom_response_requires_approval"] is True
    assert library["approver"] == "team_lead" and library["approval_deadline_hours"] > 0


def test_medical_commission_quality_coefficient() -> None:
    _, docs = load_pack("medical-device-direct")
    policy = one(docs, "commission_policy", "md-commission")
    quality = policy["quality_coefficient"]
    assert 0 < quality["penalty_per_skipped_step"] < 1 and 0 < quality["floor"] < 1
    pipeline = one(docs, "pipeline", policy["pipeline"])
    nodes = {n["key"] for s in pipeline["stages"] for n in s.get("key_nodes", [])}
    for step in quality["required_steps"]:
        if "key_node" in step:
            assert step["key_node"] in nodes, step
    assert policy["payable_on_stage"] in {s["key"] for s in pipeline["stages"] if s["outcome"] == "won"}
    deal = form_fields(one(docs, "form", "md-deal"))
    products = {o["value"] for o in deal[policy["product_field"]]["options"]}
    assert {r["product"] for r in policy["rates"]} <= products
    assert deal[policy["amount_field"]]["type"] == "money"


def test_medical_calendar() -> None:
    _, docs = load_pack("medical-device-direct")
    calendar = one(docs, "calendar", "md-workweek")
    assert calendar["timezone"] == "Asia/Shanghai"
    for day in ("mon", "tue", "wed", "thu", "fri"):
        assert calendar["working_hours"][day] == [{"start": "09:00", "end": "18:00"}]
    assert calendar["working_hours"]["sat"] == [] and calendar["working_hours"]["sun"] == []
    starts = {h["date"] for h in calendar["holidays"]}
    assert {"2026-10-01", "2026-02-15", "2027-01-01"} <= starts


def test_saas_pool_cooldown_is_72_hours() -> None:
    _, docs = load_pack("saas-remote-team")
    pool = one(docs, "pool", "saas-open-pool")
    assert pool["cooldown"]["no_followup_hours"] == 72
    assert pool["cooldown"]["unavailable_hours"] > 0
    assert set(pool["cooldown"]["qualifying_activities"]) >= {"call", "email", "meeting"}
    assert "rep" in pool["who_may_claim"]["roles"]


def test_saas_routing_pipeline_and_scoring() -> None:
    _, docs = load_pack("saas-remote-team")
    routing = one(docs, "routing", "saas-routing")
    pooled = [r for r in routing["rules"] if r["strategy"] == "pool"]
    assert pooled and all(r["pool"] == "saas-open-pool" for r in pooled)
    assert routing["fallback"]["strategy"] == "pool"
    assert one(docs, "pipeline")["mode"] == "free" and one(docs, "pipeline")["allow_any"] is True
    scoring = one(docs, "scoring", "saas-heat")
    points = {s["event"]: s["points"] for s in scoring["signals"]}
    assert points["email_open"] > 0 and points["video_view"] > 0 and points["trial_login"] > 0
    assert scoring["leaderboard"]["enabled"] and scoring["leaderboard"]["period"] == "month"
    assert scoring["leaderboard"]["title"]["zh"] == "月度最热销售"
