"""Published `list_view` definitions, compiled once per version into the specs the list engine runs.

A `ListView` is the typed, immutable form of one list_view document: its columns, declared filters, fixed
conditions (`where`), default sort and page size, with every field resolved against the catalogue of
standard record fields (`salesmesh.metamodel.semantics_views.RECORD_FIELDS`) or typed as a form-data field
(`data.<key>`). Option labels come from the view itself, then from the form it names (choice fields), and
the deal `stage` takes its labels and order from the pipeline it names. `load_views` reads the published
views of a record type and their referenced form/pipeline in two queries and compiles each combination of
versions once (published versions are immutable, so the cache never goes stale). When nothing is
published for a record type, a built-in view (`BUILTIN_VIEWS`) keeps the list usable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from salesmesh.metamodel import semantics_views as sv
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.models import User

Label = Mapping[str, str]
Options = tuple[tuple[str, Label], ...]
RECORD_TYPES = tuple(sv.RECORD_FIELDS)
DEFAULT_PAGE_SIZE = 25


@dataclass(frozen=True)
class FieldSpec:
    """One field a view names: catalogue name (or `data.<key>`), value type, label and value labels."""

    name: str
    type: str
    label: Label
    options: Options = ()

    @property
    def is_data(self) -> bool:
        return sv.is_data_field(self.name)

    @property
    def data_key(self) -> str:
        return self.name[len(sv.DATA_PREFIX) :]

    def option_label(self, value: Any) -> Label | None:
        """Return the bilingual label of a stored value, or None when the value has none."""
        for option, text in self.options:
            if option == value:
                return text
        return None


@dataclass(frozen=True)
class ColumnSpec:
    field: FieldSpec
    label: Label
    sortable: bool
    searchable: bool
    link: bool


@dataclass(frozen=True)
class FilterSpec:
    """A filter a person may set through the URL parameter named `key` (with `.from`/`.to` for between)."""

    key: str
    field: FieldSpec
    operator: str
    label: Label
    options: Options

    @property
    def takes_value(self) -> bool:
        return self.operator not in sv.VALUELESS

    @property
    def params(self) -> tuple[str, ...]:
        """The URL parameter names this filter reads."""
        if self.operator == "between":
            return (f"{self.key}.from", f"{self.key}.to")
        return (self.key,)


@dataclass(frozen=True)
class WhereSpec:
    field: FieldSpec
    operator: str
    value: Any


@dataclass(frozen=True)
class ListView:
    """A compiled list view (immutable; shared between requests)."""

    key: str
    record_type: str
    label: Label
    description: Label | None
    roles: frozenset[str] | None
    is_default: bool
    position: int
    columns: tuple[ColumnSpec, ...]
    filters: tuple[FilterSpec, ...]
    where: tuple[WhereSpec, ...]
    sort: tuple[tuple[FieldSpec, bool], ...]  # (field, descending)
    page_size: int
    stage_order: tuple[str, ...]  # deal stages in pipeline order (empty: sort stage keys alphabetically)
    version_id: int | None

    def allows(self, actor: User | None) -> bool:
        """Tell whether `actor` may open this view (its rows are still limited by the policy)."""
        return actor is not None and (self.roles is None or actor.role in self.roles)

    def filter(self, key: str) -> FilterSpec | None:
        """Return the declared filter called `key`, or None."""
        return next((f for f in self.filters if f.key == key), None)

    def column(self, name: str) -> ColumnSpec | None:
        """Return the column showing the field `name`, or None."""
        return next((c for c in self.columns if c.field.name == name), None)

    @property
    def searchable(self) -> tuple[ColumnSpec, ...]:
        """The columns `q` searches."""
        return tuple(c for c in self.columns if c.searchable)


# --- compiling ---------------------------------------------------------------------------------------


def _options(items: Any) -> Options:
    return tuple((o["value"], dict(o["label"])) for o in items or ())


def _form_fields(form_doc: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not form_doc:
        return {}
    return {f["key"]: f for s in form_doc.get("sections", []) for f in s.get("fields", [])}


class _Resolver:
    """Turns field names of one document into FieldSpecs (types, labels, option labels)."""

    def __init__(self, doc: Mapping[str, Any], form_doc: Mapping[str, Any] | None, pipeline_doc: Any) -> None:
        self.record_type = doc["record_type"]
        self.types = sv.data_types(dict(doc))
        self.form = _form_fields(form_doc)
        self.stages: Options = ()
        if pipeline_doc and self.record_type == "deal":
            self.stages = tuple((s["key"], dict(s["label"])) for s in pipeline_doc.get("stages", []))
        self.labels: dict[str, Label] = {}
        self.options: dict[str, Options] = {}
        for column in doc["columns"]:
            if "label" in column:
                self.labels[column["field"]] = dict(column["label"])
            if "options" in column:
                self.options[column["field"]] = _options(column["options"])
        for item in doc.get("filters", []):
            # Options of a days filter are day counts, not value labels.
            if "options" in item and item["operator"] not in sv.COUNT_OPERATORS:
                self.options.setdefault(item["field"], _options(item["options"]))

    def field(self, name: str) -> FieldSpec:
        if sv.is_data_field(name):
            key = name[len(sv.DATA_PREFIX) :]
            form_field = self.form.get(key, {})
            label = self.labels.get(name) or dict(form_field.get("label") or {"en": key, "zh": key})
            options = self.options.get(name) or _options(form_field.get("options"))
            return FieldSpec(name, self.types.get(name, sv.TEXT), label, options)
        known = sv.RECORD_FIELDS[self.record_type][name]
        options = known.values or (self.stages if name == "stage" else ()) or self.options.get(name, ())
        return FieldSpec(name, known.type, known.label, options)


def _where_value(field: FieldSpec, operator: str, value: Any) -> Any:
    """Convert a definition's JSON value into the Python value the query compares with."""

    def one(v: Any) -> Any:
        if field.type in (sv.DATE, sv.DATETIME) and isinstance(v, str):
            return dt.date.fromisoformat(v)
        if field.type in (sv.NUMBER, sv.MONEY) and not isinstance(v, bool):
            return Decimal(str(v))
        return v

    if operator in sv.VALUELESS:
        return True
    if operator in sv.COUNT_OPERATORS or operator == "contains":
        return value
    if isinstance(value, list):
        return tuple(one(v) for v in value)
    return one(value)


def compile_view(
    doc: Mapping[str, Any],
    *,
    form_doc: Mapping[str, Any] | None = None,
    pipeline_doc: Mapping[str, Any] | None = None,
    version_id: int | None = None,
) -> ListView:
    """Compile a valid list_view document (and the form/pipeline it names) into a ListView."""
    resolve = _Resolver(doc, form_doc, pipeline_doc)
    columns = []
    for c in doc["columns"]:
        spec = resolve.field(c["field"])
        label = dict(c["label"]) if "label" in c else dict(spec.label)
        columns.append(
            ColumnSpec(spec, label, bool(c.get("sortable")), bool(c.get("searchable")), bool(c.get("link")))
        )
    filters = []
    for f in doc.get("filters", []):
        spec = resolve.field(f["field"])
        options = _options(f.get("options")) or (spec.options if f["operator"] in ("eq", "ne", "in") else ())
        filters.append(FilterSpec(f["key"], spec, f["operator"], dict(f["label"]), options))
    where = tuple(
        WhereSpec(
            resolve.field(w["field"]),
            w["operator"],
            _where_value(resolve.field(w["field"]), w["operator"], w.get("value")),
        )
        for w in doc.get("where", [])
    )
    sort = tuple(
        (resolve.field(s["field"]), s.get("direction", "asc") == "desc") for s in doc.get("sort", [])
    )
    if not sort:
        sort = ((resolve.field("id"), True),)
    return ListView(
        key=doc["key"],
        record_type=doc["record_type"],
        label=dict(doc["label"]),
        description=dict(doc["description"]) if "description" in doc else None,
        roles=frozenset(doc["roles"]) if "roles" in doc else None,
        is_default=bool(doc.get("default")),
        position=int(doc.get("position", 100)),
        columns=tuple(columns),
        filters=tuple(filters),
        where=where,
        sort=sort,
        page_size=int(doc.get("page_size", DEFAULT_PAGE_SIZE)),
        stage_order=tuple(key for key, _ in resolve.stages),
        version_id=version_id,
    )


# --- loading -----------------------------------------------------------------------------------------


_CACHE: dict[tuple[Any, ...], ListView] = {}
_CACHE_LIMIT = 512


def _compiled(key: tuple[Any, ...], doc: Any, form: Any, pipeline: Any) -> ListView:
    """Compile once per (view version, checksums of the view, form and pipeline documents)."""
    view = _CACHE.get(key)
    if view is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        view = _CACHE[key] = compile_view(doc, form_doc=form, pipeline_doc=pipeline, version_id=key[0])
    return view


def load_views(session: Session, record_type: str) -> list[ListView]:
    """Return the published list views of a record type (or the built-in one), ordered for display."""
    rows = session.execute(
        select(DefinitionVersion.id, DefinitionVersion.checksum, DefinitionVersion.document)
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(
            Definition.kind == "list_view",
            DefinitionVersion.status == "published",
            DefinitionVersion.document["record_type"].as_string() == record_type,
        )
    ).all()
    if not rows:
        return [BUILTIN_VIEWS[record_type]]
    wanted = {(kind, doc[kind]) for _id, _sum, doc in rows for kind in ("form", "pipeline") if kind in doc}
    refs: dict[tuple[str, str], tuple[str, Any]] = {}
    if wanted:
        found = session.execute(
            select(Definition.kind, Definition.key, DefinitionVersion.checksum, DefinitionVersion.document)
            .join(Definition, Definition.id == DefinitionVersion.definition_id)
            .where(
                DefinitionVersion.status == "published",
                or_(*(and_(Definition.kind == k, Definition.key == key) for k, key in sorted(wanted))),
            )
        ).all()
        refs = {(kind, key): (checksum, doc) for kind, key, checksum, doc in found}
    views = []
    for version_id, checksum, doc in rows:
        form = refs.get(("form", doc.get("form", "")), (None, None))
        pipeline = refs.get(("pipeline", doc.get("pipeline", "")), (None, None))
        key = (version_id, checksum, form[0], pipeline[0])
        views.append(_compiled(key, doc, form[1], pipeline[1]))
    return sorted(views, key=lambda v: (v.position, v.key))


def pick_view(views: list[ListView], actor: User | None, key: str | None) -> ListView | None:
    """Return the view called `key` (or the default one) among those `actor` may open, or None."""
    allowed = [v for v in views if v.allows(actor)]
    if key is not None:
        return next((v for v in allowed if v.key == key), None)
    return next((v for v in allowed if v.is_default), allowed[0] if allowed else None)


# --- built-in views (used while nothing is published for a record type) ------------------------------


def _builtin(record_type: str, en: str, zh: str, columns: list[Any], sort: list[Any], **extra: Any) -> Any:
    return {
        "kind": "list_view",
        "key": f"builtin-{record_type}",
        "schema_version": 1,
        "label": {"en": en, "zh": zh},
        "record_type": record_type,
        "default": True,
        "columns": [c if isinstance(c, dict) else {"field": c, "sortable": True} for c in columns],
        "sort": sort,
        **extra,
    }


_NAME = {"field": "name", "sortable": True, "searchable": True, "link": True}
_OWNER_FILTERS = [
    {"key": "mine", "field": "owner", "operator": "me", "label": {"en": "Only mine", "zh": "只看我的"}},
]


def _hours(*pairs: tuple[int, str, str]) -> list[dict[str, Any]]:
    return [{"value": str(n), "label": {"en": en, "zh": zh}} for n, en, zh in pairs]


_AGES = _hours(
    (1, "1 hour", "1 小时"), (4, "4 hours", "4 小时"), (24, "1 day", "1 天"), (72, "3 days", "3 天")
)
# The filters of the shipped "all leads" views: who, where from, how old, and the first-response SLA.
LEAD_FILTERS: list[dict[str, Any]] = [
    {"key": "status", "field": "status", "operator": "in", "label": {"en": "Status", "zh": "状态"}},
    {"key": "owner", "field": "owner", "operator": "in", "label": {"en": "Owner", "zh": "负责人"}},
    *_OWNER_FILTERS,
    {
        "key": "unassigned",
        "field": "owner",
        "operator": "is_empty",
        "label": {"en": "Unassigned", "zh": "未分配"},
    },
    {
        "key": "source",
        "field": "source_channel",
        "operator": "in",
        "label": {"en": "Source", "zh": "来源渠道"},
    },
    {
        "key": "channel",
        "field": "routing_channel",
        "operator": "in",
        "label": {"en": "Routing channel", "zh": "分配通道"},
    },
    {
        "key": "newer",
        "field": "received_at",
        "operator": "hours_ago_lt",
        "label": {"en": "Received within", "zh": "接收时间在"},
        "options": _AGES,
    },
    {
        "key": "older",
        "field": "received_at",
        "operator": "hours_ago_gt",
        "label": {"en": "Older than", "zh": "接收时间早于"},
        "options": [*_AGES, *_hours((168, "7 days", "7 天"))],
    },
    {
        "key": "sla",
        "field": "sla_state",
        "operator": "in",
        "label": {"en": "First-response SLA", "zh": "首次响应时限"},
    },
]
BUILTIN_DOCS: dict[str, dict[str, Any]] = {
    "lead": _builtin(
        "lead",
        "All leads",
        "全部线索",
        [
            _NAME,
            {"field": "institution", "sortable": True, "searchable": True},
            "status",
            "source_channel",
            {"field": "routing_channel"},
            {"field": "owner", "sortable": True, "searchable": True},
            "received_at",
            "sla_state",
        ],
        [{"field": "received_at", "direction": "desc"}],
        filters=LEAD_FILTERS,
    ),
    "customer": _builtin(
        "customer",
        "All customers",
        "全部客户",
        [
            _NAME,
            "region",
            "grade",
            {"field": "owner", "sortable": True, "searchable": True},
            "last_activity_at",
        ],
        [{"field": "name"}],
        filters=_OWNER_FILTERS,
    ),
    "contact": _builtin(
        "contact",
        "All contacts",
        "全部联系人",
        [
            _NAME,
            {"field": "customer", "sortable": True, "searchable": True},
            "role",
            "phone",
            "email",
            "owner",
        ],
        [{"field": "name"}],
        filters=_OWNER_FILTERS,
    ),
    "deal": _builtin(
        "deal",
        "All deals",
        "全部商机",
        [
            _NAME,
            {"field": "customer", "sortable": True, "searchable": True},
            "stage",
            "status",
            "amount",
            "expected_close",
            "owner",
        ],
        [{"field": "updated_at", "direction": "desc"}],
        filters=[
            {"key": "status", "field": "status", "operator": "in", "label": {"en": "Status", "zh": "状态"}},
            *_OWNER_FILTERS,
        ],
    ),
    "activity": _builtin(
        "activity",
        "All activities",
        "全部跟进记录",
        [
            "occurred_at",
            "kind",
            {"field": "customer", "sortable": True, "searchable": True},
            {"field": "summary", "searchable": True},
            "outcome",
            "actor",
        ],
        [{"field": "occurred_at", "direction": "desc"}],
        filters=[
            {"key": "kind", "field": "kind", "operator": "in", "label": {"en": "Type", "zh": "类型"}},
            *_OWNER_FILTERS,
        ],
    ),
    "task": _builtin(
        "task",
        "All tasks",
        "全部任务",
        [
            {"field": "title", "sortable": True, "searchable": True, "link": True},
            "status",
            "due_at",
            {"field": "owner", "sortable": True},
            "customer",
        ],
        [{"field": "due_at"}],
        filters=[
            {"key": "status", "field": "status", "operator": "in", "label": {"en": "Status", "zh": "状态"}},
            *_OWNER_FILTERS,
        ],
    ),
}
BUILTIN_VIEWS: dict[str, ListView] = {rt: compile_view(doc) for rt, doc in BUILTIN_DOCS.items()}
