"""A routing definition compiled for the runtime: the `RoutingPlan`.

`compile_routing(document, ...)` turns a routing document into frozen `Assignment`s (its rules in
order, then the fallback) whose conditions are compiled once (`salesmesh.metamodel.conditions`): the
rule's `when` reads the lead's fields, the candidate filter and weight filters read the rep's
attributes. `plan_for_version(session, version)` does that for a stored version (published or draft),
reading what the document names — the rep-attribute defaults, the SLA calendar, and every published
calendar (a rep whose attributes carry `calendar: <key>` works on that calendar) — and caches the plan
by the version id and checksum plus those definitions' ids and checksums, so a change to any of them
compiles a new plan. `current_plan(session, form_key=...)` finds the published routing for a lead form
with one query; `current_plan_and_form` also returns that form's published version in the same query
(what intake needs). Nothing here writes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from threading import Lock
from typing import Any

from sqlalchemy import bindparam, literal_column, or_, select
from sqlalchemy.orm import Session

from salesmesh.metamodel.conditions import Condition, ConditionError, compile_condition
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.rows import Prepared
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from salesmesh.workflows.sla import SlaPolicy, compile_sla

FALLBACK_SCOPE = "~fallback"  # rule keys are names ([a-z][a-z0-9_]*), so this never clashes
DEFAULT_ROLES = frozenset({"rep"})
CACHE_SIZE = 64


class RoutingUnavailable(LookupError):
    """No usable routing for a lead: none published, several candidates, or the document does not compile."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass(frozen=True)
class Assignment:
    """One rule (or the fallback): where a matching lead goes and who may take it."""

    scope: str  # the rule key, or FALLBACK_SCOPE
    key: str | None
    index: int | None
    label: Mapping[str, str] | None
    enabled: bool
    when: Condition | None
    channel: str
    strategy: str
    pool: str | None
    filter: Condition | None
    filter_reads_lead: bool
    teams: frozenset[str] | None
    roles: frozenset[str]
    weights: tuple[tuple[Condition, float], ...]
    default_weight: float
    daily_cap: int | None
    notify: tuple[str, ...] = ()

    @property
    def is_fallback(self) -> bool:
        return self.key is None


@dataclass(frozen=True)
class Freshness:
    """Freshness balancing: a stale lead skips reps whose stale share in the window would pass the limit."""

    stale_after: timedelta
    window: timedelta
    max_stale_share: float


@dataclass(frozen=True)
class RoutingPlan:
    key: str
    version_id: int | None
    version_number: int | None
    checksum: str | None
    form_key: str
    rules: tuple[Assignment, ...]
    fallback: Assignment
    respect_working_hours: bool
    calendar: WorkingCalendar | None  # the SLA calendar: default working hours, and the day boundary
    calendars: Mapping[str, WorkingCalendar]  # every published calendar, for reps with their own
    attribute_defaults: Mapping[str, Any]
    freshness: Freshness | None
    day_zone: tzinfo
    document: Mapping[str, Any] = field(repr=False, compare=False)
    # (rule index, compiled `when` test) of the enabled rules, and every rule key in order.
    checks: tuple[tuple[int, Any], ...] = field(default=(), repr=False, compare=False)
    rule_keys: tuple[str, ...] = field(default=(), repr=False, compare=False)
    disabled: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # The first-response SLA (None: the routing sets none), compiled with its calendar.
    sla: SlaPolicy | None = field(default=None, repr=False, compare=False)

    def match(self, facts: Mapping[str, Any], now: datetime) -> tuple[Assignment | None, dict[str, Any]]:
        """Return the first enabled rule whose `when` holds for the lead (or None) and the trace.

        The trace is compact (it is stored with every decision): `evaluated`, the keys of the rules
        looked at in order (the last one matched when `matched` is set), plus the `disabled` ones among
        them and `errors` ({key: message}) for rules that could not be evaluated (they count as no match).
        """
        errors: dict[str, str] | None = None
        keys = self.rule_keys
        for index, test in self.checks:
            try:
                if test(facts, now):  # the compiled closure: (data, now)
                    return self.rules[index], self._trace(index + 1, keys[index], errors)
            except ConditionError as exc:
                errors = errors or {}
                errors[keys[index]] = str(exc)[:300]
        return None, self._trace(len(keys), None, errors)

    def _trace(self, count: int, matched: str | None, errors: dict[str, str] | None) -> dict[str, Any]:
        trace: dict[str, Any] = {"evaluated": list(self.rule_keys[:count]), "matched": matched}
        disabled = [key for key in self.disabled if key in trace["evaluated"]] if self.disabled else None
        if disabled:
            trace["disabled"] = disabled
        if errors:
            trace["errors"] = errors
        return trace

    def assignment(self, scope: str) -> Assignment:
        """Return the rule whose scope is `scope`, or the fallback."""
        if scope == FALLBACK_SCOPE:
            return self.fallback
        return next(rule for rule in self.rules if rule.scope == scope)

    @property
    def channel_labels(self) -> dict[str, Mapping[str, str]]:
        return {c["key"]: c.get("label", {}) for c in self.document.get("channels", ())}


def _reads_lead(condition: Condition | None) -> bool:
    if condition is None:
        return False
    return any(v in ("", "lead") or v.startswith("lead.") for v in condition.variables)


def _assignment(
    item: Mapping[str, Any], path: str, index: int | None, notify: tuple[str, ...] = ()
) -> Assignment:
    candidates = item.get("candidates") or {}
    flt = (
        compile_condition(candidates["filter"], base_path=f"{path}/candidates/filter")
        if "filter" in candidates
        else None
    )
    weights = tuple(
        (compile_condition(w["filter"], base_path=f"{path}/weights/{wi}/filter"), float(w["weight"]))
        for wi, w in enumerate(item.get("weights") or ())
    )
    teams = candidates.get("teams")
    return Assignment(
        scope=item["key"] if index is not None else FALLBACK_SCOPE,
        key=item["key"] if index is not None else None,
        index=index,
        label=item.get("label"),
        enabled=item.get("enabled", True) if index is not None else True,
        when=compile_condition(item["when"], base_path=f"{path}/when") if index is not None else None,
        channel=item["channel"],
        strategy=item["strategy"],
        pool=item.get("pool"),
        filter=flt,
        filter_reads_lead=_reads_lead(flt) or any(_reads_lead(c) for c, _w in weights),
        teams=frozenset(teams) if teams else None,
        roles=frozenset(candidates.get("roles") or DEFAULT_ROLES),
        weights=weights,
        default_weight=float(item.get("default_weight", 1)),
        daily_cap=item.get("daily_cap"),
        notify=notify,
    )


def compile_routing(
    document: Mapping[str, Any],
    *,
    version_id: int | None = None,
    version_number: int | None = None,
    checksum: str | None = None,
    attribute_defaults: Mapping[str, Any] | None = None,
    calendars: Mapping[str, WorkingCalendar] | None = None,
) -> RoutingPlan:
    """Compile a routing document into a plan; raise RoutingUnavailable naming what does not compile."""
    calendars = dict(calendars or {})
    try:
        rules = tuple(_assignment(rule, f"/rules/{i}", i) for i, rule in enumerate(document["rules"]))
        fb = document["fallback"]
        fallback = _assignment(fb, "/fallback", None, tuple(fb.get("notify") or ()))
    except ConditionError as exc:
        raise RoutingUnavailable(
            f"routing {document.get('key')!r} does not compile: {exc}", exc.errors
        ) from exc
    except (KeyError, TypeError) as exc:
        raise RoutingUnavailable(f"routing {document.get('key')!r} is malformed: missing {exc}") from exc
    sla_calendar = (document.get("first_response_sla") or {}).get("calendar")
    calendar = calendars.get(sla_calendar) if sla_calendar else None
    fresh = document.get("freshness_balancing") or {}
    freshness = None
    if fresh.get("enabled"):
        freshness = Freshness(
            stale_after=timedelta(hours=float(fresh.get("stale_after_hours", 24))),
            window=timedelta(hours=float(fresh.get("window_hours", 168))),
            max_stale_share=float(fresh.get("max_stale_share", 0.5)),
        )
    return RoutingPlan(
        key=document["key"],
        version_id=version_id,
        version_number=version_number,
        checksum=checksum,
        form_key=document.get("form", ""),
        rules=rules,
        fallback=fallback,
        respect_working_hours=bool(document.get("respect_working_hours", False)),
        calendar=calendar,
        calendars=calendars,
        attribute_defaults=dict(attribute_defaults or {}),
        freshness=freshness,
        day_zone=calendar.tz if calendar is not None else UTC,
        document=document,
        checks=tuple((i, r.when.test) for i, r in enumerate(rules) if r.enabled and r.when is not None),
        rule_keys=tuple(r.key for r in rules if r.key is not None),
        disabled=frozenset(r.key for r in rules if not r.enabled and r.key is not None),
        sla=compile_sla(document.get("first_response_sla"), calendar),
    )


# --- stored versions -----------------------------------------------------------------------------

_CACHE: OrderedDict[tuple[Any, ...], RoutingPlan] = OrderedDict()
# (published rows, form key) -> what current_plan_and_form answered for them.
_CHOICES: dict[tuple[Any, ...], tuple[RoutingPlan, PublishedVersion | None]] = {}
_CACHE_LOCK = Lock()


@dataclass(frozen=True)
class PublishedVersion:
    """The identity of a published definition version (enough to find its compiled form in a cache)."""

    id: int
    kind: str
    key: str
    checksum: str


ROUTING_KINDS = ("routing", "rep_attributes", "calendar")  # what a plan is compiled from


def _published_query(forms: bool, extra: bool) -> Prepared:
    # Built once per shape and sent through the driver with bind parameters: this runs on every intake.
    # The kinds are inline constants (an expanding IN parameter would be re-rendered at every execution).
    versions, definitions = DefinitionVersion.__table__, Definition.__table__
    kinds = (*ROUTING_KINDS, "form") if forms else ROUTING_KINDS
    wanted = (versions.c.status == "published") & definitions.c.kind.in_(
        [literal_column(f"'{kind}'") for kind in kinds]
    )
    if extra:
        wanted = or_(wanted, (versions.c.id == bindparam("extra")) & (definitions.c.kind == "form"))
    return Prepared(
        select(versions.c.id, definitions.c.kind, definitions.c.key, versions.c.checksum)
        .select_from(versions.join(definitions, definitions.c.id == versions.c.definition_id))
        .where(wanted)
        .order_by(versions.c.id)
    )


_PUBLISHED_QUERIES = {
    (forms, extra): _published_query(forms, extra) for forms in (False, True) for extra in (False, True)
}


def _published(
    session: Session, *, extra_version_id: int | None = None, forms: bool = False
) -> list[PublishedVersion]:
    """One query: ids and checksums of the published routings, rep attributes and calendars (and forms)."""
    query = _PUBLISHED_QUERIES[(forms, extra_version_id is not None)]
    rows = query.execute(session, {"extra": extra_version_id} if extra_version_id is not None else {})
    return [PublishedVersion(*row) for row in rows]


def _documents(session: Session, ids: list[int]) -> dict[int, DefinitionVersion]:
    if not ids:
        return {}
    return {v.id: v for v in session.scalars(select(DefinitionVersion).where(DefinitionVersion.id.in_(ids)))}


def _defaults(document: Mapping[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["default"] for a in document.get("attributes", ()) if "default" in a}


def _build(session: Session, version: DefinitionVersion, deps: list[PublishedVersion]) -> RoutingPlan:
    """Compile `version` with its calendars and rep-attribute defaults (one query for their documents)."""
    named = version.document.get("rep_attributes")
    attrs = [d for d in deps if d.kind == "rep_attributes" and (named is None or d.key == named)]
    wanted = [d for d in deps if d.kind == "calendar"] + attrs[-1:]  # the newest, when none is named
    docs = _documents(session, [d.id for d in wanted])
    calendars: dict[str, WorkingCalendar] = {}
    defaults: dict[str, Any] = {}
    for dep in wanted:
        doc = docs[dep.id].document
        if dep.kind == "rep_attributes":
            defaults = _defaults(doc)
            continue
        try:
            calendars[dep.key] = WorkingCalendar.from_document(doc)
        except CalendarError as exc:
            raise RoutingUnavailable(f"calendar {dep.key!r} cannot be used: {exc}") from exc
    return compile_routing(
        version.document,
        version_id=version.id,
        version_number=version.number,
        checksum=version.checksum,
        attribute_defaults=defaults,
        calendars=calendars,
    )


def _plan(
    session: Session,
    ident: tuple[int, str],
    deps: list[PublishedVersion],
    version: DefinitionVersion | None = None,
) -> RoutingPlan:
    # Any published rep-attributes or calendar change makes a new key: plans never outlive what they read.
    key = (*ident, tuple((d.id, d.checksum) for d in deps))
    with _CACHE_LOCK:
        plan = _CACHE.get(key)
        if plan is not None:
            _CACHE.move_to_end(key)
            return plan
    if version is None:
        version = session.get(DefinitionVersion, ident[0])
    if version is None:
        raise RoutingUnavailable(f"routing version {ident[0]} does not exist")
    plan = _build(session, version, deps)
    with _CACHE_LOCK:
        _CACHE[key] = plan
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return plan


def plan_for_version(session: Session, version: DefinitionVersion) -> RoutingPlan:
    """Compile a stored routing version (published or draft) with the definitions it reads; cached."""
    if version.definition.kind != "routing":
        raise RoutingUnavailable(
            f"definition version {version.id} is a {version.definition.kind}, not a routing"
        )
    deps = [p for p in _published(session) if p.kind in ("rep_attributes", "calendar")]
    return _plan(session, (version.id, version.checksum), deps, version)


def current_plan(
    session: Session, *, form_key: str | None = None, form_version_id: int | None = None
) -> RoutingPlan:
    """Return the plan of the published routing for a lead form (by key or form version id); one query.

    The routing whose `form` is the lead's form wins; without one (or for a lead without a form) the only
    published routing is used, and several are an error.
    """
    published = _published(session, extra_version_id=form_version_id)
    if form_version_id is not None and form_key is None:
        form_key = next((p.key for p in published if p.id == form_version_id and p.kind == "form"), None)
    return _choose(session, published, form_key)


def current_plan_and_form(
    session: Session, *, form_key: str | None = None
) -> tuple[RoutingPlan, PublishedVersion | None]:
    """Return `current_plan(form_key=...)` and the published version of the form it reads; one query.

    Intake uses it to find both definitions it needs with a single statement (the form version's
    compiled spec is then cached by id and checksum); the form is None when the plan's form is not
    published.
    """
    rows = tuple(tuple(row) for row in _PUBLISHED_QUERIES[(True, False)].execute(session, {}))
    # The same published set (ids and checksums) gives the same answer: skip re-deriving it per intake.
    key = (rows, form_key)
    found = _CHOICES.get(key)
    if found is not None:
        return found
    published = [PublishedVersion(*row) for row in rows]
    plan = _choose(session, published, form_key)
    form = next((p for p in published if p.kind == "form" and p.key == plan.form_key), None)
    with _CACHE_LOCK:
        if len(_CHOICES) >= CACHE_SIZE:
            _CHOICES.clear()
        _CHOICES[key] = (plan, form)
    return plan, form


def _choose(session: Session, published: list[PublishedVersion], form_key: str | None) -> RoutingPlan:
    routings = [p for p in published if p.kind == "routing"]
    if not routings:
        raise RoutingUnavailable("no routing definition is published")
    deps = [p for p in published if p.kind in ("rep_attributes", "calendar")]
    plans = [_plan(session, (r.id, r.checksum), deps) for r in routings]
    if form_key is not None:
        for_form = [p for p in plans if p.form_key == form_key]
        if len(for_form) == 1:
            return for_form[0]
        if len(for_form) > 1:
            raise RoutingUnavailable(f"several published routings read form {form_key!r}")
    if len(plans) == 1:
        return plans[0]
    raise RoutingUnavailable(
        "several routing definitions are published; name the lead form to choose one"
        if form_key is None
        else f"no published routing reads form {form_key!r}"
    )


def clear_plan_cache() -> None:
    """Forget every compiled plan (tests, and after restoring a database)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _CHOICES.clear()


def lead_facts(lead: Any) -> dict[str, Any]:
    """Return the data a rule's `when` reads: the lead's standard columns, overlaid by its form data."""
    facts: dict[str, Any] = {
        "institution_name": lead.institution,
        "institution_grade": lead.institution_grade,
        "region": lead.region,
        "phone": lead.phone,
        "email": lead.email,
        "campaign": lead.campaign,
        "source_channel": lead.source_channel,
    }
    facts = {k: v for k, v in facts.items() if v is not None}
    facts.update(lead.data or {})
    received = getattr(lead, "received_at", None)
    if isinstance(received, datetime):
        facts.setdefault("received_at", received.isoformat())
    return facts
