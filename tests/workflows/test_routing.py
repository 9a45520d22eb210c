"""The routing engine: the shipped packs' rules, what their conditions read (the lead's own facts, no
customer record), every strategy, every exclusion with its reason, the fallback, the recorded decision
(pin, explanation, activity, audit) and the statement-count gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from salesmesh.metamodel.versions import create_definition_draft, get_published, publish_version
from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import UTCDateTime
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing import (
    RoutingDecision,
    RoutingUnavailable,
    current_plan,
    explain,
    lead_facts,
    no_cooldown,
    route_lead,
    set_cooldown_clause,
    set_cooldown_source,
)
from salesmesh.workflows.routing_models import RoundRobinCursor
from tests.workflows.routing_helpers import (
    COUNTY,
    MD_PACK,
    SAAS_PACK,
    TERTIARY,
    TOWNSHIP,
    add_lead,
    add_rep,
    add_team,
    counting,
    import_pack,
    publish,
    routing_doc,
    rule,
)

# 2026-01-05 is a Monday; 09:00 UTC is 17:00 in Beijing (inside the md-workweek hours).
MONDAY_17_BEIJING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> dict[str, Any]:
    """The medical-device pack, imported and published, with a team of six reps."""
    import_pack(session, clock, MD_PACK)
    east = add_team(session, clock, "east")
    reps = {
        "wang": add_rep(session, clock, "Wang Senior", team=east, years_medical=8, seniority="senior"),
        "li": add_rep(session, clock, "Li Principal", team=east, years_medical=12, seniority="principal"),
        "zhao": add_rep(session, clock, "Zhao Junior", team=east, years_medical=1, seniority="junior"),
        "sun": add_rep(session, clock, "Sun Mid", team=east, years_medical=4, seniority="intermediate"),
        "zhou": add_rep(session, clock, "Zhou Senior", team=east, years_medical=3, seniority="senior"),
    }
    add_rep(session, clock, "Ops Person", role="ops", years_medical=30, seniority="principal")
    return {"team": east, **reps}


def _route(session: Session, clock: FrozenClock, data: dict[str, Any], **lead: Any) -> RoutingDecision:
    return route_lead(session, add_lead(session, clock, data, **lead), clock=clock)


# --- the shipped packs ---------------------------------------------------------------------------------


def test_tertiary_hospital_goes_to_key_account_rep_with_five_years(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    for _ in range(4):
        decision = _route(session, clock, TERTIARY)
        owner = decision.lead.owner
        assert owner is not None and owner.attributes["years_medical"] >= 5
        assert owner.id in (md["wang"].id, md["li"].id)
        assert (decision.channel, decision.rule_key, decision.strategy) == (
            "key_account",
            "tertiary_a_key_account",
            "least_loaded",
        )
        assert decision.lead.team_id == md["team"].id
        assert decision.lead.assigned_at == clock.now()
    published = get_published(session, "routing", "md-lead-routing")
    assert decision.routing_version_id == published.id  # type: ignore[union-attr]
    counts = session.execute(select(Lead.owner_id).where(Lead.owner_id.is_not(None))).scalars().all()
    assert sorted(counts.count(uid) for uid in (md["wang"].id, md["li"].id)) == [
        2,
        2,
    ]  # least loaded alternates
    attempt = decision.explanation["attempts"][0]
    assert set(attempt["not_matching"]["filter"]) == {md["zhao"].id, md["sun"].id, md["zhou"].id}


def test_township_clinic_goes_to_the_inclusive_channel(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    owners = [_route(session, clock, TOWNSHIP).owner_id for _ in range(4)]
    decision = session.scalars(select(RoutingDecision).order_by(RoutingDecision.id.desc())).first()
    assert decision is not None and decision.channel == "inclusive"
    assert decision.rule_key == "primary_care_inclusive" and decision.strategy == "round_robin"
    # junior/intermediate or under 3 years: Zhao and Sun, taking turns
    assert owners == [md["zhao"].id, md["sun"].id, md["zhao"].id, md["sun"].id]


def test_rules_read_the_institution_as_the_lead_describes_it_not_a_customer_record(
    session: Session, clock: FrozenClock, md: dict[str, Any], make_customer: Any
) -> None:
    # The customer record calls Peking Union tertiary A; this lead's form says secondary: the lead decides.
    make_customer(name="Peking Union", grade="tertiary_a", institution_type="hospital")
    lead = add_lead(
        session, clock, {**TERTIARY, "institution_grade": "secondary", "source_channel": "exhibition"}
    )
    assert lead_facts(lead) == {  # exactly what `when` reads: the form data over the standard columns
        "institution_name": "Peking Union",
        "institution_grade": "secondary",
        "institution_type": "hospital",
        "source_channel": "exhibition",  # the form field wins over the intake channel ("web_form")
        "received_at": clock.now().isoformat(),
    }
    assert route_lead(session, lead, clock=clock).rule_key == "other_hospitals_standard"
    same_place = _route(session, clock, {**TERTIARY, "institution_grade": "tertiary_a"})
    assert same_place.rule_key == "tertiary_a_key_account" and same_place.channel == "key_account"


def test_saas_pack_sends_small_companies_to_the_pool_and_large_ones_to_a_senior_ae(
    session: Session, clock: FrozenClock
) -> None:
    import_pack(session, clock, SAAS_PACK)
    senior = add_rep(session, clock, "Senior AE", seniority="senior_ae")
    add_rep(session, clock, "SDR", seniority="sdr")
    small = _route(session, clock, {"company_name": "Tiny", "company_size": "1_20"})
    assert (small.outcome, small.pool_key, small.channel, small.owner_id) == (
        "pooled",
        "saas-open-pool",
        "open_pool",
        None,
    )
    assert small.lead.status == "pooled" and small.lead.owner_id is None
    big = _route(session, clock, {"company_name": "Huge", "company_size": "500_plus"})
    assert (big.outcome, big.owner_id, big.channel) == ("assigned", senior.id, "enterprise")


# --- strategies ------------------------------------------------------------------------------------------


def test_round_robin_takes_turns_in_order_and_records_the_cursor(
    session: Session, clock: FrozenClock
) -> None:
    publish(session, clock, routing_doc([rule("all", True)]))
    reps = [add_rep(session, clock, f"Rep {i}") for i in range(4)]
    decisions = [_route(session, clock, {"x": i}) for i in range(9)]
    assert [d.owner_id for d in decisions] == [reps[i % 4].id for i in range(9)]
    states = [d.explanation["state"] for d in decisions]
    assert [s["turn"] for s in states] == list(range(1, 10))
    assert (
        states[0]["before"] is None and states[1]["before"] == reps[0].id and states[1]["after"] == reps[1].id
    )
    cursor = session.scalars(select(RoundRobinCursor)).one()
    assert cursor.turns == 9 and cursor.positions == {"all": reps[0].id}


def test_least_loaded_counts_open_leads(session: Session, clock: FrozenClock) -> None:
    publish(session, clock, routing_doc([rule("all", True, "least_loaded")]))
    busy, idle = add_rep(session, clock, "Busy"), add_rep(session, clock, "Idle")
    for _ in range(3):
        add_lead(session, clock, {}, owner_id=busy.id, status="contacted")
    add_lead(session, clock, {}, owner_id=idle.id, status="converted")  # closed leads do not count
    owners = [_route(session, clock, {}).owner_id for _ in range(4)]
    assert owners[:3] == [idle.id] * 3  # idle catches up to 3 open leads
    assert owners[3] == busy.id  # then they tie and the rotation decides


def test_weighted_gives_senior_reps_twice_the_leads(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    senior = add_rep(session, clock, "Senior", years_medical=3, seniority="senior")
    middle = add_rep(session, clock, "Middle", years_medical=2, seniority="intermediate")
    owners = [_route(session, clock, COUNTY).owner_id for _ in range(6)]
    assert owners.count(senior.id) == 4 and owners.count(middle.id) == 2
    decision = session.scalars(select(RoutingDecision).order_by(RoutingDecision.id.desc())).first()
    candidates = explain(decision)["attempts"][0]["candidates"]  # type: ignore[arg-type]
    weights = {c["user_id"]: c["weight"] for c in candidates}
    assert weights == {senior.id: 2.0, middle.id: 1.0}


def test_weight_zero_excludes(session: Session, clock: FrozenClock) -> None:
    doc = routing_doc(
        [rule("all", True, "weighted", weights=[{"filter": {"==": [{"var": "trainee"}, True]}, "weight": 0}])]
    )
    publish(session, clock, doc)
    trainee, regular = add_rep(session, clock, "Trainee", trainee=True), add_rep(session, clock, "Regular")
    decision = _route(session, clock, {})
    assert decision.owner_id == regular.id
    excluded = decision.explanation["attempts"][0]["excluded"]
    assert excluded == [{"user_id": trainee.id, "name": "Trainee", "reasons": ["zero_weight"]}]


# --- exclusions and fallback -------------------------------------------------------------------------------


def test_away_deactivated_and_cooldown_are_skipped_with_reasons(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    md["wang"].unavailable_until = clock.now() + timedelta(hours=2)
    md["li"].active = False
    extra = add_rep(session, clock, "Qian Veteran", years_medical=20, seniority="principal")
    session.flush()
    decision = route_lead(
        session, add_lead(session, clock, TERTIARY), clock=clock, cooldown=lambda _s, _ids, _now: {extra.id}
    )
    first = decision.explanation["attempts"][0]
    reasons = {e["user_id"]: e["reasons"] for e in first["excluded"]}
    assert reasons == {md["wang"].id: ["away"], md["li"].id: ["deactivated"], extra.id: ["claim_cooldown"]}
    assert first["candidates"]["user_id"] == [] and first["chosen"] is None
    away = next(e for e in first["excluded"] if e["user_id"] == md["wang"].id)
    assert away["away_until"] == (clock.now() + timedelta(hours=2)).isoformat()
    # The key-account rule found nobody: the fallback (least loaded, all reps) decided and ops are notified.
    assert decision.used_fallback and decision.rule_key is None and decision.channel == "standard"
    assert decision.explanation["rule"] == "tertiary_a_key_account"
    assert explain(decision)["rules"][-1] == {
        "rule": "tertiary_a_key_account",
        "result": "matched",
        "candidates": 0,
    }
    assert decision.explanation["notify"] == ["ops"]
    assert decision.owner_id in (md["zhao"].id, md["sun"].id, md["zhou"].id)
    # Once Wang is back he takes tertiary leads again.
    clock.advance(hours=3)
    assert _route(session, clock, TERTIARY).owner_id == md["wang"].id


def test_excluded_reps_are_left_out_with_a_reason(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    lead = add_lead(session, clock, TOWNSHIP)
    # Round robin would start with Zhao; a reassignment away from Zhao leaves Zhao out.
    decision = route_lead(session, lead, clock=clock, exclude={md["zhao"].id})
    assert decision.owner_id == md["sun"].id == lead.owner_id
    assert decision.explanation["attempts"][0]["excluded"] == [
        {"user_id": md["zhao"].id, "name": "Zhao Junior", "reasons": ["excluded"]}
    ]


def test_installed_cooldown_source_is_used(session: Session, clock: FrozenClock, md: dict[str, Any]) -> None:
    previous = set_cooldown_source(lambda _s, _ids, _now: {md["zhao"].id})
    try:
        owners = {_route(session, clock, TOWNSHIP).owner_id for _ in range(3)}
    finally:
        set_cooldown_source(previous)
    assert owners == {md["sun"].id}


def test_installed_cooldown_clause_is_read_inside_the_snapshot(
    runtime: Runtime, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    until = clock.now() + timedelta(hours=1)
    zhao = md["zhao"].id
    # A condition on users.id, as pools installs it: no statement of its own.
    previous_clause = set_cooldown_clause(
        lambda now: (User.__table__.c.id == zhao) & (now < literal(until, UTCDateTime()))
    )
    previous_source = set_cooldown_source(no_cooldown)
    try:
        assert _route(session, clock, COUNTY).outcome == "assigned"  # compiles the plan
        lead = add_lead(session, clock, TOWNSHIP)
        with counting(runtime.db.engine) as statements:
            decision = route_lead(session, lead, clock=clock)
        excluded = decision.explanation["attempts"][0]["excluded"]
        assert {"user_id": zhao, "name": "Zhao Junior", "reasons": ["claim_cooldown"]} in excluded
        assert decision.owner_id == md["sun"].id
        # plan, snapshot (with the cooldown column), turn, notification, lead, decision, audit
        assert len(statements) <= 7, "\n".join(" ".join(s.split())[:90] for s in statements)
        clock.advance(hours=2)  # the cooldown is over: Zhao is back in the rotation
        assert _route(session, clock, TOWNSHIP).owner_id == zhao
    finally:
        set_cooldown_clause(previous_clause)
        set_cooldown_source(previous_source)


def test_rule_daily_cap_hands_over_to_the_fallback_until_the_next_day(
    session: Session, clock: FrozenClock
) -> None:
    import_pack(session, clock, MD_PACK)
    veteran = add_rep(session, clock, "Veteran", years_medical=9, seniority="senior")
    newbie = add_rep(session, clock, "Newbie", years_medical=0, seniority="junior")
    decisions = [_route(session, clock, TERTIARY) for _ in range(7)]
    assert [d.owner_id for d in decisions[:6]] == [veteran.id] * 6  # daily_cap 6 on the key-account rule
    seventh = decisions[6]
    assert seventh.used_fallback and seventh.owner_id == newbie.id  # least loaded in the fallback
    assert seventh.explanation["attempts"][0]["excluded"] == [
        {"user_id": veteran.id, "name": "Veteran", "reasons": ["over_rule_cap"]}
    ]
    # "Today" is the Beijing day of the SLA calendar: at 16:00 UTC it is already tomorrow there.
    clock.set(datetime(2026, 1, 5, 16, 30, tzinfo=UTC))
    assert _route(session, clock, TERTIARY).owner_id == veteran.id


def test_daily_capacity_counts_leads_from_every_rule(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    md["sun"].daily_capacity = 2
    earlier = _route(session, clock, COUNTY)  # the weighted standard channel; hand it to Sun
    earlier.owner_id = md["sun"].id
    session.flush()
    owners = [_route(session, clock, TOWNSHIP).owner_id for _ in range(5)]
    # Round robin Zhao, Sun, then Sun is at capacity (one standard + one inclusive lead today).
    assert owners == [md["zhao"].id, md["sun"].id, md["zhao"].id, md["zhao"].id, md["zhao"].id]
    last = session.scalars(select(RoutingDecision).order_by(RoutingDecision.id.desc())).first()
    excluded = last.explanation["attempts"][0]["excluded"]  # type: ignore[union-attr]
    assert excluded == [{"user_id": md["sun"].id, "name": "Sun Mid", "reasons": ["over_daily_capacity"]}]


def test_nobody_at_all_leaves_the_lead_unassigned_with_a_reason(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    add_rep(session, clock, "Admin", role="admin", years_medical=10)
    decision = _route(session, clock, TERTIARY)
    assert (decision.outcome, decision.reason, decision.owner_id) == ("unassigned", "no_candidate", None)
    assert decision.lead.owner_id is None and decision.lead.status == "new"
    view = explain(decision)
    assert view["summary"]["en"].endswith("Left unassigned: Nobody could take it.")
    assert (
        view["summary"]["zh"]
        == "规则“三甲医院”已匹配，但无人可以接收该线索，由兜底规则分配。暂未分配：无人可以接收。"
    )


def test_teams_filter_and_the_lead_in_candidate_filters(session: Session, clock: FrozenClock) -> None:
    north, south = add_team(session, clock, "north"), add_team(session, clock, "south")
    doc = routing_doc(
        [
            rule(
                "regional",
                True,
                candidates={
                    "teams": ["north", "south"],
                    "filter": {"in": [{"var": "lead.region"}, {"var": "regions"}]},
                },
            )
        ]
    )
    publish(session, clock, doc)
    outsider = add_rep(session, clock, "Outsider", regions=["beijing"])
    beijing = add_rep(session, clock, "Beijing Rep", team=north, regions=["beijing"])
    add_rep(session, clock, "Canton Rep", team=south, regions=["guangdong"])
    decision = _route(session, clock, {"region": "beijing"})
    assert decision.owner_id == beijing.id
    assert decision.explanation["attempts"][0]["not_matching"]["team"] == [outsider.id]


# --- working hours and freshness ----------------------------------------------------------------------------

NIGHT_DESK = {
    "kind": "calendar",
    "key": "night-desk",
    "schema_version": 1,
    "label": {"en": "Night desk", "zh": "夜班"},
    "timezone": "Asia/Shanghai",
    "working_hours": {d: [{"start": "18:00", "end": "24:00"}] for d in ("mon", "tue", "wed", "thu", "fri")},
}


def test_working_hours_use_the_reps_own_calendar_and_relax_when_nobody_works(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    publish(session, clock, NIGHT_DESK)
    night = add_rep(session, clock, "Night Owl", years_medical=10, seniority="senior", calendar="night-desk")
    clock.set(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))  # 20:00 in Beijing: only the night desk works
    decision = _route(session, clock, TERTIARY)
    assert decision.owner_id == night.id
    reasons = {e["user_id"]: e["reasons"] for e in decision.explanation["attempts"][0]["excluded"]}
    assert reasons == {md["wang"].id: ["outside_working_hours"], md["li"].id: ["outside_working_hours"]}
    clock.set(MONDAY_17_BEIJING)  # 17:00: head office works, the night desk does not
    assert _route(session, clock, TERTIARY).owner_id in (md["wang"].id, md["li"].id)
    clock.set(datetime(2026, 1, 10, 2, 0, tzinfo=UTC))  # Saturday morning: nobody works
    decision = _route(session, clock, TERTIARY)
    assert decision.outcome == "assigned"
    assert decision.explanation["attempts"][0]["relaxed"] == ["working_hours"]


def test_freshness_balancing_keeps_stale_leads_from_piling_up_on_one_rep(
    session: Session, clock: FrozenClock
) -> None:
    import_pack(session, clock, MD_PACK)  # stale after 24 h, at most half stale within 168 h
    a = add_rep(session, clock, "A", years_medical=0, seniority="junior")
    b = add_rep(session, clock, "B", years_medical=0, seniority="junior")
    assert _route(session, clock, TOWNSHIP).owner_id == a.id  # fresh, round robin starts with A
    stale = _route(session, clock, TOWNSHIP, received_at=clock.now() - timedelta(hours=30))
    # Round robin would give B; B would then hold 1 stale of 1 (> 0.5), A 1 of 2 (= 0.5): A takes it.
    assert stale.owner_id == a.id
    attempt = stale.explanation["attempts"][0]
    assert attempt["stale_lead"] is True
    assert attempt["excluded"] == [{"user_id": b.id, "name": "B", "reasons": ["stale_share"]}]
    assert stale.lead_age_seconds == 30 * 3600
    # When every candidate would pass the limit, the lead still goes out and the relaxation is recorded.
    again = _route(session, clock, TOWNSHIP, received_at=clock.now() - timedelta(hours=30))
    assert again.outcome == "assigned" and again.explanation["attempts"][0]["relaxed"] == ["freshness"]


# --- the recorded decision ---------------------------------------------------------------------------


def test_decision_and_its_audit_event_are_written_in_the_callers_transaction(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    lead = add_lead(session, clock, TOWNSHIP)
    decision = route_lead(session, lead, clock=clock)
    assert decision.owner_id == lead.owner_id and lead.assigned_at == clock.now()
    # The audit event is the decision's timeline entry: no activity row repeats it.
    assert session.scalars(select(Activity).where(Activity.lead_id == lead.id)).all() == []
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.route")).one()
    assert (event.object_type, event.object_id, event.actor_id) == ("leads", lead.id, None)
    assert event.payload["owner_id"] == lead.owner_id and event.payload["rule"] == "primary_care_inclusive"
    assert (event.payload["decision_id"], event.payload["outcome"]) == (decision.id, "assigned")
    assert verify_chain(session) is None
    session.rollback()  # nothing was committed by the service
    assert session.scalars(select(RoutingDecision)).all() == []


def test_explain_gives_rules_candidates_and_a_bilingual_summary(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    decision = _route(session, clock, TOWNSHIP)
    view = explain(decision, names={md["zhao"].id: "Zhao Xiaoming"})
    assert view["decided_by"] == "primary_care_inclusive" and view["outcome"] == "assigned"
    assert view["rules"] == [
        {"rule": "tertiary_a_key_account", "result": "no_match"},
        {"rule": "primary_care_inclusive", "result": "matched"},
    ]
    candidates = view["attempts"][0]["candidates"]
    assert [c["user_id"] for c in candidates] == [md["zhao"].id, md["sun"].id]
    assert candidates[0]["chosen"] and candidates[0]["name"] == "Zhao Xiaoming"
    assert view["summary"]["en"] == (
        "Rule Township or community health centre matched. "
        "Assigned to Zhao Xiaoming (Round robin, channel Inclusive channel)."
    )
    assert "乡镇卫生院或社区卫生服务中心" in view["summary"]["zh"] and "普惠通道" in view["summary"]["zh"]
    assert view["routing"]["key"] == "md-lead-routing" and view["state"]["turn"] == 1


def test_new_version_pins_new_decisions_and_keeps_the_rotation(session: Session, clock: FrozenClock) -> None:
    v1 = publish(session, clock, routing_doc([rule("all", True)]))
    reps = [add_rep(session, clock, f"Rep {i}") for i in range(3)]
    first = _route(session, clock, {})
    doc = routing_doc([rule("all", True)], label={"en": "Test routing v2", "zh": "测试分配 2"})
    draft = create_definition_draft(session, None, doc, clock)
    v2 = publish_version(session, None, draft.id, clock)
    second = _route(session, clock, {})
    assert (first.routing_version_id, second.routing_version_id) == (v1.id, v2.id)
    assert (first.owner_id, second.owner_id) == (reps[0].id, reps[1].id)
    assert first.routing_version_id == v1.id  # the old decision keeps its version


def test_no_published_routing_is_a_clear_error(session: Session, clock: FrozenClock) -> None:
    with pytest.raises(RoutingUnavailable, match="no routing definition is published"):
        route_lead(session, add_lead(session, clock, {}), clock=clock)


def test_plan_is_compiled_once_per_version(session: Session, clock: FrozenClock, md: dict[str, Any]) -> None:
    assert current_plan(session) is current_plan(session)
    assert current_plan(session, form_key="md-lead").key == "md-lead-routing"
    with pytest.raises(RoutingUnavailable, match="no published routing reads form 'other'"):
        import_pack(session, clock, SAAS_PACK)
        current_plan(session, form_key="other")


# --- the deterministic gate: statements per routed lead ----------------------------------------------


def _gate_doc(strategy: str) -> dict[str, Any]:
    rules = [rule(f"segment_{i}", {"==": [{"var": "segment"}, f"s{i}"]}, strategy) for i in range(49)]
    target = rule(
        "target",
        {"==": [{"var": "segment"}, "target"]},
        strategy,
        daily_cap=500,
        candidates={"filter": {">=": [{"var": "years"}, 1]}},
    )
    if strategy == "weighted":
        for r in (*rules, target):
            r["weights"] = [{"filter": {">=": [{"var": "years"}, 5]}, "weight": 2}]
    return routing_doc(
        [*rules, target],
        freshness_balancing={
            "enabled": True,
            "stale_after_hours": 24,
            "window_hours": 168,
            "max_stale_share": 0.5,
        },
    )


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded", "weighted"])
@pytest.mark.parametrize("reps", [5, 80])
def test_statements_per_routed_lead_are_bounded(
    runtime: Runtime, session: Session, clock: FrozenClock, strategy: str, reps: int
) -> None:
    publish(session, clock, _gate_doc(strategy))
    for i in range(reps):
        add_rep(session, clock, f"Rep {i}", years_medical=i % 10, years=1 + i % 10, daily_capacity=100)
    _route(session, clock, {"segment": "target"})  # warm: compiles the plan, creates the cursor row
    for _ in range(3):
        lead = add_lead(session, clock, {"segment": "target"})
        with counting(runtime.db.engine) as statements:
            decision = route_lead(session, lead, clock=clock)  # plan=None: finds the published plan too
        assert decision.outcome == "assigned" and decision.rule_key == "target"
        # plan, snapshot, claim cooldowns (pools), turn, lead, decision, audit
        assert len(statements) <= 7, statements
        plan = current_plan(session)
        lead = add_lead(session, clock, {"segment": "target"})
        with counting(runtime.db.engine) as statements:
            route_lead(session, lead, clock=clock, plan=plan)
        assert len(statements) <= 6, statements
