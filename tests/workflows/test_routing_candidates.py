"""The engine reads one rule's candidates at a time (`routing_state.load_candidates`): the decision and its
stored explanation (candidates considered, who was excluded and why, who did not match the team or the
filter) are exactly those of a snapshot of every rep, a rep added or edited since the rule's last
snapshot is counted before anyone decides on it, and a rule whose candidates are all excluded hands the
lead to the fallback on a full snapshot — on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from benchmarks.intake_e2e import LEAD_FORM
from benchmarks.routing_eval import NOW, build, make_leads, make_reps
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import Team, User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.routing import current_plan, lead_facts, route_lead
from salesmesh.workflows.routing_decide import decide
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_state import load_candidates, load_snapshot
from tests.workflows.routing_helpers import add_lead, add_rep, counting, publish, routing_doc, rule


def _snapshots(sql: list[str]) -> int:
    return sum(s.startswith("SELECT") and "AS today_total" in s for s in sql)


def _world(session: Session, clock: FrozenClock) -> None:
    """The benchmark's 50-rule routing plus a team-only rule, over 80 reps in two teams (some away,
    deactivated or with a small daily capacity)."""
    document, _hand, _fallback = build()
    team_rule = rule(
        "north_only",
        {"in": [{"var": "region"}, ["hainan", "beijing", "shanghai", "sichuan"]]},
        # Few candidates with a cap of one lead a day: the rule soon has nobody left.
        candidates={"teams": ["north"], "filter": {">=": [{"var": "years_medical"}, 13]}},
        daily_cap=1,
        channel="standard",
    )
    document = {**document, "form": LEAD_FORM["key"], "rules": [team_rule, *document["rules"]]}
    publish(session, clock, LEAD_FORM)
    publish(session, clock, document)
    teams = [Team(key=key, name={"en": key, "zh": key}, created_at=clock.now()) for key in ("north", "south")]
    session.add_all(teams)
    session.flush()
    for rep in make_reps():
        session.add(
            User(
                email=f"rep{rep['id']}@example.test",
                name=rep["name"],
                role=rep["role"],
                team_id=teams[rep["id"] % 2].id,
                password_hash="!",
                active=rep["active"],
                attributes=rep["attributes"],
                daily_capacity=rep["capacity"],
                unavailable_until=rep["away"],
                created_at=clock.now(),
            )
        )
    session.flush()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_reading_one_rules_candidates_decides_and_explains_like_reading_every_rep(
    database: str, request: pytest.FixtureRequest
) -> None:
    rt: Runtime = request.getfixturevalue("runtime" if database == "sqlite" else "pg_runtime")
    clock = FrozenClock(NOW)
    compared = fell_back = 0
    with rt.db.session_scope() as session:
        _world(session, clock)
        plan = current_plan(session, form_key=LEAD_FORM["key"])
        # What a snapshot reads of each rep is what the ORM reads (away times, flags, JSON attributes).
        snap = load_snapshot(session, plan, [plan.fallback], clock.now())
        users = {u.id: u for u in session.scalars(select(User).where(User.role == "rep"))}
        assert [r.id for r in snap.reps] == sorted(users)
        for rep in snap.reps:
            user = users[rep.id]
            assert (rep.name, rep.email, rep.role, rep.active, rep.daily_capacity) == (
                user.name,
                user.email,
                user.role,
                user.active,
                user.daily_capacity,
            )
            assert rep.unavailable_until == user.unavailable_until and dict(rep.attributes) == user.attributes
            assert (rep.team_id, rep.team_key) == (user.team_id, user.team.key if user.team else None)
        assert any(r.unavailable_until is not None for r in snap.reps) and not all(
            r.active for r in snap.reps
        )
        for data in make_leads(120, seed=9):
            lead = add_lead(session, clock, {k: v for k, v in data.items() if v is not None})
            facts = lead_facts(lead)
            matched, trace = plan.match(facts, clock.now())
            if matched is not None and matched.strategy != "pool":
                now = clock.now()
                full = load_snapshot(session, plan, [matched, plan.fallback], now, lead_id=lead.id)
                narrow = load_candidates(session, plan, matched, now, lead_id=lead.id)
                assert narrow.turns == full.turns and narrow.positions == full.positions
                common: dict[str, Any] = {"facts": facts, "now": now, "lead_age_seconds": 0.0}
                expected = decide(plan, matched, dict(trace), full.reps, positions=full.positions, **common)
                got = decide(
                    plan,
                    matched,
                    dict(trace),
                    narrow.reps,
                    positions=narrow.positions,
                    unfit=narrow.unfit,
                    **common,
                )
                assert expected is not None
                if got is None:  # nobody of the rule's candidates could take it: the fallback decides
                    assert expected.used_fallback and expected.explanation["rules"].get("no_candidate")
                    fell_back += 1
                else:
                    assert got.explanation == expected.explanation
                    assert (got.outcome, got.owner and got.owner.id) == (
                        expected.outcome,
                        expected.owner and expected.owner.id,
                    )
                    assert got.exclusions == expected.exclusions
                    compared += 1
            route_lead(session, lead, clock=clock, plan=plan)  # the counts move on
            clock.advance(minutes=7)
    assert compared >= 80  # most leads matched a rule whose candidates could take them
    assert fell_back >= 1  # and the daily caps ran out for some rule


def test_a_rep_edited_since_the_rules_last_snapshot_is_counted_before_the_decision(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    publish(
        session,
        clock,
        routing_doc(
            [
                rule(
                    "senior",
                    {"==": [{"var": "segment"}, "target"]},
                    candidates={"filter": {">=": [{"var": "years_medical"}, 5]}},
                    daily_cap=2,
                )
            ]
        ),
    )
    a = add_rep(session, clock, "Rep A", years_medical=8)
    b = add_rep(session, clock, "Rep B", years_medical=9)
    c = add_rep(session, clock, "Rep C", years_medical=2)
    plan = current_plan(session)
    owners = [route_lead(session, add_lead(session, clock, {"segment": "target"}), clock=clock, plan=plan)]
    owners.append(
        route_lead(session, add_lead(session, clock, {"segment": "target"}), clock=clock, plan=plan)
    )
    assert [d.owner_id for d in owners] == [a.id, b.id]
    # Rep C now fits the filter and has already had two leads from the rule today (before the edit).
    session.execute(update(User).where(User.id == c.id).values(attributes={"years_medical": 7}))
    for _ in range(2):
        earlier = add_lead(session, clock, {"segment": "target"}, owner_id=c.id)
        session.add(
            RoutingDecision(
                lead_id=earlier.id,
                routing_version_id=plan.version_id,
                routing_key=plan.key,
                rule_key="senior",
                used_fallback=False,
                channel="main",
                strategy="round_robin",
                outcome="assigned",
                owner_id=c.id,
                lead_age_seconds=0,
                decided_at=clock.now() - timedelta(minutes=5),
                explanation={},
            )
        )
    session.flush()
    lead = add_lead(session, clock, {"segment": "target"})
    with counting(runtime.db.engine) as statements:
        decision = route_lead(session, lead, clock=clock, plan=plan)
    assert _snapshots(statements) == 2  # C was not counted last time: read again, counting C
    attempt = decision.explanation["attempts"][0]
    assert {"user_id": c.id, "name": "Rep C", "reasons": ["over_rule_cap"]} in attempt["excluded"]
    assert attempt["candidates"]["user_id"] == [a.id, b.id] and decision.owner_id == a.id
    with counting(runtime.db.engine) as statements:
        route_lead(session, add_lead(session, clock, {"segment": "target"}), clock=clock, plan=plan)
    assert _snapshots(statements) == 1  # the rule's candidates are known again


def test_when_every_candidate_is_excluded_the_fallback_decides_on_every_rep(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    publish(
        session,
        clock,
        routing_doc(
            [
                rule(
                    "senior",
                    {"==": [{"var": "segment"}, "target"]},
                    candidates={"filter": {">=": [{"var": "years_medical"}, 5]}},
                )
            ]
        ),
    )
    away = add_rep(
        session, clock, "Away Senior", years_medical=9, unavailable_until=clock.now() + timedelta(days=1)
    )
    junior = add_rep(session, clock, "Junior", years_medical=1)
    plan = current_plan(session)
    lead = add_lead(session, clock, {"segment": "target"})
    with counting(runtime.db.engine) as statements:
        decision = route_lead(session, lead, clock=clock, plan=plan)
    assert _snapshots(statements) == 2  # the rule's candidates, then every rep for the fallback
    assert decision.used_fallback and decision.owner_id == junior.id
    first, second = decision.explanation["attempts"]
    assert first["rule"] == "senior" and first["candidates"]["user_id"] == []
    assert first["not_matching"]["filter"] == [junior.id]
    assert first["excluded"][0]["user_id"] == away.id and first["excluded"][0]["reasons"] == ["away"]
    assert second["rule"] is None and second["chosen"] == junior.id
