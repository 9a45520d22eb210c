"""The closures a compiled JsonLogic rule is made of, and the specialised shapes that make it fast.

Every compiled node is a closure `fn(data, now=None)`. `_Node` carries a node's value closure plus what
its parent may specialise on: the literal it is, the scalars of a literal array, or the static path of a
`var`. The compiler in `conditions` builds the tree; this module supplies the closures: `var` lookups
(dict key inline, deeper paths through `conditions_ops.lookup`), `var <op> literal` comparisons with an
exact-type fast path that falls back to the full JavaScript semantics, set lookups for `in` with a
literal list, unrolled `and`/`or`, and a boolean-only variant of every node (`Node.as_bool`) so
`Condition.test` never builds intermediate values. Only dicts, lists and strings are ever indexed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from salesmesh.metamodel import conditions_ops as ops
from salesmesh.metamodel.conditions_ops import truthy

Fn = Callable[..., Any]  # fn(data, now=None) -> value
Var = tuple[
    str | None, tuple[str, ...], Any
]  # (single key or None, path segments (() = whole data), default)
NO = object()  # "not a constant"

COMPARE: dict[str, Fn] = {
    "==": ops.loose_eq,
    "===": ops.strict_eq,
    "!=": lambda a, b: not ops.loose_eq(a, b),
    "!==": lambda a, b: not ops.strict_eq(a, b),
    "<": ops.op_lt,
    "<=": ops.op_le,
    ">": ops.greater,
    ">=": ops.greater_equal,
}
FLIPPED = {"==": "==", "===": "===", "!=": "!=", "!==": "!==", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
EQUALITY = frozenset({"==", "===", "!=", "!=="})


def constant(value: Any) -> Fn:
    """Return a closure that always gives `value`."""
    return lambda d, now=None: value


class Node:
    """A compiled sub-rule: its value closure plus what parents may specialise on."""

    __slots__ = ("value", "const", "items", "var", "returns_bool", "_bool", "_make_bool")

    def __init__(
        self,
        value: Fn,
        *,
        const: Any = NO,
        items: tuple[Any, ...] | None = None,
        var: Var | None = None,
        returns_bool: bool = False,
        make_bool: Callable[[], Fn] | None = None,
    ):
        self.value = value
        self.const = const  # the scalar literal this node is, or NO
        self.items = items  # the scalars of a literal array, or None
        self.var = var  # the static path of a `var`, or None
        self.returns_bool = returns_bool
        self._make_bool = make_bool
        self._bool: Fn | None = None

    def as_bool(self) -> Fn:
        """Return a closure giving the node's truthiness (built once)."""
        if self._bool is None:
            if self._make_bool is not None:
                self._bool = self._make_bool()
            elif self.returns_bool:
                self._bool = self.value
            else:
                value = self.value
                self._bool = lambda d, now=None: truthy(value(d, now))
        return self._bool


DEAD = Node(constant(None))  # stands in for a node that failed to compile (never evaluated)


def all_of(fns: list[Fn]) -> Fn:
    """Combine boolean closures with `and` (unrolled for up to three)."""
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda d, now=None: a(d, now) and b(d, now)
    if len(fns) == 3:
        a, b, c = fns
        return lambda d, now=None: a(d, now) and b(d, now) and c(d, now)

    def every(d: Any, now: Any = None) -> bool:
        return all(fn(d, now) for fn in fns)

    return every


def any_of(fns: list[Fn]) -> Fn:
    """Combine boolean closures with `or` (unrolled for up to three)."""
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return lambda d, now=None: a(d, now) or b(d, now)
    if len(fns) == 3:
        a, b, c = fns
        return lambda d, now=None: a(d, now) or b(d, now) or c(d, now)

    def first(d: Any, now: Any = None) -> bool:
        return any(fn(d, now) for fn in fns)

    return first


def eager(fn: Fn, fns: list[Fn]) -> Fn:
    """Call `fn` with the values of its argument closures."""
    if len(fns) == 1:
        (a,) = fns
        return lambda d, now=None: fn(a(d, now))
    if len(fns) == 2:
        a, b = fns
        return lambda d, now=None: fn(a(d, now), b(d, now))
    if len(fns) == 3:
        a, b, c = fns
        return lambda d, now=None: fn(a(d, now), b(d, now), c(d, now))
    return lambda d, now=None: fn(*[f(d, now) for f in fns])


# --- var ----------------------------------------------------------------------------------------------


def var_node(segments: tuple[str, ...] | None, default: Any) -> Node:
    """Compile a `var` with a static path (None = the whole data) and a literal default."""
    if segments is None:
        return Node(lambda d, now=None: d, var=(None, (), None))
    lookup = ops.lookup
    var: Var = (segments[0] if len(segments) == 1 else None, segments, default)
    if len(segments) == 2:
        outer, inner = segments

        def read_two(d: Any, now: Any = None) -> Any:
            if type(d) is dict:
                child = d.get(outer)
                if type(child) is dict:
                    return child.get(inner, default)
            return lookup(d, segments, default)

        return Node(read_two, var=var)
    if var[0] is None:
        step, missing = ops.step, ops.MISSING

        def read_path(d: Any, now: Any = None) -> Any:
            for segment in segments:
                if type(d) is dict:
                    d = d.get(segment, missing)
                elif d is None:
                    return default
                else:
                    d = step(d, segment)
                if d is missing:
                    return default
            return d

        return Node(read_path, var=var)
    key = var[0]

    def read(d: Any, now: Any = None) -> Any:
        if type(d) is dict:
            return d.get(key, default)
        return lookup(d, segments, default)

    def read_truthy(d: Any, now: Any = None) -> bool:
        v = d.get(key, default) if type(d) is dict else lookup(d, segments, default)
        if v is None or v is False:
            return False
        if v is True:
            return True
        if type(v) is str:
            return v != ""
        return truthy(v)

    return Node(read, var=var, make_bool=lambda: read_truthy)


def var_falsy(node: Node) -> Fn:
    """Compile `{"!": var}` in one closure."""
    assert node.var is not None
    key, segments, default = node.var
    lookup = ops.lookup
    if key is None:
        get = node.value
        return lambda d, now=None: not truthy(get(d, now))

    def read_falsy(d: Any, now: Any = None) -> bool:
        v = d.get(key, default) if type(d) is dict else lookup(d, segments, default)
        if v is None or v is False:
            return True
        if v is True:
            return False
        if type(v) is str:
            return v == ""
        return not truthy(v)

    return read_falsy


# --- comparisons --------------------------------------------------------------------------------------
#
# Each closure below reads its operand as
#     v = d.get(key, default) if inline and type(d) is dict else get(d, now)
# so a one-segment `var` on dict data costs no extra call, and any other node is simply called.


def _source(node: Node) -> tuple[bool, str | None, Any, Fn]:
    """Return (inline, key, default, value closure) for reading a comparison operand."""
    if node.var is not None and node.var[0] is not None:
        return True, node.var[0], node.var[2], node.value
    return False, None, None, node.value


def _is_null(op: str, node: Node) -> Fn:
    inline, key, default, get = _source(node)
    if op in ("==", "==="):
        return lambda d, now=None: (
            (d.get(key, default) if inline and type(d) is dict else get(d, now)) is None
        )
    return lambda d, now=None: (
        (d.get(key, default) if inline and type(d) is dict else get(d, now)) is not None
    )


def _exact_equality(op: str, node: Node, c: Any, exact: type) -> Fn:
    """`value ==/!= literal` where the literal is a string or boolean: exact-type values compare directly."""
    inline, key, default, get = _source(node)
    slow = COMPARE[op]
    if node.var == (None, (), None):  # the whole data, e.g. the current item inside `some`/`filter`
        if op in ("==", "==="):
            return lambda d, now=None: (d == c) if type(d) is exact else (d is not None and slow(d, c))
        return lambda d, now=None: (d != c) if type(d) is exact else (d is None or slow(d, c))
    if op in ("==", "==="):

        def eq(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            if type(v) is exact:
                return v == c
            return False if v is None else slow(v, c)

        return eq

    def ne(d: Any, now: Any = None) -> bool:
        v = d.get(key, default) if inline and type(d) is dict else get(d, now)
        if type(v) is exact:
            return v != c
        return True if v is None else slow(v, c)

    return ne


def _numeric(op: str, node: Node, c: float) -> Fn:
    """`value <op> number`: int/float values compare directly, anything else through JavaScript rules."""
    inline, key, default, get = _source(node)
    slow = COMPARE[op]
    if op in ("==", "==="):

        def eq(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v == c if t is int or t is float else slow(v, c)

        return eq
    if op in ("!=", "!=="):

        def ne(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v != c if t is int or t is float else slow(v, c)

        return ne
    if op == "<":

        def lt(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v < c if t is int or t is float else slow(v, c)

        return lt
    if op == "<=":

        def le(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v <= c if t is int or t is float else slow(v, c)

        return le
    if op == ">":

        def gt(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v > c if t is int or t is float else slow(v, c)

        return gt

    def ge(d: Any, now: Any = None) -> bool:
        v = d.get(key, default) if inline and type(d) is dict else get(d, now)
        t = type(v)
        return v >= c if t is int or t is float else slow(v, c)

    return ge


def compare_const(op: str, node: Node, c: Any) -> Fn | None:
    """Compile `value <op> literal` with an exact-type fast path, or None when no shortcut applies."""
    ct = type(c)
    if c is None and op in EQUALITY:
        return _is_null(op, node)
    if (ct is str or ct is bool) and op in EQUALITY:
        return _exact_equality(op, node, c, ct)
    if (ct is int or ct is float) and math.isfinite(c):
        return _numeric(op, node, c)
    return None


def between(op: str, low: float, node: Node, high: float) -> Fn:
    """Compile `{"<": [low, value, high]}` (or `<=`) with numeric literal bounds."""
    inline, key, default, get = _source(node)
    slow = COMPARE[op]
    if op == "<":

        def inside(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return low < v < high if t is int or t is float else slow(low, v, high)

        return inside

    def inside_or_on(d: Any, now: Any = None) -> bool:
        v = d.get(key, default) if inline and type(d) is dict else get(d, now)
        t = type(v)
        return low <= v <= high if t is int or t is float else slow(low, v, high)

    return inside_or_on


def in_items(node: Node, items: tuple[Any, ...]) -> Fn:
    """Compile `{"in": [value, [literal, ...]]}` as a set lookup when the literals share one type."""
    inline, key, default, get = _source(node)
    op_in = ops.op_in
    kinds = {type(i) for i in items}
    if kinds == {str}:
        members = frozenset(items)

        def in_strings(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            if type(v) is str:
                return v in members
            return False if v is None else op_in(v, items)

        return in_strings
    if kinds and kinds <= {int, float} and all(math.isfinite(i) for i in items):
        numbers = frozenset(items)

        def in_numbers(d: Any, now: Any = None) -> bool:
            v = d.get(key, default) if inline and type(d) is dict else get(d, now)
            t = type(v)
            return v in numbers if t is int or t is float else op_in(v, items)

        return in_numbers
    return lambda d, now=None: op_in(get(d, now), items)
