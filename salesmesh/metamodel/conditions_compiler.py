"""How a JsonLogic rule becomes closures: the input check, the operator table and the compiler.

`build(rule, base_path, max_depth, max_nodes)` first scans the rule iteratively (plain JSON only —
finite numbers, string keys — within the depth and node limits), then compiles it recursively into the
`conditions_nodes` closures, collecting every unknown operator, wrong argument count and malformed
operation with the JSON pointer of its node (prefixed by `base_path`), the top-level `var` paths the
rule reads and whether it needs `now`. The error types live here so the compiled closures can raise
them; `conditions` is the public face (`compile_condition`, `register_operator`, ...) and re-exports
them. `REGISTERED` holds the domain operators `conditions.register_operator` adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from salesmesh.metamodel import conditions_nodes as nodes_
from salesmesh.metamodel import conditions_ops as ops
from salesmesh.metamodel.conditions_nodes import COMPARE, DEAD, FLIPPED, NO, Fn, Node, constant
from salesmesh.metamodel.conditions_ops import truthy

DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_NODES = 2000
DEPTH_CEILING = 200  # keeps compilation and evaluation far from Python's recursion limit


class ConditionError(Exception):
    """A rule that cannot be compiled (or evaluated); `.errors` lists {path, message, message_zh}."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        summary = f"{first['path'] or '/'}: {first['message']}" if first else "invalid condition"
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(summary + more)


class NotCompilable(ConditionError):
    """A valid rule that falls outside the SQL subset (see `conditions_sql`); `.errors` names the part."""


def pointer(base: str, parts: tuple[Any, ...]) -> str:
    """Append path segments to a JSON pointer (RFC 6901 escaping)."""
    return base + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def problem(path: str, en: str, zh: str) -> dict[str, str]:
    """Build one bilingual error entry."""
    return {"path": path, "message": en, "message_zh": zh}


# --- the operator table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    name: str
    fn: Fn
    min_args: int
    max_args: int | None
    needs_now: bool


# Standard JsonLogic operators (plus `rep_attr`) and how many arguments each takes (min, max or None).
BUILTIN_ARITY: dict[str, tuple[int, int | None]] = {
    "var": (0, 2),
    "missing": (0, None),
    "missing_some": (2, 2),
    "if": (0, None),
    "?:": (0, None),
    "and": (1, None),
    "or": (1, None),
    "!": (1, 1),
    "!!": (1, 1),
    "==": (2, 2),
    "===": (2, 2),
    "!=": (2, 2),
    "!==": (2, 2),
    ">": (2, 2),
    ">=": (2, 2),
    "<": (2, 3),
    "<=": (2, 3),
    "max": (1, None),
    "min": (1, None),
    "+": (0, None),
    "-": (1, 2),
    "*": (1, None),
    "/": (2, 2),
    "%": (2, 2),
    "map": (2, 2),
    "filter": (2, 2),
    "reduce": (2, 3),
    "all": (2, 2),
    "none": (2, 2),
    "some": (2, 2),
    "merge": (0, None),
    "in": (2, 2),
    "cat": (0, None),
    "substr": (2, 3),
    "log": (1, 1),
    "rep_attr": (1, 2),
}
_EAGER: dict[str, Fn] = {
    "max": ops.op_max,
    "min": ops.op_min,
    "+": ops.op_add,
    "-": ops.op_sub,
    "*": ops.op_mul,
    "/": ops.op_div,
    "%": ops.op_mod,
    "merge": ops.op_merge,
    "in": ops.op_in,
    "cat": ops.op_cat,
    "substr": ops.op_substr,
    "log": ops.op_log,
}
_BOOLEAN_RESULT = frozenset({*COMPARE, "!", "!!", "in", "all", "none", "some"})
# Operators that never return or keep an argument: literal arrays reach them as shared tuples, not copies.
_TAKE_TUPLES = frozenset({"in", "cat", "substr", "max", "min", "+", "-", "/", "%", "merge"})
_SCOPED = frozenset({"map", "filter", "reduce", "all", "none", "some"})
REGISTERED: dict[str, Operator] = {}


# --- the compiler -------------------------------------------------------------------------------------


def _scan(rule: Any, base: str, max_depth: int, max_nodes: int) -> list[dict[str, str]]:
    """Check that a rule is plain JSON of bounded depth and size (iteratively: no recursion)."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(rule, 1, ())]
    count = 0
    while stack:
        value, level, path = stack.pop()
        count += 1
        if count > max_nodes:
            return [
                problem(
                    base,
                    f"Condition has more than {max_nodes} parts",
                    f"条件的组成部分超过 {max_nodes} 个",
                )
            ]
        if level > max_depth:
            return [
                problem(
                    base,
                    f"Condition is nested deeper than {max_depth} levels",
                    f"条件嵌套超过 {max_depth} 层",
                )
            ]
        if value is None or isinstance(value, bool | int | str):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                errors.append(
                    problem(
                        pointer(base, path),
                        "Numbers must be finite",
                        "数字必须是有限值（不能是 NaN 或无穷大）",
                    )
                )
        elif isinstance(value, dict):
            for key, child in value.items():
                if not isinstance(key, str):
                    errors.append(
                        problem(pointer(base, path), "Object keys must be strings", "对象的键必须是字符串")
                    )
                    break
                stack.append((child, level + 1, (*path, key)))
        elif isinstance(value, list):
            stack.extend((child, level + 1, (*path, i)) for i, child in enumerate(value))
        else:
            name = type(value).__name__
            errors.append(
                problem(pointer(base, path), f"Not a JSON value ({name})", f"不是 JSON 值（{name}）")
            )
    return errors


def _numeric_literal(node: Node) -> bool:
    return type(node.const) in (int, float) and math.isfinite(node.const)


def _arguments(nodes: list[Node]) -> list[Fn]:
    """Argument closures, with literal arrays passed as one shared tuple instead of a fresh list."""
    return [constant(n.items) if n.items is not None else n.value for n in nodes]


def _path_name(segments: tuple[str, ...] | None) -> str:
    return "" if segments is None else ".".join(segments)


class _Compiler:
    def __init__(self, base: str):
        self.base = base
        self.errors: list[dict[str, str]] = []
        self.variables: set[str] = set()
        self.needs_now = False

    def error(self, path: tuple[Any, ...], en: str, zh: str) -> None:
        self.errors.append(problem(pointer(self.base, path), en, zh))

    def read(self, name: str, scoped: bool) -> None:
        # Inside map/filter/reduce/all/none/some, `var` reads the current item, not the record.
        if not scoped:
            self.variables.add(name)

    def build(self, rule: Any, path: tuple[Any, ...], scoped: bool) -> Node:
        if isinstance(rule, dict):
            return self.operation(rule, path, scoped)
        if isinstance(rule, list):
            return self.array(rule, path, scoped)
        return Node(constant(rule), const=rule, make_bool=lambda: constant(truthy(rule)))

    def array(self, rule: list[Any], path: tuple[Any, ...], scoped: bool) -> Node:
        nodes = [self.build(item, (*path, i), scoped) for i, item in enumerate(rule)]
        is_truthy = constant(bool(nodes))
        if all(n.const is not NO for n in nodes):
            items = tuple(n.const for n in nodes)
            return Node(lambda d, now=None: list(items), items=items, make_bool=lambda: is_truthy)
        fns = [n.value for n in nodes]
        return Node(lambda d, now=None: [f(d, now) for f in fns], make_bool=lambda: is_truthy)

    def operation(self, rule: dict[str, Any], path: tuple[Any, ...], scoped: bool) -> Node:
        if len(rule) != 1:
            self.error(
                path,
                f"An operation must be an object with exactly one operator (found {len(rule)} keys)",
                f"运算必须是只含一个运算符的对象（实际有 {len(rule)} 个键）",
            )
            return DEAD
        ((op, raw),) = rule.items()
        if isinstance(raw, list):
            args, paths = raw, [(*path, op, i) for i in range(len(raw))]
        else:
            args, paths = [raw], [(*path, op)]
        registered = REGISTERED.get(op)
        bounds = BUILTIN_ARITY.get(op) or (registered and (registered.min_args, registered.max_args))
        if not bounds:
            self.error(path, f"Unknown operator '{op}'", f"未知的运算符“{op}”")
            for arg, arg_path in zip(args, paths, strict=True):
                self.build(arg, arg_path, scoped)
            return DEAD
        low, high = bounds
        if len(args) < low or (high is not None and len(args) > high):
            self._arity_error(path, op, low, high, len(args))
            return DEAD
        if op in _SCOPED:
            nodes = [self.build(args[0], paths[0], scoped), self.build(args[1], paths[1], True)]
            if len(args) > 2:
                nodes.append(self.build(args[2], paths[2], scoped))
        else:
            nodes = [self.build(arg, arg_path, scoped) for arg, arg_path in zip(args, paths, strict=True)]
        if self.errors:
            return DEAD
        if registered:
            return self.domain(registered, nodes, path)
        return self.builtin(op, nodes, path, scoped)

    def _arity_error(self, path: tuple[Any, ...], op: str, low: int, high: int | None, got: int) -> None:
        if low == high:
            en, zh = f"exactly {low}", f"{low} 个"
        elif got < low:
            en, zh = f"at least {low}", f"至少 {low} 个"
        else:
            en, zh = f"at most {high}", f"最多 {high} 个"
        self.error(
            path,
            f"Operator '{op}' takes {en} argument{'s' if (high or low) != 1 else ''}, got {got}",
            f"运算符“{op}”需要{zh}参数，实际为 {got} 个",
        )

    def domain(self, spec: Operator, nodes: list[Node], path: tuple[Any, ...]) -> Node:
        fns = _arguments(nodes)
        if not spec.needs_now:
            return Node(nodes_.eager(spec.fn, fns))
        self.needs_now = True
        fn, where = spec.fn, pointer(self.base, path)
        message = problem(
            where,
            f"Operator '{spec.name}' needs the current time (pass now=)",
            f"运算符“{spec.name}”需要当前时间（请传入 now）",
        )

        if len(fns) == 1:
            (arg,) = fns

            def with_now_1(d: Any, now: Any = None) -> Any:
                if now is None:
                    raise ConditionError([message])
                return fn(arg(d, now), now=now)

            return Node(with_now_1)

        def with_now(d: Any, now: Any = None) -> Any:
            if now is None:
                raise ConditionError([message])
            return fn(*[f(d, now) for f in fns], now=now)

        return Node(with_now)

    def builtin(self, op: str, nodes: list[Node], path: tuple[Any, ...], scoped: bool) -> Node:
        if op == "var":
            return self.var(nodes, scoped)
        if op == "rep_attr":
            return self.rep_attr(nodes, scoped)
        if op in ("missing", "missing_some"):
            return self.missing(op, nodes, scoped)
        if op in COMPARE:
            return self.compare(op, nodes)
        if op in ("and", "or"):
            return self.logic(op, nodes)
        if op in ("if", "?:"):
            return self.branch(nodes)
        if op == "!":
            if nodes[0].var is not None:
                return Node(nodes_.var_falsy(nodes[0]), returns_bool=True)
            inner = nodes[0].as_bool()
            return Node(lambda d, now=None: not inner(d, now), returns_bool=True)
        if op == "!!":
            return Node(nodes[0].as_bool(), returns_bool=True)
        if op in _SCOPED:
            return self.scoped(op, nodes)
        if op == "in" and nodes[1].items is not None:
            return Node(nodes_.in_items(nodes[0], nodes[1].items), returns_bool=True)
        fns = _arguments(nodes) if op in _TAKE_TUPLES else [n.value for n in nodes]
        return Node(nodes_.eager(_EAGER[op], fns), returns_bool=op in _BOOLEAN_RESULT)

    def var(self, nodes: list[Node], scoped: bool) -> Node:
        path_node = nodes[0] if nodes else None
        default_node = nodes[1] if len(nodes) > 1 else None
        static_path = path_node is None or path_node.const is not NO
        segments = ops.split_path(path_node.const if path_node else None) if static_path else None
        self.read(_path_name(segments) if static_path else "", scoped)
        if static_path and (default_node is None or default_node.const is not NO):
            return nodes_.var_node(segments, default_node.const if default_node else None)
        get_path = path_node.value if path_node else constant(None)
        get_default = default_node.value if default_node else constant(None)
        get_var = ops.get_var
        return Node(lambda d, now=None: get_var(d, get_path(d, now), get_default(d, now)))

    def rep_attr(self, nodes: list[Node], scoped: bool) -> Node:
        attr_node = nodes[0]
        get_default = nodes[1].value if len(nodes) > 1 else constant(None)
        lookup, split = ops.lookup, ops.split_path
        if attr_node.const is not NO:
            segments = ("rep", *(split(attr_node.const) or ()))
            self.read(".".join(segments), scoped)

            def rep_static(d: Any, now: Any = None) -> Any:
                value = lookup(d, segments, None)
                return get_default(d, now) if value is None else value

            return Node(rep_static)
        self.read("rep", scoped)
        get_attr = attr_node.value

        def rep_dynamic(d: Any, now: Any = None) -> Any:
            value = lookup(d, ("rep", *(split(get_attr(d, now)) or ())), None)
            return get_default(d, now) if value is None else value

        return Node(rep_dynamic)

    def missing(self, op: str, nodes: list[Node], scoped: bool) -> Node:
        keys_nodes = nodes if op == "missing" else nodes[1:]
        if keys_nodes and keys_nodes[0].items is not None:
            keys: tuple[Any, ...] | None = keys_nodes[0].items
        elif all(n.const is not NO for n in keys_nodes):
            keys = tuple(n.const for n in keys_nodes)
        else:
            keys = None
        for key in keys if keys is not None else ("",):
            self.read(_path_name(ops.split_path(key)), scoped)
        fns = [n.value for n in nodes]
        if op == "missing":
            missing_keys = ops.missing_keys
            return Node(lambda d, now=None: missing_keys(d, [f(d, now) for f in fns]))
        need, options = fns
        missing_some = ops.missing_some
        return Node(lambda d, now=None: missing_some(d, need(d, now), options(d, now)))

    def compare(self, op: str, nodes: list[Node]) -> Node:
        fast = None
        if len(nodes) == 2:
            left, right = nodes
            if right.const is not NO and left.const is NO:
                fast = nodes_.compare_const(op, left, right.const)
            elif left.const is not NO and right.const is NO:
                fast = nodes_.compare_const(FLIPPED[op], right, left.const)
        elif _numeric_literal(nodes[0]) and _numeric_literal(nodes[2]) and nodes[1].const is NO:
            fast = nodes_.between(op, nodes[0].const, nodes[1], nodes[2].const)
        if fast is None:
            fast = nodes_.eager(COMPARE[op], [n.value for n in nodes])
        return Node(fast, returns_bool=True)

    def logic(self, op: str, nodes: list[Node]) -> Node:
        fns = [n.value for n in nodes]
        stop_on = op == "or"  # `and` stops at the first falsy value, `or` at the first truthy one

        def value(d: Any, now: Any = None) -> Any:
            current = None
            for fn in fns:
                current = fn(d, now)
                if truthy(current) is stop_on:
                    return current
            return current

        combine = nodes_.any_of if stop_on else nodes_.all_of
        return Node(value, make_bool=lambda: combine([n.as_bool() for n in nodes]))

    def branch(self, nodes: list[Node]) -> Node:
        def build(as_bool: bool) -> Fn:
            pairs = [
                (nodes[i].as_bool(), nodes[i + 1].as_bool() if as_bool else nodes[i + 1].value)
                for i in range(0, len(nodes) - 1, 2)
            ]
            otherwise = (
                (nodes[-1].as_bool() if as_bool else nodes[-1].value)
                if len(nodes) % 2
                else constant(False if as_bool else None)
            )
            if len(pairs) == 1:
                ((cond, then),) = pairs
                return lambda d, now=None: then(d, now) if cond(d, now) else otherwise(d, now)

            def chain(d: Any, now: Any = None) -> Any:
                for cond, then in pairs:
                    if cond(d, now):
                        return then(d, now)
                return otherwise(d, now)

            return chain

        return Node(build(False), make_bool=lambda: build(True))

    def scoped(self, op: str, nodes: list[Node]) -> Node:
        items = nodes[0].value
        logic = nodes[1].value
        check = nodes[1].as_bool()
        if op == "map":
            return Node(
                lambda d, now=None: (
                    [logic(x, now) for x in a] if issubclass(type(a := items(d, now)), list | tuple) else []
                )
            )
        if op == "filter":
            return Node(
                lambda d, now=None: (
                    [x for x in a if check(x, now)]
                    if issubclass(type(a := items(d, now)), list | tuple)
                    else []
                )
            )
        if op == "reduce":
            initial = nodes[2].value if len(nodes) > 2 else constant(None)

            def reduce(d: Any, now: Any = None) -> Any:
                acc, seq = initial(d, now), items(d, now)
                if not issubclass(type(seq), list | tuple):
                    return acc
                for x in seq:
                    acc = logic({"current": x, "accumulator": acc}, now)
                return acc

            return Node(reduce)
        if op == "all":

            def all_items(d: Any, now: Any = None) -> bool:
                seq = items(d, now)
                if not issubclass(type(seq), list | tuple) or not seq:
                    return False
                return all(check(x, now) for x in seq)

            return Node(all_items, returns_bool=True)
        found = op == "some"  # `some` answers True on the first match, `none` False

        def some_or_none(d: Any, now: Any = None) -> bool:
            seq = items(d, now)
            if issubclass(type(seq), list | tuple):
                for x in seq:
                    if check(x, now):
                        return found
            return not found

        return Node(some_or_none, returns_bool=True)


def build(rule: Any, base_path: str, max_depth: int, max_nodes: int) -> tuple[Node, frozenset[str], bool]:
    """Compile a rule into (root node, variables read, needs `now`); raise ConditionError when invalid."""
    if not 1 <= max_depth <= DEPTH_CEILING or max_nodes < 1:
        raise ValueError(f"max_depth must be 1..{DEPTH_CEILING} and max_nodes positive")
    errors = _scan(rule, base_path, max_depth, max_nodes)
    if errors:
        raise ConditionError(errors)
    compiler = _Compiler(base_path)
    node = compiler.build(rule, (), False)
    if compiler.errors:
        raise ConditionError(compiler.errors)
    return node, frozenset(compiler.variables), compiler.needs_now
