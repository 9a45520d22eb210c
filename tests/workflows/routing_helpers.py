"""Helpers for the routing tests: shipped packs, reps with attributes, leads, small routing documents and
statement counting. Rows are inserted directly (no password hashing, no audit) so a test can build any
team quickly; the routing services under test are called explicitly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.pack_reading import load_pack
from salesmesh.metamodel.packs import apply_import
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.clock import Clock
from salesmesh.platform.models import Team, User
from salesmesh.workflows.models import Lead

PACKS = Path(__file__).resolve().parents[2] / "packs"
MD_PACK = PACKS / "medical-device-direct"
SAAS_PACK = PACKS / "saas-remote-team"


def import_pack(session: Session, clock: Clock, path: Path) -> None:
    """Import and publish a shipped template pack as the system."""
    apply_import(session, None, load_pack(path), clock)


def publish(session: Session, clock: Clock, document: dict[str, Any]) -> DefinitionVersion:
    """Create and publish a definition as the system."""
    draft = create_definition_draft(session, None, document, clock)
    return publish_version(session, None, draft.id, clock)


def add_team(session: Session, clock: Clock, key: str) -> Team:
    team = Team(key=key, name={"en": key, "zh": key}, created_at=clock.now())
    session.add(team)
    session.flush()
    return team


def add_rep(
    session: Session,
    clock: Clock,
    name: str,
    *,
    team: Team | None = None,
    role: str = "rep",
    active: bool = True,
    daily_capacity: int | None = None,
    unavailable_until: datetime | None = None,
    **attributes: Any,
) -> User:
    user = User(
        email=f"{name.lower().replace(' ', '.')}@example.test",
        name=name,
        role=role,
        team_id=team.id if team else None,
        password_hash="!",
        active=active,
        attributes=attributes,
        daily_capacity=daily_capacity,
        unavailable_until=unavailable_until,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def add_lead(session: Session, clock: Clock, data: dict[str, Any], **overrides: Any) -> Lead:
    values: dict[str, Any] = {
        "name": data.get("institution_name") or data.get("company_name") or "Lead",
        "source_channel": "web_form",
        "status": "new",
        "institution_grade": data.get("institution_grade"),
        "region": data.get("region"),
        "received_at": clock.now(),
        "created_at": clock.now(),
        "data": data,
    }
    values.update(overrides)
    lead = Lead(**values)
    session.add(lead)
    session.flush()
    return lead


TERTIARY = {
    "institution_name": "Peking Union",
    "institution_grade": "tertiary_a",
    "institution_type": "hospital",
}
TOWNSHIP = {
    "institution_name": "Xiaotangshan",
    "institution_grade": "primary",
    "institution_type": "township_health_center",
}
COUNTY = {
    "institution_name": "Miyun County",
    "institution_grade": "secondary",
    "institution_type": "hospital",
}


def rule(key: str, when: Any, strategy: str = "round_robin", **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "label": {"en": key, "zh": key},
        "when": when,
        "channel": extra.pop("channel", "main"),
        "strategy": strategy,
        **extra,
    }


def routing_doc(rules: list[dict[str, Any]], *, key: str = "test-routing", **top: Any) -> dict[str, Any]:
    """A routing document over form `test-lead` with channels main / spare and a least-loaded fallback."""
    doc: dict[str, Any] = {
        "kind": "routing",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Test routing", "zh": "测试分配"},
        "form": "test-lead",
        "channels": [
            {"key": "main", "label": {"en": "Main", "zh": "主通道"}},
            {"key": "spare", "label": {"en": "Spare", "zh": "备用通道"}},
        ],
        "rules": rules,
        "fallback": {"channel": "spare", "strategy": "least_loaded"},
    }
    doc.update(top)
    return doc


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """Collect every SQL statement sent to `engine` inside the block."""
    statements: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)
