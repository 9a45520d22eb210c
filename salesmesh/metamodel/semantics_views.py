"""Semantic checks of `list_view` definitions, and the catalogue of standard record fields they may name.

`RECORD_FIELDS` lists, per record type, the standard fields a list view can show, filter and sort on: each
with a value type (which decides the operators it accepts), a bilingual label and, for coded fields, the
allowed values with their labels. Form-defined fields are named `data.<key>` and typed by the view itself
(`type`, default text). The list runtime (`salesmesh.workflows.lists`) maps each catalogue name onto a SQL
expression; a test keeps the two in step. `check_list_view` checks what the schema cannot: fields known
to the record type, operators that fit the field's type, values of the right shape for their operator,
unique filter keys that do not clash with the list's own query parameters, and settings that only some
fields take.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from salesmesh.metamodel.semantics import duplicates, err, is_number, not_allowed, unknown
from salesmesh.metamodel.validation_errors import ValidationError, join_pointer

Label = dict[str, str]

TEXT, NUMBER, MONEY, DATE, DATETIME = "text", "number", "money", "date", "datetime"
CHOICE, BOOLEAN, USER, TEAM, CUSTOMER = "choice", "boolean", "user", "team", "customer"
DATA_PREFIX = "data."

VALUELESS = frozenset({"is_empty", "not_empty", "me", "my_team", "past", "future"})
DAY_OPERATORS = frozenset({"days_ago_lt", "days_ago_gt", "days_ahead_lt"})
# Ages in hours ("received within 4 hours"): first-response work is counted in hours, not days.
HOUR_OPERATORS = frozenset({"hours_ago_lt", "hours_ago_gt"})
# Operators whose value is a whole number of days or hours (the filter may list the counts as options).
COUNT_OPERATORS = DAY_OPERATORS | HOUR_OPERATORS
_EMPTY = frozenset({"is_empty", "not_empty"})
_COMPARE = frozenset({"lt", "lte", "gt", "gte", "between"})
_TIME = _COMPARE | DAY_OPERATORS | {"past", "future"}
# Which operators each value type accepts.
OPERATORS: dict[str, frozenset[str]] = {
    TEXT: frozenset({"eq", "ne", "in", "contains"}) | _EMPTY,
    CHOICE: frozenset({"eq", "ne", "in"}) | _EMPTY,
    NUMBER: frozenset({"eq", "ne"}) | _COMPARE | _EMPTY,
    MONEY: frozenset({"eq", "ne"}) | _COMPARE | _EMPTY,
    DATE: frozenset({"eq", "ne"}) | _TIME | _EMPTY,
    DATETIME: _TIME | HOUR_OPERATORS | _EMPTY,
    BOOLEAN: frozenset({"eq"}) | _EMPTY,
    USER: frozenset({"me", "my_team", "in"}) | _EMPTY,  # in: people picked from a list of user ids
    TEAM: frozenset({"my_team"}) | _EMPTY,
    CUSTOMER: _EMPTY,
}
# Types whose values can be searched with `q` (text that a person types).
SEARCHABLE_TYPES = frozenset({TEXT, USER, CUSTOMER})
# Operators whose filter takes a value from a fixed list of options (when the filter declares them).
OPTION_OPERATORS = frozenset({"eq", "ne", "in"}) | COUNT_OPERATORS
# Query parameters the list runtime uses itself; a filter key cannot take these names.
RESERVED_PARAMS = frozenset({"q", "sort", "page", "per_page", "view", "saved"})
MAX_DAYS = 3650
MAX_HOURS = 24 * MAX_DAYS


def count_limit(operator: str) -> tuple[int, str, str]:
    """Return the largest count a days/hours operator takes and its unit (English, Chinese)."""
    if operator in HOUR_OPERATORS:
        return MAX_HOURS, "hours", "小时数"
    return MAX_DAYS, "days", "天数"


@dataclass(frozen=True)
class RecordField:
    """A standard field of a record type: value type, bilingual label and (coded fields) allowed values."""

    type: str
    label: Label
    values: tuple[tuple[str, Label], ...] = ()

    @property
    def value_set(self) -> frozenset[str]:
        return frozenset(v for v, _ in self.values)


def _f(ftype: str, en: str, zh: str, values: tuple[tuple[str, Label], ...] = ()) -> RecordField:
    return RecordField(ftype, {"en": en, "zh": zh}, values)


def _v(*pairs: tuple[str, str, str]) -> tuple[tuple[str, Label], ...]:
    return tuple((value, {"en": en, "zh": zh}) for value, en, zh in pairs)


LEAD_STATUS_VALUES = _v(
    ("new", "New", "新线索"),
    ("contacted", "Contacted", "已联系"),
    ("qualified", "Qualified", "已确认"),
    ("converted", "Converted", "已转化"),
    ("disqualified", "Disqualified", "已作废"),
    ("pooled", "In the pool", "公海池"),
)
# First-response SLA as a list shows it: "overdue" is a pending SLA whose deadline has passed (computed at
# query time from `sla_state` and `sla_due_at`), so "pending" means still within its deadline.
SLA_VALUES = _v(
    ("pending", "Pending", "待响应"),
    ("overdue", "Overdue now", "当前已逾期"),
    ("met", "Met", "已达标"),
    ("breached", "Breached", "已超时"),
)
CHANNEL_VALUES = _v(
    ("web_form", "Web form", "网站表单"),
    ("phone_system", "Phone system (400)", "400 电话"),
    ("ad_platform", "Ad platform", "广告平台"),
    ("import", "Import", "导入"),
    ("manual", "Entered by hand", "手工录入"),
)
DEAL_STATUS_VALUES = _v(("open", "Open", "进行中"), ("won", "Won", "赢单"), ("lost", "Lost", "输单"))
LIGHT_VALUES = _v(
    ("green", "On track", "正常"), ("yellow", "Needs attention", "需关注"), ("red", "At risk", "有风险")
)
TASK_STATUS_VALUES = _v(
    ("open", "To do", "待办"), ("done", "Done", "已完成"), ("cancelled", "Cancelled", "已取消")
)
SUBJECT_VALUES = _v(("lead", "Lead", "线索"), ("customer", "Customer", "客户"), ("deal", "Deal", "商机"))
ACTIVITY_KIND_VALUES = _v(
    ("call", "Call", "电话"),
    ("visit", "Visit", "拜访"),
    ("email", "E-mail", "邮箱"),
    ("message", "Message", "消息"),
    ("meeting", "Meeting", "会议"),
    ("material_sent", "Material sent", "发送资料"),
    ("document_opened", "Document opened", "资料已打开"),
    ("objection", "Objection", "异议"),
    ("note", "Note", "备注"),
    ("stage_change", "Stage change", "阶段变更"),
    ("routing_decision", "Routing decision", "分配决定"),
    ("reminder", "Reminder", "提醒"),
)

_ID = _f(NUMBER, "No.", "编号")
_OWNER = _f(USER, "Owner", "负责人")
_TEAM = _f(TEAM, "Team", "团队")
_CUSTOMER = _f(CUSTOMER, "Customer", "客户")
_CREATED = _f(DATETIME, "Created", "创建时间")
_UPDATED = _f(DATETIME, "Updated", "更新时间")
_LAST_ACTIVITY = _f(DATETIME, "Last activity", "最近跟进")
_NEXT_STEP = _f(TEXT, "Next step", "下一步")
_NEXT_DUE = _f(DATETIME, "Next step due", "下一步截止")
_PHONE = _f(TEXT, "Phone", "电话")
_EMAIL = _f(TEXT, "E-mail", "邮箱")
_REGION = _f(TEXT, "Region", "地区")

RECORD_FIELDS: dict[str, dict[str, RecordField]] = {
    "lead": {
        "id": _ID,
        "name": _f(TEXT, "Lead", "线索"),
        "institution": _f(TEXT, "Institution", "机构"),
        "institution_grade": _f(TEXT, "Grade", "等级"),
        "region": _REGION,
        "phone": _PHONE,
        "email": _EMAIL,
        "status": _f(CHOICE, "Status", "状态", LEAD_STATUS_VALUES),
        "source_channel": _f(CHOICE, "Channel", "渠道", CHANNEL_VALUES),
        "campaign": _f(TEXT, "Campaign", "推广活动"),
        "owner": _OWNER,
        "team": _TEAM,
        "received_at": _f(DATETIME, "Received", "接收时间"),
        "assigned_at": _f(DATETIME, "Assigned", "分配时间"),
        "first_contact_at": _f(DATETIME, "First contact", "首次联系"),
        "sla_due_at": _f(DATETIME, "Respond by", "响应截止"),
        "sla_state": _f(CHOICE, "First-response SLA", "首次响应时限", SLA_VALUES),
        # The channel of the lead's latest routing decision (key-account, inclusive ...; routing-defined).
        "routing_channel": _f(TEXT, "Routing channel", "分配通道"),
        "last_activity_at": _LAST_ACTIVITY,
        "next_step": _NEXT_STEP,
        "next_step_due_at": _NEXT_DUE,
        "converted_at": _f(DATETIME, "Converted", "转化时间"),
        "created_at": _CREATED,
    },
    "customer": {
        "id": _ID,
        "name": _f(TEXT, "Customer", "客户"),
        "region": _REGION,
        "grade": _f(TEXT, "Grade", "等级"),
        "institution_type": _f(TEXT, "Institution type", "机构类型"),
        "owner": _OWNER,
        "team": _TEAM,
        "last_activity_at": _LAST_ACTIVITY,
        "created_at": _CREATED,
        "updated_at": _UPDATED,
    },
    "contact": {
        "id": _ID,
        "name": _f(TEXT, "Contact", "联系人"),
        "customer": _CUSTOMER,
        "role": _f(TEXT, "Role", "角色"),
        "department": _f(TEXT, "Department", "科室"),
        "phone": _PHONE,
        "email": _EMAIL,
        "owner": _OWNER,
        "team": _TEAM,
        "created_at": _CREATED,
        "updated_at": _UPDATED,
    },
    "deal": {
        "id": _ID,
        "name": _f(TEXT, "Deal", "商机"),
        "customer": _CUSTOMER,
        "stage": _f(CHOICE, "Stage", "阶段"),
        "pipeline_key": _f(TEXT, "Pipeline", "销售流程"),
        "status": _f(CHOICE, "Status", "状态", DEAL_STATUS_VALUES),
        "light": _f(CHOICE, "Light", "信号灯", LIGHT_VALUES),
        "owner": _OWNER,
        "team": _TEAM,
        "amount": _f(MONEY, "Amount", "金额"),
        "currency": _f(TEXT, "Currency", "币种"),
        "expected_close": _f(DATE, "Expected close", "预计成交日期"),
        "next_step": _NEXT_STEP,
        "next_step_due_at": _NEXT_DUE,
        "stage_entered_at": _f(DATETIME, "In stage since", "进入阶段时间"),
        "last_activity_at": _LAST_ACTIVITY,
        "closed_at": _f(DATETIME, "Closed", "关闭时间"),
        "created_at": _CREATED,
        "updated_at": _UPDATED,
    },
    "activity": {
        "id": _ID,
        "kind": _f(CHOICE, "Type", "类型", ACTIVITY_KIND_VALUES),
        "subject_type": _f(CHOICE, "About", "关联对象", SUBJECT_VALUES),
        "customer": _CUSTOMER,
        "occurred_at": _f(DATETIME, "When", "时间"),
        "actor": _f(USER, "Logged by", "记录人"),
        "owner": _OWNER,
        "team": _TEAM,
        "outcome": _f(TEXT, "Outcome", "结果"),
        "summary": _f(TEXT, "Summary", "摘要"),
        "next_step": _NEXT_STEP,
        "next_step_due_at": _NEXT_DUE,
        "created_at": _CREATED,
    },
    "task": {
        "id": _ID,
        "title": _f(TEXT, "Task", "任务"),
        "subject_type": _f(CHOICE, "About", "关联对象", SUBJECT_VALUES),
        "customer": _CUSTOMER,
        "owner": _f(USER, "Assignee", "执行人"),
        "team": _TEAM,
        "status": _f(CHOICE, "Status", "状态", TASK_STATUS_VALUES),
        "due_at": _f(DATETIME, "Due", "截止时间"),
        "done_at": _f(DATETIME, "Done at", "完成时间"),
        "created_at": _CREATED,
    },
}


def is_data_field(name: str) -> bool:
    """Tell whether a field name refers to a form-defined field (`data.<key>`)."""
    return name.startswith(DATA_PREFIX)


def data_types(doc: dict[str, Any]) -> dict[str, str]:
    """Return the declared type of each `data.<key>` field a view names (columns first, then filters)."""
    found: dict[str, str] = {}
    for group in ("columns", "filters", "where"):
        for item in doc.get(group, []):
            if is_data_field(item.get("field", "")) and "type" in item:
                found.setdefault(item["field"], item["type"])
    return found


def field_type(record_type: str, name: str, data: dict[str, str]) -> str | None:
    """Return the value type of a field of `record_type` (None when the record type has no such field).

    A `data.<key>` field takes the type the view declares for it anywhere (`data`), text when none.
    """
    if is_data_field(name):
        return data.get(name, TEXT)
    known = RECORD_FIELDS.get(record_type, {}).get(name)
    return known.type if known else None


# --- values ------------------------------------------------------------------------------------------


def _date_ok(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def scalar_problem(ftype: str, value: Any, allowed: frozenset[str]) -> tuple[str, str] | None:
    """Check one value against a field type (and its allowed values); return (en, zh) or None."""
    if ftype in (NUMBER, MONEY):
        return None if is_number(value) else ("Must be a number", "必须是数字")
    if ftype in (DATE, DATETIME):
        return (
            None
            if _date_ok(value)
            else ("Must be a date written as YYYY-MM-DD", "必须是 YYYY-MM-DD 格式的日期")
        )
    if ftype == BOOLEAN:
        return None if isinstance(value, bool) else ("Must be true or false", "必须是 true 或 false")
    if ftype == USER:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return None if ok else ("Must be a user id (a whole number)", "必须是用户编号（整数）")
    if not isinstance(value, str):
        return "Must be text", "必须是文本"
    if allowed and value not in allowed:
        return (
            f"'{value}' is not one of {', '.join(sorted(allowed))}",
            f"“{value}”不是允许的值（{', '.join(sorted(allowed))}）",
        )
    return None


def _where_value_errors(
    item: dict[str, Any], ftype: str, allowed: frozenset[str], path: str
) -> list[ValidationError]:
    operator, vpath = item["operator"], join_pointer(path, "value")
    has_value = "value" in item
    value = item.get("value")
    if operator in VALUELESS:
        return (
            [not_allowed(vpath, f"with the operator {operator}", f"运算符 {operator} ")] if has_value else []
        )
    if not has_value:
        return [
            err(vpath, f"The operator {operator} needs a value", f"运算符 {operator} 需要一个值（value）")
        ]
    if operator in COUNT_OPERATORS:
        top, unit, unit_zh = count_limit(operator)
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top
        return (
            []
            if ok
            else [
                err(
                    vpath,
                    f"Must be a whole number of {unit} from 1 to {top}",
                    f"须为 1 到 {top} 之间的整数{unit_zh}",
                )
            ]
        )
    if operator == "in":
        if not isinstance(value, list):
            return [err(vpath, "The operator in needs a list of values", "运算符 in 需要一个值的列表")]
        items = value
    elif operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            return [
                err(vpath, "The operator between needs [from, to]", "运算符 between 需要 [起, 止] 两个值")
            ]
        items = value
    else:
        if isinstance(value, list):
            return [
                err(
                    vpath,
                    f"The operator {operator} needs one value, not a list",
                    f"运算符 {operator} 只需要一个值，而不是列表",
                )
            ]
        items = [value]
    if operator == "contains":
        return [] if isinstance(value, str) and value else [err(vpath, "Must be text", "必须是文本")]
    errors = []
    for i, one in enumerate(items):
        problem = scalar_problem(ftype, one, allowed)
        if problem:
            errors.append(
                err(
                    vpath
                    if len(items) == 1 and operator not in ("in", "between")
                    else join_pointer(vpath, i),
                    *problem,
                )
            )
    if operator == "between" and not errors and items[0] > items[1]:
        errors.append(
            err(join_pointer(vpath, 1), "The end must not be before the start", "结束值不能小于开始值")
        )
    return errors


# --- the check ---------------------------------------------------------------------------------------


def _field_errors(
    doc: dict[str, Any], item: dict[str, Any], path: str
) -> tuple[str | None, frozenset[str], list[ValidationError]]:
    """Resolve the item's field: (type or None, allowed values, errors about field/type/options)."""
    record_type, name = doc["record_type"], item["field"]
    errors: list[ValidationError] = []
    types = data_types(doc)
    if "type" in item and not is_data_field(name):
        errors.append(
            not_allowed(
                join_pointer(path, "type"),
                "on a standard field (its type is known)",
                "标准字段（其类型已知）",
            )
        )
    elif "type" in item and item["type"] != types[name]:
        errors.append(
            err(
                join_pointer(path, "type"),
                f"{name} is declared as {types[name]} elsewhere in this view",
                f"{name} 在本视图其他位置声明为 {types[name]}",
            )
        )
    ftype = field_type(record_type, name, types)
    if ftype is None:
        errors.append(
            unknown(join_pointer(path, "field"), name, f"{record_type} field", f"{record_type} 字段")
        )
        return None, frozenset(), errors
    known = RECORD_FIELDS[record_type].get(name)
    allowed = known.value_set if known else frozenset()
    if "options" in item:
        opath = join_pointer(path, "options")
        errors.extend(duplicates(item["options"], opath, "value"))
        if allowed:
            for i, option in enumerate(item["options"]):
                if option["value"] not in allowed:
                    errors.append(
                        unknown(
                            join_pointer(opath, i, "value"),
                            option["value"],
                            f"value of {name}",
                            f"{name} 的取值",
                        )
                    )
        allowed = allowed or frozenset(o["value"] for o in item["options"])
    return ftype, allowed, errors


def _check_columns(doc: dict[str, Any]) -> list[ValidationError]:
    errors = duplicates(doc["columns"], "/columns", "field")
    for i, column in enumerate(doc["columns"]):
        path = f"/columns/{i}"
        ftype, _allowed, problems = _field_errors(doc, column, path)
        errors.extend(problems)
        if ftype is None:
            continue
        if is_data_field(column["field"]) and "label" not in column and "form" not in doc:
            errors.append(
                err(
                    path + "/label",
                    "A data.<key> column needs a label (or a form to take it from)",
                    "data.<key> 列必须设置标签（label），或指定提供标签的表单（form）",
                )
            )
        if column.get("searchable") and ftype not in SEARCHABLE_TYPES:
            errors.append(
                not_allowed(
                    path + "/searchable",
                    f"on a {ftype} field (only text can be searched)",
                    f"{ftype} 类型的字段（只能搜索文本）",
                )
            )
        # On a choice column options restrict and name the values; on a text column (stored codes such
        # as region or grade) they give the codes their display names.
        if "options" in column and ftype not in (CHOICE, TEXT):
            errors.append(not_allowed(path + "/options", f"on a {ftype} field", f"{ftype} 类型的字段"))
    return errors


def _check_filters(doc: dict[str, Any]) -> list[ValidationError]:
    filters = doc.get("filters", [])
    errors = duplicates(filters, "/filters")
    for i, item in enumerate(filters):
        path = f"/filters/{i}"
        if item["key"] in RESERVED_PARAMS:
            errors.append(
                err(
                    path + "/key",
                    f"'{item['key']}' is a query parameter of every list; choose another key",
                    f"“{item['key']}”是列表自身的查询参数，请换一个标识",
                )
            )
        ftype, _allowed, problems = _field_errors(doc, item, path)
        errors.extend(problems)
        if ftype is None:
            continue
        operator = item["operator"]
        if operator not in OPERATORS[ftype]:
            errors.append(_bad_operator(path, operator, ftype))
        elif "options" in item:
            if (
                operator not in OPTION_OPERATORS
                or ftype not in (CHOICE, TEXT)
                and operator not in COUNT_OPERATORS
            ):
                errors.append(
                    not_allowed(
                        path + "/options",
                        f"with the operator {operator} on a {ftype} field",
                        f"{ftype} 类型字段的运算符 {operator} ",
                    )
                )
            elif operator in COUNT_OPERATORS:
                top, unit, unit_zh = count_limit(operator)
                for oi, option in enumerate(item["options"]):
                    if not option["value"].isdigit() or not 1 <= int(option["value"]) <= top:
                        errors.append(
                            err(
                                f"{path}/options/{oi}/value",
                                f"Must be a whole number of {unit} from 1 to {top}",
                                f"须为 1 到 {top} 之间的整数{unit_zh}",
                            )
                        )
    return errors


def _bad_operator(path: str, operator: str, ftype: str) -> ValidationError:
    allowed = ", ".join(sorted(OPERATORS[ftype]))
    return err(
        path + "/operator",
        f"The operator {operator} does not apply to a {ftype} field (use one of {allowed})",
        f"运算符 {operator} 不适用于 {ftype} 类型的字段（可用：{allowed}）",
    )


def _check_where(doc: dict[str, Any]) -> list[ValidationError]:
    errors: list[ValidationError] = []
    for i, item in enumerate(doc.get("where", [])):
        path = f"/where/{i}"
        ftype, allowed, problems = _field_errors(doc, item, path)
        errors.extend(problems)
        if ftype is None:
            continue
        if item["operator"] not in OPERATORS[ftype]:
            errors.append(_bad_operator(path, item["operator"], ftype))
            continue
        errors.extend(_where_value_errors(item, ftype, allowed, path))
    return errors


def _check_sort(doc: dict[str, Any]) -> list[ValidationError]:
    sort = doc.get("sort", [])
    errors = duplicates(sort, "/sort", "field")
    columns = {c["field"] for c in doc["columns"]}
    for i, item in enumerate(sort):
        name = item["field"]
        if is_data_field(name) and name not in columns:
            errors.append(
                err(
                    f"/sort/{i}/field",
                    f"Sort on {name} needs a column for it (its type comes from the column)",
                    f"按 {name} 排序需要先为其设置一列（类型取自该列）",
                )
            )
        elif not is_data_field(name) and name not in RECORD_FIELDS[doc["record_type"]]:
            errors.append(
                unknown(f"/sort/{i}/field", name, f"{doc['record_type']} field", f"{doc['record_type']} 字段")
            )
    return errors


def check_list_view(doc: dict[str, Any]) -> list[ValidationError]:
    """Check fields known to the record type, operators fitting the field, values, keys and references."""
    errors = _check_columns(doc) + _check_filters(doc) + _check_where(doc) + _check_sort(doc)
    if "pipeline" in doc and doc["record_type"] != "deal":
        errors.append(not_allowed("/pipeline", "on a list of anything but deals", "非商机列表"))
    return errors


def list_view_refs(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """List the form and pipeline a list view names."""
    out: list[tuple[str, str, str]] = []
    for name in ("form", "pipeline"):
        if isinstance(doc.get(name), str):
            out.append((f"/{name}", name, doc[name]))
    return out
