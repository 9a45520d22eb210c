"""Embedded mode's background work: the in-process job runner and the sweeper on a timer thread.

`salesmesh run` calls `start_background(runtime)` next to the development server. Without Redis it
starts the in-process job thread and a scheduler thread running the same loop as `salesmesh scheduler`
(sweep due timers inline, start periodic jobs); with Redis those belong to separate `salesmesh worker`
and `salesmesh scheduler` processes, so nothing is started here. The returned function stops both
threads, letting the current batch and the queued jobs finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from salesmesh.platform.jobs import InProcessJobQueue
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import default_owner, run_scheduler_loop
from salesmesh.platform.timers import check_timer_kinds

log = logging.getLogger("salesmesh.embedded")


def start_background(runtime: Runtime) -> Callable[[], None]:
    """Start the in-process job runner and sweeper thread (embedded mode); return a function stopping them."""
    jobs = runtime.jobs
    if not isinstance(jobs, InProcessJobQueue):
        log.info("Redis is configured: run `salesmesh worker` and `salesmesh scheduler` for background work")
        return lambda: None
    with runtime.db.session_scope() as session:
        unknown = check_timer_kinds(session)
    if unknown:
        log.error("timers of unknown kind are waiting and will fail: %s", ", ".join(unknown))
    jobs.start()
    stop_event = threading.Event()
    sweeper = threading.Thread(
        target=run_scheduler_loop,
        args=(runtime, stop_event),
        kwargs={"owner": f"{default_owner()}:embedded"},
        name="salesmesh-sweeper",
        daemon=True,
    )
    sweeper.start()

    def stop() -> None:
        """Stop the sweeper after its current batch, then the job runner after its queued jobs."""
        stop_event.set()
        sweeper.join(timeout=30)
        jobs.stop()

    return stop
