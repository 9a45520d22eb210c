"""Validation problems in both languages: the `ValidationError` value, the `DocumentInvalid` exception and
the translation of jsonschema's errors into short English and Simplified Chinese messages, one template
per JSON Schema keyword (a schema may override one with `"x-messages": {keyword: {"en", "zh"}}`), with
the JSON pointer of the offending value (for `required` and `additionalProperties`: of the missing or
unknown property itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError


@dataclass(frozen=True)
class ValidationError:
    """One problem in a document: where (JSON pointer, "" = root) and what, in English and Chinese."""

    path: str
    message: str
    message_zh: str

    def to_dict(self) -> dict[str, str]:
        """Return the JSON shape shown by the API, CLI and UI."""
        return {"path": self.path, "message": self.message, "message_zh": self.message_zh}


class DocumentInvalid(Exception):
    """A document (or an upgrade of it) was refused; `.errors` lists every problem."""

    def __init__(self, errors: Sequence[ValidationError]):
        self.errors: list[ValidationError] = list(errors)
        first = self.errors[0] if self.errors else None
        summary = f"{first.path or '/'}: {first.message}" if first else "document is invalid"
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(summary + more)


def pointer(parts: Iterable[Any]) -> str:
    """Build a JSON pointer (RFC 6901) from path segments."""
    out = []
    for part in parts:
        out.append("/" + str(part).replace("~", "~0").replace("/", "~1"))
    return "".join(out)


def join_pointer(base: str, *parts: Any) -> str:
    """Append segments to an existing JSON pointer."""
    return base + pointer(parts)


def sort_key(error: ValidationError) -> tuple:
    """Order errors by path (array indexes numerically), then by message."""
    segments = []
    for seg in error.path.split("/")[1:]:
        segments.append((0, int(seg), "") if seg.isdigit() else (1, 0, seg))
    return (segments, error.message)


_TYPE_ZH = {
    "string": "字符串",
    "integer": "整数",
    "number": "数字",
    "boolean": "布尔值",
    "object": "对象",
    "array": "数组",
    "null": "空值",
}
_FORMAT_ZH = {"date": "日期（YYYY-MM-DD）", "date-time": "日期时间", "time": "时间", "email": "电子邮件地址"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _types(value: Any) -> tuple[str, str]:
    names = value if isinstance(value, list) else [value]
    return " or ".join(names), "或".join(_TYPE_ZH.get(n, n) for n in names)


def _enum(values: Sequence[Any]) -> tuple[str, str]:
    shown = [str(v) if isinstance(v, str) else repr(v) for v in values[:12]]
    tail = ", …" if len(values) > 12 else ""
    tail_zh = "、…" if len(values) > 12 else ""
    return ", ".join(shown) + tail, "、".join(shown) + tail_zh


def _additional(instance: dict, schema: dict) -> list[str]:
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return sorted(
        key for key in instance if key not in props and not any(re.search(p, key) for p in patterns)
    )


def _single(path: str, error: SchemaError) -> ValidationError:
    """Translate one keyword error whose path is already the instance path."""
    kw, val, inst = error.validator, error.validator_value, error.instance
    custom = error.schema.get("x-messages", {}).get(kw) if isinstance(error.schema, dict) else None
    if isinstance(custom, dict):
        return ValidationError(path, custom["en"], custom["zh"])
    en: str
    zh: str
    if kw == "type":
        t_en, t_zh = _types(val)
        en, zh = f"Must be of type {t_en}", f"类型必须为{t_zh}"
    elif kw == "enum":
        e_en, e_zh = _enum(val)
        en, zh = f"Must be one of: {e_en}", f"必须是以下值之一：{e_zh}"
    elif kw == "const":
        en, zh = f"Must be {_short(val)}", f"必须为 {_short(val)}"
    elif kw == "pattern":
        en, zh = f"Does not match the required pattern {val}", f"格式不符合要求（{val}）"
    elif kw == "minLength":
        if val == 1:
            en, zh = "Must not be empty", "不能为空"
        else:
            en, zh = f"Must be at least {val} characters long", f"长度至少为 {val} 个字符"
    elif kw == "maxLength":
        en, zh = f"Must be at most {val} characters long", f"长度不能超过 {val} 个字符"
    elif kw == "minItems":
        en, zh = f"Must have at least {val} item(s)", f"至少需要 {val} 项"
    elif kw == "maxItems":
        en, zh = f"Must have at most {val} items", f"最多只能有 {val} 项"
    elif kw == "uniqueItems":
        en, zh = "Items must be unique", "列表中的项不能重复"
    elif kw == "minimum":
        en, zh = f"Must be at least {val}", f"不能小于 {val}"
    elif kw == "maximum":
        en, zh = f"Must be at most {val}", f"不能大于 {val}"
    elif kw == "exclusiveMinimum":
        en, zh = f"Must be greater than {val}", f"必须大于 {val}"
    elif kw == "exclusiveMaximum":
        en, zh = f"Must be less than {val}", f"必须小于 {val}"
    elif kw == "multipleOf":
        en, zh = f"Must be a multiple of {val}", f"必须是 {val} 的整数倍"
    elif kw == "minProperties":
        en, zh = f"Must have at least {val} propert{'y' if val == 1 else 'ies'}", f"至少需要 {val} 个属性"
    elif kw == "maxProperties":
        en, zh = f"Must have at most {val} properties", f"最多只能有 {val} 个属性"
    elif kw == "format":
        en = f"Not a valid {val}"
        zh = f"不是有效的{_FORMAT_ZH.get(val, val)}"
    elif kw == "oneOf":
        if error.context:
            en, zh = "Does not match any of the allowed forms", "不符合任何一种允许的写法"
        else:
            en, zh = "Matches more than one of the allowed forms", "同时符合多种写法，无法确定含义"
    elif kw == "anyOf":
        en, zh = "Does not match any of the allowed forms", "不符合任何一种允许的写法"
    elif kw == "not":
        en, zh = "This value is not allowed here", "此处不允许该值"
    elif kw == "propertyNames":
        en, zh = f"Invalid property name {_short(inst)}", f"属性名 {_short(inst)} 无效"
    elif kw == "contains":
        en, zh = "Does not contain a required item", "缺少必需的项"
    elif kw is None:
        en, zh = "No value is allowed here", "此处不允许任何值"
    else:
        en, zh = f"Invalid value: {error.message}", f"值无效：{error.message}"
    return ValidationError(path, en, zh)


def translate(error: SchemaError) -> Iterator[ValidationError]:
    """Yield the bilingual problems for one jsonschema error (several for required/additionalProperties)."""
    base = pointer(error.absolute_path)
    kw, val, inst = error.validator, error.validator_value, error.instance
    if kw == "required" and isinstance(inst, dict):
        for prop in val:
            if prop not in inst:
                yield ValidationError(
                    join_pointer(base, prop),
                    f"Required property '{prop}' is missing",
                    f"缺少必填项“{prop}”",
                )
        return
    if kw == "dependentRequired" and isinstance(inst, dict):
        for prop, needed in val.items():
            if prop in inst:
                for each in needed:
                    if each not in inst:
                        yield ValidationError(
                            join_pointer(base, each),
                            f"Property '{each}' is required when '{prop}' is set",
                            f"设置了“{prop}”时必须同时填写“{each}”",
                        )
        return
    if kw in ("additionalProperties", "unevaluatedProperties") and val is False and isinstance(inst, dict):
        for extra in _additional(inst, error.schema if isinstance(error.schema, dict) else {}):
            yield ValidationError(
                join_pointer(base, extra),
                f"Unknown property '{extra}' is not allowed",
                f"不允许未知属性“{extra}”",
            )
        return
    yield _single(base, error)


def translate_all(errors: Iterable[SchemaError]) -> list[ValidationError]:
    """Translate jsonschema errors, drop duplicates and sort them by path."""
    seen: set[ValidationError] = set()
    out: list[ValidationError] = []
    for error in errors:
        for item in translate(error):
            if item not in seen:
                seen.add(item)
                out.append(item)
    out.sort(key=sort_key)
    return out
