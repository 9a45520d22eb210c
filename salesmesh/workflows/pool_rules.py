"""Pool definitions compiled for the runtime: the `PoolRules` of a published (or pinned) pool version.

`pool_rules(session, key)` reads the published `pool` definition `key` and compiles it once per version
and checksum, together with the definitions it reads (the cooldown's working calendar, the zone its days
start in, the rep-attribute defaults its claim filter sees); any change to those compiles new rules.
`rules_for_version(session, version_id)` does the same for the version a claim pinned (it may be archived
since). `published_pools(session)` lists every published pool. One query finds the ids and checksums; a
cache miss costs one more for the documents. Nothing here writes. Refusals of pool operations are
`PoolError`s carrying a stable code, an HTTP status and a bilingual message.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from threading import Lock
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from salesmesh.metamodel.conditions import Condition, ConditionError, compile_condition
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.i18n import N_
from salesmesh.platform.rep_attributes import field_error
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar

CACHE_SIZE = 64


class PoolError(Exception):
    """A refused pool operation: stable `code`, HTTP `status`, `errors` [{path, message, message_zh}]."""

    status = 422

    def __init__(self, code: str, message: str, *, path: str = "", **params: Any) -> None:
        self.code = code
        self.errors = [field_error(path, message, **params)]
        super().__init__(self.errors[0]["message"])

    def text(self, locale: str) -> str:
        """Return the message in `locale` (en or zh)."""
        first = self.errors[0]
        return (first.get("message_zh") if locale == "zh" else None) or first["message"]


class PoolUnavailable(PoolError):
    """The pool is not published, or its definition cannot be used."""

    status = 404


@dataclass(frozen=True)
class PoolRules:
    """One pool version, ready to apply: who may claim, caps, the cooldown and the release rules."""

    key: str
    version_id: int
    label: Mapping[str, str]
    description: Mapping[str, str] | None
    form_key: str | None
    roles: frozenset[str]
    teams: frozenset[str] | None
    filter: Condition | None
    claim_cap: int | None
    daily_cap: int | None
    protection: timedelta | None
    followup: timedelta
    qualifying: tuple[str, ...]
    unavailable: timedelta
    calendar: WorkingCalendar | None  # the cooldown's calendar: durations count its working time
    day_zone: tzinfo  # where "today" starts for the daily cap
    attribute_defaults: Mapping[str, Any]
    release_allowed: bool
    reason_required: bool

    def after(self, start: datetime, span: timedelta) -> datetime:
        """Return when `span` has passed after `start` (working time on the calendar, else wall time)."""
        if self.calendar is None:
            return start + span
        return self.calendar.add_working_time(start, span)


@dataclass(frozen=True)
class _Published:
    id: int
    kind: str
    key: str
    checksum: str


_CACHE: OrderedDict[tuple[Any, ...], PoolRules] = OrderedDict()
_CACHE_LOCK = Lock()


def _published(
    session: Session, *, pool_key: str | None = None, version_id: int | None = None
) -> list[_Published]:
    """One query: ids and checksums of the published calendars and rep attributes, plus the published
    pools (only `pool_key` when given) or, with `version_id`, that one pool version whatever its status."""
    clauses = [Definition.kind.in_(("calendar", "rep_attributes"))]
    if version_id is None:
        pools = Definition.kind == "pool"
        clauses.append(pools if pool_key is None else pools & (Definition.key == pool_key))
    wanted = (DefinitionVersion.status == "published") & or_(*clauses)
    if version_id is not None:
        wanted = or_(wanted, DefinitionVersion.id == version_id)
    rows = session.execute(
        select(DefinitionVersion.id, Definition.kind, Definition.key, DefinitionVersion.checksum)
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(wanted)
        .order_by(DefinitionVersion.id)
    ).all()
    return [_Published(*row) for row in rows]


def _hours(value: Any) -> timedelta:
    return timedelta(hours=float(value or 0))


def _compile(pool: _Published, docs: Mapping[int, Mapping[str, Any]], deps: list[_Published]) -> PoolRules:
    doc = docs[pool.id]
    who = doc.get("who_may_claim") or {}
    cooldown = doc.get("cooldown") or {}
    release = doc.get("release") or {}
    calendars = {d.key: d for d in deps if d.kind == "calendar"}
    named = cooldown.get("calendar")
    if named is not None and named not in calendars:
        raise PoolUnavailable(
            "pool_unavailable",
            N_("Pool %(pool)s counts working time on calendar %(calendar)s, which is not published."),
            pool=pool.key,
            calendar=named,
        )
    try:
        calendar = WorkingCalendar.from_document(docs[calendars[named].id]) if named else None
        # Days start in the pool's calendar zone, else in that of the first published calendar.
        zone_source = calendar or (
            WorkingCalendar.from_document(docs[calendars[min(calendars)].id]) if calendars else None
        )
        flt = compile_condition(who["filter"], base_path="/who_may_claim/filter") if "filter" in who else None
    except (CalendarError, ConditionError) as exc:
        raise PoolUnavailable(
            "pool_unavailable",
            N_("Pool %(pool)s cannot be used: %(problem)s"),
            pool=pool.key,
            problem=str(exc),
        ) from exc
    attrs = [d for d in deps if d.kind == "rep_attributes"][-1:]
    defaults = {
        a["key"]: a["default"] for d in attrs for a in docs[d.id].get("attributes", ()) if "default" in a
    }
    protection = doc.get("protection_hours")
    teams = who.get("teams")
    return PoolRules(
        key=pool.key,
        version_id=pool.id,
        label=doc.get("label") or {"en": pool.key},
        description=doc.get("description"),
        form_key=doc.get("form"),
        roles=frozenset(who.get("roles") or ("rep",)),
        teams=frozenset(teams) if teams else None,
        filter=flt,
        claim_cap=doc.get("claim_cap_per_rep"),
        daily_cap=doc.get("daily_claim_cap"),
        protection=_hours(protection) if protection else None,
        followup=_hours(cooldown.get("no_followup_hours")),
        qualifying=tuple(cooldown.get("qualifying_activities") or ()),
        unavailable=_hours(cooldown.get("unavailable_hours")),
        calendar=calendar,
        day_zone=zone_source.tz if zone_source is not None else UTC,
        attribute_defaults=defaults,
        release_allowed=bool(release.get("manual_release_allowed", True)),
        reason_required=bool(release.get("reason_required", False)),
    )


def _rules(session: Session, pool: _Published, deps: list[_Published]) -> PoolRules:
    # Any published calendar or rep-attributes change makes a new key: rules never outlive what they read.
    key = (pool.id, pool.checksum, tuple((d.id, d.checksum) for d in deps))
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    # One query for the pool and the calendar / attribute documents it might read (few and small).
    ids = [pool.id, *(d.id for d in deps)]
    docs = dict(
        session.execute(
            select(DefinitionVersion.id, DefinitionVersion.document).where(DefinitionVersion.id.in_(ids))
        ).all()
    )
    rules = _compile(pool, docs, deps)
    with _CACHE_LOCK:
        _CACHE[key] = rules
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return rules


def pool_rules(session: Session, key: str) -> PoolRules:
    """Return the rules of the published pool `key`, or raise PoolUnavailable."""
    published = _published(session, pool_key=key)
    pools = [p for p in published if p.kind == "pool"]
    if not pools:
        raise PoolUnavailable("pool_unavailable", N_("Pool %(pool)s is not published."), pool=key)
    return _rules(session, pools[-1], [p for p in published if p.kind != "pool"])


def rules_for_version(session: Session, version_id: int) -> PoolRules:
    """Return the rules of pool version `version_id` (a claim's pinned version, maybe archived since)."""
    published = _published(session, version_id=version_id)
    pools = [p for p in published if p.id == version_id and p.kind == "pool"]
    if not pools:
        raise PoolUnavailable("pool_unavailable", N_("Pool version %(id)s does not exist."), id=version_id)
    return _rules(session, pools[0], [p for p in published if p.kind != "pool"])


def published_pools(session: Session) -> list[PoolRules]:
    """Return the rules of every published pool, by key."""
    published = _published(session)
    deps = [p for p in published if p.kind != "pool"]
    rules = []
    for pool in (p for p in published if p.kind == "pool"):
        try:
            rules.append(_rules(session, pool, deps))
        except PoolUnavailable:
            continue  # an unusable pool is left out of lists; opening it names the problem
    return sorted(rules, key=lambda r: r.key)


def clear_rules_cache() -> None:
    """Forget every compiled pool (tests, and after restoring a database)."""
    with _CACHE_LOCK:
        _CACHE.clear()
