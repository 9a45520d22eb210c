"""Pipeline pages: the stage card on the deal page (exit criteria met or not, key nodes, allowed moves,
the move form), objection logging, and the approvals queue where team leads and ops decide.

Thin views over `pipelines`, `objections` and `approvals`; what the deal page shows about its stage is
built by `pipeline_panel.deal_panel` (the record page calls it). A move or objection with bad input
renders the deal page again with the errors next to their fields (422); a move from a stale stage
renders it with the conflict (409). The queue lists what the signed-in person may see — a lead their
team's requests, ops and admins all, a rep their own — open ones by deadline, then the latest decided;
approving or rejecting posts back to it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.i18n import N_
from salesmesh.platform.rep_attributes import field_error
from salesmesh.platform.web import _, current_locale, db, runtime
from salesmesh.workflows import record_views
from salesmesh.workflows.approval_models import (
    APPROVAL_KIND_NAMES,
    APPROVAL_STATUS_NAMES,
    APPROVER_NAMES,
    ApprovalRequest,
)
from salesmesh.workflows.approvals import can_decide, decide_approval, list_approvals
from salesmesh.workflows.models import Deal
from salesmesh.workflows.objections import log_objection
from salesmesh.workflows.pipeline_specs import Label, pipeline_for
from salesmesh.workflows.pipelines import complete_key_node, move_deal
from salesmesh.workflows.record_ui import Times, error_text, service_errors, work_timezone
from salesmesh.workflows.record_values import RecordError

bp = Blueprint("pipelines", __name__, template_folder="templates")

DECIDED_SHOWN = 20
CUSTOM = "*"  # the response value (after "type:") meaning "my own response"


def _times() -> Times:
    return Times(work_timezone(db()), runtime().clock.now(), current_locale())


def _label(value: Label | None) -> str:
    if not value:
        return ""
    return value.get(current_locale()) or value.get("en") or ""


# --- the deal page's stage card ---------------------------------------------------------------------------


def _deal_again(deal_id: int, status: int, **extra: Any) -> Any:
    return record_views.PAGES["deal"](deal_id, status, pipeline_extra=extra)


def _checked(name: str) -> bool:
    return request.form.get(name) in ("1", "on", "true", "yes")


@bp.post("/deals/<int:deal_id>/move")
@login_required
def move(deal_id: int) -> Any:
    """Move a deal to another stage (or ask for approval) from its stage card."""
    form = request.form
    try:
        result = move_deal(
            db(),
            g.user,
            deal_id,
            form.get("to_stage"),
            from_stage=form.get("from_stage") or None,
            waive=_checked("waive"),
            reason=form.get("reason"),
            clock=runtime().clock,
        )
    except RecordError as exc:
        errors = service_errors(exc.errors, {"/from_stage": "stale", "/waive": "waive"})
        return _deal_again(deal_id, getattr(exc, "status", 422), move_values=form, move_errors=errors)
    db().commit()
    deal = result.deal
    if result.approval is not None:
        asked = result.approval
        who = asked.approver.name if asked.approver is not None else _(APPROVER_NAMES["ops"])
        flash(
            _("Sent to %(approver)s for approval. The deal stays where it is until then.", approver=who),
            "success",
        )
    else:
        stage = pipeline_for(db(), deal.pipeline_version_id).stage(deal.stage_key)
        flash(_("Moved to %(stage)s.", stage=_label(stage.label if stage else None)), "success")
    return redirect(url_for("records.deal", deal_id=deal.id) + "#stage")


@bp.post("/deals/<int:deal_id>/key-nodes")
@login_required
def tick(deal_id: int) -> Any:
    """Mark a key node of the deal's stage done."""
    try:
        row = complete_key_node(db(), g.user, deal_id, request.form.get("node"), clock=runtime().clock)
    except RecordError as exc:
        flash(error_text(exc.errors[0], current_locale()), "error")
        return redirect(url_for("records.deal", deal_id=deal_id) + "#stage")
    db().commit()
    flash(_("Key node done."), "success")
    return redirect(url_for("records.deal", deal_id=row.deal_id) + "#stage")


@bp.post("/deals/<int:deal_id>/objections")
@login_required
def objection(deal_id: int) -> Any:
    """Log an objection with one standard response, or a custom one that goes to the approver."""
    form = request.form
    objection_type, _sep, response = (form.get("response") or "").partition(":")
    custom = response == CUSTOM
    try:
        logged = log_objection(
            db(),
            g.user,
            deal_id,
            objection_type or None,
            response_key=None if custom else (response or None),
            custom_text=form.get("custom_text") if custom else None,
            summary=form.get("summary"),
            clock=runtime().clock,
        )
    except RecordError as exc:
        errors = service_errors(exc.errors, {"/objection_type": "response"})
        if not custom and (form.get("custom_text") or "").strip():
            errors.setdefault("custom_text", []).append(_custom_hint())
        return _deal_again(deal_id, 422, objection_values=form, objection_errors=errors)
    db().commit()
    if logged.approval is not None:
        flash(_("Objection logged. Your own response waits for approval."), "success")
    else:
        flash(_("Objection logged."), "success")
    return redirect(url_for("records.deal", deal_id=deal_id) + "#timeline")


def _custom_hint() -> dict[str, str]:
    return field_error(
        "/custom_text", N_('To send your own text, choose "My own response" under the objection.')
    )


# --- the approvals queue ----------------------------------------------------------------------------------


def _queue(status: int = 200, **extra: Any) -> Any:
    session, actor = db(), g.user
    times = _times()
    waiting = list_approvals(session, actor, open_only=True)
    decided = list_approvals(session, actor, open_only=False, limit=DECIDED_SHOWN)
    shown = [*waiting, *decided]
    labels = record_views._stage_labels({r.deal.pipeline_version_id for r in shown})
    deal_ids = {r.deal_id for r in shown}
    visible = set(
        session.scalars(policy.scope(select(Deal.id).where(Deal.id.in_(deal_ids)), actor, Deal))
        if deal_ids
        else ()
    )
    return render_template(
        "pipelines/approvals.html",
        waiting=waiting,
        decided=decided,
        times=times,
        stage=lambda r, key: labels.get((r.deal.pipeline_version_id, key)) or {"en": key, "zh": key},
        decides=lambda r: can_decide(actor, r, seen=True),
        visible=lambda r: r.deal_id in visible,
        kind_names=APPROVAL_KIND_NAMES,
        status_names=APPROVAL_STATUS_NAMES,
        approver_names=APPROVER_NAMES,
        err=lambda item: error_text(item, times.locale),
        errors=extra.pop("errors", None) or {},
        failed_id=extra.pop("failed_id", None),
        **extra,
    ), status


@bp.get("/approvals")
@login_required
def approvals() -> Any:
    """Show the approval requests the signed-in person may see: waiting ones first, by deadline."""
    return _queue()


@bp.post("/approvals/<int:approval_id>/decide")
@login_required
def decide(approval_id: int) -> Any:
    """Approve or reject a request from the queue."""
    decision = request.form.get("decision")
    if decision not in ("approve", "reject"):
        errors = {"decision": [field_error("/decision", N_("Choose approve or reject."))]}
        return _queue(422, errors=errors, failed_id=approval_id)
    try:
        decided: ApprovalRequest = decide_approval(
            db(),
            g.user,
            approval_id,
            approve=decision == "approve",
            note=request.form.get("note"),
            clock=runtime().clock,
        )
    except RecordError as exc:
        db().rollback()
        status = getattr(exc, "status", 422)
        return _queue(status, errors=service_errors(exc.errors), failed_id=approval_id)
    db().commit()
    message = _("Approved.") if decided.status == "approved" else _("Rejected.")
    flash(message, "success")
    return redirect(url_for("pipelines.approvals") + f"#approval-{decided.id}")
