"""The runtime: what every entry point (web request, job, CLI command, scheduler) works within.

A `Runtime` bundles settings, the database, the clock and the job queue. The app factory, the CLI and
the worker each build one from `Settings`; domain services receive a session and an actor, and reach
the clock through `runtime.clock` passed in by the boundary — never through globals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salesmesh.platform.clock import Clock, SystemClock
from salesmesh.platform.db import Database, import_models
from salesmesh.platform.settings import Settings

if TYPE_CHECKING:
    from salesmesh.platform.jobs import JobQueue


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, pool: bool = True) -> None:
        import_models()
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.database_url, pool=pool)
        self._jobs: JobQueue | None = None

    @property
    def jobs(self) -> JobQueue:
        """The job queue: RQ on Redis when a Redis URL is set, the in-process runner otherwise."""
        if self._jobs is None:
            from salesmesh.platform.jobs import make_job_queue

            self._jobs = make_job_queue(self)
        return self._jobs

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()
        self.db.dispose()
