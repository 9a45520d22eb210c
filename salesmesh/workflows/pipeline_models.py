"""Pipeline progress rows: which key nodes (milestones) of a deal's pipeline are done.

A key node is done when someone ticks it on the deal page while the deal is in the node's stage and an
interaction of one of the node's activity types has been logged on the deal since it entered that stage;
the row keeps that activity as the evidence, who ticked it and when. Key-node keys are unique within a
pipeline, so one row per (deal, node) is enough; a done node stays done when the deal leaves its stage
and comes back (exit criteria of later stages may name nodes of earlier ones). Services live in
`salesmesh.workflows.pipelines`; the deal's stage itself is on `Deal` (`stage_key`, `stage_entered_at`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from salesmesh.platform.db import Base, UTCDateTime


class DealKeyNode(Base):
    """A key node done on a deal: in which stage, on the evidence of which activity, by whom, when."""

    __tablename__ = "deal_key_nodes"
    __table_args__ = (UniqueConstraint("deal_id", "node_key", name="uq_deal_key_nodes_deal_node"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    node_key: Mapped[str] = mapped_column(String(64))
    stage_key: Mapped[str] = mapped_column(String(64))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id", ondelete="SET NULL"))
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    done_at: Mapped[datetime] = mapped_column(UTCDateTime())
