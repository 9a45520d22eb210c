"""Public web form tables: which lead forms the public may fill in at `/f/<form key>`, and every attempt.

`PublicForm` is an ops person's switch that opens one lead form to the public (and says how): the source
channel key the leads are recorded with, values filled in for the visitor (`presets`, e.g. the form's
"source channel" select), the sites allowed to embed the form in an `<iframe>` (CSP `frame-ancestors`)
and the hourly submission limits per client address and per form. `PublicFormAttempt` records each
submission that carried a valid form token, whatever came of it (a lead, a duplicate, a validation
error, a caught bot): the rows are what the rate limits count, across processes, and the UNIQUE nonce
is what makes a form token single-use. Rows older than a token's lifetime are deleted as new ones
arrive. Services live in `salesmesh.workflows.public_forms`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from salesmesh.platform.db import Base, JSONType, UTCDateTime


class PublicForm(Base):
    __tablename__ = "public_forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_key: Mapped[str] = mapped_column(String(80), unique=True)
    # Recorded as the lead's `source_channel` (same width as IntakeChannel.key).
    channel: Mapped[str] = mapped_column(String(40))
    # Form values the visitor does not fill in: {field key: JSON value}.
    presets: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Origins allowed to frame the form ("https://www.example.com", "https://*.example.com" or "*").
    frame_ancestors: Mapped[list[str]] = mapped_column(JSONType, default=list)
    per_ip_per_hour: Mapped[int] = mapped_column(Integer)
    per_form_per_hour: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PublicFormAttempt(Base):
    __tablename__ = "public_form_attempts"
    __table_args__ = (
        Index("ix_public_form_attempts_ip_at", "ip", "at"),
        Index("ix_public_form_attempts_form_key_at", "form_key", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_key: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    # The form token's nonce: a token is used once.
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    # accepted | duplicate | invalid | honeypot | too_fast
    outcome: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
