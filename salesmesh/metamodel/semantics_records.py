"""Semantic checks of the data-shaping kinds: forms (unique keys, type-specific field settings, defaults,
safe regexes, conditions that name existing fields), rep attributes and working calendars (time zone,
ordered intervals, holiday ranges, make-up working days).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salesmesh.metamodel.semantics import (
    condition_vars,
    duplicates,
    err,
    is_number,
    not_allowed,
    regex_problem,
    unknown,
)
from salesmesh.metamodel.validation_errors import ValidationError, join_pointer

# Names the routing/pool runtime puts next to rep attributes in a candidate filter's data.
RESERVED_ATTRIBUTES = frozenset({"lead", "rep", "user", "team", "id", "role", "name", "email", "active"})

# --- form --------------------------------------------------------------------------------------------

TEXT_TYPES = frozenset({"text", "long_text", "phone", "email", "url"})
NUMBER_TYPES = frozenset({"number", "money"})
CHOICE_TYPES = frozenset({"select", "multi_select"})
# Which optional settings each field type accepts (beyond key/type/label/help/visible_if).
_FIELD_SETTINGS: dict[str, frozenset[str]] = {
    "options": CHOICE_TYPES,
    "min": NUMBER_TYPES,
    "max": NUMBER_TYPES,
    "decimals": NUMBER_TYPES,
    "currency": frozenset({"money"}),
    "min_length": TEXT_TYPES,
    "max_length": TEXT_TYPES,
    "pattern": TEXT_TYPES,
    "max_selected": frozenset({"multi_select"}),
    "reference": frozenset({"reference"}),
    "file": frozenset({"file"}),
}
_HEADING_FORBIDDEN = (
    "required",
    "required_if",
    "read_only",
    "default",
    "placeholder",
    "show_in_list",
    "searchable",
)


def _valid_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _valid_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return len(value) >= 16


def _default_problem(ftype: str, field: dict[str, Any]) -> tuple[str, str] | None:
    """Check a field's default value against its type; return (en, zh) or None."""
    value = field["default"]
    options = {o["value"] for o in field.get("options", [])}
    if ftype in TEXT_TYPES:
        if not isinstance(value, str):
            return "Default must be text", "默认值必须是文本"
        if "max_length" in field and len(value) > field["max_length"]:
            return "Default is longer than max_length", "默认值超过最大长度"
    elif ftype in NUMBER_TYPES:
        if not is_number(value):
            return "Default must be a number", "默认值必须是数字"
        if ("min" in field and value < field["min"]) or ("max" in field and value > field["max"]):
            return "Default is outside min/max", "默认值超出最小值/最大值范围"
    elif ftype == "boolean":
        if not isinstance(value, bool):
            return "Default must be true or false", "默认值必须是 true 或 false"
    elif ftype == "select":
        if value not in options:
            return "Default must be one of the options", "默认值必须是选项之一"
    elif ftype == "multi_select":
        if not isinstance(value, list) or not set(value) <= options:
            return "Default must be a list of option values", "默认值必须是由选项值组成的列表"
    elif ftype == "date":
        if not isinstance(value, str) or not _valid_date(value):
            return "Default must be a date written as YYYY-MM-DD", "默认值必须是 YYYY-MM-DD 格式的日期"
    elif ftype == "datetime":
        if not isinstance(value, str) or not _valid_datetime(value):
            return "Default must be an ISO 8601 date and time", "默认值必须是 ISO 8601 格式的日期时间"
    else:
        return f"A {ftype} field cannot have a default", f"{ftype} 类型的字段不能设置默认值"
    return None


def _check_field(field: dict[str, Any], path: str, keys: set[str]) -> list[ValidationError]:
    errors: list[ValidationError] = []
    ftype = field["type"]
    if ftype == "heading":
        for name in _HEADING_FORBIDDEN:
            if name in field:
                errors.append(not_allowed(join_pointer(path, name), "on a heading", "标题类字段"))
    for name, types in _FIELD_SETTINGS.items():
        if name in field and ftype not in types:
            errors.append(not_allowed(join_pointer(path, name), f"on a {ftype} field", f"{ftype} 类型的字段"))
    if ftype in CHOICE_TYPES and "options" not in field:
        errors.append(
            err(
                join_pointer(path, "options"),
                "A choice field needs options",
                "选择类字段必须设置选项（options）",
            )
        )
    if ftype == "reference" and "reference" not in field:
        errors.append(
            err(
                join_pointer(path, "reference"),
                "A reference field needs a reference target",
                "引用类字段必须设置引用目标（reference）",
            )
        )
    if ftype == "file" and "file" not in field:
        errors.append(
            err(
                join_pointer(path, "file"),
                "A file field needs file limits",
                "附件类字段必须设置文件限制（file）",
            )
        )
    if ftype in CHOICE_TYPES and "options" in field:
        errors.extend(duplicates(field["options"], join_pointer(path, "options"), "value"))
    if is_number(field.get("min")) and is_number(field.get("max")) and field["min"] > field["max"]:
        errors.append(err(join_pointer(path, "max"), "max must not be less than min", "最大值不能小于最小值"))
    if "min_length" in field and "max_length" in field and field["min_length"] > field["max_length"]:
        errors.append(
            err(
                join_pointer(path, "max_length"),
                "max_length must not be less than min_length",
                "最大长度不能小于最小长度",
            )
        )
    if "pattern" in field and ftype in TEXT_TYPES:
        problem = regex_problem(field["pattern"])
        if problem:
            errors.append(err(join_pointer(path, "pattern"), *problem))
    if "default" in field and ftype != "heading":
        problem = _default_problem(ftype, field)
        if problem:
            errors.append(err(join_pointer(path, "default"), *problem))
    for cond_key in ("visible_if", "required_if"):
        if cond_key in field:
            names = condition_vars(field[cond_key])
            for name in sorted(names - keys):
                errors.append(unknown(join_pointer(path, cond_key), name, "field in condition", "条件字段"))
            if field["key"] in names:
                errors.append(
                    err(
                        join_pointer(path, cond_key),
                        "A field's condition cannot depend on the field itself",
                        "字段的条件不能依赖该字段自身",
                    )
                )
    return errors


def check_form(doc: dict[str, Any]) -> list[ValidationError]:
    """Check unique section/field keys, type-specific settings, defaults, regexes and condition fields."""
    sections = doc["sections"]
    errors = duplicates(sections, "/sections")
    keys = {f["key"] for s in sections for f in s["fields"]}
    first: dict[str, str] = {}
    for si, section in enumerate(sections):
        if "visible_if" in section:
            for name in sorted(condition_vars(section["visible_if"]) - keys):
                errors.append(unknown(f"/sections/{si}/visible_if", name, "field in condition", "条件字段"))
        for fi, field in enumerate(section["fields"]):
            path = f"/sections/{si}/fields/{fi}"
            if field["key"] in first:
                errors.append(
                    err(
                        path + "/key",
                        f"Duplicate field key '{field['key']}' (already used at {first[field['key']]})",
                        f"字段标识“{field['key']}”重复（已在 {first[field['key']]} 使用）",
                    )
                )
            else:
                first[field["key"]] = path
            errors.extend(_check_field(field, path, keys))
    return errors


# --- rep attributes ----------------------------------------------------------------------------------

_ATTR_SETTINGS: dict[str, frozenset[str]] = {
    "options": frozenset({"enum", "string_list"}),
    "min": frozenset({"integer", "number"}),
    "max": frozenset({"integer", "number"}),
    "max_length": frozenset({"string", "string_list"}),
    "max_items": frozenset({"string_list"}),
}


def _attr_default_ok(attr: dict[str, Any]) -> bool:
    value, atype = attr["default"], attr["type"]
    options = {o["value"] for o in attr.get("options", [])}
    if atype == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif atype == "number":
        ok = is_number(value)
    elif atype == "boolean":
        return isinstance(value, bool)
    elif atype == "string":
        return isinstance(value, str)
    elif atype == "enum":
        return value in options
    else:
        return isinstance(value, list) and (not options or set(value) <= options)
    return ok and not ("min" in attr and value < attr["min"]) and not ("max" in attr and value > attr["max"])


def check_rep_attributes(doc: dict[str, Any]) -> list[ValidationError]:
    """Check unique and non-reserved keys, type-specific settings and defaults."""
    attrs = doc["attributes"]
    errors = duplicates(attrs, "/attributes")
    for ai, attr in enumerate(attrs):
        path = f"/attributes/{ai}"
        if attr["key"] in RESERVED_ATTRIBUTES:
            errors.append(
                err(
                    path + "/key",
                    f"'{attr['key']}' is a reserved name",
                    f"“{attr['key']}”是保留名称，不能使用",
                )
            )
        for name, types in _ATTR_SETTINGS.items():
            if name in attr and attr["type"] not in types:
                errors.append(
                    not_allowed(
                        f"{path}/{name}", f"on a {attr['type']} attribute", f"{attr['type']} 类型的属性"
                    )
                )
        if attr["type"] == "enum" and "options" not in attr:
            errors.append(
                err(path + "/options", "An enum attribute needs options", "枚举类属性必须设置选项（options）")
            )
        if "options" in attr:
            errors.extend(duplicates(attr["options"], path + "/options", "value"))
        if is_number(attr.get("min")) and is_number(attr.get("max")) and attr["min"] > attr["max"]:
            errors.append(err(path + "/max", "max must not be less than min", "最大值不能小于最小值"))
        if "default" in attr and not _attr_default_ok(attr):
            errors.append(
                err(
                    path + "/default",
                    f"Default does not fit a {attr['type']} attribute",
                    f"默认值与属性类型 {attr['type']} 不符",
                )
            )
    return errors


# --- calendar ----------------------------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _check_intervals(intervals: list[dict[str, str]], path: str) -> list[ValidationError]:
    errors: list[ValidationError] = []
    previous_end = -1
    for i, interval in enumerate(intervals):
        start, end = _minutes(interval["start"]), _minutes(interval["end"])
        if end <= start:
            errors.append(err(f"{path}/{i}/end", "End must be after start", "结束时间必须晚于开始时间"))
        elif start < previous_end:
            errors.append(
                err(
                    f"{path}/{i}/start",
                    "Intervals must be in order and must not overlap",
                    "时间段必须按顺序排列且不能重叠",
                )
            )
        previous_end = max(previous_end, end)
    return errors


def check_calendar(doc: dict[str, Any]) -> list[ValidationError]:
    """Check the time zone, ordered working intervals, holiday ranges and make-up working days."""
    errors: list[ValidationError] = []
    try:
        ZoneInfo(doc["timezone"])
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors.append(unknown("/timezone", doc["timezone"], "time zone", "时区"))
    hours = doc["working_hours"]
    for day, intervals in hours.items():
        errors.extend(_check_intervals(intervals, f"/working_hours/{day}"))
    if not any(hours.values()):
        errors.append(
            err("/working_hours", "At least one day needs working hours", "至少要有一天设置工作时间")
        )
    off: dict[dt.date, int] = {}
    for hi, holiday in enumerate(doc.get("holidays", [])):
        start = dt.date.fromisoformat(holiday["date"])
        end = dt.date.fromisoformat(holiday.get("end_date", holiday["date"]))
        if end < start:
            errors.append(
                err(
                    f"/holidays/{hi}/end_date", "end_date must not be before date", "结束日期不能早于开始日期"
                )
            )
            continue
        if (end - start).days > 60:
            errors.append(
                err(f"/holidays/{hi}/end_date", "A holiday spans at most 60 days", "一个假期最长 60 天")
            )
            continue
        day = start
        while day <= end:
            if day in off:
                errors.append(
                    err(
                        f"/holidays/{hi}",
                        f"{day} is already a holiday at /holidays/{off[day]}",
                        f"{day} 已在 /holidays/{off[day]} 中设为假日",
                    )
                )
                break
            off[day] = hi
            day += dt.timedelta(days=1)
    seen: dict[str, int] = {}
    for wi, workday in enumerate(doc.get("workdays", [])):
        path = f"/workdays/{wi}"
        if workday["date"] in seen:
            errors.append(
                err(
                    path + "/date",
                    f"Duplicate date (already at /workdays/{seen[workday['date']]})",
                    "日期重复",
                )
            )
        seen.setdefault(workday["date"], wi)
        if dt.date.fromisoformat(workday["date"]) in off:
            errors.append(
                err(path + "/date", "This date is also listed as a holiday", "该日期同时被设为假日")
            )
        errors.extend(_check_intervals(workday["hours"], path + "/hours"))
    return errors
