"""Hot-path statements (`salesmesh.platform.rows`): `insert_row` writes every column (defaults included)
with one statement and hands over a loaded persistent object (also one made by `build_row`); a `Prepared`
statement, compiled once per dialect, runs in the session's transaction with its parameters processed like
SQLAlchemy's own (JSON, aware datetimes, values compiled into the statement), is seen by the engine's
statement hooks, and refuses statements whose SQL depends on the parameters — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, inspect, select, update

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.rows import Prepared, build_row, insert_row, result_processor
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.routing_models import RoundRobinCursor
from tests.workflows.routing_helpers import add_rep, counting

_cursors = RoundRobinCursor.__table__
TURN = Prepared(
    update(_cursors)
    .where(_cursors.c.routing_key == bindparam("key"), _cursors.c.turns == bindparam("seen"))
    .values(positions=bindparam("positions"), turns=_cursors.c.turns + 1, updated_at=bindparam("now"))
    .returning(_cursors.c.turns, _cursors.c.updated_at)
)
# The same parameter twice, and a value compiled into the statement.
NAMED = Prepared(
    select(func.count())
    .select_from(_cursors)
    .where(
        (_cursors.c.routing_key == bindparam("key")) | (_cursors.c.routing_key == bindparam("key") + "-x"),
        _cursors.c.turns >= 1,
    )
)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_prepared_statements_run_in_the_transaction_with_processed_parameters(
    database: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    rt: Runtime = request.getfixturevalue("runtime" if database == "sqlite" else "pg_runtime")
    with rt.db.session_scope() as session:
        session.add(RoundRobinCursor(routing_key="r", positions={}, turns=0, updated_at=clock.now()))
        session.flush()
        later = clock.now() + timedelta(hours=1)
        with counting(rt.db.engine) as statements:
            turns, stamp = TURN.execute(
                session, {"key": "r", "seen": 0, "positions": {"rule": 7, "名": 1}, "now": later}
            ).one()
            assert (
                TURN.execute(session, {"key": "r", "seen": 0, "positions": {}, "now": later}).first() is None
            )
            assert NAMED.execute(session, {"key": "r"}).scalar() == 1
        assert len(statements) == 3 and statements[0].startswith("UPDATE round_robin_cursors")
        assert turns == 1
        assert result_processor(session, RoundRobinCursor.updated_at.type)(stamp) == later  # aware UTC again
    with rt.db.session_scope() as session:  # committed with the session, stored as SQLAlchemy stores it
        cursor = session.scalars(select(RoundRobinCursor)).one()
        assert (cursor.turns, cursor.positions, cursor.updated_at) == (1, {"rule": 7, "名": 1}, later)


def test_a_statement_whose_sql_depends_on_its_parameters_is_refused(runtime: Runtime) -> None:
    expanding = Prepared(
        select(_cursors.c.turns).where(_cursors.c.routing_key.in_(bindparam("keys", expanding=True)))
    )
    with runtime.db.session_scope() as session, pytest.raises(ValueError, match="expanding"):
        expanding.execute(session, {"keys": ["a", "b"]})


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_insert_row_writes_defaults_and_hands_over_a_loaded_object(
    database: str, request: pytest.FixtureRequest, clock: FrozenClock
) -> None:
    rt: Runtime = request.getfixturevalue("runtime" if database == "sqlite" else "pg_runtime")
    with rt.db.session_scope() as session:
        rep = add_rep(session, clock, "Rep")
        note = Notification(
            user_id=rep.id, kind="lead.assigned", params={"lead": "线索"}, created_at=clock.now()
        )
        built = build_row(
            Notification, {"user_id": rep.id, "kind": "lead.assigned", "created_at": clock.now()}
        )
        assert inspect(built).transient and built.kind == "lead.assigned" and built.params is None
        with counting(rt.db.engine) as statements:
            insert_row(session, note)
            insert_row(session, built)
            session.flush()  # nothing left to write
            assert note.read_at is None and note.subject_id is None  # loaded: no query
            assert built.params == {} and built.read_at is None  # the columns' defaults
        assert len(statements) == 2 and all(s.startswith("INSERT INTO notifications") for s in statements)
        for row in (note, built):
            state = inspect(row)
            assert state.persistent and not state.modified and row.id is not None
            assert session.get(Notification, row.id) is row
        ids = (note.id, built.id)
    with rt.db.session_scope() as session:
        stored = [session.get(Notification, ident) for ident in ids]
        assert [(n.params, n.user_id) for n in stored if n is not None] == [
            ({"lead": "线索"}, rep.id),
            ({}, rep.id),
        ]
        assert session.get(User, rep.id) is not None
