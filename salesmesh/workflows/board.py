"""The team board: every rep × every stage of one pipeline with the lights of their open deals.

`load_board(session, actor, query, now=...)` answers one board: the teams the actor may look at (a lead
the teams they lead, ops and admins any team or all teams; reps have no board), the pipelines, one row
per rep (the team's active reps, plus anyone else owning an open deal there, plus "unassigned") and one
column per open stage of the pipeline's published version (stages only older pinned versions have come
after), each cell counting green, yellow and red deals, with totals per rep and per stage; and one page
of the deals themselves, filtered by stage, light and rep, most at risk first (red, then yellow, then
green; within a light, longest overdue first) or by rep or stage.

The board reads only the columns `salesmesh.workflows.lights` keeps on the deal (`light`,
`overdue_since`); it never reads activities or tasks, so its cost does not grow with a deal's history.
Its statement count is fixed: the teams, one aggregate over the team's open deals (by pipeline, rep,
stage and light), the published pipelines, the chosen pipeline's versions, the rows' people, at most
three index-ordered reads for the deal page (one per light it spans, sized from the aggregate) and at
most two for the rules that turn `overdue_since` into days late. Every deal query goes through the
policy on top of the team filter.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import Team, User
from salesmesh.workflows.lights import rules_for
from salesmesh.workflows.models import LIGHTS, Deal

PAGE_SIZE = 50
RISK_ORDER = ("red", "yellow", "green", None)  # None: a deal whose light was never computed
SORTS = ("risk", "rep", "stage")
SORT_NAMES = {"risk": N_("Most at risk first"), "rep": N_("By rep"), "stage": N_("By stage")}
UNASSIGNED = 0  # the row (and `rep` filter value) of deals without an owner


class BoardError(ValueError):
    """A board parameter that cannot be used; `path` names it (a JSON pointer into the query)."""

    def __init__(self, path: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.params = params


@dataclass(frozen=True)
class BoardQuery:
    """What the board shows: a team (None: all teams, or the lead's own), a pipeline, filters, a page."""

    team_id: int | None = None
    pipeline_key: str | None = None
    stage: str | None = None
    light: str | None = None
    rep: int | None = None  # a user id, or UNASSIGNED
    sort: str = "risk"
    page: int = 1


@dataclass
class Cell:
    """Open deals by light."""

    green: int = 0
    yellow: int = 0
    red: int = 0
    unlit: int = 0  # light never computed (should not stay so for long: the sweep colours them)

    def add(self, light: str | None, count: int) -> None:
        """Count `count` deals of `light`."""
        name = light if light in LIGHTS else "unlit"
        setattr(self, name, getattr(self, name) + count)

    @property
    def total(self) -> int:
        return self.green + self.yellow + self.red + self.unlit


@dataclass
class RepRow:
    """One row of the board: a person (None: unassigned) and their cells by stage key."""

    user: User | None
    cells: dict[str, Cell] = field(default_factory=lambda: defaultdict(Cell))
    total: Cell = field(default_factory=Cell)

    @property
    def key(self) -> int:
        return self.user.id if self.user is not None else UNASSIGNED


@dataclass(frozen=True)
class StageColumn:
    key: str
    label: Mapping[str, str]
    total: Cell
    current: bool  # a stage of the published version (False: only older pinned versions have it)


@dataclass(frozen=True)
class DealRow:
    deal: Deal
    stage_label: Mapping[str, str]
    days_late: float


@dataclass(frozen=True)
class Board:
    query: BoardQuery
    teams: list[Team]
    team: Team | None
    may_see_all: bool
    pipelines: list[tuple[str, Mapping[str, str]]]
    pipeline_key: str | None
    stages: list[StageColumn]
    rows: list[RepRow]
    totals: Cell
    deals: list[DealRow]
    matching: int  # deals the filters match (over every page)
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.matching // self.page_size))


# --- teams and pipelines -----------------------------------------------------------------------------


def _teams(session: Session, actor: User, all_teams: bool) -> list[Team]:
    stmt = select(Team).order_by(Team.key)
    if not all_teams:  # a lead: their own team and any team naming them as its lead
        mine = [Team.id == actor.team_id] if actor.team_id is not None else []
        stmt = stmt.where(or_(Team.lead_id == actor.id, *mine))
    return list(session.scalars(stmt))


def _pick_team(actor: User, teams: list[Team], query: BoardQuery, may_see_all: bool) -> Team | None:
    if query.team_id is not None:
        team = next((t for t in teams if t.id == query.team_id), None)
        if team is None:
            raise BoardError("/team", N_("Unknown team."))
        return team
    if may_see_all:
        return None  # ops and admins start with every team
    own = next((t for t in teams if t.id == actor.team_id), None)
    return own or (teams[0] if teams else None)


def _published_pipelines(session: Session) -> dict[str, Mapping[str, Any]]:
    rows = session.execute(
        select(Definition.key, DefinitionVersion.document)
        .join(DefinitionVersion.definition)
        .where(Definition.kind == "pipeline", DefinitionVersion.status == "published")
        .order_by(Definition.key)
    ).all()
    return {key: document or {} for key, document in rows}


def _versions(session: Session, key: str) -> list[tuple[int, str, Mapping[str, Any]]]:
    """Return (id, status, document) of every version of pipeline `key`, oldest first."""
    rows = session.execute(
        select(DefinitionVersion.id, DefinitionVersion.status, DefinitionVersion.document)
        .join(DefinitionVersion.definition)
        .where(Definition.kind == "pipeline", Definition.key == key)
        .order_by(DefinitionVersion.number)
    ).all()
    return [(row.id, row.status, row.document or {}) for row in rows]


def _stage_labels(versions: Sequence[tuple[int, str, Mapping[str, Any]]]) -> dict[str, Mapping[str, str]]:
    labels: dict[str, Mapping[str, str]] = {}
    for _id, status, document in versions:
        if status == "draft":
            continue
        for stage in document.get("stages") or ():
            labels[stage["key"]] = stage.get("label") or {"en": stage["key"], "zh": stage["key"]}
    return labels  # newer versions overwrite older labels


def _open_stage_keys(document: Mapping[str, Any]) -> list[str]:
    return [s["key"] for s in document.get("stages") or () if s.get("outcome", "open") == "open"]


# --- the board ----------------------------------------------------------------------------------------


def _scoped_open_deals(actor: User, team: Team | None) -> Any:
    stmt = select(Deal).where(Deal.status == "open")
    if team is not None:
        stmt = stmt.where(Deal.team_id == team.id)
    return policy.scope(stmt, actor, Deal)


def _aggregate(
    session: Session, actor: User, team: Team | None
) -> list[tuple[str, int | None, str, Any, int]]:
    stmt = _scoped_open_deals(actor, team).with_only_columns(
        Deal.pipeline_key, Deal.owner_id, Deal.stage_key, Deal.light, func.count()
    )
    stmt = stmt.group_by(Deal.pipeline_key, Deal.owner_id, Deal.stage_key, Deal.light)
    return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]


def _people(session: Session, team: Team | None, owner_ids: set[int]) -> list[User]:
    members = User.active.is_(True) & (User.role == "rep")
    if team is not None:
        members = members & (User.team_id == team.id)
    stmt = select(User).options(joinedload(User.team)).where(or_(members, User.id.in_(sorted(owner_ids))))
    return list(session.scalars(stmt))


def _validate(query: BoardQuery, stages: list[str], rows: Sequence[RepRow]) -> None:
    if query.stage is not None and query.stage not in stages:
        raise BoardError("/stage", N_("Unknown stage %(key)s."), key=query.stage)
    if query.light is not None and query.light not in LIGHTS:
        raise BoardError("/light", N_("Choose green, yellow or red."))
    if query.rep is not None and query.rep not in {row.key for row in rows}:
        raise BoardError("/rep", N_("Nobody on this board has that id."))
    if query.sort not in SORTS:
        raise BoardError("/sort", N_("Sort by risk, rep or stage."))
    if query.page < 1:
        raise BoardError("/page", N_("Pages start at 1."))


def _grid(
    counts: Sequence[tuple[str, int | None, str, Any, int]], people: Sequence[User]
) -> tuple[list[RepRow], dict[str, Cell], Cell]:
    """Return the rows (by team, then name; "unassigned" last when it has deals), stage totals, total."""
    rows = {person.id: RepRow(person) for person in people}
    unassigned = RepRow(None)
    column_totals: dict[str, Cell] = defaultdict(Cell)
    totals = Cell()
    for _p, owner, stage, light, n in counts:
        row = rows.get(owner, unassigned) if owner is not None else unassigned
        row.cells[stage].add(light, n)
        row.total.add(light, n)
        column_totals[stage].add(light, n)
        totals.add(light, n)
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r.user.team.key if r.user and r.user.team else "",
            r.user.name.lower() if r.user else "",
        ),
    )
    if unassigned.total.total:
        ordered.append(unassigned)
    return ordered, column_totals, totals


def load_board(session: Session, actor: User, query: BoardQuery, *, now: datetime) -> Board:
    """Return the board for `query` as `actor` sees it (reps: Forbidden; a foreign team: BoardError)."""
    policy.require(actor, "board.view")
    may_see_all = policy.can(actor, "board.all_teams")
    teams = _teams(session, actor, may_see_all)
    team = _pick_team(actor, teams, query, may_see_all)
    if team is None and not may_see_all:  # a lead who leads no team
        return Board(query, teams, None, False, [], None, [], [], Cell(), [], 0)

    counts = _aggregate(session, actor, team)
    published = _published_pipelines(session)
    by_pipeline = Counter[str]()
    for pipeline_key, _owner, _stage, _light, n in counts:
        by_pipeline[pipeline_key] += n
    keys = sorted(set(published) | set(by_pipeline))
    pipeline_key = query.pipeline_key
    if pipeline_key is None and keys:  # the team's main pipeline: the one most of its open deals are in
        pipeline_key = max(keys, key=lambda k: (by_pipeline[k], -keys.index(k)))
    if pipeline_key is not None and pipeline_key not in keys:
        raise BoardError("/pipeline", N_("Unknown pipeline %(key)s."), key=pipeline_key)
    versions = _versions(session, pipeline_key) if pipeline_key else []
    labels = _stage_labels(versions)
    pipelines = [(k, (published.get(k) or {}).get("label") or {"en": k, "zh": k}) for k in keys]

    current = _open_stage_keys(published.get(pipeline_key or "") or {})
    mine = [c for c in counts if c[0] == pipeline_key]
    extra = sorted({stage for _p, _o, stage, _l, _n in mine} - set(current))
    owner_ids = {owner for _p, owner, _s, _l, _n in mine if owner is not None}
    ordered, column_totals, totals = _grid(mine, _people(session, team, owner_ids))
    stage_keys = current + extra
    stages = [
        StageColumn(key, labels.get(key, {"en": key, "zh": key}), column_totals[key], key in current)
        for key in stage_keys
    ]
    _validate(query, stage_keys, ordered)

    matching = _matching(mine, query)
    deals = _deal_page(session, actor, team, pipeline_key, query, matching) if pipeline_key else []
    rules = rules_for(session, {d.pipeline_version_id for d in deals})
    deal_rows = [
        DealRow(
            deal,
            labels.get(deal.stage_key, {"en": deal.stage_key, "zh": deal.stage_key}),
            rules[deal.pipeline_version_id].days_late(deal.overdue_since, now) if deal.light else 0.0,
        )
        for deal in deals
    ]
    return Board(
        query,
        teams,
        team,
        may_see_all,
        pipelines,
        pipeline_key,
        stages,
        ordered,
        totals,
        deal_rows,
        sum(matching.values()),
    )


# --- the page of deals ---------------------------------------------------------------------------------


def _matching(counts: Sequence[tuple[str, int | None, str, Any, int]], query: BoardQuery) -> Counter[Any]:
    """Return how many deals the filters match, by light (from the aggregate: no query)."""
    found = Counter[Any]()
    for _p, owner, stage, light, n in counts:
        if query.stage is not None and stage != query.stage:
            continue
        if query.light is not None and light != query.light:
            continue
        if query.rep is not None and (owner or UNASSIGNED) != query.rep:
            continue
        found[light if light in LIGHTS else None] += n
    return found


def _filtered(actor: User, team: Team | None, pipeline_key: str, query: BoardQuery) -> Any:
    stmt = _scoped_open_deals(actor, team).where(Deal.pipeline_key == pipeline_key)
    if query.stage is not None:
        stmt = stmt.where(Deal.stage_key == query.stage)
    if query.rep is not None:
        stmt = stmt.where(Deal.owner_id.is_(None) if query.rep == UNASSIGNED else Deal.owner_id == query.rep)
    if query.light is not None:
        stmt = stmt.where(Deal.light == query.light)
    return stmt.options(joinedload(Deal.owner), joinedload(Deal.customer))


def _deal_page(
    session: Session,
    actor: User,
    team: Team | None,
    pipeline_key: str,
    query: BoardQuery,
    matching: Counter[Any],
) -> list[Deal]:
    start = (query.page - 1) * PAGE_SIZE
    stmt = _filtered(actor, team, pipeline_key, query)
    if query.sort != "risk":
        if query.sort == "rep":
            stmt = stmt.outerjoin(User, User.id == Deal.owner_id).order_by(User.name, Deal.id)
        else:
            stmt = stmt.order_by(Deal.stage_key, Deal.id)
        return list(session.scalars(stmt.offset(start).limit(PAGE_SIZE)).unique())
    # Risk order, one light at a time: each read walks the (team, status, light, overdue_since) index.
    found: list[Deal] = []
    for light in RISK_ORDER:
        size = matching[light]
        if start >= size:
            start -= size
            continue
        take = PAGE_SIZE - len(found)
        part = stmt.where(Deal.light.is_(None) if light is None else Deal.light == light)
        part = part.order_by(Deal.overdue_since, Deal.id).offset(start).limit(take)
        found.extend(session.scalars(part).unique())
        start = 0
        if len(found) >= PAGE_SIZE:
            break
    return found
