"""The append-only audit log with a hash chain.

Every service that changes something important calls `record_event(session, ...)` inside its own
transaction. Each row stores `prev_hash` and `hash = sha256(prev_hash + canonical(row))`, and `seq` is
unique, so a fork (two writers chaining onto the same predecessor) fails instead of branching. An event
is appended with ONE statement, `INSERT ... SELECT ... RETURNING`: the database reads the chain head and
computes the new row's hash from it while inserting (PostgreSQL's `sha256()`; on SQLite a `sha256_hex`
function this module registers on the connection), so the head cannot move between the read and the
write. On SQLite the write lock serialises writers; on PostgreSQL writers serialise on a
transaction-scoped advisory lock taken by a statement of its own just before (the INSERT's snapshot is
then taken after the lock, so it sees the previous holder's event). Python builds the canonical body
except the sequence number, which is spliced in by the database exactly as `json.dumps` would write it.
`verify_chain` recomputes the chain in Python and names the first row that does not match (edited,
deleted or reordered history). The payload's canonical JSON text is built once: it is both what is stored
and the end of the hashed body. `append_event` is `record_event` without the ORM object (its id only),
for hot paths such as routing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    bindparam,
    cast,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, make_transient_to_detached, mapped_column

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.rows import Prepared

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x5A1E5A  # advisory lock key shared by every audit writer
_SQLITE_SHA = "sha256_hex"  # registered once per SQLite connection (see _sqlite_functions)


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


def _instant(at: datetime) -> str:
    """The event time as hashed: in UTC, as it reads back from the column (any zone given is converted)."""
    return at.astimezone(UTC).isoformat()


def _tail(
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None,
    object_id: int | None,
    payload: dict[str, Any],
) -> str:
    """The canonical body after its sequence number: `[<seq>` + this is the whole body."""
    body = json.dumps(
        [_instant(at), actor_id, action, object_type, object_id, payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return "," + body[1:]


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
    body = f"[{seq}" + _tail(at, actor_id, action, object_type, object_id, payload)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _sqlite_sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _hash_sql(dialect: str, text_expr: Any) -> Any:
    """Return the SQL computing the hex SHA-256 of `text_expr` (UTF-8) on `dialect`."""
    if dialect == "postgresql":
        return func.encode(func.sha256(func.convert_to(text_expr, "UTF8")), "hex")
    return getattr(func, _SQLITE_SHA)(text_expr)


@functools.cache
def _append_statement(dialect: str) -> Prepared:
    """The one-statement append, built once per dialect and run with bind parameters."""
    events = AuditEvent.__table__
    last_hash = select(events.c.hash).order_by(events.c.seq.desc()).limit(1).scalar_subquery()
    head = select(
        (func.coalesce(func.max(events.c.seq), 0) + 1).label("seq"),
        func.coalesce(last_hash, GENESIS).label("prev"),
    ).subquery("head")
    chained = head.c.prev + "[" + cast(head.c.seq, String) + bindparam("tail", type_=String())
    # The payload arrives as its canonical JSON text (the very text hashed): stored as is.
    payload: Any = bindparam("payload", type_=String())
    if dialect == "postgresql":
        payload = cast(payload, JSONB)
    source = select(
        head.c.seq,
        bindparam("at", type_=events.c.at.type),
        bindparam("actor_id", type_=Integer()),
        bindparam("action", type_=String()),
        bindparam("object_type", type_=String()),
        bindparam("object_id", type_=Integer()),
        payload,
        head.c.prev,
        _hash_sql(dialect, chained),
    )
    columns = ["seq", "at", "actor_id", "action", "object_type", "object_id", "payload", "prev_hash", "hash"]
    return Prepared(
        insert(events)
        .from_select(columns, source)
        .returning(events.c.id, events.c.seq, events.c.prev_hash, events.c.hash)
    )


_PG_LOCK_STATEMENT = Prepared(select(func.pg_advisory_xact_lock(bindparam("k", type_=BigInteger()))))


def _sqlite_functions(session: Session) -> None:
    """Register `sha256_hex` on the session's SQLite connection (once per pooled connection)."""
    pooled = session.connection().connection  # its `info` lives as long as the DBAPI connection does
    if not pooled.info.get(_SQLITE_SHA):
        pooled.driver_connection.create_function(_SQLITE_SHA, 1, _sqlite_sha256, deterministic=True)  # type: ignore[union-attr]
        pooled.info[_SQLITE_SHA] = True


def _append(
    session: Session,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None,
    object_id: int | None,
    payload: dict[str, Any] | None,
) -> tuple[Any, dict[str, Any]]:
    """Append one event; return the statement's row (id, seq, prev_hash, hash) and the stored payload."""
    session.flush()  # the rows this event is about exist before the event does
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _PG_LOCK_STATEMENT.execute(session, {"k": _PG_AUDIT_LOCK})
    else:
        _sqlite_functions(session)
    body = json.loads(json.dumps(payload or {}, default=str))  # as it reads back
    # The canonical text once: it is both the stored payload and the end of the hashed body (`_tail`
    # writes the same bytes, which `verify_chain` checks).
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    head = json.dumps(
        [_instant(at), actor_id, action, object_type, object_id], separators=(",", ":"), ensure_ascii=False
    )
    params = {
        "tail": "," + head[1:-1] + "," + text + "]",
        "at": at,
        "actor_id": actor_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "payload": text,
    }
    return _append_statement(dialect).execute(session, params).one(), body


def append_event(
    session: Session,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None = None,
    object_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Append one event like `record_event` but build no ORM object for it; return its id (hot paths)."""
    return int(_append(session, at, actor_id, action, object_type, object_id, payload)[0][0])


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
    """Append one event to the chain in the caller's transaction (one statement; two on PostgreSQL)."""
    (ident, seq, prev, digest), body = _append(session, at, actor_id, action, object_type, object_id, payload)
    event = AuditEvent(
        id=ident,
        seq=seq,
        at=at,
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        payload=body,
        prev_hash=prev,
        hash=digest,
    )
    # Known to the session as the stored row it is (no query), like any event read back.
    make_transient_to_detached(event)
    session.add(event)
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


# record_events' statements, built once: the chain's head, and the many-row insert.
_BATCH_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_BATCH_INSERT = insert(AuditEvent.__table__)


def record_events(session: Session, events: list[dict[str, Any]]) -> list[int]:
    """Append many events to the chain in the caller's transaction (two statements; three on PostgreSQL).

    Each event is a dict of `record_event`'s keyword arguments; the return value is their seqs, in order.
    The head is read once — after the advisory lock on PostgreSQL, under the write lock of a BEGIN IMMEDIATE
    transaction on SQLite, so no other writer appends in between — the hashes are computed here exactly as
    `verify_chain` recomputes them, and the rows go in with one multi-row INSERT. A writer that slipped in
    anyway (a deferred SQLite transaction) makes the INSERT fail on the unique seq instead of forking.
    """
    if not events:
        return []
    session.flush()  # the rows these events are about exist before the events do
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    head = session.execute(_BATCH_HEAD).first()
    seq, prev = (head[0], head[1]) if head is not None else (0, GENESIS)
    # The payloads as stored and read back (as record_event makes them), with one encoding for all.
    bodies = json.loads(json.dumps([event.get("payload") or {} for event in events], default=str))
    rows = []
    for event, body in zip(events, bodies, strict=True):
        seq += 1
        row = {
            "seq": seq,
            "at": event["at"],
            "actor_id": event.get("actor_id"),
            "action": event["action"],
            "object_type": event.get("object_type"),
            "object_id": event.get("object_id"),
            "payload": body,
            "prev_hash": prev,
        }
        row["hash"] = prev = _digest(
            prev, seq, row["at"], row["actor_id"], row["action"], row["object_type"], row["object_id"], body
        )
        rows.append(row)
    session.execute(_BATCH_INSERT, rows)
    return [row["seq"] for row in rows]
