"""Durable timers: the `timers` rows, the effects ledger, the registry of timer kinds and the
`schedule_timer` / `cancel_timers` API that business code calls inside its own transaction.

A timer is a row with `due_at`, written in the same transaction as the change that caused it, so Redis
never holds the only copy of future work. The sweeper (`salesmesh.platform.sweeper`) claims due rows
under a lease and runs the handler registered for the row's kind with a `TimerContext`; each side
effect is recorded in the `effects` ledger under the idempotency key `timer:<id>:<suffix>` in the same
transaction as the effect, so a crash may re-run a timer but its effect happens once. A kind may also
register a batch handler (`timer_kind(..., batch=...)`): the sweeper then hands it a claimed chunk at once
as a `TimerBatch`, whose `record_effects` writes the chunk's ledger rows with one statement and says which
keys were new. Periodic-job bookkeeping (`periodic_runs`) lives here too because this module owns the
durable-time tables.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from salesmesh.platform.audit import record_event
from salesmesh.platform.db import Base, JSONType, UTCDateTime, utcnow_column_default

if TYPE_CHECKING:
    from salesmesh.platform.clock import Clock
    from salesmesh.platform.runtime import Runtime

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
TIMER_STATUSES = (PENDING, RUNNING, DONE, FAILED, CANCELLED)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = timedelta(seconds=30)


class Timer(Base):
    """One piece of durable future work: run handler `kind` with `payload` once `due_at` has passed."""

    __tablename__ = "timers"
    __table_args__ = (
        CheckConstraint(f"status IN {TIMER_STATUSES!r}", name="status"),
        Index("ix_timers_status_due_at", "status", "due_at"),
        Index("ix_timers_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(80))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Scheduling the same logical timer twice returns the first row; cancelling releases the key.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Effect(Base):
    """The effects ledger: one row per side effect, unique by idempotency key."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    timer_id: Mapped[int | None] = mapped_column(ForeignKey("timers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PeriodicRun(Base):
    """When each declared periodic job last ran and is next due; schedulers lock the row to run it."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- the registry of timer kinds ------------------------------------------------------------------


@dataclass(frozen=True)
class TimerContext:
    """What a handler gets: the open session, the runtime (and its clock) and the claimed timer row."""

    session: Session
    runtime: Runtime
    timer: Timer

    @property
    def clock(self) -> Clock:
        """The runtime's clock."""
        return self.runtime.clock

    @property
    def now(self) -> datetime:
        """The current time by the runtime's clock."""
        return self.runtime.clock.now()

    def record_effect(self, key_suffix: str, kind: str, payload: dict[str, Any] | None = None) -> bool:
        """Record an effect in the ledger; False when it was already recorded (a re-run must skip it)."""
        return record_effect(
            self.session,
            f"timer:{self.timer.id}:{key_suffix}",
            kind=kind,
            payload=payload,
            timer_id=self.timer.id,
            now=self.now,
        )


class ClaimedTimer(NamedTuple):
    """A claimed timer as a batch handler sees it: read-only, the sweeper alone changes its row."""

    id: int
    kind: str
    payload: dict[str, Any]
    subject_type: str | None
    subject_id: int | None
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class TimerBatch:
    """What a batch handler gets: the open session, the runtime and claimed timers of its kind.

    The handler does the work of every timer it does not hand back, in the caller's transaction, and
    records their effects with `record_effects` (one statement for all); the timers it returns run one by
    one through the kind's handler afterwards, so it must have written nothing for them. Raising undoes
    everything the handler wrote (a savepoint) and the whole batch runs one by one instead. The sweeper
    marks the others done.
    """

    session: Session
    runtime: Runtime
    timers: tuple[ClaimedTimer, ...]

    @property
    def clock(self) -> Clock:
        """The runtime's clock."""
        return self.runtime.clock

    @property
    def now(self) -> datetime:
        """The current time by the runtime's clock."""
        return self.runtime.clock.now()

    def record_effects(
        self, effects: Sequence[tuple[ClaimedTimer, str, str, dict[str, Any] | None]]
    ) -> list[bool]:
        """Record a ledger effect per (timer, key suffix, kind, payload) at once; False where it was there."""
        keyed = [
            (f"timer:{timer.id}:{suffix}", kind, payload, timer.id)
            for timer, suffix, kind, payload in effects
        ]
        new = record_effects(self.session, keyed, now=self.now)
        return [key in new for key, _kind, _payload, _timer in keyed]


TimerHandler = Callable[[TimerContext], None]
# Returns the timers it leaves to the one-by-one handler; it did the work of all the others.
BatchHandler = Callable[[TimerBatch], Sequence[ClaimedTimer]]


@dataclass(frozen=True)
class TimerKind:
    """A registered handler with its retry policy (attempts per timer, base of the exponential backoff)
    and, optionally, a batch handler that does the work of many claimed timers with set-based writes."""

    name: str
    handler: TimerHandler
    max_attempts: int
    backoff: timedelta
    batch: BatchHandler | None = None

    def retry_delay(self, attempts: int, base: timedelta | None = None) -> timedelta:
        """Return the exponential backoff after the `attempts`-th failed attempt (capped at 6 hours).

        `base` overrides the kind's backoff for one timer (its payload's `retry_backoff_seconds`).
        """
        first = base if base is not None else self.backoff
        return min(first * 2 ** max(attempts - 1, 0), max(timedelta(hours=6), first))


_KINDS: dict[str, TimerKind] = {}


class UnknownTimerKind(LookupError):
    """A timer names a kind no handler is registered for."""


class GiveUp(Exception):
    """Raised by a handler when retrying cannot help (bad configuration, missing data): fail at once."""


def timer_kind(
    name: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF.seconds,
    batch: BatchHandler | None = None,
) -> Callable[[TimerHandler], TimerHandler]:
    """Register the decorated function as the handler of timer kind `name` (duplicates fail at import).

    `batch`, when given, runs chunks of claimed timers of this kind at once (see `TimerBatch`); the
    decorated handler stays the contract for one timer and for whatever the batch hands back.
    """

    def register(handler: TimerHandler) -> TimerHandler:
        if name in _KINDS:
            raise ValueError(
                f"timer kind {name!r} is already registered by {_KINDS[name].handler.__module__}"
            )
        if max_attempts < 1:
            raise ValueError(f"timer kind {name!r}: max_attempts must be at least 1")
        _KINDS[name] = TimerKind(name, handler, max_attempts, timedelta(seconds=backoff_seconds), batch)
        return handler

    return register


def get_timer_kind(name: str) -> TimerKind:
    """Return the registered kind `name` or raise UnknownTimerKind."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownTimerKind(
            f"unknown timer kind {name!r}: no handler is registered (known: {', '.join(sorted(_KINDS))})"
        ) from None


def registered_timer_kinds() -> list[str]:
    """Return the names of all registered timer kinds."""
    return sorted(_KINDS)


def check_timer_kinds(session: Session) -> list[str]:
    """Return the kinds of pending or running timers that have no registered handler (empty = healthy)."""
    kinds = session.scalars(select(Timer.kind).where(Timer.status.in_((PENDING, RUNNING))).distinct())
    return sorted(kind for kind in kinds if kind not in _KINDS)


# --- the API business code calls ------------------------------------------------------------------


def schedule_timer(
    session: Session,
    *,
    kind: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    subject: tuple[str, int] | None = None,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Timer:
    """Write a timer row in the caller's transaction (an existing row with the same dedupe_key wins)."""
    spec = get_timer_kind(kind)
    if due_at.tzinfo is None:
        raise ValueError("due_at: must be timezone-aware (take it from the runtime clock)")
    body = _json_object(payload, "payload")
    if dedupe_key is not None:
        existing = session.scalar(select(Timer).where(Timer.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    timer = Timer(
        kind=kind,
        due_at=due_at,
        status=PENDING,
        payload=body,
        subject_type=subject[0] if subject else None,
        subject_id=subject[1] if subject else None,
        attempts=0,
        max_attempts=max_attempts or spec.max_attempts,
        dedupe_key=dedupe_key,
        created_at=now or utcnow_column_default(),
    )
    if dedupe_key is None:
        session.add(timer)
        session.flush()
        return timer
    try:
        with session.begin_nested():
            session.add(timer)
    except IntegrityError:
        # A concurrent transaction scheduled the same logical timer first.
        return session.scalars(select(Timer).where(Timer.dedupe_key == dedupe_key)).one()
    return timer


def cancel_timers(session: Session, *, subject: tuple[str, int], kind: str | None = None) -> int:
    """Cancel the pending (and running) timers of `subject`, optionally of one kind; return how many."""
    stmt = (
        update(Timer)
        .where(Timer.subject_type == subject[0], Timer.subject_id == subject[1])
        .where(Timer.status.in_((PENDING, RUNNING)))
        .values(status=CANCELLED, lease_owner=None, lease_until=None, dedupe_key=None)
        .execution_options(synchronize_session="fetch")
    )
    if kind is not None:
        stmt = stmt.where(Timer.kind == kind)
    return session.execute(stmt).rowcount


def record_effect(
    session: Session,
    idempotency_key: str,
    *,
    kind: str,
    payload: dict[str, Any] | None = None,
    timer_id: int | None = None,
    now: datetime,
) -> bool:
    """Insert a ledger row in the caller's transaction; False when the key already exists."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # One statement: a key already there (or being written by a concurrent transaction, which this
    # one then waits for) inserts nothing and returns no row, without failing the transaction.
    inserted = session.execute(
        dialect.insert(Effect)
        .values(
            idempotency_key=idempotency_key,
            timer_id=timer_id,
            kind=kind,
            payload=_json_object(payload, "effect payload"),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Effect.id)
    ).first()
    return inserted is not None


def record_effects(
    session: Session,
    effects: Sequence[tuple[str, str, dict[str, Any] | None, int | None]],
    *,
    now: datetime,
) -> set[str]:
    """Insert ledger rows (key, kind, payload, timer id) with one statement; return the keys that were new."""
    if not effects:
        return set()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    payloads = _json_objects([payload for _key, _kind, payload, _timer in effects], "effect payload")
    rows = [
        {"idempotency_key": key, "timer_id": timer_id, "kind": kind, "payload": body, "created_at": now}
        for (key, kind, _payload, timer_id), body in zip(effects, payloads, strict=True)
    ]
    return set(session.execute(_effects_insert(dialect.__name__), rows).scalars())


@functools.cache
def _effects_insert(dialect: str) -> Any:
    """The ledger's many-row insert, built once per dialect."""
    module = postgresql if dialect == postgresql.__name__ else sqlite
    # As in record_effect: keys already there (or being written by a concurrent transaction, which this
    # one waits for) insert nothing and come back in no row. Only keys are returned, so the rows' order
    # does not matter (SQLite would otherwise run the insert row by row to keep it).
    return (
        module.insert(Effect.__table__)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Effect.__table__.c.idempotency_key)
    )


def _json_object(value: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what}: must be a JSON object of ids and plain values")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: not JSON-serialisable ({exc})") from None


def _json_objects(values: list[dict[str, Any] | None], what: str) -> list[dict[str, Any]]:
    """`_json_object` for many values with one encoding (value by value only to name a bad one)."""
    if all(value is None or isinstance(value, dict) for value in values):
        try:
            return json.loads(json.dumps([value or {} for value in values]))
        except (TypeError, ValueError):
            pass
    return [_json_object(value, f"{what} {index}") for index, value in enumerate(values)]


# --- built-in kinds -------------------------------------------------------------------------------


@timer_kind("platform.noop_effect")
def noop_effect(ctx: TimerContext) -> None:
    """Record one ledger effect and an audit event: the demo kind that proves the exactly-once path."""
    if ctx.record_effect("noop", "platform.noop", ctx.timer.payload):
        record_event(
            ctx.session,
            at=ctx.now,
            actor_id=None,
            action="timer.noop_effect",
            object_type=ctx.timer.subject_type,
            object_id=ctx.timer.subject_id,
            payload={"timer_id": ctx.timer.id},
        )
