"""Intake tables: the integrations allowed to post leads, their stored replies, and de-duplication.

`IntakeChannel` is one integration (the phone system, an ad platform, the website back end) with the
HMAC secrets it signs requests with: `secret` is the current one and `previous_secret` the one it
replaced, both accepted until the next rotation so a sender can switch over without downtime. Secrets
are kept as given (HMAC needs the secret itself, not a hash); whoever reads the database can sign.
`IdempotencyRecord` stores the reply to a request that carried an `Idempotency-Key`, unique per
(channel, key), with the sha256 of the body so a reused key with another body is refused.
`LeadDedupeKey` gives each normalised contact key (an E.164 phone number, a lower-case e-mail) to at
most one lead: its UNIQUE (kind, value) index is what makes two concurrent intakes of the same person
collide instead of both creating a lead. A submission that matched an open lead is kept in full as a
`LeadDuplicate` pointing at that lead (`duplicate_of_id`). Services live in
`salesmesh.workflows.intake` and `salesmesh.workflows.intake_channels`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.workflows.models import Lead


class IntakeChannel(Base):
    __tablename__ = "intake_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Recorded as the lead's `source_channel` (same width).
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label: Mapped[str] = mapped_column(String(120))
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    # The lead form this channel posts to; None: the form of the only published routing.
    form_key: Mapped[str | None] = mapped_column(String(80))
    # Form values filled in when a request leaves them out, e.g. {"source_channel": "hotline"}.
    defaults: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("channel_id", "key", name="uq_idempotency_records_channel_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("intake_channels.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    body_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LeadDedupeKey(Base):
    __tablename__ = "lead_dedupe_keys"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_lead_dedupe_keys_kind_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # phone | email
    value: Mapped[str] = mapped_column(String(254))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LeadDuplicate(Base):
    __tablename__ = "lead_duplicates"

    id: Mapped[int] = mapped_column(primary_key=True)
    duplicate_of_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    matched_on: Mapped[str] = mapped_column(String(16))  # the key kind that matched: phone | email
    source_channel: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(120))
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    # The submitted form values, as validated and normalised.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    duplicate_of: Mapped[Lead] = relationship()
