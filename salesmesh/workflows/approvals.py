"""Approval requests at run time: opening one, the approvals queue, deciding, and the deadline timer.

`open_approval` is called by the services that meet a deviation (a skipped stage or unmet exit criteria in
`pipelines`, a custom objection response in `objections`): it picks the approver — the lead of the deal's
team, or ops when the pipeline or library says so, when the team has no lead, or when the lead asks
themselves — sets the deadline (`deadline_hours` of working time on the pipeline's calendar when it has
one, else wall-clock hours), schedules the `approvals.deadline` timer, audits, and notifies the approver.
`decide_approval` approves or rejects an open request (pending or escalated) once — a concurrent second
decision is a `DecisionConflict` (409) — cancels the timer, audits, tells the requester, and hands the
outcome to the settler registered for the request's kind (`@settles`): the pipelines module applies an
approved move, the objections module records the outcome on the objection activity. At the deadline the
timer acts as the request's `on_deadline` says: `escalate` keeps it open and tells ops; `approve` and
`reject` decide it as the system (a rejection by timeout is stored as `expired`). Settlers register at
import; `missing_settlers()` names kinds nobody settles (a start-up check).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from salesmesh.metamodel.versions import get_published
from salesmesh.platform import policy
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import notification_kind, notify
from salesmesh.platform.timers import TimerContext, cancel_timers, schedule_timer, timer_kind
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.approval_models import (
    APPROVAL_KIND_NAMES,
    APPROVAL_KINDS,
    APPROVAL_STATUS_NAMES,
    MOVE_KINDS,
    OPEN_STATUSES,
    ApprovalRequest,
)
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from salesmesh.workflows.models import Deal
from salesmesh.workflows.pipeline_specs import ApprovalRules
from salesmesh.workflows.record_values import Errors, RecordError

DEADLINE_TIMER = "approvals.deadline"
MAX_NOTE = 2000
_CLOSED = {
    "approved": N_("This request was approved already."),
    "rejected": N_("This request was rejected already."),
    "expired": N_("This request is closed already: it expired."),
}

REQUESTED = notification_kind(
    "approval.requested",
    title=N_("Approval requested: %(kind)s for %(deal)s"),
    body=N_("%(requester)s asks for your decision by %(deadline)s."),
    path="/approvals#approval-{subject_id}",
)
DECIDED = notification_kind(
    "approval.decided",
    title=N_("%(kind)s for %(deal)s: %(status)s"),
    body=N_("Decided by %(decider)s."),
    path="/approvals#approval-{subject_id}",
)
ESCALATED = notification_kind(
    "approval.escalated",
    title=N_("Escalated: %(kind)s for %(deal)s is past its deadline"),
    body=N_("%(approver)s did not decide in time; sales operations can decide now."),
    path="/approvals#approval-{subject_id}",
)


class DecisionConflict(RecordError):
    """The request was decided (or closed) by someone else meanwhile: HTTP 409."""

    status = 409


Settler = Callable[[Session, User | None, ApprovalRequest, Clock], None]
_SETTLERS: dict[str, Settler] = {}


def settles(*kinds: str) -> Callable[[Settler], Settler]:
    """Register the decorated function to carry out decisions on requests of `kinds` (one owner per kind)."""

    def register(settler: Settler) -> Settler:
        for kind in kinds:
            if kind not in APPROVAL_KINDS:
                raise ValueError(f"unknown approval kind {kind!r}")
            owner = _SETTLERS.get(kind)
            if owner is not None and owner.__qualname__ != settler.__qualname__:
                raise ValueError(f"approval kind {kind!r} is already settled by {owner.__module__}")
            _SETTLERS[kind] = settler
        return settler

    return register


def missing_settlers() -> list[str]:
    """Return the approval kinds no module settles (empty when every kind is handled)."""
    return [kind for kind in APPROVAL_KINDS if kind not in _SETTLERS]


# --- opening ---------------------------------------------------------------------------------------------


def deadline_after(session: Session, start: datetime, hours: float, calendar_key: str | None) -> datetime:
    """Return `hours` of working time after `start` on the published calendar (else wall-clock hours)."""
    span = timedelta(hours=hours)
    version = get_published(session, "calendar", calendar_key) if calendar_key else None
    if version is not None:
        try:
            return WorkingCalendar.from_document(version.document).add_working_time(start, span)
        except CalendarError:
            pass  # an unusable calendar must not block the request: fall back to wall-clock hours
    return start + span


def _approver(session: Session, actor: User | None, deal: Deal, wanted: str) -> tuple[str, int | None]:
    if wanted == "team_lead" and deal.team_id is not None:
        lead_id = session.scalar(
            select(User.id)
            .join(Team, Team.lead_id == User.id)
            .where(Team.id == deal.team_id, User.active.is_(True))
        )
        if lead_id is not None and (actor is None or lead_id != actor.id):
            return "team_lead", lead_id
    return "ops", None  # no (active) lead, or the lead asks themselves


def _ops_ids(session: Session) -> list[int]:
    return list(session.scalars(select(User.id).where(User.role == "ops", User.active.is_(True))))


def open_move_request(session: Session, deal_id: int) -> ApprovalRequest | None:
    """Return the deal's open stage-move request, if any (one statement)."""
    return session.scalars(
        select(ApprovalRequest).where(
            ApprovalRequest.deal_id == deal_id,
            ApprovalRequest.kind.in_(MOVE_KINDS),
            ApprovalRequest.status.in_(OPEN_STATUSES),
        )
    ).first()


def open_approval(
    session: Session,
    actor: User | None,
    *,
    kind: str,
    deal: Deal,
    rules: ApprovalRules,
    payload: Mapping[str, Any],
    calendar_key: str | None,
    clock: Clock,
) -> ApprovalRequest:
    """Open a request of `kind` about `deal` for its approver, with the deadline timer; audit and notify."""
    if kind not in APPROVAL_KINDS:
        raise ValueError(f"unknown approval kind {kind!r}")
    now = clock.now()
    role, approver_id = _approver(session, actor, deal, rules.approver)
    request = ApprovalRequest(
        kind=kind,
        status="pending",
        deal_id=deal.id,
        team_id=deal.team_id,
        requested_by_id=actor.id if actor is not None else None,
        approver_role=role,
        approver_id=approver_id,
        on_deadline=rules.on_deadline,
        deadline_at=deadline_after(session, now, rules.deadline_hours, calendar_key),
        payload=dict(payload),
        created_at=now,
    )
    session.add(request)
    session.flush()
    schedule_timer(
        session,
        kind=DEADLINE_TIMER,
        due_at=request.deadline_at,
        payload={"approval_id": request.id},
        subject=("approval_requests", request.id),
        dedupe_key=f"approval:{request.id}:deadline",
        now=now,
    )
    rv.audit(
        session,
        clock,
        actor,
        "approval.request",
        request,
        kind=kind,
        deal_id=deal.id,
        approver_role=role,
        approver_id=approver_id,
        deadline_at=request.deadline_at,
        **dict(payload),
    )
    notify(
        session,
        user_ids=[approver_id] if approver_id is not None else _ops_ids(session),
        kind=REQUESTED.name,
        now=now,
        subject=("approval_requests", request.id),
        params={
            "kind": {"msg": APPROVAL_KIND_NAMES[kind]},
            "deal": deal.name,
            "requester": actor.name if actor is not None else {"msg": "System"},
            "deadline": {"at": request.deadline_at.isoformat(), "tz": _zone(session, calendar_key)},
        },
    )
    return request


def _zone(session: Session, calendar_key: str | None) -> str | None:
    version = get_published(session, "calendar", calendar_key) if calendar_key else None
    zone = version.document.get("timezone") if version is not None else None
    return zone if isinstance(zone, str) else None


def close_request(
    session: Session, request: ApprovalRequest, *, status: str, reason: str, clock: Clock
) -> None:
    """Close an open request without a decision (`expired` when the deal moved on); audit why."""
    request.status = status
    request.decided_at = clock.now()
    cancel_timers(session, subject=("approval_requests", request.id))
    rv.audit(session, clock, None, f"approval.{status}", request, deal_id=request.deal_id, reason=reason)
    _settle(session, None, request, clock)


# --- the queue and decisions -----------------------------------------------------------------------------


def list_approvals(
    session: Session, actor: User, *, open_only: bool = True, limit: int = 100
) -> list[ApprovalRequest]:
    """Return the requests the actor may see, open ones by deadline (else the latest decided first)."""
    rv.check(actor, "approval.list")
    stmt = policy.scope(
        select(ApprovalRequest).options(
            joinedload(ApprovalRequest.deal),
            joinedload(ApprovalRequest.requested_by),
            joinedload(ApprovalRequest.approver),
            joinedload(ApprovalRequest.decided_by),
        ),
        actor,
        ApprovalRequest,
    )
    if open_only:
        stmt = stmt.where(ApprovalRequest.status.in_(OPEN_STATUSES)).order_by(
            ApprovalRequest.deadline_at, ApprovalRequest.id
        )
    else:
        stmt = stmt.where(ApprovalRequest.status.not_in(OPEN_STATUSES)).order_by(
            ApprovalRequest.decided_at.desc(), ApprovalRequest.id.desc()
        )
    return list(session.scalars(stmt.limit(limit)).unique())


def can_decide(actor: User | None, request: ApprovalRequest, *, seen: bool = False) -> bool:
    """Tell whether `actor` may decide `request` now (open, theirs to decide, not their own request).

    `seen=True` says the request was read through the actor's scope (`list_approvals`), saving a query.
    """
    if actor is None or not request.is_open:
        return False
    if seen:
        if not policy.can(actor, "approval.list") or not policy.decides_seen_approval(actor, request):
            return False
    elif not policy.can(actor, "approval.decide", request):
        return False
    return actor.role == "admin" or request.requested_by_id != actor.id


def _finish(
    session: Session,
    actor: User | None,
    request: ApprovalRequest,
    status: str,
    note: str | None,
    clock: Clock,
) -> None:
    """Mark an open request decided once (409 when someone else did first), then settle and tell."""
    now = clock.now()
    done = session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.status.in_(OPEN_STATUSES))
        .values(
            status=status,
            decided_by_id=actor.id if actor is not None else None,
            decided_at=now,
            decision_note=note,
        )
        .execution_options(synchronize_session="evaluate")
    )
    if done.rowcount != 1:
        raise DecisionConflict(rv.fail("/status", N_("This request was decided meanwhile.")).errors)
    cancel_timers(session, subject=("approval_requests", request.id))
    action = {"approved": "approval.approve", "rejected": "approval.reject"}.get(status, f"approval.{status}")
    rv.audit(session, clock, actor, action, request, kind=request.kind, deal_id=request.deal_id, note=note)
    _settle(session, actor, request, clock)
    notify(
        session,
        user_ids=[request.requested_by_id],
        kind=DECIDED.name,
        now=now,
        subject=("approval_requests", request.id),
        params={
            "kind": {"msg": APPROVAL_KIND_NAMES[request.kind]},
            "deal": request.deal.name,
            "status": {"msg": APPROVAL_STATUS_NAMES[status]},
            "decider": actor.name if actor is not None else {"msg": "System"},
        },
    )


def _settle(session: Session, actor: User | None, request: ApprovalRequest, clock: Clock) -> None:
    settler = _SETTLERS.get(request.kind)
    if settler is None:
        raise RuntimeError(
            f"no settler for approval kind {request.kind!r}: import salesmesh.workflows.pipelines and "
            "salesmesh.workflows.objections (both are in TASK_MODULES)"
        )
    settler(session, actor, request, clock)


def decide_approval(
    session: Session, actor: User, approval_id: Any, *, approve: bool, note: str | None = None, clock: Clock
) -> ApprovalRequest:
    """Approve or reject an open request the actor may decide (a foreign id is 404, a rep's 403)."""
    request: ApprovalRequest = rv.load(session, actor, ApprovalRequest, approval_id)
    rv.check(actor, "approval.decide", request)
    errors = Errors()
    clean_note = rv.text(note, "/note", errors, max_len=MAX_NOTE)
    if not request.is_open:
        errors.add("/status", _CLOSED[request.status])
    elif actor.role != "admin" and request.requested_by_id == actor.id:
        errors.add("/status", N_("You cannot decide your own request."))
    if not approve and clean_note is None:
        errors.add("/note", N_("Say why you reject it: the requester reads it."))
    errors.raise_if_any()
    _finish(session, actor, request, "approved" if approve else "rejected", clean_note, clock)
    session.flush()
    return request


# --- the deadline ----------------------------------------------------------------------------------------


@timer_kind(DEADLINE_TIMER)
def approval_deadline(ctx: TimerContext) -> None:
    """At the deadline of a pending request: escalate it, or approve / reject it as the system."""
    request = ctx.session.get(ApprovalRequest, ctx.timer.payload.get("approval_id"))
    if request is None or request.status != "pending":
        return  # decided (or escalated) before the deadline: nothing is due
    if not ctx.record_effect("deadline", "approval.deadline", {"approval_id": request.id}):
        return
    if request.on_deadline == "approve":
        _finish(ctx.session, None, request, "approved", None, ctx.clock)
    elif request.on_deadline == "reject":
        _finish(ctx.session, None, request, "expired", None, ctx.clock)
    else:
        _escalate(ctx.session, request, ctx.clock)
    ctx.session.flush()


def _escalate(session: Session, request: ApprovalRequest, clock: Clock) -> None:
    now = clock.now()
    escalated = session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.status == "pending")
        .values(status="escalated", escalated_at=now)
        .execution_options(synchronize_session="evaluate")
    )
    if escalated.rowcount != 1:
        session.refresh(request)
        return  # decided at the same moment: the decision stands
    ops = _ops_ids(session)
    rv.audit(session, clock, None, "approval.escalate", request, deal_id=request.deal_id, notified=ops)
    _settle(session, None, request, clock)
    notify(
        session,
        user_ids=ops,
        kind=ESCALATED.name,
        now=now,
        subject=("approval_requests", request.id),
        params={
            "kind": {"msg": APPROVAL_KIND_NAMES[request.kind]},
            "deal": request.deal.name,
            "approver": request.approver.name
            if request.approver is not None
            else {"msg": "Sales operations"},
        },
    )
