"""Periodic jobs, declared as data: `PERIODIC_JOBS` lists (job name, interval) pairs that the scheduler
starts when due.

Each declared job has a `periodic_runs` row with its next due time. `run_due_periodic` locks the due
rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), moves them one interval
ahead and enqueues the jobs after that commit, so two schedulers never start the same run twice and a
scheduler that was down runs a missed job once on restart (no catch-up storm). The jobs themselves
are ordinary registered jobs; the built-in one purges old finished timers and their ledger rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from salesmesh.platform.jobs import JobContext, get_job, job
from salesmesh.platform.timers import CANCELLED, DONE, Effect, PeriodicRun, Timer

if TYPE_CHECKING:
    from salesmesh.platform.runtime import Runtime

TIMER_RETENTION = timedelta(days=90)
PURGE_BATCH = 5000


@dataclass(frozen=True)
class PeriodicJob:
    """A registered job started every `every` by the scheduler."""

    name: str  # a registered job taking no arguments
    every: timedelta


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("platform.purge_finished_timers", timedelta(hours=6)),
    # Missed first-response deadlines (salesmesh.workflows.sla_sweep); a backlog re-enqueues itself.
    PeriodicJob("workflows.sla_sweep", timedelta(minutes=1)),
    # E-mail and webhooks of notifications raised where no job queue was at hand (lead assignment).
    PeriodicJob("notifications.deliver", timedelta(seconds=30)),
    # Deal lights that time alone turns yellow or red (salesmesh.workflows.lights); a backlog re-enqueues.
    PeriodicJob("workflows.light_sweep", timedelta(minutes=5)),
)


def run_due_periodic(runtime: Runtime, jobs: Sequence[PeriodicJob] = PERIODIC_JOBS) -> list[str]:
    """Enqueue every declared job whose time has come (once across concurrent schedulers); return names."""
    every = {entry.name: entry.every for entry in jobs}
    for name in every:
        get_job(name)
    now = runtime.clock.now()
    with runtime.db.session_scope(immediate=True) as session:
        _ensure_rows(session, list(every), now)
        due = session.scalars(
            select(PeriodicRun)
            .where(PeriodicRun.name.in_(list(every)), PeriodicRun.next_run_at <= now)
            .order_by(PeriodicRun.name)
            .with_for_update(skip_locked=True)
        ).all()
        for row in due:
            row.last_run_at = now
            row.next_run_at = now + every[row.name]
            runtime.jobs.enqueue_after_commit(session, row.name)
        return [row.name for row in due]


def _ensure_rows(session: Session, names: list[str], now: datetime) -> None:
    known = set(session.scalars(select(PeriodicRun.name).where(PeriodicRun.name.in_(names))))
    missing = [{"name": name, "next_run_at": now} for name in names if name not in known]
    if missing:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(PeriodicRun).values(missing).on_conflict_do_nothing(index_elements=["name"])
        )


@job("platform.purge_finished_timers")
def purge_finished_timers(ctx: JobContext) -> int:
    """Delete done and cancelled timers (and their ledger rows) older than TIMER_RETENTION; return count."""
    cutoff = ctx.clock.now() - TIMER_RETENTION
    ids = ctx.session.scalars(
        select(Timer.id).where(Timer.status.in_((DONE, CANCELLED)), Timer.due_at < cutoff).limit(PURGE_BATCH)
    ).all()
    if not ids:
        return 0
    ctx.session.execute(delete(Effect).where(Effect.timer_id.in_(ids)))
    ctx.session.execute(delete(Timer).where(Timer.id.in_(ids)))
    return len(ids)
