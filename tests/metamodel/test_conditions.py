"""The JsonLogic condition compiler: JavaScript semantics of every operator and their edge cases, compile
errors with JSON pointers (unknown operator, arity, depth, size, non-JSON input), the domain operators with
a fixed `now`, the variables a rule reads, compile-once caching, and that a rule can neither run code nor
reach into the attributes of the data it reads. Also the hook into definition validation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from salesmesh.metamodel import conditions, conditions_compiler
from salesmesh.metamodel.conditions import (
    Condition,
    ConditionError,
    compile_condition,
    condition_errors,
    evaluate,
    operator_names,
    register_operator,
    truthy,
)
from salesmesh.metamodel.semantics import iter_conditions
from salesmesh.metamodel.validation import validate_document

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "packs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CJK = re.compile(r"[\u4e00-\u9fff]")


def run(rule: Any, data: Any = None, **kwargs: Any) -> Any:
    """Evaluate through a fresh compile and check the boolean variant agrees with the value."""
    condition = compile_condition(rule)
    value = condition(data, **kwargs)
    assert condition.test(data, **kwargs) is truthy(value), (rule, value)
    return value


def paths(rule: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConditionError) as info:
        compile_condition(rule, **kwargs)
    for error in info.value.errors:
        assert set(error) == {"path", "message", "message_zh"}
        assert CJK.search(error["message_zh"]), error
    return [e["path"] for e in info.value.errors]


def messages(rule: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConditionError) as info:
        compile_condition(rule, **kwargs)
    return [e["message"] for e in info.value.errors]


# --- truthiness and equality --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], False),
        ([0], True),
        ("", False),
        ("0", True),
        (0, False),
        (0.0, False),
        (-0.5, True),
        (float("nan"), False),
        (None, False),
        ({}, True),
        (True, True),
        (False, False),
        (Decimal("0"), False),
        (Decimal("2.5"), True),
        ((), False),
        (datetime(2026, 1, 1, tzinfo=UTC), True),
    ],
)
def test_truthiness_follows_jsonlogic(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
    assert run({"!!": [{"var": "v"}]}, {"v": value}) is expected
    assert run({"!": [{"var": "v"}]}, {"v": value}) is (not expected)


@pytest.mark.parametrize(
    ("a", "b", "loose", "strict"),
    [
        (1, 1.0, True, True),
        (1, "1", True, False),
        (0, "", True, False),
        (0, " \n", True, False),
        (None, 0, False, False),
        (None, "", False, False),
        (None, None, True, True),
        (True, 1, True, False),
        (True, "1", True, False),
        (False, "0", True, False),
        (True, "true", False, False),
        ("abc", "abc", True, True),
        ("1e3", 1000, True, False),
        ("0x10", 16, True, False),
        ("1_000", 1000, False, False),
        ("Infinity", float("inf"), True, False),
        ("inf", float("inf"), False, False),
        ([1, 2], "1,2", True, False),
        ([5], 5, True, False),
        ([None], "", True, False),
        ({}, "[object Object]", True, False),
        (Decimal("2.50"), 2.5, True, True),
        (date(2026, 3, 2), "2026-03-02", True, True),
        ("٣", 3, False, False),  # only ASCII digits make a number
    ],
)
def test_loose_and_strict_equality(a: Any, b: Any, loose: bool, strict: bool) -> None:
    data = {"a": a, "b": b}
    assert run({"==": [{"var": "a"}, {"var": "b"}]}, data) is loose
    assert run({"==": [{"var": "b"}, {"var": "a"}]}, data) is loose
    assert run({"!=": [{"var": "a"}, {"var": "b"}]}, data) is (not loose)
    assert run({"===": [{"var": "a"}, {"var": "b"}]}, data) is strict
    assert run({"!==": [{"var": "a"}, {"var": "b"}]}, data) is (not strict)


def test_equality_with_a_literal_matches_the_generic_path() -> None:
    """The specialised `var == literal` closures give what the generic comparison gives."""
    values = [None, True, False, 0, 1, 1.0, 2, -1, "", "1", "a", "true", [1], [], {}, float("nan")]
    literals = [None, True, False, 0, 1, 2.5, "", "1", "a", "true"]
    for op in ("==", "!=", "===", "!==", "<", "<=", ">", ">="):
        for literal in literals:
            for value in values:
                data = {"v": value, "c": literal, "nested": {"v": value}}
                generic = run({op: [{"var": "v"}, {"var": "c"}]}, data)
                assert run({op: [{"var": "v"}, literal]}, data) is generic, (op, value, literal)
                assert run({op: [{"var": "nested.v"}, literal]}, data) is generic, (op, value, literal)
                flipped = run({op: [{"var": "c"}, {"var": "v"}]}, data)
                assert run({op: [literal, {"var": "v"}]}, data) is flipped, (op, literal, value)


def test_arrays_and_objects_are_equal_only_to_themselves() -> None:
    items = [1, 2]
    assert run({"==": [{"var": "a"}, {"var": "a"}]}, {"a": items}) is True
    assert run({"==": [{"var": "a"}, {"var": "b"}]}, {"a": items, "b": [1, 2]}) is False
    assert run({"==": [[1], [1]]}) is False


# --- ordering -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"<": ["10", "9"]}, True),  # two strings compare as text
        ({"<": [10, "9"]}, False),  # otherwise as numbers
        ({"<": [None, 1]}, True),  # null is 0
        ({">": [None, -1]}, True),
        ({"<": ["abc", 1]}, False),  # NaN compares false both ways
        ({">=": ["abc", 1]}, False),
        ({"<=": ["abc", "abc"]}, True),
        ({">": [[2], 1]}, True),
        ({"<": [[1, 2], 5]}, False),  # "1,2" is NaN
        ({"<": [False, True]}, True),
        ({"<": ["\uff5e", "\U0001f600"]}, False),  # UTF-16 code units: U+FF5E sorts after a surrogate
        ({"<": [1, 2, 3]}, True),
        ({"<": [1, 3, 3]}, False),
        ({"<=": [1, 3, 3]}, True),
        ({"<=": [1, "2", 3]}, True),
        ({"<": [{"var": "missing"}, 3]}, True),
    ],
)
def test_relational_comparisons(rule: dict[str, Any], expected: bool) -> None:
    assert run(rule, {}) is expected


def test_between_with_a_variable_in_the_middle() -> None:
    rule = {"<": [100, {"var": "beds"}, 800]}
    assert [run(rule, {"beds": b}) for b in (50, 100, 101, 799, 800, "500", None)] == [
        False,
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    assert run({"<=": [100, {"var": "beds"}, 800]}, {"beds": 800}) is True


# --- arithmetic and strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"+": ["1.5", "2abc"]}, 3.5),  # parseFloat takes the numeric prefix
        ({"+": []}, 0),
        ({"+": [" 7"]}, 7),
        ({"*": ["2"]}, "2"),  # one operand is returned unchanged, as json-logic-js does
        ({"*": ["2", "3"]}, 6),
        ({"-": ["5"]}, -5),
        ({"-": ["5", " 2 "]}, 3),
        ({"/": [1, 4]}, 0.25),
        ({"/": [4, 2]}, 2),
        ({"%": [-7, 3]}, -1),  # sign of the dividend
        ({"%": [7.5, 2]}, 1.5),
        ({"max": [1, "3", 2]}, 3),
        ({"min": [1, None, 2]}, 0),
        (
            {"cat": [0.1, 1e21, 1e-7, 1.0, 123456789012, None, True, [1, [2, 3]]]},
            "0.11e+211e-71123456789012nulltrue1,2,3",
        ),
        ({"cat": [0.000001, 1.5e-7, 2**53 + 2, -0.0, 1e300]}, "0.0000011.5e-79007199254740994" + "01e+300"),
        ({"substr": ["三甲医院", 2]}, "医院"),
        ({"substr": ["三甲医院", -2, 1]}, "医"),
        ({"substr": ["abc", 1, None]}, ""),  # an explicit null length is 0
        ({"substr": ["abc", "x"]}, "abc"),
        ({"substr": [12345, 1, 2]}, "23"),
        ({"in": [1, ["1"]]}, False),
        ({"in": ["", ""]}, False),
        ({"in": ["a", None]}, False),
        ({"in": [1, "a1b"]}, True),
        ({"in": [True, [1, True]]}, True),
        ({"merge": [[1], 2, [[3]]]}, [1, 2, [3]]),
        ({"log": [{"cat": ["a", 1]}]}, "a1"),
        ({"?:": [0, "yes", "no"]}, "no"),
    ],
)
def test_operator_values(rule: dict[str, Any], expected: Any) -> None:
    assert run(rule, {}) == expected


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        ({"/": [1, 0]}, lambda v: v == math.inf),
        ({"/": [-1, 0]}, lambda v: v == -math.inf),
        ({"/": [0, 0]}, math.isnan),
        ({"%": [1, 0]}, math.isnan),
        ({"+": [None]}, math.isnan),
        ({"max": [1, "a"]}, math.isnan),
        ({"-": ["x"]}, math.isnan),
        ({"*": [1e308, 10]}, lambda v: v == math.inf),
    ],
)
def test_ieee_results(rule: dict[str, Any], check: Any) -> None:
    assert check(run(rule, {}))


def test_integral_results_are_ints() -> None:
    assert type(run({"/": [4, 2]})) is int
    assert type(run({"+": [0.5, 0.5]})) is int
    assert type(run({"/": [1, 3]})) is float
    assert run({"+": [2**60, 0]}) == float(2**60)


# --- var, missing, scopes -----------------------------------------------------------------------------


def test_var_paths_defaults_and_indexes() -> None:
    data = {"a": None, "b": {"c": [10, 20, {"d": "x"}]}, "s": "abc", "t": (1, 2)}
    assert run({"var": ["a", 1]}, data) is None  # present-but-null is not missing
    assert run({"var": ["zz", 1]}, data) == 1
    assert run({"var": "b.c.2.d"}, data) == "x"
    assert run({"var": "b.c.01"}, data) is None  # not a canonical array index
    assert run({"var": "b.c.-1"}, data) is None
    assert run({"var": "b.c.length"}, data) == 3
    assert run({"var": "s.1"}, data) == "b"
    assert run({"var": "s.length"}, data) == 3
    assert run({"var": "t.1"}, data) == 2
    assert run({"var": 1.0}, ["x", "y"]) == "y"
    assert run({"var": [{"cat": ["b", ".c.", 0]}]}, data) == 10
    assert run({"var": ["zz", {"var": "s"}]}, data) == "abc"
    assert run({"var": "a.b"}, data) is None
    assert run({"var": "x"}, MappingProxyType({"x": 5})) == 5


def test_missing_counts_null_and_empty_string() -> None:
    data = {"a": 0, "b": False, "c": "", "d": None, "e": {"f": ""}}
    assert run({"missing": ["a", "b", "c", "d", "e.f", "g"]}, data) == ["c", "d", "e.f", "g"]
    assert run({"missing_some": [2, ["a", "c", "d"]]}, data) == ["c", "d"]
    assert run({"missing_some": [1, ["a", "c", "d"]]}, data) == []
    assert run({"missing_some": [0, "zz"]}, data) == []


def test_scoped_operators_read_the_item() -> None:
    data = {"items": [{"qty": 2, "sku": "a"}, {"qty": 0, "sku": "b"}], "qty": 99}
    assert run({"map": [{"var": "items"}, {"var": "sku"}]}, data) == ["a", "b"]
    assert run({"filter": [{"var": "items"}, {"var": "qty"}]}, data) == [data["items"][0]]
    assert run({"all": [{"var": "items"}, {">=": [{"var": "qty"}, 0]}]}, data) is True
    assert run({"some": [{"var": "items"}, {"==": [{"var": "qty"}, 99]}]}, data) is False
    assert run({"none": [{"var": "items"}, {"==": [{"var": "sku"}, "c"]}]}, data) is True
    assert (
        run({"reduce": [{"var": "items"}, {"+": [{"var": "accumulator"}, {"var": "current.qty"}]}, 0]}, data)
        == 2
    )
    assert run({"reduce": [{"var": "nope"}, {"var": "current"}]}, data) is None
    assert run({"map": ["abc", {"var": ""}]}, data) == []
    assert run({"all": ["abc", True]}, data) is False
    assert run({"some": [{"var": "items.0.sku"}, True]}, data) is False
    nested = {"rows": [[1, 2], [3]]}
    assert run(
        {
            "map": [
                {"var": "rows"},
                {"reduce": [{"var": ""}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]},
            ]
        },
        nested,
    ) == [3, 3]


def test_if_chains_and_boolean_context() -> None:
    rule = {"if": [{"var": "a"}, "A", {"var": "b"}, "B", "C"]}
    assert [run(rule, d) for d in ({"a": 1}, {"b": 1}, {})] == ["A", "B", "C"]
    assert run({"if": [{"var": "a"}, ""]}, {"a": 1}) == ""
    assert compile_condition({"if": [{"var": "a"}, [], [0]]}).test({"a": 1}) is False
    assert compile_condition({"and": [1, "x", []]}).test({}) is False
    assert run({"and": [1, "x"]}) == "x"
    assert run({"or": [0, "", None]}) is None


def test_literal_arrays_are_fresh_on_every_call() -> None:
    condition = compile_condition({"if": [True, ["apr"], []]})
    first = condition({})
    first.append("mutated")
    assert condition({}) == ["apr"]
    merged = compile_condition({"merge": [["a"], ["b"]]})
    merged({}).clear()
    assert merged({}) == ["a", "b"]


def test_rep_attr_reads_the_rep_with_a_default() -> None:
    data = {"rep": {"years": 7, "seniority": None, "meta": {"level": 3}}}
    assert run({"rep_attr": "years"}, data) == 7
    assert run({"rep_attr": ["seniority", "junior"]}, data) == "junior"
    assert run({"rep_attr": ["missing", 0]}, data) == 0
    assert run({"rep_attr": "meta.level"}, data) == 3
    assert run({"rep_attr": [{"cat": ["ye", "ars"]}]}, data) == 7
    assert run({"rep_attr": ["years", 1]}, {}) == 1
    assert run({">=": [{"rep_attr": ["years", 0]}, 5]}, data) is True


# --- domain operators ---------------------------------------------------------------------------------


def test_days_and_hours_since_use_the_given_now() -> None:
    assert run({"days_since": {"var": "d"}}, {"d": "2026-02-28"}, now=NOW) == 2.5
    assert run({"days_since": {"var": "d"}}, {"d": date(2026, 3, 1)}, now=NOW) == 1.5
    assert run({"hours_since": {"var": "d"}}, {"d": "2026-03-02T09:00:00Z"}, now=NOW) == 3
    assert run({"hours_since": {"var": "d"}}, {"d": "2026-03-02T17:00:00+08:00"}, now=NOW) == 3
    assert run({"hours_since": {"var": "d"}}, {"d": datetime(2026, 3, 2, 13, 0)}, now=NOW) == -1
    shanghai = timezone(timedelta(hours=8))
    local_now = NOW.astimezone(shanghai)  # 20:00 in Shanghai: a plain date is midnight there
    assert run({"hours_since": {"var": "d"}}, {"d": "2026-03-02"}, now=local_now) == 20
    naive_now = datetime(2026, 3, 2, 12, 0)
    assert run({"hours_since": {"var": "d"}}, {"d": "2026-03-02T10:00:00+00:00"}, now=naive_now) == 2
    for bad in (None, "", "yesterday", 17, "x" * 100, ["2026-01-01"]):
        assert run({"days_since": {"var": "d"}}, {"d": bad}, now=NOW) is None
    assert run({"<": [{"hours_since": {"var": "d"}}, 24]}, {"d": "2026-03-02T00:00:00Z"}, now=NOW) is True


def test_rules_needing_now_refuse_to_run_without_it() -> None:
    rule = {"and": [True, {">": [{"days_since": [{"var": "since"}]}, 3]}]}
    condition = compile_condition(rule, base_path="/stages/2/exit_criteria/condition")
    assert condition.needs_now is True
    assert compile_condition({"var": "x"}).needs_now is False
    with pytest.raises(ConditionError) as info:
        condition.test({"since": "2026-01-01"})
    assert info.value.errors[0]["path"] == "/stages/2/exit_criteria/condition/and/1/>/0"
    assert "now" in info.value.errors[0]["message"]
    assert condition.test({"since": "2026-01-01"}, now=NOW) is True


def test_in_region_matches_codes_and_sub_regions() -> None:
    regions = ["guangdong", "beijing"]
    cases = {
        "guangdong": True,
        "guangdong/shenzhen": True,
        "guangdongx": False,
        "shanghai": False,
        "": False,
        None: False,
        7: False,
    }
    for code, expected in cases.items():
        assert run({"in_region": [{"var": "r"}, regions]}, {"r": code}) is expected, code
    assert run({"in_region": [{"var": ""}, regions]}, {"region": "beijing"}) is True
    assert run({"in_region": [{"var": "r"}, "beijing"]}, {"r": "beijing/chaoyang"}) is True
    assert run({"in_region": ["guangdong", ["guangdong/shenzhen"]]}) is False
    assert run({"in_region": ["guangdong", None]}) is False


def test_contains_any_intersects_lists_strictly() -> None:
    assert (
        run({"contains_any": [{"var": "skills"}, ["ivd", "imaging"]]}, {"skills": ["surgical", "ivd"]})
        is True
    )
    assert run({"contains_any": [{"var": "skills"}, ["ivd"]]}, {"skills": []}) is False
    assert run({"contains_any": [{"var": "skills"}, ["ivd"]]}, {}) is False
    assert run({"contains_any": [{"var": "skill"}, ["ivd"]]}, {"skill": "ivd"}) is True
    assert run({"contains_any": [[1, 2], [True]]}) is False
    assert run({"contains_any": [[1, 2], [2.0]]}) is True
    assert run({"contains_any": [[[1]], [[1]]]}) is False


# --- compile errors -----------------------------------------------------------------------------------


def test_unknown_operator_points_at_its_node() -> None:
    assert paths({"and": [{"==": [1, 1]}, {"bogus": []}]}) == ["/and/1"]
    assert paths({"bogus": 1}) == [""]
    assert paths({"bogus": 1}, base_path="/rules/0/when") == ["/rules/0/when"]
    assert messages({"bogus": 1}) == ["Unknown operator 'bogus'"]
    assert paths({"method": [{"var": "x"}, "pop"]}) == [""]  # json-logic's `method` is deliberately absent
    assert paths({"!": {"nope": [{"var": "x"}]}}) == ["/!"]
    assert paths({"or": [{"a": 1}, {"if": [{"b": 2}]}]}) == ["/or/0", "/or/1/if/0"]
    assert paths({"/": [{"bogus": 1}, 2]}) == ["/~1/0"]
    assert paths({"and": [{"x~y": 1}]}) == ["/and/0"]


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"==": [1]}, "", "Operator '==' takes exactly 2 arguments, got 1"),
        ({"and": [{"==": [1, 2, 3]}]}, "/and/0", "Operator '==' takes exactly 2 arguments, got 3"),
        ({"and": []}, "", "Operator 'and' takes at least 1 argument, got 0"),
        ({"-": [1, 2, 3]}, "", "Operator '-' takes at most 2 arguments, got 3"),
        ({"!": []}, "", "Operator '!' takes exactly 1 argument, got 0"),
        ({"var": ["a", 1, 2]}, "", "Operator 'var' takes at most 2 arguments, got 3"),
        ({"days_since": []}, "", "Operator 'days_since' takes exactly 1 argument, got 0"),
        ({"==": 1, "!=": 2}, "", "An operation must be an object with exactly one operator (found 2 keys)"),
        ({"in": [1, {}]}, "/in/1", "An operation must be an object with exactly one operator (found 0 keys)"),
    ],
)
def test_bad_shapes_are_compile_errors(rule: Any, path: str, message: str) -> None:
    assert paths(rule) == [path]
    assert messages(rule) == [message]


def _nested(levels: int, name: str = "x") -> Any:
    node: Any = {"var": name}
    for _ in range(levels):
        node = {"!": [node]}
    return node


def test_depth_and_size_are_bounded() -> None:
    compile_condition(_nested(14))  # 30 levels of JSON
    assert paths(_nested(16), base_path="/when") == ["/when"]
    assert messages(_nested(16)) == ["Condition is nested deeper than 32 levels"]
    assert messages(_nested(5), max_depth=8) == ["Condition is nested deeper than 8 levels"]
    assert messages({"and": [True] * 2000}) == ["Condition has more than 2000 parts"]
    compile_condition({"and": [True] * 1997})
    assert messages({"or": [{"var": "a"}] * 10}, max_nodes=20) == ["Condition has more than 20 parts"]
    deep_data: Any = "x"
    for _ in range(500):
        deep_data = [deep_data]
    assert messages(deep_data) == ["Condition is nested deeper than 32 levels"]
    with pytest.raises(ValueError):
        compile_condition(True, max_depth=5000)


def test_non_json_input_is_refused_with_pointers() -> None:
    assert paths({"in": [{"var": "x"}, {1, 2}]}) == ["/in/1"]
    assert messages({"in": [{"var": "x"}, {1, 2}]}) == ["Not a JSON value (set)"]
    assert paths({"==": [float("nan"), 1]}) == ["/==/0"]
    assert paths({"==": [1, float("inf")]}) == ["/==/1"]
    assert paths({"and": [{1: 2}]}) == ["/and/0"]
    assert paths(("a", "b")) == [""]
    assert paths({"var": b"x"}) == ["/var"]
    assert sorted(paths({"==": [object(), datetime(2026, 1, 1)]})) == ["/==/0", "/==/1"]
    with pytest.raises(ConditionError):
        evaluate({"==": [Decimal("1"), 1]}, {})


def test_condition_errors_for_validators() -> None:
    assert condition_errors({"==": [{"var": "a"}, 1]}) == []
    assert condition_errors(True) == []
    assert condition_errors({"bogus": 1}, "/x") == [
        {"path": "/x", "message": "Unknown operator 'bogus'", "message_zh": "未知的运算符“bogus”"}
    ]
    error = ConditionError(condition_errors({"and": [{"a": 1}, {"b": 1}]}, "/w"))
    assert str(error) == "/w/and/0: Unknown operator 'a' (+1 more)"


# --- caching, variables, the Condition value ----------------------------------------------------------


def test_evaluate_compiles_each_rule_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    original = conditions.compile_condition

    def counting(rule: Any, **kwargs: Any) -> Condition:
        calls.append(rule)
        return original(rule, **kwargs)

    monkeypatch.setattr(conditions, "compile_condition", counting)
    conditions._compiled.cache_clear()
    rule = {"and": [{"==": [{"var": "grade"}, "a"]}, {">": [{"var": "beds"}, 100]}]}
    assert evaluate(rule, {"grade": "a", "beds": 200}) is True
    assert evaluate(copy.deepcopy(rule), {"grade": "a", "beds": 50}) is False
    assert evaluate(json.loads(json.dumps(rule)), {"grade": "b"}) is False
    assert len(calls) == 1
    assert evaluate({"==": [1, 1.0]}, {}) is True
    assert evaluate({"==": [1, True]}, {}) is True
    assert evaluate({"===": [1, True]}, {}) is False
    assert len(calls) == 4  # 1, 1.0 and true are different rules
    conditions._compiled.cache_clear()


def test_variables_lists_the_paths_a_rule_reads() -> None:
    rule = {
        "and": [
            {"==": [{"var": "a.b"}, 1]},
            {"missing": ["c", "d.e"]},
            {"missing_some": [1, ["f"]]},
            {"some": [{"var": "items"}, {">": [{"var": "qty"}, 0]}]},
            {"rep_attr": ["years", 0]},
            {"var": 3},
        ]
    }
    assert compile_condition(rule).variables == frozenset({"a.b", "c", "d.e", "f", "items", "rep.years", "3"})
    assert compile_condition({"var": [{"cat": ["a", "b"]}]}).variables == frozenset({""})
    assert compile_condition({"var": ""}).variables == frozenset({""})
    assert compile_condition({"missing": {"var": "keys"}}).variables == frozenset({"keys", ""})
    assert compile_condition({"rep_attr": {"var": "which"}}).variables == frozenset({"which", "rep"})
    assert compile_condition(True).variables == frozenset()


def test_condition_is_a_frozen_copy_of_its_rule() -> None:
    rule = {"in": [{"var": "x"}, ["a", "b"]]}
    condition = compile_condition(rule)
    rule["in"][1].append("c")
    assert condition.rule == {"in": [{"var": "x"}, ["a", "b"]]}
    assert condition.test({"x": "c"}) is False
    with pytest.raises(AttributeError):
        condition.rule = {}  # type: ignore[misc]
    built = Condition({"==": [{"var": "x"}, 1]})
    assert built.test({"x": "1"}) is True
    assert built.variables == frozenset({"x"})
    assert built == compile_condition({"==": [{"var": "x"}, 1]})
    changed = dataclasses.replace(built, rule={"var": "y"})
    assert changed.variables == frozenset({"y"})
    assert changed({"y": 5}) == 5 and changed.test({"y": 0}) is False
    assert "_value" not in repr(built) and "x" in repr(built)


# --- no code execution --------------------------------------------------------------------------------


class Spy:
    """Records every attribute read; a rule must never trigger one."""

    touched: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        Spy.touched.append(name)
        return object.__getattribute__(self, name)

    def get(self, key: str, default: Any = None) -> Any:  # a dict-like method a sloppy evaluator might call
        raise AssertionError("get() called")

    def __getitem__(self, key: Any) -> Any:
        raise AssertionError("__getitem__ called")


def test_rules_cannot_reach_attributes_or_call_methods() -> None:
    spy = Spy()
    Spy.touched.clear()
    for rule in (
        {"var": "__class__"},
        {"var": "__class__.__init__.__globals__"},
        {"var": "get"},
        {"var": "__dict__"},
        {"var": "0"},
        {"var": "length"},
    ):
        assert evaluate(rule, spy) is None
        assert evaluate(rule, {"inner": spy}) is None
        assert evaluate({"var": f"inner.{rule['var']}"}, {"inner": spy}) is None
    assert Spy.touched == []
    assert evaluate({"var": "__class__"}, {}) is None
    assert evaluate({"var": "pop"}, {"a": 1}) is None
    assert evaluate({"var": "__len__"}, [1, 2]) is None
    assert evaluate({"var": "upper"}, "text") is None
    assert evaluate({"var": "real"}, 5) is None
    assert evaluate({"var": "x.__class__"}, {"x": 1}) is None
    lazy: defaultdict[str, list[Any]] = defaultdict(list)
    assert evaluate({"var": "x"}, lazy) is None
    assert dict(lazy) == {}  # `__missing__` was not triggered


def test_evaluation_never_mutates_data() -> None:
    data = {"items": [3, 1, 2], "nested": {"a": [1]}}
    before = copy.deepcopy(data)
    for rule in (
        {"merge": [{"var": "items"}, [4]]},
        {"map": [{"var": "items"}, {"+": [{"var": ""}, 1]}]},
        {"filter": [{"var": "items"}, True]},
        {"reduce": [{"var": "items"}, {"merge": [{"var": "accumulator"}, [{"var": "current"}]]}, []]},
        {"missing": ["nested.b"]},
    ):
        result = evaluate(rule, data)
        if isinstance(result, list):
            result.append("x")
    assert data == before


def test_the_modules_use_no_dynamic_code() -> None:
    package = ROOT / "salesmesh" / "metamodel"
    sources = {p.name: p.read_text(encoding="utf-8") for p in package.glob("conditions*.py")}
    assert set(sources) == {
        "conditions.py",
        "conditions_compiler.py",
        "conditions_nodes.py",
        "conditions_ops.py",
        "conditions_sql.py",
    }
    forbidden = re.compile(r"(?<![\w.])(eval|exec|compile|getattr|__import__|attrgetter|methodcaller)\(")
    for name, text in sources.items():
        assert not forbidden.search(text), (name, forbidden.search(text))


# --- the operator registry ----------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Give the test its own copy of the registered operators (restored afterwards)."""
    copied = dict(conditions_compiler.REGISTERED)
    monkeypatch.setattr(conditions_compiler, "REGISTERED", copied)
    conditions._compiled.cache_clear()
    yield copied
    conditions._compiled.cache_clear()


def test_registered_operators_compile_and_run(registry: dict[str, Any]) -> None:
    register_operator("double", lambda v: 2 * (v or 0), min_args=1, max_args=1)
    register_operator("age_at", lambda born, *, now: now.year - born, min_args=1, max_args=1, needs_now=True)
    assert "double" in operator_names() and "==" in operator_names()
    assert evaluate({"double": {"var": "n"}}, {"n": 4}) == 8
    assert evaluate({"age_at": 1990}, {}, now=NOW) == 36
    assert paths({"and": [{"double": [1, 2]}]}) == ["/and/0"]
    assert compile_condition({"age_at": 1990}).needs_now is True


def test_duplicate_operator_names_fail_at_registration(registry: dict[str, Any]) -> None:
    register_operator("score_band", lambda v: v)
    for name in ("score_band", "days_since", "var", "==", "rep_attr"):
        with pytest.raises(ValueError, match="already registered"):
            register_operator(name, lambda v: v)
    with pytest.raises(ValueError):
        register_operator("", lambda v: v)
    with pytest.raises(ValueError):
        register_operator("x" * 41, lambda v: v)
    with pytest.raises(ValueError):
        register_operator("bounds", lambda v: v, min_args=2, max_args=1)
    with pytest.raises(TypeError):
        register_operator("not_callable", 5)  # type: ignore[arg-type]


def test_built_in_domain_operators_are_registered() -> None:
    assert {"days_since", "hours_since", "in_region", "contains_any", "rep_attr"} <= set(operator_names())


# --- validation of definitions ------------------------------------------------------------------------


def _pack_doc(name: str) -> dict[str, Any]:
    return json.loads((PACKS / "medical-device-direct" / "definitions" / name).read_text(encoding="utf-8"))


def _errors_at(doc: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for error in validate_document(doc):
        found.setdefault(error.path, []).append(error.message)
        assert CJK.search(error.message_zh)
    return found


def test_form_condition_with_an_unknown_operator_fails_validation() -> None:
    doc = _pack_doc("lead_form.json")
    assert validate_document(doc) == []
    doc["sections"][0]["fields"][1]["visible_if"] = {"bogus": []}
    assert _errors_at(doc) == {"/sections/0/fields/1/visible_if": ["Unknown operator 'bogus'"]}
    field = doc["sections"][2]["fields"][4]
    field["required_if"] = {"and": [field["required_if"], {"==": [{"var": "tender_planned"}]}]}
    assert _errors_at(doc)["/sections/2/fields/4/required_if/and/1"] == [
        "Operator '==' takes exactly 2 arguments, got 1"
    ]


def test_routing_action_and_pipeline_conditions_are_compiled() -> None:
    routing = _pack_doc("routing.json")
    routing["rules"][1]["candidates"]["filter"]["or"][1] = {"less_than": [{"var": "years_medical"}, 3]}
    routing["rules"][2]["when"] = {"==": [{"var": "institution_type"}, "hospital", "clinic"]}
    assert _errors_at(routing) == {
        "/rules/1/candidates/filter/or/1": ["Unknown operator 'less_than'"],
        "/rules/2/when": ["Operator '==' takes exactly 2 arguments, got 3"],
    }
    pipeline = _pack_doc("pipeline.json")
    pipeline["stages"][3]["exit_criteria"]["condition"] = {"!=": [{"var": "trial_result"}, {"exists": 1}]}
    assert list(_errors_at(pipeline)) == ["/stages/3/exit_criteria/condition/!=/1"]
    action = _pack_doc("action_packs/contract.json")
    action["steps"][2]["when"] = {"!": [{"var": ["budget_approved", 1, 2]}]}
    assert list(_errors_at(action)) == ["/steps/2/when/!/0"]


def test_validation_keeps_its_tighter_condition_limits() -> None:
    doc = _pack_doc("lead_form.json")
    # 18 levels of JSON: fine at run time, too deep for a definition
    doc["sections"][2]["fields"][4]["visible_if"] = _nested(8, "tender_planned")
    expected = ["Condition is nested deeper than 16 levels"]
    assert _errors_at(doc) == {"/sections/2/fields/4/visible_if": expected}


def test_every_shipped_condition_compiles() -> None:
    found = 0
    for pack in ("medical-device-direct", "saas-remote-team"):
        manifest = json.loads((PACKS / pack / "pack.json").read_text(encoding="utf-8"))
        for rel in manifest["definitions"]:
            doc = json.loads((PACKS / pack / rel).read_text(encoding="utf-8"))
            for pointer, rule in iter_conditions(doc):
                condition = compile_condition(rule, base_path=pointer)
                assert condition.needs_now is False
                found += 1
    assert found >= 15
