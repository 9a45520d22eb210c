"""Shared fixtures: settings, runtime with a frozen clock, app/client, sessions and record factories.

Each test gets its own SQLite file (schema from the models; a separate test proves Alembic's head equals
them). `pg_url` and `redis_url` give the machine's real PostgreSQL (a fresh database per test session,
dropped at the end) and Redis (a dedicated db number, flushed); when a service is missing those fixtures
skip, unless SALESMESH_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "SALESMESH_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("SALESMESH_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
REQUIRE_SERVICES = os.environ.get("SALESMESH_REQUIRE_SERVICES") == "1"
TEST_PASSWORD = "correct horse battery staple"


def service_missing(what: str, why: object) -> None:
    """Fail (CI) or skip (a laptop without services) when a real service is unavailable."""
    message = f"{what} is not available: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (SALESMESH_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'test.db'}",
        instance_path=tmp_path / "instance",
        secret_key=secrets.token_hex(32),
        testing=True,
    )


@pytest.fixture
def runtime(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)
    yield rt
    rt.close()


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    s = runtime.db.Session()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    from salesmesh.platform.app import create_app

    application = create_app(runtime.settings, runtime=runtime)
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    name = f"salesmesh_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "service missing"
        yield f"error:{exc}"
        return
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(_pg_database: str) -> Iterator[str]:
    """A PostgreSQL database with an empty salesmesh schema (dropped and recreated per test)."""
    if _pg_database.startswith("error:"):
        service_missing("PostgreSQL", _pg_database[6:])
    engine = create_engine(_pg_database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield _pg_database


@pytest.fixture
def pg_runtime(pg_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[Runtime]:
    rt = Runtime(
        Settings(database_url=pg_url, instance_path=tmp_path / "instance", testing=True), clock=clock
    )
    Base.metadata.create_all(rt.db.engine)
    yield rt
    rt.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's real Redis, on a dedicated database number, flushed before and after."""
    import redis

    try:
        conn = redis.Redis.from_url(REDIS_TEST_URL)
        conn.ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis", exc)
    conn.flushdb()
    yield REDIS_TEST_URL
    conn.flushdb()
    conn.close()


# --- record factories -------------------------------------------------------------------------


@pytest.fixture
def make_team(session: Session, clock: FrozenClock) -> Callable[..., Any]:
    from salesmesh.platform.models import Team

    counter = iter(range(1, 10_000))

    def factory(**overrides: Any) -> Team:
        n = next(counter)
        values: dict[str, Any] = {
            "key": f"team-{n}",
            "name": {"en": f"Team {n}", "zh": f"团队{n}"},
            "created_at": clock.now(),
        }
        values.update(overrides)
        team = Team(**values)
        session.add(team)
        session.flush()
        return team

    return factory


@pytest.fixture
def make_user(session: Session, clock: FrozenClock) -> Callable[..., Any]:
    from salesmesh.platform.models import User
    from salesmesh.platform.passwords import hash_password

    counter = iter(range(1, 10_000))
    hashed = hash_password(TEST_PASSWORD)

    def factory(**overrides: Any) -> User:
        n = next(counter)
        values: dict[str, Any] = {
            "email": f"user{n}@example.test",
            "name": f"User {n}",
            "role": "rep",
            "password_hash": hashed,
            "active": True,
            "attributes": {},
            "created_at": clock.now(),
        }
        values.update(overrides)
        user = User(**values)
        session.add(user)
        session.flush()
        return user

    return factory


@pytest.fixture
def make_lead(session: Session, clock: FrozenClock) -> Callable[..., Any]:
    from salesmesh.workflows.models import Lead

    counter = iter(range(1, 100_000))

    def factory(**overrides: Any) -> Lead:
        n = next(counter)
        values: dict[str, Any] = {
            "name": f"Lead {n}",
            "source_channel": "web_form",
            "status": "new",
            "received_at": clock.now(),
            "created_at": clock.now(),
            "data": {},
        }
        values.update(overrides)
        lead = Lead(**values)
        session.add(lead)
        session.flush()
        return lead

    return factory


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        service_missing("Debian chromium", "not on PATH (apt-get install chromium)")
    return path  # type: ignore[return-value]
