"""Jobs: after-commit delivery, the one wrapper, the in-process runner, the embedded background threads,
the `scheduler` command, and real `salesmesh worker` processes on real Redis + PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.embedded import start_background
from salesmesh.platform.jobs import (
    InProcessJobQueue,
    JobContext,
    RQJobQueue,
    UnknownJob,
    job,
    make_job_queue,
    run_job,
)
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.sweeper import dispatch_once
from salesmesh.platform.timers import Effect, Timer, record_effect, schedule_timer

REPO = Path(__file__).resolve().parents[2]
SALESMESH = [str(Path(sys.executable).parent / "salesmesh")]  # the console script of this environment


@job("tests.record")
def _record(ctx: JobContext, key: str) -> None:
    record_effect(ctx.session, key, kind="tests.record", now=ctx.clock.now())


@job("tests.record_then_fail")
def _record_then_fail(ctx: JobContext, key: str) -> None:
    record_effect(ctx.session, key, kind="tests.record", now=ctx.clock.now())
    raise RuntimeError(f"job failed after writing {key}")


def _keys(rt: Runtime) -> list[str]:
    with rt.db.session_scope() as s:
        return sorted(s.scalars(select(Effect.idempotency_key)))


def _in_process(rt: Runtime) -> InProcessJobQueue:
    assert isinstance(rt.jobs, InProcessJobQueue)
    return rt.jobs


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# --- after-commit delivery ------------------------------------------------------------------------


def test_enqueue_after_commit_delivers_on_commit_and_drops_on_rollback(runtime: Runtime) -> None:
    jobs = _in_process(runtime)
    with runtime.db.Session() as s:
        jobs.enqueue_after_commit(s, "tests.record", "committed")
        assert jobs.backlog() == 0
        s.commit()
        assert jobs.backlog() == 1
        jobs.enqueue_after_commit(s, "tests.record", "rolled-back")
        s.rollback()
        s.commit()
        jobs.enqueue_after_commit(s, "tests.record", "never-committed")
    assert jobs.backlog() == 1  # closing the session without a commit dropped the last one
    assert jobs.drain() == 1
    assert _keys(runtime) == ["committed"]


def test_the_same_job_asked_for_twice_in_one_transaction_is_enqueued_once(runtime: Runtime) -> None:
    jobs = _in_process(runtime)
    with runtime.db.Session() as s:
        for key in ("a", "b", "a"):
            with s.begin_nested():  # e.g. each action step of a batch asking for the delivery job
                jobs.enqueue_after_commit(s, "tests.record", key)
        jobs.enqueue_after_commit(s, "tests.record", "a")
        s.commit()
        assert jobs.backlog() == 2
        jobs.enqueue_after_commit(s, "tests.record", "a")  # the next transaction asks again: it runs again
        s.commit()
    assert jobs.drain() == 3  # a, b, then a again
    assert sorted(_keys(runtime)) == ["a", "b"]


def test_savepoints_decide_which_jobs_survive(runtime: Runtime) -> None:
    jobs = _in_process(runtime)
    with runtime.db.Session() as s:
        jobs.enqueue_after_commit(s, "tests.record", "outer")
        with s.begin_nested():
            jobs.enqueue_after_commit(s, "tests.record", "released-savepoint")
        assert jobs.backlog() == 0  # releasing a savepoint is not the commit
        savepoint = s.begin_nested()
        jobs.enqueue_after_commit(s, "tests.record", "rolled-back-savepoint")
        savepoint.rollback()
        s.commit()
    jobs.drain()
    assert _keys(runtime) == ["outer", "released-savepoint"]


def test_unknown_jobs_bad_ids_and_non_json_arguments_fail_at_enqueue(runtime: Runtime) -> None:
    jobs = _in_process(runtime)
    with runtime.db.Session() as s:
        with pytest.raises(UnknownJob, match="unknown job 'no.such'"):
            jobs.enqueue_after_commit(s, "no.such")
        with pytest.raises(TypeError, match="tests.record: arguments must be JSON-safe"):
            jobs.enqueue_after_commit(s, "tests.record", datetime.now(UTC))
        with pytest.raises(ValueError, match="job_id 'a:b' must be"):
            jobs.enqueue_now("tests.record", "x", job_id="a:b")
    with pytest.raises(ValueError, match="already registered"):
        job("tests.record")(_record)


def test_run_job_commits_once_or_rolls_back_everything(runtime: Runtime) -> None:
    run_job(runtime, "tests.record", ["kept"])
    with pytest.raises(RuntimeError, match="job failed after writing lost"):
        run_job(runtime, "tests.record_then_fail", ["lost"])
    assert _keys(runtime) == ["kept"]


def test_in_process_runner_runs_jobs_on_its_thread_and_survives_failures(runtime: Runtime) -> None:
    jobs = _in_process(runtime)
    jobs.start()
    try:
        jobs.enqueue_now("tests.record_then_fail", "bad")
        jobs.enqueue_now("tests.record", "a", job_id="only-once")
        jobs.enqueue_now("tests.record", "a", job_id="only-once")
        jobs.enqueue_now("tests.record", "b")
        jobs.drain(timeout=10)
    finally:
        jobs.stop()
    assert _keys(runtime) == ["a", "b"]
    assert list(jobs.errors) == [("tests.record_then_fail", "RuntimeError: job failed after writing bad")]


def test_closing_the_runtime_finishes_queued_in_process_jobs(settings: Settings, clock: FrozenClock) -> None:
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)
    rt.jobs.enqueue_now("tests.record", "at-close")
    rt.close()
    rt = Runtime(settings, clock=clock)
    assert _keys(rt) == ["at-close"]
    rt.close()


def test_settings_choose_the_queue(settings: Settings, clock: FrozenClock) -> None:
    rt = Runtime(settings.with_(redis_url="redis://127.0.0.1:6379/9"), clock=clock)
    queue = make_job_queue(rt)
    assert isinstance(queue, RQJobQueue) and queue.queue().name == "salesmesh"
    queue.close()
    rt.close()
    rt = Runtime(settings, clock=clock)
    assert isinstance(make_job_queue(rt), InProcessJobQueue)
    rt.close()


# --- embedded mode and the scheduler command ------------------------------------------------------


def test_embedded_background_sweeps_timers_and_runs_jobs(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        timer_id = schedule_timer(s, kind="platform.noop_effect", due_at=clock.now(), subject=("lead", 1)).id
    stop = start_background(runtime)
    try:
        runtime.jobs.enqueue_now("tests.record", "from-a-request")
        _wait_for(lambda: len(_keys(runtime)) == 2, 15, "the sweeper thread and the job thread")
    finally:
        stop()
    assert _keys(runtime) == ["from-a-request", f"timer:{timer_id}:noop"]


def test_scheduler_once_sweeps_due_timers(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        schedule_timer(s, kind="platform.noop_effect", due_at=clock.now())
        schedule_timer(s, kind="platform.noop_effect", due_at=clock.now() + timedelta(minutes=1))
    result = CliRunner().invoke(cli, ["scheduler", "--once"], obj=CliState(runtime=runtime))
    assert result.exit_code == 0, result.output
    with runtime.db.session_scope() as s:
        assert sorted(s.scalars(select(Timer.status))) == ["done", "pending"]


def test_scheduler_refuses_to_start_with_timers_of_unknown_kind(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        s.add(
            Timer(
                kind="gone.kind",
                due_at=clock.now(),
                status="pending",
                payload={},
                attempts=0,
                max_attempts=5,
                created_at=clock.now(),
            )
        )
    result = CliRunner().invoke(cli, ["scheduler", "--once"], obj=CliState(runtime=runtime))
    assert result.exit_code == 1
    assert "timers of unknown kind are waiting: gone.kind" in result.output


def test_worker_needs_redis(runtime: Runtime) -> None:
    result = CliRunner().invoke(cli, ["worker", "--burst"], obj=CliState(runtime=runtime))
    assert result.exit_code == 1
    assert "SALESMESH_REDIS_URL is not set" in result.output


def _env(database_url: str, instance: Path, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESMESH_")}
    env.update(
        SALESMESH_DATABASE_URL=database_url,
        SALESMESH_SECRET_KEY="test-secret-key-0123456789",
        SALESMESH_INSTANCE_PATH=str(instance),
        **extra,
    )
    if redis_url:
        env["SALESMESH_REDIS_URL"] = redis_url
    return env


def test_scheduler_process_stops_gracefully_on_sigterm(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [*SALESMESH, "scheduler"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(settings.database_url, tmp_path / "instance"),
        text=True,
    )
    try:
        _wait_for(
            lambda: _periodic_rows(runtime) > 0 or proc.poll() is not None, 20, "the scheduler's first tick"
        )
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "stopping after the current batch" in output and "stopped" in output


def _periodic_rows(rt: Runtime) -> int:
    from salesmesh.platform.timers import PeriodicRun

    with rt.db.session_scope() as s:
        return s.scalar(select(func.count()).select_from(PeriodicRun)) or 0


# --- real RQ workers on Redis + PostgreSQL --------------------------------------------------------


@pytest.mark.services
@pytest.mark.parametrize("mode", ["--no-fork", "--fork"])
def test_salesmesh_worker_process_runs_enqueued_jobs(
    pg_url: str, redis_url: str, tmp_path: Path, mode: str
) -> None:
    rt = Runtime(Settings(database_url=pg_url, redis_url=redis_url, instance_path=tmp_path, testing=True))
    try:
        Base.metadata.create_all(rt.db.engine)
        now = rt.clock.now()
        with rt.db.session_scope() as s:
            due = [
                schedule_timer(s, kind="platform.noop_effect", due_at=now, subject=("lead", n)).id
                for n in range(120)
            ]
            later = schedule_timer(s, kind="platform.noop_effect", due_at=now + timedelta(hours=1)).id
            stale = schedule_timer(s, kind="platform.noop_effect", due_at=now - timedelta(days=100)).id
            s.flush()
            s.get(Timer, stale).status = "done"  # type: ignore[union-attr]
            rt.jobs.enqueue_after_commit(s, "platform.purge_finished_timers", job_id="purge-now")
        rt.jobs.enqueue_now("platform.purge_finished_timers", job_id="purge-now")  # unique: still one job
        assert dispatch_once(rt, owner="test") == 120
        queue = rt.jobs.queue()  # type: ignore[attr-defined]
        assert queue.count == 4  # one purge + three chunks of timer ids, never a job per timer
        proc = subprocess.run(
            [*SALESMESH, "worker", "--burst", mode],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(pg_url, tmp_path / "instance", redis_url),
            timeout=90,
        )
        assert proc.returncode == 0, proc.stdout
        assert proc.stdout.count("Job OK") == 4, proc.stdout
        with rt.db.session_scope() as s:
            statuses = dict(s.execute(select(Timer.id, Timer.status)).all())
            assert {statuses[i] for i in due} == {"done"} and statuses[later] == "pending"
            assert stale not in statuses
            assert s.scalar(select(func.count()).select_from(Effect)) == 120
        assert queue.count == 0 and queue.failed_job_registry.count == 0
    finally:
        rt.close()
