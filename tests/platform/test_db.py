"""Database plumbing: SQLite runs in WAL with foreign keys on, datetimes are aware UTC, and the
"immediate" sessions take the SQLite write lock when they begin."""

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Lead


def test_sqlite_pragmas(runtime: Runtime) -> None:
    with runtime.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_are_enforced(session: Session, clock: FrozenClock) -> None:
    session.add(
        Lead(
            name="x",
            source_channel="web_form",
            status="new",
            received_at=clock.now(),
            created_at=clock.now(),
            data={},
            owner_id=424242,
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_datetimes_round_trip_as_aware_utc(runtime: Runtime, session: Session, make_user) -> None:  # type: ignore[no-untyped-def]
    shanghai = timezone(timedelta(hours=8))
    user_id = make_user(unavailable_until=datetime(2026, 3, 2, 17, 30, tzinfo=shanghai)).id
    session.commit()
    with runtime.db.Session() as fresh:
        loaded = fresh.get(User, user_id)
        assert loaded is not None and loaded.unavailable_until is not None
        assert loaded.unavailable_until == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
        assert loaded.unavailable_until.tzinfo is UTC


def test_naive_datetimes_are_refused(session: Session, make_user) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    user.unavailable_until = datetime(2026, 1, 1, 9, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_immediate_session_holds_the_write_lock(runtime: Runtime) -> None:
    path = runtime.settings.database_url.removeprefix("sqlite:///")
    with runtime.db.ImmediateSession() as s:
        s.execute(text("SELECT 1"))  # BEGIN IMMEDIATE has run: the write lock is ours
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    with runtime.db.Session() as s:  # a deferred session takes no lock until it writes
        s.execute(text("SELECT 1"))
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
