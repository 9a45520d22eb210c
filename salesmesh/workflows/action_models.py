"""Tables of the action-pack runtime: survey invitations (the tracked links `survey_link` steps send).

One row per survey link sent: the unguessable token in the public URL (`/s/<token>`), which deal and
contact it was sent for, the step (pack, step, timer) that sent it, when it expires, and what the
respondent did — first and latest open, how many opens, the answers and when they came. The step timers
themselves are rows of the platform's `timers` table (`salesmesh.workflows.action_packs`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.workflows.models import Contact, Deal


class SurveyInvitation(Base):
    """A tracked survey link sent to a deal's contact by an action-pack step."""

    __tablename__ = "survey_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    survey: Mapped[str] = mapped_column(String(63))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(254))
    pack_key: Mapped[str] = mapped_column(String(80))
    step_key: Mapped[str] = mapped_column(String(63))
    # The step timer that sent it: one invitation per timer, whatever re-runs happen.
    timer_id: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    deal: Mapped[Deal] = relationship()
    contact: Mapped[Contact | None] = relationship()
