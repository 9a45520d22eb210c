"""Deal lights: the rule that colours an open deal green, yellow or red, and keeping it current.

The rule (`compute_light`, pure) looks at what the owner planned and when the deal was last worked on.
The deal is *due* at the earliest of its open tasks' due times and its next step's due time; a next step
counts as done once the deal is worked on at or after its due time (an interaction logged or a stage
entered). A deal with nothing planned is due from the moment it was last worked on: an untouched deal
goes late by itself. From that moment (`overdue_since`) the light turns yellow once `yellow_after_days`
have passed and red once *more than* `red_after_days` have passed (the pinned pipeline version's
`lights`, default 1 and 3: yellow from 1 to 3 days late inclusive, red after 3), that is one microsecond
(the clock's resolution) of counted time after the red threshold, which `light_changes_at` names. With
`working_days` only the working dates of the pipeline's calendar count, whole (a Saturday, a holiday
does not; Monday to Friday when the calendar is missing or unusable), so a step due on Friday noon is
yellow on Monday noon, not on Saturday.

The light is denormalised on the deal with the two facts that keep it current without reading history:
`overdue_since` (sorting by days late) and `light_changes_at`, the next moment the light would change
if nothing happened. `refresh_light` recomputes one deal; it runs whenever an input changes (an
activity logged, a task created or completed, the next step edited, a stage entered through the
stage-change signal); `refresh_lights` does the same for many deals at once (a batch of reminders).
Time alone is handled by `sweep_lights`: the periodic job `workflows.light_sweep` takes deals whose
`light_changes_at` has passed through its index in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
`BEGIN IMMEDIATE` on SQLite) and writes each with a conditional UPDATE, so a page never recomputes a
light and a deal's history never has to be read.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.clock import aware
from salesmesh.platform.jobs import JobContext, job
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from salesmesh.workflows.models import Deal, Task
from salesmesh.workflows.stage_signals import StageChange, on_stage_change

log = logging.getLogger("salesmesh.lights")

DEFAULT_YELLOW_DAYS = 1.0
DEFAULT_RED_DAYS = 3.0
SWEEP_JOB = "workflows.light_sweep"
SWEEP_BATCH = 500
# How many dates a working-day count walks at most (365 days of lateness on a sparse calendar fit).
MAX_WALK_DAYS = 5000
_DAY = timedelta(days=1)
_TICK_DAYS = timedelta(microseconds=1) / _DAY  # the resolution of times, in days
# Monday to Friday, whole days, UTC: what "working days" means for a pipeline without a usable calendar.
WEEKDAYS_UTC = WorkingCalendar(
    key="",
    tz=UTC,
    weekly=((((0, 1440),),) * 5) + ((), ()),
    holidays=frozenset(),
    workdays={},
)


# --- counting days ------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC instants of local midnight at the start and end of `day` (boards reuse the days)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    return start, datetime.combine(day + _DAY, time(0), tzinfo=tz).astimezone(UTC)


def add_days(start: datetime, days: float, calendar: WorkingCalendar | None = None) -> datetime:
    """Return the moment `days` days after `start`; with a calendar only its working dates count."""
    at = start.astimezone(UTC)
    left = timedelta(days=days)
    if calendar is None or left <= timedelta(0):
        return at + left
    day = start.astimezone(calendar.tz).date()
    for _ in range(MAX_WALK_DAYS):
        if calendar.hours_on(day):
            midnight, end = _day_bounds(day, calendar.tz)
            begin = max(midnight, at)
            if begin < end:
                if end - begin >= left:
                    return begin + left
                left -= end - begin
        day += _DAY
    raise CalendarError(f"calendar {calendar.key!r} has no working day in the next {MAX_WALK_DAYS} days")


def elapsed_days(start: datetime, end: datetime, calendar: WorkingCalendar | None = None) -> float:
    """Return how many days passed from `start` to `end` (negative before), counting working dates only."""
    if end < start:
        return -elapsed_days(end, start, calendar)
    if calendar is None:
        return (end - start) / _DAY
    total = timedelta(0)
    day = start.astimezone(calendar.tz).date()
    last = end.astimezone(calendar.tz).date()
    while day <= last:
        if calendar.hours_on(day):
            midnight, next_midnight = _day_bounds(day, calendar.tz)
            begin, stop = max(midnight, start), min(next_midnight, end)
            if stop > begin:
                total += stop - begin
        day += _DAY
    return total / _DAY


# --- the rule -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightRule:
    """Thresholds of one pipeline version; `calendar` is set when only working dates count."""

    yellow_after_days: float = DEFAULT_YELLOW_DAYS
    red_after_days: float = DEFAULT_RED_DAYS
    calendar: WorkingCalendar | None = None

    def after(self, start: datetime, days: float) -> datetime:
        """Return the moment `days` (working) days after `start`."""
        return add_days(start, days, self.calendar)

    def days_late(self, overdue_since: datetime | None, now: datetime) -> float:
        """Return how many (working) days a deal due at `overdue_since` is late at `now` (0 when not)."""
        if overdue_since is None:
            return 0.0
        return max(0.0, elapsed_days(overdue_since, now, self.calendar))


DEFAULT_RULE = LightRule()


@dataclass(frozen=True)
class LightState:
    """A deal's light at a moment, where its lateness counts from, and when the light changes next."""

    light: str | None
    overdue_since: datetime | None
    changes_at: datetime | None  # None: the light stays as it is until something happens (red, closed)


CLOSED = LightState(None, None, None)


def compute_light(
    rule: LightRule,
    *,
    now: datetime,
    last_activity_at: datetime | None,
    stage_entered_at: datetime | None,
    next_step_due_at: datetime | None,
    task_due_at: datetime | None,
) -> LightState:
    """Return the light of an open deal at `now` (see the module docstring for the rule).

    `last_activity_at` is the latest interaction logged on the deal, `stage_entered_at` when it entered
    its stage (working the deal too), `next_step_due_at` its next step's due time and `task_due_at` the
    earliest due time of its open tasks (None when none has one).
    """
    worked = max((t for t in (last_activity_at, stage_entered_at) if t is not None), default=None)
    plan = [task_due_at] if task_due_at is not None else []
    if next_step_due_at is not None and (worked is None or worked < next_step_due_at):
        plan.append(next_step_due_at)
    since = min(plan) if plan else worked
    if since is None:  # nothing to measure from: no plan and never worked on
        return LightState("green", None, None)
    yellow_at = rule.after(since, rule.yellow_after_days)
    # Exactly red_after_days late is still yellow; red begins one counted microsecond later (on a working
    # calendar that may be the next working date, as a weekend adds no lateness).
    red_at = rule.after(max(rule.after(since, rule.red_after_days), yellow_at), _TICK_DAYS)
    if now >= red_at:
        return LightState("red", since, None)
    if now >= yellow_at:
        return LightState("yellow", since, red_at)
    return LightState("green", since, yellow_at)


# --- the rule of a pipeline version ---------------------------------------------------------------------

_LOCK = threading.Lock()
_CACHE_SIZE = 256
# (database, version id) -> (yellow, red, working_days, calendar key); only non-draft versions (immutable).
_THRESHOLDS: OrderedDict[tuple[str, int], tuple[float, float, bool, str | None]] = OrderedDict()
# (calendar version id, checksum) -> compiled calendar.
_CALENDARS: OrderedDict[tuple[int, str], WorkingCalendar] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)


def thresholds_of(document: Mapping[str, Any] | None) -> tuple[float, float, bool, str | None]:
    """Return (yellow days, red days, working days?, calendar key) of a pipeline document."""
    document = document or {}
    lights = document.get("lights") or {}
    yellow = float(lights.get("yellow_after_days", DEFAULT_YELLOW_DAYS))
    red = float(lights.get("red_after_days", DEFAULT_RED_DAYS))
    return yellow, red, bool(lights.get("working_days", False)), document.get("calendar")


def _thresholds(session: Session, version_ids: set[int]) -> dict[int, tuple[float, float, bool, str | None]]:
    """Return the thresholds of pipeline versions: cached ones free, the others in one query."""
    database = str(session.get_bind().url)
    found: dict[int, tuple[float, float, bool, str | None]] = {}
    with _LOCK:
        for version_id in version_ids:
            if (database, version_id) in _THRESHOLDS:
                found[version_id] = _THRESHOLDS[(database, version_id)]
    missing = version_ids - set(found)
    if missing:
        rows = session.execute(
            select(DefinitionVersion.id, DefinitionVersion.document, DefinitionVersion.status).where(
                DefinitionVersion.id.in_(sorted(missing))
            )
        ).all()
        for row in rows:
            found[row.id] = thresholds_of(row.document)
            if row.status != "draft":
                _remember(_THRESHOLDS, (database, row.id), found[row.id])
    for version_id in missing - set(found):
        found[version_id] = thresholds_of(None)  # the version is gone: the defaults, not an error
    return found


def working_calendars(session: Session, keys: Iterable[str | None]) -> dict[str | None, WorkingCalendar]:
    """Return the published calendars `keys` for counting working days (Monday to Friday when unusable).

    One query names the published versions; their documents are read (a second query) only for versions
    not compiled yet.
    """
    keys = set(keys)
    wanted = sorted(key for key in keys if key)
    published: dict[str | None, WorkingCalendar] = {}
    if wanted:
        rows = session.execute(
            select(Definition.key, DefinitionVersion.id, DefinitionVersion.checksum)
            .join(DefinitionVersion.definition)
            .where(
                Definition.kind == "calendar",
                Definition.key.in_(wanted),
                DefinitionVersion.status == "published",
            )
        ).all()
        with _LOCK:
            cached = {row.key: _CALENDARS.get((row.id, row.checksum)) for row in rows}
        missing = {row.id: row for row in rows if cached[row.key] is None}
        if missing:
            documents = session.execute(
                select(DefinitionVersion.id, DefinitionVersion.document).where(
                    DefinitionVersion.id.in_(sorted(missing))
                )
            ).all()
            for version_id, document in documents:
                row = missing[version_id]
                try:
                    cached[row.key] = WorkingCalendar.from_document(document)
                except CalendarError:
                    log.exception("calendar %r cannot be used for lights: counting Monday to Friday", row.key)
                    continue
                _remember(_CALENDARS, (row.id, row.checksum), cached[row.key])
        published = {key: calendar for key, calendar in cached.items() if calendar is not None}
    return {key: published.get(key, WEEKDAYS_UTC) for key in keys}


def rules_for(session: Session, version_ids: Iterable[int]) -> dict[int, LightRule]:
    """Return the light rule of each pipeline version (at most two queries, none when cached)."""
    thresholds = _thresholds(session, set(version_ids))
    keys = {calendar for _y, _r, working, calendar in thresholds.values() if working}
    calendars = working_calendars(session, keys) if keys else {}
    return {
        version_id: LightRule(yellow, red, calendars[calendar] if working else None)
        for version_id, (yellow, red, working, calendar) in thresholds.items()
    }


def clear_light_caches() -> None:
    """Forget cached thresholds and calendars (tests, and after restoring a database)."""
    with _LOCK:
        _THRESHOLDS.clear()
        _CALENDARS.clear()


# --- keeping the denormalised light current --------------------------------------------------------------


def earliest_task_dues(session: Session, deal_ids: Sequence[int]) -> dict[int, datetime]:
    """Return, per deal, the earliest due time of its open tasks (deals without one are left out)."""
    if not deal_ids:
        return {}
    rows = session.execute(
        select(Task.deal_id, func.min(Task.due_at))
        .where(Task.deal_id.in_(list(deal_ids)), Task.status == "open", Task.due_at.is_not(None))
        .group_by(Task.deal_id)
    ).all()
    # min() over a type-decorated column comes back naive on SQLite: make it aware like the column.
    return {deal_id: aware(due) for deal_id, due in rows if due is not None}  # type: ignore[misc]


def _state_of(deal: Any, rule: LightRule, task_due: datetime | None, now: datetime) -> LightState:
    if deal.status != "open":
        return CLOSED
    return compute_light(
        rule,
        now=now,
        last_activity_at=deal.last_activity_at,
        stage_entered_at=deal.stage_entered_at,
        next_step_due_at=deal.next_step_due_at,
        task_due_at=task_due,
    )


def refresh_light(session: Session, deal: Deal, *, now: datetime) -> LightState:
    """Recompute a deal's light from its current inputs and store it (in the caller's transaction)."""
    session.flush()  # pending changes to the deal and its tasks are inputs
    if session.get_bind().dialect.name == "postgresql":
        # Serialise with other writers of this deal's light (READ COMMITTED reads the latest inputs after).
        session.execute(
            select(Deal).where(Deal.id == deal.id).with_for_update().execution_options(populate_existing=True)
        )
    rule = rules_for(session, [deal.pipeline_version_id])[deal.pipeline_version_id]
    task_due = earliest_task_dues(session, [deal.id]).get(deal.id) if deal.status == "open" else None
    state = _state_of(deal, rule, task_due, now)
    if (deal.light, deal.overdue_since, deal.light_changes_at) != (
        state.light,
        state.overdue_since,
        state.changes_at,
    ):
        deal.light, deal.overdue_since, deal.light_changes_at = (
            state.light,
            state.overdue_since,
            state.changes_at,
        )
        session.flush()
    return state


def refresh_deal_light(session: Session, deal_id: int | None, *, now: datetime) -> LightState | None:
    """Recompute the light of the deal `deal_id` (no-op for None): a hook for services touching a deal."""
    if deal_id is None:
        return None
    deal = session.get(Deal, deal_id)
    return refresh_light(session, deal, now=now) if deal is not None else None


def stale_lights(deals: Iterable[Deal], *, now: datetime) -> list[Deal]:
    """Return the deals whose stored light may be wrong at `now` when none of its inputs moved.

    With its inputs unchanged a light changes only with time, at `light_changes_at` (that is what it
    records): what the periodic sweep picks up. A light never computed, or one left on a closed deal, is
    stale too.
    """
    stale = []
    for deal in deals:
        if deal.status != "open":
            lingering = deal.light is not None or deal.light_changes_at is not None
            if lingering or deal.overdue_since is not None:
                stale.append(deal)
        elif deal.light is None or (deal.light_changes_at is not None and deal.light_changes_at <= now):
            stale.append(deal)
    return stale


def refresh_lights(session: Session, deals: Sequence[Deal], *, now: datetime) -> int:
    """Recompute the lights of many deals as `refresh_light` does one's; return how many changed.

    On PostgreSQL the deals' rows are locked first (in id order, so two batches cannot deadlock) and re-read;
    then one query reads their open tasks' due times and one UPDATE stores the lights that changed.
    """
    if not deals:
        return 0
    session.flush()  # pending changes to the deals and their tasks are inputs
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(Deal)
            .where(Deal.id.in_(sorted({deal.id for deal in deals})))
            .order_by(Deal.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    rules = rules_for(session, {deal.pipeline_version_id for deal in deals})
    dues = earliest_task_dues(session, [deal.id for deal in deals if deal.status == "open"])
    params: list[dict[str, Any]] = []
    for deal in deals:
        state = _state_of(deal, rules[deal.pipeline_version_id], dues.get(deal.id), now)
        new = {
            "light": state.light,
            "overdue_since": state.overdue_since,
            "light_changes_at": state.changes_at,
        }
        if (deal.light, deal.overdue_since, deal.light_changes_at) == tuple(new.values()):
            continue
        params.append({"b_id": deal.id, **new})
        for key, value in new.items():  # the loaded deal says what the row now says
            set_committed_value(deal, key, value)
    if params:
        table = Deal.__table__
        session.execute(update(table).where(table.c.id == bindparam("b_id")), params)
    return len(params)


@on_stage_change
def light_on_stage_entry(session: Session, change: StageChange) -> None:
    """Recompute the light when a deal enters a stage (created, moved, closed: no light)."""
    refresh_light(session, change.deal, now=change.at)


# --- the sweep: lights that change because time passes ------------------------------------------------


@dataclass
class LightSweep:
    """What one sweep did: deals looked at, lights that changed, and whether more are due."""

    checked: int = 0
    changed: int = 0
    more: bool = False


_SWEPT = (
    Deal.id,
    Deal.pipeline_version_id,
    Deal.status,
    Deal.last_activity_at,
    Deal.stage_entered_at,
    Deal.next_step_due_at,
    Deal.light,
    Deal.overdue_since,
    Deal.light_changes_at,
)


def sweep_lights(session: Session, *, now: datetime, limit: int = SWEEP_BATCH) -> LightSweep:
    """Advance up to `limit` open deals whose `light_changes_at` has passed; never reads their history."""
    result = LightSweep()
    rows = session.execute(
        select(*_SWEPT)
        .where(Deal.light_changes_at <= now, Deal.status == "open")
        .order_by(Deal.light_changes_at, Deal.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    result.more = len(rows) == limit  # a full batch: look again (locking an extra row would hide it)
    if not rows:
        return result
    rules = rules_for(session, [row.pipeline_version_id for row in rows])
    dues = earliest_task_dues(session, [row.id for row in rows])
    params = []
    for row in rows:
        state = _state_of(row, rules[row.pipeline_version_id], dues.get(row.id), now)
        params.append(
            {
                "b_id": row.id,
                "b_seen": row.light_changes_at,
                "light": state.light,
                "overdue_since": state.overdue_since,
                "light_changes_at": state.changes_at,
            }
        )
        result.changed += state.light != row.light
    table = Deal.__table__
    # Conditional: a deal whose light was recomputed since we read it (an activity) keeps the newer value.
    session.execute(
        update(table).where(table.c.id == bindparam("b_id"), table.c.light_changes_at == bindparam("b_seen")),
        params,
    )
    result.checked = len(rows)
    return result


@job(SWEEP_JOB)
def light_sweep(ctx: JobContext) -> dict[str, int | bool]:
    """Advance one batch of lights that time has changed; run again at once when more are due."""
    result = sweep_lights(ctx.session, now=ctx.clock.now(), limit=SWEEP_BATCH)
    if result.more:
        ctx.runtime.jobs.enqueue_after_commit(ctx.session, SWEEP_JOB)
    return {"checked": result.checked, "changed": result.changed, "more": result.more}
