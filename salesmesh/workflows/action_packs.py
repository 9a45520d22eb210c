"""Action packs at run time: compiled packs, and the stage-change receiver that schedules and cancels their
steps as durable timers.

A published `action_pack` version is compiled once (`pack_for_version`, cached by version id and
checksum: published and archived versions never change): offsets become timedeltas, `when` conditions
compiled JsonLogic, and each action's params are checked against its plugin's schema fragment and
prepared (templates compiled). When a deal enters a stage (`salesmesh.workflows.stage_signals`), every
pack the stage lists gets one `timers` row per step (kind `action_packs.step`), in the mover's
transaction, with `due_at` computed from the stage entry, an earlier step of the pack or a date field of
the deal, rolled forward to the next working moment of the pack's calendar (else the pipeline's) when
the step is calendar-aware; the dedupe key (deal + stage entry + pack + step) makes a repeated signal
schedule nothing new. Timers pin the pack version. Leaving a stage cancels its pending steps when the
pack says `on_exit: cancel`; entering a stage again restarts the pack (`restart`, pending steps of the
earlier entry cancelled) or schedules only the steps that have not run (`resume`). Firing due steps (the
timer kind, one step or a claimed chunk at a time) is `salesmesh.workflows.action_firing`; listing and
retrying steps is `salesmesh.workflows.action_steps`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from salesmesh.metamodel.conditions import Condition, ConditionError, compile_condition
from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.versions import get_published
from salesmesh.platform.audit import record_event
from salesmesh.platform.timers import (
    CANCELLED,
    PENDING,
    RUNNING,
    Timer,
    schedule_timer,
)
from salesmesh.plugins.spec import (
    ActionConfigError,
    ActionKind,
    action_kinds,
    load_plugins,
)
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from salesmesh.workflows.models import Deal
from salesmesh.workflows.stage_signals import StageChange, on_stage_change

log = logging.getLogger("salesmesh.action_packs")

STEP_KIND = "action_packs.step"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF = timedelta(minutes=5)
CACHE_SIZE = 256
MAX_WALK_DAYS = 800  # how far next_working looks for working time (two years and then some)


class PackUnusable(ValueError):
    """A published pack cannot run; `errors` are [{path, message}] JSON pointers into the document."""

    def __init__(self, key: str, errors: list[dict[str, str]]) -> None:
        super().__init__(
            f"action pack {key!r} cannot run: " + "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        )
        self.errors = errors


@dataclass(frozen=True)
class CompiledStep:
    """One step of a compiled pack."""

    key: str
    index: int
    label: Mapping[str, str]
    offset: timedelta
    relative_to: str  # stage_entry | step | date_field
    anchor: str | None  # the earlier step (relative_to "step") or the date field (relative_to "date_field")
    calendar_aware: bool
    condition: Condition | None
    kind: ActionKind
    prepared: Any = field(repr=False)
    max_attempts: int
    backoff: timedelta


@dataclass(frozen=True)
class CompiledPack:
    version_id: int
    key: str
    number: int
    label: Mapping[str, str]
    calendar_key: str | None
    on_exit: str  # cancel | keep
    on_reentry: str  # restart | resume
    steps: tuple[CompiledStep, ...]
    by_key: Mapping[str, CompiledStep] = field(repr=False)


def compile_pack(document: Mapping[str, Any], *, version_id: int, number: int = 0) -> CompiledPack:
    """Compile an action-pack document (raise PackUnusable naming every problem by JSON pointer)."""
    kinds = action_kinds()
    errors: list[dict[str, str]] = []
    steps: list[CompiledStep] = []
    for index, raw in enumerate(document.get("steps") or ()):
        base = f"/steps/{index}"
        offset_doc = raw.get("offset") or {}
        if "after_minutes" in offset_doc:
            offset = timedelta(minutes=offset_doc["after_minutes"])
        else:
            offset = timedelta(hours=offset_doc.get("after_hours", 0))
        relative_to = offset_doc.get("relative_to", "stage_entry")
        anchor = offset_doc.get("step") if relative_to == "step" else offset_doc.get("field")
        condition = None
        if raw.get("when") is not None:
            try:
                condition = compile_condition(raw["when"], base_path=base + "/when")
            except ConditionError as exc:
                errors.extend({"path": e["path"], "message": e["message"]} for e in exc.errors)
        action = raw.get("action") or {}
        try:
            kind = kinds.get(action.get("kind", ""))
            prepared = kind.prepared(action.get("params") or {}, base + "/action/params")
        except ActionConfigError as exc:
            errors.append({"path": exc.pointer, "message": exc.message})
            continue
        except LookupError as exc:
            errors.append({"path": base + "/action/kind", "message": str(exc)})
            continue
        retry = raw.get("retry") or {}
        steps.append(
            CompiledStep(
                key=raw["key"],
                index=index,
                label=raw.get("label") or {},
                offset=offset,
                relative_to=relative_to,
                anchor=anchor,
                calendar_aware=bool(raw.get("calendar_aware", False)),
                condition=condition,
                kind=kind,
                prepared=prepared,
                max_attempts=int(retry.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
                backoff=timedelta(minutes=retry["backoff_minutes"])
                if "backoff_minutes" in retry
                else DEFAULT_BACKOFF,
            )
        )
    if errors:
        raise PackUnusable(str(document.get("key")), errors)
    return CompiledPack(
        version_id=version_id,
        key=str(document["key"]),
        number=number,
        label=document.get("label") or {},
        calendar_key=document.get("calendar"),
        on_exit=document.get("on_exit", "cancel"),
        on_reentry=document.get("on_reentry", "restart"),
        steps=tuple(steps),
        by_key={s.key: s for s in steps},
    )


class _Cache:
    """A small thread-safe LRU of compiled objects keyed by (immutable) definition version."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


_packs = _Cache(CACHE_SIZE)
_calendars = _Cache(CACHE_SIZE)


def _frozen_version(session: Session, version_id: int, kind: str) -> DefinitionVersion:
    version = session.get(DefinitionVersion, version_id, options=[joinedload(DefinitionVersion.definition)])
    if version is None or version.definition.kind != kind:
        raise LookupError(f"{kind} version {version_id} does not exist")
    if version.status == "draft":
        raise LookupError(f"{kind} version {version_id} is a draft; only published versions run")
    return version


def pack_for_version(session: Session, version_id: int) -> CompiledPack:
    """Return the compiled pack of a published (or archived) version, compiled once per process."""
    # Checked against the database once per session (a sweep chunk), then trusted: another database
    # (tests, a restored backup) may reuse the id, so the cache key carries the version's checksum.
    checked: dict[int, Any] = session.info.setdefault("action_packs.checked", {})
    key = checked.get(version_id)
    if key is not None:
        cached = _packs.get(key)
        if cached is not None:
            return cached
    version = _frozen_version(session, version_id, "action_pack")
    key = checked[version_id] = (version.id, version.checksum)
    cached = _packs.get(key)
    if cached is not None:
        return cached
    return _packs.put(key, compile_pack(version.document, version_id=version.id, number=version.number))


def calendar_named(session: Session, key: str | None) -> WorkingCalendar | None:
    """Return the published working calendar `key` (None when unnamed, unpublished or unusable)."""
    if not key:
        return None
    version = get_published(session, "calendar", key)
    if version is None:
        log.warning("calendar %r is not published: calendar-aware steps use their raw due time", key)
        return None
    cached = _calendars.get((version.id, version.checksum))
    if cached is not None:
        return cached
    try:
        return _calendars.put((version.id, version.checksum), WorkingCalendar.from_document(version.document))
    except CalendarError:
        log.exception("calendar %r cannot be used: calendar-aware steps use their raw due time", key)
        return None


def next_working(calendar: WorkingCalendar, at: datetime) -> datetime:
    """Return `at` when it is working time on `calendar`, else the start of the next working period."""
    if calendar.is_working(at):
        return at
    day = at.astimezone(calendar.tz).date()
    for _ in range(MAX_WALK_DAYS):
        midnight = datetime.combine(day, time(0), tzinfo=calendar.tz)
        for first, last in calendar.hours_on(day):
            # Wall-clock minutes to UTC one by one, so days with an offset change stay right.
            begin = (midnight + timedelta(minutes=first)).astimezone(UTC)
            end = (midnight + timedelta(minutes=last)).astimezone(UTC)
            if begin < end and end > at:
                return max(begin, at)
        day += timedelta(days=1)
    raise CalendarError(
        f"calendar {calendar.key!r} has no working time in the {MAX_WALK_DAYS} days after {at}"
    )


# --- when each step is due ------------------------------------------------------------------------


def field_moment(deal: Deal, name: str, calendar: WorkingCalendar | None) -> datetime | None:
    """Return the moment a deal's date (or date-time) field names: a date means local midnight."""
    value: Any = (deal.data or {}).get(name)
    if value is None and name == "expected_close":
        value = deal.expected_close
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return None
    tz = calendar.tz if calendar is not None else UTC
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=tz).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)
    return None


def step_due(
    step: CompiledStep,
    *,
    entered_at: datetime,
    deal: Deal,
    calendar: WorkingCalendar | None,
    earlier: Mapping[str, datetime | None],
) -> datetime | None:
    """Return when `step` is due (None: its date field is empty or its anchor step is not scheduled)."""
    if step.relative_to == "stage_entry":
        base: datetime | None = entered_at
    elif step.relative_to == "step":
        base = earlier.get(step.anchor or "")
    else:
        base = field_moment(deal, step.anchor or "", calendar)
    if base is None:
        return None
    due = base + step.offset
    if step.calendar_aware and calendar is not None:
        try:
            due = next_working(calendar, due)
        except CalendarError:
            log.exception("step %r keeps its raw due time", step.key)
    return due


def due_times(
    pack: CompiledPack, *, entered_at: datetime, deal: Deal, calendar: WorkingCalendar | None
) -> dict[str, datetime | None]:
    """Return every step's due time for a stage entry, in step order (anchors come earlier)."""
    dues: dict[str, datetime | None] = {}
    for step in pack.steps:
        dues[step.key] = step_due(step, entered_at=entered_at, deal=deal, calendar=calendar, earlier=dues)
    return dues


# --- scheduling on stage changes ------------------------------------------------------------------


def iso_utc(at: datetime) -> str:
    """Return `at` in UTC as ISO 8601 text (how payloads store stage entries and due times)."""
    return at.astimezone(UTC).isoformat()


def dedupe_key(deal_id: int, stage: str, entered_at: datetime, pack_key: str, step_key: str) -> str:
    """Return the dedupe key of one step of one stage entry (the same signal twice schedules once)."""
    digest = hashlib.sha256(f"{stage}\0{iso_utc(entered_at)}\0{pack_key}\0{step_key}".encode()).hexdigest()
    return f"ap:{deal_id}:{digest[:40]}"


def deal_step_timers(session: Session, deal_id: int) -> list[Timer]:
    """Return every step timer of a deal (one indexed query), oldest first."""
    return list(
        session.scalars(
            select(Timer)
            .where(Timer.subject_type == "deal", Timer.subject_id == deal_id, Timer.kind == STEP_KIND)
            .order_by(Timer.id)
        )
    )


def _cancel(session: Session, timer_ids: list[int]) -> int:
    if not timer_ids:
        return 0
    stmt = (
        update(Timer)
        .where(Timer.id.in_(timer_ids), Timer.status.in_((PENDING, RUNNING)))
        .values(status=CANCELLED, lease_owner=None, lease_until=None, dedupe_key=None)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(stmt).rowcount


def pipeline_stage(
    deal: Deal, session: Session, stage_key: str
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Return (pipeline document, stage document) for the deal's pinned pipeline version."""
    pipeline = session.get(DefinitionVersion, deal.pipeline_version_id)
    document: Mapping[str, Any] = pipeline.document if pipeline is not None else {}
    for stage in document.get("stages") or ():
        if stage.get("key") == stage_key:
            return document, stage
    return document, {}


@on_stage_change
def on_deal_stage_change(session: Session, change: StageChange) -> None:
    """Cancel the left stage's pending steps (per pack) and schedule the entered stage's packs."""
    deal = change.deal
    existing = deal_step_timers(session, deal.id)
    cancelled = 0
    if change.from_stage is not None and change.from_stage != change.to_stage:
        cancelled = leave_stage(session, existing, change.from_stage)
    scheduled = enter_stage(session, change, existing)
    if cancelled or scheduled:
        record_event(
            session,
            at=change.at,
            actor_id=change.actor_id,
            action="action_pack.schedule",
            object_type="deals",
            object_id=deal.id,
            payload={
                "from": change.from_stage,
                "to": change.to_stage,
                "scheduled": scheduled,
                "cancelled": cancelled,
            },
        )


def leave_stage(session: Session, existing: list[Timer], stage_key: str) -> int:
    """Cancel the pending steps of `stage_key` whose pack says `on_exit: cancel`; return how many."""
    doomed = []
    for timer in existing:
        if timer.status not in (PENDING, RUNNING) or timer.payload.get("stage") != stage_key:
            continue
        try:
            on_exit = pack_for_version(session, timer.payload["pack_version"]).on_exit
        except (LookupError, PackUnusable):
            on_exit = "cancel"
        if on_exit == "cancel":
            doomed.append(timer.id)
    return _cancel(session, doomed)


def enter_stage(session: Session, change: StageChange, existing: list[Timer]) -> int:
    """Schedule the steps of every pack the entered stage lists; return how many timers are new."""
    deal = change.deal
    pipeline, stage = pipeline_stage(deal, session, change.to_stage)
    count = 0
    for pack_key in stage.get("action_packs") or ():
        version = get_published(session, "action_pack", pack_key)
        if version is None:
            log.warning("stage %r names action pack %r, which is not published", change.to_stage, pack_key)
            continue
        try:
            pack = pack_for_version(session, version.id)
        except PackUnusable as exc:
            log.error("%s", exc)
            record_event(
                session,
                at=change.at,
                actor_id=change.actor_id,
                action="action_pack.unusable",
                object_type="deals",
                object_id=deal.id,
                payload={"pack": pack_key, "version": version.number, "errors": exc.errors},
            )
            continue
        calendar = calendar_named(session, pack.calendar_key or pipeline.get("calendar"))
        count += _schedule_pack(session, change, pack, calendar, existing)
    return count


def _schedule_pack(
    session: Session,
    change: StageChange,
    pack: CompiledPack,
    calendar: WorkingCalendar | None,
    existing: list[Timer],
) -> int:
    deal, entry = change.deal, iso_utc(change.at)
    earlier = [
        t
        for t in existing
        if t.payload.get("stage") == change.to_stage
        and t.payload.get("pack") == pack.key
        and t.payload.get("entered_at") != entry
    ]
    skip: set[str] = set()
    if pack.on_reentry == "restart":
        _cancel(session, [t.id for t in earlier if t.status in (PENDING, RUNNING)])
    else:  # resume: steps that ran (or still wait, kept from the earlier entry) are not scheduled again
        skip = {t.payload.get("step") for t in earlier if t.status not in (CANCELLED, "failed")}
    dues = due_times(pack, entered_at=change.at, deal=deal, calendar=calendar)
    known = {t.id for t in existing}
    count = 0
    for step in pack.steps:
        due = dues[step.key]
        if due is None or step.key in skip:
            continue
        timer = schedule_timer(
            session,
            kind=STEP_KIND,
            due_at=due,
            payload={
                "deal": deal.id,
                "stage": change.to_stage,
                "entered_at": entry,
                "pack": pack.key,
                "pack_version": pack.version_id,
                "step": step.key,
                "retry_backoff_seconds": int(step.backoff.total_seconds()),
            },
            subject=("deal", deal.id),
            dedupe_key=dedupe_key(deal.id, change.to_stage, change.at, pack.key, step.key),
            max_attempts=step.max_attempts,
            now=change.at,
        )
        count += timer.id not in known
    return count


# Every process that can schedule or fire steps imports this module at start-up (the web app, and workers
# and schedulers through TASK_MODULES): a duplicate or missing action kind stops it here, not at a step.
load_plugins()

# The step timer kind lives with the code that fires steps; importing it here registers it wherever steps
# are scheduled (schedule_timer refuses unknown kinds). Last, because that module imports this one.
import salesmesh.workflows.action_firing  # noqa: E402, F401
