"""A rep's "new leads": their own leads nobody has contacted yet, oldest first, with the first-response
countdown; one click ("Log call" / "Log message", a CSRF-protected form post) logs the activity, sets
first_contact_at, marks the lead contacted and takes it off the list; in English and Chinese."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.new_leads import list_new_leads, log_first_contact
from salesmesh.workflows.record_values import RecordError
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import count_statements, fresh, make_app, make_staff, sign_in


@pytest.fixture
def world(session: Session, clock: FrozenClock, make_lead: Any) -> dict[str, Any]:
    """rep_a1 with three new leads (an hour apart, the oldest overdue), one contacted; others' leads."""
    staff = make_staff(session, clock)
    a1, b1 = staff["rep_a1"], staff["rep_b1"]
    start = clock.now()
    mine = []
    for i, due_minutes in enumerate((-10, 25, None)):
        mine.append(
            make_lead(
                name=f"New {i}",
                owner_id=a1.id,
                team_id=a1.team_id,
                phone="+8613800000000",
                received_at=start - timedelta(hours=3 - i),
                sla_state="pending" if due_minutes is not None else None,
                sla_due_at=start + timedelta(minutes=due_minutes) if due_minutes is not None else None,
            )
        )
    contacted = make_lead(
        name="Already called",
        owner_id=a1.id,
        team_id=a1.team_id,
        status="contacted",
        first_contact_at=start,
        received_at=start - timedelta(hours=5),
    )
    theirs = make_lead(
        name="Not yours", owner_id=b1.id, team_id=b1.team_id, received_at=start - timedelta(hours=9)
    )
    pooled = make_lead(name="In the pool", status="pooled", received_at=start - timedelta(hours=9))
    session.commit()
    return {**staff, "mine": mine, "contacted": contacted, "theirs": theirs, "pooled": pooled}


@pytest.fixture
def client(runtime: Runtime) -> Any:
    return make_app(runtime).test_client()


def test_service_lists_own_uncontacted_leads_oldest_first(session: Session, world: dict[str, Any]) -> None:
    found = list_new_leads(session, world["rep_a1"])
    assert [lead.name for lead in found.rows] == ["New 0", "New 1", "New 2"] and not found.more
    limited = list_new_leads(session, world["rep_a1"], limit=2)
    assert len(limited.rows) == 2 and limited.more
    # A team lead's own list holds their own leads only, not the team's.
    assert list_new_leads(session, world["lead_a"]).rows == []


def test_page_shows_countdowns_in_both_languages(
    client: Any, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    sign_in(client, session, world["rep_a1"], clock)
    html = client.get("/new-leads").get_data(as_text=True)
    assert html.index("New 0") < html.index("New 1") < html.index("New 2")
    assert "Already called" not in html and "Not yours" not in html and "In the pool" not in html
    assert "Overdue by 10 min" in html and "Due in 25 min" in html and "No response deadline" in html
    assert "respond by 2026-01-05 08:50" in html  # the deadline itself (UTC: no calendar published)
    assert html.count('data-testid="log-call"') == 3 and html.count('data-testid="log-message"') == 3
    assert 'href="/leads/' in html and 'name="csrf_token"' in html
    assert 'data-testid="nav-new-leads"' in html
    zh = client.get("/new-leads", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "新线索" in zh and "已逾期 10 分钟" in zh and "剩余 25 分钟" in zh
    assert "记录电话" in zh and "记录消息" in zh and "无响应时限" in zh


def test_one_click_logs_the_first_contact_and_the_lead_leaves_the_list(
    client: Any, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    sign_in(client, session, world["rep_a1"], clock)
    lead = world["mine"][0]
    token = csrf_token(client, "/new-leads")
    clock.advance(minutes=1)
    response = client.post(f"/new-leads/{lead.id}/contact", data={"kind": "call", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/new-leads")
    done = fresh(session, lead)
    assert done.first_contact_at == clock.now() and done.status == "contacted"
    calls = session.scalars(select(Activity).where(Activity.lead_id == lead.id)).all()
    assert [(a.kind, a.actor_id) for a in calls if a.kind == "call"] == [("call", world["rep_a1"].id)]
    page = client.get("/new-leads").get_data(as_text=True)
    assert "Call logged: New 0 is contacted." in page
    assert f'data-lead="{lead.id}"' not in page and 'data-lead="' in page
    # A message works the same way.
    second = world["mine"][1]
    client.post(f"/new-leads/{second.id}/contact", data={"kind": "message", "csrf_token": token})
    assert fresh(session, second).first_contact_at is not None
    assert session.scalars(select(Activity.kind).where(Activity.lead_id == second.id)).all() == ["message"]


def test_double_click_and_bad_posts_log_nothing(
    client: Any, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    sign_in(client, session, world["rep_a1"], clock)
    lead = world["mine"][0]
    token = csrf_token(client, "/new-leads")
    url = f"/new-leads/{lead.id}/contact"
    assert client.post(url, data={"kind": "call"}).status_code == 400  # no CSRF token
    assert client.post(url, data={"kind": "visit", "csrf_token": token}).status_code == 302
    assert "Choose call or message." in client.get("/new-leads").get_data(as_text=True)
    client.post(url, data={"kind": "call", "csrf_token": token})
    client.post(url, data={"kind": "call", "csrf_token": token})  # the second click
    assert "already contacted" in client.get("/new-leads").get_data(as_text=True)
    session.rollback()
    assert len(session.scalars(select(Activity).where(Activity.lead_id == lead.id)).all()) == 1
    # Someone else's lead is a 404, and nothing is logged on it.
    theirs = world["theirs"]
    assert (
        client.post(f"/new-leads/{theirs.id}/contact", data={"kind": "call", "csrf_token": token}).status_code
        == 404
    )
    assert fresh(session, theirs).first_contact_at is None


def test_service_rules(session: Session, clock: FrozenClock, world: dict[str, Any]) -> None:
    a1 = world["rep_a1"]
    with pytest.raises(RecordError) as bad:
        log_first_contact(session, a1, world["mine"][0].id, kind="note", clock=clock)
    assert bad.value.errors[0]["path"] == "/kind" and bad.value.errors[0]["message_zh"]
    assert log_first_contact(session, a1, world["contacted"].id, kind="call", clock=clock) is None
    activity = log_first_contact(session, a1, world["mine"][2].id, kind="call", clock=clock)
    assert activity is not None and session.get(Lead, world["mine"][2].id).first_contact_at == clock.now()


def test_page_statements_do_not_grow_with_leads(
    client: Any, runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any], make_lead: Any
) -> None:
    a1 = world["rep_a1"]
    sign_in(client, session, a1, clock)
    client.get("/new-leads")
    with count_statements(runtime) as few:
        client.get("/new-leads")
    for i in range(20):
        make_lead(
            name=f"More {i}", owner_id=a1.id, team_id=a1.team_id, sla_state="pending", sla_due_at=clock.now()
        )
    session.commit()
    with count_statements(runtime) as many:
        html = client.get("/new-leads").get_data(as_text=True)
    assert html.count('data-testid="log-call"') == 23
    assert len(many) == len(few), many
