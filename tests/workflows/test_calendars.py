"""Working calendars at run time: weekly hours, holidays, make-up working days, 24:00 and local days."""

import json
from datetime import UTC, datetime

import pytest

from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from tests.workflows.routing_helpers import MD_PACK

MD = WorkingCalendar.from_document(json.loads((MD_PACK / "definitions" / "calendar.json").read_text()))


@pytest.mark.parametrize(
    ("utc", "working"),
    [
        (datetime(2026, 1, 5, 1, 0), True),  # Monday 09:00 Beijing
        (datetime(2026, 1, 5, 0, 59), False),  # Monday 08:59
        (datetime(2026, 1, 5, 10, 0), False),  # Monday 18:00: the end is exclusive
        (datetime(2026, 1, 10, 3, 0), False),  # Saturday
        (datetime(2026, 1, 4, 3, 0), True),  # Sunday, a make-up working day
        (datetime(2026, 1, 1, 3, 0), False),  # New Year's Day, a Thursday
        (datetime(2026, 2, 20, 3, 0), False),  # inside the Spring Festival range
    ],
)
def test_md_workweek(utc: datetime, working: bool) -> None:
    assert MD.is_working(utc.replace(tzinfo=UTC)) is working


def test_day_start_is_local_midnight_and_24_00_ends_the_day() -> None:
    assert MD.day_start(datetime(2026, 1, 5, 17, 0, tzinfo=UTC)) == datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    late = WorkingCalendar.from_document(
        {"key": "late", "timezone": "UTC", "working_hours": {"mon": [{"start": "18:00", "end": "24:00"}]}}
    )
    assert late.is_working(datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC))
    assert not late.is_working(datetime(2026, 1, 6, 0, 0, tzinfo=UTC))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(CalendarError, match="unknown time zone 'Mars/Olympus'"):
        WorkingCalendar.from_document({"key": "x", "timezone": "Mars/Olympus", "working_hours": {}})
