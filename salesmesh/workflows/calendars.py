"""Working calendars at run time: is a moment working time, and where does a local day start.

A `calendar` definition (see docs/ops-guide.md) gives a time zone, working hours per weekday, holidays
(single days or ranges) and make-up working days with their own hours. `WorkingCalendar.from_document`
reads one published document once; `is_working(at)` answers for an aware datetime in the calendar's
time zone (a make-up working day wins over a holiday, a holiday over the weekly hours; "24:00" ends a
day), and `day_start(at)` returns the UTC instant of local midnight, which routing uses as the start of
"today" for daily caps. Routing is the first user; SLA and cooldown timers count working time on the
same object: `add_working_time(start, duration)` returns when `duration` of working time has passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# How many days `add_working_time` walks at most (8760 working hours on a sparse calendar fit).
MAX_WALK_DAYS = 5000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Intervals = tuple[tuple[int, int], ...]  # (start minute, end minute) pairs within a day


class CalendarError(ValueError):
    """A calendar document the runtime cannot use (unknown time zone, malformed times)."""


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)


def _intervals(items: Any) -> Intervals:
    return tuple(sorted((_minutes(i["start"]), _minutes(i["end"])) for i in items or ()))


def zone(name: str) -> tzinfo:
    """Return the time zone named `name` (IANA), or raise CalendarError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class WorkingCalendar:
    key: str
    tz: tzinfo
    weekly: tuple[Intervals, ...]  # Monday first
    holidays: frozenset[date]
    workdays: Mapping[date, Intervals]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> WorkingCalendar:
        """Read a calendar definition document; raise CalendarError when it cannot be used."""
        try:
            hours = document.get("working_hours") or {}
            weekly = tuple(_intervals(hours.get(day)) for day in WEEKDAYS)
            holidays: set[date] = set()
            for item in document.get("holidays") or ():
                first = date.fromisoformat(item["date"])
                last = date.fromisoformat(item.get("end_date") or item["date"])
                day = first
                while day <= last and len(holidays) < 20_000:
                    holidays.add(day)
                    day += timedelta(days=1)
            workdays = {
                date.fromisoformat(item["date"]): _intervals(item["hours"])
                for item in document.get("workdays") or ()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise CalendarError(f"calendar {document.get('key')!r}: {exc}") from exc
        return cls(
            key=str(document.get("key", "")),
            tz=zone(str(document.get("timezone", "UTC"))),
            weekly=weekly,
            holidays=frozenset(holidays),
            workdays=workdays,
        )

    def hours_on(self, day: date) -> Intervals:
        """Return the working intervals of a local date (empty on holidays and days off)."""
        if day in self.workdays:
            return self.workdays[day]
        if day in self.holidays:
            return ()
        return self.weekly[day.weekday()]

    def is_working(self, at: datetime) -> bool:
        """Tell whether the aware moment `at` falls in working time."""
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(start <= minute < end for start, end in self.hours_on(local.date()))

    def day_start(self, at: datetime) -> datetime:
        """Return local midnight of the day `at` falls on, as an aware UTC datetime."""
        return day_start(at, self.tz)

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """Return the aware UTC moment `duration` of working time after `start` (off-hours skipped)."""
        at = start.astimezone(UTC)
        left = duration
        if left <= timedelta(0):
            return at
        day = start.astimezone(self.tz).date()
        # Bounded: a calendar without any working time must fail rather than walk forever.
        for _ in range(MAX_WALK_DAYS):
            midnight = datetime.combine(day, time(0), tzinfo=self.tz)
            for first, last in self.hours_on(day):
                # Wall-clock minutes to UTC first, so arithmetic stays right across offset changes.
                begin = max((midnight + timedelta(minutes=first)).astimezone(UTC), at)
                end = (midnight + timedelta(minutes=last)).astimezone(UTC)
                if begin >= end:
                    continue
                if end - begin >= left:
                    return begin + left
                left -= end - begin
            day += timedelta(days=1)
        raise CalendarError(f"calendar {self.key!r} has no working time in the next {MAX_WALK_DAYS} days")


def day_start(at: datetime, tz: tzinfo) -> datetime:
    """Return midnight of `at`'s local date in `tz`, as an aware UTC datetime."""
    local = at.astimezone(tz)
    return datetime.combine(local.date(), time(0), tzinfo=tz).astimezone(UTC)
