"""The list engine: a compiled list view plus URL parameters becomes one scoped SQLAlchemy query.

`parse_params` accepts only what the view declares — its filters (by key; `<key>.from`/`<key>.to` for a
range), `sort` on a sortable column (`-name` for descending), `q` when some column is searchable, `page`
and `per_page` (capped) — and answers anything else with `ListQueryError` naming the parameter. Values are
typed by the field they filter (numbers, dates, allowed codes). `build_query` turns the view's fixed
conditions, the chosen filters and the search into WHERE clauses over standard columns or JSON form data
(`data[key]`, extracted the same way on SQLite and PostgreSQL), joins owner/team/customer only when a
column, sort or search needs them, and always goes through `policy.scope`; the order ends with the id so
pages are stable. `run_list` runs exactly two statements (one COUNT, one SELECT), whatever the page holds.
Filter operators are the fixed set of `semantics_views.OPERATORS`.

Two lead fields are computed rather than stored: `routing_channel` is the channel of the lead's latest
routing decision (a correlated subquery on the `(lead_id, decided_at)` index, so a page still costs two
statements) and `sla_state` reads "overdue" for a pending first-response SLA whose deadline has passed.
`live_options` gives the options only known at run time: the people a person filter may pick (those the
actor may see) and the channels of the published routings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, not_, or_, select, true
from sqlalchemy.orm import Session, aliased

from salesmesh.metamodel import semantics_views as sv
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.i18n import N_, gettext, label
from salesmesh.platform.models import Team, User
from salesmesh.workflows.list_specs import FieldSpec, FilterSpec, ListView, Options
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Lead, Task
from salesmesh.workflows.routing_models import RoutingDecision

MODELS: dict[str, Any] = {
    "lead": Lead,
    "customer": Customer,
    "contact": Contact,
    "deal": Deal,
    "activity": Activity,
    "task": Task,
}
MAX_PER_PAGE = 200
MAX_PAGE = 100_000
MAX_TEXT = 200
TRUE_VALUES = ("1",)
# Catalogue names whose column is named differently (the rest are columns of the same name).
_COLUMN_NAMES = {"owner": "owner_id", "team": "team_id", "customer": "customer_id", "actor": "actor_id"}
# Columns a row link needs besides the id: a contact opens its customer, a task or activity its subject.
_SUBJECT_COLUMNS = ("subject_type", "lead_id", "customer_id", "deal_id")
LINK_COLUMNS: dict[str, tuple[str, ...]] = {
    "contact": ("customer_id",),
    "task": _SUBJECT_COLUMNS,
    "activity": _SUBJECT_COLUMNS,
}
# Tables joined for names: catalogue name → alias (built once; building aliases per query is costly).
_ALIASES: dict[str, Any] = {
    "owner": aliased(User, name="j_owner"),
    "actor": aliased(User, name="j_actor"),
    "team": aliased(Team, name="j_team"),
    "customer": aliased(Customer, name="j_customer"),
}
_DECISION = aliased(RoutingDecision, name="latest_decision")
# The channel of a lead's latest routing decision, read per row through ix_routing_decisions_lead_decided.
ROUTING_CHANNEL = (
    select(_DECISION.channel)
    .where(_DECISION.lead_id == Lead.id)
    .order_by(_DECISION.decided_at.desc(), _DECISION.id.desc())
    .limit(1)
    .correlate(Lead)
    .scalar_subquery()
)


class ListQueryError(ValueError):
    """A URL parameter the view does not accept, or a value it cannot use; `param` names it."""

    def __init__(self, name: str, message: str, /, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.param = name
        self.message = message
        self.params = params


_UNKNOWN_PARAM = N_("Unknown parameter %(param)s: this list has no such filter.")
_REPEATED = N_("The parameter %(param)s can be given only once.")
_NOT_SORTABLE = N_("This list cannot be sorted by %(value)s.")
_NO_SEARCH = N_("This list has no searchable columns.")
_BAD_INT = N_("%(param)s must be a whole number from %(low)s to %(high)s.")
_BAD_NUMBER = N_("%(param)s must be a number.")
_BAD_DATE = N_("%(param)s must be a date written as YYYY-MM-DD.")
_BAD_CHOICE = N_("%(param)s cannot be %(value)s (use one of %(allowed)s).")
_BAD_TOGGLE = N_("%(param)s takes the value 1.")
_BAD_BOOLEAN = N_("%(param)s must be true or false.")
_BAD_USER = N_("%(param)s must be the number of a person.")
_TOO_LONG = N_("%(param)s is too long (at most %(n)s characters).")


@dataclass(frozen=True)
class ListParams:
    """The accepted parameters of one list request, typed; `pairs` rebuilds the URL (without `page`)."""

    filters: Mapping[str, Any] = field(default_factory=dict)
    q: str = ""
    sort: tuple[tuple[FieldSpec, bool], ...] = ()
    sort_param: str | None = None
    page: int = 1
    per_page: int = 25
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ListRow:
    """One record of a page: its id, the stored value of each column, and what its link needs."""

    id: int
    values: Mapping[str, Any]
    link: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListPage:
    """One page of a list: its rows, the total of the whole filtered list, and where the page is."""

    rows: list[ListRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """The number of pages (at least one)."""
        return max(1, -(-self.total // self.per_page))


# --- parameters --------------------------------------------------------------------------------------


def _int(param: str, raw: str, low: int, high: int) -> int:
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ListQueryError(param, _BAD_INT, param=param, low=low, high=high)
    return int(raw)


def _typed(param: str, f: FieldSpec, raw: str, options: Iterable[str]) -> Any:
    """Convert one URL value into the Python value compared with the field."""
    allowed = tuple(options)
    if len(raw) > MAX_TEXT:
        raise ListQueryError(param, _TOO_LONG, param=param, n=MAX_TEXT)
    if allowed:
        if raw not in allowed:
            raise ListQueryError(param, _BAD_CHOICE, param=param, value=raw, allowed=", ".join(allowed))
        return raw
    if f.type in (sv.NUMBER, sv.MONEY):
        try:
            number = Decimal(raw)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ListQueryError(param, _BAD_NUMBER, param=param)
        return number
    if f.type in (sv.DATE, sv.DATETIME):
        try:
            if len(raw) != 10 or not raw.isascii():
                raise ValueError(raw)
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise ListQueryError(param, _BAD_DATE, param=param) from None
    if f.type == sv.BOOLEAN:
        if raw not in ("true", "false"):
            raise ListQueryError(param, _BAD_BOOLEAN, param=param)
        return raw == "true"
    if f.type == sv.USER:
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= policy.MAX_ID:
            raise ListQueryError(param, _BAD_USER, param=param)
        return int(raw)
    return raw


def _filter_value(spec: FilterSpec, values: dict[str, list[str]]) -> Any:
    """Return the typed value of a filter from its URL values, or None when it is not set."""
    options = [v for v, _ in spec.options]
    if spec.operator == "between":
        low, high = (values.get(p, [""])[0] for p in spec.params)
        bounds = tuple(
            _typed(p, spec.field, v, ()) if v else None for p, v in zip(spec.params, (low, high), strict=True)
        )
        return bounds if bounds != (None, None) else None
    given = [v for v in values.get(spec.key, []) if v != ""]
    if not given:
        return None
    if spec.operator != "in" and len(given) > 1:
        raise ListQueryError(spec.key, _REPEATED, param=spec.key)
    if not spec.takes_value:
        if given[0] not in TRUE_VALUES:
            raise ListQueryError(spec.key, _BAD_TOGGLE, param=spec.key)
        return True
    if spec.operator in sv.COUNT_OPERATORS:
        if options and given[0] not in options:
            raise ListQueryError(
                spec.key, _BAD_CHOICE, param=spec.key, value=given[0], allowed=", ".join(options)
            )
        return _int(spec.key, given[0], 1, sv.count_limit(spec.operator)[0])
    if spec.operator == "contains":
        return _typed(spec.key, spec.field, given[0], ())
    typed = tuple(_typed(spec.key, spec.field, v, options) for v in given)
    return typed if spec.operator == "in" else typed[0]


def parse_params(view: ListView, args: Iterable[tuple[str, str]]) -> ListParams:
    """Validate URL parameters against the view: declared filters, sortable columns, search and paging."""
    values: dict[str, list[str]] = {}
    for name, value in args:
        values.setdefault(name, []).append(value)
    accepted = {"q", "sort", "page", "per_page"}
    for spec in view.filters:
        accepted.update(spec.params)
    for name in values:
        if name not in accepted:
            raise ListQueryError(name, _UNKNOWN_PARAM, param=name)
    for name in ("q", "sort", "page", "per_page"):
        if len(values.get(name, [])) > 1:
            raise ListQueryError(name, _REPEATED, param=name)
    filters = {}
    for spec in view.filters:
        value = _filter_value(spec, values)
        if value is not None:
            filters[spec.key] = value
    q = values.get("q", [""])[0].strip()
    if q and not view.searchable:
        raise ListQueryError("q", _NO_SEARCH)
    if len(q) > MAX_TEXT:
        raise ListQueryError("q", _TOO_LONG, param="q", n=MAX_TEXT)
    sort_param = values.get("sort", [""])[0] or None
    sort = view.sort
    if sort_param:
        column = view.column(sort_param.removeprefix("-"))
        if column is None or not column.sortable:
            raise ListQueryError("sort", _NOT_SORTABLE, value=sort_param)
        sort = ((column.field, sort_param.startswith("-")),)
    page = _int("page", values["page"][0], 1, MAX_PAGE) if values.get("page", [""])[0] else 1
    per_page = view.page_size
    if values.get("per_page", [""])[0]:
        per_page = min(_int("per_page", values["per_page"][0], 1, 10_000), MAX_PER_PAGE)
    pairs = tuple(
        (name, value) for name, vs in values.items() if name != "page" for value in vs if value != ""
    )
    return ListParams(filters, q, sort, sort_param, page, per_page, pairs)


# --- SQL ---------------------------------------------------------------------------------------------


@dataclass
class _Query:
    """The pieces of one list query: the model, the joins the columns need, and the actor's clock."""

    view: ListView
    actor: User
    now: dt.datetime
    model: Any = None
    joined: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = MODELS[self.view.record_type]

    def join(self, name: str) -> Any:
        """Return the alias for a related table (owner/actor/team/customer), joining it on first use."""
        if name not in self.joined:
            self.joined[name] = _ALIASES[name]
        return self.joined[name]

    def column(self, f: FieldSpec) -> Any:
        """The SQL expression holding the stored value of a field (ids for related fields)."""
        if f.is_data:
            value = self.model.data[f.data_key]
            if f.type in (sv.NUMBER, sv.MONEY):
                return value.as_float()
            if f.type == sv.BOOLEAN:
                return value.as_boolean()
            return value.as_string()
        if f.name == "stage":
            return self.model.stage_key
        if self.model is Lead and f.name == "routing_channel":
            return ROUTING_CHANNEL
        if self.model is Lead and f.name == "sla_state":
            overdue = and_(Lead.sla_state == "pending", Lead.sla_due_at < self.now)
            return case((overdue, "overdue"), else_=Lead.sla_state)
        return getattr(self.model, _COLUMN_NAMES.get(f.name, f.name))

    def shown(self, f: FieldSpec) -> Any:
        """The SQL expression shown, sorted and searched for a field (names for related fields)."""
        if f.type in (sv.USER, sv.CUSTOMER):
            return self.join(f.name).name
        if f.type == sv.TEAM:
            return self.join(f.name).key
        return self.column(f)

    def sort_key(self, f: FieldSpec) -> Any:
        if f.name == "stage" and self.view.stage_order:
            order = {key: i for i, key in enumerate(self.view.stage_order)}
            return case(order, value=self.model.stage_key, else_=len(order))
        return self.shown(f)

    def apply_joins(self, stmt: Select[Any]) -> Select[Any]:
        for name, alias in self.joined.items():
            fk = getattr(self.model, _COLUMN_NAMES.get(name, name))
            stmt = stmt.outerjoin(alias, alias.id == fk)
        return stmt

    def my_teams(self) -> Select[Any]:
        clauses = [Team.lead_id == self.actor.id]
        if self.actor.team_id is not None:
            clauses.append(Team.id == self.actor.team_id)
        return select(Team.id).where(or_(*clauses))

    def _bounds(self, f: FieldSpec, day: dt.date, *, end: bool) -> Any:
        """The value to compare a field with at the start (or end) of a day."""
        if end:
            day = day + dt.timedelta(days=1)
        if f.is_data:
            return day.isoformat()
        if f.type == sv.DATE:
            return day
        return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)

    def _instant(self, f: FieldSpec, moment: dt.datetime) -> Any:
        if f.type == sv.DATE:
            value: Any = moment.date()
            return value.isoformat() if f.is_data else value
        return moment.isoformat() if f.is_data else moment

    def _scalar(self, f: FieldSpec, value: Any) -> Any:
        if f.is_data and isinstance(value, Decimal):
            return float(value)
        return value

    def condition(self, f: FieldSpec, operator: str, value: Any) -> ColumnElement[bool]:
        """Translate one operator and typed value into a WHERE clause on the field."""
        col = self.column(f)
        day_field = f.type in (sv.DATE, sv.DATETIME)
        if operator == "me":
            return col == self.actor.id
        if operator == "my_team":
            if f.type == sv.TEAM:
                return col.in_(self.my_teams())
            return col.in_(select(User.id).where(User.team_id.in_(self.my_teams())))
        if operator in ("is_empty", "not_empty"):
            empty = or_(col.is_(None), col == "") if f.type in (sv.TEXT, sv.CHOICE) else col.is_(None)
            return empty if operator == "is_empty" else not_(empty)
        if operator == "contains":
            return col.ilike(f"%{escape_like(value)}%", escape="\\")
        if operator in ("past", "future"):
            now = self._instant(f, self.now)
            return col < now if operator == "past" else col >= now
        if operator in sv.DAY_OPERATORS:
            delta = dt.timedelta(days=int(value))
            if operator == "days_ago_lt":
                return and_(col >= self._instant(f, self.now - delta), col <= self._instant(f, self.now))
            if operator == "days_ago_gt":
                return col < self._instant(f, self.now - delta)
            return and_(col >= self._instant(f, self.now), col <= self._instant(f, self.now + delta))
        if operator in sv.HOUR_OPERATORS:
            since = self._instant(f, self.now - dt.timedelta(hours=int(value)))
            return (
                and_(col >= since, col <= self._instant(f, self.now))
                if operator == "hours_ago_lt"
                else col < since
            )
        if operator == "in":
            return col.in_([self._scalar(f, v) for v in value])
        if operator == "between":
            low, high = value
            parts = []
            if low is not None:
                parts.append(self.condition(f, "gte", low))
            if high is not None:
                parts.append(self.condition(f, "lte", high))
            return and_(true(), *parts)
        if day_field and isinstance(value, dt.date):
            # A date compared with a moment means the whole day: [start of the day, start of the next).
            start, end = self._bounds(f, value, end=False), self._bounds(f, value, end=True)
            day_clauses: dict[str, Callable[[], ColumnElement[bool]]] = {
                "eq": lambda: and_(col >= start, col < end),
                "ne": lambda: or_(col.is_(None), col < start, col >= end),
                "lt": lambda: col < start,
                "lte": lambda: col < end,
                "gt": lambda: col >= end,
                "gte": lambda: col >= start,
            }
            return day_clauses[operator]()
        value = self._scalar(f, value)
        clauses: dict[str, Callable[[], ColumnElement[bool]]] = {
            "eq": lambda: col == value,
            "ne": lambda: or_(col.is_(None), col != value),
            "lt": lambda: col < value,
            "lte": lambda: col <= value,
            "gt": lambda: col > value,
            "gte": lambda: col >= value,
        }
        return clauses[operator]()

    def search(self, q: str) -> ColumnElement[bool]:
        pattern = f"%{escape_like(q)}%"
        return or_(false(), *(self.shown(c.field).ilike(pattern, escape="\\") for c in self.view.searchable))


def escape_like(text: str) -> str:
    """Escape LIKE wildcards (`%`, `_`) and the escape character itself (`\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prepare(
    view: ListView, actor: User, params: ListParams, now: dt.datetime
) -> tuple[_Query, list[ColumnElement[bool]]]:
    """Return the query pieces (with every join registered) and the WHERE clauses of the list."""
    query = _Query(view, actor, now)
    clauses = [query.condition(w.field, w.operator, w.value) for w in view.where]
    for key, value in params.filters.items():
        spec = view.filter(key)
        assert spec is not None  # parse_params accepted only declared filters
        clauses.append(query.condition(spec.field, spec.operator, value))
    if params.q:
        clauses.append(query.search(params.q))
    for column in view.columns:
        query.shown(column.field)
    for f, _desc in params.sort:
        query.sort_key(f)
    return query, clauses


def _order(query: _Query, params: ListParams) -> list[Any]:
    order = []
    for f, desc in params.sort:
        key = query.sort_key(f)
        order.append(key.desc().nulls_last() if desc else key.asc().nulls_last())
    last_desc = params.sort[-1][1] if params.sort else True
    order.append(query.model.id.desc() if last_desc else query.model.id.asc())
    return order


def _select_columns(query: _Query) -> list[Any]:
    """The columns of the page query: the id, each shown field once, and the JSON data when needed."""
    out: list[Any] = []
    seen = {"id"}
    for column in query.view.columns:
        f = column.field
        if f.is_data:
            if "data" not in seen:
                seen.add("data")
                out.append(query.model.data.label("data"))
        elif f.name not in seen:
            seen.add(f.name)
            expr = query.join(f.name).name if f.type in (sv.USER, sv.CUSTOMER, sv.TEAM) else query.column(f)
            out.append(expr.label(f.name))
    if any(c.link for c in query.view.columns):
        out.extend(
            getattr(query.model, name).label(f"link_{name}")
            for name in LINK_COLUMNS.get(query.view.record_type, ())
        )
    return out


def _row(view: ListView, row: Any) -> ListRow:
    mapping = row._mapping
    data = mapping.get("data") or {}
    values = {}
    for column in view.columns:
        f = column.field
        values[f.name] = data.get(f.data_key) if f.is_data else mapping.get(f.name)
    link = {
        name: mapping[f"link_{name}"]
        for name in LINK_COLUMNS.get(view.record_type, ())
        if f"link_{name}" in mapping
    }
    return ListRow(mapping["id"], values, link)


def build_query(
    view: ListView, actor: User, params: ListParams, now: dt.datetime
) -> tuple[Select[Any], Select[Any]]:
    """Return (count statement, unpaged row statement) for a view and its accepted parameters."""
    query, clauses = _prepare(view, actor, params, now)
    model = query.model
    columns = _select_columns(query)
    ids = policy.scope(query.apply_joins(select(model.id)).where(*clauses), actor, model)
    count = select(func.count()).select_from(ids.subquery())
    rows = policy.scope(
        query.apply_joins(select(model.id.label("id"), *columns)).where(*clauses), actor, model
    )
    return count, rows.order_by(*_order(query, params))


def run_list(
    session: Session, actor: User, view: ListView, params: ListParams, *, now: dt.datetime
) -> ListPage:
    """Return one page of the view for `actor`: one COUNT, one SELECT (past the end: the last page)."""
    policy.require(actor, f"{view.record_type}.list")
    count_stmt, rows_stmt = build_query(view, actor, params, now)
    total = session.scalar(count_stmt) or 0
    pages = max(1, -(-total // params.per_page))
    page = min(params.page, pages)
    rows = session.execute(rows_stmt.limit(params.per_page).offset((page - 1) * params.per_page)).all()
    return ListPage([_row(view, r) for r in rows], total, page, params.per_page)


def iter_rows(
    session: Session, actor: User, view: ListView, params: ListParams, *, now: dt.datetime, limit: int
) -> tuple[int, list[ListRow]]:
    """Return (total, at most `limit` rows) of the whole filtered list, for exports."""
    policy.require(actor, f"{view.record_type}.list")
    count_stmt, rows_stmt = build_query(view, actor, params, now)
    total = session.scalar(count_stmt) or 0
    if total > limit:
        return total, []
    return total, [_row(view, r) for r in session.execute(rows_stmt.limit(limit))]


def routing_channel_labels(session: Session) -> dict[str, Any]:
    """Return the channels of the published routings, {key: bilingual label} (one statement)."""
    documents = session.scalars(
        select(DefinitionVersion.document)
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(Definition.kind == "routing", DefinitionVersion.status == "published")
        .order_by(Definition.key)
    )
    labels: dict[str, Any] = {}
    for document in documents:
        for channel in (document or {}).get("channels", ()):
            labels.setdefault(
                channel["key"], channel.get("label") or {"en": channel["key"], "zh": channel["key"]}
            )
    return labels


def live_options(session: Session, actor: User, view: ListView) -> dict[str, Options]:
    """Return, by field name, the options of filters and columns that only the database knows.

    A person filter (`in` on owner, assignee ...) lists the people the actor may see (reps and team
    leads, by name); `routing_channel` lists the channels of the published routings. At most one
    statement each, only when the view has such a filter or column.
    """
    fields = [s.field for s in view.filters if not s.options] + [c.field for c in view.columns]
    out: dict[str, Options] = {}
    people = {s.field.name for s in view.filters if s.field.type == sv.USER and s.operator == "in"}
    if people:
        rows = session.execute(
            policy.scope(select(User.id, User.name), actor, User)
            .where(User.role.in_(("rep", "lead")))
            .order_by(User.name, User.id)
        ).all()
        options = tuple((str(uid), {"en": name, "zh": name}) for uid, name in rows)
        out.update(dict.fromkeys(people, options))
    if view.record_type == "lead" and any(f.name == "routing_channel" for f in fields):
        labels = routing_channel_labels(session)
        out["routing_channel"] = tuple((key, label) for key, label in sorted(labels.items()))
    return out


# --- values ------------------------------------------------------------------------------------------

YES, NO = N_("Yes"), N_("No")


def plain_value(f: FieldSpec, value: Any, locale: str) -> Any:
    """Return a stored value as shown to a person: labels for codes, names, numbers stay numbers.

    Choice codes become their label in `locale` (a list of codes — a multi-select — is joined with ", "),
    team names their label, booleans Yes/No; aware datetimes stay datetimes (UTC), dates stay dates.
    """
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return ", ".join(str(plain_value(f, v, locale)) for v in value)
    if f.type == sv.TEAM or isinstance(value, Mapping):
        return label(value, locale)
    text = f.option_label(value)
    if text is not None:
        return label(text, locale)
    if isinstance(value, bool):
        return gettext(YES if value else NO, locale)
    return value


def display_value(f: FieldSpec, value: Any, locale: str) -> str:
    """Return a stored value as the text of a list cell ("" when empty)."""
    shown = plain_value(f, value, locale)
    if shown is None:
        return ""
    if isinstance(shown, dt.datetime):
        return shown.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(shown, dt.date):
        return shown.isoformat()
    if isinstance(shown, Decimal) or (f.type == sv.MONEY and isinstance(shown, int | float)):
        return f"{Decimal(str(shown)):,.2f}"
    if isinstance(shown, float) and shown.is_integer():
        return str(int(shown))
    return str(shown)
