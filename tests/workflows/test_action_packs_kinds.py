"""The action kinds as steps fire them: webhooks (signed, SSRF-checked, through the outbox), e-mail to
people, escalation to ops, set_field validated against the deal's form, and the errors that fail a step
at once with a message naming what to fix."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
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
from salesmesh.platform.timers import Timer
from salesmesh.workflows.models import Deal
from tests.workflows.action_support import (
    attach_pack,
    beijing,
    effects,
    enter,
    md_world,
    one_step_pack,
    sweep_all,
)
from tests.workflows.smtp_receiver import Inbox, smtp_receiver

ENTERED = beijing(2026, 3, 4, 15, 0)
SECRET = "crm-bridge-secret-0123456789"


class _Hook(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[int, list[Any]]]:
    handler = type("Handler", (_Hook,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.seen
    server.shutdown()
    server.server_close()


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
        webhook_secrets={"crm_bridge": SECRET},
    )


def _run(runtime: Runtime, clock: FrozenClock, pack: dict[str, Any], *, prepare: Any = None) -> Timer:
    """Attach `pack` to trial_request, move the world's deal in, fire the step, deliver the outbox."""
    clock.set(ENTERED)
    with runtime.db.session_scope() as s:
        world = md_world(s, clock)
        attach_pack(s, clock, pack, "trial_request")
        if prepare is not None:
            prepare(s, world)
        enter(s, world.deal, "trial_request", ENTERED)
    clock.set(ENTERED + timedelta(hours=1))
    sweep_all(runtime)
    runtime.jobs.drain()
    with runtime.db.session_scope() as s:
        return next(t for t in s.scalars(select(Timer)) if t.payload["pack"] == pack["key"])


WEBHOOK = {
    "kind": "webhook",
    "params": {"method": "PUT", "include_fields": ["product_line"], "secret_name": "crm_bridge"},
}


def _webhook_pack(port: int) -> dict[str, Any]:
    action = json.loads(json.dumps(WEBHOOK))
    action["params"]["url"] = f"http://127.0.0.1:{port}/deals?source=salesmesh"
    return one_step_pack("hook-pack", action)


def test_a_webhook_step_sends_one_signed_request_with_its_idempotency_key(
    runtime: Runtime, clock: FrozenClock, settings: Settings, hook: tuple[int, list[Any]]
) -> None:
    port, seen = hook
    runtime.settings = settings.with_(webhook_allowlist=("127.0.0.1",))
    timer = _run(runtime, clock, _webhook_pack(port))
    assert timer.status == "done"
    [(method, path, headers, body)] = seen
    assert (method, path) == ("PUT", "/deals?source=salesmesh")
    assert headers["Idempotency-Key"] == f"timer:{timer.id}:webhook"
    signed = hmac.new(
        SECRET.encode(), headers["X-Salesmesh-Timestamp"].encode() + b"." + body, hashlib.sha256
    )
    assert headers["X-Salesmesh-Signature"] == "sha256=" + signed.hexdigest()
    sent = json.loads(body)
    assert sent["event"] == "action_pack.step" and sent["step"] == "only"
    assert (
        sent["deal"]["fields"] == {"product_line": "ultrasound"} and sent["deal"]["stage"] == "trial_request"
    )
    with runtime.db.session_scope() as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert row.status == "sent" and row.payload["guarded"] is True


def test_a_webhook_to_a_private_address_fails_the_step_unless_allow_listed(
    runtime: Runtime, clock: FrozenClock, hook: tuple[int, list[Any]]
) -> None:
    port, seen = hook
    timer = _run(runtime, clock, _webhook_pack(port))
    assert timer.status == "failed" and timer.attempts == 1
    assert "127.0.0.1" in timer.last_error and "SALESMESH_WEBHOOK_ALLOWLIST" in timer.last_error
    assert seen == []
    with runtime.db.session_scope() as s:
        assert s.scalars(select(OutboxMessage)).all() == []


def test_a_webhook_without_its_named_secret_fails_the_step(
    runtime: Runtime, clock: FrozenClock, settings: Settings, hook: tuple[int, list[Any]]
) -> None:
    runtime.settings = settings.with_(webhook_allowlist=("127.0.0.1",), webhook_secrets={})
    timer = _run(runtime, clock, _webhook_pack(hook[0]))
    assert timer.status == "failed" and "secret 'crm_bridge'" in timer.last_error


def test_an_email_step_mails_the_owner_in_their_language_once(
    runtime: Runtime, clock: FrozenClock, inbox: Inbox
) -> None:
    pack = one_step_pack(
        "mail-pack",
        {
            "kind": "email",
            "params": {
                "to": "owner",
                "subject": {"en": "Trial started", "zh": "试用已开始"},
                "body": {
                    "en": "{{ deal.name }} at {{ customer.name }}",
                    "zh": "{{ customer.name }} 的 {{ deal.name }} 已进入试用"
                    "（{{ deal.fields.product_line }}）",
                },
            },
        },
    )
    timer = _run(runtime, clock, pack)
    assert timer.status == "done"
    [mail] = inbox.messages
    assert mail.recipients == ["rep.wang@hospital-sales.test"] and mail.message["Subject"] == "试用已开始"
    assert "Ruijin Hospital 的 Ultrasound for cardiology 已进入试用（ultrasound）" in mail.text
    sweep_all(runtime)
    runtime.jobs.drain()
    assert len(inbox.messages) == 1


def test_a_template_that_runs_too_long_fails_the_step_with_the_reason(
    runtime: Runtime, clock: FrozenClock
) -> None:
    slow = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    pack = one_step_pack(
        "slow-pack",
        {
            "kind": "email",
            "params": {"to": "owner", "subject": {"en": "x", "zh": "x"}, "body": {"en": slow, "zh": slow}},
        },
    )
    timer = _run(runtime, clock, pack)
    assert timer.status == "failed" and "longer than 1 s" in timer.last_error


def test_escalating_to_ops_tells_every_active_ops_person(runtime: Runtime, clock: FrozenClock) -> None:
    def add_ops(s: Any, world: Any) -> None:
        for name, active in (("ops.one", True), ("ops.two", True), ("ops.gone", False)):
            s.add(
                User(
                    email=f"{name}@x.test",
                    name=name,
                    role="ops",
                    password_hash="!",
                    active=active,
                    attributes={},
                    created_at=clock.now(),
                )
            )

    pack = one_step_pack("ops-pack", {"kind": "escalate", "params": {"to": "ops"}})
    timer = _run(runtime, clock, pack, prepare=add_ops)
    assert timer.status == "done"
    with runtime.db.session_scope() as s:
        told = s.scalars(select(Notification).where(Notification.kind == "actions.escalation")).all()
        names = sorted(s.get(User, n.user_id).name for n in told)
        assert names == ["ops.one", "ops.two"]
        assert told[0].params["message"] == {
            "en": "Only step",
            "zh": "唯一步骤",
        }  # no message: the step label


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"field": "forecast_category", "value": "certain"}, "forecast_category = 'certain' is invalid"),
        ({"field": "no_such_field", "value": 1}, "has no editable field 'no_such_field'"),
        ({"field": "budget_approved", "value": "yes"}, "budget_approved = 'yes' is invalid"),
    ],
)
def test_set_field_refuses_values_the_deal_form_would_refuse(
    runtime: Runtime, clock: FrozenClock, params: dict[str, Any], error: str
) -> None:
    timer = _run(runtime, clock, one_step_pack("set-pack", {"kind": "set_field", "params": params}))
    assert timer.status == "failed" and error in timer.last_error
    with runtime.db.session_scope() as s:
        assert s.scalars(select(Deal)).one().data == {
            "product_line": "ultrasound",
            "forecast_category": "pipeline",
        }
        assert effects(s, timer.id) == []


def test_set_field_writes_a_valid_value_once(runtime: Runtime, clock: FrozenClock) -> None:
    timer = _run(
        runtime,
        clock,
        one_step_pack(
            "set-pack", {"kind": "set_field", "params": {"field": "budget_approved", "value": True}}
        ),
    )
    assert timer.status == "done"
    with runtime.db.session_scope() as s:
        assert s.scalars(select(Deal)).one().data["budget_approved"] is True
        assert effects(s, timer.id) == ["actions.set_field"]


def test_a_survey_link_needs_the_app_address(
    runtime: Runtime, clock: FrozenClock, settings: Settings
) -> None:
    runtime.settings = settings.with_(base_url=None)
    survey = {
        "kind": "survey_link",
        "params": {
            "survey": "demo",
            "subject": {"en": "s", "zh": "s"},
            "body": {"en": "{{ survey_url }}", "zh": "{{ survey_url }}"},
        },
    }
    timer = _run(runtime, clock, one_step_pack("survey-pack", survey))
    assert timer.status == "failed" and "SALESMESH_BASE_URL" in timer.last_error
