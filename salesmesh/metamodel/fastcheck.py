"""A fast yes/no check of a document against a (ref-inlined) JSON Schema, compiled once into closures.

jsonschema's validator descends through a fresh validator object for every value (about 5 µs each here),
so a 300-node definition takes milliseconds even when it is valid, which is the common case on pack import
and publish. `compile_check` turns the keyword subset our schemas use into nested closures that answer
exactly what `Draft202012Validator.is_valid` would answer, about fifty times faster. `validate_document`
asks it first and runs the compiled jsonschema validator only when the answer is "invalid", to collect
every error with its path. Where exactness cannot be guaranteed cheaply (comparing arrays or objects in
`enum`/`const`, `uniqueItems` over non-strings, non-JSON Python values) a check raises `Uncertain` and the
caller falls back to jsonschema; a schema using any keyword outside the subset compiles to None (always
jsonschema). A differential test compares both on hundreds of mutated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jsonschema import FormatChecker

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "x-messages", "examples", "default"}
)


class Uncertain(Exception):
    """The fast check cannot decide this value exactly; use the full validator."""


class _Unsupported(Exception):
    pass


def _equal(a: Any, b: Any) -> bool:
    """Compare two JSON scalars as jsonschema does (True is not 1), or raise Uncertain."""
    if isinstance(a, str) or isinstance(b, str) or isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if a is None or b is None:
        return a is b
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b
    raise Uncertain


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str | list | dict) or value is None:
        return False
    raise Uncertain  # Decimal, numpy scalars...


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or v.is_integer()),
}


def _type(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    names = value if isinstance(value, list) else [value]
    tests = tuple(_TYPES[n] for n in names)
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(t(v) for t in tests)


def _enum(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    options = tuple(value)
    if all(isinstance(o, str) for o in options):
        as_set = frozenset(options)
        return lambda v: isinstance(v, str) and v in as_set
    return lambda v: any(_equal(v, o) for o in options)


def _const(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    return lambda v: _equal(v, value)


def _string_keyword(test: Callable[[str], bool]) -> Check:
    return lambda v: not isinstance(v, str) or test(v)


def _number_keyword(test: Callable[[Any], bool]) -> Check:
    return lambda v: not _is_number(v) or test(v)


def _array_keyword(test: Callable[[list[Any]], bool]) -> Check:
    return lambda v: not isinstance(v, list) or test(v)


def _object_keyword(test: Callable[[dict[str, Any]], bool]) -> Check:
    return lambda v: not isinstance(v, dict) or test(v)


def _unique(items: list[Any]) -> bool:
    if all(isinstance(i, str) for i in items):
        return len(set(items)) == len(items)
    raise Uncertain


def _properties(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    checks = {name: _compile(sub, fmt) for name, sub in value.items()}

    def test(value: Any) -> bool:
        if isinstance(value, dict):
            for name, item in value.items():
                check = checks.get(name)
                if check is not None and not check(item):
                    return False
        return True

    return test


def _additional(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    known = frozenset(schema.get("properties", {}))
    patterns = tuple(re.compile(p) for p in schema.get("patternProperties", {}))
    check = _compile(value, fmt)

    def test(obj: dict[str, Any]) -> bool:
        for name, item in obj.items():
            if name in known or any(p.search(name) for p in patterns):
                continue
            if not check(item):
                return False
        return True

    return _object_keyword(test)


def _pattern_properties(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    pairs = tuple((re.compile(p), _compile(sub, fmt)) for p, sub in value.items())
    return _object_keyword(
        lambda obj: all(check(item) for name, item in obj.items() for p, check in pairs if p.search(name))
    )


def _items(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    if "prefixItems" in schema:
        raise _Unsupported("prefixItems")
    check = _compile(value, fmt)

    def test(value: Any) -> bool:
        if isinstance(value, list):
            for item in value:
                if not check(item):
                    return False
        return True

    return test


def _if(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    condition = _compile(value, fmt)
    then = _compile(schema.get("then", True), fmt)
    otherwise = _compile(schema.get("else", True), fmt)
    return lambda v: then(v) if condition(v) else otherwise(v)


def _all_of(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    checks = tuple(_compile(s, fmt) for s in value)
    return lambda v: all(c(v) for c in checks)


def _any_of(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    checks = tuple(_compile(s, fmt) for s in value)
    return lambda v: any(c(v) for c in checks)


def _one_of(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    checks = tuple(_compile(s, fmt) for s in value)
    return lambda v: sum(1 for c in checks if c(v)) == 1


def _not(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    check = _compile(value, fmt)
    return lambda v: not check(v)


def _property_names(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    check = _compile(value, fmt)
    return _object_keyword(lambda obj: all(check(name) for name in obj))


def _format(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    if value not in fmt.checkers:
        return lambda v: True  # jsonschema ignores formats its checker does not know
    return lambda v: fmt.conforms(v, value)


def _pattern(value: Any, schema: dict[str, Any], fmt: FormatChecker) -> Check:
    compiled = re.compile(value)
    return _string_keyword(lambda s: compiled.search(s) is not None)


_Maker = Callable[[Any, dict[str, Any], FormatChecker], Check]
_MAKERS: dict[str, _Maker] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "properties": _properties,
    "additionalProperties": _additional,
    "patternProperties": _pattern_properties,
    "propertyNames": _property_names,
    "items": _items,
    "if": _if,
    "allOf": _all_of,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "format": _format,
    "pattern": _pattern,
    "required": lambda val, s, f: _object_keyword(lambda obj: all(name in obj for name in val)),
    "minProperties": lambda val, s, f: _object_keyword(lambda obj: len(obj) >= val),
    "maxProperties": lambda val, s, f: _object_keyword(lambda obj: len(obj) <= val),
    "minItems": lambda val, s, f: _array_keyword(lambda arr: len(arr) >= val),
    "maxItems": lambda val, s, f: _array_keyword(lambda arr: len(arr) <= val),
    "uniqueItems": lambda val, s, f: _array_keyword(_unique) if val else (lambda v: True),
    "minLength": lambda val, s, f: _string_keyword(lambda st: len(st) >= val),
    "maxLength": lambda val, s, f: _string_keyword(lambda st: len(st) <= val),
    "minimum": lambda val, s, f: _number_keyword(lambda n: n >= val),
    "maximum": lambda val, s, f: _number_keyword(lambda n: n <= val),
    "exclusiveMinimum": lambda val, s, f: _number_keyword(lambda n: n > val),
    "exclusiveMaximum": lambda val, s, f: _number_keyword(lambda n: n < val),
}
_HANDLED_BY_IF = frozenset({"then", "else"})


def _compile(schema: Any, fmt: FormatChecker) -> Check:
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in _HANDLED_BY_IF:
            continue
        maker = _MAKERS.get(keyword)
        if maker is None:
            raise _Unsupported(keyword)
        checks.append(maker(value, schema, fmt))
    # Cheap type tests first, so the rest can assume the right shape sooner.
    if "type" in schema:
        checks.insert(0, checks.pop(list(k for k in schema if k in _MAKERS).index("type")))
    frozen = tuple(checks)
    if len(frozen) == 1:
        return frozen[0]

    def run(value: Any) -> bool:
        for check in frozen:  # noqa: SIM110 (a plain loop: no generator on the hot path)
            if not check(value):
                return False
        return True

    return run


def compile_check(schema: dict[str, Any], format_checker: FormatChecker) -> Check | None:
    """Compile an inlined schema into an exact is-valid check, or return None when it uses other keywords."""
    try:
        return _compile(schema, format_checker)
    except (_Unsupported, re.error):
        return None
