"""The JsonLogic condition compiler every part of the runtime shares (routing rules, form visibility and
requiredness, stage guards, action-step conditions).

`compile_condition(rule)` checks a rule once — JSON only, bounded depth and node count, known operators
with the right number of arguments — and turns it into nested Python closures; a `Condition` then
evaluates it against plain data (dicts and lists; nothing else is ever indexed, no attribute of any
object is read, nothing is `eval`ed). Errors name the JSON pointer of the offending node inside the rule,
prefixed by `base_path` (the rule's own pointer inside its definition), in English and Chinese. The
operator set is fixed: the standard JsonLogic operators with `json-logic-js` semantics (see
`conditions_ops`), the built-in `rep_attr`, and domain operators registered at start-up with
`register_operator` (`days_since`, `hours_since`, `in_region`, `contains_any` come built in). Common
shapes (`{"==": [{"var": "x"}, "a"]}`, `{"in": [{"var": "x"}, [...]]}`, `and`/`or` of those) compile to
specialised closures, and `Condition.test` runs a boolean-only variant of the tree, so a routing rule
costs about as much as the hand-written check. The compiler itself is `conditions_compiler`; the SQL
subset (`to_sql`, re-exported here) lives in `conditions_sql`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from salesmesh.metamodel import conditions_compiler as compiler
from salesmesh.metamodel import conditions_ops as ops
from salesmesh.metamodel.conditions_compiler import ConditionError, NotCompilable
from salesmesh.metamodel.conditions_nodes import Fn
from salesmesh.metamodel.conditions_ops import truthy
from salesmesh.metamodel.conditions_sql import to_sql

__all__ = [
    "Condition",
    "ConditionError",
    "NotCompilable",
    "compile_condition",
    "condition_errors",
    "evaluate",
    "operator_names",
    "register_operator",
    "to_sql",
    "truthy",
]

DEFAULT_MAX_DEPTH = compiler.DEFAULT_MAX_DEPTH
DEFAULT_MAX_NODES = compiler.DEFAULT_MAX_NODES


@dataclass(frozen=True)
class Condition:
    """A compiled rule. `variables` lists the `var` paths it reads from the top-level data ("" = the
    whole data, also used when a path is computed at run time); `needs_now` tells whether `now` must be
    passed (rules using `days_since`/`hours_since`)."""

    rule: Any
    variables: frozenset[str] = frozenset()
    needs_now: bool = False
    # (value closure, boolean closure) from compile_condition; without it the rule is compiled here, so
    # `Condition(rule)` and `dataclasses.replace(condition, rule=...)` give a consistent object.
    _closures: InitVar[tuple[Fn, Fn] | None] = None
    _value: Fn = field(init=False, repr=False, compare=False)
    _test: Fn = field(init=False, repr=False, compare=False)

    def __post_init__(self, _closures: tuple[Fn, Fn] | None) -> None:
        if _closures is None:
            built = compile_condition(self.rule)
            object.__setattr__(self, "rule", built.rule)
            object.__setattr__(self, "variables", built.variables)
            object.__setattr__(self, "needs_now", built.needs_now)
            _closures = (built._value, built._test)
        object.__setattr__(self, "_value", _closures[0])
        object.__setattr__(self, "_test", _closures[1])
        # The boolean closure itself becomes the bound `test`: one Python call less per evaluation.
        object.__setattr__(self, "test", _closures[1])

    def __call__(self, data: Any, *, now: datetime | None = None) -> Any:
        """Evaluate the rule against `data` and return the raw JsonLogic result."""
        return self._value(data, now)

    def test(self, data: Any, *, now: datetime | None = None) -> bool:
        """Evaluate the rule against `data` and return its JsonLogic truthiness."""
        return self._test(data, now)  # replaced per instance by __post_init__


# --- operators ----------------------------------------------------------------------------------------


def register_operator(
    name: str,
    fn: Callable[..., Any],
    *,
    min_args: int = 0,
    max_args: int | None = None,
    needs_now: bool = False,
) -> None:
    """Add a domain operator: `fn(*evaluated_args)` (plus `now=` when `needs_now`); call at start-up."""
    if not isinstance(name, str) or not name or len(name) > 40:
        raise ValueError(f"condition operator name must be a string of 1-40 characters, got {name!r}")
    if name in compiler.BUILTIN_ARITY or name in compiler.REGISTERED:
        raise ValueError(f"condition operator {name!r} is already registered")
    if not callable(fn):
        raise TypeError(f"condition operator {name!r}: {fn!r} is not callable")
    if min_args < 0 or (max_args is not None and max_args < min_args):
        raise ValueError(f"condition operator {name!r}: bad argument bounds {min_args}..{max_args}")
    compiler.REGISTERED[name] = compiler.Operator(name, fn, min_args, max_args, needs_now)


def operator_names() -> list[str]:
    """Return every operator a rule may use, sorted."""
    return sorted({*compiler.BUILTIN_ARITY, *compiler.REGISTERED})


# --- compiling and evaluating --------------------------------------------------------------------------


def compile_condition(
    rule: Any, *, base_path: str = "", max_depth: int = DEFAULT_MAX_DEPTH, max_nodes: int = DEFAULT_MAX_NODES
) -> Condition:
    """Compile a JsonLogic rule; raise ConditionError (pointers prefixed by `base_path`) if it is invalid."""
    node, variables, needs_now = compiler.build(rule, base_path, max_depth, max_nodes)
    return Condition(
        rule=copy.deepcopy(rule),
        variables=variables,
        needs_now=needs_now,
        _closures=(node.value, node.as_bool()),
    )


def condition_errors(
    rule: Any,
    base_path: str = "",
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> list[dict[str, str]]:
    """Return the problems that stop a rule compiling ([] when it compiles), for validators."""
    try:
        compile_condition(rule, base_path=base_path, max_depth=max_depth, max_nodes=max_nodes)
    except ConditionError as exc:
        return exc.errors
    return []


@lru_cache(maxsize=1024)
def _compiled(canonical: str) -> Condition:
    return compile_condition(json.loads(canonical))


def evaluate(rule: Any, data: Any, *, now: datetime | None = None) -> Any:
    """Evaluate a rule against `data` (compiled once per distinct rule, LRU-cached by canonical JSON)."""
    try:
        canonical = json.dumps(
            rule, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError):
        compile_condition(rule)  # not JSON: raises ConditionError naming the offending node
        raise
    return _compiled(canonical)(data, now=now)


register_operator("days_since", ops.days_since, min_args=1, max_args=1, needs_now=True)
register_operator("hours_since", ops.hours_since, min_args=1, max_args=1, needs_now=True)
register_operator("in_region", ops.in_region, min_args=2, max_args=2)
register_operator("contains_any", ops.contains_any, min_args=2, max_args=2)
