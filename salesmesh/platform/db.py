"""Database plumbing: declarative base, portable column types, engines and session factories.

One `Database` per runtime owns the engine and two session factories: the normal one and an
"immediate" one whose transactions start with `BEGIN IMMEDIATE` on SQLite (a write lock up front, used by
batch claimers such as the timer sweeper). On PostgreSQL both behave the same and claimers use
`FOR UPDATE SKIP LOCKED` instead. SQLite runs in WAL mode with foreign keys on and a busy timeout.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every module that declares tables or mapper guards. Alembic's env.py and every Runtime (web, CLI,
# worker, scheduler) import them all, so the metadata is complete and guards such as "published
# definition versions are immutable" (metamodel.versions) are active in every process.
MODEL_MODULES = (
    "salesmesh.platform.models",
    "salesmesh.platform.audit",
    "salesmesh.platform.timers",
    "salesmesh.metamodel.models",
    "salesmesh.metamodel.versions",
    "salesmesh.workflows.models",
    "salesmesh.workflows.routing_models",
    "salesmesh.workflows.intake_models",
    "salesmesh.workflows.action_models",
    "salesmesh.workflows.import_models",
    "salesmesh.workflows.public_form_models",
    "salesmesh.workflows.pool_models",
    "salesmesh.platform.notifications",
    "salesmesh.platform.outbox",
    "salesmesh.workflows.pipeline_models",
    "salesmesh.workflows.approval_models",
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware-UTC datetimes in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use the runtime clock")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def import_models() -> None:
    """Import every model module so `Base.metadata` knows all tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """Create an engine with the per-dialect settings salesmesh relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not pool:
        kwargs = {"poolclass": NullPool}
    return create_engine(url, **kwargs)


class Database:
    """Engine + session factories for one runtime."""

    def __init__(self, url: str, *, pool: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, pool=pool)
        self.dialect = self.engine.dialect.name
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        immediate = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self.ImmediateSession = sessionmaker(immediate, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def session_scope(self, *, immediate: bool = False) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error (job / CLI boundary)."""
        factory = self.ImmediateSession if immediate else self.Session
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def utcnow_column_default() -> datetime:
    """Fallback default for created_at columns when no clock was passed (never used for business time)."""
    return datetime.now(UTC)
