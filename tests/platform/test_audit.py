"""The audit log is a hash chain: appends link up, and any edit to history is detected. Each append is one
statement (plus the advisory lock on PostgreSQL) whose hash the database computes exactly as Python
verifies it, and concurrent writers on PostgreSQL still form one unbroken chain."""

import json
import threading
from datetime import timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from salesmesh.platform.audit import (
    GENESIS,
    AuditEvent,
    append_event,
    record_event,
    record_events,
    verify_chain,
)
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from tests.workflows.routing_helpers import counting


def _append(session: Session, clock: FrozenClock, n: int) -> list[AuditEvent]:
    events = []
    for i in range(n):
        events.append(
            record_event(
                session,
                at=clock.now(),
                actor_id=1,
                action="test.event",
                object_type="lead",
                object_id=i,
                payload={"i": i, "名字": "张三"},
            )
        )
        clock.advance(minutes=1)
    return events


def test_chain_links_and_verifies(session: Session, clock: FrozenClock) -> None:
    events = _append(session, clock, 5)
    assert events[0].prev_hash == GENESIS and events[0].seq == 1
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert verify_chain(session) is None


def test_tampering_is_detected(session: Session, clock: FrozenClock) -> None:
    _append(session, clock, 5)
    session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(payload={"i": 99}))
    session.expire_all()
    assert verify_chain(session) == 3


def test_deleting_a_row_is_detected(session: Session, clock: FrozenClock) -> None:
    events = _append(session, clock, 4)
    session.delete(events[1])
    session.flush()
    assert verify_chain(session) == 3


def _odd_payloads() -> list[dict[str, object]]:
    """Payloads whose canonical JSON the database must hash exactly as Python does."""
    return [
        {"名字": "张三", "note": '引号"和\\反斜杠', "ctl": "a\u0001b\nc"},
        {"f": 1.5, "big": 2**40, "neg": -3, "none": None, "ok": True, "list": [1, "二", {"k": []}]},
        {},
    ]


def test_each_event_is_one_statement_and_the_database_hashes_like_python(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as session:
        for payload in _odd_payloads():
            with counting(runtime.db.engine) as statements:
                record_event(session, at=clock.now(), actor_id=None, action="t", payload=payload)
            sql = [s for s in statements if not s.startswith("BEGIN")]
            assert len(sql) == 1 and sql[0].startswith("INSERT INTO audit_events"), sql
            clock.advance(seconds=1)
    with runtime.db.session_scope() as session:
        assert verify_chain(session) is None


def test_concurrent_writers_chain_up_on_postgresql(pg_runtime: Runtime, clock: FrozenClock) -> None:
    payloads = _odd_payloads()
    with pg_runtime.db.session_scope() as session, counting(pg_runtime.db.engine) as statements:
        record_event(session, at=clock.now(), actor_id=None, action="t", payload=payloads[0])
    # The chain's advisory lock, then the append itself.
    assert [s.split()[0] for s in statements if not s.startswith("BEGIN")] == ["SELECT", "INSERT"]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with pg_runtime.db.session_scope() as session:
                    record_event(
                        session,
                        at=clock.now(),
                        actor_id=worker,
                        action="t",
                        object_id=i,
                        payload=payloads[i % len(payloads)],
                    )
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
        assert seqs == list(range(1, 102))
        assert verify_chain(session) is None


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_append_event_stores_the_canonical_payload_it_hashed(
    database: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    rt: Runtime = request.getfixturevalue("runtime" if database == "sqlite" else "pg_runtime")
    # A datetime is not JSON: stored (and hashed) as its text, as record_event does.
    payloads = [*_odd_payloads(), {"when": clock.now(), "n": [1, 2]}]
    ids = []
    with rt.db.session_scope() as session:
        for payload in payloads:
            with counting(rt.db.engine) as statements:
                ids.append(
                    append_event(
                        session,
                        at=clock.now(),
                        actor_id=7,
                        action="t",
                        object_type="lead",
                        object_id=3,
                        payload=payload,
                    )
                )
            assert [s.split()[0] for s in statements if not s.startswith("BEGIN")][-1] == "INSERT"
            clock.advance(seconds=1)
        record_event(session, at=clock.now(), actor_id=None, action="t", payload=payloads[0])  # chains on
    with rt.db.session_scope() as session:
        stored = session.scalars(
            select(AuditEvent).where(AuditEvent.id.in_(ids)).order_by(AuditEvent.id)
        ).all()
        assert [e.payload for e in stored] == [json.loads(json.dumps(p, default=str)) for p in payloads]
        assert [(e.actor_id, e.object_id) for e in stored] == [(7, 3)] * len(payloads)
        assert verify_chain(session) is None


def test_an_event_time_in_another_zone_is_hashed_as_it_reads_back(
    session: Session, clock: FrozenClock
) -> None:
    beijing = timezone(timedelta(hours=8))
    at = clock.now().astimezone(beijing)
    record_event(session, at=at, actor_id=None, action="zone.one")
    append_event(session, at=at, actor_id=None, action="zone.two")
    record_events(session, [{"at": at, "action": "zone.three"}])
    session.commit()
    session.expire_all()
    stored = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.at for e in stored] == [at, at, at]  # the same instant, read back in UTC
    assert verify_chain(session) is None
