"""The RQ worker behind `salesmesh worker`: which worker class runs our jobs and how it treats the database.

Default: RQ's `SimpleWorker`, jobs run in the worker process and reuse its pooled database connection.
Measured on the 2-core dev machine with real PostgreSQL + Redis (300 small DB jobs, `--burst`, start-up
included): about 50-70 jobs/s, against about 12 jobs/s for RQ's fork-per-job `Worker`, which also opens
a new PostgreSQL connection (a new server backend) for every job. Job timeouts still apply (SIGALRM),
a second SIGTERM still aborts the job (its transaction rolls back), and `--max-jobs` recycles a worker
that might leak. `fork=True` gives the forking worker for isolation; forking copies the connection pool,
so the parent empties its pool before each fork and the horse drops what it inherited without closing
it (the CKAN pattern) — no socket is ever shared across processes. Timer work is dispatched in chunks,
so either way the per-job cost is paid once per chunk, not per timer.
"""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker
from sqlalchemy.orm import configure_mappers

from salesmesh.platform.jobs import RQJobQueue, bind_worker_runtime, registered_queues
from salesmesh.platform.runtime import Runtime


class ForkingWorker(Worker):
    """RQ's fork-per-job worker with the database pool reset on both sides of every fork."""

    runtime: Runtime

    def execute_job(self, job: Any, queue: Any) -> Any:
        """Empty the pool, then fork the horse (which thus inherits no database connection)."""
        self.runtime.db.engine.dispose()
        return super().execute_job(job, queue)

    def main_work_horse(self, job: Any, queue: Any) -> None:
        """In the horse: forget inherited pooled connections without closing the parent's sockets."""
        self.runtime.db.engine.dispose(close=False)
        super().main_work_horse(job, queue)


def make_worker(runtime: Runtime, *, fork: bool = False, name: str | None = None) -> BaseWorker:
    """Return an RQ worker on every job queue whose jobs run within `runtime`."""
    jobs = runtime.jobs
    if not isinstance(jobs, RQJobQueue):
        raise ValueError("SALESMESH_REDIS_URL is not set: the RQ worker needs Redis")
    bind_worker_runtime(runtime)
    # Configure the mappers once here: otherwise every forked horse pays for it again (~65 ms a job).
    configure_mappers()
    queues = [jobs.queue(queue_name) for queue_name in registered_queues(runtime.settings.job_queue)]
    if fork:
        worker: BaseWorker = ForkingWorker(
            queues, connection=jobs.connection, serializer=JSONSerializer, name=name
        )
        worker.runtime = runtime  # type: ignore[attr-defined]
        return worker
    return SimpleWorker(queues, connection=jobs.connection, serializer=JSONSerializer, name=name)
