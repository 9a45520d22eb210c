"""The sweeper: claims due timer rows in batches under a lease and executes their handlers.

`claim_due_timers` is `UPDATE timers ... WHERE id IN (SELECT id ... ORDER BY due_at FOR UPDATE SKIP
LOCKED LIMIT n) RETURNING id`: concurrent claimers on PostgreSQL skip each other's rows; on SQLite it
runs inside `BEGIN IMMEDIATE`, which serialises claimers. Rows running with an expired lease (their
claimer crashed) are claimable first, then rows pending and due — one statement each, so each walks
its index and stops at the limit however many rows are due.
`execute_timers` locks the claimed rows, re-checks that this claim still holds the lease, and runs
them: a kind registered with a batch handler gets its timers of the chunk at once (one savepoint, set-based
writes, one UPDATE marking them done; only the first timer of each subject joins, so a subject's timers
still run in order), and every other timer — or one the batch hands back, or all of them when the batch
raises — runs its handler in its own savepoint: handler, ledger rows and `status='done'` commit together,
a failing handler only rolls back itself and is retried with exponential backoff (based on the payload's
`retry_backoff_seconds` when a timer carries its own) until `max_attempts`, or fails at once on `GiveUp`.
The scheduler either executes claims inline (`sweep_once`, no Redis; chunks of batch-capable kinds are
larger) or dispatches them to RQ workers as one `platform.run_timers` job per chunk of ids
(`dispatch_once`) — never a job per timer.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, bindparam, select, update
from sqlalchemy.orm import Session

from salesmesh.platform.jobs import JobContext, job
from salesmesh.platform.periodic import run_due_periodic
from salesmesh.platform.timers import (
    DEFAULT_BACKOFF,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    ClaimedTimer,
    GiveUp,
    Timer,
    TimerBatch,
    TimerContext,
    TimerKind,
    UnknownTimerKind,
    get_timer_kind,
)

if TYPE_CHECKING:
    from salesmesh.platform.runtime import Runtime

log = logging.getLogger("salesmesh.timers")

INLINE_CHUNK = 20  # timers per transaction when the scheduler executes them itself, one by one ...
BATCH_CHUNK = 200  # ... and when their kinds take them in batches (a few statements for the whole chunk)
MIN_BATCH = 2  # a batch of one saves nothing: it runs through the one-by-one handler
DISPATCH_CHUNK = 50  # timer ids per RQ job
MAX_BACKLOG = 4  # queued run_timers jobs above which the scheduler stops claiming (leases stay short)
_ERROR_LIMIT = 2000


@dataclass
class ExecutionStats:
    """What one `execute_timers` call did with the ids it was given."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


def default_owner() -> str:
    """Return this process's lease-owner name (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _new_lease(owner: str) -> tuple[str, str]:
    token = secrets.token_hex(6)
    return f"{owner}#{token}"[-120:], token


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def claim_due_timers(runtime: Runtime, *, limit: int, owner: str) -> list[int]:
    """Claim up to `limit` due timers for `owner` under a lease, in their own transaction; return ids."""
    return [ident for ident, _kind in _claim(runtime, limit=limit, owner=owner)]


def _claim(runtime: Runtime, *, limit: int, owner: str) -> list[tuple[int, str]]:
    now = runtime.clock.now()
    params = {
        "now": now,
        "owner": owner,
        "lease_until": now + timedelta(seconds=runtime.settings.timer_lease_seconds),
        "n": limit,
    }
    with runtime.db.session_scope(immediate=True) as session:
        claimed = session.execute(_CLAIM_EXPIRED, params).all()
        if len(claimed) < limit:
            claimed += session.execute(_CLAIM_DUE, {**params, "n": limit - len(claimed)}).all()
        return sorted((ident, kind) for ident, kind in claimed)


def _claim_statement(claimable: Any) -> Any:
    """Lease up to :n rows that `claimable` selects, in due order, skipping rows others hold locked."""
    table = Timer.__table__
    candidates = (
        select(table.c.id)
        .where(claimable)
        .order_by(table.c.due_at, table.c.id)
        .limit(bindparam("n", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(table)
        .where(table.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=RUNNING,
            lease_owner=bindparam("owner", type_=table.c.lease_owner.type),
            attempts=table.c.attempts + 1,
            lease_until=bindparam("lease_until", type_=table.c.lease_until.type),
        )
        .returning(table.c.id, table.c.kind)
    )


# Two statements, each walking the (status, due_at) index in due order and stopping at its limit — one
# statement with `pending OR expired` reads every due row and sorts them all, on each claim: rows whose
# claimer's lease ran out first (few: only rows in flight are running), then due ones. Built once.
_NOW = bindparam("now", type_=Timer.__table__.c.due_at.type)
_CLAIM_EXPIRED = _claim_statement(
    and_(Timer.__table__.c.status == RUNNING, Timer.__table__.c.lease_until < _NOW)
)
_CLAIM_DUE = _claim_statement(and_(Timer.__table__.c.status == PENDING, Timer.__table__.c.due_at <= _NOW))


def _batches(kind: str) -> bool:
    try:
        return get_timer_kind(kind).batch is not None
    except UnknownTimerKind:
        return False


def _inline_chunks(claimed: Sequence[tuple[int, str]]) -> Iterator[list[int]]:
    """Cut claimed (id, kind) pairs, in id order, into chunks of at most INLINE_CHUNK one-by-one timers
    and BATCH_CHUNK timers in all."""
    chunk: list[int] = []
    single = 0
    for ident, kind in claimed:
        alone = not _batches(kind)
        if chunk and (len(chunk) >= BATCH_CHUNK or (alone and single >= INLINE_CHUNK)):
            yield chunk
            chunk, single = [], 0
        chunk.append(ident)
        single += alone
    if chunk:
        yield chunk


def execute_timers(
    session: Session, runtime: Runtime, timer_ids: Sequence[int], owner: str
) -> ExecutionStats:
    """Run the claimed timers still leased to `owner` in the caller's transaction (batches, then each
    remaining one in a savepoint)."""
    stats = ExecutionStats()
    # The rows are locked and checked as plain rows; ORM objects are loaded only for the timers that
    # run one by one (or are released or failed), the others' rows change with one UPDATE.
    rows = session.execute(_LOCK_CHUNK, {"ids": list(timer_ids)}).all()
    stats.skipped += len(timer_ids) - len(rows)
    now = runtime.clock.now()
    ready: list[ClaimedTimer] = []
    single: list[int] = []
    for row in rows:
        if row.status != RUNNING or row.lease_owner != owner:
            stats.skipped += 1  # finished, cancelled, or re-claimed by someone else after our lease expired
        elif row.due_at > now or row.attempts > row.max_attempts:
            single.append(row.id)  # released or failed below
        else:
            ready.append(ClaimedTimer(*row[_FIRST_CLAIMED:]))
    single.extend(_run_batches(session, runtime, ready, stats))
    if single:
        one_by_one = select(Timer).where(Timer.id.in_(single)).order_by(Timer.id)
        for timer in session.scalars(one_by_one):
            _execute_one(session, runtime, timer, owner, stats)
    session.flush()
    return stats


# The columns execute_timers checks, then those of ClaimedTimer in its order; the statements are built once.
_CHECKED = ("status", "lease_owner", "due_at", *ClaimedTimer._fields)
_FIRST_CLAIMED = 3
_TIMERS = Timer.__table__
_LOCK_CHUNK = (
    select(*(_TIMERS.c[name] for name in _CHECKED))
    .where(_TIMERS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_TIMERS.c.id)
    .with_for_update()
)
_MARK_DONE = (
    update(_TIMERS)
    .where(_TIMERS.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=DONE,
        lease_owner=None,
        lease_until=None,
        fired_at=bindparam("now", type_=_TIMERS.c.fired_at.type),
        last_error=None,
    )
)


def _execute_one(session: Session, runtime: Runtime, timer: Timer, owner: str, stats: ExecutionStats) -> None:
    """Check one claimed timer again and run it in a savepoint, release it early, or fail it."""
    now = runtime.clock.now()
    if timer.status != RUNNING or timer.lease_owner != owner:
        stats.skipped += 1
    elif timer.due_at > now:
        _release(timer, PENDING)  # never fire early, whatever the claimer's clock said
        stats.skipped += 1
    elif timer.attempts > timer.max_attempts:
        _fail(timer, f"gave up: claimed {timer.attempts} times without finishing (crashes or lost leases)")
        stats.failed += 1
    else:
        _run_one(session, runtime, timer, stats)


def _run_batches(
    session: Session, runtime: Runtime, timers: list[ClaimedTimer], stats: ExecutionStats
) -> list[int]:
    """Hand each batch-capable kind its timers at once; return the ids left to run one by one."""
    groups: dict[str, list[ClaimedTimer]] = {}
    single: list[int] = []
    seen: set[tuple[str | None, int]] = set()
    for timer in timers:
        subject = (timer.subject_type, timer.subject_id) if timer.subject_id is not None else None
        # A subject's later timers may depend on what its earlier ones do (a field set, a task added):
        # only its first timer joins a batch, the others run one by one after it, in order.
        if subject not in seen and _batches(timer.kind):
            groups.setdefault(timer.kind, []).append(timer)
        else:
            single.append(timer.id)
        if subject is not None:
            seen.add(subject)
    for name, group in groups.items():
        if len(group) < MIN_BATCH:
            single.extend(timer.id for timer in group)
            continue
        left = _run_batch(session, runtime, get_timer_kind(name), group)
        done = [timer.id for timer in group if timer.id not in left]
        _mark_done(session, done, runtime.clock.now())
        stats.done += len(done)
        single.extend(left)
    return single


def _run_batch(session: Session, runtime: Runtime, kind: TimerKind, group: list[ClaimedTimer]) -> set[int]:
    """Run one kind's batch in a savepoint; return the ids it left (all of them when it failed)."""
    assert kind.batch is not None
    try:
        with session.begin_nested():
            left = kind.batch(TimerBatch(session, runtime, tuple(group)))
    except Exception:  # noqa: BLE001 - nothing of the batch is kept; each timer runs (and fails) alone
        log.warning(
            "batch of %d %s timers failed; running them one by one", len(group), kind.name, exc_info=True
        )
        return {timer.id for timer in group}
    return {timer.id for timer in left} & {timer.id for timer in group}


def _mark_done(session: Session, timer_ids: list[int], now: datetime) -> None:
    if not timer_ids:
        return
    session.execute(_MARK_DONE, {"ids": timer_ids, "now": now})
    # A caller's session that holds some of these rows as objects reads them again when next used.
    done = set(timer_ids)
    for key in [key for key in session.identity_map if key[0] is Timer and key[1][0] in done]:
        session.expire(session.identity_map[key])


def _run_one(session: Session, runtime: Runtime, timer: Timer, stats: ExecutionStats) -> None:
    """Run one timer's handler in a savepoint; record success, a retry or the failure on its row."""
    try:
        kind = get_timer_kind(timer.kind)
        with session.begin_nested():
            kind.handler(TimerContext(session, runtime, timer))
    except Exception as exc:  # noqa: BLE001 - a handler failure is recorded on its row, never lost
        log.warning("timer %s (%s) attempt %s failed", timer.id, timer.kind, timer.attempts, exc_info=True)
        if _retry_or_fail(timer, exc, runtime.clock.now()):
            stats.retried += 1
        else:
            stats.failed += 1
    else:
        _release(timer, DONE)
        timer.fired_at = runtime.clock.now()
        timer.last_error = None
        stats.done += 1


def _release(timer: Timer, status: str) -> None:
    timer.status = status
    timer.lease_owner = None
    timer.lease_until = None


def _fail(timer: Timer, error: str) -> None:
    _release(timer, FAILED)
    timer.last_error = error[:_ERROR_LIMIT]
    log.error("timer %s (%s) failed for good: %s", timer.id, timer.kind, timer.last_error)


def _retry_or_fail(timer: Timer, exc: Exception, now: datetime) -> bool:
    error = f"attempt {timer.attempts}: {type(exc).__name__}: {exc}"
    if timer.attempts >= timer.max_attempts or isinstance(exc, GiveUp):
        _fail(timer, error)
        return False
    own = (timer.payload or {}).get("retry_backoff_seconds")
    base = timedelta(seconds=own) if isinstance(own, int) and not isinstance(own, bool) and own > 0 else None
    try:
        delay = get_timer_kind(timer.kind).retry_delay(timer.attempts, base)
    except UnknownTimerKind:
        delay = DEFAULT_BACKOFF * 2 ** (timer.attempts - 1)
    _release(timer, PENDING)
    timer.due_at = now + delay
    timer.last_error = error[:_ERROR_LIMIT]
    return True


def sweep_once(runtime: Runtime, *, batch_size: int | None = None, owner: str | None = None) -> int:
    """Claim one batch of due timers and execute it here, a chunk per transaction; return how many."""
    lease_owner, _ = _new_lease(owner or default_owner())
    claimed = _claim(runtime, limit=batch_size or runtime.settings.sweeper_batch_size, owner=lease_owner)
    if claimed:
        log.info("claimed %d due timers as %s; executing them here", len(claimed), lease_owner)
    for chunk in _inline_chunks(claimed):
        try:
            with runtime.db.session_scope(immediate=True) as session:
                execute_timers(session, runtime, chunk, lease_owner)
        except Exception:
            log.exception("timer chunk %s failed; it is re-claimed when its lease expires", chunk)
    return len(claimed)


def dispatch_once(runtime: Runtime, *, batch_size: int | None = None, owner: str | None = None) -> int:
    """Claim due timers and enqueue one `platform.run_timers` job per chunk of ids; return how many."""
    room = MAX_BACKLOG - runtime.jobs.backlog()
    if room <= 0:
        return 0
    limit = min(batch_size or runtime.settings.sweeper_batch_size, room * DISPATCH_CHUNK)
    lease_owner, token = _new_lease(owner or default_owner())
    ids = claim_due_timers(runtime, limit=limit, owner=lease_owner)
    for number, chunk in enumerate(_chunks(ids, DISPATCH_CHUNK)):
        runtime.jobs.enqueue_now("platform.run_timers", chunk, lease_owner, job_id=f"timers-{token}-{number}")
    if ids:
        log.info("claimed %d due timers as %s; dispatched them to RQ", len(ids), lease_owner)
    return len(ids)


@job("platform.run_timers")
def run_timers(ctx: JobContext, timer_ids: list[int], lease_owner: str) -> dict[str, Any]:
    """Execute one dispatched chunk of claimed timers (a worker killed mid-chunk is re-claimed later)."""
    return asdict(execute_timers(ctx.session, ctx.runtime, timer_ids, lease_owner))


def scheduler_tick(runtime: Runtime, *, owner: str | None = None) -> bool:
    """Sweep (no Redis) or dispatch (Redis) one batch of due timers; return True while work is flowing."""
    owner = owner or default_owner()
    if runtime.settings.redis_url:
        return dispatch_once(runtime, owner=owner) > 0 or runtime.jobs.backlog() > 0
    return sweep_once(runtime, owner=owner) > 0


def run_scheduler_loop(runtime: Runtime, stop: threading.Event, *, owner: str | None = None) -> None:
    """Tick until `stop` is set (fast while work flows, each interval when idle); start periodic jobs."""
    owner = owner or default_owner()
    interval = runtime.settings.sweeper_interval_seconds
    log.info(
        "scheduler %s started (%s, every %ss)",
        owner,
        "dispatching to RQ" if runtime.settings.redis_url else "executing inline",
        interval,
    )
    # While work flows: sweep again at once when executing inline; poll briefly while RQ workers catch up.
    busy_pause = min(interval, 0.1) if runtime.settings.redis_url else 0.0
    next_periodic = 0.0
    while not stop.is_set():
        busy = False
        try:
            busy = scheduler_tick(runtime, owner=owner)
            if time.monotonic() >= next_periodic:
                run_due_periodic(runtime)
                next_periodic = time.monotonic() + interval
        except Exception:
            log.exception("scheduler tick failed; trying again in %ss", interval)
        stop.wait(busy_pause if busy else interval)
    log.info("scheduler %s stopped", owner)
