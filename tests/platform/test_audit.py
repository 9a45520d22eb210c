"""The audit log is a hash chain: appends link up, and any edit to history is detected."""

from sqlalchemy import update
from sqlalchemy.orm import Session

from salesmesh.platform.audit import GENESIS, AuditEvent, record_event, verify_chain
from salesmesh.platform.clock import FrozenClock


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
