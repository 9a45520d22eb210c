"""The append-only audit log with a hash chain.

Every service that changes something important calls `record_event(session, ...)` inside its own
transaction. Each row stores `prev_hash` and `hash = sha256(prev_hash + canonical(row))`, and `seq` is
unique, so a fork (two writers chaining onto the same predecessor) fails instead of branching; on
PostgreSQL writers serialise on a transaction-scoped advisory lock. `verify_chain` recomputes the chain
and names the first row that does not match (edited, deleted or reordered history).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from salesmesh.platform.db import Base, JSONType, UTCDateTime

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x5A1E5A  # advisory lock key shared by every audit writer


class AuditEvent(Base):
    __tablename__ = "audit_events"
    # Record timelines read the events of one object, newest first.
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


def _digest(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None,
    object_id: int | None,
    payload: dict[str, Any],
) -> str:
    body = json.dumps(
        [seq, at.isoformat(), actor_id, action, object_type, object_id, payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record_event(
    session: Session,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None = None,
    object_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    body = json.loads(json.dumps(payload or {}, default=str))
    event = AuditEvent(
        seq=seq,
        at=at,
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        payload=body,
        prev_hash=prev,
        hash=_digest(prev, seq, at, actor_id, action, object_type, object_id, body),
    )
    session.add(event)
    session.flush()
    return event


def verify_chain(session: Session, *, batch: int = 1000) -> int | None:
    """Return the seq of the first event that breaks the chain, or None when it is intact."""
    prev = GENESIS
    expected_seq = 1
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return None
        for ev in rows:
            digest = _digest(
                prev, ev.seq, ev.at, ev.actor_id, ev.action, ev.object_type, ev.object_id, ev.payload
            )
            if ev.seq != expected_seq or ev.prev_hash != prev or ev.hash != digest:
                return ev.seq
            prev = ev.hash
            expected_seq += 1
            last_seq = ev.seq
