"""Helpers for the pool tests: a pool definition, a published world (two teams, a lead, reps), pooled
leads, running due timers through the real sweeper, and reading rows as the database has them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import sweep_once
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pool_models import LeadClaim
from tests.workflows.page_helpers import make_staff
from tests.workflows.routing_helpers import add_lead, publish

POOL = "open-pool"


def pool_doc(key: str = POOL, **overrides: Any) -> dict[str, Any]:
    """A pool: reps and leads claim, 3 open / 2 a day, 72 h follow-up by call/e-mail, 24 h cooldown."""
    doc: dict[str, Any] = {
        "kind": "pool",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Open pool", "zh": "公共池"},
        "who_may_claim": {"roles": ["rep", "lead"]},
        "claim_cap_per_rep": 3,
        "daily_claim_cap": 2,
        "protection_hours": 720,
        "cooldown": {
            "no_followup_hours": 72,
            "qualifying_activities": ["call", "email"],
            "unavailable_hours": 24,
        },
        "release": {"manual_release_allowed": True, "reason_required": True},
    }
    doc.update(overrides)
    return doc


def pool_world(session: Session, clock: Clock, **overrides: Any) -> dict[str, User]:
    """Publish `pool_doc(**overrides)` and add the staff of page_helpers.make_staff (lead_a, rep_a1 ...)."""
    publish(session, clock, pool_doc(**overrides))
    return make_staff(session, clock)


def pooled_lead(session: Session, clock: Clock, pool: str = POOL, **overrides: Any) -> Lead:
    """Insert a lead sitting in `pool` (status pooled, no owner)."""
    values = {"status": "pooled", "pool_key": pool, "institution": "Peking Union", "region": "beijing"}
    return add_lead(session, clock, {}, **{**values, **overrides})


def run_due(runtime: Runtime) -> int:
    """Run every due timer through the sweeper (its own transactions); return how many it claimed."""
    total = 0
    while (n := sweep_once(runtime, batch_size=50)) > 0:
        total += n
    return total


def active_claims(session: Session, lead_id: int) -> int:
    """Count the active claims of a lead."""
    return session.scalar(
        select(func.count())
        .select_from(LeadClaim)
        .where(LeadClaim.lead_id == lead_id, LeadClaim.status == "active")
    )
