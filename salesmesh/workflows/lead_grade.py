"""Which leads a routing definition counts as high grade: the `high_grade` condition of a routing document.

The distribution report and the what-if simulator show each rep's share of high-grade leads, so a rep who
only ever gets small clinics or one-person companies stands out. What "high grade" means depends on the
business, so it is part of the routing definition: `high_grade` is a JsonLogic condition over the same facts
as the rules' `when` (`routing_plan.lead_facts`: the lead's standard columns overlaid by its form data) —
tertiary hospitals in the medical-device pack, companies of more than 100 people in the SaaS pack. A
routing without it defines no high-grade leads: their share is None (shown as "—"), never 0.
`high_grade_test(document)` compiles the condition; `is_high_grade(test, facts, now)` applies it (a lead
whose facts the condition cannot read — a text where it compares numbers — counts as not high grade, as a
rule that cannot be evaluated counts as no match).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from salesmesh.metamodel.conditions import ConditionError, compile_condition
from salesmesh.workflows.routing_plan import RoutingUnavailable

GradeTest = Callable[[Mapping[str, Any], datetime], bool]


def high_grade_test(document: Mapping[str, Any]) -> GradeTest | None:
    """Compile a routing document's `high_grade` condition (None when it sets none)."""
    condition = document.get("high_grade")
    if condition is None:
        return None
    try:
        return compile_condition(condition, base_path="/high_grade").test  # type: ignore[return-value]
    except ConditionError as exc:
        raise RoutingUnavailable(
            f"routing {document.get('key')!r}: high_grade does not compile: {exc}", exc.errors
        ) from exc


def is_high_grade(test: GradeTest, facts: Mapping[str, Any], now: datetime) -> bool:
    """Tell whether a lead's facts meet a compiled `high_grade` condition (unreadable facts: no)."""
    try:
        return bool(test(facts, now))
    except ConditionError:
        return False


def share(high: int, graded: int) -> float | None:
    """Return high ÷ graded rounded to 3 places, or None when no lead was graded."""
    return round(high / graded, 3) if graded else None
