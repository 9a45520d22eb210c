"""Adding working time on a calendar (cooldown deadlines): nights, weekends, holidays and lunch skipped."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from tests.workflows.routing_helpers import SAAS_PACK

OFFICE = WorkingCalendar.from_document(
    {
        "key": "office",
        "timezone": "UTC",
        "working_hours": {
            day: [{"start": "09:00", "end": "17:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
        },
        "holidays": [{"date": "2026-01-07"}],  # a Wednesday
        "workdays": [
            {"date": "2026-01-11", "hours": [{"start": "10:00", "end": "12:00"}]}
        ],  # a make-up Sunday
    }
)
SAAS = WorkingCalendar.from_document(json.loads((SAAS_PACK / "definitions" / "calendar.json").read_text()))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (utc(2026, 1, 5, 16), 2, utc(2026, 1, 6, 10)),  # Monday evening runs into Tuesday morning
        (utc(2026, 1, 5, 9), 8, utc(2026, 1, 5, 17)),  # a whole day ends at the day's end, not the next start
        (utc(2026, 1, 6, 16), 2, utc(2026, 1, 8, 10)),  # Wednesday is a holiday
        (utc(2026, 1, 9, 16), 2, utc(2026, 1, 11, 11)),  # Friday, then the make-up Sunday 10:00-12:00
        (utc(2026, 1, 10, 12), 3, utc(2026, 1, 12, 10)),  # from Saturday: Sunday's 2 h, then Monday
        (utc(2026, 1, 5, 3), 1, utc(2026, 1, 5, 10)),  # before hours: counting starts at 09:00
        (utc(2026, 1, 5, 12), 0, utc(2026, 1, 5, 12)),  # nothing to add
        # 72 h: 4 weekdays (the holiday skipped), the 2 h make-up Sunday, 4 more days and 6 h on Friday 16th
        (utc(2026, 1, 5, 9), 72, utc(2026, 1, 16, 15)),
    ],
)
def test_add_working_time(start: datetime, hours: float, expected: datetime) -> None:
    assert OFFICE.add_working_time(start, timedelta(hours=hours)) == expected


def test_lunch_break_and_local_zone_on_the_shipped_calendar() -> None:
    # Monday 2026-01-05 11:00 Beijing (03:00 UTC): one hour before lunch, then 13:30-14:30 after it.
    assert SAAS.add_working_time(utc(2026, 1, 5, 3), timedelta(hours=2)) == utc(2026, 1, 5, 6, 30)
    # Friday 18:00 Beijing: half an hour on Friday, then Monday 09:30 + 1.5 h = 11:00 Beijing.
    assert SAAS.add_working_time(utc(2026, 1, 9, 10), timedelta(hours=2)) == utc(2026, 1, 12, 3)


def test_a_calendar_without_working_time_fails_instead_of_looping() -> None:
    never = WorkingCalendar.from_document({"key": "never", "timezone": "UTC", "working_hours": {}})
    with pytest.raises(CalendarError, match="no working time"):
        never.add_working_time(utc(2026, 1, 5), timedelta(hours=1))
