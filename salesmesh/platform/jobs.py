"""Background jobs: one registry of job functions, one wrapper that runs every job, and two queues.

A job is a function registered with `@job("name")` taking a `JobContext` and JSON-safe arguments
(ids, not objects). `run_job` is the only place a job runs: it opens a session, calls the function,
commits once, rolls back and logs on error. `JobQueue.enqueue_after_commit` holds a job until the
caller's transaction commits (and drops it on rollback), so a job never reads rows that are not
there yet; the same job with the same arguments asked for several times in one transaction is enqueued
once (it would see the same committed rows). `RQJobQueue` sends jobs to Redis (RQ, JSON-serialised) for
`salesmesh worker` processes; `InProcessJobQueue` runs the same functions on a background thread in
embedded mode.
`make_job_queue(runtime)` picks one from the settings. Modules that register jobs are listed in
`TASK_MODULES` and imported by every process that enqueues or runs jobs.
"""

from __future__ import annotations

import collections
import importlib
import json
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

if TYPE_CHECKING:
    import rq

    from salesmesh.platform.clock import Clock
    from salesmesh.platform.runtime import Runtime

log = logging.getLogger("salesmesh.jobs")

# Every module that registers jobs (or timer kinds run by jobs); later issues append theirs.
TASK_MODULES = (
    "salesmesh.platform.sweeper",
    "salesmesh.platform.periodic",
    "salesmesh.workflows.import_steps",
    "salesmesh.workflows.pools",
    "salesmesh.platform.notifications",
    "salesmesh.workflows.sla_sweep",
    # The approval deadline timer and the settlers it needs (moves, custom objection responses).
    "salesmesh.workflows.approvals",
    "salesmesh.workflows.pipelines",
    "salesmesh.workflows.objections",
    # Action-pack steps: the stage-change receiver and the step timer kind.
    "salesmesh.workflows.action_packs",
    # Deal lights: the stage-change receiver and the sweep of lights that time changes.
    "salesmesh.workflows.lights",
)
DEFAULT_TIMEOUT = 600
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True)
class JobSpec:
    """A registered job: its function, queue (None = settings.job_queue) and RQ timeout in seconds."""

    name: str
    func: Callable[..., Any]
    queue: str | None  # None = settings.job_queue
    timeout: int


@dataclass(frozen=True)
class JobContext:
    """What a job function gets besides its arguments: the runtime and the session it must not commit."""

    runtime: Runtime
    session: Session
    job_id: str | None

    @property
    def clock(self) -> Clock:
        """The runtime's clock (the only source of "now" inside a job)."""
        return self.runtime.clock


_JOBS: dict[str, JobSpec] = {}


class UnknownJob(LookupError):
    """No job is registered under this name."""


def job(
    name: str, *, queue: str | None = None, timeout: int = DEFAULT_TIMEOUT
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as job `name` (duplicate names fail at import)."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if name in _JOBS:
            raise ValueError(f"job {name!r} is already registered by {_JOBS[name].func.__module__}")
        _JOBS[name] = JobSpec(name, func, queue, timeout)
        return func

    return register


def get_job(name: str) -> JobSpec:
    """Return the registered job `name` or raise UnknownJob."""
    try:
        return _JOBS[name]
    except KeyError:
        raise UnknownJob(f"unknown job {name!r} (registered: {', '.join(sorted(_JOBS))})") from None


def registered_queues(default: str) -> list[str]:
    """Return the names of every queue a registered job uses (`default` for jobs that name none)."""
    return sorted({spec.queue or default for spec in _JOBS.values()} | {default})


def load_task_modules() -> None:
    """Import every module in TASK_MODULES so all jobs and timer kinds are registered."""
    for module in TASK_MODULES:
        importlib.import_module(module)


def run_job(runtime: Runtime, name: str, args: Sequence[Any], *, job_id: str | None = None) -> Any:
    """Run one job: open a session, call the function, commit; roll back, log and re-raise on error."""
    spec = get_job(name)
    started = time.monotonic()
    try:
        # On SQLite a job takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once ("database is locked") when another writer committed in between.
        with runtime.db.session_scope(immediate=True) as session:
            result = spec.func(JobContext(runtime, session, job_id), *args)
    except Exception:
        log.exception("job %s (%s) failed after %.3fs", name, job_id or "-", time.monotonic() - started)
        raise
    log.info("job %s (%s) done in %.3fs", name, job_id or "-", time.monotonic() - started)
    return result


def _check_call(name: str, args: Sequence[Any], job_id: str | None) -> JobSpec:
    spec = get_job(name)
    if job_id is not None and not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job {name}: job_id {job_id!r} must be 1-200 characters of A-Z a-z 0-9 _ -")
    try:
        json.dumps(list(args), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job {name}: arguments must be JSON-safe ids and plain values ({exc})") from None
    return spec


# --- after-commit delivery ------------------------------------------------------------------------

_PENDING_KEY = "salesmesh.pending_jobs"


@dataclass(frozen=True)
class _PendingJob:
    queue: JobQueue
    name: str
    args: tuple[Any, ...]
    job_id: str | None
    transaction: SessionTransaction | None  # the (sub)transaction whose rollback drops the job


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _deliver_pending(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the outer transaction may still roll back
    # A batch of action steps each asking for the delivery job must not flood the queue with copies.
    seen: set[tuple[int, str, str, str | None]] = set()
    for pending in session.info.pop(_PENDING_KEY, []):
        key = (id(pending.queue), pending.name, json.dumps(pending.args, sort_keys=True), pending.job_id)
        if key in seen:
            continue
        seen.add(key)
        try:
            pending.queue.enqueue_now(pending.name, *pending.args, job_id=pending.job_id)
        except Exception:
            # The data is committed; failing the commit now would lie to the caller. Durable work
            # belongs in a timer row (due now), which survives this.
            log.exception("could not enqueue job %s after commit", pending.name)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING_KEY)
    if not pending:
        return
    if previous.parent is None:
        session.info.pop(_PENDING_KEY, None)
    else:
        session.info[_PENDING_KEY] = [p for p in pending if not _within(p.transaction, previous)]


@event.listens_for(Session, "after_transaction_end")
def _forget_on_close(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)  # closed without commit (commit already delivered)


# --- the queues -----------------------------------------------------------------------------------


class JobQueue(ABC):
    """Where jobs go: enqueue now, or once the caller's transaction commits."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def enqueue_after_commit(
        self, session: Session, name: str, *args: Any, job_id: str | None = None
    ) -> None:
        """Enqueue job `name` when `session`'s transaction commits; forget it if it rolls back."""
        _check_call(name, args, job_id)
        if not session.in_transaction():
            session.begin()  # tie the job to a transaction now, so a rollback before any SQL drops it
        transaction = session.get_nested_transaction() or session.get_transaction()
        session.info.setdefault(_PENDING_KEY, []).append(_PendingJob(self, name, args, job_id, transaction))

    @abstractmethod
    def enqueue_now(self, name: str, *args: Any, job_id: str | None = None) -> None:
        """Enqueue job `name` now (a job_id the queue still holds is not enqueued twice)."""

    @abstractmethod
    def backlog(self) -> int:
        """Return how many jobs wait in the default queue."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and threads."""


class RQJobQueue(JobQueue):
    """Jobs on Redis through RQ; `salesmesh worker` processes run them via `perform`."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        import redis

        assert runtime.settings.redis_url
        self.connection = redis.Redis.from_url(runtime.settings.redis_url)
        self._queues: dict[str, rq.Queue] = {}

    def queue(self, name: str | None = None) -> rq.Queue:
        """Return the RQ queue `name` (default: settings.job_queue), JSON-serialised."""
        from rq import Queue
        from rq.serializers import JSONSerializer

        name = name or self.runtime.settings.job_queue
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.connection, serializer=JSONSerializer)
        return self._queues[name]

    def enqueue_now(self, name: str, *args: Any, job_id: str | None = None) -> None:
        """Push job `name` to its RQ queue (job_id jobs are unique while Redis still holds them)."""
        from rq.exceptions import DuplicateJobError

        spec = _check_call(name, args, job_id)
        try:
            self.queue(spec.queue).enqueue_call(
                perform,
                args=(name, *args),
                job_id=job_id,
                unique=job_id is not None,
                timeout=spec.timeout,
                description=name,
                failure_ttl=7 * 24 * 3600,
            )
        except DuplicateJobError:
            log.info("job %s (%s) is already queued; not enqueued again", name, job_id)

    def backlog(self) -> int:
        """Return how many jobs wait in the default RQ queue."""
        return self.queue().count

    def close(self) -> None:
        """Close the Redis connection pool."""
        self.connection.close()


@dataclass(frozen=True)
class _QueuedJob:
    name: str
    args: tuple[Any, ...]
    job_id: str | None


class InProcessJobQueue(JobQueue):
    """Embedded mode: the same job functions on one background thread (or inline via `drain()`)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._items: collections.deque[_QueuedJob] = collections.deque()
        self._ids: set[str] = set()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.errors: collections.deque[tuple[str, str]] = collections.deque(maxlen=100)  # (job, error)

    def enqueue_now(self, name: str, *args: Any, job_id: str | None = None) -> None:
        """Queue job `name` for the runner thread (or the next `drain()`)."""
        _check_call(name, args, job_id)
        with self._cond:
            if job_id is not None:
                if job_id in self._ids:
                    log.info("job %s (%s) is already queued; not enqueued again", name, job_id)
                    return
                self._ids.add(job_id)
            self._items.append(_QueuedJob(name, args, job_id))
            self._cond.notify_all()

    def backlog(self) -> int:
        """Return how many jobs wait to run."""
        with self._cond:
            return len(self._items)

    def start(self) -> None:
        """Start the background thread that runs queued jobs."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="salesmesh-jobs", daemon=True)
            self._thread.start()

    def drain(self, timeout: float = 30.0) -> int:
        """Run (or wait for the thread to run) every queued job; return how many ran here."""
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            with self._cond:
                while self._items or self._busy:
                    if not self._cond.wait(max(deadline - time.monotonic(), 0)):
                        raise TimeoutError(f"in-process jobs still running after {timeout}s")
            return 0
        count = 0
        while (item := self._take()) is not None:
            self._run(item)
            count += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"in-process jobs still queued after {timeout}s")
        return count

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread after the jobs already queued have run."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout)
        self._thread = None

    def close(self) -> None:
        """Finish queued jobs (nothing enqueued after a commit is silently lost), then stop."""
        if self._thread is not None:
            self.stop()
        self.drain()

    def _take(self) -> _QueuedJob | None:
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            if item.job_id is not None:
                self._ids.discard(item.job_id)
            self._busy = True
            return item

    def _run(self, item: _QueuedJob) -> None:
        try:
            run_job(self.runtime, item.name, item.args, job_id=item.job_id)
        except Exception as exc:  # noqa: BLE001 - logged by run_job; the runner must survive
            self.errors.append((item.name, f"{type(exc).__name__}: {exc}"))
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items and self._stopping:
                    return
            item = self._take()
            if item is not None:
                self._run(item)


def make_job_queue(runtime: Runtime) -> JobQueue:
    """Return RQ on Redis when settings.redis_url is set, the in-process runner otherwise."""
    load_task_modules()
    if runtime.settings.redis_url:
        return RQJobQueue(runtime)
    return InProcessJobQueue(runtime)


# --- the RQ side ----------------------------------------------------------------------------------

_worker_runtime: Runtime | None = None


def bind_worker_runtime(runtime: Runtime) -> None:
    """Make `runtime` the one every job in this worker process runs within."""
    global _worker_runtime
    _worker_runtime = runtime


def perform(name: str, *args: Any) -> Any:
    """RQ entry point: run job `name` in this process's runtime (built from the environment if unbound)."""
    from rq import get_current_job

    global _worker_runtime
    if _worker_runtime is None:
        from salesmesh.platform.runtime import Runtime
        from salesmesh.platform.settings import Settings

        load_task_modules()
        _worker_runtime = Runtime(Settings.from_env())
    current = get_current_job()
    return run_job(_worker_runtime, name, args, job_id=current.id if current else None)
