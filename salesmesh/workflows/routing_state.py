"""Routing state in the database: the reps snapshot with their counts, and the round-robin cursor.

Counts are derived, not kept: "routed to this rep today" (in total, and from the deciding rule),
"stale/total in the freshness window" and "open leads" are correlated subqueries over
`routing_decisions` (index `owner_id, decided_at`) and `leads` (index `owner_id, status`), read together
with the reps, their teams and the routing's cursor row in ONE statement whatever the number of reps.
Why not a `rep_daily_loads` counter table: it would be a second write per decision that can drift from
the decisions it counts, and per-rule caps would need a counter per rule; the decisions already carry
owner, rule and time. "Today" starts at local midnight of the routing's SLA calendar (UTC without one).

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
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from salesmesh.platform.db import UTCDateTime
from salesmesh.platform.models import Team, User
from salesmesh.workflows.calendars import day_start
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_decide import OPEN_STATUSES, RepState
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


def today_start(plan: RoutingPlan, now: datetime) -> datetime:
    """Return the start of "today" for daily caps (local midnight of the routing's calendar)."""
    return day_start(now, plan.day_zone)


def _count(*conditions: Any) -> Any:
    return select(func.count()).select_from(_decisions).where(*conditions).scalar_subquery()


# Snapshot statements by shape (roles, rules, strategies, freshness, cooldown clause): built once, run with
# bind parameters, so a decision costs the query and not its construction.
_QUERIES: dict[tuple[Any, ...], Any] = {}
_QUERIES_LOCK = threading.Lock()
QUERIES_SIZE = 256
_NOW = bindparam("now", type_=UTCDateTime())
_SINCE = bindparam("since", type_=UTCDateTime())
_WINDOW = bindparam("window_start", type_=UTCDateTime())


def _snapshot_query(
    assignments: Sequence[Assignment],
    fresh: bool,
    exclude_lead: bool,
    cooldown: Callable[[ColumnElement[datetime]], ColumnElement[bool]] | None,
) -> Any:
    roles = tuple(sorted(set().union(*(a.roles for a in assignments))))
    need_open = any(a.strategy == "least_loaded" for a in assignments)
    scopes = tuple((a.key, a.is_fallback) for a in assignments)
    key = (roles, scopes, need_open, fresh, exclude_lead, cooldown)
    stmt = _QUERIES.get(key)
    if stmt is not None:
        return stmt
    owner = _decisions.c.owner_id == _users.c.id
    today = _decisions.c.decided_at >= _SINCE
    columns: list[Any] = [
        _users.c.id,
        _users.c.name,
        _users.c.email,
        _users.c.role,
        _users.c.team_id,
        _teams.c.key.label("team_key"),
        _users.c.active,
        # JSON as text: parsed once per distinct value (`_attributes`), the cursor's once per snapshot.
        cast(_users.c.attributes, Text).label("attributes"),
        _users.c.daily_capacity,
        _users.c.unavailable_until,
        cast(_cursors.c.positions, Text).label("positions"),
        _cursors.c.turns,
        _count(owner, today).label("today_total"),
    ]
    for i, (rule_key, is_fallback) in enumerate(scopes):
        rule = _decisions.c.rule_key.is_(None) if is_fallback else _decisions.c.rule_key == rule_key
        routing = _decisions.c.routing_key == bindparam("routing_key")
        columns.append(_count(owner, today, routing, rule).label(f"scope_{i}"))
    if need_open:
        mine = [_leads.c.owner_id == _users.c.id, _leads.c.status.in_(OPEN_STATUSES)]
        if exclude_lead:
            mine.append(_leads.c.id != bindparam("lead_id"))
        columns.append(
            select(func.count()).select_from(_leads).where(*mine).scalar_subquery().label("open_leads")
        )
    if fresh:
        window = _decisions.c.decided_at >= _WINDOW
        columns.append(_count(owner, window).label("window_total"))
        stale = _decisions.c.lead_age_seconds > bindparam("stale_after")
        columns.append(_count(owner, window, stale).label("window_stale"))
    if cooldown is not None:
        columns.append(cooldown(_NOW).label("cooling"))
    stmt = (
        select(*columns)
        .select_from(
            _users.outerjoin(_teams, _teams.c.id == _users.c.team_id).outerjoin(
                _cursors, _cursors.c.routing_key == bindparam("routing_key")
            )
        )
        .where(_users.c.role.in_(roles))
        .order_by(_users.c.id)
    )
    with _QUERIES_LOCK:
        if len(_QUERIES) >= QUERIES_SIZE:
            _QUERIES.clear()
        _QUERIES[key] = stmt
    return stmt


_ATTRIBUTES: dict[str, Mapping[str, Any]] = {}
ATTRIBUTES_SIZE = 4096
_EMPTY: Mapping[str, Any] = MappingProxyType({})
# (the rep's own columns) -> (attribute defaults, `RepState.filter_data`), shared read-only by snapshots.
_FILTER_DATA: dict[tuple[Any, ...], tuple[Mapping[str, Any], dict[str, Any]]] = {}


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
    fresh = plan.freshness
    stmt = _snapshot_query(assignments, fresh is not None, lead_id is not None, cooldown)
    params: dict[str, Any] = {"since": today_start(plan, now), "routing_key": plan.key, "now": now}
    if lead_id is not None:
        params["lead_id"] = lead_id
    if fresh is not None:
        params["window_start"] = now - fresh.window
        params["stale_after"] = int(fresh.stale_after.total_seconds())
    need_open = any(a.strategy == "least_loaded" for a in assignments)
    scopes = [(a.scope, 13 + i) for i, a in enumerate(assignments)]
    extra = 13 + len(assignments)  # open_leads, window_total, window_stale, cooling follow, as present
    open_at = extra if need_open else None
    window_at = extra + need_open if fresh is not None else None
    cooling_at = extra + need_open + 2 * (fresh is not None) if cooldown is not None else None
    reps: list[RepState] = []
    positions: dict[str, int] = {}
    turns: int | None = None
    cooling: set[int] = set()
    raw_positions = None
    defaults = plan.attribute_defaults
    for row in session.execute(stmt, params).all():  # one fetchall, not a fetch per rep
        if row[11] is not None:
            turns, raw_positions = row[11], row[10]
        if cooling_at is not None and row[cooling_at]:
            cooling.add(row[0])
        rep = RepState(
            id=row[0],
            name=row[1],
            email=row[2],
            role=row[3],
            team_id=row[4],
            team_key=row[5],
            active=bool(row[6]),
            attributes=_attributes(row[7]),
            daily_capacity=row[8],
            unavailable_until=row[9],
            open_leads=row[open_at] if open_at is not None else None,
            today_total=row[12],
            today_scope={scope: row[at] for scope, at in scopes},
            window_total=row[window_at] if window_at is not None else 0,
            window_stale=row[window_at + 1] if window_at is not None else 0,
        )
        # What candidate filters read depends on the rep's own columns only: built once per version of them.
        key = (row[0], row[1], row[2], row[3], row[5], row[6], row[7])
        known = _FILTER_DATA.get(key)
        if known is not None and known[0] is defaults:
            rep._data, rep._defaults = known[1], defaults
        else:
            if len(_FILTER_DATA) >= ATTRIBUTES_SIZE:
                _FILTER_DATA.clear()
            _FILTER_DATA[key] = (defaults, rep.filter_data(defaults))
        reps.append(rep)
    if raw_positions:
        positions = dict(json.loads(raw_positions))
    return Snapshot(reps, positions, turns, frozenset(cooling))


_TURN = (
    update(_cursors)
    .where(_cursors.c.routing_key == bindparam("key"), _cursors.c.turns == bindparam("seen"))
    .values(positions=bindparam("positions"), turns=_cursors.c.turns + 1, updated_at=bindparam("now"))
    .returning(_cursors.c.turns)
)
_FIRST_TURN = {
    name: dialect.insert(_cursors)
    .values(
        routing_key=bindparam("key"), positions=bindparam("positions"), turns=1, updated_at=bindparam("now")
    )
    .on_conflict_do_nothing(index_elements=["routing_key"])
    .returning(_cursors.c.turns)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def advance_cursor(
    session: Session, routing_key: str, positions: dict[str, int], seen_turns: int | None, now: datetime
) -> int | None:
    """Move the routing's cursor from `seen_turns` to the next turn; return it, or None when beaten."""
    params = {"key": routing_key, "positions": positions, "now": now}
    if seen_turns is None:
        stmt = _FIRST_TURN["postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"]
        return session.execute(stmt, params).scalar()
    return session.execute(_TURN, {**params, "seen": seen_turns}).scalar()
