"""`salesmesh worker` (an RQ worker on the job queues) and `salesmesh scheduler` (the timer sweeper plus
periodic jobs): the two long-running processes of production mode.

Both read settings from the SALESMESH_* environment and stop gracefully on SIGTERM: the worker finishes
its current job (RQ's warm shutdown), the scheduler finishes its current batch. Running two schedulers
is safe: claims skip each other's rows and periodic runs are guarded by a row lock.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from sqlalchemy.exc import DBAPIError

from salesmesh.platform.cli import CliError, database_error, pass_runtime
from salesmesh.platform.runtime import Runtime

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Quit once the queues are empty.")
@click.option(
    "--fork/--no-fork",
    default=False,
    show_default=True,
    help="Run each job in a forked work horse (isolation, ~5x slower) or in this process.",
)
@click.option("--max-jobs", type=click.IntRange(min=1), help="Quit after this many jobs.")
@click.option("--name", help="Worker name shown by `rq info` (default: a random id).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@pass_runtime
def worker_command(
    rt: Runtime, burst: bool, fork: bool, max_jobs: int | None, name: str | None, verbose: bool
) -> None:
    """Run an RQ worker executing salesmesh jobs (needs SALESMESH_REDIS_URL)."""
    if not rt.settings.redis_url:
        raise CliError("SALESMESH_REDIS_URL is not set: without Redis, jobs run inside `salesmesh run`")
    _configure_logging(verbose)
    from redis.exceptions import ConnectionError as RedisConnectionError

    from salesmesh.platform.worker import make_worker

    try:
        worker = make_worker(rt, fork=fork, name=name)
        worker.work(burst=burst, max_jobs=max_jobs, logging_level="DEBUG" if verbose else "INFO")
    except RedisConnectionError as exc:
        raise CliError(f"cannot reach Redis at SALESMESH_REDIS_URL: {exc}") from None


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run one sweep (and due periodic jobs), then exit.")
@click.option("--owner", help="Lease-owner name (default: host:pid).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@pass_runtime
def scheduler_command(rt: Runtime, once: bool, owner: str | None, verbose: bool) -> None:
    """Sweep due timers (inline, or dispatched to RQ workers when Redis is set) and start periodic jobs."""
    _configure_logging(verbose)
    from salesmesh.platform.jobs import InProcessJobQueue, load_task_modules
    from salesmesh.platform.periodic import run_due_periodic
    from salesmesh.platform.sweeper import default_owner, run_scheduler_loop, scheduler_tick
    from salesmesh.platform.timers import check_timer_kinds

    load_task_modules()  # every timer kind registered before judging the waiting timers' kinds
    try:
        with rt.db.session_scope() as session:
            unknown = check_timer_kinds(session)
    except DBAPIError as exc:
        raise CliError(database_error(exc)) from None
    if unknown:
        raise CliError(
            f"timers of unknown kind are waiting: {', '.join(unknown)} (deploy the code that registers "
            "them, or cancel those timers)"
        )
    owner = owner or default_owner()
    in_process = isinstance(rt.jobs, InProcessJobQueue)  # no Redis: periodic jobs run in this process
    if once:
        scheduler_tick(rt, owner=owner)
        run_due_periodic(rt)
        if in_process:
            rt.jobs.drain()
        return
    if in_process:
        rt.jobs.start()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("salesmesh.timers").info("signal %s: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_scheduler_loop(rt, stop, owner=owner)
    if in_process:
        rt.jobs.stop()
