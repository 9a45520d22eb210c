"""Claiming and releasing pooled leads: who may claim, caps, the conditional take, records it leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden, NotFound

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.timers import Timer
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.pool_models import LeadClaim
from salesmesh.workflows.pool_rules import pool_rules
from salesmesh.workflows.pools import (
    ClaimConflict,
    ClaimRefused,
    PoolError,
    PoolUnavailable,
    ReleaseRefused,
    claim_lead,
    claim_status,
    release_lead,
)
from tests.workflows.pool_helpers import POOL, active_claims, pool_world, pooled_lead
from tests.workflows.routing_helpers import counting, publish


@pytest.fixture
def people(session: Session, clock: FrozenClock) -> dict[str, User]:
    return pool_world(session, clock)


def _timers(session: Session, claim: LeadClaim) -> dict[str, Timer]:
    rows = session.scalars(
        select(Timer).where(Timer.subject_type == "lead_claims", Timer.subject_id == claim.id)
    )
    return {t.kind: t for t in rows}


def test_a_claim_takes_the_lead_and_records_everything(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    rep = people["rep_a1"]
    lead = pooled_lead(session, clock)
    claim = claim_lead(session, rep, lead.id, clock=clock)
    session.expire_all()
    lead = session.get(Lead, lead.id)
    assert (lead.owner_id, lead.team_id, lead.status, lead.pool_key) == (rep.id, rep.team_id, "new", POOL)
    assert lead.assigned_at == clock.now()
    assert claim.status == "active" and claim.user_id == rep.id and claim.pool_key == POOL
    assert claim.pool_version_id == pool_rules(session, POOL).version_id
    assert claim.followup_due_at == clock.now() + timedelta(hours=72)
    assert claim.protected_until == clock.now() + timedelta(hours=720)
    timers = _timers(session, claim)
    assert {k: (t.status, t.due_at) for k, t in timers.items()} == {
        "pools.followup_check": ("pending", claim.followup_due_at),
        "pools.protection_expiry": ("pending", claim.protected_until),
    }
    # One audit event, which is also the claim's line on the lead's timeline (no activity row repeats it).
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.claim")).one()
    assert (event.actor_id, event.object_type, event.object_id) == (rep.id, "leads", lead.id)
    assert (event.payload["claim_id"], event.payload["pool"]) == (claim.id, POOL)
    assert session.scalars(select(Activity).where(Activity.lead_id == lead.id)).all() == []


def test_a_lead_claimed_already_is_a_conflict_in_both_languages(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    lead = pooled_lead(session, clock)
    claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    with pytest.raises(ClaimConflict) as caught:
        claim_lead(session, people["rep_b1"], lead.id, clock=clock)
    assert caught.value.status == 409 and caught.value.code == "already_claimed"
    assert caught.value.text("en") == "Someone else claimed this lead first."
    assert caught.value.text("zh") == "这条线索已被其他人抢先领取。"
    with pytest.raises(ClaimConflict, match="This lead is yours already"):  # the winner clicking twice
        claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    assert active_claims(session, lead.id) == 1


def test_ids_that_name_no_pool_lead_are_not_found(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    routed = pooled_lead(session, clock, pool_key=None, status="new")
    for ident in (routed.id, 999_999, "abc", 2**64):
        with pytest.raises(NotFound):
            claim_lead(session, people["rep_a1"], ident, clock=clock)


def test_a_deactivated_person_may_not_claim(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    rep = people["rep_a1"]
    rep.active = False
    with pytest.raises(Forbidden):
        claim_lead(session, rep, pooled_lead(session, clock).id, clock=clock)


def test_an_unpublished_pool_is_named(session: Session, clock: FrozenClock, people: dict[str, User]) -> None:
    lead = pooled_lead(session, clock, pool="gone-pool")
    with pytest.raises(PoolUnavailable, match="Pool gone-pool is not published"):
        claim_lead(session, people["rep_a1"], lead.id, clock=clock)


# --- who may claim -----------------------------------------------------------------------------------------


def _refusal(session: Session, clock: FrozenClock, actor: User) -> ClaimRefused:
    with pytest.raises(ClaimRefused) as caught:
        claim_lead(session, actor, pooled_lead(session, clock).id, clock=clock)
    assert caught.value.status == 403
    return caught.value


def test_roles_teams_and_the_attribute_filter_decide_who_may_claim(
    session: Session, clock: FrozenClock
) -> None:
    people = pool_world(
        session,
        clock,
        who_may_claim={
            "roles": ["rep"],
            "teams": ["team-a"],
            "filter": {">=": [{"var": "years_saas"}, 2]},
        },
    )
    people["rep_a1"].attributes = {"years_saas": 3}
    people["rep_a2"].attributes = {"years_saas": 1}
    people["rep_b1"].attributes = {"years_saas": 9}
    session.flush()
    assert (
        _refusal(session, clock, people["lead_a"]).text("en")
        == "Your role may not claim leads from this pool."
    )
    assert _refusal(session, clock, people["rep_b1"]).code == "not_eligible"  # team-b
    filtered = _refusal(session, clock, people["rep_a2"])
    assert filtered.text("zh") == "你的档案不符合该线索池的领取条件。"
    assert (
        claim_lead(session, people["rep_a1"], pooled_lead(session, clock).id, clock=clock).status == "active"
    )


def test_the_filter_sees_rep_attribute_defaults(session: Session, clock: FrozenClock) -> None:
    publish(
        session,
        clock,
        {
            "kind": "rep_attributes",
            "key": "profile",
            "schema_version": 1,
            "label": {"en": "Profile", "zh": "档案"},
            "attributes": [
                {
                    "key": "remote_ok",
                    "type": "boolean",
                    "label": {"en": "Remote", "zh": "远程"},
                    "default": True,
                }
            ],
        },
    )
    people = pool_world(
        session, clock, who_may_claim={"roles": ["rep"], "filter": {"==": [{"var": "remote_ok"}, True]}}
    )
    assert (
        claim_lead(session, people["rep_a1"], pooled_lead(session, clock).id, clock=clock).status == "active"
    )
    people["rep_a2"].attributes = {"remote_ok": False}
    session.flush()
    assert _refusal(session, clock, people["rep_a2"]).code == "not_eligible"


# --- caps --------------------------------------------------------------------------------------------------


def test_the_daily_cap_counts_claims_since_midnight(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    rep = people["rep_a1"]
    for _ in range(2):
        claim_lead(session, rep, pooled_lead(session, clock).id, clock=clock)
    refused = _refusal(session, clock, rep)
    assert refused.code == "daily_cap"
    assert refused.text("en") == (
        "You have claimed 2 leads from this pool today, the most allowed per day (2)."
    )
    # The cap is per rep: a teammate still claims.
    assert (
        claim_lead(session, people["rep_a2"], pooled_lead(session, clock).id, clock=clock).status == "active"
    )
    clock.advance(hours=15)  # 09:00 UTC + 15 h: the next UTC day (no calendar is published)
    assert claim_lead(session, rep, pooled_lead(session, clock).id, clock=clock).status == "active"


def test_the_claim_cap_counts_open_leads_held_from_the_pool(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    rep = people["rep_a1"]
    claims = []
    for _ in range(3):
        claims.append(claim_lead(session, rep, pooled_lead(session, clock).id, clock=clock))
        clock.advance(days=1)
    refused = _refusal(session, clock, rep)
    assert (refused.code, refused.text("zh")) == (
        "claim_cap",
        "你已持有该线索池的 3 条未结线索，达到上限（3 条）。",
    )
    status = claim_status(session, rep, pool_rules(session, POOL), clock.now())
    assert (status.open_claims, status.claim_cap, status.claims_today, status.daily_cap) == (3, 3, 0, 2)
    # A converted lead no longer counts against the cap.
    session.get(Lead, claims[0].lead_id).status = "converted"
    session.flush()
    assert claim_lead(session, rep, pooled_lead(session, clock).id, clock=clock).status == "active"


# --- the race guards ----------------------------------------------------------------------------------


def test_a_claim_left_active_when_its_lead_went_back_another_way_is_closed(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    lead = pooled_lead(session, clock)
    first = claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    # Some other path (a routing re-run, the SLA sweep) put the lead back in the pool.
    lead.status, lead.owner_id, lead.team_id = "pooled", None, None
    session.flush()
    second = claim_lead(session, people["rep_a2"], lead.id, clock=clock)
    session.refresh(first)
    assert first.status == "closed" and second.status == "active"
    assert active_claims(session, lead.id) == 1


def test_the_unique_index_allows_one_active_claim_per_lead(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    lead = pooled_lead(session, clock)
    claim = claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    twin = LeadClaim(
        lead_id=lead.id,
        pool_key=POOL,
        pool_version_id=claim.pool_version_id,
        user_id=people["rep_a2"].id,
        status="active",
        claimed_at=clock.now(),
        followup_due_at=clock.now(),
    )
    session.add(twin)
    with pytest.raises(IntegrityError, match="uq_lead_claims_active_lead|UNIQUE constraint failed"):
        session.flush()


def test_statements_per_claim_are_bounded(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as session:
        pool_world(session, clock, daily_claim_cap=50, claim_cap_per_rep=50)
        rep_id = session.scalar(select(User.id).where(User.name == "rep_a1"))
        leads = [pooled_lead(session, clock).id for _ in range(3)]
    with runtime.db.session_scope(immediate=True) as session:
        claim_lead(session, session.get(User, rep_id), leads[0], clock=clock)  # warms the rules cache
    for lead_id in leads[1:]:
        with runtime.db.session_scope(immediate=True) as session:
            rep = session.get(User, rep_id)
            with counting(runtime.db.engine) as statements:
                claim_lead(session, rep, lead_id, clock=clock)
            sql = [s for s in statements if not s.startswith("BEGIN")]
            # lead, pool ids, standing, take, stale claims, claim, 2 timers, audit event
            assert len(sql) <= 9, sql


# --- giving a lead back by hand -------------------------------------------------------------------------


def test_release_needs_a_reason_and_returns_the_lead_without_a_cooldown(
    session: Session, clock: FrozenClock, people: dict[str, User]
) -> None:
    rep = people["rep_a1"]
    lead = pooled_lead(session, clock)
    claim = claim_lead(session, rep, lead.id, clock=clock)
    with pytest.raises(PoolError) as caught:
        release_lead(session, rep, lead.id, reason="  ", clock=clock)
    assert caught.value.errors[0]["path"] == "/reason" and caught.value.status == 422
    with pytest.raises(PoolError, match="At most 500 characters"):
        release_lead(session, rep, lead.id, reason="x" * 501, clock=clock)
    clock.advance(hours=1)
    release_lead(session, rep, lead.id, reason="Wrong region for me", clock=clock)
    session.expire_all()
    lead = session.get(Lead, lead.id)
    assert (lead.status, lead.owner_id, lead.team_id, lead.pool_key) == ("pooled", None, None, POOL)
    claim = session.get(LeadClaim, claim.id)
    assert (claim.status, claim.release_reason, claim.ended_by_id) == (
        "released",
        "Wrong region for me",
        rep.id,
    )
    assert {t.status for t in _timers(session, claim).values()} == {"cancelled"}
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.release")).one()
    assert (event.actor_id, event.payload["claimer_id"]) == (rep.id, rep.id)
    assert event.payload["title"] == "Wrong region for me"  # shown after the event's name on the timeline
    # No cooldown for an honest release: the rep may claim again at once.
    assert claim_lead(session, rep, lead.id, clock=clock).status == "active"


def test_who_may_release_and_when_the_pool_forbids_it(session: Session, clock: FrozenClock) -> None:
    people = pool_world(session, clock, release={"manual_release_allowed": True, "reason_required": False})
    lead = pooled_lead(session, clock)
    claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    with pytest.raises(NotFound):  # another rep cannot even see the lead
        release_lead(session, people["rep_a2"], lead.id, clock=clock)
    release_lead(session, people["lead_a"], lead.id, clock=clock)  # their team lead may; no reason needed
    with pytest.raises(ReleaseRefused, match="not held under a pool claim"):
        release_lead(session, people["lead_a"], lead.id, clock=clock)
    unclaimed = pooled_lead(session, clock, pool_key=None, status="new", owner_id=people["rep_a1"].id)
    with pytest.raises(ReleaseRefused):
        release_lead(session, people["rep_a1"], unclaimed.id, clock=clock)


def test_a_pool_without_manual_release_refuses_it(session: Session, clock: FrozenClock) -> None:
    people = pool_world(session, clock, release={"manual_release_allowed": False})
    lead = pooled_lead(session, clock)
    claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    with pytest.raises(ReleaseRefused) as caught:
        release_lead(session, people["rep_a1"], lead.id, reason="no", clock=clock)
    assert caught.value.text("zh") == "该线索池不允许手动退回线索。"
    assert session.get(Lead, lead.id).owner_id == people["rep_a1"].id
