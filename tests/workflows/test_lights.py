"""The light rule as a pure function: a table of cases, and counting days on a working calendar."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from salesmesh.workflows.calendars import WorkingCalendar
from salesmesh.workflows.lights import (
    DEFAULT_RULE,
    WEEKDAYS_UTC,
    LightRule,
    add_days,
    compute_light,
    elapsed_days,
    thresholds_of,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
D = timedelta(days=1)
H = timedelta(hours=1)
S = timedelta(seconds=1)
US = timedelta(microseconds=1)  # the resolution of times: red begins this long after the threshold

# A Beijing working week with a holiday on Monday 12 January and Saturday 17 January worked instead.
CN = WorkingCalendar.from_document(
    {
        "key": "cn",
        "timezone": "Asia/Shanghai",
        "working_hours": {
            day: [{"start": "09:00", "end": "18:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
        },
        "holidays": [{"date": "2026-01-12"}],
        "workdays": [{"date": "2026-01-17", "hours": [{"start": "09:00", "end": "18:00"}]}],
    }
)
CN_RULE = LightRule(1, 3, CN)


def cst(day: int, hour: int = 12, month: int = 1) -> datetime:
    """Return a Beijing wall-clock moment in January 2026 as UTC."""
    return (
        datetime(2026, month, day, hour - 8, 0, tzinfo=UTC)
        if hour >= 8
        else datetime(2026, month, day - 1, hour + 16, 0, tzinfo=UTC)
    )


def case(
    name: str, now: datetime, expect: tuple[Any, ...], rule: LightRule = DEFAULT_RULE, **inputs: Any
) -> Any:
    """One row: at `now`, with `inputs` (act, entered, step, task), expect (light, overdue since, change)."""
    return pytest.param(rule, now, inputs, expect, id=name)


CASES = [
    # Nothing planned: the deal is due from when it was last worked on (an activity or a stage entry).
    case("untouched half a day", T0 + 12 * H, ("green", T0, T0 + D), entered=T0),
    # Default thresholds: yellow from 1 to 3 days late inclusive, red once *more than* 3 days late.
    case("untouched a day less a microsecond", T0 + D - US, ("green", T0, T0 + D), entered=T0),
    case("untouched exactly 1 day", T0 + D, ("yellow", T0, T0 + 3 * D + US), entered=T0),
    case("untouched 3 days less a second", T0 + 3 * D - S, ("yellow", T0, T0 + 3 * D + US), entered=T0),
    case("untouched exactly 3 days", T0 + 3 * D, ("yellow", T0, T0 + 3 * D + US), entered=T0),
    case("untouched 3 days and a microsecond", T0 + 3 * D + US, ("red", T0, None), entered=T0),
    case("untouched 4 days", T0 + 4 * D, ("red", T0, None), entered=T0),
    case(
        "activity after entry",
        T0 + 3 * D + 12 * H,
        ("green", T0 + 3 * D, T0 + 4 * D),
        act=T0 + 3 * D,
        entered=T0,
    ),
    case(
        "entry after activity",
        T0 + 2 * D,
        ("yellow", T0 + D, T0 + 4 * D + US),
        act=T0 - 9 * D,
        entered=T0 + D,
    ),
    case("never worked on, nothing planned", T0, ("green", None, None)),
    # A plan: the earliest of the next step (until worked on at/after its due time) and the open tasks.
    case("next step ahead", T0, ("green", T0 + 5 * D, T0 + 6 * D), act=T0 - 10 * D, step=T0 + 5 * D),
    case("next step 2 days late", T0, ("yellow", T0 - 2 * D, T0 + D + US), act=T0 - 3 * D, step=T0 - 2 * D),
    case("next step 5 days late", T0, ("red", T0 - 5 * D, None), act=T0 - 6 * D, step=T0 - 5 * D),
    case("next step done since", T0, ("green", T0 - 12 * H, T0 + 12 * H), act=T0 - 12 * H, step=T0 - 2 * D),
    case(
        "overdue task beats a touch", T0, ("red", T0 - 4 * D, None), act=T0 - H, step=T0 + D, task=T0 - 4 * D
    ),
    case(
        "next step before task",
        T0,
        ("yellow", T0 - D, T0 + 2 * D + US),
        act=T0 - 3 * D,
        step=T0 - D,
        task=T0 + D,
    ),
    case("task ahead", T0, ("green", T0 + 2 * D, T0 + 3 * D), act=T0 - 8 * D, task=T0 + 2 * D),
    # Thresholds from the pipeline: yellow at once, red after half a day; red before yellow is clamped
    # (to just after yellow).
    case("yellow after 0 days", T0, ("yellow", T0, T0 + 12 * H + US), LightRule(0, 0.5), entered=T0),
    case("red before yellow", T0 + 2 * D, ("yellow", T0, T0 + 2 * D + US), LightRule(2, 1), entered=T0),
    case("red before yellow, a bit later", T0 + 2 * D + US, ("red", T0, None), LightRule(2, 1), entered=T0),
    # Working days on the Beijing calendar: weekends and holidays do not count, make-up days do.
    case("Fri noon, Sat", cst(10), ("green", cst(9), cst(13)), CN_RULE, entered=cst(9)),
    case("Fri noon, Mon noon (holiday)", cst(12), ("green", cst(9), cst(13)), CN_RULE, entered=cst(9)),
    case("Fri noon, Tue noon", cst(13), ("yellow", cst(9), cst(15) + US), CN_RULE, entered=cst(9)),
    case("Fri noon, Thu noon: 3 days", cst(15), ("yellow", cst(9), cst(15) + US), CN_RULE, entered=cst(9)),
    case("Fri noon, Thu noon and a bit", cst(15) + US, ("red", cst(9), None), CN_RULE, entered=cst(9)),
    # Three working days end at Saturday 00:00: the weekend adds no lateness, red begins on Monday.
    case(
        "Wed 0h, Sun: 3 days", cst(25), ("yellow", cst(21, 0), cst(26, 0) + US), CN_RULE, entered=cst(21, 0)
    ),
    case("Wed 0h, Mon 0h and a bit", cst(26, 0) + US, ("red", cst(21, 0), None), CN_RULE, entered=cst(21, 0)),
    case(
        "Thu noon, make-up Sat",
        cst(17),
        ("yellow", cst(15), cst(19) + US),
        CN_RULE,
        act=cst(15),
        entered=cst(1),
    ),
]


@pytest.mark.parametrize(("rule", "now", "inputs", "expect"), CASES)
def test_rule_table(rule: LightRule, now: datetime, inputs: dict[str, Any], expect: tuple[Any, ...]) -> None:
    state = compute_light(
        rule,
        now=now,
        last_activity_at=inputs.get("act"),
        stage_entered_at=inputs.get("entered"),
        next_step_due_at=inputs.get("step"),
        task_due_at=inputs.get("task"),
    )
    assert (state.light, state.overdue_since, state.changes_at) == expect


def test_the_light_changes_exactly_when_it_says() -> None:
    """A microsecond before `changes_at` the old light, at it the next: the sweep may wake up exactly then."""
    args = {
        "last_activity_at": None,
        "stage_entered_at": cst(9),
        "next_step_due_at": None,
        "task_due_at": None,
    }
    state = compute_light(CN_RULE, now=cst(9), **args)
    seen = [state.light]
    while state.changes_at is not None:
        assert compute_light(CN_RULE, now=state.changes_at - US, **args).light == seen[-1]
        state = compute_light(CN_RULE, now=state.changes_at, **args)
        seen.append(state.light)
    assert seen == ["green", "yellow", "red"]


def test_counting_working_days() -> None:
    assert add_days(cst(9), 1, CN) == cst(13)  # Friday noon + 1 working day: Tuesday noon (Monday off)
    assert add_days(cst(9), 0.5, CN) == cst(10, 0)  # the rest of Friday
    assert add_days(cst(10), 1, CN) == cst(14, 0)  # from a Saturday: all of Tuesday
    assert add_days(T0, 2) == T0 + 2 * D  # no calendar: plain days
    assert elapsed_days(cst(9), cst(13), CN) == 1.0
    assert elapsed_days(cst(9), cst(20), CN) == 7.0  # Fri ½, Tue-Fri 4, Sat (make-up) 1, Mon 1, Tue ½
    assert elapsed_days(cst(13), cst(9), CN) == -1.0
    assert CN_RULE.days_late(cst(9), cst(15)) == 3.0
    assert CN_RULE.days_late(cst(15), cst(9)) == 0.0
    assert CN_RULE.days_late(None, cst(9)) == 0.0


def test_weekdays_fallback_and_thresholds_of_documents() -> None:
    saturday = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    assert add_days(datetime(2026, 1, 9, 12, 0, tzinfo=UTC), 1, WEEKDAYS_UTC) == datetime(
        2026, 1, 12, 12, 0, tzinfo=UTC
    )
    assert elapsed_days(saturday, saturday + 2 * D, WEEKDAYS_UTC) == 0.0
    assert thresholds_of(None) == (1.0, 3.0, False, None)
    document = {
        "calendar": "md-workweek",
        "lights": {"yellow_after_days": 2, "red_after_days": 5, "working_days": True},
    }
    assert thresholds_of(document) == (2.0, 5.0, True, "md-workweek")
