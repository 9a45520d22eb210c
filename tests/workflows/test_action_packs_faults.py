"""Action-pack steps under process faults, on real PostgreSQL + Redis: 2,000 steps (a task and a reminder
for each of 1,000 deals entering a stage) come due within one minute while a real scheduler and two RQ
workers are SIGKILLed at random several times, and the Redis server is restarted empty once. Afterwards
every step has fired exactly once — one ledger entry, one task or one reminder (with its notification)
— none before its due time, none lost.

Redis is a private `redis-server` on a free port (no persistence), so restarting it empty touches no
other test. The processes run the real CLI (`tests.platform.fault_support.slow_cli`) with the system
clock; due times are relative to the real now. Every wait is bounded; every process (and Redis) is
killed at teardown.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.db import Base
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import Effect, Timer
from salesmesh.workflows.action_packs import STEP_KIND
from salesmesh.workflows.models import Activity, Customer, Deal, Task
from salesmesh.workflows.stage_signals import StageChange, send_stage_change
from tests.platform.test_faults import Processes, _processes, _wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

DEALS = 1000
SPREAD = timedelta(seconds=20)  # stage entries spread over the 20 s before the test's "now"
SECOND_STEP = 0.01  # hours (36 s): the reminders come due 16-36 s after "now"
CHAOS = 30.0  # seconds of random kills

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
PACK = {
    "kind": "action_pack",
    "key": "fault-pack",
    "schema_version": 1,
    "label": {"en": "Fault pack", "zh": "故障测试动作包"},
    "steps": [
        {
            "key": "prepare",
            "label": {"en": "Prepare", "zh": "准备"},
            "offset": {"after_minutes": 0, "relative_to": "stage_entry"},
            "action": {"kind": "task", "params": {"title": {"en": "Prepare the demo", "zh": "准备演示"}}},
            "retry": {"max_attempts": 20, "backoff_minutes": 1},
        },
        {
            "key": "follow_up",
            "label": {"en": "Follow up", "zh": "跟进"},
            "offset": {"after_hours": SECOND_STEP, "relative_to": "stage_entry"},
            "action": {"kind": "remind", "params": {"message": {"en": "Follow up.", "zh": "请跟进。"}}},
            "retry": {"max_attempts": 20, "backoff_minutes": 1},
        },
    ],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own (no persistence) that can be restarted empty."""

    def __init__(self, logs: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
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


def _schedule(rt: Runtime) -> datetime:
    """Publish the pack, open 1,000 deals and move each into "demo" (the real stage-change receiver)."""
    now = rt.clock.now()
    with rt.db.session_scope() as s:
        for doc in (PACK, PIPELINE):
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


def _done(rt: Runtime) -> int:
    with rt.db.session_scope() as s:
        return s.scalar(select(func.count()).select_from(Timer).where(Timer.status == "done")) or 0


def _mid_job(log: Path) -> bool:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count(": salesmesh: platform.run_timers (") > text.count("job platform.run_timers (")


def _chaos(procs: Processes, redis: PrivateRedis, rng: random.Random) -> list[str]:
    """Kill the scheduler or a worker at random every 1.5-4 s (restarting it), and Redis once."""
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
    targeted = False
    while time.monotonic() - started < CHAOS:
        time.sleep(0.1)
        if not targeted and _mid_job(procs.logs / "worker-a-0.log"):
            procs.kill(running["worker-a"])  # one kill surely mid-batch
            events.append("kill worker-a mid-job")
            targeted = True
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


def test_steps_fire_exactly_once_through_kills_and_an_empty_redis(
    fault_runtime: Runtime, pg_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    rt = fault_runtime
    now = _schedule(rt)
    with rt.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Timer).where(Timer.kind == STEP_KIND)) == 2 * DEALS
        last_due = s.scalar(select(func.max(Timer.due_at)))
        assert last_due - now < timedelta(minutes=1)
    procs = _processes(tmp_path, pg_url, private_redis.url)
    rng = random.Random(20261127)
    try:
        events = _chaos(procs, private_redis, rng)
        kills = [e for e in events if e.startswith("kill")]
        assert len(kills) >= 4 and "restart redis empty" in events, events
        _wait_for(lambda: _done(rt) == 2 * DEALS, 60, "every step to fire", procs)
    finally:
        procs.kill_all()
    assert datetime.now(UTC) > last_due
    with rt.db.session_scope() as s:
        statuses = dict(s.execute(select(Timer.status, func.count()).group_by(Timer.status)).all())
        assert statuses == {"done": 2 * DEALS}, procs.output()
        per_timer = dict(s.execute(select(Effect.timer_id, func.count()).group_by(Effect.timer_id)).all())
        assert len(per_timer) == 2 * DEALS and set(per_timer.values()) == {1}
        kinds = dict(s.execute(select(Effect.kind, func.count()).group_by(Effect.kind)).all())
        assert kinds == {"actions.task": DEALS, "actions.remind": DEALS}
        tasks = s.scalars(select(Task)).all()
        assert len(tasks) == DEALS and len({t.data["timer_id"] for t in tasks}) == DEALS
        reminders = s.scalars(select(Activity).where(Activity.kind == "reminder")).all()
        assert len(reminders) == DEALS and len({a.data["timer_id"] for a in reminders}) == DEALS
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
        rerun = s.scalar(select(func.count()).select_from(Timer).where(Timer.attempts > 1))
    assert rerun, "no step was re-claimed: no kill landed mid-batch\n" + "\n".join(events)
