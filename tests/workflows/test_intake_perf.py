"""Intake measured: the statement gate (at most 10 SQL statements per new lead, on SQLite and on PostgreSQL,
with the new owner's in-app notification included) and 1,000 concurrent intakes over 7 reps — every lead
assigned exactly once, every round-robin turn taken once, per-rep counts within one of each other, the
audit chain intact. Counts, never wall-clock times."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_models import RoundRobinCursor, RoutingDecision
from tests.workflows.intake_helpers import intake_world, payload
from tests.workflows.routing_helpers import counting

GATE = 10  # SQL statements per new lead (issue 4, "Measured")


def _listing(statements: list[str]) -> str:
    return "\n".join(f"{i + 1:>2}. {' '.join(s.split())[:150]}" for i, s in enumerate(statements))


def _measure(rt: Runtime, clock: FrozenClock, **fields: Any) -> tuple[Any, list[str]]:
    """Run one intake in its own transaction; return the result and its SQL (BEGIN left out)."""
    with rt.db.session_scope(immediate=True) as session, counting(rt.db.engine) as statements:
        result = intake_lead(session, channel="hotline", payload=payload(**fields), clock=clock)
    return result, [s for s in statements if not s.startswith("BEGIN")]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_statements_per_intake_stay_within_the_gate(
    database: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    rt: Runtime = request.getfixturevalue("runtime" if database == "sqlite" else "pg_runtime")
    with rt.db.session_scope() as session:
        intake_world(session, clock)
    _measure(rt, clock, phone="13700000000", email="warm@example.com")  # compiles the plan and the form

    result, sql = _measure(rt, clock)
    assert result.created and result.decision is not None and result.decision.outcome == "assigned"
    assert len(sql) <= GATE, f"{len(sql)} statements for one new lead on {database}:\n{_listing(sql)}"
    # What the budget holds: the lead is written once (its owner and deadline in the INSERT), one audit
    # event, the owner's notification.
    assert sum(s.startswith("INSERT INTO leads") for s in sql) == 1, _listing(sql)
    assert not any(s.startswith("UPDATE leads") for s in sql), _listing(sql)
    assert sum(s.startswith("INSERT INTO audit_events") for s in sql) == 1, _listing(sql)
    assert sum(s.startswith("INSERT INTO notifications") for s in sql) == 1, _listing(sql)

    duplicate, sql = _measure(rt, clock)  # the same person again: linked, no turn taken
    assert not duplicate.created and duplicate.lead.id == result.lead.id
    assert len(sql) <= 12, f"{len(sql)} statements for one duplicate on {database}:\n{_listing(sql)}"
    assert not any(s.startswith("UPDATE round_robin_cursors") for s in sql), _listing(sql)
    with rt.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(RoutingDecision)) == 2
        assert session.scalar(select(RoundRobinCursor.turns)) == 2
        assert verify_chain(session) is None


def run_concurrent_intakes(
    rt: Runtime, clock: FrozenClock, *, leads: int, reps: int, threads: int
) -> dict[str, Any]:
    """Submit `leads` different people from `threads` threads at once, each intake its own transaction."""
    with rt.db.session_scope() as session:
        rep_ids = intake_world(session, clock, reps=reps)
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(mine: range) -> None:
        try:
            start.wait()
            for i in mine:
                # IMMEDIATE: SQLite serialises the writers up front (ignored by PostgreSQL).
                with rt.db.session_scope(immediate=True) as session:
                    fields = payload(phone=f"139{i:08d}", email=f"p{i}@example.com", contact_name=f"P {i}")
                    result = intake_lead(session, channel="hotline", payload=fields, clock=clock)
                    assert result.created
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(range(t, leads, threads),)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    with rt.db.session_scope() as session:
        decisions = session.scalars(select(RoutingDecision)).all()
        owners = dict(session.execute(select(Lead.id, Lead.owner_id)).all())
        return {
            "errors": errors,
            "rep_ids": rep_ids,
            "owners": owners,
            "decisions_per_lead": Counter(d.lead_id for d in decisions),
            "turns": sorted(d.explanation["state"]["turn"] for d in decisions),
            "decided_owner": {d.lead_id: d.owner_id for d in decisions},
            "cursor_turns": session.scalar(select(RoundRobinCursor.turns)),
            "intake_events": session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "lead.intake")
            ),
            "chain_break": verify_chain(session),
        }


def _check(result: dict[str, Any], leads: int) -> None:
    assert result["errors"] == []
    assert len(result["owners"]) == leads
    assert set(result["decisions_per_lead"].values()) == {1} and len(result["decisions_per_lead"]) == leads
    assert result["decided_owner"] == result["owners"]  # the lead row carries the decision's owner
    assert set(result["owners"].values()) <= set(result["rep_ids"])
    assert result["turns"] == list(range(1, leads + 1))  # no turn taken twice, none skipped
    assert result["cursor_turns"] == leads
    per_rep = Counter(result["owners"].values())
    counts = [per_rep[rep_id] for rep_id in result["rep_ids"]]
    assert max(counts) - min(counts) <= 1, counts
    assert result["intake_events"] == leads
    assert result["chain_break"] is None


def test_1000_concurrent_intakes_over_7_reps_on_postgresql(pg_runtime: Runtime, clock: FrozenClock) -> None:
    _check(run_concurrent_intakes(pg_runtime, clock, leads=1000, reps=7, threads=6), 1000)


def test_1000_concurrent_intakes_over_7_reps_on_sqlite(runtime: Runtime, clock: FrozenClock) -> None:
    _check(run_concurrent_intakes(runtime, clock, leads=1000, reps=7, threads=3), 1000)
