"""The in-app inbox: `GET /notifications` (newest first, "unread only" filter, older pages), marking one or
all read, the e-mail preference, and the unread badge every page header shows.

The badge is a template helper (`unread_notifications()`) evaluated only when base.html renders it for a
signed-in person: one indexed count that stops at 100, so the header costs one statement whatever the
backlog. Opening a notification marks it read and goes to its record (a POST, so a link prefetch never
marks anything). Thin views: parse, one service from `salesmesh.platform.notifications`, render.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from salesmesh.platform.auth import login_required, safe_next
from salesmesh.platform.notifications import (
    UNREAD_CAP,
    NotificationNotFound,
    email_enabled,
    inbox,
    mark_all_read,
    mark_read,
    render,
    set_email_preference,
    unread_count,
)
from salesmesh.platform.web import _, current_locale, db, runtime
from salesmesh.workflows.record_ui import Times, work_timezone

bp = Blueprint("notifications", __name__, template_folder="templates")
PAGE = 30


@bp.app_context_processor
def _badge() -> dict[str, Any]:
    def unread_notifications() -> str:
        """Return the signed-in person's unread count for the header ('' for none, '99+' past the cap)."""
        user = getattr(g, "user", None)
        if user is None:
            return ""
        if "unread_notifications" not in g:
            g.unread_notifications = unread_count(db(), user.id)
        count = g.unread_notifications
        if not count:
            return ""
        return f"{UNREAD_CAP}+" if count > UNREAD_CAP else str(count)

    return {"unread_notifications": unread_notifications}


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        abort(400)
    return int(raw)


@bp.get("/notifications")
@login_required
def index() -> Any:
    """List the signed-in person's notifications, newest first."""
    session = db()
    locale = current_locale()
    unread_only = request.args.get("unread") == "1"
    page = inbox(session, g.user, limit=PAGE, before=_int_arg("before"), unread_only=unread_only)
    items = [(n, render(n, locale)) for n in page.items]
    return render_template(
        "notifications/index.html",
        items=items,
        page=page,
        unread_only=unread_only,
        times=Times(work_timezone(session), runtime().clock.now(), locale),
        email_on=email_enabled(session, g.user.id),
        smtp_configured=runtime().settings.smtp_configured,
    )


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def read(notification_id: int) -> Any:
    """Mark one notification read; with `open`, go on to its record."""
    session = db()
    try:
        notification = mark_read(session, g.user, notification_id, now=runtime().clock.now())
    except NotificationNotFound:
        abort(404)
    session.commit()
    if request.form.get("open"):
        target = render(notification, current_locale()).path
        if target:
            return redirect(safe_next(target, url_for("notifications.index")))
    return redirect(safe_next(request.form.get("next"), url_for("notifications.index")))


@bp.post("/notifications/read-all")
@login_required
def read_all() -> Any:
    """Mark every notification of the signed-in person read."""
    session = db()
    count = mark_all_read(session, g.user, now=runtime().clock.now())
    session.commit()
    flash(_("%(count)s notifications marked as read.", count=count), "success")
    return redirect(url_for("notifications.index"))


@bp.post("/notifications/preferences")
@login_required
def preferences() -> Any:
    """Switch e-mail notifications on or off."""
    choice = request.form.get("email")
    if choice not in ("on", "off"):
        flash(_("Choose whether to get e-mails."), "error")
        return redirect(url_for("notifications.index")), 303
    session = db()
    set_email_preference(session, g.user, enabled=choice == "on", now=runtime().clock.now())
    session.commit()
    flash(
        _("E-mail notifications are on.") if choice == "on" else _("E-mail notifications are off."), "success"
    )
    return redirect(url_for("notifications.index"))
