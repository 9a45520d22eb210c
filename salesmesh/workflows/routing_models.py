"""Routing tables: one row per routing decision, and the per-routing state row that round robin turns on.

`RoutingDecision` is the durable record of why a lead went where it went: the routing version it was
decided under (pinned), the rule or fallback, channel, strategy, outcome (assigned / pooled /
unassigned), the chosen owner or pool, the lead's age at assignment and the full explanation (rules
evaluated, candidates considered, who was excluded and why, strategy state before/after). Daily caps,
least-loaded ties, freshness balancing and the distribution report all count these rows through the
`(owner_id, decided_at)` index instead of keeping separate counters, so a decision is one insert and
the numbers can never drift from the history (see `salesmesh.workflows.routing_state`).

`RoundRobinCursor` holds, per routing definition key, the last rep each rule handed a lead to
(`positions`, {rule scope: user id}) and `turns`, bumped by every assigning decision with a
conditional UPDATE (`WHERE turns = <seen>`): whoever moves it first wins the turn, everybody else
re-reads and tries again, so no two leads take the same turn and no rep is skipped. It is keyed by the
definition key rather than the version so publishing a new version does not restart the rotation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.workflows.models import Lead

OUTCOMES = ("assigned", "pooled", "unassigned")


class RoutingDecision(Base):
    __tablename__ = "routing_decisions"
    __table_args__ = (
        # Daily caps, least-loaded and freshness counts per rep, and the distribution report by rep.
        Index("ix_routing_decisions_owner_decided", "owner_id", "decided_at"),
        # A lead's routing history, newest first.
        Index("ix_routing_decisions_lead_decided", "lead_id", "decided_at"),
        # Distribution report and simulator sample per routing definition.
        Index("ix_routing_decisions_routing_decided", "routing_key", "decided_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    routing_version_id: Mapped[int] = mapped_column(ForeignKey("definition_versions.id"))
    routing_key: Mapped[str] = mapped_column(String(80))
    # The rule that decided; None when the fallback did (`used_fallback`).
    rule_key: Mapped[str | None] = mapped_column(String(64))
    used_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    pool_key: Mapped[str | None] = mapped_column(String(80))
    # Why nobody got it (outcome "unassigned"), e.g. no_candidate.
    reason: Mapped[str | None] = mapped_column(String(40))
    # now - lead.received_at when decided: the freshness of what the rep received.
    lead_age_seconds: Mapped[int] = mapped_column(Integer, default=0)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    lead: Mapped[Lead] = relationship()


class RoundRobinCursor(Base):
    __tablename__ = "round_robin_cursors"

    id: Mapped[int] = mapped_column(primary_key=True)
    routing_key: Mapped[str] = mapped_column(String(80), unique=True)
    # {rule scope: id of the user who got the last lead from it}
    positions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
