"""What is on a person's plate: "My day" (new leads to contact, reminders, follow-ups, due tasks, deals
slipping) and the open tasks of one record (its next-step plan).

Read-only services (`verb_noun(session, actor, ...)`), every query scoped by the policy. "My day" is about
the actor's own work: leads and deals they own and tasks assigned to them, oldest or most urgent first.
Deals slip when their next step is overdue or when the pipeline's lights (computed by the pipeline
runtime into `Deal.light`) turn yellow or red, red first; both feed the same section, so the lights slot
in without a new screen. Reminders are the person's unread notifications of the kinds that ask them to
act (`REMINDER_KINDS`: action-pack reminders and escalations, missed first-response deadlines, approvals),
newest first, read from the notifications inbox in one indexed query. Each section returns at most `limit`
rows and says whether there are more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session, joinedload

from salesmesh.platform import policy
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification
from salesmesh.workflows.models import Customer, Deal, Lead, Task

SECTION_LIMIT = 25
# Leads still being worked (a converted lead's next step moved to its deal).
OPEN_LEAD_STATUSES = ("new", "contacted", "qualified")
SUBJECT_MODELS: dict[str, Any] = {"lead": Lead, "customer": Customer, "deal": Deal}
# Notification kinds that ask the reader to do something (registered by the action kinds, the SLA sweep and
# approvals); the rest of the inbox (new-lead notices, pool returns, survey answers) is news, not a to-do.
REMINDER_KINDS = (
    "actions.reminder",
    "actions.escalation",
    "lead.sla_missed",
    "lead.sla_breached",
    "approval.requested",
    "approval.escalated",
    "approval.decided",
)


@dataclass(frozen=True)
class Section:
    """Up to `limit` rows of one part of the day, and whether more are waiting."""

    rows: list[Any]
    more: bool

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class MyDay:
    """A rep's day: leads to contact, unread reminders, follow-ups due, tasks due, deals slipping."""

    new_leads: Section
    reminders: Section
    follow_ups: Section
    tasks: Section
    deals: Section

    @property
    def empty(self) -> bool:
        """Return True when nothing needs the person today."""
        return not (
            self.new_leads.rows
            or self.reminders.rows
            or self.follow_ups.rows
            or self.tasks.rows
            or self.deals.rows
        )


def _section(session: Session, stmt: Any, limit: int) -> Section:
    rows = list(session.scalars(stmt.limit(limit + 1)).unique())
    return Section(rows[:limit], len(rows) > limit)


def my_day(
    session: Session, actor: User, *, now: datetime, day_ends: datetime, limit: int = SECTION_LIMIT
) -> MyDay:
    """Return the actor's day; `day_ends` is the end of today (what is due by then counts as due)."""
    new_leads = policy.scope(
        select(Lead).where(Lead.owner_id == actor.id, Lead.status == "new"), actor, Lead
    ).order_by(Lead.received_at, Lead.id)
    follow_ups = policy.scope(
        select(Lead).where(
            Lead.owner_id == actor.id,
            Lead.status.in_(OPEN_LEAD_STATUSES[1:]),
            Lead.next_step_due_at <= day_ends,
        ),
        actor,
        Lead,
    ).order_by(Lead.next_step_due_at, Lead.id)
    tasks = policy.scope(
        select(Task).where(Task.assignee_id == actor.id, Task.status == "open", Task.due_at <= day_ends),
        actor,
        Task,
    ).order_by(Task.due_at, Task.id)
    red_first = case((Deal.light == "red", 0), (Deal.light == "yellow", 1), else_=2)
    deals = policy.scope(
        select(Deal)
        .options(joinedload(Deal.customer))
        .where(
            Deal.owner_id == actor.id,
            Deal.status == "open",
            or_(Deal.next_step_due_at < now, Deal.light.in_(("yellow", "red"))),
        ),
        actor,
        Deal,
    ).order_by(red_first, Deal.next_step_due_at.is_(None), Deal.next_step_due_at, Deal.id)
    return MyDay(
        new_leads=_section(session, new_leads, limit),
        reminders=unread_reminders(session, actor, limit=limit),
        follow_ups=_section(session, follow_ups, limit),
        tasks=_section(session, tasks, limit),
        deals=_section(session, deals, limit),
    )


def unread_reminders(session: Session, actor: User, *, limit: int = SECTION_LIMIT) -> Section:
    """Return the actor's own unread reminder notifications, newest first (marking one read is "done")."""
    # Own rows only, like the inbox: a notification belongs to its person whatever their role.
    stmt = (
        select(Notification)
        .where(
            Notification.user_id == actor.id,
            Notification.read_at.is_(None),
            Notification.kind.in_(REMINDER_KINDS),
        )
        .order_by(Notification.id.desc())
    )
    return _section(session, stmt, limit)


def open_tasks(session: Session, actor: User, *, subject_type: str, subject_id: int) -> list[Task]:
    """Return the open tasks about one lead, customer or deal that the actor may see, soonest first."""
    column = {"lead": Task.lead_id, "customer": Task.customer_id, "deal": Task.deal_id}[subject_type]
    stmt = policy.scope(
        select(Task).options(joinedload(Task.assignee)).where(column == subject_id, Task.status == "open"),
        actor,
        Task,
    ).order_by(Task.due_at.is_(None), Task.due_at, Task.id)
    return list(session.scalars(stmt).unique())


def task_subjects(session: Session, actor: User, tasks: list[Task]) -> dict[tuple[str, int], Any]:
    """Return the records the tasks are about that the actor may see, by (type, id): one query a type."""
    wanted: dict[str, set[int]] = {}
    for task in tasks:
        ident = {"lead": task.lead_id, "customer": task.customer_id, "deal": task.deal_id}.get(
            task.subject_type
        )
        if ident is not None:
            wanted.setdefault(task.subject_type, set()).add(ident)
    found: dict[tuple[str, int], Any] = {}
    for subject_type, ids in wanted.items():
        model = SUBJECT_MODELS[subject_type]
        for row in session.scalars(policy.scope(select(model).where(model.id.in_(ids)), actor, model)):
            found[(subject_type, row.id)] = row
    return found
