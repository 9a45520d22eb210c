"""The list engine: declared filters only (400-style errors naming the parameter), typed values, search
with escaped wildcards, stable sort with the id as tiebreaker, capped pages, policy scope for every role,
form-data columns, fixed conditions, stage order from the pipeline, two statements per page whatever the
number of rows, the catalogue in step with the models, and the same engine on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from salesmesh.metamodel import semantics_views as sv
from salesmesh.platform.models import User
from salesmesh.workflows import list_specs
from salesmesh.workflows.list_specs import BUILTIN_VIEWS, compile_view, load_views, pick_view
from salesmesh.workflows.lists import (
    MAX_PER_PAGE,
    ListQueryError,
    build_query,
    display_value,
    escape_like,
    parse_params,
    run_list,
)
from salesmesh.workflows.models import Lead, Task
from tests.workflows.conftest import pipeline_doc, publish
from tests.workflows.list_support import DEAL_VIEW, LEAD_VIEW, TASK_VIEW, count_statements, doc

LEADS = compile_view(LEAD_VIEW)


def params(view: Any = LEADS, **query: Any) -> Any:
    pairs = []
    for name, value in query.items():
        name = name.replace("__", ".")
        for one in value if isinstance(value, list) else [value]:
            pairs.append((name, str(one)))
    return parse_params(view, pairs)


def names(session: Any, actor: User, view: Any = LEADS, clock: Any = None, **query: Any) -> list[str]:
    now = clock.now() if clock is not None else dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    page = run_list(session, actor, view, params(view, **query), now=now)
    first = view.columns[0].field.name
    return [row.values[first] for row in page.rows]


@pytest.fixture
def leads(session: Any, clock: Any, people: dict[str, Any], make_lead: Any) -> dict[str, Any]:
    """Six leads: three of rep_a1, one of rep_a2, one of rep_b1, one in the open pool."""
    now = clock.now()
    a1, a2, b1 = people["rep_a1"], people["rep_a2"], people["rep_b1"]
    rows = [
        ("Alpha hospital", a1, "new", {"grade": "tertiary_a", "beds": 1200, "city": "Beijing"}, 1),
        ("Beta clinic", a1, "contacted", {"grade": "secondary", "beds": 90, "city": "Tianjin"}, 3),
        ("Gamma 50% centre", a1, "qualified", {"grade": "secondary", "beds": 300}, 10),
        ("Delta_x hospital", a2, "new", {"grade": "tertiary_a", "beds": 800, "city": "Shanghai"}, 40),
        ("Epsilon hospital", b1, "new", {"beds": 9}, 2),
        ("Zeta pooled", None, "pooled", {}, 5),
    ]
    out = {}
    for name, owner, status, data, days in rows:
        out[name] = make_lead(
            name=name,
            owner_id=owner.id if owner else None,
            team_id=owner.team_id if owner else None,
            status=status,
            data=data,
            received_at=now - dt.timedelta(days=days),
        )
    session.flush()
    return out


# --- parameters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"owner": "1"}, "owner"),  # a column, but not a declared filter
        ({"status__from": "new"}, "status.from"),
        ({"sort": "data.city"}, "sort"),  # a column that is not sortable
        ({"sort": "-institution"}, "sort"),  # not a column at all
        ({"status": "bogus"}, "status"),
        ({"grade": "primary"}, "grade"),  # not among the declared options
        ({"beds__from": "many"}, "beds.from"),
        ({"min_beds": "NaN"}, "min_beds"),
        ({"received__to": "2026-02-30"}, "received.to"),
        ({"received__to": "２０２６-０３-０１"}, "received.to"),
        ({"recent": "14"}, "recent"),  # days filter with options: only 7 or 30
        ({"mine": "yes"}, "mine"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": "-5"}, "per_page"),
        ({"q": ["a", "b"]}, "q"),
        ({"grade": ["tertiary_a", "secondary"]}, "grade"),  # eq takes one value
        ({"name": "x" * 201}, "name"),
    ],
)
def test_undeclared_or_bad_parameters_name_the_parameter(query: dict[str, Any], param: str) -> None:
    with pytest.raises(ListQueryError) as info:
        params(**query)
    assert info.value.param == param
    assert param.split(".")[0] in str(info.value) or info.value.param in ("sort", "page", "per_page", "q")


def test_search_needs_a_searchable_column() -> None:
    view = compile_view(doc(LEAD_VIEW, columns=[{"field": "name"}], filters=[], sort=[{"field": "name"}]))
    with pytest.raises(ListQueryError) as info:
        params(view, q="x")
    assert info.value.param == "q" and "searchable" in str(info.value)


def test_values_are_typed_and_blank_values_are_ignored() -> None:
    p = params(
        status=["new", "contacted"],
        beds__from="100",
        beds__to="",
        received__to="2026-03-01",
        q=" al ",
        grade="",
    )
    assert p.filters["status"] == ("new", "contacted")
    assert p.filters["beds"] == (Decimal("100"), None)
    assert p.filters["received"] == (None, dt.date(2026, 3, 1))
    assert "grade" not in p.filters and p.q == "al"
    assert ("grade", "") not in p.pairs and ("status", "contacted") in p.pairs


def test_page_size_is_capped_and_the_view_sets_the_default() -> None:
    assert params().per_page == 10
    assert params(per_page="5000").per_page == MAX_PER_PAGE
    assert params(per_page="20").per_page == 20


# --- running -----------------------------------------------------------------------------------------


def test_policy_scopes_every_role(session: Any, people: dict[str, Any], leads: dict[str, Any]) -> None:
    assert sorted(names(session, people["rep_a1"])) == [
        "Alpha hospital",
        "Beta clinic",
        "Gamma 50% centre",
        "Zeta pooled",
    ]
    assert sorted(names(session, people["lead_a"])) == [
        "Alpha hospital",
        "Beta clinic",
        "Delta_x hospital",
        "Gamma 50% centre",
        "Zeta pooled",
    ]
    assert len(names(session, people["admin"])) == len(names(session, people["ops"])) == 6
    people["rep_a1"].active = False
    with pytest.raises(Forbidden):
        names(session, people["rep_a1"])


def test_filters(session: Any, clock: Any, people: dict[str, Any], leads: dict[str, Any]) -> None:
    admin, a1 = people["admin"], people["rep_a1"]
    assert sorted(names(session, admin, status=["contacted", "qualified"])) == [
        "Beta clinic",
        "Gamma 50% centre",
    ]
    assert sorted(names(session, a1, mine="1")) == ["Alpha hospital", "Beta clinic", "Gamma 50% centre"]
    assert sorted(names(session, people["lead_a"], team="1")) == [
        "Alpha hospital",
        "Beta clinic",
        "Delta_x hospital",
        "Gamma 50% centre",
    ]
    assert names(session, admin, unassigned="1") == ["Zeta pooled"]
    assert sorted(names(session, admin, grade="tertiary_a")) == ["Alpha hospital", "Delta_x hospital"]
    assert sorted(names(session, admin, beds__from="90", beds__to="300")) == [
        "Beta clinic",
        "Gamma 50% centre",
    ]
    assert sorted(names(session, admin, min_beds="800")) == ["Alpha hospital", "Delta_x hospital"]
    assert names(session, admin, clock=clock, recent="7", sort="name") == [
        "Alpha hospital",
        "Beta clinic",
        "Epsilon hospital",
        "Zeta pooled",
    ]
    day = (clock.now() - dt.timedelta(days=3)).date().isoformat()
    assert names(session, admin, clock=clock, received__from=day, received__to=day) == ["Beta clinic"]
    assert names(session, admin, name="50%") == ["Gamma 50% centre"]


def test_search_escapes_wildcards_and_reads_names_and_form_data(
    session: Any, people: dict[str, Any], leads: dict[str, Any]
) -> None:
    admin = people["admin"]
    assert names(session, admin, q="50%") == ["Gamma 50% centre"]
    assert names(session, admin, q="a_x") == ["Delta_x hospital"]
    assert names(session, admin, q="%") == ["Gamma 50% centre"]
    assert names(session, admin, q="_x") == ["Delta_x hospital"]
    assert names(session, admin, q="ALPHA") == ["Alpha hospital"]
    assert names(session, admin, q="tianjin") == ["Beta clinic"]  # data.city
    assert sorted(names(session, admin, q="rep_a2")) == ["Delta_x hospital"]  # the owner's name
    assert escape_like("50%_\\") == "50\\%\\_\\\\"


def test_form_data_columns_sort_by_type(session: Any, people: dict[str, Any], leads: dict[str, Any]) -> None:
    admin = people["admin"]
    # Numeric, not text order (9 < 90 < 300 < 800 < 1200); rows without the value go last either way.
    assert names(session, admin, sort="data.beds") == [
        "Epsilon hospital",
        "Beta clinic",
        "Gamma 50% centre",
        "Delta_x hospital",
        "Alpha hospital",
        "Zeta pooled",
    ]
    assert names(session, admin, sort="-data.beds")[:2] == ["Alpha hospital", "Delta_x hospital"]
    assert names(session, admin, sort="-data.beds")[-1] == "Zeta pooled"
    assert names(session, admin, sort="owner")[:3] == ["Alpha hospital", "Beta clinic", "Gamma 50% centre"]


BOOL_VIEW = compile_view(
    doc(
        LEAD_VIEW,
        key="bools",
        columns=[
            {"field": "name", "sortable": True},
            {"field": "data.trial", "label": {"en": "Trial", "zh": "试用"}, "type": "boolean"},
        ],
        filters=[
            {"key": "trial", "field": "data.trial", "operator": "eq", "label": {"en": "Trial", "zh": "试用"}},
            {
                "key": "no_city",
                "field": "data.city",
                "operator": "is_empty",
                "label": {"en": "No city", "zh": "无城市"},
            },
            {
                "key": "not_grade",
                "field": "data.grade",
                "operator": "ne",
                "label": {"en": "Not grade", "zh": "非等级"},
            },
            {"key": "team", "field": "team", "operator": "my_team", "label": {"en": "Team", "zh": "团队"}},
        ],
        sort=[{"field": "name"}],
    )
)


def test_boolean_empty_and_not_equal_filters_on_form_data(
    session: Any, people: dict[str, Any], leads: dict[str, Any]
) -> None:
    admin = people["admin"]
    leads["Alpha hospital"].data = {**leads["Alpha hospital"].data, "trial": True}
    leads["Beta clinic"].data = {**leads["Beta clinic"].data, "trial": False}
    session.flush()
    assert names(session, admin, BOOL_VIEW, trial="true") == ["Alpha hospital"]
    assert names(session, admin, BOOL_VIEW, trial="false") == ["Beta clinic"]
    assert names(session, admin, BOOL_VIEW, no_city="1") == [
        "Epsilon hospital",
        "Gamma 50% centre",
        "Zeta pooled",
    ]
    # "not secondary" keeps the rows without a grade at all.
    assert names(session, admin, BOOL_VIEW, not_grade="secondary") == [
        "Alpha hospital",
        "Delta_x hospital",
        "Epsilon hospital",
        "Zeta pooled",
    ]
    assert names(session, people["lead_b"], BOOL_VIEW, team="1") == ["Epsilon hospital"]
    with pytest.raises(ListQueryError):
        params(BOOL_VIEW, trial="yes")
    trial = BOOL_VIEW.column("data.trial").field
    assert display_value(trial, True, "zh") == "是" and display_value(trial, False, "en") == "No"


def test_sort_is_stable_across_pages(
    session: Any, clock: Any, people: dict[str, Any], make_lead: Any
) -> None:
    admin = people["admin"]
    made = [make_lead(name="Same", owner_id=admin.id, received_at=clock.now()) for _ in range(23)]
    seen = []
    for page in (1, 2, 3):
        result = run_list(session, admin, LEADS, params(sort="name", page=str(page)), now=clock.now())
        seen += [row.id for row in result.rows]
        assert result.total == 23 and result.pages == 3
    assert seen == sorted(lead.id for lead in made)  # ascending sort: id ascending breaks the ties
    desc = run_list(session, admin, LEADS, params(sort="-name"), now=clock.now())
    assert [r.id for r in desc.rows] == sorted((lead.id for lead in made), reverse=True)[:10]
    past_the_end = run_list(session, admin, LEADS, params(page="99"), now=clock.now())
    assert past_the_end.page == 3 and len(past_the_end.rows) == 3


def test_two_statements_per_page_whatever_the_rows(
    session: Any, runtime: Any, clock: Any, people: dict[str, Any], make_deal: Any, make_customer: Any
) -> None:
    publish(session, clock, pipeline_doc())
    view = compile_view(DEAL_VIEW, pipeline_doc=pipeline_doc())
    lead_a = people["lead_a"]
    make_deal(owner_id=people["rep_a1"].id, team_id=lead_a.team_id, amount=Decimal("10"))
    session.commit()
    with count_statements(runtime.db.engine) as few:
        small = run_list(session, lead_a, view, params(view), now=clock.now())
    for i in range(30):
        customer = make_customer(name=f"Hospital x{i}", owner=people["rep_a2"])
        make_deal(customer=customer, amount=Decimal(i))
    session.commit()
    with count_statements(runtime.db.engine) as many:
        big = run_list(session, lead_a, view, params(view), now=clock.now())
    assert small.total == 1 and big.total == 31 and len(big.rows) == 25
    selects = [[s for s in seen if s.lstrip().upper().startswith("SELECT")] for seen in (few, many)]
    assert len(selects[0]) == len(selects[1]) == 2 and len(few) == len(many), many
    assert big.rows[0].values["customer"].startswith("Hospital") and big.rows[0].values["owner"] == "rep_a2"


def test_fixed_conditions_stage_order_and_labels(
    session: Any, clock: Any, people: dict[str, Any], make_deal: Any
) -> None:
    admin = people["admin"]
    view = compile_view(DEAL_VIEW, pipeline_doc=pipeline_doc())
    make_deal(name="Late", stage_key="needs_confirmed", amount=Decimal("5"))
    make_deal(name="Early small", stage_key="first_contact", amount=Decimal("1"))
    make_deal(name="Early big", stage_key="first_contact", amount=Decimal("9"))
    make_deal(name="Won", stage_key="signed", status="won")
    # Pipeline order first_contact < needs_confirmed (alphabetical would be the same; use desc to prove it).
    assert names(session, admin, view) == ["Early big", "Early small", "Late"]
    assert names(session, admin, view, sort="-stage") == ["Late", "Early big", "Early small"]
    assert names(session, admin, view, stage="needs_confirmed") == ["Late"]
    with pytest.raises(ListQueryError):
        params(view, stage="signed_off")  # stage options come from the pipeline
    stage = view.column("stage").field
    assert display_value(stage, "needs_confirmed", "zh") == "需求确认"
    assert display_value(view.column("amount").field, Decimal("1234.5"), "en") == "1,234.50"


def test_pipeline_order_beats_alphabetical(
    session: Any, clock: Any, people: dict[str, Any], make_deal: Any
) -> None:
    stages = [
        {"key": "zulu", "label": {"en": "Zulu", "zh": "Z阶段"}, "probability": 10, "outcome": "open"},
        {"key": "alpha", "label": {"en": "Alpha", "zh": "A阶段"}, "probability": 50, "outcome": "open"},
        {"key": "won", "label": {"en": "Won", "zh": "赢"}, "probability": 100, "outcome": "won"},
    ]
    view = compile_view(DEAL_VIEW, pipeline_doc=pipeline_doc(stages=stages))
    make_deal(name="In alpha", stage_key="alpha")
    make_deal(name="In zulu", stage_key="zulu")
    assert names(session, people["admin"], view) == ["In zulu", "In alpha"]


def test_my_tasks_view_and_the_past_operator(
    session: Any, clock: Any, people: dict[str, Any], make_customer: Any
) -> None:
    a1, a2 = people["rep_a1"], people["rep_a2"]
    customer = make_customer(owner=a1)
    now = clock.now()

    def task(title: str, owner: User, status: str = "open", due: int = 1) -> Task:
        row = Task(
            title=title,
            subject_type="customer",
            customer_id=customer.id,
            assignee_id=owner.id,
            team_id=owner.team_id,
            status=status,
            due_at=now + dt.timedelta(days=due),
            data={},
            created_at=now,
        )
        session.add(row)
        return row

    task("Call back", a1, due=2)
    task("Send quote", a1, due=-1)
    task("Done already", a1, status="done")
    task("Not mine", a2)
    session.flush()
    view = compile_view(TASK_VIEW)
    assert names(session, a1, view, clock=clock) == ["Send quote", "Call back"]
    assert names(session, a1, view, clock=clock, overdue="1") == ["Send quote"]
    # The lead sees the team's tasks elsewhere, but "my tasks" means the lead's own: none.
    assert names(session, people["lead_a"], view, clock=clock) == []


def test_display_values(session: Any) -> None:
    grade = LEADS.column("data.grade").field
    assert display_value(grade, "tertiary_a", "zh") == "三级甲等"
    assert display_value(grade, "unknown_code", "en") == "unknown_code"
    status = LEADS.column("status").field
    assert display_value(status, "pooled", "zh") == "公海池"
    received = LEADS.column("received_at").field
    assert display_value(received, dt.datetime(2026, 3, 2, 9, 5, tzinfo=dt.UTC), "en") == "2026-03-02 09:05"
    assert display_value(LEADS.column("data.beds").field, 1200.0, "en") == "1200"
    assert display_value(grade, None, "en") == ""
    team = compile_view(DEAL_VIEW).column("team").field
    assert display_value(team, {"en": "North", "zh": "北区"}, "zh") == "北区"


def test_every_catalogue_field_compiles_to_sql(session: Any, clock: Any, people: dict[str, Any]) -> None:
    """Each standard field of each record type can be shown, sorted, filtered (empty) and counted."""
    admin = people["admin"]
    for record_type, fields in sv.RECORD_FIELDS.items():
        columns = [{"field": name, "sortable": True} for name in fields]
        filters = [
            {"key": f"f_{name}", "field": name, "operator": "not_empty", "label": {"en": name, "zh": name}}
            for name in fields
        ]
        document = {
            "kind": "list_view",
            "key": "all-fields",
            "schema_version": 1,
            "label": {"en": "All", "zh": "全部"},
            "record_type": record_type,
            "columns": columns,
            "filters": filters,
        }
        view = compile_view(document)
        for name in fields:
            page = run_list(
                session, admin, view, params(view, sort=name, **{f"f_{name}": "1"}), now=clock.now()
            )
            assert page.total == 0, (record_type, name)


def test_every_role_may_list_every_record_type(session: Any, people: dict[str, Any]) -> None:
    for record_type, view in BUILTIN_VIEWS.items():
        for who in ("admin", "ops", "lead_a", "rep_a1"):
            count, _rows = build_query(
                view, people[who], params(view), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            )
            assert session.scalar(count) == 0, (record_type, who)


# --- loading published views -------------------------------------------------------------------------


def test_published_views_are_loaded_compiled_once_and_picked_by_role(
    session: Any, clock: Any, people: dict[str, Any]
) -> None:
    assert load_views(session, "lead") == [BUILTIN_VIEWS["lead"]]  # nothing published yet
    publish(session, clock, LEAD_VIEW)
    ops_only = doc(LEAD_VIEW, key="ops-leads", default=False, position=1, roles=["ops", "admin"])
    publish(session, clock, ops_only)
    views = load_views(session, "lead")
    assert [v.key for v in views] == ["ops-leads", "test-leads"]
    assert load_views(session, "lead")[1] is views[1]  # compiled once per published version
    rep = people["rep_a1"]
    assert pick_view(views, rep, None).key == "test-leads"
    assert pick_view(views, rep, "ops-leads") is None
    assert pick_view(views, people["ops"], "ops-leads").key == "ops-leads"
    assert pick_view(views, people["ops"], None).key == "test-leads"  # the default one
    assert load_views(session, "customer") == [BUILTIN_VIEWS["customer"]]


def test_data_option_labels_come_from_the_named_form(session: Any, clock: Any) -> None:
    form = {
        "kind": "form",
        "key": "lead-form",
        "schema_version": 1,
        "label": {"en": "Lead", "zh": "线索"},
        "record_type": "lead",
        "sections": [
            {
                "key": "main",
                "label": {"en": "Main", "zh": "主要"},
                "fields": [
                    {
                        "key": "size",
                        "type": "select",
                        "label": {"en": "Size", "zh": "规模"},
                        "options": [{"value": "big", "label": {"en": "Big", "zh": "大型"}}],
                    }
                ],
            }
        ],
    }
    publish(session, clock, form)
    view_doc = doc(
        LEAD_VIEW,
        key="sized",
        form="lead-form",
        columns=[{"field": "name"}, {"field": "data.size", "type": "choice"}],
        filters=[
            {"key": "size", "field": "data.size", "operator": "in", "label": {"en": "Size", "zh": "规模"}}
        ],
        sort=[{"field": "name"}],
    )
    publish(session, clock, view_doc)
    (view,) = load_views(session, "lead")
    size = view.column("data.size")
    assert size.label == {"en": "Size", "zh": "规模"}  # no label in the view: the form's
    assert display_value(size.field, "big", "zh") == "大型"
    assert view.filter("size").options == (("big", {"en": "Big", "zh": "大型"}),)


def test_cache_is_keyed_by_content(session: Any, clock: Any) -> None:
    list_specs._CACHE.clear()
    publish(session, clock, LEAD_VIEW)
    first = load_views(session, "lead")[0]
    assert len(list_specs._CACHE) == 1 and first.key == "test-leads"


# --- PostgreSQL --------------------------------------------------------------------------------------


@pytest.mark.services
def test_engine_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    """Form-data filter and sort (JSONB), ILIKE search with escaped wildcards, and the policy scope."""
    with pg_runtime.db.session_scope() as s:
        rep = User(
            email="r@example.test",
            name="Rep",
            role="rep",
            password_hash="x",
            attributes={},
            created_at=clock.now(),
        )
        admin = User(
            email="a@example.test",
            name="Admin",
            role="admin",
            password_hash="x",
            attributes={},
            created_at=clock.now(),
        )
        s.add_all([rep, admin])
        s.flush()
        for i, (name, beds, grade) in enumerate(
            [
                ("Big 100%", 1200, "tertiary_a"),
                ("Small_one", 9, "secondary"),
                ("Mid", 90, "secondary"),
                ("Nothing", None, None),
            ]
        ):
            data = {k: v for k, v in (("beds", beds), ("grade", grade)) if v is not None}
            s.add(
                Lead(
                    name=name,
                    source_channel="web_form",
                    status="new",
                    owner_id=rep.id if i < 3 else admin.id,
                    data=data,
                    received_at=clock.now(),
                    created_at=clock.now(),
                )
            )
    with pg_runtime.db.session_scope() as s:
        rep = s.scalars(select(User).where(User.email == "r@example.test")).one()
        admin = s.scalars(select(User).where(User.email == "a@example.test")).one()
        assert names(s, admin, sort="data.beds") == ["Small_one", "Mid", "Big 100%", "Nothing"]
        assert names(s, admin, sort="-data.beds") == ["Big 100%", "Mid", "Small_one", "Nothing"]
        assert names(s, admin, grade="secondary", sort="-data.beds") == ["Mid", "Small_one"]
        assert names(s, admin, beds__from="50", beds__to="1000") == ["Mid"]
        assert names(s, admin, q="100%") == ["Big 100%"]
        assert names(s, admin, q="l_o") == ["Small_one"]
        assert names(s, admin, q="big") == ["Big 100%"]  # ILIKE: case-insensitive
        assert names(s, admin, BOOL_VIEW, not_grade="secondary") == ["Big 100%", "Nothing"]
        assert names(s, admin, BOOL_VIEW, no_city="1") == ["Big 100%", "Mid", "Nothing", "Small_one"]
        publish(s, clock, pipeline_doc())
        publish(s, clock, DEAL_VIEW)  # published views load through a JSONB lookup of the record type
        assert [v.key for v in load_views(s, "deal")] == ["test-open-deals"]
        assert load_views(s, "deal")[0].stage_order[:2] == ("first_contact", "needs_confirmed")
        assert sorted(names(s, rep)) == ["Big 100%", "Mid", "Small_one"]
        assert names(s, rep, q="nothing") == []
