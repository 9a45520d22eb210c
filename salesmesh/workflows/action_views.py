"""Pages of the action-pack runtime: ops' failed actions (with retry), a deal's steps, and the public
survey page that survey links open.

`GET /ops/failed-actions` lists failed steps with their last error; `POST .../<id>/retry` re-arms one
(ops/admin). `GET /deals/<id>/steps` shows a deal's upcoming and past steps to whoever may see the deal.
`GET /s/<token>` counts an open and shows the survey; `POST /s/<token>` stores the answers once. The
survey pages need no sign-in (the token is the credential) and are CSRF-protected like every form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from salesmesh.platform.auth import login_required, roles_required
from salesmesh.platform.web import _, current_locale, db, runtime
from salesmesh.workflows.action_steps import (
    SKIP_REASON_NAMES,
    STEP_STATE_NAMES,
    StepNotRetryable,
    deal_steps,
    failed_steps,
    retry_step,
)
from salesmesh.workflows.record_ui import Times, work_timezone
from salesmesh.workflows.surveys import (
    RATINGS,
    SurveyAnswerInvalid,
    SurveyExpired,
    SurveyNotFound,
    answer_invitation,
    open_invitation,
)

bp = Blueprint("actions", __name__, template_folder="templates")


def _times() -> Times:
    return Times(work_timezone(db()), runtime().clock.now(), current_locale())


@bp.get("/ops/failed-actions")
@roles_required("admin", "ops")
def failed() -> Any:
    """List failed action-pack steps, newest first."""
    before = request.args.get("before", type=int)
    steps = failed_steps(db(), g.user, before=before)
    return render_template(
        "actions/failed.html",
        steps=steps,
        times=_times(),
        more=len(steps) >= 100,
        state_names=STEP_STATE_NAMES,
    )


@bp.post("/ops/failed-actions/<int:timer_id>/retry")
@roles_required("admin", "ops")
def retry(timer_id: int) -> Any:
    """Re-arm one failed step; it fires with the next sweep."""
    session = db()
    try:
        retry_step(session, g.user, timer_id, clock=runtime().clock)
    except StepNotRetryable:
        flash(_("This step is not failed any more: it was retried already."), "error")
        return redirect(url_for("actions.failed")), 303
    session.commit()
    flash(_("The step will run again in a moment."), "success")
    return redirect(url_for("actions.failed")), 303


@bp.get("/deals/<int:deal_id>/steps")
@login_required
def steps(deal_id: int) -> Any:
    """Show a deal's action-pack steps: upcoming first, then what ran, was skipped, failed or cancelled."""
    deal, rows = deal_steps(db(), g.user, deal_id)
    upcoming = [s for s in rows if s.timer.status in ("pending", "running")]
    past = [s for s in rows if s.timer.status not in ("pending", "running")]
    past.sort(key=lambda s: s.timer.fired_at or s.timer.due_at, reverse=True)
    return render_template(
        "actions/deal_steps.html",
        deal=deal,
        upcoming=upcoming,
        past=past,
        times=_times(),
        state_names=STEP_STATE_NAMES,
        reason_names=SKIP_REASON_NAMES,
    )


def _survey_page(
    invitation: Any, *, status: int = 200, errors: dict[str, str] | None = None, **extra: Any
) -> Any:
    return (
        render_template(
            "actions/survey.html", invitation=invitation, ratings=RATINGS, errors=errors or {}, **extra
        ),
        status,
    )


def _gone() -> Any:
    message = _("This survey link has expired. Thank you all the same.")
    return render_template("actions/survey_closed.html", message=message), 410


@bp.get("/s/<token>")
def survey(token: str) -> Any:
    """Count an open of a survey link and show the survey (or the thanks when it was answered)."""
    session = db()
    try:
        invitation = open_invitation(session, token, now=runtime().clock.now())
    except SurveyNotFound:
        abort(404)
    except SurveyExpired:
        session.commit()  # the open still counts
        return _gone()
    session.commit()
    return _survey_page(invitation, answered=invitation.answered_at is not None)


@bp.post("/s/<token>")
def survey_answer(token: str) -> Any:
    """Store the answers of a survey (once; answering again changes nothing)."""
    session = db()
    try:
        invitation, stored = answer_invitation(session, token, request.form, now=runtime().clock.now())
    except SurveyNotFound:
        abort(404)
    except SurveyExpired:
        return _gone()
    except SurveyAnswerInvalid as exc:
        session.rollback()
        invitation = open_invitation(session, token, now=runtime().clock.now())
        session.rollback()  # a failed submission is not an open
        errors = {e["path"].lstrip("/"): _(e["message"]) for e in exc.errors}
        return _survey_page(invitation, status=422, errors=errors, answered=False, form=request.form)
    session.commit()
    return _survey_page(invitation, answered=True, just_answered=stored)
