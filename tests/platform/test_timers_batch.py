"""The sweeper's batch contract: a timer kind registered with a batch handler gets its claimed timers at
once, the ones it hands back run one by one, a batch that raises leaves nothing behind and every timer of
it runs one by one (effects once, failures retried), and a subject's later timers wait for its first.
SQLite with a frozen clock; the ledger's batch insert also on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent, record_events, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import INLINE_CHUNK, execute_timers, sweep_once
from salesmesh.platform.timers import (
    ClaimedTimer,
    Effect,
    Timer,
    TimerBatch,
    TimerContext,
    get_timer_kind,
    record_effect,
    record_effects,
    schedule_timer,
    timer_kind,
)

BATCHED = "tests.batched"
batch_calls: list[list[int]] = []  # the ids each batch call got, in order
single_runs: list[int] = []  # the ids the one-by-one handler ran


class Boom(RuntimeError):
    """The failure the test handlers raise."""


def _batched_many(batch: TimerBatch) -> Sequence[ClaimedTimer]:
    """Record an effect and an audit event per timer, except those whose payload asks to go alone; fail
    after writing everything when one asks the batch to fail."""
    batch_calls.append([t.id for t in batch.timers])
    mine = [t for t in batch.timers if not t.payload.get("alone")]
    new = batch.record_effects([(t, "work", "tests.work", {"n": t.payload["n"]}) for t in mine])
    record_events(
        batch.session,
        [
            {"at": batch.now, "actor_id": None, "action": "tests.work", "object_id": t.id}
            for t, is_new in zip(mine, new, strict=True)
            if is_new
        ],
    )
    if any(t.payload.get("sink_batch") for t in batch.timers):
        raise Boom("the batch fails after writing")
    return [t for t in batch.timers if t.payload.get("alone")]


@timer_kind(BATCHED, max_attempts=3, backoff_seconds=60, batch=_batched_many)
def _batched_one(ctx: TimerContext) -> None:
    single_runs.append(ctx.timer.id)
    if ctx.timer.payload.get("fail_alone"):
        raise Boom(f"timer {ctx.timer.id} cannot run")
    if ctx.record_effect("work", "tests.work", {"n": ctx.timer.payload["n"]}):
        record_events(
            ctx.session,
            [{"at": ctx.now, "actor_id": None, "action": "tests.work", "object_id": ctx.timer.id}],
        )


@pytest.fixture(autouse=True)
def _forget_calls() -> None:
    batch_calls.clear()
    single_runs.clear()


def _schedule(
    rt: Runtime, payloads: list[dict[str, object]], *, subjects: list[int] | None = None
) -> list[int]:
    with rt.db.session_scope() as s:
        timers = [
            schedule_timer(
                s,
                kind=BATCHED,
                due_at=rt.clock.now(),
                payload={"n": n, **payload},
                subject=("lead", subjects[n] if subjects else n),
                now=rt.clock.now(),
            )
            for n, payload in enumerate(payloads)
        ]
        s.flush()
        return [t.id for t in timers]


def _count(s: Session, model: type, *where: object) -> int:
    return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _effects_per_timer(s: Session) -> Counter[int]:
    return Counter(s.scalars(select(Effect.timer_id)))


def test_a_batch_kind_gets_its_chunk_at_once_and_the_rest_is_marked_done(
    runtime: Runtime, clock: FrozenClock
) -> None:
    ids = _schedule(runtime, [{}] * 60)
    assert sweep_once(runtime, owner="t") == 60
    assert (
        batch_calls == [ids] and single_runs == []
    )  # one call for the whole claim, far more than INLINE_CHUNK
    assert len(ids) > INLINE_CHUNK
    with runtime.db.session_scope() as s:
        assert _count(s, Timer, Timer.status == "done", Timer.fired_at == clock.now()) == 60
        assert _count(s, Timer, Timer.lease_owner.is_not(None)) == 0
        assert set(_effects_per_timer(s).values()) == {1} and len(_effects_per_timer(s)) == 60
        assert _count(s, AuditEvent) == 60 and verify_chain(s) is None


def test_timers_the_batch_hands_back_run_one_by_one(runtime: Runtime, clock: FrozenClock) -> None:
    ids = _schedule(runtime, [{}, {"alone": True}, {}, {"alone": True, "fail_alone": True}])
    sweep_once(runtime, owner="t")
    assert batch_calls == [ids] and single_runs == [ids[1], ids[3]]
    with runtime.db.session_scope() as s:
        assert {t.id: t.status for t in s.scalars(select(Timer))} == {
            ids[0]: "done",
            ids[1]: "done",
            ids[2]: "done",
            ids[3]: "pending",  # retried with the kind's backoff
        }
        retried = s.get(Timer, ids[3])
        assert retried.due_at == clock.now() + timedelta(seconds=60) and "Boom" in (retried.last_error or "")
        assert _effects_per_timer(s) == Counter({ids[0]: 1, ids[1]: 1, ids[2]: 1})


def test_a_failing_batch_keeps_nothing_and_each_timer_runs_alone_once(
    runtime: Runtime, clock: FrozenClock
) -> None:
    ids = _schedule(runtime, [{}, {"sink_batch": True}, {}, {"fail_alone": True}, {}])
    sweep_once(runtime, owner="t")
    assert batch_calls == [ids] and single_runs == ids  # the batch wrote effects and events, then raised
    with runtime.db.session_scope() as s:
        statuses = {t.id: t.status for t in s.scalars(select(Timer))}
        assert statuses == {i: ("pending" if i == ids[3] else "done") for i in ids}
        # The batch's writes were rolled back: each good timer has its effect once, from its own run.
        assert _effects_per_timer(s) == Counter({i: 1 for i in ids if i != ids[3]})
        assert _count(s, AuditEvent) == 4 and verify_chain(s) is None
    clock.advance(timedelta(minutes=2))
    batch_calls.clear()
    single_runs.clear()
    sweep_once(runtime, owner="t")  # the retry: a batch of one runs alone, and fails again
    assert batch_calls == [] and single_runs == [ids[3]]
    with runtime.db.session_scope() as s:
        assert s.get(Timer, ids[3]).attempts == 2
        assert sum(_effects_per_timer(s).values()) == 4


def test_a_subjects_later_timers_run_after_its_first_one(runtime: Runtime, clock: FrozenClock) -> None:
    ids = _schedule(runtime, [{}, {}, {}, {}], subjects=[1, 2, 1, 3])
    sweep_once(runtime, owner="t")
    assert batch_calls == [[ids[0], ids[1], ids[3]]] and single_runs == [ids[2]]
    with runtime.db.session_scope() as s:
        assert _count(s, Timer, Timer.status == "done") == 4


def test_stale_claims_early_timers_and_exhausted_timers_stay_out_of_the_batch(
    runtime: Runtime, clock: FrozenClock
) -> None:
    ids = _schedule(runtime, [{}] * 5)
    with runtime.db.session_scope() as s:
        for timer in s.scalars(select(Timer).where(Timer.id.in_(ids))):
            timer.status, timer.lease_owner, timer.attempts = "running", "me", 1
        s.get(Timer, ids[1]).lease_owner = "someone else"
        s.get(Timer, ids[2]).due_at = clock.now() + timedelta(hours=1)
        s.get(Timer, ids[3]).attempts = 4  # beyond max_attempts=3: crashed its claimers
    with runtime.db.session_scope() as s:
        stats = execute_timers(s, runtime, ids, "me")
        assert (stats.done, stats.skipped, stats.failed, stats.retried) == (2, 2, 1, 0)
        # The caller's session sees what the batch's UPDATE wrote.
        assert [s.get(Timer, i).status for i in ids] == ["done", "running", "pending", "failed", "done"]
    assert batch_calls == [[ids[0], ids[4]]] and single_runs == []


def test_record_effects_inserts_only_new_keys(session: Session, clock: FrozenClock) -> None:
    assert record_effect(session, "k:1", kind="tests.k", payload={}, now=clock.now())
    new = record_effects(
        session,
        [
            ("k:1", "tests.k", None, None),
            ("k:2", "tests.k", {"a": (1, 2)}, None),
            ("k:2", "tests.k", {}, None),
        ],
        now=clock.now(),
    )
    assert new == {"k:2"}
    assert session.scalars(select(Effect.payload).where(Effect.idempotency_key == "k:2")).one() == {
        "a": [1, 2]
    }
    assert record_effects(session, [], now=clock.now()) == set()
    with pytest.raises(ValueError, match="effect payload 1: not JSON-serialisable"):
        record_effects(
            session,
            [("k:3", "tests.k", {}, None), ("k:4", "tests.k", {"x": object()}, None)],
            now=clock.now(),
        )


@pytest.mark.services
def test_record_effects_on_postgresql(pg_runtime: Runtime, clock: FrozenClock) -> None:
    with pg_runtime.db.session_scope() as s:
        assert record_effects(s, [("p:1", "tests.k", {}, None)], now=clock.now()) == {"p:1"}
    with pg_runtime.db.session_scope() as s:
        keys = [(f"p:{n}", "tests.k", {"n": n}, None) for n in range(1, 301)]
        assert record_effects(s, keys, now=clock.now()) == {f"p:{n}" for n in range(2, 301)}
        assert _count(s, Effect) == 300


def test_a_kind_registered_with_a_batch_handler_carries_it() -> None:
    assert get_timer_kind(BATCHED).batch is _batched_many
