"""Review of issue 3: a routed lead's timeline reads in the page's language. Routing writes no activity of
its own: its audit event (`lead.route`, or `lead.intake` for a new lead) is the timeline entry, shown by
name with the decision's outcome, never as stored codes."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from salesmesh.platform.audit import record_event
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
    for action, outcome in (("lead.intake", "pooled"), ("lead.route", "assigned")):
        clock.advance(minutes=1)
        record_event(
            session,
            at=clock.now(),
            actor_id=None,
            action=action,
            object_type="leads",
            object_id=lead.id,
            payload={"decision_id": 1, "outcome": outcome, "source_channel": "hotline"},
        )
    session.commit()
    english = _timeline_text(client.get(f"/leads/{lead.id}").get_data(as_text=True))
    assert "Lead received and routed" in english and "Put in a pool" in english
    assert "Lead routed" in english and "Assigned" in english
    assert english.index("Lead routed") < english.index("Lead received and routed")  # newest first
    chinese = _timeline_text(client.get(f"/leads/{lead.id}", headers=ZH).get_data(as_text=True))
    assert "lead.route" not in chinese and "lead.intake" not in chinese
    assert "assigned" not in chinese and "pooled" not in chinese
    assert "线索已接收并分配" in chinese and "线索已分配" in chinese and "已分配" in chinese
