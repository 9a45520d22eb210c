"""My day: a rep's own new leads (oldest first), follow-ups and tasks due, deals slipping (overdue next
step or yellow/red light, red first), one-tap call logging from the list, both languages, and a
statement count that does not grow with the number of rows."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from salesmesh.platform.models import User
from salesmesh.workflows.models import Activity, Lead, Task
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import (
    count_statements,
    fresh,
    make_app,
    make_staff,
    publish_calendar,
    sign_in,
)

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def app(runtime: Any) -> Any:
    return make_app(runtime)


@pytest.fixture
def day(
    client: Any,
    session: Any,
    clock: Any,
    pipeline: Any,
    make_lead: Any,
    make_customer: Any,
    make_deal: Any,
) -> SimpleNamespace:
    """rep_a1's day (working calendar: Asia/Shanghai; the frozen clock reads 17:00 there)."""
    publish_calendar(session, clock)
    people = make_staff(session, clock)
    rep, mate = people["rep_a1"], people["rep_a2"]
    now = clock.now()

    def lead(owner: Any, name: str, **extra: Any) -> Lead:
        return make_lead(name=name, owner_id=owner.id, team_id=owner.team_id, **extra)

    newest = lead(rep, "Newest lead", received_at=now - timedelta(minutes=5))
    oldest = lead(rep, "Oldest lead", received_at=now - timedelta(hours=30), phone="+8613812345678")
    lead(rep, "Contacted lead", status="contacted", received_at=now - timedelta(days=2))
    lead(mate, "Teammate's lead", received_at=now - timedelta(days=3))
    make_lead(name="Pool lead", status="pooled", received_at=now - timedelta(days=4))
    follow_up = lead(
        rep,
        "Call-back lead",
        status="contacted",
        next_step="Call back about the budget",
        next_step_due_at=now - timedelta(hours=2),
    )
    lead(rep, "Later lead", status="contacted", next_step="Later", next_step_due_at=now + timedelta(days=3))

    customer = make_customer(owner=rep, name="Ruijin Hospital")
    red = make_deal(customer=customer, name="Red deal", light="red")
    overdue = make_deal(
        customer=customer,
        name="Overdue deal",
        light="green",
        next_step="Send the quote",
        next_step_due_at=now - timedelta(days=2),
    )
    make_deal(customer=customer, name="Calm deal", light="green", next_step_due_at=now + timedelta(days=2))
    make_deal(customer=customer, name="Won deal", status="won", light="red")
    mates_customer = make_customer(owner=mate, name="Mate's hospital")
    make_deal(customer=mates_customer, name="Mate's red deal", light="red")

    def task(title: str, owner: Any, due: Any, **extra: Any) -> Task:
        row = Task(
            title=title,
            subject_type="lead",
            lead_id=oldest.id,
            assignee_id=owner.id,
            team_id=owner.team_id,
            status=extra.pop("status", "open"),
            due_at=due,
            data={},
            created_at=now,
        )
        session.add(row)
        return row

    task("Overdue task", rep, now - timedelta(days=1))
    task("Due tonight", rep, now + timedelta(hours=5))  # 22:00 Beijing time: still today
    task("Tomorrow's task", rep, now + timedelta(hours=9))  # 02:00 tomorrow
    task("Done task", rep, now - timedelta(days=1), status="done")
    task("Mate's task", mate, now - timedelta(days=1))
    session.commit()
    sign_in(client, session, rep, clock)
    return SimpleNamespace(
        rep=rep, oldest=oldest, newest=newest, follow_up=follow_up, red=red, overdue=overdue
    )


def _section(html: str, anchor: str) -> str:
    match = re.search(rf'<section class="card" id="{anchor}".*?</section>', html, re.S)
    assert match, anchor
    return match.group(0)


def test_my_day_lists_the_reps_own_work(client: Any, day: SimpleNamespace) -> None:
    html = client.get("/my-day").get_data(as_text=True)
    new = _section(html, "new-leads")
    assert new.index("Oldest lead") < new.index("Newest lead")  # the first-response clock: oldest first
    assert "Waiting for first contact: 30 h" in new and 'href="tel:+8613812345678"' in new
    for absent in ("Contacted lead", "Teammate's lead", "Pool lead"):
        assert absent not in new
    follow_ups = _section(html, "follow-ups")
    assert "Call-back lead" in follow_ups and "Call back about the budget" in follow_ups
    assert "Overdue" in follow_ups and "Later lead" not in follow_ups
    tasks = _section(html, "tasks")
    assert tasks.index("Overdue task") < tasks.index("Due tonight")
    for absent in ("Tomorrow's task", "Done task", "Mate's task"):
        assert absent not in tasks
    assert f'href="/leads/{day.oldest.id}">Oldest lead</a>' in tasks
    deals = _section(html, "deals")
    assert deals.index("Red deal") < deals.index("Overdue deal")  # red lights first
    assert "At risk" in deals and "Send the quote" in deals
    for absent in ("Calm deal", "Won deal", "Mate's red deal"):
        assert absent not in deals
    assert 'data-testid="count-new-leads">2<' in html


def test_my_day_in_chinese(client: Any, day: SimpleNamespace) -> None:
    html = client.get("/my-day", headers=ZH).get_data(as_text=True)
    for text in (
        "我的一天",
        "待联系的新线索",
        "待跟进",
        "到期任务",
        "滞后的商机",
        "记录通话",
        "已逾期",
        "有风险",
    ):
        assert text in html, text
    assert "等待首次联系：30 小时" in html


def test_one_tap_call_from_my_day(client: Any, day: SimpleNamespace, session: Any) -> None:
    html = client.get("/my-day").get_data(as_text=True)
    form = re.search(
        rf'<form class="agenda-log" method="post" action="/leads/{day.oldest.id}/activities".*?</form>',
        html,
        re.S,
    )
    assert form
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    due = re.search(r'name="next_step_due"[^>]*value="([^"]+)"', form.group(0))
    assert fields["kind"] == "call" and fields["next"] == "/my-day" and due
    data = MultiDict([*fields.items(), ("outcome", "no_answer"), ("next_step_due", due.group(1))])
    response = client.post(f"/leads/{day.oldest.id}/activities", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/my-day"
    session.rollback()
    activity = session.scalars(select(Activity)).one()
    assert (activity.kind, activity.outcome, activity.lead_id) == ("call", "no_answer", day.oldest.id)
    assert fresh(session, day.oldest).status == "contacted"
    html = client.get("/my-day").get_data(as_text=True)
    assert "Oldest lead" not in _section(html, "new-leads") and "Call logged." in html


def test_my_day_needs_a_login_and_the_csrf_token(app: Any, client: Any, day: SimpleNamespace) -> None:
    anonymous = app.test_client().get("/my-day")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    response = client.post(f"/leads/{day.oldest.id}/activities", data={"kind": "call", "next": "/my-day"})
    assert response.status_code == 400
    assert csrf_token(client, "/my-day")


def test_an_empty_day(app: Any, session: Any, clock: Any, day: SimpleNamespace) -> None:
    other = session.scalars(select(User).where(User.name == "rep_b1")).one()
    client = app.test_client()
    sign_in(client, session, other, clock)
    html = client.get("/my-day").get_data(as_text=True)
    assert "Nothing needs you right now." in html and "No new leads waiting." in html


def test_my_day_statement_count_does_not_grow_with_rows(
    client: Any, runtime: Any, day: SimpleNamespace, session: Any, clock: Any, make_lead: Any
) -> None:
    client.get("/my-day")
    with count_statements(runtime) as few:
        client.get("/my-day")
    for i in range(15):
        make_lead(name=f"Extra {i}", owner_id=day.rep.id, team_id=day.rep.team_id)
        session.add(
            Task(
                title=f"Extra task {i}",
                subject_type="lead",
                lead_id=day.newest.id,
                assignee_id=day.rep.id,
                team_id=day.rep.team_id,
                status="open",
                due_at=clock.now(),
                data={},
                created_at=clock.now(),
            )
        )
    session.commit()
    with count_statements(runtime) as many:
        html = client.get("/my-day").get_data(as_text=True)
    assert "Extra task 14" in html
    assert len(many) == len(few) <= 15
