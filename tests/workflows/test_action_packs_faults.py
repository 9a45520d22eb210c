"""Action-pack steps under process faults, on real PostgreSQL + Redis: 2,000 steps (a task, an e-mail to
the owner, a signed webhook and a reminder for each of 500 deals entering a stage) come due within one
minute while a real scheduler and two RQ workers are SIGKILLed at random several times (at least once
both workers while outbox messages are being sent), and the Redis server is restarted empty once.

Afterwards every step has fired exactly once — one ledger entry, one task, one queued e-mail, one queued
webhook or one reminder (with its notification, which is e-mailed too) — none before its due time, none
lost. The e-mails and webhooks leave through the outbox to a local SMTP receiver and a local webhook
receiver, and what holds there is *at least once, under one key*: each message has exactly one outbox row
(one idempotency key), ends `sent`, and reached its receiver; a kill between sending and recording the
result makes the outbox send it again once its lease runs out, so a receiver may see a message more than
once, but every copy carries the same Message-ID / Idempotency-Key and the same content, and never more
copies than the row has attempts. The test makes sure such a re-send happened.

Redis is a private `redis-server` on a free port (no persistence), so restarting it empty touches no
other test. The processes run the real CLI (`tests.platform.fault_support.slow_cli`) with the system
clock; due times are relative to the real now. Every wait is bounded; every process (and Redis) is
killed at teardown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.db import Base
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.outbox import OutboxMessage, message_id
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import Effect, Timer
from salesmesh.workflows.action_packs import STEP_KIND
from salesmesh.workflows.models import Activity, Customer, Deal, Task
from salesmesh.workflows.stage_signals import StageChange, send_stage_change
from tests.conftest import service_missing
from tests.platform.notification_helpers import Hooks, webhook_receiver
from tests.platform.test_faults import Processes, _processes, _wait_for
from tests.workflows.smtp_receiver import Inbox, smtp_receiver

pytestmark = [pytest.mark.slow, pytest.mark.services]

DEALS = 500
STEPS = 4 * DEALS
SPREAD = timedelta(seconds=20)  # stage entries spread over the 20 s before the test's "now"
CHAOS = 30.0  # seconds of random kills
SMTP_DELAY = 0.01  # the receiver takes 10 ms per message: a batch of 20 e-mails is under way for 0.2 s
OUTBOX_LEASE = 5  # seconds before a message a killed sender held is sent again
WEBHOOK_SECRET = "fault-webhook-secret-0123456789"
KINDS = {
    "task": "actions.task",
    "email": "actions.email",
    "webhook": "actions.webhook",
    "remind": "actions.remind",
}

PIPELINE = {
    "kind": "pipeline",
    "key": "fault-sales",
    "schema_version": 1,
    "label": {"en": "Fault sales", "zh": "故障测试流程"},
    "mode": "free",
    "allow_any": True,
    "stages": [
        {"key": "new", "label": {"en": "New", "zh": "新建"}, "probability": 10, "outcome": "open"},
        {
            "key": "demo",
            "label": {"en": "Demo", "zh": "演示"},
            "probability": 40,
            "outcome": "open",
            "action_packs": ["fault-pack"],
        },
        {"key": "won", "label": {"en": "Won", "zh": "赢单"}, "probability": 100, "outcome": "won"},
    ],
}
RETRY = {"max_attempts": 20, "backoff_minutes": 1}


def _pack(hook_url: str) -> dict[str, Any]:
    """Four steps per deal: a task at once, a reminder 9 s, an e-mail 18 s, a webhook 27 s after the entry.

    The reminders come first: the e-mail and webhook steps after them start the delivery job (after their
    commit), which sends the reminders' e-mails too; nothing waits for the periodic delivery run.
    """

    def step(key: str, hours: float, action: dict[str, Any]) -> dict[str, Any]:
        return {
            "key": key,
            "label": {"en": key.replace("_", " ").capitalize(), "zh": key},
            "offset": {"after_hours": hours, "relative_to": "stage_entry"},
            "action": action,
            "retry": RETRY,
        }

    return {
        "kind": "action_pack",
        "key": "fault-pack",
        "schema_version": 1,
        "label": {"en": "Fault pack", "zh": "故障测试动作包"},
        "steps": [
            step(
                "prepare",
                0,
                {"kind": "task", "params": {"title": {"en": "Prepare the demo", "zh": "准备演示"}}},
            ),
            step(
                "follow_up",
                0.0025,
                {"kind": "remind", "params": {"message": {"en": "Follow up.", "zh": "请跟进。"}}},
            ),
            step(
                "mail_owner",
                0.005,
                {
                    "kind": "email",
                    "params": {
                        "to": "owner",
                        "subject": {"en": "Demo under way", "zh": "演示进行中"},
                        "body": {
                            "en": "{{ deal.name }}: the demo is under way.",
                            "zh": "{{ deal.name }}：演示进行中。",
                        },
                    },
                },
            ),
            step("notify_crm", 0.0075, {"kind": "webhook", "params": {"url": hook_url}}),
        ],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own (no persistence) that can be restarted empty."""

    def __init__(self, logs: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server (the fault test's private Redis)", "not on PATH")
        self.binary = str(binary)
        self.port = _free_port()
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.logs / f"redis-{self.restarts}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart_empty(self) -> None:
        """Kill the server (nothing is saved) and start a fresh, empty one on the same port."""
        self.stop()
        self.restarts += 1
        self.start()


@pytest.fixture
def fault_runtime(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(database_url=pg_url, instance_path=tmp_path, testing=True))
    Base.metadata.create_all(rt.db.engine)
    yield rt
    rt.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    logs = tmp_path / "redis"
    logs.mkdir()
    server = PrivateRedis(logs)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_receiver(delay=SMTP_DELAY) as receiver:
        yield receiver


@pytest.fixture
def hooks() -> Iterator[tuple[str, Hooks]]:
    with webhook_receiver() as receiver:
        yield receiver


def _schedule(rt: Runtime, hook_url: str) -> datetime:
    """Publish the pack, open 500 deals and move each into "demo" (the real stage-change receiver)."""
    now = rt.clock.now()
    with rt.db.session_scope() as s:
        for doc in (_pack(hook_url), PIPELINE):
            draft = create_definition_draft(s, None, doc, rt.clock)
            version = publish_version(s, None, draft.id, rt.clock)
        team = Team(key="fault", name={"en": "Fault", "zh": "故障"}, created_at=now)
        s.add(team)
        s.flush()
        reps = [
            User(
                email=f"rep{i}@fault.test",
                name=f"Rep {i}",
                role="rep",
                team_id=team.id,
                password_hash="!",
                active=True,
                attributes={},
                created_at=now,
            )
            for i in range(10)
        ]
        s.add_all(reps)
        s.flush()
        customer = Customer(
            name="Fault Hospital",
            name_key="faulthospital",
            region_key="",
            data={},
            created_at=now,
            updated_at=now,
        )
        s.add(customer)
        s.flush()
        for n in range(DEALS):
            entered = now - SPREAD + SPREAD * n / DEALS
            deal = Deal(
                name=f"Deal {n}",
                customer_id=customer.id,
                pipeline_version_id=version.id,
                pipeline_key="fault-sales",
                stage_key="demo",
                stage_entered_at=entered,
                status="open",
                owner_id=reps[n % len(reps)].id,
                team_id=team.id,
                currency="CNY",
                data={},
                created_at=now,
                updated_at=now,
            )
            s.add(deal)
            s.flush()
            send_stage_change(s, StageChange(deal, "new", "demo", entered, None))
    return now


def _finished(rt: Runtime) -> bool:
    """Every step done and every outbox message (3 per deal: step e-mail, webhook, reminder e-mail) sent."""
    with rt.db.session_scope() as s:
        done = s.scalar(select(func.count()).select_from(Timer).where(Timer.status == "done"))
        sent = s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent"))
    return done == STEPS and sent == 3 * DEALS


def _sending(rt: Runtime) -> int:
    with rt.db.session_scope() as s:
        return s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sending")
        )


def _mid_job(log: Path) -> bool:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count(": salesmesh: platform.run_timers (") > text.count("job platform.run_timers (")


def _chaos(procs: Processes, redis: PrivateRedis, rt: Runtime, rng: random.Random) -> list[str]:
    """Kill the scheduler or a worker at random every 1.5-4 s (restarting it), both workers while outbox
    messages are being sent (until one such kill strands messages), and Redis once."""
    # A SIGKILLed worker stays registered in Redis under its name: each replacement gets a new one.
    roles = {"scheduler": ("scheduler",), "worker-a": ("worker", "--name"), "worker-b": ("worker", "--name")}

    def start(role: str, generation: int) -> subprocess.Popen[bytes]:
        name = f"{role}-{generation}"
        return procs.start(name, *roles[role], *((name,) if role != "scheduler" else ()))

    running = {role: start(role, 0) for role in roles}
    generation = dict.fromkeys(roles, 0)
    events: list[str] = []
    started = time.monotonic()
    redis_at = started + rng.uniform(8, 14)
    targeted = stranded = False
    next_outbox_try = started + 2
    while time.monotonic() - started < CHAOS:
        time.sleep(0.1)
        if not targeted and _mid_job(procs.logs / "worker-a-0.log"):
            procs.kill(running["worker-a"])  # one kill surely mid-batch
            events.append("kill worker-a mid-job")
            targeted = True
        elif not stranded and time.monotonic() >= next_outbox_try and _sending(rt):
            # Both workers at once: whatever they had claimed in the outbox is held by nobody now.
            procs.kill(running["worker-a"])
            procs.kill(running["worker-b"])
            left = _sending(rt)
            events.append(f"kill both workers mid-delivery ({left} messages stranded)")
            stranded = left > 0
            next_outbox_try = time.monotonic() + 2
        elif redis_at and time.monotonic() >= redis_at:
            redis.restart_empty()
            events.append("restart redis empty")
            redis_at = 0.0
        elif rng.random() < 0.1 / 2.5:  # about one kill every 2.5 s
            role = rng.choice(sorted(roles))
            procs.kill(running[role])
            events.append(f"kill {role}")
        for role, proc in running.items():
            if proc.poll() is not None:  # killed (or died when Redis vanished): start a replacement
                generation[role] += 1
                running[role] = start(role, generation[role])
    return events


def _assert_steps_fired_once(rt: Runtime) -> dict[str, set[int]]:
    """Ledger, tasks, reminders, notifications: one each, none early. Return {action kind: timer ids}."""
    with rt.db.session_scope() as s:
        statuses = dict(s.execute(select(Timer.status, func.count()).group_by(Timer.status)).all())
        assert statuses == {"done": STEPS}
        per_timer = dict(s.execute(select(Effect.timer_id, func.count()).group_by(Effect.timer_id)).all())
        assert len(per_timer) == STEPS and set(per_timer.values()) == {1}
        kinds = dict(s.execute(select(Effect.kind, func.count()).group_by(Effect.kind)).all())
        assert kinds == dict.fromkeys(KINDS.values(), DEALS)
        timers: dict[str, set[int]] = {name: set() for name in KINDS}
        by_kind = {kind: name for name, kind in KINDS.items()}
        for timer_id, kind in s.execute(select(Effect.timer_id, Effect.kind)):
            timers[by_kind[kind]].add(timer_id)
        tasks = s.scalars(select(Task)).all()
        assert len(tasks) == DEALS and {t.data["timer_id"] for t in tasks} == timers["task"]
        reminders = s.scalars(select(Activity).where(Activity.kind == "reminder")).all()
        assert len(reminders) == DEALS and {a.data["timer_id"] for a in reminders} == timers["remind"]
        assert s.scalar(select(func.count()).select_from(Notification)) == DEALS
        early = s.scalar(select(func.count()).select_from(Timer).where(Timer.fired_at < Timer.due_at))
        early_effects = s.scalar(
            select(func.count())
            .select_from(Effect)
            .join(Timer, Effect.timer_id == Timer.id)
            .where(Effect.created_at < Timer.due_at)
        )
        early_tasks = s.scalar(
            select(func.count())
            .select_from(Task)
            .join(Timer, Timer.id == Task.data["timer_id"].as_integer())
            .where(Task.created_at < Timer.due_at)
        )
        assert early == 0 and early_effects == 0 and early_tasks == 0
    return timers


def _assert_outbox_at_least_once_under_one_key(
    rt: Runtime, timers: dict[str, set[int]], inbox: Inbox, hooks: Hooks
) -> Counter[str]:
    """One outbox row per message, all sent, none queued before its step was due; every message reached
    its receiver; copies share key and content, never more than the row's attempts. Return copies per key."""
    with rt.db.session_scope() as s:
        rows = s.scalars(select(OutboxMessage)).all()
        notification_ids = set(s.scalars(select(Notification.id)))
        due = dict(s.execute(select(Timer.id, Timer.due_at)).all())
    assert {row.status for row in rows} == {"sent"}
    keys = {row.idempotency_key: row for row in rows}
    assert len(keys) == len(rows) == 3 * DEALS
    step_mail = {f"timer:{t}:email" for t in timers["email"]}
    step_hook = {f"timer:{t}:webhook" for t in timers["webhook"]}
    reminder_mail = {f"notification:{n}:email" for n in notification_ids}
    assert set(keys) == step_mail | step_hook | reminder_mail
    assert all(keys[f"timer:{t}:{c}"].created_at >= due[t] for c in ("email", "webhook") for t in timers[c])

    copies: Counter[str] = Counter()
    mail_keys = {message_id(key): key for key in step_mail | reminder_mail}
    first_mail: dict[str, tuple[str, str, list[str]]] = {}
    with inbox.lock:
        received = list(inbox.messages)
    for mail in received:
        key = mail_keys[mail.message["Message-ID"]]  # a KeyError: a message nobody queued
        copies[key] += 1
        content = (str(mail.message["Subject"]), mail.text, mail.recipients)
        assert first_mail.setdefault(key, content) == content, key  # a re-send is the same message
    with hooks.lock:
        requests = list(hooks.requests)
    first_body: dict[str, bytes] = {}
    for headers, body in requests:
        key = headers["idempotency-key"]
        assert key in step_hook, key
        copies[key] += 1
        signed = hmac.new(
            WEBHOOK_SECRET.encode(), headers["x-salesmesh-timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert headers["x-salesmesh-signature"] == "sha256=" + signed.hexdigest()
        assert first_body.setdefault(key, body) == body, key  # a re-send is the same call
        assert json.loads(body)["deal"]["stage"] == "demo"
    assert set(copies) == set(keys)  # every message arrived
    assert all(copies[key] <= keys[key].attempts for key in keys), "more copies than sending attempts"
    return copies


def test_steps_fire_exactly_once_and_messages_arrive_under_one_key_through_kills_and_an_empty_redis(
    fault_runtime: Runtime,
    pg_url: str,
    private_redis: PrivateRedis,
    inbox: Inbox,
    hooks: tuple[str, Hooks],
    tmp_path: Path,
) -> None:
    rt = fault_runtime
    hook_url, received_hooks = hooks
    now = _schedule(rt, hook_url)
    with rt.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.kind == STEP_KIND)) == STEPS
        last_due = s.scalar(select(func.max(Timer.due_at)))
        assert last_due - now < timedelta(minutes=1)
    procs = _processes(tmp_path, pg_url, private_redis.url)
    procs.env.update(
        SALESMESH_SMTP_HOST="127.0.0.1",
        SALESMESH_SMTP_PORT=str(inbox.port),
        SALESMESH_SMTP_FROM="crm@fault.test",
        SALESMESH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SALESMESH_WEBHOOK_ALLOWLIST="127.0.0.1",
        SALESMESH_OUTBOX_LEASE_SECONDS=str(OUTBOX_LEASE),
    )
    rng = random.Random(20261127)
    try:
        events = _chaos(procs, private_redis, rt, rng)
        kills = [e for e in events if e.startswith("kill")]
        assert len(kills) >= 4 and "restart redis empty" in events, events
        _wait_for(lambda: _finished(rt), 75, "every step to fire and every message to be sent", procs)
    finally:
        procs.kill_all()
    assert datetime.now(UTC) > last_due
    timers = _assert_steps_fired_once(rt)
    copies = _assert_outbox_at_least_once_under_one_key(rt, timers, inbox, received_hooks)
    with rt.db.session_scope() as s:
        rerun = s.scalar(select(func.count()).select_from(Timer).where(Timer.attempts > 1))
        resent_keys = set(s.scalars(select(OutboxMessage.idempotency_key).where(OutboxMessage.attempts > 1)))
    resent = len(resent_keys)
    assert rerun, "no step was re-claimed: no kill landed mid-batch\n" + "\n".join(events)
    stranded = [int(m.group(1)) for e in events if (m := re.search(r"\((\d+) messages stranded\)", e))]
    assert stranded and max(stranded) > 0, events
    assert resent, "no outbox message was claimed again after its sender was killed\n" + "\n".join(events)
    # Copies beyond the first (at least once) come only from messages claimed more than once.
    assert all(n == 1 for key, n in copies.items() if key not in resent_keys)
