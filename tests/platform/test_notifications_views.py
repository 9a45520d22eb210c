"""The inbox page and the unread badge: both languages, mark read / all read / open, the e-mail
preference, someone else's notification is a 404, and the badge costs the same statements at any count."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import email_enabled, notify, unread_count
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows import lead_notices
from tests.platform.auth_helpers import csrf_token, login
from tests.workflows.page_helpers import count_statements

BADGE = re.compile(r'data-testid="unread-badge"[^>]*>([^<]+)<')


def _lead_notices(session: Session, clock: FrozenClock, user_id: int, n: int, step: int = 1) -> list[Any]:
    rows = []
    for i in range(n):
        rows += lead_notices.notify_lead(
            session, [user_id], lead_notices.ASSIGNED.name, _Lead(100 + i, f"Hospital {i}"), now=clock.now()
        )
        clock.advance(minutes=step)
    session.commit()
    return rows


class _Lead:
    def __init__(self, ident: int, name: str) -> None:
        self.id, self.name = ident, name


@pytest.fixture
def rep(session: Session, make_user: Any) -> Any:
    user = make_user(email="rep@example.test", name="Rep One")
    session.commit()
    return user


def test_inbox_and_badge_in_english(client: Any, session: Session, clock: FrozenClock, rep: Any) -> None:
    _lead_notices(session, clock, rep.id, 3)
    login(client, "rep@example.test")
    html = client.get("/").get_data(as_text=True)
    assert BADGE.findall(html) == ["3"] and ">Notifications" in html
    page = client.get("/notifications")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    titles = re.findall(r'class="notif-title">(?:<span[^>]*>[^<]*</span>)?([^<]+)<', text)
    assert titles == [
        "New lead for you: Hospital 2",
        "New lead for you: Hospital 1",
        "New lead for you: Hospital 0",
    ]
    assert "Mark all as read" in text and "Also send my notifications by e-mail" in text
    assert "E-mail is not set up on this server yet" in text  # no SMTP in these settings


def test_inbox_and_badge_in_chinese(client: Any, session: Session, clock: FrozenClock, rep: Any) -> None:
    rep.locale = "zh"
    _lead_notices(session, clock, rep.id, 2)
    login(client, "rep@example.test")
    text = client.get("/notifications").get_data(as_text=True)
    assert "<h1>通知</h1>" in text and "你有新线索：Hospital 1" in text and "全部标为已读" in text
    assert BADGE.findall(text) == ["2"] and "同时通过邮件接收我的通知" in text


def test_marking_read_opening_and_reading_all(
    client: Any, session: Session, clock: FrozenClock, rep: Any
) -> None:
    rows = _lead_notices(session, clock, rep.id, 3)
    login(client, "rep@example.test")
    token = csrf_token(client, "/notifications")
    back = client.post(
        f"/notifications/{rows[0].id}/read", data={"csrf_token": token, "next": "/notifications"}
    )
    assert back.status_code == 302 and back.headers["Location"] == "/notifications"
    assert BADGE.findall(client.get("/notifications").get_data(as_text=True)) == ["2"]
    opened = client.post(f"/notifications/{rows[1].id}/read", data={"csrf_token": token, "open": "1"})
    assert opened.status_code == 302 and opened.headers["Location"] == "/leads/101"
    everything = client.post("/notifications/read-all", data={"csrf_token": token}, follow_redirects=True)
    assert "1 notifications marked as read." in everything.get_data(as_text=True)
    assert BADGE.findall(everything.get_data(as_text=True)) == []
    session.expire_all()
    assert unread_count(session, rep.id) == 0
    unread = client.get("/notifications?unread=1").get_data(as_text=True)
    assert "No notifications." in unread


def test_someone_elses_notification_is_not_found(
    client: Any, session: Session, clock: FrozenClock, rep: Any, make_user: Any
) -> None:
    other = make_user()
    (theirs,) = notify(
        session, user_ids=[other.id], kind=lead_notices.ASSIGNED.name, now=clock.now(), params={"lead": "x"}
    )
    session.commit()
    login(client, "rep@example.test")
    token = csrf_token(client, "/notifications")
    assert client.post(f"/notifications/{theirs.id}/read", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/notifications/{2**64}/read", data={"csrf_token": token}).status_code == 404
    session.expire_all()
    assert unread_count(session, other.id) == 1
    assert client.get("/notifications?before=abc").status_code == 400


def test_email_preference_form(client: Any, session: Session, rep: Any) -> None:
    login(client, "rep@example.test")
    token = csrf_token(client, "/notifications")
    off = client.post(
        "/notifications/preferences", data={"csrf_token": token, "email": "off"}, follow_redirects=True
    )
    assert "E-mail notifications are off." in off.get_data(as_text=True)
    session.expire_all()
    assert not email_enabled(session, rep.id)
    assert 'value="off" checked' in off.get_data(as_text=True)
    bad = client.post("/notifications/preferences", data={"csrf_token": token, "email": "sometimes"})
    assert bad.status_code == 303
    assert client.post("/notifications/preferences", data={"email": "on"}).status_code == 400  # no CSRF token


def test_sign_in_is_required(client: Any) -> None:
    response = client.get("/notifications")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_badge_costs_the_same_at_any_count(
    client: Any, runtime: Runtime, session: Session, clock: FrozenClock, rep: Any
) -> None:
    login(client, "rep@example.test")
    client.get("/")
    with count_statements(runtime) as none:
        assert client.get("/").status_code == 200
    _lead_notices(session, clock, rep.id, 120, step=0)  # same moment: the session's last-seen stays put
    with count_statements(runtime) as many:
        html = client.get("/").get_data(as_text=True)
    assert BADGE.findall(html) == ["99+"]
    assert len(many) == len(none), (none, many)
