"""Notifications and the outbox: rows and rendering in both languages, read state, the e-mail preference,
SMTP delivery to a local receiver (retry after a refusal, never twice), signed webhooks, give-up after the
last attempt, and the settings that configure them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.jobs import run_job
from salesmesh.platform.notifications import (
    DELIVER_JOB,
    Notification,
    NotificationNotFound,
    UnknownNotificationKind,
    email_enabled,
    fan_out,
    inbox,
    mark_all_read,
    mark_read,
    notification_kind,
    notify,
    render,
    run_delivery,
    set_email_preference,
    unread_count,
)
from salesmesh.platform.outbox import (
    FAILED,
    PENDING,
    SENT,
    Message,
    OutboxMessage,
    enqueue_messages,
    message_id,
    retry_delay,
    retry_message,
)
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings, SettingsError
from salesmesh.workflows import lead_notices
from tests.platform.notification_helpers import smtp_receiver, webhook_receiver
from tests.workflows.routing_helpers import counting

PING = notification_kind(
    "test.ping", title="Ping from %(who)s", body="Sent at %(at)s.", path="/things/{subject_id}"
)
SECRET = "webhook-secret-0123456789"


@pytest.fixture
def mail(settings: Settings, clock: FrozenClock) -> Iterator[tuple[Runtime, Any]]:
    """A runtime whose SMTP server is a local receiver; yields (runtime, mailbox)."""
    with smtp_receiver() as (port, box):
        rt = Runtime(
            settings.with_(
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_from="crm@example.test",
                base_url="https://crm.example",
            ),
            clock=clock,
        )
        Base.metadata.create_all(rt.db.engine)
        yield rt, box
        rt.close()


def _outbox(rt: Runtime) -> list[OutboxMessage]:
    with rt.db.session_scope() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


# --- rows, rendering, read state -----------------------------------------------------------------------


def test_notify_adds_rows_that_render_in_both_languages(
    session: Session, clock: FrozenClock, make_user: Any
) -> None:
    rep = make_user()
    rows = lead_notices.notify_lead(
        session,
        [rep.id, rep.id, None],  # repeats and nobody are skipped
        lead_notices.ASSIGNED.name,
        _Lead(7, "Peking Union"),
        now=clock.now(),
        due=lead_notices.moment(datetime(2026, 3, 16, 1, 20, tzinfo=UTC), "Asia/Shanghai"),
    )
    assert len(rows) == 1 and rows[0].id is None  # added, written with the caller's next flush
    session.flush()
    en, zh = render(rows[0], "en"), render(rows[0], "zh")
    assert en.title == "New lead for you: Peking Union"
    assert en.body == "Please make the first contact by 2026-03-16 09:20."  # shown in the calendar's zone
    assert zh.title == "你有新线索：Peking Union"
    assert zh.body == "请在 2026-03-16 09:20 前完成首次联系。"
    assert en.path == zh.path == "/leads/7"


def test_notify_can_write_at_once_for_hot_paths(
    runtime: Runtime, session: Session, clock: FrozenClock, make_user: Any
) -> None:
    rep = make_user()
    with counting(runtime.db.engine) as statements:
        rows = notify(
            session, user_ids=[rep.id, rep.id], kind=lead_notices.ASSIGNED.name, now=clock.now(), write=True
        )
        session.flush()  # nothing left to write
    assert len(rows) == 1 and rows[0].id is not None and rows[0].outbox_state == "pending"
    assert [s.split()[:3] for s in statements] == [["INSERT", "INTO", "notifications"]]
    assert session.scalar(select(func.count()).select_from(Notification)) == 1
    assert render(rows[0], "zh").title.startswith("你有新线索")


def test_a_body_without_its_parameters_is_left_out(
    session: Session, clock: FrozenClock, make_user: Any
) -> None:
    rep = make_user()
    (row,) = notify(
        session,
        user_ids=[rep.id],
        kind=PING.name,
        now=clock.now(),
        params={"who": {"en": "Ops", "zh": "运营"}},
    )
    assert render(row, "en").title == "Ping from Ops" and render(row, "en").body is None
    assert render(row, "zh").title == "Ping from 运营"  # a bilingual label parameter follows the reader


def test_unknown_kinds_and_bad_params_are_refused(
    session: Session, clock: FrozenClock, make_user: Any
) -> None:
    rep = make_user()
    with pytest.raises(UnknownNotificationKind, match="unknown notification kind 'no.such'"):
        notify(session, user_ids=[rep.id], kind="no.such", now=clock.now())
    with pytest.raises(ValueError, match="/params"):
        notify(session, user_ids=[rep.id], kind=PING.name, now=clock.now(), params={"who": object()})
    with pytest.raises(ValueError, match="already registered"):
        notification_kind(PING.name, title="again")


def test_read_state_unread_count_and_inbox_belong_to_their_person(
    session: Session, clock: FrozenClock, make_user: Any
) -> None:
    me, other = make_user(), make_user()
    for i in range(5):
        notify(session, user_ids=[me.id], kind=PING.name, now=clock.now(), params={"who": f"n{i}"})
        clock.advance(minutes=1)
    (theirs,) = notify(session, user_ids=[other.id], kind=PING.name, now=clock.now(), params={"who": "x"})
    session.flush()
    assert unread_count(session, me.id) == 5 and unread_count(session, me.id, cap=2) == 3
    page = inbox(session, me, limit=3)
    assert [render(n, "en").title for n in page.items] == ["Ping from n4", "Ping from n3", "Ping from n2"]
    assert page.has_more and page.next_before == page.items[-1].id
    older = inbox(session, me, limit=3, before=page.next_before)
    assert [render(n, "en").title for n in older.items] == [
        "Ping from n1",
        "Ping from n0",
    ] and not older.has_more
    first = mark_read(session, me, page.items[0].id, now=clock.now())
    assert first.read_at == clock.now()
    clock.advance(minutes=5)
    assert mark_read(session, me, first.id, now=clock.now()).read_at == first.read_at  # again: unchanged
    assert unread_count(session, me.id) == 4
    assert [n.id for n in inbox(session, me, unread_only=True).items] == [n.id for n in page.items[1:]] + [
        n.id for n in older.items
    ]
    with pytest.raises(NotificationNotFound):
        mark_read(session, me, theirs.id, now=clock.now())
    assert mark_all_read(session, me, now=clock.now()) == 4
    assert unread_count(session, me.id) == 0 and unread_count(session, other.id) == 1


def test_email_preference_defaults_on_and_is_audited(
    session: Session, clock: FrozenClock, make_user: Any
) -> None:
    from salesmesh.platform.audit import AuditEvent

    rep = make_user()
    assert email_enabled(session, rep.id)
    set_email_preference(session, rep, enabled=False, now=clock.now())
    assert not email_enabled(session, rep.id)
    set_email_preference(session, rep, enabled=True, now=clock.now())
    assert email_enabled(session, rep.id)
    events = session.scalars(
        select(AuditEvent.payload).where(AuditEvent.action == "notification.preferences")
    )
    assert list(events) == [{"email": False}, {"email": True}]


# --- e-mail through the outbox --------------------------------------------------------------------------


def test_email_is_sent_once_in_the_readers_language(mail: tuple[Runtime, Any], clock: FrozenClock) -> None:
    rt, box = mail
    with rt.db.session_scope() as s:
        zh_rep = _make(s, clock, "wang@example.test", locale="zh")
        en_rep = _make(s, clock, "smith@example.test", locale=None)
        lead_notices.notify_lead(
            s, [zh_rep, en_rep], lead_notices.ASSIGNED.name, _Lead(3, "协和医院"), now=clock.now()
        )
    run = run_delivery(rt)
    assert (run.fanned_out, run.sent, run.retried, run.failed) == (2, 2, 0, 0)
    by_to = {m["To"]: m for m in box.messages}
    assert by_to["wang@example.test"]["Subject"] == "你有新线索：协和医院"
    assert by_to["smith@example.test"]["Subject"] == "New lead for you: 协和医院"
    text = by_to["smith@example.test"].get_content()
    assert "Open: https://crm.example/leads/3" in text and "Please make the first contact" not in text
    assert by_to["wang@example.test"]["From"] == "crm@example.test"
    rows = _outbox(rt)
    assert [r.status for r in rows] == [SENT, SENT]
    assert {m["Message-ID"] for m in box.messages} == {message_id(r.idempotency_key) for r in rows}
    again = run_delivery(rt)  # a re-run finds nothing to fan out and nothing due
    assert (again.fanned_out, again.sent) == (0, 0) and len(box.messages) == 2


def test_a_refused_email_is_retried_with_backoff_and_then_sent_once(
    mail: tuple[Runtime, Any], clock: FrozenClock
) -> None:
    rt, box = mail
    box.refuse = 2
    with rt.db.session_scope() as s:
        rep = _make(s, clock, "rep@example.test")
        notify(s, user_ids=[rep], kind=PING.name, now=clock.now(), params={"who": "ops"})
    first = run_delivery(rt)
    assert (first.sent, first.retried) == (0, 1) and box.messages == []
    (row,) = _outbox(rt)
    assert row.status == PENDING and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.next_attempt_at == clock.now() + retry_delay(1) == clock.now() + timedelta(minutes=1)
    assert run_delivery(rt).retried == 0  # not due yet: nothing is tried early
    clock.advance(minutes=1)
    assert run_delivery(rt).retried == 1
    (row,) = _outbox(rt)
    assert row.attempts == 2 and row.next_attempt_at == clock.now() + timedelta(minutes=2)
    clock.advance(minutes=2)
    assert run_delivery(rt).sent == 1
    clock.advance(hours=1)
    assert run_delivery(rt).sent == 0
    (row,) = _outbox(rt)
    assert row.status == SENT and row.attempts == 3 and row.last_error is None and len(box.messages) == 1


def test_the_same_key_is_never_queued_twice(mail: tuple[Runtime, Any], clock: FrozenClock) -> None:
    rt, box = mail
    with rt.db.session_scope() as s:
        rep = _make(s, clock, "rep@example.test")
        (n,) = notify(s, user_ids=[rep], kind=PING.name, now=clock.now(), params={"who": "a"})
    run_delivery(rt)
    with rt.db.session_scope() as s:  # a crashed fan-out ran again over the same notification
        s.get(Notification, n.id).outbox_state = "pending"  # type: ignore[union-attr]
        s.flush()
        assert fan_out(s, rt.settings, now=clock.now()) == 1
        again = Message(
            "email", "rep@example.test", {"subject": "x", "text": "y"}, f"notification:{n.id}:email"
        )
        assert enqueue_messages(s, [again], now=clock.now()) == 0
    run_delivery(rt)
    assert len(_outbox(rt)) == 1 and len(box.messages) == 1


def test_no_email_when_switched_off_or_inactive(mail: tuple[Runtime, Any], clock: FrozenClock) -> None:
    rt, box = mail
    with rt.db.session_scope() as s:
        quiet = _make(s, clock, "quiet@example.test")
        gone = _make(s, clock, "gone@example.test", active=False)
        from salesmesh.platform.models import User

        set_email_preference(s, s.get(User, quiet), enabled=False, now=clock.now())  # type: ignore[arg-type]
        notify(s, user_ids=[quiet, gone], kind=PING.name, now=clock.now(), params={"who": "a"})
    assert run_delivery(rt).fanned_out == 2
    assert _outbox(rt) == [] and box.messages == []
    with rt.db.session_scope() as s:
        assert s.scalar(select(func.count()).where(Notification.outbox_state == "done")) == 2


def test_without_smtp_notifications_stay_in_the_app(runtime: Runtime, clock: FrozenClock) -> None:
    assert not runtime.settings.smtp_configured
    with runtime.db.session_scope() as s:
        rep = _make(s, clock, "rep@example.test")
        notify(s, user_ids=[rep], kind=PING.name, now=clock.now(), params={"who": "a"})
    result = run_job(runtime, DELIVER_JOB, [])
    assert result == {"fanned_out": 1, "sent": 0, "retried": 0, "failed": 0}
    assert _outbox(runtime) == []


def test_a_message_that_keeps_failing_ends_failed_and_can_be_retried(
    mail: tuple[Runtime, Any], clock: FrozenClock
) -> None:
    rt, box = mail
    box.refuse = 1000
    with rt.db.session_scope() as s:
        enqueue_messages(
            s, [Message("email", "x@example.test", {"subject": "s", "text": "t"}, "k-1")], now=clock.now()
        )
    failed = 0
    for _ in range(20):
        failed += run_delivery(rt).failed
        clock.advance(hours=7)  # past the longest backoff
    (row,) = _outbox(rt)
    assert failed == 1 and row.status == FAILED and row.attempts == row.max_attempts == 8
    box.refuse = 0
    with rt.db.session_scope() as s:
        assert retry_message(s, row.id, now=clock.now())
        assert not retry_message(s, row.id, now=clock.now())  # pending now, not failed
    assert run_delivery(rt).sent == 1 and len(box.messages) == 1


def test_bad_messages_are_refused_naming_the_field(session: Session, clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="messages/0/channel"):
        enqueue_messages(session, [Message("fax", "x", {}, "k")], now=clock.now())
    with pytest.raises(ValueError, match="messages/1/key"):
        enqueue_messages(
            session, [Message("email", "x@y", {}, "k"), Message("email", "x@y", {}, "")], now=clock.now()
        )
    with pytest.raises(ValueError, match="messages/0/payload"):
        enqueue_messages(session, [Message("webhook", "http://x", {"a": {1, 2}}, "k")], now=clock.now())


# --- webhooks -------------------------------------------------------------------------------------------


def test_webhooks_are_signed_and_retried(settings: Settings, clock: FrozenClock) -> None:
    with webhook_receiver() as (url, hooks):
        rt = Runtime(settings.with_(notify_webhooks={"test.ping": url}, webhook_secret=SECRET), clock=clock)
        Base.metadata.create_all(rt.db.engine)
        try:
            hooks.fail = 1
            with rt.db.session_scope() as s:
                rep = _make(s, clock, "rep@example.test")
                (n,) = notify(
                    s,
                    user_ids=[rep],
                    kind=PING.name,
                    now=clock.now(),
                    subject=("thing", 9),
                    params={"who": "a"},
                )
                lead_notices.notify_lead(s, [rep], lead_notices.ASSIGNED.name, _Lead(1, "L"), now=clock.now())
            assert run_delivery(rt).retried == 1 and hooks.requests == []  # only test.ping has a URL
            clock.advance(minutes=1)
            assert run_delivery(rt).sent == 1
            clock.advance(hours=1)
            assert run_delivery(rt).sent == 0
        finally:
            rt.close()
    ((headers, body),) = hooks.requests
    timestamp = headers["x-salesmesh-timestamp"]
    assert timestamp == str(int(clock.now().timestamp() - 3600))
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-salesmesh-signature"] == f"sha256={expected}"
    assert headers["idempotency-key"] == f"notification:{n.id}:webhook"
    assert headers["x-salesmesh-event"] == "test.ping" and headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["kind"] == "test.ping" and payload["user_id"] == rep
    assert payload["subject"] == {"type": "thing", "id": 9} and payload["title"]["en"] == "Ping from a"


# --- PostgreSQL: concurrent deliverers ------------------------------------------------------------------


@pytest.mark.services
def test_concurrent_deliverers_on_postgresql_send_each_message_once(
    pg_url: str, tmp_path: Any, clock: FrozenClock
) -> None:
    with smtp_receiver() as (port, box):
        settings = Settings(
            database_url=pg_url,
            instance_path=tmp_path / "instance",
            testing=True,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="crm@example.test",
        )
        rt = Runtime(settings, clock=clock)
        Base.metadata.create_all(rt.db.engine)
        try:
            with rt.db.session_scope() as s:
                ids = [_make(s, clock, f"rep{i}@example.test") for i in range(30)]
                notify(s, user_ids=ids, kind=PING.name, now=clock.now(), params={"who": "ops"})
            errors: list[BaseException] = []

            def deliver() -> None:
                try:
                    for _ in range(3):
                        run_delivery(rt, fanout_batch=7)
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=deliver) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
            rows = _outbox(rt)
        finally:
            rt.close()
    assert len(rows) == 30 and {r.status for r in rows} == {SENT}
    assert sorted(m["To"] for m in box.messages) == sorted(f"rep{i}@example.test" for i in range(30))


# --- settings --------------------------------------------------------------------------------------------


def test_outgoing_settings_come_from_the_environment(tmp_path: Any) -> None:
    s = Settings.from_env(
        {
            "SALESMESH_SECRET_KEY": "k" * 32,
            "SALESMESH_INSTANCE_PATH": str(tmp_path),
            "SALESMESH_SMTP_HOST": "smtp.example.com",
            "SALESMESH_SMTP_PORT": "587",
            "SALESMESH_SMTP_FROM": "crm@example.com",
            "SALESMESH_SMTP_USER": "crm",
            "SALESMESH_SMTP_PASSWORD": "pw",
            "SALESMESH_SMTP_STARTTLS": "1",
            "SALESMESH_NOTIFY_WEBHOOKS": "lead.sla_breached=https://hooks.example/a, *=https://hooks.example/all",
            "SALESMESH_WEBHOOK_SECRET": SECRET,
            "SALESMESH_BASE_URL": "https://crm.example.com",
        }
    )
    assert s.smtp_configured and (s.smtp_host, s.smtp_port, s.smtp_starttls) == (
        "smtp.example.com",
        587,
        True,
    )
    assert (s.smtp_username, s.smtp_password) == ("crm", "pw")
    assert s.notify_webhooks == {
        "lead.sla_breached": "https://hooks.example/a",
        "*": "https://hooks.example/all",
    }
    assert not Settings.from_env({"SALESMESH_SECRET_KEY": "k" * 32}).smtp_configured


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SALESMESH_SMTP_HOST": "smtp.example.com"}, "SALESMESH_SMTP_FROM"),
        ({"SALESMESH_SMTP_HOST": "h", "SALESMESH_SMTP_FROM": "nobody"}, "SALESMESH_SMTP_FROM"),
        ({"SALESMESH_SMTP_PORT": "70000"}, "SALESMESH_SMTP_PORT"),
        ({"SALESMESH_SMTP_PORT": "smtp"}, "SALESMESH_SMTP_PORT"),
        ({"SALESMESH_SMTP_STARTTLS": "maybe"}, "SALESMESH_SMTP_STARTTLS"),
        ({"SALESMESH_NOTIFY_WEBHOOKS": "https://x"}, "SALESMESH_NOTIFY_WEBHOOKS"),
        (
            {"SALESMESH_NOTIFY_WEBHOOKS": "a=ftp://x", "SALESMESH_WEBHOOK_SECRET": SECRET},
            "SALESMESH_NOTIFY_WEBHOOKS",
        ),
        ({"SALESMESH_NOTIFY_WEBHOOKS": "a=https://x"}, "SALESMESH_WEBHOOK_SECRET"),
        ({"SALESMESH_WEBHOOK_SECRET": "short"}, "SALESMESH_WEBHOOK_SECRET"),
        ({"SALESMESH_BASE_URL": "crm.example.com"}, "SALESMESH_BASE_URL"),
    ],
)
def test_bad_outgoing_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env({"SALESMESH_SECRET_KEY": "k" * 32, **env})


# --- helpers -------------------------------------------------------------------------------------------


class _Lead:
    """The two attributes lead notices read, for rendering tests that need no lead row."""

    def __init__(self, ident: int, name: str) -> None:
        self.id, self.name = ident, name


def _make(session: Session, clock: FrozenClock, address: str, **kw: Any) -> int:
    from salesmesh.platform.models import User

    values: dict[str, Any] = {
        "email": address,
        "name": address.split("@")[0],
        "role": "rep",
        "password_hash": "!",
        "active": True,
        "attributes": {},
        "created_at": clock.now(),
    }
    values.update(kw)
    user = User(**values)
    session.add(user)
    session.flush()
    return user.id
