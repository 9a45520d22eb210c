"""Appending many audit events at once (`record_events`): the head is read once, the hashes are computed in
Python exactly as `verify_chain` recomputes them, the rows go in with one INSERT, and the chain stays one
chain with one-at-a-time appends before, after and (on PostgreSQL) concurrently."""

import threading
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import GENESIS, AuditEvent, record_event, record_events, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from tests.workflows.routing_helpers import counting


def _odd_payloads() -> list[dict[str, object]]:
    """Payloads whose stored form differs from what was passed (tuples, dates) or is hard to hash."""
    return [
        {"名字": "张三", "note": '引号"和\\反斜杠', "ctl": "a\u0001b\nc"},
        {"f": 1.5, "big": 2**40, "neg": -3, "none": None, "ok": True, "list": [1, "二", {"k": []}]},
        {"pair": (1, 2), "when": datetime(2026, 3, 2, 9, 0, tzinfo=UTC)},
        {},
    ]


def _events(clock: FrozenClock, n: int, *, offset: int = 0) -> list[dict[str, object]]:
    payloads = _odd_payloads()
    return [
        {
            "at": clock.now(),
            "actor_id": None if i % 2 else 7,
            "action": "test.batch",
            "object_type": "deals" if i % 3 else None,
            "object_id": offset + i,
            "payload": payloads[i % len(payloads)],
        }
        for i in range(n)
    ]


def test_a_batch_is_two_statements_and_verifies(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as session:
        record_event(session, at=clock.now(), actor_id=1, action="before", payload={"a": 1})
        with counting(runtime.db.engine) as statements:
            seqs = record_events(session, _events(clock, 50))
        assert [s.split()[0] for s in statements] == ["SELECT", "INSERT"]
        assert seqs == list(range(2, 52))
        clock.advance(minutes=1)
        record_event(session, at=clock.now(), actor_id=1, action="after", payload={"b": 2})
    with runtime.db.session_scope() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [r.seq for r in rows] == list(range(1, 53))
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
        assert rows[3].payload == {"pair": [1, 2], "when": "2026-03-02 09:00:00+00:00"}
        assert (rows[1].actor_id, rows[1].object_type, rows[1].object_id) == (7, None, 0)
        assert (rows[2].actor_id, rows[2].object_type, rows[2].object_id) == (None, "deals", 1)
        assert verify_chain(session) is None


def test_the_first_batch_starts_the_chain_and_an_empty_one_writes_nothing(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as session:
        with counting(runtime.db.engine) as statements:
            assert record_events(session, []) == []
        assert statements == []
        assert record_events(session, _events(clock, 3)) == [1, 2, 3]
        first = session.scalars(select(AuditEvent).where(AuditEvent.seq == 1)).one()
        assert first.prev_hash == GENESIS
        assert verify_chain(session) is None


def test_an_edited_batch_row_is_detected(session: Session, clock: FrozenClock) -> None:
    record_events(session, _events(clock, 6))
    row = session.scalars(select(AuditEvent).where(AuditEvent.seq == 4)).one()
    row.object_id = 999
    session.flush()
    assert verify_chain(session) == 4


def test_batches_and_single_events_from_concurrent_writers_form_one_chain_on_postgresql(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    with pg_runtime.db.session_scope() as session, counting(pg_runtime.db.engine) as statements:
        record_events(session, _events(clock, 10))
    # The chain's advisory lock, the head, the rows.
    assert [s.split()[0] for s in statements if not s.startswith("BEGIN")] == ["SELECT", "SELECT", "INSERT"]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(15):
                with pg_runtime.db.session_scope() as session:
                    if worker % 2:
                        record_events(session, _events(clock, 7, offset=100 * worker + i))
                    else:
                        record_event(session, at=clock.now(), actor_id=worker, action="t", object_id=i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with pg_runtime.db.session_scope() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        assert seqs == list(range(1, 10 + 2 * 15 * 7 + 2 * 15 + 1))
        assert verify_chain(session) is None
