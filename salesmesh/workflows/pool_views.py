"""Pool screens and the claim API: `/pools` (every published pool), `/pools/<key>` (its open leads with a
Claim button each and where the signed-in person stands), the claim and release posts, and
`POST /api/v1/leads/<id>/claim` and `/release` for integrations and apps.

Lists go through the policy (a rep sees the open pool, a team lead also their team's leads, so a pool
page only ever lists pooled leads the person may see) and cost a fixed number of statements per page.
Posts carry the CSRF token (browser) or a bearer token (API). A claim lost to someone faster answers 409:
the page is shown again with the message "someone else claimed it", the API with a JSON error. Services
live in `salesmesh.workflows.pools`; this module parses, calls one service and renders.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from salesmesh.forms.compile import FormSpec, published_form
from salesmesh.platform import policy
from salesmesh.platform.auth import login_required, safe_next
from salesmesh.platform.home_views import CHANNEL_NAMES
from salesmesh.platform.web import ApiError, _, current_locale, db, parse_json, runtime
from salesmesh.workflows.lead_api import lead_json
from salesmesh.workflows.lead_forms import default_lead_form
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pool_models import LeadClaim
from salesmesh.workflows.pool_rules import PoolError, pool_rules, published_pools
from salesmesh.workflows.pools import POOLED, claim_lead, claim_status, release_lead
from salesmesh.workflows.record_ui import Times, work_timezone

bp = Blueprint("pools", __name__, template_folder="templates")
PAGE_SIZE = 25
MAX_PAGE = 100_000


def _times() -> Times:
    return Times(work_timezone(db()), runtime().clock.now(), current_locale())


def _open_leads(*columns: Any, key: str | None = None) -> Any:
    """Select (`columns`, default the leads) among the pooled, unowned leads the person may see."""
    stmt = select(*(columns or (Lead,))).where(
        Lead.status == POOLED, Lead.owner_id.is_(None), Lead.pool_key.is_not(None)
    )
    if key is not None:
        stmt = stmt.where(Lead.pool_key == key)
    return policy.scope(stmt, g.user, Lead)


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        message = _("Must be a whole number from 1 to %(max)s.", max=MAX_PAGE)
        raise ApiError(400, "invalid_query", message, [{"path": "/page", "message": message}])
    return int(raw)


def _option(spec: FormSpec | None, key: str, value: Any) -> str:
    """Show a stored code through the options of the pool form's field (the code itself when unknown)."""
    if value in (None, ""):
        return ""
    found = spec.field(key) if spec is not None else None
    text = found.option_label(value) if found is not None else None
    return (text or {}).get(current_locale()) or (text or {}).get("en") or str(value)


def _pool_page(key: str, status: int = 200) -> Any:
    session = db()
    try:
        rules = pool_rules(session, key)
    except PoolError as exc:
        raise ApiError(exc.status, exc.code, exc.text(current_locale()), exc.errors) from None
    page = _page_arg()
    times = _times()
    stmt = _open_leads(key=key)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    leads = session.scalars(
        stmt.order_by(Lead.received_at, Lead.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    spec = published_form(session, rules.form_key) if rules.form_key else default_lead_form(session)
    return render_template(
        "pools/pool.html",
        rules=rules,
        leads=leads,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        first=(page - 1) * PAGE_SIZE + 1,
        standing=claim_status(session, g.user, rules, times.now),
        followup_hours=f"{rules.followup.total_seconds() / 3600:g}",
        times=times,
        option=lambda field, value: _option(spec, field, value),
        channel_names=CHANNEL_NAMES,
    ), status


@bp.get("/pools")
@login_required
def index() -> Any:
    """List the published pools with their open leads and where the signed-in person stands."""
    session = db()
    now = runtime().clock.now()
    pools = published_pools(session)
    counts = dict(session.execute(_open_leads(Lead.pool_key, func.count()).group_by(Lead.pool_key)).all())
    rows = [(rules, counts.get(rules.key, 0), claim_status(session, g.user, rules, now)) for rules in pools]
    return render_template("pools/index.html", rows=rows, times=_times())


@bp.get("/pools/<key>")
@login_required
def pool(key: str) -> Any:
    """Show one pool's open leads, oldest first, with a Claim button each."""
    return _pool_page(key)


@bp.post("/leads/<int:lead_id>/claim")
@login_required
def claim(lead_id: int) -> Any:
    """Claim a lead from its pool and open it; when someone was faster, show the pool again (409)."""
    session = db()
    try:
        claim_lead(session, g.user, lead_id, clock=runtime().clock)
    except PoolError as exc:
        session.rollback()
        key = session.scalar(select(Lead.pool_key).where(Lead.id == lead_id))
        flash(exc.text(current_locale()), "error")
        if key is None:
            return redirect(url_for("pools.index"))
        return _pool_page(key, exc.status)
    session.commit()
    flash(_("Lead claimed: it is yours now. Follow it up in time to keep it."), "success")
    return redirect(url_for("records.lead", lead_id=lead_id))


@bp.post("/leads/<int:lead_id>/release")
@login_required
def release(lead_id: int) -> Any:
    """Give a claimed lead back to its pool, with the reason typed on the lead page."""
    session = db()
    try:
        done = release_lead(
            session, g.user, lead_id, reason=request.form.get("reason"), clock=runtime().clock
        )
    except PoolError as exc:
        session.rollback()
        flash(exc.text(current_locale()), "error")
        return redirect(safe_next(request.form.get("next"), url_for("records.lead", lead_id=lead_id)))
    session.commit()
    flash(_("Lead released to the pool."), "success")
    return redirect(url_for("pools.pool", key=done.pool_key))


# --- the API ------------------------------------------------------------------------------------------


def _claim_json(claim: LeadClaim) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": claim.id,
        "lead_id": claim.lead_id,
        "pool": claim.pool_key,
        "pool_version_id": claim.pool_version_id,
        "user_id": claim.user_id,
        "status": claim.status,
        "claimed_at": iso(claim.claimed_at),
        "followup_due_at": iso(claim.followup_due_at),
        "protected_until": iso(claim.protected_until),
        "ended_at": iso(claim.ended_at),
        "release_reason": claim.release_reason,
    }


def _api_error(exc: PoolError) -> ApiError:
    db().rollback()
    return ApiError(exc.status, exc.code, exc.errors[0]["message"], exc.errors)


@bp.post("/api/v1/leads/<int:lead_id>/claim")
@login_required
def api_claim(lead_id: int) -> Any:
    """Claim a pooled lead: 201 with the claim and the lead; 409 when someone else claimed it first."""
    session = db()
    try:
        done = claim_lead(session, g.user, lead_id, clock=runtime().clock)
    except PoolError as exc:  # ClaimConflict is a 409, a refusal a 403
        raise _api_error(exc) from None
    session.commit()
    return jsonify({"claim": _claim_json(done), "lead": lead_json(session.get(Lead, lead_id))}), 201


@bp.post("/api/v1/leads/<int:lead_id>/release")
@login_required
def api_release(lead_id: int) -> Any:
    """Give a claimed lead back to its pool; body `{"reason": "..."}` (required when the pool says so)."""
    body = parse_json() if request.get_data(cache=True) else {}
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(
            400,
            "invalid_body",
            "reason must be a string",
            [{"path": "/reason", "message": "expected a string"}],
        )
    session = db()
    try:
        done = release_lead(session, g.user, lead_id, reason=reason, clock=runtime().clock)
    except PoolError as exc:
        raise _api_error(exc) from None
    session.commit()
    return jsonify({"claim": _claim_json(done), "lead": lead_json(session.get(Lead, lead_id))})
