"""Approval requests: a deviation from the sales process waiting for the team lead's (or ops') decision.

A request is about one deal and is one of `APPROVAL_KINDS`: a move that skips stages or takes a transition
marked `requires_approval`, a move whose exit criteria are unmet in a locked pipeline, or a custom
objection response. `payload` holds what was asked (stages, unmet criteria, the reason, the objection
activity); `approver_role` says who decides (the deal team's lead, or ops) and `approver_id` names the
lead when there is one. `deadline_at` is when the deadline timer acts as `on_deadline` says: escalate
(the request stays open, ops is told), approve or reject (status `expired`). Open statuses are pending and
escalated. `team_id`/`deal_id` scope it (`salesmesh.platform.policy`); services live in
`salesmesh.workflows.approvals`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows.models import Deal

# skip_stage: a move over stages; transition: another move marked requires_approval (e.g. reopening);
# waive_criteria: leaving a stage with unmet exit criteria in a locked pipeline.
MOVE_KINDS = ("skip_stage", "transition", "waive_criteria")
APPROVAL_KINDS = (*MOVE_KINDS, "custom_objection_response")
APPROVAL_STATUSES = ("pending", "escalated", "approved", "rejected", "expired")
OPEN_STATUSES = ("pending", "escalated")
APPROVER_ROLES = ("team_lead", "ops")
ON_DEADLINE = ("escalate", "approve", "reject")

APPROVAL_KIND_NAMES = {
    "skip_stage": N_("Skip stages"),
    "transition": N_("Stage move"),
    "waive_criteria": N_("Waive exit criteria"),
    "custom_objection_response": N_("Custom objection response"),
}
APPROVAL_STATUS_NAMES = {
    "pending": N_("Waiting"),
    "escalated": N_("Escalated"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "expired": N_("Expired"),
}
APPROVER_NAMES = {"team_lead": N_("Team lead"), "ops": N_("Sales operations")}


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"
    __table_args__ = (
        CheckConstraint(f"kind IN {APPROVAL_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {APPROVAL_STATUSES!r}", name="status"),
        Index("ix_approval_requests_team_status", "team_id", "status"),
        Index("ix_approval_requests_deal_status", "deal_id", "status"),
        Index("ix_approval_requests_requester_status", "requested_by_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approver_role: Mapped[str] = mapped_column(String(16))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    on_deadline: Mapped[str] = mapped_column(String(16))
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    deal: Mapped[Deal] = relationship()
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    approver: Mapped[User | None] = relationship(foreign_keys=[approver_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])

    @property
    def is_open(self) -> bool:
        """Tell whether the request still waits for a decision (pending or escalated)."""
        return self.status in OPEN_STATUSES
