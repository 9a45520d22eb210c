"""Pages of the action-pack runtime: ops' failed-actions list with its retry button, a deal's steps, and
the public survey page (opens counted, answers stored once, bad answers named, expired and unknown links)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.passwords import hash_password
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import Timer
from salesmesh.workflows.action_models import SurveyInvitation
from salesmesh.workflows.models import Deal
from tests.conftest import TEST_PASSWORD
from tests.platform.auth_helpers import csrf_token, login
from tests.workflows.action_support import beijing, enter, make_deal, md_world, steps, sweep_all

ENTERED = beijing(2026, 3, 4, 15, 0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(base_url="https://crm.example.test")


@pytest.fixture
def world(runtime: Runtime, clock: FrozenClock) -> dict[str, Any]:
    clock.set(ENTERED)
    with runtime.db.session_scope() as s:
        w = md_world(s, clock)
        w.rep.password_hash = hash_password(TEST_PASSWORD)
        s.add(
            User(
                email="ops@hospital-sales.test",
                name="ops",
                role="ops",
                password_hash=w.rep.password_hash,
                active=True,
                attributes={},
                created_at=clock.now(),
            )
        )
        enter(s, w.deal, "solution_demo", ENTERED)
        return {"deal": w.deal.id, "rep": w.rep.email, "contact": w.contact.id}


def _fail_the_survey(runtime: Runtime, clock: FrozenClock, world: dict[str, Any]) -> int:
    with runtime.db.session_scope() as s:
        s.get(Deal, world["deal"]).primary_contact_id = None
    clock.set(beijing(2026, 3, 9, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        timer = steps(s, world["deal"])["satisfaction_survey"]
        assert timer.status == "failed"
        return timer.id


def test_ops_see_failed_steps_and_run_them_again(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    timer_id = _fail_the_survey(runtime, clock, world)
    assert login(client, "ops@hospital-sales.test").status_code == 302
    page = client.get("/ops/failed-actions")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f'data-timer="{timer_id}"' in html
    assert "has no primary contact" in html and "Demo satisfaction survey" in html
    with runtime.db.session_scope() as s:
        s.get(Deal, world["deal"]).primary_contact_id = world["contact"]
    token = csrf_token(client, "/ops/failed-actions")
    retried = client.post(f"/ops/failed-actions/{timer_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 303
    with runtime.db.session_scope() as s:
        timer = s.get(Timer, timer_id)
        assert (timer.status, timer.attempts, timer.due_at) == ("pending", 0, clock.now())
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "action_step.retry")).one()
        assert "has no primary contact" in audit.payload["previous_error"]
    again = client.post(
        f"/ops/failed-actions/{timer_id}/retry", data={"csrf_token": token}, follow_redirects=True
    )
    assert "it was retried already" in again.get_data(as_text=True)
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        assert s.get(Timer, timer_id).status == "done"
        assert s.scalars(select(SurveyInvitation)).one().deal_id == world["deal"]
    assert 'data-testid="no-failed-steps"' in client.get("/ops/failed-actions").get_data(as_text=True)


def test_reps_cannot_open_or_retry_failed_actions(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    timer_id = _fail_the_survey(runtime, clock, world)
    login(client, world["rep"])
    assert client.get("/ops/failed-actions").status_code == 403
    token = csrf_token(client, "/my-day")
    assert client.post(f"/ops/failed-actions/{timer_id}/retry", data={"csrf_token": token}).status_code == 403
    with runtime.db.session_scope() as s:
        assert s.get(Timer, timer_id).status == "failed"


def test_a_deal_page_of_steps_shows_what_is_coming_and_what_ran(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    clock.set(ENTERED + timedelta(hours=24))
    sweep_all(runtime)
    login(client, world["rep"])
    html = client.get(f"/deals/{world['deal']}/steps").get_data(as_text=True)
    upcoming = html.split('data-testid="upcoming-steps"')[1].split("</table>")[0]
    past = html.split('data-testid="past-steps"')[1].split("</table>")[0]
    assert 'data-step="send_case_studies"' in upcoming and 'data-step="satisfaction_survey"' in upcoming
    assert 'data-step="parameter_sheet"' in past and 'data-state="done"' in past
    assert "2026-03-09 09:00" in upcoming  # the survey's due time, in the calendar's zone
    deal_page = client.get(f"/deals/{world['deal']}").get_data(as_text=True)
    assert f'href="/deals/{world["deal"]}/steps"' in deal_page
    assert "已排期动作包步骤" in deal_page  # the scheduling, on the deal's timeline (the rep reads Chinese)
    with runtime.db.session_scope() as s:
        deal = s.get(Deal, world["deal"])
        other_id = make_deal(s, clock, deal.customer, None, deal.team.lead, name="The lead's own deal").id
    assert client.get(f"/deals/{other_id}/steps").status_code == 404


ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def test_the_failed_actions_and_deal_steps_pages_in_chinese(
    runtime: Runtime, clock: FrozenClock, app: Any, client: Any, world: dict[str, Any]
) -> None:
    clock.set(ENTERED + timedelta(hours=24))
    sweep_all(runtime)
    rep = app.test_client()
    login(rep, world["rep"])  # the rep's own locale is Chinese; the browser asks for it too
    page = rep.get(f"/deals/{world['deal']}/steps", headers=ZH)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    upcoming = html.split('data-testid="upcoming-steps"')[1].split("</table>")[0]
    past = html.split('data-testid="past-steps"')[1].split("</table>")[0]
    for text in ("动作包步骤", "即将执行", "已处理的步骤", "步骤", "截止日期", "状态"):
        assert text in html, text
    assert "发送成功案例" in upcoming and "演示满意度调查" in upcoming and "已排期" in upcoming
    assert "准备技术参数表" in past and "已完成" in past and "方案演示动作包" in past
    for english in (
        "Action-pack steps",
        "Upcoming",
        "Earlier steps",
        "Scheduled",
        "Done",
        "Send case studies",
    ):
        assert english not in html, english

    timer_id = _fail_the_survey(runtime, clock, world)
    assert login(client, "ops@hospital-sales.test").status_code == 302  # no locale of their own
    failed = client.get("/ops/failed-actions", headers=ZH)
    html = failed.get_data(as_text=True)
    assert failed.status_code == 200 and f'data-timer="{timer_id}"' in html
    for text in (
        "失败的动作",
        "多次重试后仍失败的动作包步骤",
        "商机",
        "步骤",
        "尝试次数",
        "错误",
        "重新执行",
    ):
        assert text in html, text
    assert "演示满意度调查" in html and "方案演示动作包" in html  # the pack's own Chinese labels
    for english in ("Failed actions", "Run again", "Attempts", "Demo satisfaction survey"):
        assert english not in html, english
    assert "Run again" in client.get("/ops/failed-actions").get_data(as_text=True)  # English stays English
    rep = app.test_client()  # days later: the rep's session went idle
    login(rep, world["rep"])
    past = rep.get(f"/deals/{world['deal']}/steps", headers=ZH).get_data(as_text=True)
    assert 'data-state="failed"' in past and "失败" in past.split('data-state="failed"')[1].split("</tr>")[0]

    with runtime.db.session_scope() as s:
        s.get(Deal, world["deal"]).primary_contact_id = world["contact"]
    token = csrf_token(client, "/ops/failed-actions")
    retried = client.post(
        f"/ops/failed-actions/{timer_id}/retry", data={"csrf_token": token}, headers=ZH, follow_redirects=True
    )
    assert "该步骤将在片刻后重新执行。" in retried.get_data(as_text=True)
    sweep_all(runtime)
    empty = client.get("/ops/failed-actions", headers=ZH).get_data(as_text=True)
    assert "没有失败的动作。所有到期步骤均已执行或正在重试。" in empty
    done = rep.get(f"/deals/{world['deal']}/steps", headers=ZH).get_data(as_text=True)
    assert "该商机没有待执行的步骤。" in done


def _invitation(runtime: Runtime, clock: FrozenClock, world: dict[str, Any]) -> SurveyInvitation:
    clock.set(beijing(2026, 3, 9, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        return s.scalars(select(SurveyInvitation)).one()


def test_the_survey_page_counts_opens_and_takes_the_answers_once(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    invitation = _invitation(runtime, clock, world)
    url = f"/s/{invitation.token}"
    first = client.get(url, headers={"Accept-Language": "zh-CN"})
    assert first.status_code == 200 and "您对我们的方案演示和服务满意吗？" in first.get_data(as_text=True)
    clock.advance(minutes=5)
    page = client.get(url)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    bad = client.post(url, data={"csrf_token": token, "rating": "9", "comment": "x" * 2001})
    assert bad.status_code == 422
    assert "Choose a rating from 1 to 5." in bad.get_data(as_text=True)
    assert "At most 2000 characters." in bad.get_data(as_text=True)
    assert client.post(url, data={"rating": "4"}).status_code == 400  # no CSRF token
    ok = client.post(url, data={"csrf_token": token, "rating": "4"})
    again = client.post(url, data={"csrf_token": token, "rating": "1", "comment": "changed my mind"})
    assert ok.status_code == 200 and again.status_code == 200
    assert "already answered" in again.get_data(as_text=True)
    with runtime.db.session_scope() as s:
        row = s.get(SurveyInvitation, invitation.id)
        assert row.open_count == 2 and row.first_opened_at == beijing(2026, 3, 9, 9, 0)
        assert row.last_opened_at == beijing(2026, 3, 9, 9, 5)
        assert row.answers == {"rating": 4, "comment": None}
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "survey.answer")).all()) == 1


def test_expired_and_unknown_survey_links(
    runtime: Runtime, clock: FrozenClock, client: Any, world: dict[str, Any]
) -> None:
    invitation = _invitation(runtime, clock, world)
    assert client.get("/s/" + "x" * 32).status_code == 404
    assert client.get("/s/short").status_code == 404
    clock.advance(hours=336)
    gone = client.get(f"/s/{invitation.token}")
    assert gone.status_code == 410 and 'data-testid="survey-closed"' in gone.get_data(as_text=True)
