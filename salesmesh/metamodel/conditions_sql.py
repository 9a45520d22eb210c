"""The plain-comparison subset of JsonLogic compiled to SQL, for "this rule matches N existing leads"
previews and bulk re-routing.

`to_sql(rule, columns)` turns a rule made of `and`, `or`, `!`, `!!`, `==`, `!=`, `===`, `!==`, `<`, `<=`,
`>`, `>=` (also the three-operand "between" form) and `in` with a literal list, over `var`s that
`columns` maps to SQLAlchemy column expressions and literals, into one SQLAlchemy boolean expression
whose rows are exactly those the Python evaluator finds truthy. JavaScript's semantics are kept
explicitly rather than left to SQL's three-valued logic: every generated comparison is true or false,
never NULL (so `!` negates correctly); `null == null` holds (`IS NOT DISTINCT FROM`); relational
comparisons read NULL as 0, as JavaScript does; `in` is strict membership; a bare `var` is the column's
truthiness ("" / 0 / NULL are false). Operands must be string, numeric or boolean columns, and
comparisons that would coerce between types (a text column `==` a number) are refused, as is anything
else (`if`, arithmetic, `missing`, domain operators, unmapped variables): `NotCompilable` names the JSON
pointer of the part that cannot be translated. Parts without variables are evaluated once in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, true
from sqlalchemy import types as sqltypes
from sqlalchemy.sql.elements import ColumnElement

from salesmesh.metamodel.conditions_compiler import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    NotCompilable,
    build,
    pointer,
)
from salesmesh.metamodel.conditions_ops import truthy

__all__ = ["NotCompilable", "to_sql"]

_RELATIONAL = {"<", "<=", ">", ">="}
_EQUALITY = {"==", "!=", "===", "!=="}


def _refuse(path: str, en: str, zh: str) -> NotCompilable:
    return NotCompilable([{"path": path, "message": en, "message_zh": zh}])


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _column_kind(column: ColumnElement[Any]) -> str | None:
    kind = column.type
    if isinstance(kind, sqltypes.Boolean):
        return "boolean"
    if isinstance(kind, sqltypes.Integer | sqltypes.Numeric | sqltypes.Float):
        return "number"
    if isinstance(kind, sqltypes.String):
        return "string"
    return None


class _Operand:
    """A comparison operand: a mapped column (with its kind) or a literal value."""

    __slots__ = ("column", "kind", "value")

    def __init__(self, kind: str, column: ColumnElement[Any] | None = None, value: Any = None):
        self.kind, self.column, self.value = kind, column, value

    def sql(self) -> Any:
        return self.column if self.column is not None else self.value


class _Translator:
    def __init__(self, columns: Mapping[str, ColumnElement[Any]], base: str):
        self.columns = columns
        self.base = base

    def where(self, parts: tuple[Any, ...]) -> str:
        return pointer(self.base, parts)

    def constant(self, rule: Any) -> tuple[bool, Any]:
        """Return (True, value) when the part reads no data (evaluated here once), else (False, None)."""
        if not isinstance(rule, dict | list):
            return True, rule
        node, variables, needs_now = build(rule, "", DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES)
        if variables or needs_now:
            return False, None
        return True, node.value(None)

    def truth(self, rule: Any, parts: tuple[Any, ...]) -> ColumnElement[bool]:
        """Translate the truthiness of a part."""
        is_constant, value = self.constant(rule)
        if is_constant:
            return true() if truthy(value) else false()
        if isinstance(rule, list):
            return true() if rule else false()  # a non-empty array is truthy whatever it holds
        ((op, raw),) = rule.items()
        args, arg_parts = (
            (raw, [(*parts, op, i) for i in range(len(raw))])
            if isinstance(raw, list)
            else (
                [raw],
                [(*parts, op)],
            )
        )
        if op in ("and", "or"):
            combined = [self.truth(a, p) for a, p in zip(args, arg_parts, strict=True)]
            return and_(*combined) if op == "and" else or_(*combined)
        if op == "!":
            return not_(self.truth(args[0], arg_parts[0]))
        if op == "!!":
            return self.truth(args[0], arg_parts[0])
        if op == "var":
            return self.column_truth(self.operand(rule, parts), parts)
        if op in _EQUALITY:
            left, right = (self.operand(a, p) for a, p in zip(args, arg_parts, strict=True))
            equal = self.equal(op, left, right, parts)
            return equal if op in ("==", "===") else not_(equal)
        if op in _RELATIONAL:
            operands = [self.number(self.operand(a, p), p) for a, p in zip(args, arg_parts, strict=True)]
            return self.relational(op, operands)
        if op == "in":
            return self.membership(args, arg_parts)
        raise _refuse(
            self.where(parts),
            f"Operator '{op}' cannot be turned into SQL",
            f"运算符“{op}”无法转换为 SQL",
        )

    def operand(self, rule: Any, parts: tuple[Any, ...]) -> _Operand:
        """Translate a comparison operand: a mapped `var` or a value computed without data."""
        is_constant, value = self.constant(rule)
        if is_constant:
            kind = _value_kind(value)
            if kind == "other":
                raise _refuse(
                    self.where(parts),
                    "Only strings, numbers, booleans and null can be compared in SQL",
                    "SQL 中只能比较字符串、数字、布尔值和空值",
                )
            return _Operand(kind, value=value)
        if isinstance(rule, dict) and "var" in rule:
            raw = rule["var"]
            args = raw if isinstance(raw, list) else [raw]
            if len(args) == 1 and isinstance(args[0], str) and args[0] in self.columns:
                column = self.columns[args[0]]
                kind = _column_kind(column)
                if kind is None:
                    raise _refuse(
                        self.where(parts),
                        f"Column for '{args[0]}' is not a text, number or boolean column",
                        f"“{args[0]}”对应的列不是文本、数字或布尔类型",
                    )
                return _Operand(kind, column=column)
            name = args[0] if args and isinstance(args[0], str) else "?"
            raise _refuse(
                self.where(parts),
                f"No database column for '{name}' (or the variable has a default or a computed path)",
                f"“{name}”没有对应的数据库列（或变量带默认值、路径需计算）",
            )
        raise _refuse(
            self.where(parts),
            "Only variables and literal values can be compared in SQL",
            "SQL 中只能比较变量和字面值",
        )

    def column_truth(self, operand: _Operand, parts: tuple[Any, ...]) -> ColumnElement[bool]:
        column = operand.column
        assert column is not None
        if operand.kind == "boolean":
            return column.is_(True)
        empty: Any = "" if operand.kind == "string" else 0
        return and_(column.is_not(None), column != empty)

    def equal(self, op: str, left: _Operand, right: _Operand, parts: tuple[Any, ...]) -> ColumnElement[bool]:
        """`left == right` (or `===`) that is never NULL."""
        if left.column is None:
            left, right = right, left
        column = left.column
        assert column is not None
        if right.column is None and right.kind == "null":
            return column.is_(None)
        if left.kind == right.kind:
            return column.is_not_distinct_from(right.sql())
        if op in ("===", "!=="):
            # Different types are never strictly equal, except two NULL columns (null === null).
            return and_(column.is_(None), right.column.is_(None)) if right.column is not None else false()
        raise _refuse(
            self.where(parts),
            f"Comparing a {left.kind} with a {right.kind} converts between types; SQL cannot do that alike",
            f"比较{_KIND_ZH[left.kind]}与{_KIND_ZH[right.kind]}需要类型转换，SQL 无法同样处理",
        )

    def number(self, operand: _Operand, parts: tuple[Any, ...]) -> Any:
        """A relational operand: numeric columns read NULL as 0, as JavaScript does."""
        if operand.kind == "null":
            return 0
        if operand.kind != "number":
            raise _refuse(
                self.where(parts),
                "Only numbers can be ordered in SQL (<, <=, >, >=)",
                "SQL 中只能对数字做大小比较（<、<=、>、>=）",
            )
        if operand.column is not None:
            return func.coalesce(operand.column, 0)
        return operand.value

    def relational(self, op: str, operands: list[Any]) -> ColumnElement[bool]:
        def one(a: Any, b: Any) -> ColumnElement[bool]:
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            return a >= b

        if len(operands) == 3:
            return and_(one(operands[0], operands[1]), one(operands[1], operands[2]))
        return one(operands[0], operands[1])

    def membership(self, args: list[Any], arg_parts: list[tuple[Any, ...]]) -> ColumnElement[bool]:
        """`{"in": [operand, [literal, ...]]}`: strict membership in a literal list."""
        needle = self.operand(args[0], arg_parts[0])
        is_constant, haystack = self.constant(args[1])
        if not is_constant or not isinstance(haystack, list):
            raise _refuse(
                self.where(arg_parts[1]),
                "In SQL, 'in' needs a literal list",
                "在 SQL 中，“in”需要字面值列表",
            )
        column = needle.column
        assert column is not None  # a constant needle makes the whole `in` constant
        members = [item for item in haystack if _value_kind(item) == needle.kind]
        clauses = []
        if any(item is None for item in haystack):
            clauses.append(column.is_(None))
        if members:
            clauses.append(and_(column.is_not(None), column.in_(members)))
        return or_(*clauses) if clauses else false()


_KIND_ZH = {"null": "空值", "boolean": "布尔值", "number": "数字", "string": "字符串"}


def to_sql(
    rule: Any, columns: Mapping[str, ColumnElement[Any]], *, base_path: str = ""
) -> ColumnElement[bool]:
    """Compile a rule's truthiness into a SQLAlchemy boolean expression over `columns` (var path → column)."""
    build(rule, base_path, DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES)  # invalid rules fail as anywhere else
    return _Translator(columns, base_path).truth(rule, ())
