"""Helpers for the record-page and My-day tests: the shipped lead form and calendar, a small company
(two teams with a lead and reps each), signing in without the password round (argon2 costs half a
second a time), and counting SQL statements."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from sqlalchemy import event

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.auth import SESSION_KEY
from salesmesh.platform.credentials import start_session
from salesmesh.platform.models import Team, User
from salesmesh.platform.passwords import hash_password
from salesmesh.platform.runtime import Runtime
from tests.conftest import TEST_PASSWORD
from tests.workflows.conftest import publish

PACK = Path(__file__).resolve().parents[2] / "packs" / "medical-device-direct" / "definitions"


class _MemoryBytecodeCache(BytecodeCache):
    """Compiled templates shared by the apps of a test run (each test builds a new app)."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        data = self._store.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._store[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CACHE = _MemoryBytecodeCache()


def make_app(runtime: Runtime) -> Any:
    """Build the web app for a test, reusing compiled templates across tests."""
    from salesmesh.platform.app import create_app

    application = create_app(runtime.settings, runtime=runtime)
    application.jinja_env.bytecode_cache = TEMPLATE_CACHE
    return application


def fresh(session: Any, row: Any) -> Any:
    """Return `row` as the database has it now (ends the test session's snapshot first)."""
    session.rollback()
    session.expire_all()  # no transaction may have been open: rollback alone would keep stale rows
    return session.get(type(row), row.id)


@cache
def _password_hash() -> str:
    return hash_password(TEST_PASSWORD)


def make_staff(session: Any, clock: Any) -> dict[str, User]:
    """Team A (lead_a, rep_a1, rep_a2) and team B (rep_b1), by name; one password hash per test run."""
    teams = {}
    for key in ("team-a", "team-b"):
        teams[key] = Team(key=key, name={"en": key, "zh": key}, created_at=clock.now())
        session.add(teams[key])
    session.flush()
    folks = {}
    for name, role, team in [
        ("lead_a", "lead", "team-a"),
        ("rep_a1", "rep", "team-a"),
        ("rep_a2", "rep", "team-a"),
        ("rep_b1", "rep", "team-b"),
    ]:
        folks[name] = User(
            email=f"{name}@example.test",
            name=name,
            role=role,
            team_id=teams[team].id,
            password_hash=_password_hash(),
            active=True,
            attributes={},
            created_at=clock.now(),
        )
        session.add(folks[name])
    session.flush()
    teams["team-a"].lead_id = folks["lead_a"].id
    session.flush()
    return folks


def sign_in(client: Any, session: Any, user: User, clock: Any) -> None:
    """Give the test client a live server-side session for `user` (what a login would do)."""
    _row, secret = start_session(session, user, clock=clock)
    session.commit()
    with client.session_transaction() as cookie:
        cookie[SESSION_KEY] = secret


def shipped(name: str) -> dict[str, Any]:
    """Return a definition document of the medical-device pack."""
    return json.loads((PACK / name).read_text(encoding="utf-8"))


def publish_lead_form(session: Any, clock: Any) -> DefinitionVersion:
    """Publish the shipped md-lead form (tender_date is shown only when a tender is planned)."""
    return publish(session, clock, shipped("lead_form.json"))


def publish_calendar(session: Any, clock: Any) -> DefinitionVersion:
    """Publish the shipped working calendar (Asia/Shanghai)."""
    return publish(session, clock, shipped("calendar.json"))


def valid_lead_data() -> dict[str, Any]:
    """Return form values that satisfy md-lead."""
    return {
        "institution_name": "江苏省人民医院",
        "institution_grade": "tertiary_a",
        "institution_type": "hospital",
        "region": "jiangsu",
        "contact_name": "王伟",
        "phone": "+8613812345678",
        "product_interest": ["ultrasound"],
        "source_channel": "website",
    }


def form_post(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Return md-lead values as HTML form pairs (lists become repeated names, booleans 'true')."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, list):
            pairs.extend((key, str(v)) for v in value)
        elif value is True:
            pairs.append((key, "true"))
        elif value is not False and value is not None:
            pairs.append((key, str(value)))
    return pairs


@contextmanager
def count_statements(runtime: Runtime) -> Iterator[list[str]]:
    """Collect the SQL statements run on the runtime's engine inside the block."""
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", hook)
