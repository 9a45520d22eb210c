"""The interaction timeline of a lead, customer or deal: activities and audit events, newest first.

Whoever may see the record sees its whole history (the record is fetched through the policy, so a
foreign id is a 404). The history is every activity filed under the record (a deal's includes the
activities of the lead it came from, a customer's those of its deals) plus the audit events about the
record and the rows around it: for a lead its tasks; for a deal the lead it came from and its tasks; for
a customer its contacts, deals, converted leads and tasks. The page costs a fixed number of SQL
statements whatever the number of entries: the record, the activities with their actors and contacts
joined, the audit events, and the audit actors in one batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, joinedload

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.activities import Subject, resolve_subject
from salesmesh.workflows.models import ACTIVITY_KINDS, Activity, Contact, Deal, Lead, Task
from salesmesh.workflows.record_values import Errors

AUDIT = "audit"  # the kind of timeline entries that come from the audit log
TIMELINE_KINDS = (*ACTIVITY_KINDS, AUDIT)
MAX_LIMIT = 200


@dataclass(frozen=True)
class TimelineEntry:
    """One line of history: an activity, or an audit event (`kind` "audit", `action` says what)."""

    at: datetime
    kind: str
    actor: User | None
    activity: Activity | None = None
    event: AuditEvent | None = None

    @property
    def action(self) -> str | None:
        """Return the audit action (e.g. "deal.update") of an audit entry, else None."""
        return self.event.action if self.event is not None else None


@dataclass(frozen=True)
class Timeline:
    """A page of entries, newest first; pass `next_before` as `before` to read the next page."""

    entries: list[TimelineEntry]
    has_more: bool

    @property
    def next_before(self) -> datetime | None:
        """Return the cursor for the next page (None when this is the last one)."""
        return self.entries[-1].at if self.has_more and self.entries else None


def _activity_filter(subject: Subject) -> ColumnElement[bool]:
    if subject.type == "deal":
        return Activity.deal_id == subject.row.id
    if subject.type == "customer":
        return Activity.customer_id == subject.row.id
    return Activity.lead_id == subject.row.id


def _about(table: str, ids: Any) -> ColumnElement[bool]:
    column = AuditEvent.object_id
    condition = column == ids if isinstance(ids, int) else column.in_(ids)
    return and_(AuditEvent.object_type == table, condition)


def _audit_filter(subject: Subject) -> ColumnElement[bool]:
    ident = subject.row.id
    if subject.type == "lead":
        return or_(_about("leads", ident), _about("tasks", select(Task.id).where(Task.lead_id == ident)))
    if subject.type == "deal":
        return or_(
            _about("deals", ident),
            _about("leads", select(Lead.id).where(Lead.converted_deal_id == ident)),
            _about("tasks", select(Task.id).where(Task.deal_id == ident)),
        )
    return or_(
        _about("customers", ident),
        _about("contacts", select(Contact.id).where(Contact.customer_id == ident)),
        _about("deals", select(Deal.id).where(Deal.customer_id == ident)),
        _about("leads", select(Lead.id).where(Lead.converted_customer_id == ident)),
        _about("tasks", select(Task.id).where(Task.customer_id == ident)),
    )


def _clean_kinds(kinds: Iterable[str] | None, errors: Errors) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    wanted = tuple(dict.fromkeys(kinds))
    unknown = [k for k in wanted if k not in TIMELINE_KINDS]
    if unknown:
        errors.add("/kinds", N_("Unknown entry kinds: %(kinds)s."), kinds=", ".join(map(str, unknown)))
    return wanted


def timeline(
    session: Session,
    actor: User | None,
    *,
    lead_id: int | None = None,
    customer_id: int | None = None,
    deal_id: int | None = None,
    kinds: Iterable[str] | None = None,
    limit: int = 50,
    before: datetime | None = None,
) -> Timeline:
    """Return one page of a record's history, newest first (only `kinds` if given, older than `before`)."""
    subject = resolve_subject(
        session, actor, lead_id=lead_id, customer_id=customer_id, deal_id=deal_id, action="{type}.view"
    )
    errors = Errors()
    wanted = _clean_kinds(kinds, errors)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors.add("/limit", N_("Must be a whole number from 1 to %(max)s."), max=MAX_LIMIT)
    cursor = rv.moment(before, "/before", errors)
    errors.raise_if_any()

    activities: list[Activity] = []
    activity_kinds = None if wanted is None else [k for k in wanted if k != AUDIT]
    if activity_kinds is None or activity_kinds:
        stmt = (
            select(Activity)
            .options(joinedload(Activity.actor), joinedload(Activity.contact))
            .where(_activity_filter(subject))
            .order_by(Activity.occurred_at.desc(), Activity.id.desc())
            .limit(limit + 1)
        )
        if activity_kinds is not None:
            stmt = stmt.where(Activity.kind.in_(activity_kinds))
        if cursor is not None:
            stmt = stmt.where(Activity.occurred_at < cursor)
        activities = list(session.scalars(stmt))

    events: list[AuditEvent] = []
    if wanted is None or AUDIT in wanted:
        stmt = (
            select(AuditEvent)
            .where(_audit_filter(subject))
            .order_by(AuditEvent.at.desc(), AuditEvent.seq.desc())
        )
        if cursor is not None:
            stmt = stmt.where(AuditEvent.at < cursor)
        events = list(session.scalars(stmt.limit(limit + 1)))

    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    users = (
        {u.id: u for u in session.scalars(select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    )

    merged = [TimelineEntry(a.occurred_at, a.kind, a.actor, activity=a) for a in activities]
    merged += [TimelineEntry(e.at, AUDIT, users.get(e.actor_id or 0), event=e) for e in events]
    # Newest first; at the same instant an audit event (the change) sorts before the activity it explains.
    merged.sort(key=lambda entry: (entry.at, entry.event is not None), reverse=True)
    return Timeline(entries=merged[:limit], has_more=len(merged) > limit)
