"""`/new-leads`: a rep's leads nobody has contacted yet, oldest first, with one-click first contact.

Each row shows how long the lead has waited and its first-response SLA: "due in" or "overdue by",
counted to `sla_due_at` (the working-time deadline routing set), and the deadline itself in the work
time zone. "Log call" and "Log message" are plain CSRF-protected form posts (no JavaScript needed):
`log_first_contact` logs the activity through `activities.log_activity`, which sets `first_contact_at`
and marks the lead contacted, so it leaves the list; the post redirects back with a message. A second
click on a lead that is already contacted (a double click, a teammate faster) logs nothing and says so.

`list_new_leads(session, actor)` is the read side (one policy-scoped statement, at most `limit` rows and
whether more are waiting); both services follow the usual rules (policy, validation, flush, no commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.clock import Clock
from salesmesh.platform.home_views import CHANNEL_NAMES
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.platform.web import _, current_locale, db, runtime
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.models import ACTIVITY_KIND_NAMES, Activity, Lead
from salesmesh.workflows.record_ui import Times, error_text, work_timezone
from salesmesh.workflows.record_values import RecordError

bp = Blueprint("new_leads", __name__, template_folder="templates")

LIMIT = 100
# What the one-click buttons log: both reach the person, so either is a first contact.
FIRST_CONTACT_KINDS = ("call", "message")


@dataclass(frozen=True)
class NewLeads:
    rows: list[Lead]
    more: bool


def list_new_leads(session: Session, actor: User, *, limit: int = LIMIT) -> NewLeads:
    """Return the actor's leads that are new and not yet contacted, oldest first (one statement)."""
    policy.require(actor, "lead.list")
    stmt = policy.scope(
        select(Lead).where(Lead.owner_id == actor.id, Lead.status == "new", Lead.first_contact_at.is_(None)),
        actor,
        Lead,
    ).order_by(Lead.received_at, Lead.id)
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return NewLeads(rows[:limit], len(rows) > limit)


def log_first_contact(
    session: Session, actor: User, lead_id: Any, *, kind: str, clock: Clock
) -> Activity | None:
    """Log a call or message as a lead's first contact; None (nothing logged) when it was contacted."""
    if kind not in FIRST_CONTACT_KINDS:
        raise rv.fail("/kind", N_("Choose call or message."))
    lead: Lead = rv.load(session, actor, Lead, lead_id)
    if lead.first_contact_at is not None:
        return None
    return log_activity(session, actor, kind=kind, lead_id=lead.id, clock=clock)


# --- page ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Countdown:
    """A lead's first-response deadline as shown: state (due / overdue / none), span text, deadline."""

    state: str
    span: str
    deadline: str


def countdown(times: Times, due: datetime | None) -> Countdown:
    """Return how long until (or since) a first-response deadline, in the request's words."""
    if due is None:
        return Countdown("none", "", "")
    seconds = int((due - times.now).total_seconds())
    state = "due" if seconds >= 0 else "overdue"
    return Countdown(state, times.span(abs(seconds)), times.at(due))


@bp.get("/new-leads")
@login_required
def index() -> Any:
    """Show the signed-in person's new leads, oldest first, with their SLA countdown."""
    session = db()
    times = Times(work_timezone(session), runtime().clock.now(), current_locale())
    found = list_new_leads(session, g.user)
    return render_template(
        "new_leads/index.html",
        leads=found.rows,
        more=found.more,
        times=times,
        countdowns={lead.id: countdown(times, lead.sla_due_at) for lead in found.rows},
        channel_names=CHANNEL_NAMES,
        kind_names=ACTIVITY_KIND_NAMES,
    )


@bp.post("/new-leads/<int:lead_id>/contact")
@login_required
def contact(lead_id: int) -> Any:
    """Log a call or a message on a new lead in one click and come back to the list."""
    session = db()
    kind = request.form.get("kind", "")
    try:
        activity = log_first_contact(session, g.user, lead_id, kind=kind, clock=runtime().clock)
    except RecordError as exc:
        flash(error_text(exc.errors[0], current_locale()), "error")
        return redirect(url_for("new_leads.index"))
    if activity is None:
        flash(_("This lead was already contacted; nothing was logged."), "info")
        return redirect(url_for("new_leads.index"))
    session.commit()
    lead = session.get(Lead, lead_id)
    name = lead.name if lead is not None else ""
    flash(
        _("%(kind)s logged: %(name)s is contacted.", kind=_(ACTIVITY_KIND_NAMES[kind]), name=name), "success"
    )
    return redirect(url_for("new_leads.index"))
