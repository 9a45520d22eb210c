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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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


def today_start(plan: RoutingPlan, now: datetime) -> datetime:
    """Return the start of "today" for daily caps (local midnight of the routing's calendar)."""
    return day_start(now, plan.day_zone)


def _count(*conditions: Any) -> Any:
    return select(func.count()).select_from(_decisions).where(*conditions).scalar_subquery()


def load_snapshot(
    session: Session, plan: RoutingPlan, assignments: Sequence[Assignment], now: datetime
) -> Snapshot:
    """Read the reps who may take a lead from `assignments`, their counts and the cursor; one statement."""
    roles = sorted(set().union(*(a.roles for a in assignments)))
    owner = _decisions.c.owner_id == _users.c.id
    since = today_start(plan, now)
    columns: list[Any] = [
        _users.c.id,
        _users.c.name,
        _users.c.email,
        _users.c.role,
        _users.c.team_id,
        _teams.c.key.label("team_key"),
        _users.c.active,
        _users.c.attributes,
        _users.c.daily_capacity,
        _users.c.unavailable_until,
        _cursors.c.positions,
        _cursors.c.turns,
        _count(owner, _decisions.c.decided_at >= since).label("today_total"),
    ]
    for i, a in enumerate(assignments):
        rule = _decisions.c.rule_key.is_(None) if a.is_fallback else _decisions.c.rule_key == a.key
        columns.append(
            _count(owner, _decisions.c.decided_at >= since, _decisions.c.routing_key == plan.key, rule).label(
                f"scope_{i}"
            )
        )
    need_open = any(a.strategy == "least_loaded" for a in assignments)
    if need_open:
        columns.append(
            select(func.count())
            .select_from(_leads)
            .where(_leads.c.owner_id == _users.c.id, _leads.c.status.in_(OPEN_STATUSES))
            .scalar_subquery()
            .label("open_leads")
        )
    fresh = plan.freshness
    if fresh is not None:
        window = _decisions.c.decided_at >= now - fresh.window
        columns.append(_count(owner, window).label("window_total"))
        stale_after = int(fresh.stale_after.total_seconds())
        columns.append(
            _count(owner, window, _decisions.c.lead_age_seconds > stale_after).label("window_stale")
        )
    stmt = (
        select(*columns)
        .select_from(
            _users.outerjoin(_teams, _teams.c.id == _users.c.team_id).outerjoin(
                _cursors, _cursors.c.routing_key == literal(plan.key)
            )
        )
        .where(_users.c.role.in_(roles))
        .order_by(_users.c.id)
    )
    reps: list[RepState] = []
    positions: dict[str, int] = {}
    turns: int | None = None
    for row in session.execute(stmt).mappings():
        if row["turns"] is not None:
            turns, positions = row["turns"], dict(row["positions"] or {})
        reps.append(
            RepState(
                id=row["id"],
                name=row["name"],
                email=row["email"],
                role=row["role"],
                team_id=row["team_id"],
                team_key=row["team_key"],
                active=bool(row["active"]),
                attributes=row["attributes"] or {},
                daily_capacity=row["daily_capacity"],
                unavailable_until=row["unavailable_until"],
                open_leads=row["open_leads"] if need_open else None,
                today_total=row["today_total"],
                today_scope={a.scope: row[f"scope_{i}"] for i, a in enumerate(assignments)},
                window_total=row["window_total"] if fresh is not None else 0,
                window_stale=row["window_stale"] if fresh is not None else 0,
            )
        )
    return Snapshot(reps, positions, turns)


def advance_cursor(
    session: Session, routing_key: str, positions: dict[str, int], seen_turns: int | None, now: datetime
) -> int | None:
    """Move the routing's cursor from `seen_turns` to the next turn; return it, or None when beaten."""
    if seen_turns is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(_cursors)
            .values(routing_key=routing_key, positions=positions, turns=1, updated_at=now)
            .on_conflict_do_nothing(index_elements=["routing_key"])
            .returning(_cursors.c.turns)
        )
        return session.execute(stmt).scalar()
    stmt = (
        update(_cursors)
        .where(_cursors.c.routing_key == routing_key, _cursors.c.turns == seen_turns)
        .values(positions=positions, turns=_cursors.c.turns + 1, updated_at=now)
        .returning(_cursors.c.turns)
    )
    return session.execute(stmt).scalar()
