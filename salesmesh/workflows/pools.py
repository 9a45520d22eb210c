"""Claim pools (light-collaboration mode): claiming a pooled lead, giving it back, and the two durable timers
that return unattended claims to their pool.

`claim_lead` checks who may claim (roles, teams, a JsonLogic filter on rep attributes — the same data a
routing candidate filter reads), the caps (open claimed leads per rep, claims today) and the claimer's
cooldown, then takes the lead with ONE conditional UPDATE (`... WHERE id = :id AND status = 'pooled' AND
owner_id IS NULL`): of two reps claiming at once exactly one matches the row, the other gets
`ClaimConflict` (HTTP 409). The `lead_claims` row it writes is guarded by a partial unique index as well.
The claim pins the pool version and schedules `pools.followup_check` when the no-follow-up window ends
(working time when the pool names a calendar) and `pools.protection_expiry` when the protection period
ends. Each handler returns a lead its claimer still holds to the pool with a conditional UPDATE and
records the effect in the ledger in the same transaction, so a crashed or repeated run never releases
twice and never loses a release; a missed follow-up also makes the claimer unavailable for that pool for
`unavailable_hours` (a `PoolCooldown` row, which routing honours too), and the claimer is notified.
`release_lead` gives a lead back by hand when the pool allows it. Every claim, release and return is one
audit event about the lead, which is also its line on the lead's timeline (no activity row repeats it).
Claimed leads keep their `pool_key`. Services flush, never commit; a `ClaimConflict` may leave the
transaction unusable, so the caller rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import Forbidden, NotFound

from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import kick_delivery, notification_kind, notify
from salesmesh.platform.timers import TimerContext, cancel_timers, schedule_timer, timer_kind
from salesmesh.workflows.calendars import day_start
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.pool_models import ACTIVE, LeadClaim, PoolCooldown
from salesmesh.workflows.pool_rules import (
    PoolError,
    PoolRules,
    PoolUnavailable,
    pool_rules,
    rules_for_version,
)
from salesmesh.workflows.routing_decide import OPEN_STATUSES, RepState

__all__ = [
    "ClaimConflict",
    "ClaimRefused",
    "ClaimStatus",
    "PoolError",
    "PoolUnavailable",
    "ReleaseRefused",
    "claim_lead",
    "claim_status",
    "release_lead",
]

POOLED = "pooled"
FOLLOWUP_CHECK = "pools.followup_check"
PROTECTION_EXPIRY = "pools.protection_expiry"
MAX_REASON = 500

RETURNED_NO_FOLLOWUP = notification_kind(
    "pool.no_followup",
    title=N_("%(lead)s went back to the pool: no follow-up in time"),
    body=N_("It needed a follow-up by %(due)s. You can claim from %(pool)s again after %(until)s."),
    path="/leads/{subject_id}",
)
RETURNED_PROTECTION_OVER = notification_kind(
    "pool.protection_over",
    title=N_("%(lead)s went back to the pool: its protection period is over"),
    body=N_("You held it from %(pool)s since %(since)s without converting it."),
    path="/leads/{subject_id}",
)


class ClaimRefused(PoolError):
    """The actor may not claim from this pool now (not eligible, a cap reached, or in cooldown)."""

    status = 403


class ClaimConflict(PoolError):
    """The lead is no longer in the pool: someone else claimed it first."""

    status = 409


class ReleaseRefused(PoolError):
    """The lead cannot be given back (not claimed, not allowed, or no longer held under the claim)."""

    status = 403


def _conflict() -> ClaimConflict:
    return ClaimConflict("already_claimed", N_("Someone else claimed this lead first."))


@dataclass(frozen=True)
class ClaimStatus:
    """Where an actor stands in one pool: claims held and made today, cooldown, and the refusal if any."""

    open_claims: int
    claim_cap: int | None
    claims_today: int
    daily_cap: int | None
    cooldown_until: datetime | None
    refusal: ClaimRefused | None

    @property
    def can_claim(self) -> bool:
        """Tell whether the actor may claim from the pool now."""
        return self.refusal is None


def _refusal(
    rules: PoolRules,
    actor: User,
    team_key: str | None,
    counts: tuple[int, int, datetime | None],
    now: datetime,
) -> ClaimRefused | None:
    open_claims, today, until = counts
    if actor.role not in rules.roles:
        return ClaimRefused("not_eligible", N_("Your role may not claim leads from this pool."))
    if rules.teams is not None and team_key not in rules.teams:
        return ClaimRefused(
            "not_eligible", N_("Only some teams may claim from this pool, and yours is not one.")
        )
    if rules.filter is not None:
        rep = RepState(
            id=actor.id,
            name=actor.name,
            email=actor.email,
            role=actor.role,
            team_id=actor.team_id,
            team_key=team_key,
            active=bool(actor.active),
            attributes=actor.attributes or {},
        )
        try:
            fits = rules.filter.test(rep.filter_data(rules.attribute_defaults), now=now)
        except Exception:  # noqa: BLE001 - a rule that cannot be evaluated for this rep does not admit them
            fits = False
        if not fits:
            return ClaimRefused("not_eligible", N_("Your profile does not meet this pool's claim rule."))
    if until is not None:
        return ClaimRefused(
            "in_cooldown",
            N_("You are unavailable for this pool until %(until)s: a claimed lead had no follow-up in time."),
            until=until.astimezone(rules.day_zone).strftime("%Y-%m-%d %H:%M"),
        )
    if rules.claim_cap is not None and open_claims >= rules.claim_cap:
        return ClaimRefused(
            "claim_cap",
            N_("You already hold %(count)s open leads from this pool, the most allowed (%(cap)s)."),
            count=open_claims,
            cap=rules.claim_cap,
        )
    if rules.daily_cap is not None and today >= rules.daily_cap:
        return ClaimRefused(
            "daily_cap",
            N_("You have claimed %(count)s leads from this pool today, the most allowed per day (%(cap)s)."),
            count=today,
            cap=rules.daily_cap,
        )
    return None


def claim_status(
    session: Session, actor: User, rules: PoolRules, now: datetime, *, lock: bool = False
) -> ClaimStatus:
    """Return the actor's standing in the pool; one statement (`lock`: hold their row until commit)."""
    me = User.id
    held = (
        select(func.count())
        .select_from(LeadClaim)
        .join(Lead, Lead.id == LeadClaim.lead_id)
        .where(LeadClaim.user_id == me, LeadClaim.pool_key == rules.key, LeadClaim.status == ACTIVE)
        .where(Lead.owner_id == LeadClaim.user_id, Lead.status.in_(OPEN_STATUSES))
        .scalar_subquery()
    )
    today = (
        select(func.count())
        .select_from(LeadClaim)
        .where(LeadClaim.user_id == me, LeadClaim.pool_key == rules.key)
        .where(LeadClaim.claimed_at >= day_start(now, rules.day_zone))
        .scalar_subquery()
    )
    until = (
        select(func.max(PoolCooldown.until))
        .where(PoolCooldown.user_id == me, PoolCooldown.pool_key == rules.key, PoolCooldown.until > now)
        .scalar_subquery()
    )
    team = select(Team.key).where(Team.id == User.team_id).scalar_subquery()
    stmt = select(team, held, today, until).where(User.id == actor.id)
    if lock:
        # PostgreSQL: one rep's concurrent claims queue here, so the caps hold exactly (SQLite serialises).
        stmt = stmt.with_for_update(of=User)
    team_key, open_claims, claims_today, cooldown_until = session.execute(stmt).one()
    return ClaimStatus(
        open_claims=open_claims,
        claim_cap=rules.claim_cap,
        claims_today=claims_today,
        daily_cap=rules.daily_cap,
        cooldown_until=cooldown_until,
        refusal=_refusal(rules, actor, team_key, (open_claims, claims_today, cooldown_until), now),
    )


def _loaded(lead: Lead, values: dict[str, Any]) -> None:
    """Show what a conditional UPDATE wrote on the in-memory lead, as loaded state (nothing to flush)."""
    for name, value in values.items():
        set_committed_value(lead, name, value)


def _pool_lead(session: Session, lead_id: Any) -> Lead:
    """Load a lead that is or was in a pool; any other id is a 404 (as a lead the actor may not see)."""
    try:
        key = int(lead_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not 0 < key <= policy.MAX_ID:
        raise NotFound()
    lead = session.get(Lead, key)
    if lead is None or lead.pool_key is None:
        raise NotFound()
    return lead


def claim_lead(session: Session, actor: User, lead_id: Any, *, clock: Clock) -> LeadClaim:
    """Claim a pooled lead for `actor`; raise ClaimRefused, ClaimConflict (taken first) or NotFound."""
    if not policy.can(actor, "lead.list"):
        raise Forbidden("not allowed: lead.claim")
    now = clock.now()
    lead = _pool_lead(session, lead_id)
    if lead.owner_id == actor.id:
        raise ClaimConflict("already_yours", N_("This lead is yours already."))
    if lead.status != POOLED or lead.owner_id is not None:
        raise _conflict()
    rules = pool_rules(session, lead.pool_key or "")
    status = claim_status(session, actor, rules, now, lock=True)
    if status.refusal is not None:
        raise status.refusal
    values = {"owner_id": actor.id, "team_id": actor.team_id, "assigned_at": now, "status": "new"}
    taken = session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.status == POOLED, Lead.owner_id.is_(None), Lead.pool_key == rules.key)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        session.expire(lead)
        raise _conflict()
    _loaded(lead, values)
    # A claim still active although its lead went back to the pool another way (routed again) is over.
    session.execute(
        update(LeadClaim)
        .where(LeadClaim.lead_id == lead.id, LeadClaim.status == ACTIVE)
        .values(status="closed", ended_at=now)
        .execution_options(synchronize_session=False)
    )
    claim = LeadClaim(
        lead_id=lead.id,
        pool_key=rules.key,
        pool_version_id=rules.version_id,
        user_id=actor.id,
        status=ACTIVE,
        claimed_at=now,
        followup_due_at=rules.after(now, rules.followup),
        protected_until=now + rules.protection if rules.protection else None,
    )
    session.add(claim)
    try:
        session.flush()
    except IntegrityError as exc:  # the unique index: another transaction holds an active claim
        raise _conflict() from exc
    subject = ("lead_claims", claim.id)
    payload = {"claim_id": claim.id}
    schedule_timer(
        session, kind=FOLLOWUP_CHECK, due_at=claim.followup_due_at, payload=payload, subject=subject, now=now
    )
    if claim.protected_until is not None:
        schedule_timer(
            session,
            kind=PROTECTION_EXPIRY,
            due_at=claim.protected_until,
            payload=payload,
            subject=subject,
            now=now,
        )
    record_event(
        session,
        at=now,
        actor_id=actor.id,
        action="lead.claim",
        object_type="leads",
        object_id=lead.id,
        payload={
            "claim_id": claim.id,
            "pool": rules.key,
            "pool_version_id": rules.version_id,
            "followup_due_at": claim.followup_due_at.isoformat(),
            "protected_until": claim.protected_until.isoformat() if claim.protected_until else None,
        },
    )
    return claim


def _give_back(session: Session, lead: Lead, claim: LeadClaim) -> bool:
    """Return a lead its claimer still holds to the pool (one conditional UPDATE); False when not held."""
    values = {
        "status": POOLED,
        "owner_id": None,
        "team_id": None,
        "assigned_at": None,
        "pool_key": claim.pool_key,
    }
    done = session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.owner_id == claim.user_id, Lead.status.in_(OPEN_STATUSES))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if done == 1:
        _loaded(lead, values)
    return done == 1


def _end(
    claim: LeadClaim, status: str, now: datetime, by: int | None = None, reason: str | None = None
) -> None:
    claim.status, claim.ended_at, claim.ended_by_id, claim.release_reason = status, now, by, reason


def release_lead(
    session: Session, actor: User, lead_id: Any, *, reason: str | None = None, clock: Clock
) -> LeadClaim:
    """Give a claimed lead back to its pool by hand (when the pool allows it); return the ended claim."""
    now = clock.now()
    lead = policy.get_or_404(session, actor, Lead, lead_id)
    claim = session.scalar(select(LeadClaim).where(LeadClaim.lead_id == lead.id, LeadClaim.status == ACTIVE))
    if claim is None or lead.owner_id != claim.user_id:
        raise ReleaseRefused("not_claimed", N_("This lead is not held under a pool claim."))
    if actor.id != claim.user_id and actor.role not in ("admin", "ops", "lead"):
        raise ReleaseRefused("not_holder", N_("Only the rep holding the lead or a manager may release it."))
    rules = rules_for_version(session, claim.pool_version_id)
    if not rules.release_allowed:
        raise ReleaseRefused("release_not_allowed", N_("This pool does not allow giving leads back by hand."))
    text = reason.strip() if isinstance(reason, str) else ""
    if rules.reason_required and not text:
        raise PoolError("reason_required", N_("Give a reason for releasing the lead."), path="/reason")
    if len(text) > MAX_REASON:
        raise PoolError("reason_too_long", N_("At most %(n)s characters."), path="/reason", n=MAX_REASON)
    # Timers first: the same lock order as a running check (timer row, then lead), so neither waits forever.
    cancel_timers(session, subject=("lead_claims", claim.id))
    if not _give_back(session, lead, claim):
        raise ReleaseRefused("not_claimed", N_("This lead is not held under a pool claim."))
    _end(claim, "released", now, actor.id, text or None)
    record_event(
        session,
        at=now,
        actor_id=actor.id,
        action="lead.release",
        object_type="leads",
        object_id=lead.id,
        # The timeline shows an event's "title" after its name: here, the reason given.
        payload={
            "claim_id": claim.id,
            "pool": claim.pool_key,
            "claimer_id": claim.user_id,
            "title": text or None,
        },
    )
    session.flush()
    return claim


# --- the timers -------------------------------------------------------------------------------------


def _held_claim(ctx: TimerContext) -> tuple[LeadClaim, Lead] | None:
    """Return the timer's claim and lead when the claimer still holds it; close a claim that is over."""
    claim = ctx.session.get(LeadClaim, int(ctx.timer.payload.get("claim_id", 0)))
    if claim is None or claim.status != ACTIVE:
        return None
    lead = ctx.session.get(Lead, claim.lead_id)
    if lead is None or lead.owner_id != claim.user_id or lead.status not in OPEN_STATUSES:
        _end(claim, "closed", ctx.now)  # converted, disqualified, reassigned: nothing to return
        return None
    return claim, lead


def _followed_up(session: Session, claim: LeadClaim, kinds: tuple[str, ...]) -> bool:
    """Tell whether the claimer logged a qualifying activity on the lead since the claim."""
    found = session.scalar(
        select(Activity.id)
        .where(Activity.lead_id == claim.lead_id, Activity.actor_id == claim.user_id)
        .where(Activity.kind.in_(kinds), Activity.occurred_at >= claim.claimed_at)
        .limit(1)
    )
    return found is not None


def _moment(at: datetime | None, rules: PoolRules) -> dict[str, Any] | None:
    """A notification parameter showing `at` in the pool's zone."""
    zone = getattr(rules.day_zone, "key", None)
    return None if at is None else {"at": at.isoformat(), **({"tz": zone} if zone else {})}


def _tell_claimer(
    ctx: TimerContext, claim: LeadClaim, lead: Lead, rules: PoolRules, until: datetime | None = None
) -> None:
    """Notify the claimer that the lead went back (delivered by e-mail/webhook after commit)."""
    kind = RETURNED_NO_FOLLOWUP if claim.status == "no_followup" else RETURNED_PROTECTION_OVER
    params = {
        "lead": lead.name,
        "pool": dict(rules.label),
        "due": _moment(claim.followup_due_at, rules),
        "since": _moment(claim.claimed_at, rules),
        "until": _moment(until, rules),
    }
    notify(
        ctx.session,
        user_ids=[claim.user_id],
        kind=kind.name,
        now=ctx.now,
        subject=("leads", lead.id),
        params={k: v for k, v in params.items() if v is not None},
    )
    kick_delivery(ctx.session, ctx.runtime.jobs)


def _return(ctx: TimerContext, claim: LeadClaim, lead: Lead, status: str, **payload: Any) -> bool:
    """Give the lead back once (ledger + conditional UPDATE in one transaction); False when already done."""
    if not ctx.record_effect("return", f"pools.{status}", {"claim_id": claim.id, "lead_id": lead.id}):
        return False
    if not _give_back(ctx.session, lead, claim):
        _end(claim, "closed", ctx.now)
        return False
    _end(claim, status, ctx.now)
    record_event(
        ctx.session,
        at=ctx.now,
        actor_id=None,
        action=f"lead.{status}",
        object_type="leads",
        object_id=lead.id,
        payload={"claim_id": claim.id, "pool": claim.pool_key, "claimer_id": claim.user_id, **payload},
    )
    return True


@timer_kind(FOLLOWUP_CHECK)
def followup_check(ctx: TimerContext) -> None:
    """Return a claimed lead nobody followed up in time and make its claimer unavailable for the pool."""
    held = _held_claim(ctx)
    if held is None:
        return
    claim, lead = held
    rules = rules_for_version(ctx.session, claim.pool_version_id)
    if _followed_up(ctx.session, claim, rules.qualifying):
        return
    until = rules.after(ctx.now, rules.unavailable) if rules.unavailable else None
    if not _return(ctx, claim, lead, "no_followup", unavailable_until=until.isoformat() if until else None):
        return
    cancel_timers(ctx.session, subject=("lead_claims", claim.id), kind=PROTECTION_EXPIRY)
    _tell_claimer(ctx, claim, lead, rules, until)
    if until is not None and until > ctx.now:
        ctx.session.add(
            PoolCooldown(
                pool_key=claim.pool_key,
                user_id=claim.user_id,
                claim_id=claim.id,
                lead_id=lead.id,
                since=ctx.now,
                until=until,
            )
        )
    ctx.session.flush()


@timer_kind(PROTECTION_EXPIRY)
def protection_expiry(ctx: TimerContext) -> None:
    """Return a claimed lead its claimer held through the whole protection period without converting it."""
    held = _held_claim(ctx)
    if held is None:
        return
    claim, lead = held
    if _return(ctx, claim, lead, "protection_over"):
        cancel_timers(ctx.session, subject=("lead_claims", claim.id), kind=FOLLOWUP_CHECK)
        _tell_claimer(ctx, claim, lead, rules_for_version(ctx.session, claim.pool_version_id))
    ctx.session.flush()
