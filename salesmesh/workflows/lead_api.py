"""Read-only JSON API for leads: `GET /api/v1/leads` and `GET /api/v1/leads/<id>`.

Both go through `policy`: the list is the actor's scope (a rep sees their own leads and the open pool, a
lead their team, ops/admin everything) and a single lead outside it answers 404, exactly as a lead that
does not exist. Authentication is a session cookie or an `Authorization: Bearer` API token. The lead
screens, intake and routing extend this API in later work.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import func, select

from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.web import ApiError, db
from salesmesh.workflows.models import LEAD_STATUSES, Lead

bp = Blueprint("lead_api", __name__, url_prefix="/api/v1/leads")
MAX_LIMIT = 200


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def lead_json(lead: Lead) -> dict[str, Any]:
    """Serialise a lead for the API."""
    return {
        "id": lead.id,
        "name": lead.name,
        "institution": lead.institution,
        "institution_grade": lead.institution_grade,
        "region": lead.region,
        "status": lead.status,
        "source_channel": lead.source_channel,
        "campaign": lead.campaign,
        "owner_id": lead.owner_id,
        "team_id": lead.team_id,
        "form_version_id": lead.form_version_id,
        "data": lead.data or {},
        "received_at": _iso(lead.received_at),
        "assigned_at": _iso(lead.assigned_at),
        "first_contact_at": _iso(lead.first_contact_at),
    }


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400,
            "invalid_query",
            f"{name} must be an integer",
            [{"path": f"/{name}", "message": "expected an integer"}],
        ) from None
    if not low <= value <= high:
        raise ApiError(
            400,
            "invalid_query",
            f"{name} must be between {low} and {high}",
            [{"path": f"/{name}", "message": f"must be between {low} and {high}"}],
        )
    return value


@bp.get("")
@login_required
def list_leads() -> Any:
    """List the leads the caller may see, newest first (`status`, `limit`, `offset` filters)."""
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10_000_000)
    stmt = policy.scope(select(Lead), g.user, Lead)
    status = request.args.get("status")
    if status is not None:
        if status not in LEAD_STATUSES:
            raise ApiError(
                400,
                "invalid_query",
                f"unknown status {status!r}",
                [{"path": "/status", "message": f"one of {', '.join(LEAD_STATUSES)}"}],
            )
        stmt = stmt.where(Lead.status == status)
    session = db()
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Lead.received_at.desc(), Lead.id.desc()).limit(limit).offset(offset))
    return jsonify(
        {"items": [lead_json(lead) for lead in rows], "total": total, "limit": limit, "offset": offset}
    )


@bp.get("/<int:lead_id>")
@login_required
def get_lead(lead_id: int) -> Any:
    """Return one lead the caller may see (any other id answers 404)."""
    return jsonify(lead_json(policy.get_or_404(db(), g.user, Lead, lead_id)))
