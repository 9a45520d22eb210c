"""`GET /my-day`: a rep's working list for today, built by `agenda.my_day`.

New leads to contact come oldest first (the first-response SLA runs from `received_at`), each with a
one-tap call form (outcome and next-step date) that posts to the record's activity log and comes back
here; then the unread reminders (action-pack reminders and escalations, missed first-response deadlines,
approvals), newest first, each linking to its deal, lead or approval, with a "Mark done" button that marks
the notification read through the inbox's own POST and comes back here; then follow-ups and tasks due
today or overdue (action-pack task steps land here too), and deals slipping (overdue next step, yellow or
red light). Everyone has a day of their own; team leads and ops see their own work here too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template

from salesmesh.platform.auth import login_required
from salesmesh.platform.home_views import CHANNEL_NAMES, STATUS_NAMES
from salesmesh.platform.notifications import render
from salesmesh.platform.web import current_locale, db, runtime
from salesmesh.workflows.agenda import my_day, task_subjects
from salesmesh.workflows.models import LIGHT_NAMES
from salesmesh.workflows.record_ui import OUTCOME_NAMES, Times, end_of_day, work_timezone

bp = Blueprint("myday", __name__, template_folder="templates")


@bp.get("/my-day")
@login_required
def index() -> Any:
    """Show what needs the signed-in person today."""
    session = db()
    locale = current_locale()
    times = Times(work_timezone(session), runtime().clock.now(), locale)
    day = my_day(session, g.user, now=times.now, day_ends=end_of_day(times.today, times.tz))
    return render_template(
        "myday/index.html",
        day=day,
        reminders=[(n, render(n, locale)) for n in day.reminders.rows],
        times=times,
        subjects=task_subjects(session, g.user, day.tasks.rows),
        outcome_names=OUTCOME_NAMES,
        status_names=STATUS_NAMES,
        channel_names=CHANNEL_NAMES,
        light_names=LIGHT_NAMES,
    )
