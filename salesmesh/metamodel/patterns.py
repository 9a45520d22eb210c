"""Safe regular expressions for form fields: which `pattern` settings a form may use and how long an input
may be before a pattern is run on it. Definition validation and the form compiler both use it, so a
form that publishes always compiles.

Python's `re` backtracks and cannot be interrupted, so a careless pattern can hang a worker (ReDoS). The
form compiler refuses, with a bilingual reason: patterns longer than `MAX_PATTERN_LENGTH`; patterns that
do not compile; back-references; nested repetition such as `(a+)+` or `(\\d{2,5})*` (exponential);
repeated alternation whose branches are not single characters such as `(a|aa)*` (exponential); and more
than `MAX_LARGE_REPEATS` large repetitions (`*`, `+`, `{n,}` or `{n,m}` with m > 16), whose polynomial
backtracking grows with their count. What remains backtracks at most polynomially, and binding runs a
pattern only on values of at most `MAX_PATTERN_INPUT` characters, so one evaluation stays in the
millisecond range. The analysis walks the parse tree of the standard library's regex parser.
"""

from __future__ import annotations

import re
from re import _constants as sre_c
from re import _parser as sre_parse
from typing import Any

MAX_PATTERN_LENGTH = 200
MAX_PATTERN_INPUT = 256
MAX_LARGE_REPEATS = 3
_LARGE = 16  # a bounded repetition above this many copies backtracks like an unbounded one

_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT)


class UnsafePattern(ValueError):
    """A pattern was refused; `.message` and `.message_zh` say why."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh


def _children(op: Any, av: Any) -> list[Any]:
    """Return the sub-patterns (parsed lists) below one parse-tree node."""
    if op in _REPEATS or op is sre_c.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is sre_c.SUBPATTERN:
        return [av[3]]
    if op is sre_c.BRANCH:
        return list(av[1])
    if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
        return [av[1]]
    if op is sre_c.ATOMIC_GROUP:
        return [av]
    if op is sre_c.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    return []


def _walk(items: Any, inside_repeat: bool, counts: dict[str, int]) -> tuple[str, str] | None:
    for op, av in items:
        if op in (sre_c.GROUPREF, sre_c.GROUPREF_EXISTS):
            return ("back-references are not allowed", "不允许使用反向引用")
        repeated = inside_repeat
        if op in _REPEATS:
            many = av[1] is sre_c.MAXREPEAT or av[1] > 1
            if many and inside_repeat:
                return ("nested repetition such as (a+)+ is not allowed", "不允许嵌套重复，例如 (a+)+")
            if av[1] is sre_c.MAXREPEAT or av[1] > _LARGE:
                counts["large"] += 1
            repeated = inside_repeat or many
        elif op is sre_c.BRANCH and inside_repeat:
            return (
                "a repeated group with alternatives such as (a|ab)* is not allowed",
                "不允许对含多个分支的分组重复，例如 (a|ab)*",
            )
        for child in _children(op, av):
            problem = _walk(child, repeated, counts)
            if problem:
                return problem
    return None


def check_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a field's pattern, or raise UnsafePattern saying why it is refused."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePattern(
            f"Pattern is longer than {MAX_PATTERN_LENGTH} characters",
            f"正则表达式超过 {MAX_PATTERN_LENGTH} 个字符",
        )
    try:
        compiled = re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UnsafePattern(
            f"Not a valid regular expression: {exc}", f"不是有效的正则表达式：{exc}"
        ) from None
    counts = {"large": 0}
    problem = _walk(tree, False, counts)
    if problem is None and counts["large"] > MAX_LARGE_REPEATS:
        problem = (
            f"more than {MAX_LARGE_REPEATS} open-ended repetitions (*, + or {{n,}}) are not allowed",
            f"开放式重复（*、+ 或 {{n,}}）不能超过 {MAX_LARGE_REPEATS} 个",
        )
    if problem:
        raise UnsafePattern(
            f"Unsafe regular expression: {problem[0]} (it could hang the server)",
            f"正则表达式不安全：{problem[1]}（可能导致服务器卡死）",
        )
    return compiled
