"""The cooldown and protection timers: a claimed lead nobody followed up returns to the pool once, at the
right time (working time when the pool names a calendar), its claimer is unavailable for the pool and
skipped by routing; a follow-up keeps it; crashes and re-runs never release twice nor lose a release."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification, render
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.timers import Effect, Timer, TimerContext, get_timer_kind
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pool_models import LeadClaim, PoolCooldown
from salesmesh.workflows.pool_rules import pool_rules
from salesmesh.workflows.pools import ClaimRefused, claim_lead
from salesmesh.workflows.routing import route_lead
from salesmesh.workflows.routing_plan import current_plan
from tests.workflows.pool_helpers import POOL, pool_world, pooled_lead, run_due
from tests.workflows.routing_helpers import SAAS_PACK, add_lead, publish, routing_doc, rule


@pytest.fixture
def world(runtime: Runtime, clock: FrozenClock) -> dict[str, Any]:
    """A committed world: the pool, the staff (ids by name) and three pooled leads."""
    with runtime.db.session_scope() as session:
        people = pool_world(session, clock)
        leads = [pooled_lead(session, clock).id for _ in range(3)]
        ids = {name: user.id for name, user in people.items()}
    return {"ids": ids, "leads": leads}


def _claim(runtime: Runtime, clock: FrozenClock, user_id: int, lead_id: int) -> int:
    with runtime.db.session_scope(immediate=True) as session:
        return claim_lead(session, session.get(User, user_id), lead_id, clock=clock).id


def _state(runtime: Runtime, lead_id: int, claim_id: int) -> tuple[str, int | None, str]:
    with runtime.db.session_scope() as session:
        lead, claim = session.get(Lead, lead_id), session.get(LeadClaim, claim_id)
        return lead.status, lead.owner_id, claim.status


def _count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_an_unattended_claim_returns_after_the_window_and_not_before(
    runtime: Runtime, clock: FrozenClock, world: dict[str, Any]
) -> None:
    rep, lead = world["ids"]["rep_a1"], world["leads"][0]
    claimed_at = clock.now()
    claim = _claim(runtime, clock, rep, lead)
    clock.advance(hours=72, seconds=-1)
    assert run_due(runtime) == 0
    assert _state(runtime, lead, claim) == ("new", rep, "active")
    clock.advance(seconds=1)
    assert run_due(runtime) == 1
    assert _state(runtime, lead, claim) == ("pooled", None, "no_followup")
    with runtime.db.session_scope() as session:
        assert session.get(Lead, lead).pool_key == POOL
        cooldown = session.scalars(select(PoolCooldown)).one()
        assert (cooldown.user_id, cooldown.pool_key, cooldown.claim_id) == (rep, POOL, claim)
        assert cooldown.until == claimed_at + timedelta(hours=72 + 24)
        timers = {t.kind: t.status for t in session.scalars(select(Timer).where(Timer.subject_id == claim))}
        assert timers == {"pools.followup_check": "done", "pools.protection_expiry": "cancelled"}
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.no_followup")).one()
        assert (event.actor_id, event.object_id, event.payload["claimer_id"]) == (None, lead, rep)
        assert event.payload["unavailable_until"] == cooldown.until.isoformat()
        # The claimer is told, in their language when they read it.
        note = session.scalars(select(Notification)).one()
        assert (note.user_id, note.kind, note.subject_id) == (rep, "pool.no_followup", lead)
        english, chinese = render(note, "en"), render(note, "zh")
        assert english.title == "Lead went back to the pool: no follow-up in time"
        assert english.body == (
            "It needed a follow-up by 2026-01-08 09:00 UTC. "
            "You can claim from Open pool again after 2026-01-09 09:00 UTC."
        )
        assert chinese.title == "Lead 已退回线索池：未按时跟进" and "公共池" in (chinese.body or "")
        assert english.path == f"/leads/{lead}"


def test_the_claimer_in_cooldown_is_refused_and_skipped_by_routing(
    runtime: Runtime, clock: FrozenClock, world: dict[str, Any]
) -> None:
    ids = world["ids"]
    rep = ids["rep_a1"]
    _claim(runtime, clock, rep, world["leads"][0])
    clock.advance(hours=72)
    run_due(runtime)
    with runtime.db.session_scope() as session:
        with pytest.raises(ClaimRefused) as caught:
            claim_lead(session, session.get(User, rep), world["leads"][1], clock=clock)
        assert caught.value.code == "in_cooldown"
        # Shown in the pool's day zone (UTC here): 72 h + 24 h after Monday 09:00.
        assert caught.value.text("en").startswith("You are unavailable for this pool until 2026-01-09 09:00:")
        cooling = session.scalars(select(PoolCooldown.user_id).where(PoolCooldown.until > clock.now())).all()
        assert cooling == [rep]
        # Routing leaves the rep out, saying why.
        publish(session, clock, routing_doc([rule("everyone", True)]))
        plan = current_plan(session)
        decisions = [
            route_lead(session, add_lead(session, clock, {}), clock=clock, plan=plan) for _ in range(4)
        ]
        assert rep not in {d.owner_id for d in decisions}
        excluded = decisions[0].explanation["attempts"][0]["excluded"]
        assert [(e["user_id"], e["reasons"]) for e in excluded] == [(rep, ["claim_cooldown"])]
    # A teammate claims meanwhile; once the cooldown is over the rep claims again and routing counts them in.
    _claim(runtime, clock, ids["rep_a2"], world["leads"][1])
    clock.advance(hours=24)
    assert _claim(runtime, clock, rep, world["leads"][2])
    with runtime.db.session_scope() as session:
        plan = current_plan(session)
        leads = [add_lead(session, clock, {}) for _ in range(3)]
        assert rep in {route_lead(session, lead, clock=clock, plan=plan).owner_id for lead in leads}


def test_a_qualifying_followup_by_the_claimer_keeps_the_lead(
    runtime: Runtime, clock: FrozenClock, world: dict[str, Any]
) -> None:
    ids, (kept, noted, helped) = world["ids"], world["leads"]
    claims = {lead: _claim(runtime, clock, ids["rep_a1"], lead) for lead in (kept, noted)}
    claims[helped] = _claim(runtime, clock, ids["rep_a2"], helped)
    clock.advance(hours=5)
    with runtime.db.session_scope() as session:
        log_activity(session, session.get(User, ids["rep_a1"]), kind="call", lead_id=kept, clock=clock)
        log_activity(session, session.get(User, ids["rep_a1"]), kind="note", lead_id=noted, clock=clock)
        # Someone else's call does not count for the claimer.
        log_activity(session, session.get(User, ids["lead_a"]), kind="email", lead_id=helped, clock=clock)
    clock.advance(hours=70)
    assert run_due(runtime) == 3
    assert _state(runtime, kept, claims[kept]) == ("contacted", ids["rep_a1"], "active")
    assert _state(runtime, noted, claims[noted])[2] == "no_followup"
    assert _state(runtime, helped, claims[helped]) == ("pooled", None, "no_followup")
    assert _count(runtime, PoolCooldown) == 2


def _run_handler(session: Session, runtime: Runtime, timer_id: int) -> None:
    timer = session.get(Timer, timer_id)
    get_timer_kind(timer.kind).handler(TimerContext(session, runtime, timer))


def test_a_crash_or_a_rerun_never_releases_twice_nor_loses_the_release(
    runtime: Runtime, clock: FrozenClock, world: dict[str, Any]
) -> None:
    rep, lead = world["ids"]["rep_a1"], world["leads"][0]
    claim = _claim(runtime, clock, rep, lead)
    with runtime.db.session_scope() as session:
        timer_id = session.scalar(select(Timer.id).where(Timer.kind == "pools.followup_check"))
    clock.advance(hours=73)
    # A worker crashes after the handler ran but before its transaction committed: nothing happened.
    with pytest.raises(RuntimeError), runtime.db.session_scope(immediate=True) as session:
        _run_handler(session, runtime, timer_id)
        raise RuntimeError("killed before commit")
    assert _state(runtime, lead, claim) == ("new", rep, "active")
    # The sweeper runs it for real; then the same timer runs again (a lost lease re-claimed) twice more.
    assert run_due(runtime) == 1
    for _ in range(2):
        with runtime.db.session_scope(immediate=True) as session:
            _run_handler(session, runtime, timer_id)
    with runtime.db.session_scope() as session:
        session.execute(
            Timer.__table__.update().where(Timer.id == timer_id).values(status="pending", due_at=clock.now())
        )
    run_due(runtime)
    assert _state(runtime, lead, claim) == ("pooled", None, "no_followup")
    assert _count(runtime, PoolCooldown) == 1
    assert _count(runtime, Effect, Effect.kind == "pools.no_followup") == 1
    assert _count(runtime, AuditEvent, AuditEvent.action == "lead.no_followup") == 1
    assert _count(runtime, Notification) == 1


def test_a_pool_on_a_working_calendar_counts_working_hours(runtime: Runtime, clock: FrozenClock) -> None:
    calendar = (SAAS_PACK / "definitions" / "calendar.json").read_text(encoding="utf-8")
    with runtime.db.session_scope() as session:
        publish(session, clock, json.loads(calendar))
        people = pool_world(
            session,
            clock,
            cooldown={
                "no_followup_hours": 10,
                "qualifying_activities": ["call"],
                "unavailable_hours": 2,
                "calendar": "saas-workweek",
            },
        )
        rep, lead = people["rep_a1"].id, pooled_lead(session, clock).id
    # Monday 2026-01-05 17:00 Beijing: 1.5 h today, 7.5 h Tuesday, 1 h Wednesday -> Wednesday 10:30 Beijing.
    claim = _claim(runtime, clock, rep, lead)
    with runtime.db.session_scope() as session:
        due = session.get(LeadClaim, claim).followup_due_at
        assert due.isoformat() == "2026-01-07T02:30:00+00:00"
    clock.advance(hours=10)  # ten wall-clock hours: the middle of the night in Beijing, nothing is due
    assert run_due(runtime) == 0
    clock.set(due)
    assert run_due(runtime) == 1
    with runtime.db.session_scope() as session:
        # Unavailable for two working hours: 10:30-12:00, lunch skipped, 13:30-14:00 Beijing.
        until = session.scalars(select(PoolCooldown.until)).one()
        assert until.isoformat() == "2026-01-07T06:00:00+00:00"
        assert pool_rules(session, POOL).calendar is not None


def test_protection_over_returns_a_followed_up_lead_without_a_cooldown(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as session:
        people = pool_world(session, clock, protection_hours=100)
        rep = people["rep_a1"].id
        kept, converted = pooled_lead(session, clock).id, pooled_lead(session, clock).id
    claims = {lead: _claim(runtime, clock, rep, lead) for lead in (kept, converted)}
    clock.advance(hours=1)
    with runtime.db.session_scope() as session:
        for lead in (kept, converted):
            log_activity(session, session.get(User, rep), kind="call", lead_id=lead, clock=clock)
        session.get(Lead, converted).status = "converted"
    clock.advance(hours=98)
    assert run_due(runtime) == 2  # both follow-up checks: followed up, nothing to do
    assert _state(runtime, kept, claims[kept]) == ("contacted", rep, "active")
    assert _state(runtime, converted, claims[converted]) == ("converted", rep, "closed")
    clock.advance(hours=1)
    assert run_due(runtime) == 2
    assert _state(runtime, kept, claims[kept]) == ("pooled", None, "protection_over")
    assert _state(runtime, converted, claims[converted]) == ("converted", rep, "closed")
    assert _count(runtime, PoolCooldown) == 0
    assert _count(runtime, AuditEvent, AuditEvent.action == "lead.protection_over") == 1
    with runtime.db.session_scope() as session:
        note = session.scalars(select(Notification)).one()
        assert note.kind == "pool.protection_over" and note.subject_id == kept
        assert (
            render(note, "en").body
            == "You held it from Open pool since 2026-01-05 09:00 UTC without converting it."
        )
