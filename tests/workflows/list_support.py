"""Shared pieces of the list tests: list_view documents, a statement counter and a small world of leads.

Documents are plain dicts (valid list_view definitions) so each test can compile or publish them as it
needs; `count_statements` records the SQL an engine runs inside a block; `sign_in` opens a server-side
session for a user directly (the login form, with its deliberately slow password hash, has its own tests).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from salesmesh.platform import credentials
from salesmesh.platform.models import User


def L(en: str, zh: str) -> dict[str, str]:  # noqa: N802 - reads like the {"en","zh"} it builds
    """Return a bilingual label."""
    return {"en": en, "zh": zh}


GRADE_OPTIONS = [
    {"value": "tertiary_a", "label": L("Tertiary A", "三级甲等")},
    {"value": "secondary", "label": L("Secondary", "二级")},
]

LEAD_VIEW: dict[str, Any] = {
    "kind": "list_view",
    "key": "test-leads",
    "schema_version": 1,
    "label": L("Test leads", "测试线索"),
    "record_type": "lead",
    "default": True,
    "columns": [
        {"field": "name", "sortable": True, "searchable": True, "link": True},
        {"field": "status", "sortable": True},
        {"field": "owner", "sortable": True, "searchable": True},
        {
            "field": "data.grade",
            "label": L("Grade", "等级"),
            "type": "choice",
            "options": GRADE_OPTIONS,
            "sortable": True,
        },
        {"field": "data.beds", "label": L("Beds", "床位数"), "type": "number", "sortable": True},
        {"field": "data.city", "label": L("City", "城市"), "searchable": True},
        {"field": "received_at", "sortable": True},
    ],
    "filters": [
        {"key": "status", "field": "status", "operator": "in", "label": L("Status", "状态")},
        {"key": "mine", "field": "owner", "operator": "me", "label": L("Mine", "我的")},
        {"key": "team", "field": "owner", "operator": "my_team", "label": L("My team", "我的团队")},
        {"key": "unassigned", "field": "owner", "operator": "is_empty", "label": L("Unassigned", "未分配")},
        {"key": "grade", "field": "data.grade", "operator": "eq", "label": L("Grade", "等级")},
        {"key": "beds", "field": "data.beds", "operator": "between", "label": L("Beds", "床位数")},
        {"key": "min_beds", "field": "data.beds", "operator": "gte", "label": L("At least beds", "最少床位")},
        {
            "key": "recent",
            "field": "received_at",
            "operator": "days_ago_lt",
            "label": L("Received within", "接收时间"),
            "options": [
                {"value": "7", "label": L("7 days", "7 天")},
                {"value": "30", "label": L("30 days", "30 天")},
            ],
        },
        {
            "key": "received",
            "field": "received_at",
            "operator": "between",
            "label": L("Received", "接收时间"),
        },
        {"key": "name", "field": "name", "operator": "contains", "label": L("Name contains", "名称包含")},
    ],
    "sort": [{"field": "received_at", "direction": "desc"}],
    "page_size": 10,
}

DEAL_VIEW: dict[str, Any] = {
    "kind": "list_view",
    "key": "test-open-deals",
    "schema_version": 1,
    "label": L("Open deals by stage", "按阶段的进行中商机"),
    "record_type": "deal",
    "pipeline": "hospital-sales",
    "columns": [
        {"field": "name", "sortable": True, "searchable": True, "link": True},
        {"field": "customer", "sortable": True, "searchable": True},
        {"field": "stage", "sortable": True},
        {"field": "amount", "sortable": True},
        {"field": "owner", "sortable": True},
        {"field": "team"},
        {"field": "expected_close", "sortable": True},
    ],
    "filters": [
        {"key": "stage", "field": "stage", "operator": "in", "label": L("Stage", "阶段")},
        {"key": "amount", "field": "amount", "operator": "between", "label": L("Amount", "金额")},
        {
            "key": "closing",
            "field": "expected_close",
            "operator": "days_ahead_lt",
            "label": L("Closing within", "预计成交"),
        },
    ],
    "where": [{"field": "status", "operator": "eq", "value": "open"}],
    "sort": [{"field": "stage"}, {"field": "amount", "direction": "desc"}],
}

TASK_VIEW: dict[str, Any] = {
    "kind": "list_view",
    "key": "test-my-tasks",
    "schema_version": 1,
    "label": L("My open tasks", "我的待办任务"),
    "record_type": "task",
    "columns": [
        {"field": "title", "sortable": True, "searchable": True, "link": True},
        {"field": "due_at", "sortable": True},
        {"field": "status"},
    ],
    "filters": [{"key": "overdue", "field": "due_at", "operator": "past", "label": L("Overdue", "已逾期")}],
    "where": [
        {"field": "owner", "operator": "me"},
        {"field": "status", "operator": "in", "value": ["open"]},
    ],
    "sort": [{"field": "due_at"}],
}


def doc(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Return a deep copy of a document with top-level changes."""
    out = copy.deepcopy(base)
    out.update(changes)
    return out


@contextmanager
def count_statements(engine: Any) -> Iterator[list[str]]:
    """Collect the SQL statements run on `engine` inside the block."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def sign_in(client: Any, runtime: Any, user: User) -> None:
    """Start a server-side session for `user` and give its secret to the test client's cookie."""
    with runtime.db.session_scope() as s:
        _row, secret = credentials.start_session(s, s.get(User, user.id), clock=runtime.clock)
    with client.session_transaction() as cookie:
        cookie.clear()
        cookie["sid"] = secret
