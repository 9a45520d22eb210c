"""Two reps claiming the same lead at the same moment: exactly one wins, the others get ClaimConflict,
and one active claim row exists — on SQLite (writers serialised by BEGIN IMMEDIATE) and on PostgreSQL
(both transactions reach the conditional UPDATE together; the second waits for the first, then matches
no row). Also through the API: the loser gets HTTP 409."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from salesmesh.platform.accounts import create_api_token
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pool_models import LeadClaim
from salesmesh.workflows.pools import ClaimConflict, claim_lead
from tests.workflows.page_helpers import make_app
from tests.workflows.pool_helpers import pool_world, pooled_lead
from tests.workflows.routing_helpers import add_rep

RACERS = 4


def _world(runtime: Runtime, clock: FrozenClock) -> tuple[list[int], int]:
    with runtime.db.session_scope() as session:
        team = pool_world(session, clock)["rep_a1"].team
        reps = [add_rep(session, clock, f"Racer {i}", team=team).id for i in range(RACERS)]
        return reps, pooled_lead(session, clock).id


@contextmanager
def meeting_at_the_update(engine: Engine, parties: int) -> Iterator[threading.Barrier]:
    """Hold every transaction just before its `UPDATE leads` until all `parties` got there."""
    barrier = threading.Barrier(parties, timeout=20)

    def hook(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE leads SET"):
            barrier.wait()

    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield barrier
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def _race(runtime: Runtime, clock: FrozenClock, reps: list[int], lead_id: int) -> dict[int, str]:
    start = threading.Barrier(len(reps), timeout=20)
    outcome: dict[int, str] = {}

    def claim(rep_id: int) -> None:
        start.wait()
        try:
            with runtime.db.session_scope(immediate=True) as session:
                claim_lead(session, session.get(User, rep_id), lead_id, clock=clock)
            outcome[rep_id] = "won"
        except ClaimConflict:
            outcome[rep_id] = "conflict"
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below, with its name
            outcome[rep_id] = repr(exc)

    threads = [threading.Thread(target=claim, args=(rep,)) for rep in reps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcome


def _check(runtime: Runtime, outcome: dict[int, str], lead_id: int, racers: int) -> None:
    assert sorted(outcome.values()) == ["conflict"] * (racers - 1) + ["won"], outcome
    winner = next(rep for rep, result in outcome.items() if result == "won")
    with runtime.db.session_scope() as session:
        claims = session.scalars(select(LeadClaim).where(LeadClaim.lead_id == lead_id)).all()
        assert [(c.user_id, c.status) for c in claims] == [(winner, "active")]
        lead = session.get(Lead, lead_id)
        assert (lead.owner_id, lead.status) == (winner, "new")


def test_claim_race_on_sqlite(runtime: Runtime, clock: FrozenClock) -> None:
    reps, lead_id = _world(runtime, clock)
    _check(runtime, _race(runtime, clock, reps, lead_id), lead_id, RACERS)


def test_claim_race_on_postgresql_meets_at_the_conditional_update(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    reps, lead_id = _world(pg_runtime, clock)
    with meeting_at_the_update(pg_runtime.db.engine, 2):
        outcome = _race(pg_runtime, clock, reps[:2], lead_id)
    _check(pg_runtime, outcome, lead_id, 2)


def test_claim_race_on_postgresql_many_reps(pg_runtime: Runtime, clock: FrozenClock) -> None:
    reps, lead_id = _world(pg_runtime, clock)
    _check(pg_runtime, _race(pg_runtime, clock, reps, lead_id), lead_id, RACERS)


def test_the_api_answers_409_to_the_loser_on_postgresql(pg_runtime: Runtime, clock: FrozenClock) -> None:
    reps, lead_id = _world(pg_runtime, clock)
    with pg_runtime.db.session_scope() as session:
        tokens = [create_api_token(session, None, rep, label="race", clock=clock)[1] for rep in reps[:2]]
    app = make_app(pg_runtime)
    responses: list[Any] = []

    def post(token: str) -> None:
        responses.append(
            app.test_client().post(
                f"/api/v1/leads/{lead_id}/claim", headers={"Authorization": f"Bearer {token}"}
            )
        )

    with meeting_at_the_update(pg_runtime.db.engine, 2):
        threads = [threading.Thread(target=post, args=(token,)) for token in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(r.status_code for r in responses) == [201, 409], [r.get_json() for r in responses]
    lost = next(r for r in responses if r.status_code == 409).get_json()["error"]
    assert lost["code"] == "already_claimed"
    assert lost["errors"][0]["message_zh"] == "这条线索已被其他人抢先领取。"
    with pg_runtime.db.session_scope() as session:
        active = select(func.count()).select_from(LeadClaim).where(LeadClaim.status == "active")
        assert session.scalar(active) == 1
