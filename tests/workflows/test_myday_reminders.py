"""The reminders inbox of My day: an action-pack `remind` step fires on the durable timers (frozen clock
moved, sweeper run) and its reminder shows in My day in English and Chinese with a link to the deal; "Mark
done" (a POST with the CSRF token) marks the notification read and it leaves My day. Only the rep's own
unread notifications of the reminder kinds are listed, newest first, capped, with a link to the inbox, in
a statement count that does not grow with the number of reminders."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import Notification, get_kind, notify
from salesmesh.platform.passwords import hash_password
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.workflows.agenda import REMINDER_KINDS, SECTION_LIMIT
from tests.conftest import TEST_PASSWORD
from tests.platform.auth_helpers import csrf_token, login
from tests.workflows.action_support import beijing, enter, md_world, steps, sweep_all
from tests.workflows.page_helpers import count_statements

# Wednesday 4 March 2026, 15:00 in Beijing: the case-study reminder is due Friday 15:00.
ENTERED = beijing(2026, 3, 4, 15, 0)
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(base_url="https://crm.example.test")


@pytest.fixture
def world(runtime: Runtime, clock: FrozenClock) -> dict[str, Any]:
    """A rep (language left to the browser) whose deal entered "solution demo" on Wednesday 15:00."""
    clock.set(ENTERED)
    with runtime.db.session_scope() as s:
        w = md_world(s, clock)
        w.rep.password_hash = hash_password(TEST_PASSWORD)
        w.rep.locale = None
        enter(s, w.deal, "solution_demo", ENTERED)
        return {"deal": w.deal.id, "rep": w.rep.id, "lead": w.lead.id, "email": w.rep.email}


def _section(html: str) -> str:
    match = re.search(r'<section class="card" id="reminders".*?</section>', html, re.S)
    assert match
    return match.group(0)


def _reminders(client: Any, **headers: Any) -> str:
    response = client.get("/my-day", headers=headers)
    assert response.status_code == 200
    return _section(response.get_data(as_text=True))


def test_a_fired_remind_step_shows_in_my_day_and_mark_done_clears_it(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    clock.set(ENTERED + timedelta(hours=47, minutes=59))
    sweep_all(runtime)
    assert login(client, world["email"]).status_code == 302  # signed in now: sessions expire when idle
    assert "No reminders." in _reminders(client)  # nothing fires early

    clock.set(ENTERED + timedelta(hours=48))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        assert steps(s, world["deal"])["send_case_studies"].status == "done"
        note = s.scalars(select(Notification).where(Notification.kind == "actions.reminder")).one()
        note_id = note.id
    html = client.get("/my-day").get_data(as_text=True)
    assert 'data-testid="count-reminders">1<' in html
    section = _section(html)
    assert section.count('data-testid="reminder"') == 1
    assert f'<a class="agenda-title" href="/deals/{world["deal"]}">' in section
    assert "Reminder: Send case studies · Ultrasound for cardiology" in section
    assert "Send the customer case studies from comparable hospitals" in section
    assert "2026-03-06 15:00" in section  # when it fired, on the working calendar's clock (Beijing)
    assert 'href="/notifications?unread=1"' in section

    zh = _reminders(client, **ZH)
    assert "提醒：发送成功案例 · Ultrasound for cardiology" in zh
    assert "请向客户发送同类医院的成功案例" in zh and "标记完成" in zh and "全部未读通知" in zh
    assert "提醒事项" in client.get("/my-day", headers=ZH).get_data(as_text=True)

    form = re.search(rf'<form method="post" action="/notifications/{note_id}/read".*?</form>', section, re.S)
    assert form
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    assert fields["next"] == "/my-day#reminders" and fields["csrf_token"]
    without_token = client.post(f"/notifications/{note_id}/read", data={"next": fields["next"]})
    assert without_token.status_code == 400
    done = client.post(f"/notifications/{note_id}/read", data=fields)
    assert done.status_code == 302 and done.headers["Location"] == "/my-day#reminders"
    with runtime.db.session_scope() as s:
        assert s.get(Notification, note_id).read_at == clock.now()
    after = client.get("/my-day").get_data(as_text=True)
    assert "No reminders." in _section(after) and 'data-testid="count-reminders">0<' in after
    assert "暂无提醒。" in _reminders(client, **ZH)
    # Still in the inbox, as read.
    inbox = client.get("/notifications").get_data(as_text=True)
    assert "Reminder: Send case studies" in inbox and f'data-id="{note_id}"' in inbox


def test_only_the_reps_own_unread_reminder_kinds_newest_first(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    for kind in REMINDER_KINDS:
        get_kind(kind)  # every listed kind is registered by the app's modules
    assert login(client, world["email"]).status_code == 302
    now = clock.now()
    with runtime.db.session_scope() as s:
        deal = ("deal", world["deal"])
        notify(
            s,
            user_ids=[world["rep"]],
            kind="lead.assigned",
            now=now,
            subject=("lead", 1),
            params={"lead": "News only", "due": "soon"},
        )
        notify(
            s,
            user_ids=[world["lead"]],
            kind="actions.escalation",
            now=now,
            subject=deal,
            params={"step": "Lead's own", "deal": "D", "message": "m"},
        )
        s.flush()
        notify(
            s,
            user_ids=[world["rep"]],
            kind="actions.escalation",
            now=now,
            subject=deal,
            params={"step": {"en": "Older", "zh": "较早"}, "deal": "D", "message": "m"},
        )
        s.flush()
        notify(
            s,
            user_ids=[world["rep"]],
            kind="lead.sla_missed",
            now=now,
            subject=("lead", 7),
            params={"lead": "Newer lead", "due": "10:00"},
        )
        s.flush()
        read = notify(
            s,
            user_ids=[world["rep"]],
            kind="actions.reminder",
            now=now,
            subject=deal,
            params={"step": "Already read", "deal": "D", "message": "m"},
        )
        s.flush()
        read[0].read_at = now
    section = _reminders(client)
    assert section.count('data-testid="reminder"') == 2
    assert section.index("You missed the first-response deadline for Newer lead") < section.index(
        "Escalation: Older · D"
    )
    assert 'href="/leads/7"' in section
    for absent in ("News only", "Lead's own", "Already read"):
        assert absent not in section
    assert "上报：较早 · D" in _reminders(client, **ZH)


def test_reminders_are_capped_and_cost_the_same_statements_however_many(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    assert login(client, world["email"]).status_code == 302

    def add(count: int, start: int) -> None:
        with runtime.db.session_scope() as s:
            for i in range(start, start + count):
                notify(
                    s,
                    user_ids=[world["rep"]],
                    kind="actions.reminder",
                    now=clock.now(),
                    subject=("deal", world["deal"]),
                    params={
                        "step": f"Step {i}",
                        "deal": "Ultrasound",
                        "message": {"en": "Do it", "zh": "去做"},
                    },
                )
                s.flush()

    add(2, 0)
    client.get("/my-day")
    with count_statements(runtime) as few:
        assert _reminders(client).count('data-testid="reminder"') == 2
    add(SECTION_LIMIT + 5, 2)
    with count_statements(runtime) as many:
        html = client.get("/my-day").get_data(as_text=True)
    section = _section(html)
    assert section.count('data-testid="reminder"') == SECTION_LIMIT
    assert f"Step {SECTION_LIMIT + 6}" in section and "Step 0 " not in section  # newest first
    assert f'data-testid="count-reminders">{SECTION_LIMIT}+<' in html
    assert "Only the newest are shown." in section
    assert len(many) == len(few) <= 16
    assert csrf_token(client, "/my-day")
