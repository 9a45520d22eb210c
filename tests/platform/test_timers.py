"""Durable timers: scheduling, the sweeper's claim/lease/retry rules, the effects ledger and periodic runs.

SQLite with a frozen clock for the rules; real PostgreSQL for concurrent claimers (no double claims under
`FOR UPDATE SKIP LOCKED`) and the periodic-run row lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.jobs import InProcessJobQueue, JobContext, job
from salesmesh.platform.periodic import PERIODIC_JOBS, PeriodicJob, run_due_periodic
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import claim_due_timers, execute_timers, sweep_once
from salesmesh.platform.timers import (
    Effect,
    PeriodicRun,
    Timer,
    TimerContext,
    UnknownTimerKind,
    cancel_timers,
    check_timer_kinds,
    record_effect,
    schedule_timer,
    timer_kind,
)

NOOP = "platform.noop_effect"


class Boom(RuntimeError):
    """The failure the test handlers raise."""


@timer_kind("tests.always_fails", max_attempts=3, backoff_seconds=10)
def _always_fails(ctx: TimerContext) -> None:
    raise Boom(f"cannot deliver timer {ctx.timer.id}")


@timer_kind("tests.effect_then_fail", max_attempts=2)
def _effect_then_fail(ctx: TimerContext) -> None:
    ctx.record_effect("half", "tests.half", {})
    raise Boom("failed after recording an effect")


@job("tests.timer_followup")
def _followup(ctx: JobContext, timer_id: int) -> None:
    record_effect(ctx.session, f"followup:{timer_id}", kind="tests.followup", now=ctx.clock.now())


@timer_kind("tests.enqueues_then_maybe_fails", max_attempts=1)
def _enqueues_then_maybe_fails(ctx: TimerContext) -> None:
    ctx.runtime.jobs.enqueue_after_commit(ctx.session, "tests.timer_followup", ctx.timer.id)
    if ctx.timer.payload.get("fail"):
        raise Boom("failed after enqueueing a follow-up job")


def _schedule(rt: Runtime, count: int = 1, *, after: timedelta = timedelta(0), kind: str = NOOP) -> list[int]:
    with rt.db.session_scope() as s:
        timers = [
            schedule_timer(
                s,
                kind=kind,
                due_at=rt.clock.now() + after,
                payload={"n": n},
                subject=("lead", n),
                now=rt.clock.now(),
            )
            for n in range(count)
        ]
        s.flush()
        return [t.id for t in timers]


def _count(s: Session, model: type, *where: object) -> int:
    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _timer(rt: Runtime, timer_id: int) -> Timer:
    with rt.db.session_scope() as s:
        return s.get(Timer, timer_id)  # type: ignore[return-value]


# --- scheduling -----------------------------------------------------------------------------------


def test_schedule_writes_a_pending_row_in_the_callers_transaction(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.Session() as s:
        schedule_timer(s, kind=NOOP, due_at=clock.now(), payload={"lead_id": 7}, subject=("lead", 7))
        s.rollback()
    with runtime.db.session_scope() as s:
        assert _count(s, Timer) == 0
    [timer_id] = _schedule(runtime)
    timer = _timer(runtime, timer_id)
    assert (timer.status, timer.attempts, timer.max_attempts, timer.subject_type) == ("pending", 0, 5, "lead")


def test_schedule_refuses_unknown_kinds_naive_times_and_non_json_payloads(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.Session() as s:
        with pytest.raises(UnknownTimerKind, match="unknown timer kind 'nope'"):
            schedule_timer(s, kind="nope", due_at=clock.now())
        with pytest.raises(ValueError, match="due_at: must be timezone-aware"):
            schedule_timer(s, kind=NOOP, due_at=clock.now().replace(tzinfo=None))
        with pytest.raises(ValueError, match="payload: not JSON-serialisable"):
            schedule_timer(s, kind=NOOP, due_at=clock.now(), payload={"when": clock.now()})


def test_duplicate_timer_kind_registration_fails_at_import() -> None:
    with pytest.raises(ValueError, match="already registered"):
        timer_kind(NOOP)(lambda ctx: None)


def test_dedupe_key_returns_the_existing_timer_until_it_is_cancelled(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as s:
        first = schedule_timer(s, kind=NOOP, due_at=clock.now(), subject=("lead", 1), dedupe_key="sla:lead:1")
        again = schedule_timer(
            s,
            kind=NOOP,
            due_at=clock.now() + timedelta(hours=1),
            subject=("lead", 1),
            dedupe_key="sla:lead:1",
        )
        assert again.id == first.id and _count(s, Timer) == 1
        assert cancel_timers(s, subject=("lead", 1)) == 1
        fresh = schedule_timer(s, kind=NOOP, due_at=clock.now(), subject=("lead", 1), dedupe_key="sla:lead:1")
        assert fresh.id != first.id


def test_cancel_timers_by_subject_and_kind(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        for kind in (NOOP, "tests.always_fails"):
            schedule_timer(s, kind=kind, due_at=clock.now(), subject=("lead", 1))
        schedule_timer(s, kind=NOOP, due_at=clock.now(), subject=("lead", 2))
    with runtime.db.session_scope() as s:
        assert cancel_timers(s, subject=("lead", 1), kind="tests.always_fails") == 1
        assert cancel_timers(s, subject=("lead", 1)) == 1
        assert cancel_timers(s, subject=("lead", 1)) == 0
    assert sweep_once(runtime, owner="t") == 1
    with runtime.db.session_scope() as s:
        assert sorted(s.execute(select(Timer.subject_id, Timer.status)).all()) == [
            (1, "cancelled"),
            (1, "cancelled"),
            (2, "done"),
        ]


# --- firing ---------------------------------------------------------------------------------------


def test_timer_never_fires_before_due_and_fires_at_due(runtime: Runtime, clock: FrozenClock) -> None:
    [timer_id] = _schedule(runtime, after=timedelta(hours=1))
    assert sweep_once(runtime, owner="t") == 0
    clock.advance(minutes=59, seconds=59)
    assert sweep_once(runtime, owner="t") == 0
    assert _timer(runtime, timer_id).status == "pending"
    clock.advance(seconds=1)
    assert sweep_once(runtime, owner="t") == 1
    timer = _timer(runtime, timer_id)
    assert (timer.status, timer.attempts, timer.fired_at, timer.lease_owner) == (
        "done",
        1,
        timer.due_at,
        None,
    )
    with runtime.db.session_scope() as s:
        effect = s.scalars(select(Effect)).one()
        assert (effect.idempotency_key, effect.timer_id, effect.payload) == (
            f"timer:{timer_id}:noop",
            timer_id,
            {"n": 0},
        )
        assert s.scalars(select(AuditEvent.action)).all() == ["timer.noop_effect"]


def test_sweeper_claims_in_due_order_one_batch_at_a_time(runtime: Runtime, clock: FrozenClock) -> None:
    late = _schedule(runtime, 5, after=timedelta(minutes=-1))
    early = _schedule(runtime, 5, after=timedelta(minutes=-2))
    assert claim_due_timers(runtime, limit=5, owner="a") == early
    assert claim_due_timers(runtime, limit=5, owner="b") == late
    assert claim_due_timers(runtime, limit=5, owner="c") == []


def test_failing_handler_retries_with_exponential_backoff_then_fails(
    runtime: Runtime, clock: FrozenClock
) -> None:
    [timer_id] = _schedule(runtime, kind="tests.always_fails")
    assert sweep_once(runtime, owner="t") == 1
    timer = _timer(runtime, timer_id)
    assert (timer.status, timer.attempts, timer.due_at) == ("pending", 1, clock.now() + timedelta(seconds=10))
    assert timer.last_error == f"attempt 1: Boom: cannot deliver timer {timer_id}"
    clock.advance(seconds=9)
    assert sweep_once(runtime, owner="t") == 0
    clock.advance(seconds=1)
    assert sweep_once(runtime, owner="t") == 1
    assert _timer(runtime, timer_id).due_at == clock.now() + timedelta(seconds=20)
    clock.advance(seconds=20)
    assert sweep_once(runtime, owner="t") == 1
    timer = _timer(runtime, timer_id)
    assert (timer.status, timer.attempts, timer.lease_owner) == ("failed", 3, None)
    assert timer.last_error.startswith("attempt 3: Boom")
    clock.advance(hours=24)
    assert sweep_once(runtime, owner="t") == 0


def test_a_failing_timer_rolls_back_only_its_own_effects(runtime: Runtime, clock: FrozenClock) -> None:
    [bad] = _schedule(runtime, kind="tests.effect_then_fail")
    good = _schedule(runtime, 2)
    assert sweep_once(runtime, owner="t") == 3
    with runtime.db.session_scope() as s:
        assert dict(s.execute(select(Timer.id, Timer.status)).all()) == {
            bad: "pending",
            good[0]: "done",
            good[1]: "done",
        }
        assert sorted(s.scalars(select(Effect.timer_id))) == good


def test_jobs_enqueued_by_a_handler_go_out_only_if_its_timer_succeeded(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as s:
        ok = schedule_timer(s, kind="tests.enqueues_then_maybe_fails", due_at=clock.now(), payload={}).id
        bad = schedule_timer(
            s, kind="tests.enqueues_then_maybe_fails", due_at=clock.now(), payload={"fail": 1}
        ).id
    assert sweep_once(runtime, owner="t") == 2
    jobs = runtime.jobs
    assert isinstance(jobs, InProcessJobQueue) and jobs.drain() == 1 and not jobs.errors
    with runtime.db.session_scope() as s:
        assert list(s.scalars(select(Effect.idempotency_key))) == [f"followup:{ok}"]
        assert s.get(Timer, bad).status == "failed"  # type: ignore[union-attr]


def test_expired_lease_is_reclaimed_and_the_stale_claimer_is_ignored(
    runtime: Runtime, clock: FrozenClock
) -> None:
    [timer_id] = _schedule(runtime)
    assert claim_due_timers(runtime, limit=10, owner="crashed") == [timer_id]  # ...and then it died
    assert sweep_once(runtime, owner="t") == 0  # the lease still holds
    clock.advance(seconds=runtime.settings.timer_lease_seconds + 1)
    assert claim_due_timers(runtime, limit=10, owner="second") == [timer_id]
    with runtime.db.session_scope(immediate=True) as s:
        stats = execute_timers(s, runtime, [timer_id], "crashed")
    assert (stats.done, stats.skipped) == (0, 1)
    with runtime.db.session_scope(immediate=True) as s:
        assert execute_timers(s, runtime, [timer_id], "second").done == 1
    timer = _timer(runtime, timer_id)
    assert (timer.status, timer.attempts) == ("done", 2)


def test_a_timer_that_keeps_crashing_its_claimer_gives_up(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        timer_id = schedule_timer(s, kind=NOOP, due_at=clock.now(), max_attempts=2).id
    for owner in ("one", "two", "three"):
        assert claim_due_timers(runtime, limit=10, owner=owner) == [timer_id]
        clock.advance(seconds=runtime.settings.timer_lease_seconds + 1)
    with runtime.db.session_scope(immediate=True) as s:
        assert execute_timers(s, runtime, [timer_id], "three").failed == 1
    timer = _timer(runtime, timer_id)
    assert timer.status == "failed" and "claimed 3 times without finishing" in (timer.last_error or "")


def test_the_ledger_makes_a_rerun_idempotent(runtime: Runtime, clock: FrozenClock) -> None:
    [timer_id] = _schedule(runtime)
    assert sweep_once(runtime, owner="t") == 1
    with runtime.db.session_scope() as s:  # as if the 'done' had been lost and the timer runs again
        s.execute(update(Timer).values(status="pending"))
    assert sweep_once(runtime, owner="t") == 1
    with runtime.db.session_scope() as s:
        assert _timer(runtime, timer_id).status == "done"
        assert _count(s, Effect) == 1
        assert _count(s, AuditEvent) == 1


def test_unknown_kinds_are_reported_at_start_up_and_fail_with_a_clear_error(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as s:
        s.add(
            Timer(
                kind="vanished.kind",
                due_at=clock.now(),
                status="pending",
                payload={},
                attempts=0,
                max_attempts=1,
                created_at=clock.now(),
            )
        )
        s.flush()
        assert check_timer_kinds(s) == ["vanished.kind"]
    assert sweep_once(runtime, owner="t") == 1
    with runtime.db.session_scope() as s:
        timer = s.scalars(select(Timer)).one()
        assert timer.status == "failed"
        assert "unknown timer kind 'vanished.kind': no handler is registered" in (timer.last_error or "")
        assert check_timer_kinds(s) == []


def test_four_sqlite_sweeper_threads_fire_each_timer_once(runtime: Runtime, clock: FrozenClock) -> None:
    _schedule(runtime, 120)
    _sweep_in_threads(runtime, threads=4, batch_size=10)
    with runtime.db.session_scope() as s:
        assert _count(s, Timer, Timer.status == "done") == 120
        assert set(Counter(s.scalars(select(Effect.timer_id))).values()) == {1}


def _sweep_in_threads(rt: Runtime, *, threads: int, batch_size: int) -> None:
    errors: list[BaseException] = []

    def sweep(owner: str) -> None:
        try:
            while sweep_once(rt, batch_size=batch_size, owner=owner):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=sweep, args=(f"sweeper-{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors and not any(w.is_alive() for w in workers)


# --- PostgreSQL: concurrent claimers --------------------------------------------------------------


@pytest.mark.services
def test_four_postgresql_claimers_never_claim_a_row_twice(pg_runtime: Runtime, clock: FrozenClock) -> None:
    with pg_runtime.db.session_scope() as s:
        s.execute(
            insert(Timer),
            [
                {
                    "kind": NOOP,
                    "due_at": clock.now() - timedelta(seconds=n % 50),
                    "status": "pending",
                    "payload": {},
                    "attempts": 0,
                    "max_attempts": 5,
                    "created_at": clock.now(),
                }
                for n in range(2000)
            ],
        )
    claims: dict[str, list[int]] = {f"claimer-{n}": [] for n in range(4)}
    barrier = threading.Barrier(4)

    def claim(owner: str) -> None:
        barrier.wait()
        while ids := claim_due_timers(pg_runtime, limit=40, owner=owner):
            claims[owner].extend(ids)

    threads = [threading.Thread(target=claim, args=(owner,)) for owner in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = [i for ids in claims.values() for i in ids]
    assert len(everything) == len(set(everything)) == 2000
    with pg_runtime.db.session_scope() as s:
        owners = Counter(s.scalars(select(Timer.lease_owner)))
        assert owners == Counter({owner: len(ids) for owner, ids in claims.items() if ids})
        assert _count(s, Timer, Timer.attempts != 1) == 0


@pytest.mark.services
def test_four_postgresql_sweepers_record_each_effect_once(pg_runtime: Runtime, clock: FrozenClock) -> None:
    _schedule(pg_runtime, 300)
    _sweep_in_threads(pg_runtime, threads=4, batch_size=25)
    with pg_runtime.db.session_scope() as s:
        assert _count(s, Timer, Timer.status == "done") == 300
        assert set(Counter(s.scalars(select(Effect.timer_id))).values()) == {1}
        assert _count(s, AuditEvent) == 300
        assert verify_chain(s) is None


# --- periodic jobs --------------------------------------------------------------------------------

# Other areas declare periodic jobs too; these tests follow the built-in one.
PURGE = [j for j in PERIODIC_JOBS if j.name == "platform.purge_finished_timers"]


def test_periodic_jobs_run_once_per_interval(runtime: Runtime, clock: FrozenClock) -> None:
    jobs = runtime.jobs
    assert isinstance(jobs, InProcessJobQueue)
    assert run_due_periodic(runtime, PURGE) == ["platform.purge_finished_timers"]
    assert run_due_periodic(runtime, PURGE) == []  # a second scheduler in the same instant finds nothing due
    assert jobs.backlog() == 1 and jobs.drain() == 1 and not jobs.errors
    clock.advance(PURGE[0].every - timedelta(seconds=1))
    assert run_due_periodic(runtime, PURGE) == []
    clock.advance(days=3)  # the scheduler was down: one run, not a catch-up storm
    assert run_due_periodic(runtime, PURGE) == ["platform.purge_finished_timers"]
    assert run_due_periodic(runtime, PURGE) == []
    with runtime.db.session_scope() as s:
        row = s.get(PeriodicRun, "platform.purge_finished_timers")
        assert row is not None and row.next_run_at == clock.now() + PURGE[0].every


def test_periodic_declarations_must_name_registered_jobs(runtime: Runtime) -> None:
    with pytest.raises(LookupError, match="unknown job 'no.such.job'"):
        run_due_periodic(runtime, [PeriodicJob("no.such.job", timedelta(hours=1))])


@pytest.mark.services
def test_a_periodic_run_locked_by_another_scheduler_is_skipped(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    assert run_due_periodic(pg_runtime, PURGE) == ["platform.purge_finished_timers"]
    clock.advance(days=1)
    with pg_runtime.db.Session() as other:  # another scheduler is in the middle of starting it
        other.scalars(select(PeriodicRun).with_for_update()).all()
        assert run_due_periodic(pg_runtime, PURGE) == []
        other.rollback()
    assert run_due_periodic(pg_runtime, PURGE) == ["platform.purge_finished_timers"]


def test_purge_removes_old_finished_timers_and_their_ledger_rows(
    runtime: Runtime, clock: FrozenClock
) -> None:
    old = _schedule(runtime, 2)
    with runtime.db.session_scope() as s:
        cancel_timers(s, subject=("lead", 1))
    failed = _schedule(runtime, kind="tests.always_fails")
    sweep_once(runtime, owner="t")
    clock.advance(days=91)
    recent = _schedule(runtime)
    sweep_once(runtime, owner="t")
    with runtime.db.session_scope() as s:
        s.execute(update(Timer).where(Timer.id.in_(failed)).values(status="failed"))
    runtime.jobs.enqueue_now("platform.purge_finished_timers")
    runtime.jobs.drain()  # type: ignore[attr-defined]
    with runtime.db.session_scope() as s:
        assert sorted(s.scalars(select(Timer.id))) == sorted(failed + recent)
        assert list(s.scalars(select(Effect.timer_id))) == recent
        assert not set(old) & set(s.scalars(select(Timer.id)))
