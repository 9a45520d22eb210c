"""POST /api/v1/leads: per-channel HMAC signatures (ok, bad, expired, rotated secret), idempotent replay,
422 on a reused key with another body, malformed keys (400) and oversized bodies (413), validation errors
as JSON pointers, duplicate linking, the new owner's e-mail and webhook end to end (delivery enqueued by
the commit, sent once), the statement gate, concurrent duplicates on PostgreSQL, and the `salesmesh
channel` commands."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from salesmesh.platform.app import create_app
from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification, run_delivery
from salesmesh.platform.outbox import SENT, OutboxMessage, message_id
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.workflows.intake_channels import rotate_channel_secret, set_channel_active
from salesmesh.workflows.intake_models import IdempotencyRecord, IntakeChannel, LeadDuplicate
from salesmesh.workflows.models import Lead
from tests.platform.notification_helpers import smtp_receiver, webhook_receiver
from tests.workflows.intake_helpers import add_channel, body_of, intake_world, payload, signed_headers
from tests.workflows.routing_helpers import counting

URL = "/api/v1/leads"
HOOK_SECRET = "webhook-secret-0123456789"


@pytest.fixture
def secret(runtime: Runtime, clock: FrozenClock) -> str:
    with runtime.db.session_scope() as session:
        intake_world(session, clock)
        return add_channel(session, clock, defaults={"source": "400"})


def _post(client: Any, secret: str, clock: FrozenClock, body: bytes, **headers: Any) -> Any:
    return client.post(URL, data=body, headers=signed_headers(secret, body, clock, **headers))


def _count(runtime: Runtime, model: Any) -> int:
    with runtime.db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_signed_post_creates_a_routed_lead(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    response = _post(client, secret, clock, body_of(payload(), campaign="expo"))
    assert response.status_code == 201, response.json
    data = response.json
    assert data["created"] is True and data["duplicate_of_id"] is None
    assert data["owner"]["id"] is not None and data["owner"]["name"].startswith("Rep ")
    assert data["routing"]["outcome"] == "assigned" and data["routing"]["rule"] == "everyone"
    assert data["routing"]["summary"]["en"] and data["routing"]["summary"]["zh"]
    with runtime.db.session_scope() as session:
        lead = session.get(Lead, data["lead_id"])
        assert lead is not None
        assert (lead.source_channel, lead.campaign, lead.data["source"]) == ("hotline", "expo", "400")


def test_csrf_is_not_required_but_everything_else_is(
    app: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    # A fresh app with CSRF enforced as in production: the signed API still works.
    app.config["WTF_CSRF_ENABLED"] = True
    response = _post(app.test_client(), secret, clock, body_of(payload()))
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"X-Salesmesh-Signature": "sha256=" + "0" * 64}, "bad_signature"),
        ({"X-Salesmesh-Signature": "md5=abc"}, "bad_signature"),
        ({"X-Salesmesh-Channel": "nobody"}, "unknown_channel"),
        ({"X-Salesmesh-Timestamp": "yesterday"}, "bad_timestamp"),
    ],
)
def test_bad_credentials_are_401(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str, change: dict[str, str], code: str
) -> None:
    body = body_of(payload())
    headers = {**signed_headers(secret, body, clock), **change}
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == code
    assert _count(runtime, Lead) == 0


def test_tampered_body_and_stale_timestamps_are_refused(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    body = body_of(payload())
    headers = signed_headers(secret, body, clock)
    assert client.post(URL, data=body.replace(b"Chen", b"Wang"), headers=headers).status_code == 401
    for skew in (-301, 301):
        response = _post(client, secret, clock, body, skew=skew)
        assert response.status_code == 401 and response.json["error"]["code"] == "stale_timestamp"
    assert _post(client, secret, clock, body, skew=-299).status_code == 201


def test_both_secrets_work_during_rotation_and_disabled_channels_are_refused(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    with runtime.db.session_scope() as session:
        new = rotate_channel_secret(session, "hotline", clock=clock)
    assert _post(client, secret, clock, body_of(payload(phone="13800000001", email=None))).status_code == 201
    assert _post(client, new, clock, body_of(payload(phone="13800000002", email=None))).status_code == 201
    with runtime.db.session_scope() as session:
        newest = rotate_channel_secret(session, "hotline", clock=clock)
    assert _post(client, secret, clock, body_of(payload(phone="13800000003", email=None))).status_code == 401
    assert _post(client, new, clock, body_of(payload(phone="13800000004", email=None))).status_code == 201
    assert _post(client, newest, clock, body_of(payload(phone="13800000005", email=None))).status_code == 201
    with runtime.db.session_scope() as session:
        set_channel_active(session, "hotline", False, clock=clock)
    response = _post(client, newest, clock, body_of(payload(phone="13800000006", email=None)))
    assert response.status_code == 401 and response.json["error"]["code"] == "unknown_channel"


def test_idempotency_key_replays_and_refuses_a_different_body(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    body = body_of(payload())
    first = _post(client, secret, clock, body, **{"Idempotency-Key": "order-17"})
    assert first.status_code == 201 and "Idempotent-Replay" not in first.headers
    clock.advance(hours=1)
    again = _post(client, secret, clock, body, **{"Idempotency-Key": "order-17"})
    assert again.status_code == 201 and again.headers["Idempotent-Replay"] == "true"
    assert again.json == first.json
    other = _post(
        client, secret, clock, body_of(payload(phone="13900000000")), **{"Idempotency-Key": "order-17"}
    )
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"
    assert _count(runtime, Lead) == 1 and _count(runtime, IdempotencyRecord) == 1
    # Without the key the same body is a new submission: a duplicate of the open lead, linked to it.
    dup = _post(client, secret, clock, body)
    assert dup.status_code == 200 and dup.json["duplicate_of_id"] == first.json["lead_id"]
    assert dup.json["duplicate"]["matched_on"] == "phone" and dup.json["owner"] == first.json["owner"]
    assert _count(runtime, Lead) == 1 and _count(runtime, LeadDuplicate) == 1


@pytest.mark.parametrize(
    "key",
    ["", "k" * 201, "clé-1", "tab\tinside"],
    ids=["empty", "201 characters", "not ASCII", "control character"],
)
def test_a_malformed_idempotency_key_is_400_naming_the_header(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str, key: str
) -> None:
    response = _post(client, secret, clock, body_of(payload()), **{"Idempotency-Key": key})
    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "bad_idempotency_key" and "Idempotency-Key" in error["message"]
    assert "Idempotency-Key" in error["errors"][0]["message"] and error["errors"][0]["message_zh"]
    assert _count(runtime, Lead) == 0 and _count(runtime, IdempotencyRecord) == 0
    assert runtime.jobs.backlog() == 0
    # The longest allowed key is fine.
    assert (
        _post(client, secret, clock, body_of(payload()), **{"Idempotency-Key": "k" * 200}).status_code == 201
    )


def test_a_body_over_the_size_limit_is_413_in_the_api_format(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    limit = runtime.settings.max_request_bytes
    big = body_of(payload(), campaign="x" * limit)
    assert len(big) > limit
    response = _post(client, secret, clock, big)
    assert response.status_code == 413
    error = response.json["error"]
    assert error["code"] == "too_large" and f"larger than {limit} bytes" in error["message"]
    assert error["errors"][0]["message_zh"]
    assert _count(runtime, Lead) == 0 and runtime.jobs.backlog() == 0


def test_the_new_owner_gets_one_email_and_one_signed_webhook(settings: Settings, clock: FrozenClock) -> None:
    with smtp_receiver() as (port, box), webhook_receiver() as (url, hooks):
        rt = Runtime(
            settings.with_(
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_from="crm@example.test",
                base_url="https://crm.example",
                notify_webhooks={"lead.assigned": url},
                webhook_secret=HOOK_SECRET,
            ),
            clock=clock,
        )
        Base.metadata.create_all(rt.db.engine)
        try:
            with rt.db.session_scope() as session:
                intake_world(session, clock)
                secret = add_channel(session, clock)
            client = create_app(rt.settings, runtime=rt).test_client()
            response = _post(client, secret, clock, body_of(payload()), **{"Idempotency-Key": "o-1"})
            assert response.status_code == 201
            lead_id, owner_id = response.json["lead_id"], response.json["owner"]["id"]
            # Nothing leaves inside the request: the commit enqueued the delivery job.
            assert rt.jobs.backlog() == 1 and box.messages == [] and hooks.requests == []
            replay = _post(client, secret, clock, body_of(payload()), **{"Idempotency-Key": "o-1"})
            assert replay.headers["Idempotent-Replay"] == "true" and rt.jobs.backlog() == 1
            assert rt.jobs.drain() == 1 and not rt.jobs.errors  # runs notifications.deliver
            again = run_delivery(rt)  # a later run finds nothing more to send
            assert (again.fanned_out, again.sent, again.retried, again.failed) == (0, 0, 0, 0)
            with rt.db.session_scope() as session:
                owner_email = session.get(User, owner_id).email  # type: ignore[union-attr]
                (notice,) = session.scalars(select(Notification)).all()
                outbox = {m.channel: m for m in session.scalars(select(OutboxMessage))}
        finally:
            rt.close()
    assert (notice.user_id, notice.kind, notice.subject_id) == (owner_id, "lead.assigned", lead_id)
    assert set(outbox) == {"email", "webhook"} and {m.status for m in outbox.values()} == {SENT}
    (mail,) = box.messages
    assert mail["To"] == owner_email and mail["From"] == "crm@example.test"
    assert mail["Subject"] == "New lead for you: Dr Chen · Peking Union Hospital"
    assert mail["Message-ID"] == message_id(f"notification:{notice.id}:email")
    assert f"Open: https://crm.example/leads/{lead_id}" in mail.get_content()
    ((headers, body),) = hooks.requests
    timestamp = headers["x-salesmesh-timestamp"]
    expected = hmac.new(HOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-salesmesh-signature"] == f"sha256={expected}"
    assert headers["x-salesmesh-event"] == "lead.assigned"
    assert headers["idempotency-key"] == f"notification:{notice.id}:webhook"
    sent = json.loads(body)
    assert (sent["kind"], sent["user_id"], sent["subject"]) == (
        "lead.assigned",
        owner_id,
        {"type": "lead", "id": lead_id},
    )
    assert sent["title"]["en"] == mail["Subject"] and sent["title"]["zh"].startswith("你有新线索")


def test_validation_errors_are_json_pointers(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    fields = payload(phone="call me", institution_name=None, shoe_size=42)
    response = _post(client, secret, clock, body_of(fields, received_at="tomorrow", extra=1))
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid_request"
    assert {e["path"] for e in error["errors"]} == {"/extra", "/received_at"}
    response = _post(client, secret, clock, body_of(fields))
    error = response.json["error"]
    assert response.status_code == 422 and error["code"] == "invalid_lead"
    assert {e["path"] for e in error["errors"]} == {
        "/fields/phone",
        "/fields/institution_name",
        "/fields/shoe_size",
    }
    assert all(e["message"] and e["message_zh"] for e in error["errors"])
    assert _post(client, secret, clock, b"[1, 2]").status_code == 400
    deep = json.dumps(
        {
            "fields": payload(),
            "campaign": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        }
    )
    response = _post(client, secret, clock, deep.encode())
    assert response.status_code == 400 and response.json["error"]["code"] == "too_deep"
    assert _count(runtime, Lead) == 0


def test_received_at_is_taken_from_the_body(
    client: Any, runtime: Runtime, clock: FrozenClock, secret: str
) -> None:
    response = _post(client, secret, clock, body_of(payload(), received_at="2026-01-05T15:30:00+08:00"))
    assert response.status_code == 201
    with runtime.db.session_scope() as session:
        lead = session.get(Lead, response.json["lead_id"])
        assert lead is not None and lead.received_at.isoformat() == "2026-01-05T07:30:00+00:00"


def test_statements_per_api_intake(client: Any, runtime: Runtime, clock: FrozenClock, secret: str) -> None:
    _post(client, secret, clock, body_of(payload(phone="13700000000", email=None)))  # warm caches
    with counting(runtime.db.engine) as statements:
        response = _post(client, secret, clock, body_of(payload()), **{"Idempotency-Key": "k1"})
    assert response.status_code == 201
    sql = [s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]
    print(f"statements per API intake with an Idempotency-Key on SQLite: {len(sql)}")
    # The intake's own 8 (tests/workflows/test_intake_perf.py) + the channel and the idempotency record.
    assert len(sql) <= 11, "\n".join(" ".join(s.split())[:120] for s in sql)


def test_concurrent_duplicates_on_postgresql_make_one_lead(pg_runtime: Runtime, clock: FrozenClock) -> None:
    with pg_runtime.db.session_scope() as session:
        intake_world(session, clock)
        secret = add_channel(session, clock)
    app = create_app(pg_runtime.settings, runtime=pg_runtime)
    threads = 6
    start = threading.Barrier(threads)
    results: list[Any] = []
    body = body_of(payload())

    def post(i: int) -> None:
        client = app.test_client()
        start.wait()
        # Half retry with the same Idempotency-Key, half are independent submissions of the same person.
        extra = {"Idempotency-Key": "same"} if i % 2 else {}
        results.append(_post(client, secret, clock, body, **extra))

    pool = [threading.Thread(target=post, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    statuses = sorted(r.status_code for r in results)
    assert len(results) == threads and set(statuses) <= {200, 201}, [r.json for r in results]
    assert statuses.count(201) >= 1
    lead_ids = {r.json["lead_id"] for r in results}
    assert len(lead_ids) == 1
    assert _count(pg_runtime, Lead) == 1
    replays = [r for r in results if r.headers.get("Idempotent-Replay") == "true"]
    assert len(replays) == threads // 2 - 1  # every keyed request but the first replays its reply
    assert _count(pg_runtime, IdempotencyRecord) == 1
    assert _count(pg_runtime, LeadDuplicate) == threads - 1 - (threads // 2 - 1)


def test_channel_commands(runtime: Runtime) -> None:
    runner = CliRunner()
    state = CliState(settings=runtime.settings, runtime=runtime)
    created = runner.invoke(cli, ["channel", "create", "ad-platform", "--label", "Ad platform"], obj=state)
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert len(secret) == 64
    again = runner.invoke(cli, ["channel", "create", "ad-platform", "--label", "x"], obj=state)
    assert again.exit_code == 1 and "already exists" in again.output
    rotated = runner.invoke(cli, ["channel", "rotate", "ad-platform"], obj=state)
    assert rotated.exit_code == 0
    listed = runner.invoke(cli, ["channel", "list"], obj=state)
    assert "ad-platform\tAd platform\tactive" in listed.output and secret not in listed.output
    with runtime.db.session_scope() as session:
        channel = session.scalars(select(IntakeChannel)).one()
        assert channel.previous_secret == secret and channel.secret == rotated.stdout.strip().splitlines()[-1]
    assert runner.invoke(cli, ["channel", "rotate", "nope"], obj=state).exit_code == 1
    bad = runner.invoke(cli, ["channel", "create", "Bad Key", "--label", "x"], obj=state)
    assert bad.exit_code == 1 and "key:" in bad.output
