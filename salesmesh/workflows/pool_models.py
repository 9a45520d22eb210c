"""Pool claims and claim cooldowns: the `lead_claims` and `pool_cooldowns` tables, and the cooldown source
routing reads.

A `LeadClaim` is one rep holding one lead taken from a pool, pinned to the pool definition version it was
claimed under. At most one claim per lead is `active`: a partial unique index enforces it, behind the
conditional UPDATE that takes the lead (`salesmesh.workflows.pools.claim_lead`). A claim ends as
`released` (given back by hand), `no_followup` (returned by the cooldown check), `protection_over` (held
past the protection period) or `closed` (the lead left the claimer another way: converted, disqualified,
reassigned, or routed again). A `PoolCooldown` row makes its rep "temporarily unavailable" for one pool
until `until`; routing skips reps with any running cooldown. Importing this module installs that check
as routing's cooldown clause (a condition read inside its rep snapshot, no statement of its own), and
every process imports it: it is listed in `db.MODEL_MODULES`, which every Runtime imports.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ColumnElement, ForeignKey, Index, String, exists, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, UTCDateTime
from salesmesh.platform.models import User
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing import set_cooldown_clause

ACTIVE = "active"
CLAIM_STATUSES = (ACTIVE, "released", "no_followup", "protection_over", "closed")


class LeadClaim(Base):
    """One rep holding one lead taken from a pool (protected until `protected_until`)."""

    __tablename__ = "lead_claims"
    __table_args__ = (
        CheckConstraint(f"status IN {CLAIM_STATUSES!r}", name="status"),
        # Two transactions can never both hold an active claim on a lead, whatever path they took.
        Index(
            "uq_lead_claims_active_lead",
            "lead_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        # Caps: a rep's active claims in a pool, and their claims since the start of the day.
        Index("ix_lead_claims_user_pool_status", "user_id", "pool_key", "status"),
        Index("ix_lead_claims_user_pool_claimed", "user_id", "pool_key", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    pool_key: Mapped[str] = mapped_column(String(80))
    # The pool definition version the claim was made under; its cooldown and release rules apply.
    pool_version_id: Mapped[int] = mapped_column(ForeignKey("definition_versions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the claimer must have followed up (working-calendar aware), and when the claim runs out.
    followup_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    protected_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    release_reason: Mapped[str | None] = mapped_column(String(500))

    lead: Mapped[Lead] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class PoolCooldown(Base):
    """A rep who let a claimed lead go unattended: they may not claim from `pool_key` until `until`."""

    __tablename__ = "pool_cooldowns"
    __table_args__ = (
        Index("ix_pool_cooldowns_user_until", "user_id", "until"),
        Index("ix_pool_cooldowns_pool_user_until", "pool_key", "user_id", "until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_key: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("lead_claims.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())


def in_cooldown(now: datetime) -> ColumnElement[bool]:
    """Return the SQL condition on `users.id` holding for a rep in a claim cooldown of any pool at `now`."""
    users = User.__table__
    return exists().where(PoolCooldown.user_id == users.c.id, PoolCooldown.until > now)


# Routing (web app, intake API, jobs, CLI and the scheduler) reads it inside its rep snapshot and skips
# reps in cooldown, at no statement of its own.
set_cooldown_clause(in_cooldown)
