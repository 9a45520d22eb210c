"""The SQL subset of conditions: on a small table in real SQLite and PostgreSQL, the rows a translated rule
selects are exactly the rows the Python evaluator finds truthy (NULLs, empty strings, zero, booleans,
decimals, negation included); anything outside the subset raises `NotCompilable` naming its pointer.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
)

from salesmesh.metamodel import conditions
from salesmesh.metamodel.conditions import ConditionError, compile_condition
from salesmesh.metamodel.conditions_sql import NotCompilable, to_sql

METADATA = MetaData()
LEADS = Table(
    "condition_leads",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("grade", String(20)),
    Column("kind", String(40)),
    Column("beds", Integer),
    Column("budget", Numeric(12, 2)),
    Column("score", Float),
    Column("approved", Boolean),
    Column("region", String(40)),
    Column("name", Text),
    Column("created_at", DateTime),
)
COLUMNS = {
    "institution_grade": LEADS.c.grade,
    "institution_type": LEADS.c.kind,
    "bed_count": LEADS.c.beds,
    "budget": LEADS.c.budget,
    "score": LEADS.c.score,
    "budget_approved": LEADS.c.approved,
    "region": LEADS.c.region,
    "customer.name": LEADS.c.name,
    "created_at": LEADS.c.created_at,
}
ROWS: list[dict[str, Any]] = [
    dict(grade="tertiary_a", kind="hospital", beds=800, budget=Decimal("1000000.50"), score=55.5,
         approved=True, region="guangdong", name="三甲医院"),
    dict(grade="tertiary_b", kind="hospital", beds=500, budget=Decimal("200000"), score=20.0,
         approved=False, region="beijing", name="Hospital B"),
    dict(grade=None, kind="township_health_center", beds=0, budget=Decimal("0"), score=0.0,
         approved=None, region="", name=""),
    dict(grade=None, kind=None, beds=None, budget=None, score=None, approved=None, region=None,
         name=None),
    dict(grade="", kind="private_clinic", beds=-5, budget=Decimal("-1.25"), score=-3.5, approved=True,
         region="secondary", name="Clinic"),
    dict(grade="tertiary_a", kind="community_health_center", beds=100, budget=Decimal("500000"), score=100.0,
         approved=False, region="tertiary_a", name="社区卫生服务中心"),
    dict(grade=None, kind="hospital", beds=799, budget=Decimal("99.99"), score=50.5, approved=True,
         region=None, name="Null grade"),
    dict(grade="tertiary_a", kind="other", beds=101, budget=Decimal("55.5"), score=55.5, approved=None,
         region="guangdong/shenzhen", name="hospital"),
]  # fmt: skip

RULES: list[Any] = [
    True,
    False,
    {"==": [1, "1"]},
    {"==": [{"var": "institution_grade"}, "tertiary_a"]},
    {"!=": [{"var": "institution_grade"}, "tertiary_a"]},
    {"==": ["tertiary_a", {"var": "institution_grade"}]},
    {"==": [{"var": "institution_grade"}, None]},
    {"!=": [{"var": "institution_grade"}, None]},
    {"===": [{"var": "bed_count"}, 500]},
    {"!==": [{"var": "bed_count"}, 500]},
    {"==": [{"var": "bed_count"}, {"+": [250, 250]}]},
    {"==": [{"var": "budget"}, 1000000.5]},
    {"==": [{"var": "score"}, 55.5]},
    {">=": [{"var": "bed_count"}, 500]},
    {"<": [{"var": "bed_count"}, 100]},
    {"<=": [{"var": "budget"}, 0]},
    {">": [{"var": "score"}, None]},
    {"<": [100, {"var": "bed_count"}, 800]},
    {"<=": [0, {"var": "score"}, 55.5]},
    {">": [{"var": "budget"}, {"var": "score"}]},
    {"<=": [{"var": "bed_count"}, {"var": "score"}]},
    {"in": [{"var": "institution_type"}, ["hospital", "township_health_center"]]},
    {"in": [{"var": "institution_type"}, ["hospital", None, 5]]},
    {"in": [{"var": "bed_count"}, [0, 500, "500", True, 101.0]]},
    {"in": [{"var": "region"}, []]},
    {"in": [{"var": "budget_approved"}, [True]]},
    {"!": [{"in": [{"var": "institution_grade"}, ["tertiary_a", "tertiary_b"]]}]},
    {"var": "budget_approved"},
    {"!": [{"var": "budget_approved"}]},
    {"!!": [{"var": "region"}]},
    {"!": {"var": "region"}},
    {"var": "bed_count"},
    {"var": "budget"},
    {"var": "score"},
    {"==": [{"var": "budget_approved"}, True]},
    {"!=": [{"var": "budget_approved"}, False]},
    {"===": [{"var": "budget_approved"}, None]},
    {"==": [{"var": "institution_grade"}, {"var": "region"}]},
    {"!==": [{"var": "institution_grade"}, {"var": "region"}]},
    {"===": [{"var": "institution_grade"}, {"var": "bed_count"}]},
    {"!==": [{"var": "institution_grade"}, {"var": "bed_count"}]},
    {"===": [{"var": "institution_grade"}, 5]},
    {"==": [{"var": "customer.name"}, "三甲医院"]},
    {"and": [{"==": [{"var": "institution_type"}, "hospital"]}, {">=": [{"var": "bed_count"}, 500]}]},
    {"or": [{"==": [{"var": "customer.name"}, "社区卫生服务中心"]}, {"<": [{"var": "score"}, 10]}]},
    {"!": {"or": [{"var": "institution_grade"}, {"var": "budget_approved"}]}},
    {"and": [{"var": "region"}, {"==": [1, 1]}, {"!": [{"!": [{"var": "bed_count"}]}]}]},
    {"or": [False, {"and": [{"var": "customer.name"}, {"!=": [{"var": "bed_count"}, 800]}]}]},
    {"and": [{"==": [{"var": "institution_grade"}, "tertiary_a"]}, []]},
    {"or": [{"==": [{"var": "institution_grade"}, "x"]}, [{"var": "region"}]]},
]


def python_data(row: dict[str, Any]) -> dict[str, Any]:
    """Shape a database row as the data the evaluator sees (dotted names become nested objects)."""
    data: dict[str, Any] = {}
    for name, column in COLUMNS.items():
        node = data
        *parents, last = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = row[column.name]
    return data


def mismatches(engine: Engine) -> list[str]:
    """Return one line per rule whose SQL rows differ from the Python evaluation."""
    METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(LEADS), [{**row, "id": i} for i, row in enumerate(ROWS, start=1)])
    problems = []
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(LEADS))]
        assert len(rows) == len(ROWS)
        for rule in RULES:
            condition = compile_condition(rule)
            expected = {row["id"] for row in rows if condition.test(python_data(row))}
            got = set(conn.scalars(select(LEADS.c.id).where(to_sql(rule, COLUMNS))))
            if got != expected:
                problems.append(f"{rule}: SQL {sorted(got)} != Python {sorted(expected)}")
    return problems


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'conditions.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


def test_rules_select_the_same_rows_in_sqlite_as_in_python(sqlite_engine: Engine) -> None:
    assert mismatches(sqlite_engine) == []


@pytest.mark.services
def test_rules_select_the_same_rows_in_postgresql_as_in_python(pg_engine: Engine) -> None:
    assert mismatches(pg_engine) == []


def test_the_rules_are_not_trivial() -> None:
    """Every rule selects some rows and leaves others, except the ones that are constant by design."""
    rows = [{**row, "id": i, "created_at": None} for i, row in enumerate(ROWS, start=1)]
    trivial = []
    for rule in RULES:
        hits = sum(compile_condition(rule).test(python_data(row)) for row in rows)
        if hits in (0, len(rows)):
            trivial.append(rule)
    assert trivial == [
        True,
        False,
        {"==": [1, "1"]},
        {"in": [{"var": "region"}, []]},
        {"===": [{"var": "institution_grade"}, 5]},
        {"and": [{"==": [{"var": "institution_grade"}, "tertiary_a"]}, []]},
        {"or": [{"==": [{"var": "institution_grade"}, "x"]}, [{"var": "region"}]]},
    ]


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"if": [{"var": "region"}, True, False]}, "", "Operator 'if' cannot be turned into SQL"),
        (
            {"and": [True, {"==": [{"var": "institution_grade"}, 1]}]},
            "/and/1",
            "Comparing a string with a number converts between types; SQL cannot do that alike",
        ),
        ({"<": [{"var": "region"}, "m"]}, "/</0", "Only numbers can be ordered in SQL (<, <=, >, >=)"),
        ({">": [1, {"var": "budget_approved"}]}, "/>/1", "Only numbers can be ordered in SQL (<, <=, >, >=)"),
        ({"==": [{"var": "unmapped"}, 1]}, "/==/0", None),
        ({"==": [{"var": ["bed_count", 0]}, 1]}, "/==/0", None),
        ({"!": [{"var": [{"cat": ["reg", "ion"]}]}]}, "/!/0", None),
        ({"in": [{"var": "region"}, {"var": "region"}]}, "/in/1", "In SQL, 'in' needs a literal list"),
        ({"in": ["x", {"var": "region"}]}, "/in/1", "In SQL, 'in' needs a literal list"),
        ({"in": [{"var": "region"}, [{"var": "region"}]]}, "/in/1", "In SQL, 'in' needs a literal list"),
        ({"<": [{"days_since": {"var": "created_at"}}, 3]}, "/</0", None),
        ({"+": [{"var": "bed_count"}, 1]}, "", "Operator '+' cannot be turned into SQL"),
        ({"==": [{"+": [{"var": "bed_count"}, 1]}, 2]}, "/==/0", None),
        ({"==": [{"var": "created_at"}, "2026-01-01"]}, "/==/0", None),
        ({"==": [{"var": "region"}, ["a"]]}, "/==/1", None),
        ({"missing": ["region"]}, "", None),
    ],
)
def test_rules_outside_the_subset_name_their_pointer(rule: Any, path: str, message: str | None) -> None:
    with pytest.raises(NotCompilable) as info:
        to_sql(rule, COLUMNS, base_path="/rules/0/when")
    (error,) = info.value.errors
    assert error["path"] == "/rules/0/when" + path
    assert error["message_zh"]
    if message is not None:
        assert error["message"] == message


def test_to_sql_is_also_reachable_from_the_conditions_module() -> None:
    assert conditions.NotCompilable is NotCompilable
    expression = conditions.to_sql({"==": [{"var": "region"}, "beijing"]}, COLUMNS)
    assert str(expression) == str(to_sql({"==": [{"var": "region"}, "beijing"]}, COLUMNS))


def test_invalid_rules_fail_as_compile_errors() -> None:
    with pytest.raises(ConditionError) as info:
        to_sql({"and": [{"bogus": 1}]}, COLUMNS)
    assert not isinstance(info.value, NotCompilable)
    assert info.value.errors[0]["path"] == "/and/0"
