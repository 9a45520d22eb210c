"""Routing state in the database: the reps snapshot with their counts, and the round-robin cursor.

Counts are derived, not kept: "routed to this rep today" (in total, and from the deciding rule),
"stale/total in the freshness window" and "open leads" are correlated subqueries over
`routing_decisions` (index `owner_id, decided_at`) and `leads` (index `owner_id, status`), read together
with the reps, their teams and the routing's cursor row in ONE statement whatever the number of reps.
Why not a `rep_daily_loads` counter table: it would be a second write per decision that can drift from
the decisions it counts, and per-rule caps would need a counter per rule; the decisions already carry
owner, rule and time. "Today" starts at local midnight of the routing's SLA calendar (UTC without one).

Counting is what a snapshot costs, so the engine reads one rule at a time (`load_candidates`): every rep
of the rule's roles with their own columns, sorted in Python into the rule's candidates and the others
(by team and candidate filter, for the explanation), and counts for the candidates only — which ones is
known from the rule's previous snapshot, given to the statement as one JSON array parameter; a rep who
fits now but was not counted (new, or edited since) makes the statement run again, counting them. A rep's
own columns come as one JSON text per row (`_own_columns`: one value for the driver to hand over instead
of ten), remembered with what they say and the rule's verdict until the text changes. The statements are
compiled once per shape and dialect and sent through the driver (`rows.Prepared`).

Fairness under concurrency comes from `advance_cursor`: every assigning decision moves the routing's
`round_robin_cursors` row with one conditional statement, `UPDATE ... SET turns = turns + 1 ... WHERE
routing_key = :key AND turns = :seen RETURNING turns` (an `INSERT ... ON CONFLICT DO NOTHING` for the
first turn). On PostgreSQL a second transaction's UPDATE waits for the first to commit and then matches
no row, so it re-reads the snapshot (which now includes the first decision) and tries again; on SQLite
writers are serialised (open the transaction with `Database.ImmediateSession` when routing from several
threads before anything else was written). Every successful turn was therefore decided on a snapshot
that contained every earlier decision of the same routing: no two leads take the same turn, nobody is
skipped, and daily caps hold exactly (within one routing definition: two routings sharing reps take
turns on separate rows, so a rep's `daily_capacity` could be passed by one lead when both route to them
at the same instant).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from salesmesh.platform.db import UTCDateTime
from salesmesh.platform.models import Team, User
from salesmesh.platform.rows import Prepared
from salesmesh.workflows.calendars import day_start
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_decide import OPEN_STATUSES, RepState, Unfit, candidate_verdict
from salesmesh.workflows.routing_models import RoundRobinCursor, RoutingDecision
from salesmesh.workflows.routing_plan import Assignment, RoutingPlan

_users = User.__table__
_teams = Team.__table__
_leads = Lead.__table__
_decisions = RoutingDecision.__table__
_cursors = RoundRobinCursor.__table__


@dataclass
class Snapshot:
    reps: list[RepState]
    positions: dict[str, int]
    turns: int | None  # None: the routing has no cursor row yet
    cooling: frozenset[int] = frozenset()  # reps in claim cooldown (when a cooldown clause was given)
    # Set when `reps` are only the candidates of the rules named (`load_candidates`): the other reps.
    unfit: dict[str, Unfit] | None = None


def today_start(plan: RoutingPlan, now: datetime) -> datetime:
    """Return the start of "today" for daily caps (local midnight of the routing's calendar)."""
    return day_start(now, plan.day_zone)


def _count(*conditions: Any) -> Any:
    return select(func.count()).select_from(_decisions).where(*conditions).scalar_subquery()


# Snapshot statements by shape (roles, rules, strategies, freshness, cooldown clause): built once, run with
# bind parameters, so a decision costs the query and not its construction.
_QUERIES: dict[tuple[Any, ...], Prepared] = {}
_QUERIES_LOCK = threading.Lock()
QUERIES_SIZE = 256
_NOW = bindparam("now", type_=UTCDateTime())
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_cursor_row = _cursors.c.routing_key == bindparam("routing_key")
_SINCE = bindparam("since", type_=UTCDateTime())
_WINDOW = bindparam("window_start", type_=UTCDateTime())


def _constants(values: Sequence[str]) -> list[Any]:
    """Inline string constants for an IN list (an expanding parameter is re-rendered at every execution)."""
    for value in values:
        if not _NAME.fullmatch(value):
            raise ValueError(f"not a plain name: {value!r}")
    return [literal_column(f"'{value}'") for value in values]


def _gate(dialect: str) -> ColumnElement[bool]:
    """`users.id` is one of the ids given as ONE parameter (a JSON array), whatever their number."""
    ids = bindparam("ids", type_=String())
    if dialect == "postgresql":
        listed = func.json_array_elements_text(cast(ids, JSON)).table_valued("value")
        return _users.c.id.in_(select(cast(listed.c.value, Integer)))
    listed = func.json_each(ids).table_valued("value")
    return _users.c.id.in_(select(listed.c.value))


def _own_columns(dialect: str) -> ColumnElement[str]:
    """A rep's own columns as ONE JSON text: [id, name, email, role, team id, team key, active, attributes
    (as JSON text), daily capacity, unavailable until]. One value per row for the driver to hand over (not
    ten), and the key under which what it says is remembered (`_known`)."""
    own = [
        _users.c.id,
        _users.c.name,
        _users.c.email,
        _users.c.role,
        _users.c.team_id,
        _teams.c.key,
        _users.c.active,
        cast(_users.c.attributes, Text),
        _users.c.daily_capacity,
        _users.c.unavailable_until,
    ]
    if dialect == "postgresql":
        return cast(func.json_build_array(*own), Text)
    return func.json_array(*own)


def _snapshot_query(
    assignments: Sequence[Assignment],
    fresh: bool,
    exclude_lead: bool,
    cooldown: Callable[[ColumnElement[datetime]], ColumnElement[bool]] | None,
    dialect: str,
    *,
    gated: bool = False,
) -> Prepared:
    """The snapshot statement: a header row (sort key 0) with the routing's cursor, then one row per rep of
    the roles with their own columns and counts. `gated`: rep rows only for the reps in the `ids`
    parameter, the others' own columns joined into one text in the header (what is not counted costs
    neither a row nor a count)."""
    roles = tuple(sorted(set().union(*(a.roles for a in assignments))))
    need_open = any(a.strategy == "least_loaded" for a in assignments)
    scopes = tuple((a.key, a.is_fallback) for a in assignments)
    key = (roles, scopes, need_open, fresh, exclude_lead, cooldown, dialect, gated)
    stmt = _QUERIES.get(key)
    if stmt is not None:
        return stmt
    role_list = _constants(roles)
    owner = _decisions.c.owner_id == _users.c.id
    today = _decisions.c.decided_at >= _SINCE
    counted: list[Any] = [_count(owner, today).label("today_total")]
    for i, (rule_key, is_fallback) in enumerate(scopes):
        rule = _decisions.c.rule_key.is_(None) if is_fallback else _decisions.c.rule_key == rule_key
        routing = _decisions.c.routing_key == bindparam("routing_key")
        counted.append(_count(owner, today, routing, rule).label(f"scope_{i}"))
    if need_open:
        mine = [_leads.c.owner_id == _users.c.id, _leads.c.status.in_(_constants(OPEN_STATUSES))]
        if exclude_lead:
            mine.append(_leads.c.id != bindparam("lead_id"))
        counted.append(
            select(func.count()).select_from(_leads).where(*mine).scalar_subquery().label("open_leads")
        )
    if fresh:
        window = _decisions.c.decided_at >= _WINDOW
        counted.append(_count(owner, window).label("window_total"))
        stale = _decisions.c.lead_age_seconds > bindparam("stale_after")
        counted.append(_count(owner, window, stale).label("window_stale"))
    if cooldown is not None:
        counted.append(cooldown(_NOW).label("cooling"))
    of_roles = _users.c.role.in_(role_list)
    with_teams = _users.outerjoin(_teams, _teams.c.id == _users.c.team_id)
    text, number = cast(null(), Text), cast(null(), Integer)
    others: Any = text
    if gated:
        # Ordered so that an unchanged roster gives the same text (compared, not parsed, when unchanged).
        listed = (
            select(_own_columns(dialect).label("own"))
            .select_from(with_teams)
            .where(of_roles, ~_gate(dialect))
            .order_by(_users.c.id)
            .subquery()
        )
        joined = func.string_agg if dialect == "postgresql" else func.group_concat
        others = select(joined(listed.c.own, literal_column(_SEPARATOR_SQL[dialect]))).scalar_subquery()
    header = select(
        literal_column("0").label("k"),
        text.label("own"),
        others.label("others"),
        select(cast(_cursors.c.positions, Text)).where(_cursor_row).scalar_subquery().label("positions"),
        select(_cursors.c.turns).where(_cursor_row).scalar_subquery().label("turns"),
        *[cast(null(), Boolean if c.name == "cooling" else Integer).label(c.name) for c in counted],
    )
    reps = (
        select(_users.c.id.label("k"), _own_columns(dialect).label("own"), text, text, number, *counted)
        .select_from(with_teams)
        .where(of_roles, *([_gate(dialect)] if gated else []))
    )
    stmt = Prepared(union_all(header, reps).order_by(literal_column("k")))
    with _QUERIES_LOCK:
        if len(_QUERIES) >= QUERIES_SIZE:
            _QUERIES.clear()
        _QUERIES[key] = stmt
    return stmt


# Between the reps' own-column texts in the header (JSON escapes control characters: never inside one).
SEPARATOR = "\x1e"
_SEPARATOR_SQL = {"postgresql": "chr(30)", "sqlite": "char(30)"}


_ATTRIBUTES: dict[str, Mapping[str, Any]] = {}
ATTRIBUTES_SIZE = 4096
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _attributes(raw: str | None) -> Mapping[str, Any]:
    """A rep's attributes from their JSON text, parsed once per distinct text (read-only)."""
    if not raw:
        return _EMPTY
    found = _ATTRIBUTES.get(raw)
    if found is None:
        if len(_ATTRIBUTES) >= ATTRIBUTES_SIZE:
            _ATTRIBUTES.clear()
        found = _ATTRIBUTES[raw] = MappingProxyType(json.loads(raw))
    return found


def _dialect(session: Session) -> str:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def _params(plan: RoutingPlan, now: datetime, lead_id: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"since": today_start(plan, now), "routing_key": plan.key, "now": now}
    if lead_id is not None:
        params["lead_id"] = lead_id
    fresh = plan.freshness
    if fresh is not None:
        params["window_start"] = now - fresh.window
        params["stale_after"] = int(fresh.stale_after.total_seconds())
    return params


class _Reader:
    """Turns snapshot rows, as the driver returns them, into `RepState`s (columns: `_snapshot_query`)."""

    def __init__(self, plan: RoutingPlan, assignments: Sequence[Assignment], cooldown: bool) -> None:
        fresh = plan.freshness is not None
        need_open = any(a.strategy == "least_loaded" for a in assignments)
        self.defaults = plan.attribute_defaults
        self.scopes = [(a.scope, 6 + i) for i, a in enumerate(assignments)]
        self.several, self.scope = len(assignments) > 1, assignments[0].scope
        extra = 6 + len(assignments)  # open_leads, window_total, window_stale, cooling follow, as present
        self.open_at = extra if need_open else None
        self.window_at = extra + need_open if fresh else None
        self.cooling_at = extra + need_open + 2 * fresh if cooldown else None
        self.turns: int | None = None
        self.raw_positions: str | None = None
        self.cooling: set[int] = set()

    def cursor(self, header: Any) -> None:
        """Note the routing's cursor from the header row."""
        self.raw_positions, self.turns = header[3], header[4]

    def rep(self, row: Any, known: _Known | None = None) -> RepState:
        """The rep of one row, with its counts (its claim cooldown noted)."""
        if known is None:
            known = _known(row[1], self.defaults)
        if self.cooling_at is not None and row[self.cooling_at]:
            self.cooling.add(known[1])
        open_at, window_at = self.open_at, self.window_at
        # Positional, in `RepState`'s field order (this runs for every candidate of every decision).
        return RepState(
            known[1],
            known[2],
            known[4],
            known[5],
            known[6],
            known[7],
            known[8],
            known[9],
            known[10],
            known[3],
            row[open_at] if open_at is not None else None,
            row[5],
            {scope: row[at] for scope, at in self.scopes} if self.several else {self.scope: row[6]},
            row[window_at] if window_at is not None else 0,
            row[window_at + 1] if window_at is not None else 0,
            known[11],  # what candidate filters read: built once per version of the rep's own columns
            self.defaults,
        )

    def snapshot(self, reps: list[RepState], unfit: dict[str, Unfit] | None = None) -> Snapshot:
        positions = dict(json.loads(self.raw_positions)) if self.raw_positions else {}
        return Snapshot(reps, positions, self.turns, frozenset(self.cooling), unfit)


# What one version of a rep's own columns says: (attribute defaults, id, name, email, role, team id, team
# key, active, attributes, daily capacity, unavailable until, `RepState.filter_data`).
_Known = tuple[Any, ...]
_KNOWN: dict[str, _Known] = {}  # by the own columns' JSON text (`_own_columns`), shared read-only


def _known(own: str, defaults: Mapping[str, Any]) -> _Known:
    known = _KNOWN.get(own)
    if known is None or known[0] is not defaults:
        ident, name, email, role, team_id, team_key, active, attributes, capacity, away = json.loads(own)
        attrs = _attributes(attributes)
        if away is not None:  # "YYYY-MM-DD HH:MM:SS.ffffff" (SQLite) or ISO 8601 (PostgreSQL), naive UTC
            away = datetime.fromisoformat(away).replace(tzinfo=UTC)
        rep = RepState(ident, name, role, team_id, team_key, bool(active), attrs, email=email)
        if len(_KNOWN) >= ATTRIBUTES_SIZE:
            _KNOWN.clear()
        known = _KNOWN[own] = (
            defaults,
            ident,
            name,
            email,
            role,
            team_id,
            team_key,
            bool(active),
            attrs,
            capacity,
            away,
            rep.filter_data(defaults),
        )
    return known


def load_snapshot(
    session: Session,
    plan: RoutingPlan,
    assignments: Sequence[Assignment],
    now: datetime,
    *,
    lead_id: int | None = None,
    cooldown: Callable[[ColumnElement[datetime]], ColumnElement[bool]] | None = None,
) -> Snapshot:
    """Read the reps who may take a lead from `assignments`, their counts and the cursor; one statement.

    `lead_id`: the lead being routed, never counted among its owner's open leads. `cooldown(now)`: a
    condition on `users.id` (given `now` as a bound parameter) true for reps in claim cooldown, read as
    one more column.
    """
    fresh, exclude_lead = plan.freshness is not None, lead_id is not None
    stmt = _snapshot_query(assignments, fresh, exclude_lead, cooldown, _dialect(session))
    reader = _Reader(plan, assignments, cooldown is not None)
    # One fetchall, not a fetch per rep: the header row, then the reps.
    rows = stmt.execute(session, _params(plan, now, lead_id)).all()
    reader.cursor(rows[0])
    return reader.snapshot([reader.rep(row) for row in rows[1:]])


@dataclass
class _Roster:
    """Who was a candidate of one rule at the last snapshot: a verdict per version of a rep's own columns."""

    plan: RoutingPlan
    verdicts: dict[str, tuple[str | None, _Known]]  # by own columns: (why not a candidate, the rep's)
    # The candidates counted last time, in id order, and the same as the statement's parameter (one
    # attribute: threads share rosters); None until known.
    counted: tuple[tuple[int, ...], str] | None = None
    # The header's text of the reps not counted, and their (verdict, what they say), as last parsed.
    others: tuple[str, list[tuple[str | None, _Known]]] | None = None


def _verdict(roster: _Roster, own: str, a: Assignment, now: datetime) -> tuple[str | None, _Known]:
    """Why a rep (by their own columns' text) is not a candidate of `a` (None: they are), remembered."""
    defaults = roster.plan.attribute_defaults
    known = _known(own, defaults)
    rep = RepState(known[1], known[2], known[4], known[5], known[6], known[7], known[8], email=known[3])
    verdict = candidate_verdict(a, rep, defaults, {}, now)
    if len(roster.verdicts) >= ATTRIBUTES_SIZE:
        roster.verdicts.clear()
    seen = roster.verdicts[own] = (verdict, known)
    return seen


_ROSTERS: dict[tuple[str, int | None, str], _Roster] = {}
MAX_RECOUNTS = 3


def narrows(a: Assignment) -> bool:
    """Tell whether `load_candidates` can serve `a`: its filter reads only the rep (not the lead or time)."""
    return a.filter is None or not (a.filter_reads_lead or a.filter.needs_now)


def load_candidates(
    session: Session,
    plan: RoutingPlan,
    a: Assignment,
    now: datetime,
    *,
    lead_id: int | None = None,
    cooldown: Callable[[ColumnElement[datetime]], ColumnElement[bool]] | None = None,
) -> Snapshot:
    """Read the candidates of one rule (role, team, filter) with their counts, and the cursor; one statement.

    Every rep of the rule's roles is read and sorted into candidates and the others (`Snapshot.unfit`,
    for the explanation) by the same tests a decision applies; only the candidates get `RepState`s and
    only they are counted. Which reps to count is known from the previous snapshot of the rule (verdicts
    are kept per version of a rep's own columns, so an edited rep is tested again): when a rep who fits
    now was not counted — a new or edited rep — the statement runs again counting them, so a decision
    never reads an incomplete count. `a` must satisfy `narrows(a)`.
    """
    slot = (plan.key, plan.version_id, a.scope)
    roster = _ROSTERS.get(slot)
    if roster is None or roster.plan is not plan:
        if len(_ROSTERS) >= QUERIES_SIZE:
            _ROSTERS.clear()
        roster = _ROSTERS[slot] = _Roster(plan, {})
    verdicts = roster.verdicts
    params = _params(plan, now, lead_id)
    fresh, exclude_lead, cooling = plan.freshness is not None, lead_id is not None, cooldown is not None
    dialect = _dialect(session)
    for attempt in range(MAX_RECOUNTS + 1):
        # Count the reps who fitted last time; the last attempt counts everybody.
        last = roster.counted if attempt < MAX_RECOUNTS else None
        counted = last[0] if last is not None else None
        gated = last is not None
        stmt = _snapshot_query([a], fresh, exclude_lead, cooldown, dialect, gated=gated)
        if last is not None:
            params["ids"] = last[1]
        reader = _Reader(plan, [a], cooling)
        reps: list[RepState] = []
        not_team: list[int] = []
        not_filter: list[int] = []
        header, *rows = stmt.execute(session, params).all()
        reader.cursor(header)
        rep = reader.rep
        for row in rows:
            own = row[1]  # the rep's own columns, as one JSON text
            seen = verdicts.get(own) or _verdict(roster, own, a, now)
            verdict, known = seen
            if verdict is None:
                reps.append(rep(row, known))
            elif verdict == "team":
                not_team.append(known[1])
            else:  # "filter" (the statement reads the rule's roles only)
                not_filter.append(known[1])
        fits = [rep.id for rep in reps]  # in id order, as the statement returns them
        if header[2] is not None:  # the reps not counted: who they are is all a decision needs of them
            others = roster.others
            if others is None or others[0] != header[2]:
                parsed = [
                    verdicts.get(own) or _verdict(roster, own, a, now) for own in header[2].split(SEPARATOR)
                ]
                others = roster.others = (header[2], parsed)
            for verdict, known in others[1]:
                if verdict is None:
                    fits.append(known[1])  # fits now, not counted: count again
                elif verdict == "team":
                    not_team.append(known[1])
                else:
                    not_filter.append(known[1])
            not_team.sort()
            not_filter.sort()
        ids = tuple(sorted(fits))
        if ids != counted:
            roster.counted = (ids, json.dumps(ids))
        if len(fits) == len(reps):  # every rep who fits was counted
            return reader.snapshot(reps, {a.scope: Unfit(tuple(not_team), tuple(not_filter))})
    raise AssertionError("unreachable: the last attempt counts everybody")


_TURN = Prepared(
    update(_cursors)
    .where(_cursors.c.routing_key == bindparam("key"), _cursors.c.turns == bindparam("seen"))
    .values(positions=bindparam("positions"), turns=_cursors.c.turns + 1, updated_at=bindparam("now"))
    .returning(_cursors.c.turns)
)
_FIRST_TURN = {
    name: Prepared(
        dialect.insert(_cursors)
        .values(
            routing_key=bindparam("key"),
            positions=bindparam("positions"),
            turns=1,
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["routing_key"])
        .returning(_cursors.c.turns)
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def advance_cursor(
    session: Session, routing_key: str, positions: dict[str, int], seen_turns: int | None, now: datetime
) -> int | None:
    """Move the routing's cursor from `seen_turns` to the next turn; return it, or None when beaten."""
    params = {"key": routing_key, "positions": positions, "now": now}
    if seen_turns is None:
        stmt = _FIRST_TURN[_dialect(session)]
        return stmt.execute(session, params).scalar()
    return _TURN.execute(session, {**params, "seen": seen_turns}).scalar()
