"""The value semantics of our JsonLogic dialect: JavaScript's coercions and the eager operators.

JsonLogic is defined by its JavaScript implementation (`json-logic-js`, which the builder UI uses for
live previews), so every operator here reproduces what JavaScript does with JSON values: truthiness
(`[]` and `""` are false, `"0"` is true), loose `==` with its number/string/boolean coercions, strict
`===`, relational comparisons (two strings compare as text, anything else as numbers), `+` and `*`
through `parseFloat`, `cat` through `String()`, `substr` with negative offsets, IEEE division. Python
`None` is JavaScript `null`; tuples count as arrays, any `Mapping` as an object; dates, datetimes and
`Decimal`s (which come from database rows) behave like their JSON form (an ISO string, a number). The
domain operators (`days_since`, `hours_since`, `in_region`, `contains_any`) also live here; the compiler
in `conditions` registers them. Nothing in this module reads attributes of data objects: values are
classified by `type()` and `issubclass` (never `isinstance`, which may ask an object for its
`__class__`), and only dicts (any `Mapping`), lists, tuples and strings are indexed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

NAN = float("nan")
MAX_SAFE_INTEGER = 2**53
MISSING = object()  # "no such property" (JavaScript's undefined) during a path lookup

# JavaScript's StrWhiteSpaceChar set (what Number() and parseFloat() skip around a number).
_JS_SPACE = " \t\n\v\f\r\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = re.compile(r"0(?:[xX](?P<hex>[0-9a-fA-F]+)|[oO](?P<oct>[0-7]+)|[bB](?P<bin>[01]+))")


# --- JavaScript's abstract operations -----------------------------------------------------------------


def truthy(value: Any) -> bool:
    """Return JsonLogic truthiness: false for null, false, 0, NaN, "" and [] (unlike JavaScript)."""
    if value is True:
        return True
    if value is None or value is False:
        return False
    t = type(value)
    if t is str or t is list or t is tuple:
        return len(value) > 0
    if t is int:
        return value != 0
    if t is float:
        return value == value and value != 0.0
    if issubclass(type(value), list | tuple | str):
        return len(value) > 0
    if issubclass(type(value), int | float | Decimal):
        return not math.isnan(value) and value != 0
    return True


def _kind(value: Any) -> tuple[str, Any]:
    """Return (JavaScript type, normalised value): null, boolean, number, string or object."""
    if value is None:
        return "null", None
    t = type(value)
    if t is str:
        return "string", value
    if t is bool:
        return "boolean", value
    if t is int or t is float:
        return "number", value
    if issubclass(type(value), bool):
        return "boolean", bool(value)
    if issubclass(type(value), int | float | Decimal):
        return "number", to_number(value)
    if issubclass(type(value), str):
        return "string", str(value)
    if issubclass(type(value), date):
        return "string", value.isoformat()
    return "object", value


def number_to_string(value: float | int) -> str:
    """Format a number the way JavaScript's String(number) does (shortest round-trip digits)."""
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    try:
        f = float(value)
    except OverflowError:
        f = math.inf if value > 0 else -math.inf
    if f != f:
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0:
        return "0"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    text = repr(abs(f))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + int(exp or 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k, n = len(digits), point
    sign = "-" if f < 0 else ""
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def to_string(value: Any) -> str:
    """Convert a value the way JavaScript's String() does (arrays join with commas, null → "null")."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int or t is float:
        return number_to_string(value)
    if issubclass(type(value), list | tuple):
        return ",".join("" if item is None else to_string(item) for item in value)
    kind, norm = _kind(value)
    if kind == "object":
        return "[object Object]"
    return to_string(norm)


def _to_primitive(value: Any) -> Any:
    """Reduce arrays to their joined string and objects to "[object Object]"; keep primitives."""
    kind, norm = _kind(value)
    if kind != "object":
        return norm
    if issubclass(type(value), list | tuple):
        return to_string(value)
    return "[object Object]"


def _string_to_number(text: str) -> float:
    text = text.strip(_JS_SPACE)
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    radix = _RADIX.fullmatch(text)
    if radix:
        if radix["hex"]:
            return float(int(radix["hex"], 16))
        if radix["oct"]:
            return float(int(radix["oct"], 8))
        return float(int(radix["bin"], 2))
    return NAN


def to_number(value: Any) -> float:
    """Convert a value the way JavaScript's Number() does (null → 0, "" → 0, "abc" → NaN)."""
    t = type(value)
    if t is float:
        return value
    if t is int:
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if t is bool:
        return 1.0 if value else 0.0
    if value is None:
        return 0.0
    if t is str:
        return _string_to_number(value)
    if issubclass(type(value), bool):
        return 1.0 if value else 0.0
    if issubclass(type(value), int | float | Decimal):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    primitive = _to_primitive(value)
    return _string_to_number(primitive) if issubclass(type(primitive), str) else to_number(primitive)


def parse_float(value: Any) -> float:
    """Convert a value the way JavaScript's parseFloat() does (longest numeric prefix; else NaN)."""
    t = type(value)
    if t is float:
        return value
    if t is int:
        return to_number(value)
    text = to_string(value).lstrip(_JS_SPACE)
    match = _DECIMAL.match(text)
    if not match:
        return NAN
    return float(match.group().replace("Infinity", "inf"))


def to_integer(value: Any) -> float:
    """JavaScript's ToIntegerOrInfinity: NaN → 0, truncate toward zero, keep infinities."""
    n = to_number(value)
    if n != n:
        return 0
    if math.isinf(n):
        return n
    return math.trunc(n)


def number(value: float) -> int | float:
    """Return an integral float as int (up to 2**53), so results look like JSON numbers."""
    if type(value) is float and value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


# --- comparisons --------------------------------------------------------------------------------------


def loose_eq(a: Any, b: Any) -> bool:
    """JavaScript `a == b` (numbers and strings coerce, booleans become numbers, null equals only null)."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is float or ta is bool):
        return a == b
    if a is None or b is None:
        return a is b
    ka, a = _kind(a)
    kb, b = _kind(b)
    if ka == kb:
        return a is b if ka == "object" else a == b
    if ka == "boolean":
        return loose_eq(1.0 if a else 0.0, b)
    if kb == "boolean":
        return loose_eq(a, 1.0 if b else 0.0)
    if ka == "number" and kb == "string":
        return a == _string_to_number(b)
    if ka == "string" and kb == "number":
        return _string_to_number(a) == b
    if ka == "object":
        return loose_eq(_to_primitive(a), b)
    if kb == "object":
        return loose_eq(a, _to_primitive(b))
    return False


def strict_eq(a: Any, b: Any) -> bool:
    """JavaScript `a === b` (same type and value; arrays and objects only equal themselves)."""
    ta = type(a)
    if ta is type(b) and (ta is str or ta is int or ta is float or ta is bool):
        return a == b
    ka, a = _kind(a)
    kb, b = _kind(b)
    if ka != kb:
        return False
    return a is b if ka == "object" else a == b


def _text_less(a: str, b: str, or_equal: bool) -> bool:
    # JavaScript orders strings by UTF-16 code units; that differs from code points only past U+FFFF.
    if not (a.isascii() and b.isascii()):
        a16, b16 = a.encode("utf-16-be"), b.encode("utf-16-be")
        return a16 <= b16 if or_equal else a16 < b16
    return a <= b if or_equal else a < b


def less(a: Any, b: Any) -> bool:
    """JavaScript `a < b`: two strings compare as text, anything else as numbers (NaN → false)."""
    if a is None:
        a = 0
    if b is None:
        b = 0
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a < b
    pa, pb = _to_primitive(a), _to_primitive(b)
    if issubclass(type(pa), str) and issubclass(type(pb), str):
        return _text_less(pa, pb, False)
    return to_number(pa) < to_number(pb)


def less_equal(a: Any, b: Any) -> bool:
    """JavaScript `a <= b` (false when either side is NaN)."""
    if a is None:
        a = 0
    if b is None:
        b = 0
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a <= b
    pa, pb = _to_primitive(a), _to_primitive(b)
    if issubclass(type(pa), str) and issubclass(type(pb), str):
        return _text_less(pa, pb, True)
    return to_number(pa) <= to_number(pb)


def greater(a: Any, b: Any) -> bool:
    """JavaScript `a > b`."""
    return less(b, a)


def greater_equal(a: Any, b: Any) -> bool:
    """JavaScript `a >= b`."""
    return less_equal(b, a)


def op_lt(a: Any, b: Any, c: Any = MISSING) -> bool:
    """`<` with an optional third operand: a < b < c."""
    if c is MISSING:
        return less(a, b)
    return less(a, b) and less(b, c)


def op_le(a: Any, b: Any, c: Any = MISSING) -> bool:
    """`<=` with an optional third operand: a <= b <= c."""
    if c is MISSING:
        return less_equal(a, b)
    return less_equal(a, b) and less_equal(b, c)


# --- arithmetic ---------------------------------------------------------------------------------------


def op_add(*args: Any) -> int | float:
    """`+`: sum of parseFloat() of every operand (a single string operand casts it to a number)."""
    total = 0.0
    for arg in args:
        total += parse_float(arg)
    return number(total)


def op_mul(*args: Any) -> Any:
    """`*`: product of parseFloat() of the operands (one operand is returned unchanged, as in JS)."""
    if len(args) == 1:
        return args[0]
    acc = parse_float(args[0])
    for arg in args[1:]:
        acc *= parse_float(arg)
    return number(acc)


def op_sub(a: Any, b: Any = MISSING) -> int | float:
    """`-`: difference, or negation with one operand."""
    if b is MISSING:
        return number(-to_number(a))
    return number(to_number(a) - to_number(b))


def op_div(a: Any, b: Any) -> int | float:
    """`/`: IEEE division (x/0 is ±Infinity, 0/0 is NaN)."""
    x, y = to_number(a), to_number(b)
    if y == 0:
        if x != x or x == 0:
            return NAN
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return number(x / y)


def op_mod(a: Any, b: Any) -> int | float:
    """`%`: JavaScript remainder (sign of the dividend; NaN for x % 0 and ±Infinity % y)."""
    x, y = to_number(a), to_number(b)
    if y == 0 or math.isinf(x) or x != x or y != y:
        return NAN
    if math.isinf(y):
        return number(x)
    return number(math.fmod(x, y))


def op_max(*args: Any) -> int | float:
    """`max`: Math.max of the operands as numbers (NaN if any is not a number)."""
    values = [to_number(a) for a in args]
    if any(v != v for v in values):
        return NAN
    return number(max(values))


def op_min(*args: Any) -> int | float:
    """`min`: Math.min of the operands as numbers (NaN if any is not a number)."""
    values = [to_number(a) for a in args]
    if any(v != v for v in values):
        return NAN
    return number(min(values))


# --- strings and arrays -------------------------------------------------------------------------------


def op_in(needle: Any, haystack: Any) -> bool:
    """`in`: strict membership in an array, or substring of a (non-empty) string."""
    if issubclass(type(haystack), list | tuple):
        return any(strict_eq(needle, item) for item in haystack)
    if issubclass(type(haystack), str):
        return bool(haystack) and to_string(needle) in haystack
    return False


def op_cat(*args: Any) -> str:
    """`cat`: concatenate the operands as JavaScript strings."""
    return "".join(to_string(a) for a in args)


def _substr(text: str, start: Any, length: Any = MISSING) -> str:
    size = len(text)
    first = to_integer(start)
    if first < 0:
        first = max(size + first, 0)
    first = int(min(first, size))
    if length is MISSING:
        count = size - first
    else:
        count = int(min(max(to_integer(length), 0), size - first))
    return text[first : first + count]


def op_substr(source: Any, start: Any, end: Any = MISSING) -> str:
    """`substr`: JavaScript substr(start, length); a negative length drops that many from the end."""
    text = to_string(source)
    if end is not MISSING and less(end, 0):
        tail = _substr(text, start)
        return _substr(tail, 0, len(tail) + to_number(end))
    return _substr(text, start, end)


def op_merge(*args: Any) -> list[Any]:
    """`merge`: flatten the operands one level into a new array."""
    out: list[Any] = []
    for arg in args:
        if issubclass(type(arg), list | tuple):
            out.extend(arg)
        else:
            out.append(arg)
    return out


def op_log(value: Any) -> Any:
    """`log`: return the operand (the browser logs it; the server has nothing to show)."""
    return value


# --- paths --------------------------------------------------------------------------------------------


def array_index(segment: str) -> int | None:
    """Return the array index a path segment names ("0", "12"; not "01" or "-1"), or None."""
    if segment.isdigit() and segment.isascii() and (segment == "0" or segment[0] != "0"):
        return int(segment)
    return None


def step(node: Any, segment: str) -> Any:
    """Return property `segment` of a JSON value, or MISSING (dict keys, array/string indexes, length)."""
    t = type(node)
    if t is dict or (t is not str and issubclass(t, Mapping)):
        return node.get(segment, MISSING)
    if t is list or t is tuple or t is str or issubclass(t, list | tuple | str):
        index = array_index(segment)
        if index is not None:
            return node[index] if index < len(node) else MISSING
        return len(node) if segment == "length" else MISSING
    return MISSING


def lookup(data: Any, segments: tuple[str, ...], default: Any) -> Any:
    """Follow a split `var` path through `data`; `default` when a step is missing or lands on null."""
    for segment in segments:
        if type(data) is dict:
            data = data.get(segment, MISSING)
        elif data is None:
            return default
        else:
            data = step(data, segment)
        if data is MISSING:
            return default
    return data


def split_path(path: Any) -> tuple[str, ...] | None:
    """Split a `var` path value into segments; None means "the whole data" (null, "" or absent)."""
    if path is None or path is MISSING or (issubclass(type(path), str) and path == ""):
        return None
    return tuple(to_string(path).split("."))


def get_var(data: Any, path: Any, default: Any = None) -> Any:
    """Evaluate `{"var": [path, default]}` against `data`."""
    segments = split_path(path)
    if segments is None:
        return data
    return lookup(data, segments, default)


def missing_keys(data: Any, args: list[Any]) -> list[Any]:
    """`missing`: the keys (first operand if it is an array, else all operands) that are null or ""."""
    keys = args[0] if args and issubclass(type(args[0]), list | tuple) else args
    out = []
    for key in keys:
        value = get_var(data, key)
        if value is None or (type(value) is str and value == ""):
            out.append(key)
    return out


def missing_some(data: Any, need: Any, options: Any) -> list[Any]:
    """`missing_some`: [] when at least `need` of `options` are present, else the missing ones."""
    if not issubclass(type(options), list | tuple):
        options = [options]
    absent = missing_keys(data, [options])
    if less_equal(need, len(options) - len(absent)):
        return []
    return absent


# --- domain operators ---------------------------------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    if type(value) is str:
        if not 0 < len(value) <= 64:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    if issubclass(type(value), datetime):
        return value
    if issubclass(type(value), date):
        return datetime(value.year, value.month, value.day)
    return None


def _elapsed_seconds(value: Any, now: datetime) -> float | None:
    moment = _moment(value)
    if moment is None:
        return None
    if moment.tzinfo is None:  # a date or naive time is taken in now's time zone (UTC if naive too)
        moment = moment.replace(tzinfo=now.tzinfo or UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (now - moment).total_seconds()


def days_since(value: Any, *, now: datetime) -> float | None:
    """Days (fractional) from a date/datetime (ISO string or object) to now; null when not a date."""
    seconds = _elapsed_seconds(value, now)
    return None if seconds is None else seconds / 86400


def hours_since(value: Any, *, now: datetime) -> float | None:
    """Hours (fractional) from a date/datetime (ISO string or object) to now; null when not a date."""
    seconds = _elapsed_seconds(value, now)
    return None if seconds is None else seconds / 3600


def in_region(value: Any, regions: Any) -> bool:
    """Tell whether a region code (or an object's `region`) is one of `regions` or inside one ("a/b")."""
    if type(value) is str:
        code = value
    elif issubclass(type(value), Mapping):
        code = value.get("region")
        if type(code) is not str:
            return False
    else:
        return False
    if type(regions) is str:
        regions = (regions,)
    elif not issubclass(type(regions), list | tuple):
        return False
    for region in regions:
        if (
            type(region) is str
            and region
            and code.startswith(region)
            and (len(code) == len(region) or code[len(region)] == "/")
        ):
            return True
    return False


def _as_list(value: Any) -> list[Any] | tuple[Any, ...]:
    if issubclass(type(value), list | tuple):
        return value
    return [] if value is None else [value]


def contains_any(values: Any, wanted: Any) -> bool:
    """Tell whether two lists (a scalar counts as a one-item list) share an element (strict equality)."""
    left = values if type(values) is list else _as_list(values)
    right = wanted if type(wanted) is tuple else _as_list(wanted)
    for a in left:
        # Python's `in` finds candidates cheaply; strict_eq then rejects what === would not match (1 vs true).
        if a in right:
            for b in right:
                if strict_eq(a, b):
                    return True
    return False
