"""Process-level fault tests: real `scheduler` and `worker` processes on real PostgreSQL (+ Redis), killed
with SIGKILL in the middle of a batch and restarted. Afterwards every due timer's effect exists exactly
once, no timer fired before its due time, and timers not yet due are untouched.

The processes run the real CLI plus one slow test timer kind (`fault_support/slow_cli.py`) so that a
kill lands mid-batch. Their clock is the system clock, so due times are relative to the real now. Every
wait is bounded and every process is killed (with its process group) at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import Effect, Timer, schedule_timer
from tests.platform.fault_support.slow_cli import SLOW_KIND

pytestmark = [pytest.mark.slow, pytest.mark.services]

REPO = Path(__file__).resolve().parents[2]
DUE_NOW, DUE_SOON, DUE_LATER = 500, 100, 50
SOON = timedelta(seconds=8)


class Processes:
    """Start salesmesh processes with test settings; kill them all (process groups) at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.platform.fault_support.slow_cli", *args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and anything it forked."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.started:
            self.kill(proc)

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs.glob("*.log")
        )


@pytest.fixture
def fault_runtime(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(database_url=pg_url, instance_path=tmp_path, testing=True))
    Base.metadata.create_all(rt.db.engine)
    yield rt
    rt.close()


def _processes(tmp_path: Path, pg_url: str, redis_url: str | None) -> Processes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESMESH_")}
    env.update(
        SALESMESH_DATABASE_URL=pg_url,
        SALESMESH_SECRET_KEY="fault-test-secret-0123456789",
        SALESMESH_INSTANCE_PATH=str(tmp_path / "instance"),
        SALESMESH_TIMER_LEASE_SECONDS="5",
        SALESMESH_SWEEPER_INTERVAL_SECONDS="0.5",
        SALESMESH_SWEEPER_BATCH_SIZE="100",
    )
    if redis_url:
        env["SALESMESH_REDIS_URL"] = redis_url
    logs = tmp_path / "logs"
    logs.mkdir()
    return Processes(env, logs)


def _schedule_timers(rt: Runtime) -> datetime:
    now = rt.clock.now()
    with rt.db.session_scope() as s:
        for n in range(DUE_NOW + DUE_SOON + DUE_LATER):
            due = (
                now - timedelta(milliseconds=n)
                if n < DUE_NOW
                else now + (SOON if n < DUE_NOW + DUE_SOON else timedelta(hours=1))
            )
            schedule_timer(s, kind=SLOW_KIND, due_at=due, subject=("lead", n), now=now)
    return now


def _effects(rt: Runtime) -> int:
    with rt.db.session_scope() as s:
        return s.scalar(select(func.count()).select_from(Effect)) or 0


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{procs.output()}")
        time.sleep(0.05)


def _assert_each_due_effect_exactly_once(rt: Runtime, procs: Processes) -> None:
    due_total = DUE_NOW + DUE_SOON
    _wait_for(
        lambda: _effects(rt) >= due_total and _done(rt) == due_total, 60, "every due timer to finish", procs
    )
    with rt.db.session_scope() as s:
        per_timer = s.execute(select(Effect.timer_id, func.count()).group_by(Effect.timer_id)).all()
        assert len(per_timer) == due_total and {count for _, count in per_timer} == {1}
        statuses = dict(s.execute(select(Timer.status, func.count()).group_by(Timer.status)).all())
        assert statuses == {"done": due_total, "pending": DUE_LATER}, procs.output()
        early = s.scalar(select(func.count()).select_from(Timer).where(Timer.fired_at < Timer.due_at))
        early_effects = s.scalar(
            select(func.count())
            .select_from(Effect)
            .join(Timer, Effect.timer_id == Timer.id)
            .where(Effect.created_at < Timer.due_at)
        )
        assert early == 0 and early_effects == 0
        assert s.scalar(select(func.max(Timer.attempts)).where(Timer.status == "pending")) == 0
        rerun = s.scalar(select(func.count()).select_from(Timer).where(Timer.attempts > 1))
    assert rerun, "no timer was re-claimed: the kills did not land mid-batch\n" + procs.output()


def _done(rt: Runtime) -> int:
    with rt.db.session_scope() as s:
        return s.scalar(select(func.count()).select_from(Timer).where(Timer.status == "done")) or 0


def _mid_job(log: Path) -> bool:
    """Tell from its log whether a worker has started a job it has not finished (RQ logs the start)."""
    text = log.read_text(errors="replace")
    return text.count(": salesmesh: platform.run_timers (") > text.count("job platform.run_timers (")


def test_kill_scheduler_and_worker_mid_batch_on_redis(
    fault_runtime: Runtime, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    procs = _processes(tmp_path, pg_url, redis_url)
    _schedule_timers(fault_runtime)
    try:
        scheduler = procs.start("scheduler-1", "scheduler")
        victim = procs.start("worker-1", "worker", "--name", "victim")
        procs.start("worker-2", "worker", "--name", "survivor")
        _wait_for(lambda: _effects(fault_runtime) >= 60, 40, "the first effects", procs)
        _wait_for(lambda: _mid_job(procs.logs / "worker-1.log"), 20, "the victim worker to be mid-job", procs)
        procs.kill(victim)
        procs.kill(scheduler)
        killed_at = _effects(fault_runtime)
        assert killed_at < DUE_NOW + DUE_SOON, "everything finished before the kill; make the batch slower"
        procs.start("scheduler-2", "scheduler")
        procs.start("worker-3", "worker", "--name", "replacement")
        _assert_each_due_effect_exactly_once(fault_runtime, procs)
    finally:
        procs.kill_all()


def test_kill_one_of_two_inline_schedulers_mid_batch(
    fault_runtime: Runtime, pg_url: str, tmp_path: Path
) -> None:
    procs = _processes(tmp_path, pg_url, None)
    _schedule_timers(fault_runtime)
    try:
        victim = procs.start("scheduler-1", "scheduler")
        procs.start("scheduler-2", "scheduler")
        _wait_for(lambda: _effects(fault_runtime) >= 60, 40, "the first effects", procs)
        victim_log = procs.logs / "scheduler-1.log"
        _wait_for(
            lambda: "executing them here" in victim_log.read_text(), 20, "the victim to claim a batch", procs
        )
        procs.kill(victim)
        assert _effects(fault_runtime) < DUE_NOW + DUE_SOON, "everything finished before the kill"
        procs.start("scheduler-3", "scheduler")
        _assert_each_due_effect_exactly_once(fault_runtime, procs)
    finally:
        procs.kill_all()
