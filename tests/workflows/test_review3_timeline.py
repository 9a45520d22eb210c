"""Review of issue 3: a routed lead's timeline reads in the page's language (the routing engine's audit
event and the outcome of its decision activity are shown by name, not as stored codes)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from salesmesh.platform.audit import record_event
from salesmesh.workflows.models import Activity
from tests.workflows.test_record_pages import ZH, app, world  # noqa: F401  (fixtures)


def _timeline_text(html: str) -> str:
    start = html.index('data-testid="timeline"')
    end = html.index("</ol>", start)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start:end]))


def test_a_routed_leads_timeline_shows_names_not_codes(
    client: Any,
    world: SimpleNamespace,  # noqa: F811  (the imported fixture)
    session: Any,
    clock: Any,
) -> None:
    lead = world.lead
    session.add(
        Activity(
            kind="routing_decision",
            subject_type="lead",
            lead_id=lead.id,
            occurred_at=clock.now(),
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            outcome="assigned",
            data={},
            created_at=clock.now(),
        )
    )
    record_event(
        session,
        at=clock.now(),
        actor_id=None,
        action="lead.route",
        object_type="leads",
        object_id=lead.id,
        payload={"outcome": "assigned"},
    )
    session.commit()
    english = _timeline_text(client.get(f"/leads/{lead.id}").get_data(as_text=True))
    assert "Lead routed" in english and "Assigned" in english
    chinese = _timeline_text(client.get(f"/leads/{lead.id}", headers=ZH).get_data(as_text=True))
    assert "lead.route" not in chinese and "assigned" not in chinese
    assert "线索已分配" in chinese and "已分配" in chinese and "分配决定" in chinese
