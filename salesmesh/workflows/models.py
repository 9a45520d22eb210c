"""Lead rows: the first business record. Standard fields are columns the runtime queries on; fields an
ops-defined form adds live in `data`, validated by the pinned form version. Intake, routing and the lead
screens extend this in later work; the spine needs it for scoping, the demo seed and history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.models import Team, User

LEAD_STATUSES = ("new", "contacted", "qualified", "converted", "disqualified", "pooled")


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_owner_status", "owner_id", "status"),
        Index("ix_leads_team_status", "team_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    institution: Mapped[str | None] = mapped_column(String(200))
    institution_grade: Mapped[str | None] = mapped_column(String(40))
    region: Mapped[str | None] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="new")
    source_channel: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(120))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    # The form definition version the data was written under (pinned; see ARCHITECTURE.md).
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    team: Mapped[Team | None] = relationship(foreign_keys=[team_id])
