"""The medical-device pack end to end: a deal entering "solution demo" gets the case-study reminder at
48 h (not a minute before) and, on the working calendar, the satisfaction survey at 72 h — an e-mail with
a tracked link delivered to a local SMTP receiver, whose link opens the survey and records the answers.
The deal gets there the way a rep moves it: key nodes ticked on a logged visit, then `move_deal` in the
locked pipeline, whose stage-change signal schedules the pack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.outbox import OutboxMessage
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.workflows.action_models import SurveyInvitation
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.models import Activity, Deal, Task
from salesmesh.workflows.pipelines import complete_key_node, move_deal
from tests.workflows.action_support import beijing, count, md_world, steps, sweep_all
from tests.workflows.smtp_receiver import Inbox, smtp_receiver

# Wednesday 4 March 2026, 15:00 in Beijing: +72 h is Saturday afternoon.
ENTERED = beijing(2026, 3, 4, 15, 0)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture
def settings(settings: Settings, inbox: Inbox) -> Settings:
    return settings.with_(
        base_url="https://crm.example.test",
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        smtp_from="crm@example.test",
    )


def _tick(runtime: Runtime, clock: FrozenClock, at: Any) -> None:
    """Move the clock, run what is due, then the jobs queued after commit (outbox delivery)."""
    clock.set(at)
    sweep_all(runtime)
    runtime.jobs.drain()


def test_solution_demo_reminder_at_48_hours_and_survey_on_the_next_working_morning(
    runtime: Runtime, clock: FrozenClock, inbox: Inbox, client: Any
) -> None:
    clock.set(ENTERED - timedelta(days=2))
    with runtime.db.session_scope() as s:
        world = md_world(s, clock)
        deal_id, rep_id = world.deal.id, world.rep.id
        world.deal.data = {**world.deal.data, "estimated_amount": 1200000, "decision_maker": "Dr. Zhang"}
    # The rep meets the department, ticks the stage's key nodes and moves the deal on (locked pipeline).
    clock.set(ENTERED - timedelta(hours=1))
    with runtime.db.session_scope() as s:
        rep = s.get(User, rep_id)
        log_activity(s, rep, kind="visit", clock=clock, deal_id=deal_id, summary="Needs assessment")
        for node in ("needs_assessment", "decision_chain"):
            complete_key_node(s, rep, deal_id, node, clock=clock)
    clock.set(ENTERED)
    with runtime.db.session_scope() as s:
        moved = move_deal(
            s, s.get(User, rep_id), deal_id, "solution_demo", clock=clock, from_stage="needs_confirmed"
        )
        assert moved.moved and s.get(Deal, deal_id).stage_entered_at == ENTERED
    with runtime.db.session_scope() as s:
        assert {t.payload["step"] for t in steps(s, deal_id).values()} == {
            "parameter_sheet",
            "send_case_studies",
            "satisfaction_survey",
        }

    _tick(runtime, clock, ENTERED + timedelta(hours=47, minutes=59))
    with runtime.db.session_scope() as s:
        assert count(s, Activity, Activity.kind == "reminder") == 0
        assert count(s, Task) == 1  # the 24 h parameter-sheet task, nothing else yet
        assert inbox.messages == []

    _tick(runtime, clock, ENTERED + timedelta(hours=48))
    with runtime.db.session_scope() as s:
        reminder = s.scalars(select(Activity).where(Activity.kind == "reminder")).one()
        assert reminder.occurred_at == ENTERED + timedelta(hours=48) and reminder.deal_id == deal_id
        note = s.scalars(select(Notification).where(Notification.kind == "actions.reminder")).one()
        assert note.user_id == rep_id
        assert count(s, SurveyInvitation) == 0

    # +72 h is Saturday 15:00: the calendar-aware survey waits for Monday 09:00 Beijing time.
    _tick(runtime, clock, beijing(2026, 3, 9, 8, 59))
    with runtime.db.session_scope() as s:
        assert count(s, SurveyInvitation) == 0
    contact_mail = [m for m in inbox.messages if m.recipients == ["zhang@ruijin.test"]]
    assert contact_mail == []

    _tick(runtime, clock, beijing(2026, 3, 9, 9, 0))
    with runtime.db.session_scope() as s:
        survey_timer = steps(s, deal_id)["satisfaction_survey"]
        assert survey_timer.status == "done" and survey_timer.fired_at == beijing(2026, 3, 9, 9, 0)
        invitation = s.scalars(select(SurveyInvitation)).one()
        assert invitation.deal_id == deal_id and invitation.email == "zhang@ruijin.test"
        assert invitation.expires_at == beijing(2026, 3, 9, 9, 0) + timedelta(hours=336)
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "zhang@ruijin.test")).one()
        assert sent.status == "sent" and sent.idempotency_key == f"timer:{survey_timer.id}:survey"
    [mail] = [m for m in inbox.messages if m.recipients == ["zhang@ruijin.test"]]
    assert mail.message["Subject"] == "请评价我们的方案演示"  # the rep works in Chinese
    link = f"https://crm.example.test/s/{invitation.token}"
    assert link in mail.text and "Dr. Zhang 您好" in mail.text and "rep.wang" in mail.text

    # The link opens the survey (counted) and takes the answers once.
    page = client.get(re.sub(r"^https://crm\.example\.test", "", link))
    assert page.status_code == 200 and b'name="rating"' in page.data
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    answered = client.post(
        f"/s/{invitation.token}", data={"csrf_token": token, "rating": "5", "comment": "清楚"}
    )
    assert answered.status_code == 200 and b'data-testid="survey-thanks"' in answered.data
    with runtime.db.session_scope() as s:
        invitation = s.scalars(select(SurveyInvitation)).one()
        assert invitation.open_count == 1 and invitation.first_opened_at == clock.now()
        assert (
            invitation.answers == {"rating": 5, "comment": "清楚"} and invitation.answered_at == clock.now()
        )
        told = s.scalars(select(Notification).where(Notification.kind == "actions.survey_answered")).one()
        assert told.user_id == rep_id and told.params["rating"] == 5
