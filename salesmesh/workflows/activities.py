"""Logging interactions and managing tasks on leads, customers and deals.

`log_activity` writes one entry of a record's history (a call, a visit, an objection ...; the runtime
writes stage changes, routing decisions and reminders the same way with `actor=None`). It files the
entry under every record it belongs to (a deal's activity also belongs to its customer; a converted
lead's to the customer and deal it became), moves `last_activity_at` of those records for interactions,
marks a new lead contacted on its first contact, and takes over the next step it plans.
`log_deal_entries` writes many runtime entries on deals at once (a batch of reminders): one INSERT, the
audit events as one batch, and the lights that time has changed refreshed together. Tasks are to-dos for
one person about one record, created and completed here. Same service rules as
`salesmesh.workflows.records`: policy, validation (`RecordError`), audit, flush, no commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_events
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.lights import refresh_deal_light, refresh_lights, stale_lights
from salesmesh.workflows.models import (
    ACTIVITY_KINDS,
    CONTACT_KINDS,
    LOGGED_KINDS,
    SYSTEM_KINDS,
    Activity,
    Customer,
    Deal,
    Lead,
    Task,
)
from salesmesh.workflows.pipelines import refuse_unplanned_activity
from salesmesh.workflows.record_values import Errors
from salesmesh.workflows.sla import PENDING as SLA_PENDING
from salesmesh.workflows.sla import state_on_contact

# How far ahead of the clock an activity may be dated (clock skew between a phone and the server).
FUTURE_SLACK = timedelta(minutes=5)
_MODELS: dict[str, Any] = {"lead": Lead, "customer": Customer, "deal": Deal}


@dataclass(frozen=True)
class Subject:
    """The record an activity or task is about, and the ids of every record it belongs to."""

    type: str
    row: Any
    lead_id: int | None
    customer_id: int | None
    deal_id: int | None


def resolve_subject(
    session: Session,
    actor: User | None,
    *,
    lead_id: int | None,
    customer_id: int | None,
    deal_id: int | None,
    action: str,
) -> Subject:
    """Load the one record named (404 when the actor may not see it) and require `action` on it.

    `action` may contain `{type}`, filled with lead, customer or deal (e.g. "{type}.view").
    """
    given = [
        (t, i) for t, i in (("lead", lead_id), ("customer", customer_id), ("deal", deal_id)) if i is not None
    ]
    if len(given) != 1:
        raise rv.fail("/subject", N_("Give exactly one of a lead, a customer or a deal."))
    kind, ident = given[0]
    row = rv.load(session, actor, _MODELS[kind], ident)
    rv.check(actor, action.format(type=kind), row)
    if kind == "lead":
        return Subject(kind, row, row.id, row.converted_customer_id, row.converted_deal_id)
    if kind == "deal":
        return Subject(kind, row, None, row.customer_id, row.id)
    return Subject(kind, row, None, row.id, None)


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _touch(session: Session, subject: Subject, activity: Activity) -> dict[str, Any]:
    """Move the subject's history fields for an activity; return what changed on a lead (for the audit)."""
    effects: dict[str, Any] = {}
    at = activity.occurred_at
    if activity.kind in LOGGED_KINDS:
        rows: list[Any] = [subject.row]
        if subject.type != "customer" and subject.customer_id is not None:
            rows.append(session.get(Customer, subject.customer_id))
        if subject.type == "lead" and subject.deal_id is not None:
            rows.append(session.get(Deal, subject.deal_id))
        for row in rows:
            if row is not None:
                row.last_activity_at = _later(row.last_activity_at, at)
    if subject.type == "lead" and activity.kind in CONTACT_KINDS:
        lead: Lead = subject.row
        if lead.first_contact_at is None or at < lead.first_contact_at:
            lead.first_contact_at = at
            effects["first_contact_at"] = at
            if lead.sla_state == SLA_PENDING:  # the first contact ends the first-response clock
                lead.sla_state = effects["sla_state"] = state_on_contact(lead, at)
        if lead.status == "new":
            lead.status = effects["status"] = "contacted"
    if subject.type in ("lead", "deal") and (activity.next_step or activity.next_step_due_at):
        subject.row.next_step = activity.next_step
        subject.row.next_step_due_at = activity.next_step_due_at
    return effects


def log_activity(
    session: Session,
    actor: User | None,
    *,
    kind: str,
    clock: Clock,
    lead_id: int | None = None,
    customer_id: int | None = None,
    deal_id: int | None = None,
    contact_id: int | None = None,
    occurred_at: datetime | None = None,
    outcome: str | None = None,
    summary: str | None = None,
    next_step: str | None = None,
    next_step_due_at: datetime | None = None,
    data: dict[str, Any] | None = None,
    form_version_id: int | None = None,
) -> Activity:
    """Log an interaction on one lead, customer or deal (people: hand-logged kinds; the system: any)."""
    subject = resolve_subject(
        session, actor, lead_id=lead_id, customer_id=customer_id, deal_id=deal_id, action="activity.log"
    )
    if subject.type == "deal" and actor is not None:
        refuse_unplanned_activity(session, subject.row, kind)  # a locked stage allows its planned actions
    errors = Errors()
    rv.choice(kind, "/kind", errors, LOGGED_KINDS if actor is not None else ACTIVITY_KINDS)
    now = clock.now()
    when = rv.moment(occurred_at, "/occurred_at", errors) if occurred_at is not None else now
    if when is not None and when > now + FUTURE_SLACK:
        errors.add("/occurred_at", N_("Cannot be in the future."))
    due = rv.moment(next_step_due_at, "/next_step_due_at", errors)
    contact = rv.contact_at(session, contact_id, subject.customer_id, "/contact_id", errors)
    values = {
        "outcome": rv.text(outcome, "/outcome", errors, max_len=80),
        "summary": rv.text(summary, "/summary", errors, max_len=20_000),
        "next_step": rv.text(next_step, "/next_step", errors, max_len=500),
        "data": rv.data(data, "/data", errors),
        "form_version_id": rv.form_version(session, form_version_id, "/form_version_id", errors),
    }
    errors.raise_if_any()
    activity = Activity(
        kind=kind,
        subject_type=subject.type,
        lead_id=subject.lead_id,
        customer_id=subject.customer_id,
        deal_id=subject.deal_id,
        contact_id=contact.id if contact is not None else None,
        occurred_at=when,
        actor_id=actor.id if actor is not None else None,
        owner_id=subject.row.owner_id,
        team_id=subject.row.team_id,
        next_step_due_at=due,
        created_at=now,
        **values,
    )
    session.add(activity)
    effects = _touch(session, subject, activity)
    session.flush()
    rv.audit(
        session,
        clock,
        actor,
        "activity.log",
        activity,
        kind=kind,
        subject_type=subject.type,
        subject_id=subject.row.id,
        **effects,
    )
    refresh_deal_light(session, subject.deal_id, now=now)  # an interaction or next step moves the light
    return activity


_INSERT_ENTRIES = insert(Activity.__table__).returning(
    Activity.__table__.c.id, Activity.__table__.c.deal_id, Activity.__table__.c.kind
)


@dataclass(frozen=True)
class DealEntry:
    """One entry the runtime writes on a deal's timeline (`log_deal_entries`)."""

    deal: Deal
    kind: str
    summary: str | None = None
    data: dict[str, Any] | None = None


def log_deal_entries(session: Session, entries: Sequence[DealEntry], *, clock: Clock) -> list[int]:
    """Log runtime entries on many deals at once, as `log_activity` logs one; return their ids.

    For the runtime (no actor, nothing to authorise) and system kinds only, which move none of a deal's
    history fields: one INSERT, the `activity.log` audit events appended as one batch, and one refresh for
    the deals whose light time has changed (`lights.stale_lights`). Errors name `/<index>/kind`,
    `/<index>/summary` or `/<index>/data`.
    """
    if not entries:
        return []
    errors = Errors()
    now = clock.now()
    datas = _plain_datas([entry.data for entry in entries])
    rows = []
    for index, entry in enumerate(entries):
        here = errors.nested(f"/{index}")
        # The columns a system entry on a deal leaves empty (lead, contact, actor, outcome, next step, form)
        # are not named: the table leaves them NULL.
        rows.append(
            {
                "kind": rv.choice(entry.kind, "/kind", here, SYSTEM_KINDS),
                "subject_type": "deal",
                "customer_id": entry.deal.customer_id,
                "deal_id": entry.deal.id,
                "occurred_at": now,
                "owner_id": entry.deal.owner_id,
                "team_id": entry.deal.team_id,
                "summary": rv.text(entry.summary, "/summary", here, max_len=20_000),
                "data": datas[index] if datas is not None else rv.data(entry.data, "/data", here),
                "created_at": now,
            }
        )
    errors.raise_if_any()
    # The rows come back unordered (SQLite would insert them one by one to keep the order): the audit
    # events need only each row's id, deal and kind.
    written = sorted(session.execute(_INSERT_ENTRIES, rows))
    record_events(
        session,
        [
            {
                "at": now,
                "actor_id": None,
                "action": "activity.log",
                "object_type": Activity.__tablename__,
                "object_id": ident,
                "payload": {"kind": kind, "subject_type": "deal", "subject_id": deal_id},
            }
            for ident, deal_id, kind in written
        ],
    )
    # System entries move none of a light's inputs (last activity, next step, tasks): only lights that
    # time has changed need computing again, as the periodic light sweep would.
    deals = {entry.deal.id: entry.deal for entry in entries}.values()
    refresh_lights(session, stale_lights(deals, now=now), now=now)
    return [ident for ident, _deal, _kind in written]


def _plain_datas(values: list[dict[str, Any] | None]) -> list[dict[str, Any]] | None:
    """What `rv.data` returns for each value, with one encoding for all; None when one is not a JSON
    object or they are too large together (then each is checked, and the bad one named, on its own)."""
    if not all(value is None or isinstance(value, dict) for value in values):
        return None
    try:
        encoded = json.dumps([value or {} for value in values], ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return json.loads(encoded) if len(encoded.encode()) <= rv.MAX_DATA_BYTES else None


# --- tasks ------------------------------------------------------------------------------------------


def create_task(
    session: Session,
    actor: User | None,
    *,
    title: str,
    clock: Clock,
    lead_id: int | None = None,
    customer_id: int | None = None,
    deal_id: int | None = None,
    due_at: datetime | None = None,
    assignee_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Task:
    """Create a to-do about one record, for the actor (default), or for someone they may give work to."""
    subject = resolve_subject(
        session, actor, lead_id=lead_id, customer_id=customer_id, deal_id=deal_id, action="task.create"
    )
    errors = Errors()
    clean_title = rv.text(title, "/title", errors, max_len=300, required=True)
    due = rv.moment(due_at, "/due_at", errors)
    clean_data = rv.data(data, "/data", errors)
    if assignee_id is not None:
        assignee = rv.assignee(session, actor, assignee_id, "/assignee_id", errors)
    else:
        assignee = actor if actor is not None else subject.row.owner
    errors.raise_if_any()
    task = Task(
        title=clean_title,
        subject_type=subject.type,
        lead_id=subject.lead_id,
        customer_id=subject.customer_id,
        deal_id=subject.deal_id,
        assignee_id=assignee.id if assignee is not None else None,
        team_id=assignee.team_id if assignee is not None else subject.row.team_id,
        created_by_id=actor.id if actor is not None else None,
        status="open",
        due_at=due,
        data=clean_data,
        created_at=clock.now(),
    )
    session.add(task)
    session.flush()
    rv.audit(
        session,
        clock,
        actor,
        "task.create",
        task,
        title=task.title,
        assignee_id=task.assignee_id,
        due_at=due,
        subject_type=subject.type,
        subject_id=subject.row.id,
    )
    refresh_deal_light(session, task.deal_id, now=task.created_at)  # a task is part of the deal's plan
    return task


def complete_task(session: Session, actor: User | None, task_id: int, *, clock: Clock) -> Task:
    """Mark a task done (completing a done task again changes nothing; a cancelled one cannot be done)."""
    task: Task = rv.load(session, actor, Task, task_id)
    rv.check(actor, "task.complete", task)
    if task.status == "done":
        return task
    if task.status != "open":
        raise rv.fail("/status", N_("This task was cancelled."))
    task.status = "done"
    task.done_at = clock.now()
    session.flush()
    rv.audit(session, clock, actor, "task.complete", task)
    refresh_deal_light(session, task.deal_id, now=task.done_at)
    return task
