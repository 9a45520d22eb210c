"""The first-response breach sweep: leads nobody contacted in time are escalated or reassigned, once.

`sweep_breaches(session, clock=...)` reads a batch of leads with `sla_state = 'pending' AND sla_due_at <=
now` through the index `ix_leads_sla_state_due` (in due order; `FOR UPDATE SKIP LOCKED` on PostgreSQL so
two sweeps share the work, `BEGIN IMMEDIATE` on SQLite), and takes each with a conditional UPDATE
(`pending -> breached` only while it is still pending and due) in the same transaction, and the same
savepoint, as its effect: a lead is handled exactly once however many sweeps run, and a failing one rolls
back alone and stays pending for the next run. What happens follows the SLA of the routing version that
assigned the lead (pinned; the current routing when none is known):

- escalate: the team lead of the lead's team (ops when there is none, or when the owner is the team lead;
  admins when there are no ops; or ops directly with `escalate_to: ops`) and the owner are notified;
- reassign: the lead is routed again (`route_lead(..., exclude=...)`) leaving out its owner and everyone
  who lost it to this SLA before; the new owner gets a fresh deadline from routing, the old one is told.
  After `max_reassignments`, or when nobody else can take it, the breach is escalated instead.

Each breach writes a `reminder` activity (outcome `sla_escalated`, `sla_reassigned` or `sla_pooled`) on the
lead's timeline and one `lead.sla_breach` audit event, which is also how earlier reassignments are counted.
Lock order (PostgreSQL): routing takes the routing's cursor row and then the audit chain's lock, so a
reassignment runs before anything else in its transaction writes an audit event, and a run makes at most
one (the job runs again at once when more are due). The periodic job `workflows.sla_sweep` runs this
every minute.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.audit import AuditEvent, record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.jobs import JobContext, job
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import kick_delivery
from salesmesh.workflows import lead_notices
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing import route_lead
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_plan import RoutingUnavailable, current_plan, plan_for_version
from salesmesh.workflows.sla import BREACHED, MET, PENDING, SlaPolicy

log = logging.getLogger("salesmesh.sla")

SWEEP_BATCH = 200
SWEEP_JOB = "workflows.sla_sweep"
BREACH_ACTION = "lead.sla_breach"
OPEN_STATUSES = ("new", "contacted", "qualified")
_DEFAULT = SlaPolicy(
    minutes=0,
    on_breach="escalate",
    escalate_to="team_lead",
    max_reassignments=0,
    calendar=None,
    calendar_key=None,
)


@dataclass
class SweepResult:
    """What one sweep did; `more` says due leads are left for another run."""

    escalated: int = 0
    reassigned: int = 0
    pooled: int = 0
    settled: int = 0  # contacted or closed in the meantime: no effect
    failed: int = 0
    more: bool = False

    @property
    def handled(self) -> int:
        return self.escalated + self.reassigned + self.pooled + self.settled


@dataclass(frozen=True)
class _History:
    """Earlier breaches of one lead: how many reassignments, and who lost it."""

    moves: int
    former_owners: frozenset[int]


def _histories(session: Session, ids: Sequence[int]) -> dict[int, _History]:
    rows = session.execute(
        select(AuditEvent.object_id, AuditEvent.payload).where(
            AuditEvent.object_type == "leads",
            AuditEvent.object_id.in_(list(ids)),
            AuditEvent.action == BREACH_ACTION,
        )
    ).all()
    moves: dict[int, int] = defaultdict(int)
    owners: dict[int, set[int]] = defaultdict(set)
    for lead_id, payload in rows:
        if payload.get("action") in ("reassigned", "pooled"):
            moves[lead_id] += 1
        if payload.get("owner_id") is not None:
            owners[lead_id].add(int(payload["owner_id"]))
    return {i: _History(moves[i], frozenset(owners[i])) for i in ids}


def _policies(session: Session, leads: Sequence[Lead]) -> dict[int, SlaPolicy]:
    """Return each lead's SLA from the routing version of its latest assignment (else the current one)."""
    rows = session.execute(
        select(RoutingDecision.lead_id, RoutingDecision.routing_version_id)
        .where(
            RoutingDecision.lead_id.in_([lead.id for lead in leads]), RoutingDecision.outcome == "assigned"
        )
        .order_by(RoutingDecision.lead_id, RoutingDecision.decided_at, RoutingDecision.id)
    ).all()
    pinned = dict(rows)  # the last row per lead wins: its latest assignment
    by_version: dict[int, SlaPolicy | None] = {}
    policies: dict[int, SlaPolicy] = {}
    for lead in leads:
        version_id = pinned.get(lead.id)
        try:
            if version_id is not None:
                if version_id not in by_version:
                    version = session.get(DefinitionVersion, version_id)
                    by_version[version_id] = plan_for_version(session, version).sla if version else None
                policy = by_version[version_id]
            else:
                policy = current_plan(session, form_version_id=lead.form_version_id).sla
        except RoutingUnavailable:
            policy = None
        policies[lead.id] = policy or _DEFAULT
    return policies


def escalation_targets(session: Session, lead: Lead, escalate_to: str) -> list[int]:
    """Return who hears of a breach: the team lead (not the owner), else active ops, else active admins."""
    if escalate_to == "team_lead" and lead.team_id is not None:
        head = session.scalar(
            select(User.id)
            .join(Team, Team.lead_id == User.id)
            .where(Team.id == lead.team_id, User.active.is_(True))
        )
        if head is not None and head != lead.owner_id:
            return [head]
    for role in ("ops", "admin"):
        ids = list(
            session.scalars(select(User.id).where(User.role == role, User.active.is_(True)).order_by(User.id))
        )
        if ids:
            return ids
    return []


def _claim(session: Session, lead: Lead, now: datetime, state: str | None) -> bool:
    """Move the lead's SLA from pending to `state` unless someone else did first; True when we did."""
    result = session.execute(
        update(Lead)
        .where(Lead.id == lead.id, Lead.sla_state == PENDING, Lead.sla_due_at <= now)
        .values(sla_state=state)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    set_committed_value(lead, "sla_state", state)  # the row says so already; no second UPDATE
    return True


def _timeline(session: Session, lead: Lead, now: datetime, outcome: str, data: dict[str, Any]) -> None:
    session.add(
        Activity(
            kind="reminder",
            subject_type="lead",
            lead_id=lead.id,
            customer_id=lead.converted_customer_id,
            deal_id=lead.converted_deal_id,
            occurred_at=now,
            actor_id=None,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            outcome=outcome,
            data=data,
            created_at=now,
        )
    )


def _audit(session: Session, lead: Lead, now: datetime, payload: dict[str, Any]) -> None:
    record_event(
        session,
        at=now,
        actor_id=None,
        action=BREACH_ACTION,
        object_type="leads",
        object_id=lead.id,
        payload=payload,
    )


def _escalate(
    session: Session, lead: Lead, policy: SlaPolicy, now: datetime, due: datetime, reason: str
) -> None:
    targets = escalation_targets(session, lead, policy.escalate_to)
    owner_name = session.scalar(select(User.name).where(User.id == lead.owner_id)) if lead.owner_id else None
    due_param = lead_notices.moment(due, policy.zone)
    lead_notices.notify_lead(
        session,
        targets,
        lead_notices.SLA_BREACHED.name,
        lead,
        now=now,
        due=due_param,
        owner=owner_name or "—",
    )
    lead_notices.notify_lead(
        session, [lead.owner_id], lead_notices.SLA_MISSED.name, lead, now=now, due=due_param
    )
    data = {"due_at": due.isoformat(), "action": "escalated", "reason": reason, "notified": targets}
    _timeline(session, lead, now, "sla_escalated", data)
    _audit(session, lead, now, {**data, "owner_id": lead.owner_id, "escalate_to": policy.escalate_to})


def _reassign(
    session: Session, lead: Lead, policy: SlaPolicy, history: _History, clock: Clock, due: datetime
) -> str:
    """Route the lead away from its owner; return the outcome, escalating when nobody else can take it."""
    now = clock.now()
    previous = lead.owner_id
    exclude = set(history.former_owners) | ({previous} if previous is not None else set())
    try:
        decision = route_lead(session, lead, clock=clock, exclude=exclude)  # first: see the lock order above
    except RoutingUnavailable:  # no usable routing any more: somebody must still hear of the breach
        _escalate(session, lead, policy, now, due, reason="routing_unavailable")
        return "escalated"
    if decision.outcome == "unassigned":
        _escalate(session, lead, policy, now, due, reason="nobody_else")
        return "escalated"
    moved = "reassigned" if decision.outcome == "assigned" else "pooled"
    kind = lead_notices.REASSIGNED_AWAY if moved == "reassigned" else lead_notices.RETURNED_TO_POOL
    lead_notices.notify_lead(
        session, [previous], kind.name, lead, now=now, due=lead_notices.moment(due, policy.zone)
    )
    data = {
        "due_at": due.isoformat(),
        "action": moved,
        "decision_id": decision.id,
        "to_owner_id": decision.owner_id,
        "pool": decision.pool_key,
    }
    _timeline(session, lead, now, f"sla_{moved}", data)
    _audit(session, lead, now, {**data, "owner_id": previous})
    return moved


def _wants_reassign(policy: SlaPolicy, history: _History) -> bool:
    return policy.on_breach == "reassign" and history.moves < policy.max_reassignments


def sweep_breaches(session: Session, *, clock: Clock, limit: int = SWEEP_BATCH) -> SweepResult:
    """Handle up to `limit` leads whose first-response deadline passed (at most one reassignment per run)."""
    now = clock.now()
    result = SweepResult()
    leads = list(
        session.scalars(
            select(Lead)
            .where(Lead.sla_state == PENDING, Lead.sla_due_at <= now)
            .order_by(Lead.sla_due_at, Lead.id)
            .limit(limit + 1)
            .with_for_update(skip_locked=True)
        )
    )
    result.more = len(leads) > limit
    leads = leads[:limit]
    if not leads:
        return result
    policies = _policies(session, leads)
    histories = _histories(session, [lead.id for lead in leads])
    movers = [lead for lead in leads if _wants_reassign(policies[lead.id], histories[lead.id])]
    if len(movers) > 1:
        result.more = True
    order = movers[:1] + [lead for lead in leads if lead not in movers]
    for lead in order:
        try:
            with session.begin_nested():
                _handle(session, lead, policies[lead.id], histories[lead.id], clock, result)
        except Exception:  # noqa: BLE001 - one lead's failure must not stop the batch; it stays pending
            log.exception("first-response breach of lead %s could not be handled; retried next run", lead.id)
            result.failed += 1
    session.flush()
    return result


def _handle(
    session: Session, lead: Lead, policy: SlaPolicy, history: _History, clock: Clock, result: SweepResult
) -> None:
    now = clock.now()
    due = lead.sla_due_at
    assert due is not None  # selected by sla_due_at <= now
    if lead.first_contact_at is not None:  # contacted, but the state was not moved (an import, a race)
        if _claim(session, lead, now, MET if lead.first_contact_at <= due else BREACHED):
            result.settled += 1
        return
    if lead.owner_id is None or lead.status not in OPEN_STATUSES:  # pooled, converted, disqualified
        if _claim(session, lead, now, None):
            result.settled += 1
        return
    if not _claim(session, lead, now, BREACHED):
        return
    if _wants_reassign(policy, history):
        outcome = _reassign(session, lead, policy, history, clock, due)
    else:
        reason = "max_reassignments" if policy.on_breach == "reassign" else "policy"
        _escalate(session, lead, policy, now, due, reason=reason)
        outcome = "escalated"
    if outcome == "reassigned":
        result.reassigned += 1
    elif outcome == "pooled":
        result.pooled += 1
    else:
        result.escalated += 1


@job(SWEEP_JOB)
def sla_sweep(ctx: JobContext) -> dict[str, int | bool]:
    """Handle one batch of missed first-response deadlines; run again at once when more are due."""
    result = sweep_breaches(ctx.session, clock=ctx.clock, limit=ctx.runtime.settings.sweeper_batch_size)
    if result.handled:
        kick_delivery(ctx.session, ctx.runtime.jobs)
    if result.more and result.handled:
        ctx.runtime.jobs.enqueue_after_commit(ctx.session, SWEEP_JOB)
    return {
        "escalated": result.escalated,
        "reassigned": result.reassigned,
        "pooled": result.pooled,
        "settled": result.settled,
        "failed": result.failed,
        "more": result.more,
    }
