"""Intake finds the published routing and lead form in every transaction (one statement; the compiled
plan and form come from caches keyed by version id and checksum): a routing or lead form published since —
by another process too — is used by the very next intake, a payload is judged by the form published now,
and two databases whose versions share ids are never confused."""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.workflows.intake import IntakeInvalid, intake_lead
from salesmesh.workflows.routing_models import RoutingDecision
from tests.workflows.intake_helpers import LEAD_FORM, intake_world, payload
from tests.workflows.routing_helpers import add_rep, counting, publish, routing_doc, rule

ROOT = Path(__file__).resolve().parents[2]


def _intake(rt: Runtime, clock: FrozenClock, **fields: Any) -> tuple[Any, list[str]]:
    with rt.db.session_scope(immediate=True) as session, counting(rt.db.engine) as statements:
        result = intake_lead(session, channel="hotline", payload=payload(**fields), clock=clock)
        return result, [s for s in statements if not s.startswith("BEGIN")]


def _person(i: int) -> dict[str, Any]:
    return {"phone": f"139{i:08d}", "email": f"p{i}@example.com"}


def test_a_routing_published_by_another_process_is_used_by_the_next_intake(
    runtime: Runtime, settings: Settings, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as session:
        intake_world(session, clock)
    _intake(runtime, clock, **_person(1))  # finds the definitions, compiles them
    first, sql = _intake(runtime, clock, **_person(2))
    assert len(sql) == 8 and "definition_versions.id, definitions.kind" in sql[0], sql
    assert first.decision.rule_key == "everyone"
    script = f"""
        from salesmesh.metamodel.versions import create_definition_draft, publish_version
        from salesmesh.platform.clock import FrozenClock
        from salesmesh.platform.runtime import Runtime
        from salesmesh.platform.settings import Settings
        from tests.workflows.routing_helpers import routing_doc, rule

        settings = Settings(
            database_url={settings.database_url!r},
            instance_path={str(settings.instance_path)!r},
            secret_key="x" * 32,
            testing=True,
        )
        rt = Runtime(settings, clock=FrozenClock())
        doc = routing_doc([rule("night_shift", True, channel="spare")])
        with rt.db.session_scope() as session:
            publish_version(session, None, create_definition_draft(session, None, doc, rt.clock).id, rt.clock)
        rt.close()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    second, sql = _intake(runtime, clock, **_person(3))
    assert second.decision.rule_key == "night_shift" and second.decision.channel == "spare"
    assert second.decision.routing_version_id != first.decision.routing_version_id
    assert len(sql) <= 10, sql  # reads the new version's document to compile it, once
    third, sql = _intake(runtime, clock, **_person(4))
    assert third.decision.rule_key == "night_shift" and len(sql) == 8


def test_a_payload_is_judged_by_the_lead_form_published_now(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as session:
        intake_world(session, clock)
    assert _intake(runtime, clock, **_person(1))[0].created
    # A second version makes a budget required: the remembered form would accept the submission.
    with_budget = {**LEAD_FORM, "sections": [dict(LEAD_FORM["sections"][0])]}
    with_budget["sections"][0]["fields"] = [
        *LEAD_FORM["sections"][0]["fields"],
        {"key": "budget", "type": "number", "label": {"en": "Budget", "zh": "预算"}, "required": True},
    ]
    with runtime.db.session_scope() as session:
        publish(session, clock, with_budget)
    with pytest.raises(IntakeInvalid) as refused:
        _intake(runtime, clock, **_person(2))
    assert [e["path"] for e in refused.value.errors] == ["/budget"]
    result, _sql = _intake(runtime, clock, budget=5000, **_person(3))
    assert result.created and result.lead.data["budget"] == 5000
    # A third version drops the contact name's requirement: the remembered form would refuse this one.
    relaxed = {**with_budget, "sections": [dict(with_budget["sections"][0])]}
    relaxed["sections"][0]["fields"] = [
        {**f, "required": False} if f["key"] == "contact_name" else f
        for f in with_budget["sections"][0]["fields"]
    ]
    with runtime.db.session_scope() as session:
        publish(session, clock, relaxed)
    result, _sql = _intake(runtime, clock, contact_name=None, budget=1, **_person(4))
    assert result.created and "contact_name" not in result.lead.data


def test_two_databases_whose_versions_share_ids_keep_their_own_routing(
    runtime: Runtime, tmp_path: Path, clock: FrozenClock
) -> None:
    other = Runtime(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'other.db'}",
            instance_path=tmp_path / "other",
            secret_key=secrets.token_hex(16),
            testing=True,
        ),
        clock=clock,
    )
    try:
        Base.metadata.create_all(other.db.engine)
        with runtime.db.session_scope() as session:
            intake_world(session, clock)
        with other.db.session_scope() as session:  # the same version ids, another routing
            publish(session, clock, LEAD_FORM)
            publish(session, clock, routing_doc([rule("elsewhere", True, channel="spare")]))
            add_rep(session, clock, "Other Rep")
        for i in range(2):
            here, _sql = _intake(runtime, clock, **_person(10 + i))
            there, _sql = _intake(other, clock, **_person(20 + i))
            assert here.decision.rule_key == "everyone" and there.decision.rule_key == "elsewhere"
            assert here.decision.routing_version_id == there.decision.routing_version_id  # same ids
        with other.db.session_scope() as session:
            assert session.scalars(select(RoutingDecision.rule_key)).all() == ["elsewhere", "elsewhere"]
    finally:
        other.close()
