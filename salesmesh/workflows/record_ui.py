"""Web helpers shared by the record pages and "My day": the work time zone, times for reading, the quick
activity form (its choices and how its input is read) and field errors in the request's language.

Times are stored in UTC and shown in the time zone of the published working calendar (Beijing time for
the shipped packs; UTC when no calendar is published). A next-step or task date picked in a form means
"by the end of that day" in that zone, so something due today is not overdue until the day is over.
Activity outcomes are short stored codes with display names here; the runtime stores whatever code the
form sent after checking it against `OUTCOMES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.i18n import N_, gettext
from salesmesh.platform.rep_attributes import field_error

# Outcomes a person picks when logging an interaction (stored codes -> English display names).
OUTCOME_NAMES: Mapping[str, str] = {
    "reached": N_("Reached"),
    "interested": N_("Interested"),
    "call_back": N_("Call back later"),
    "no_answer": N_("No answer"),
    "not_interested": N_("Not interested"),
}
OUTCOMES = tuple(OUTCOME_NAMES)
# The kinds offered by the quick log form, call first (document opens are recorded by tracking).
QUICK_KINDS = ("call", "visit", "message", "email", "meeting", "material_sent", "objection", "note")
END_OF_DAY = time(23, 59, 59)


def work_timezone(session: Session) -> tzinfo:
    """Return the zone of the published working calendar (the first by key), else UTC."""
    document = session.scalar(
        select(DefinitionVersion.document)
        .join(Definition, DefinitionVersion.definition_id == Definition.id)
        .where(Definition.kind == "calendar", DefinitionVersion.status == "published")
        .order_by(Definition.key)
        .limit(1)
    )
    name = document.get("timezone") if isinstance(document, Mapping) else None
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """Return the last second of `day` in `tz`, as UTC."""
    return datetime.combine(day, END_OF_DAY, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class Times:
    """Shows stored UTC times in the work zone and the request's language; `now` is the runtime clock."""

    tz: tzinfo
    now: datetime
    locale: str

    @property
    def today(self) -> date:
        """Return today's date in the work zone."""
        return self.now.astimezone(self.tz).date()

    @property
    def zone(self) -> str:
        """Return the name of the work zone, for labels."""
        return getattr(self.tz, "key", None) or str(self.tz)

    def at(self, value: datetime | None) -> str:
        """Return a moment as `YYYY-MM-DD HH:MM` in the work zone ('' for None)."""
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if value is not None else ""

    def day(self, value: datetime | date | None) -> str:
        """Return the day of a moment (or a date) as `YYYY-MM-DD` ('' for None)."""
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return value.isoformat()

    def age(self, value: datetime | None) -> str:
        """Return how long ago `value` was, coarsely ("5 min", "3 h", "2 d")."""
        if value is None:
            return ""
        seconds = max(0, int((self.now - value).total_seconds()))
        return self.span(seconds)

    def span(self, seconds: int) -> str:
        """Return a duration coarsely ("5 min", "3 h", "2 d")."""
        if seconds < 3600:
            return gettext("%(n)s min", self.locale, n=max(1, seconds // 60))
        if seconds < 2 * 86400:
            return gettext("%(n)s h", self.locale, n=seconds // 3600)
        return gettext("%(n)s d", self.locale, n=seconds // 86400)

    def due_state(self, value: datetime | None) -> str:
        """Return "overdue", "today" or "later" for a due moment ("" when there is none)."""
        if value is None:
            return ""
        if value < self.now:
            return "overdue"
        return "today" if value.astimezone(self.tz).date() <= self.today else "later"

    def quick_dates(self) -> list[tuple[str, str]]:
        """Return the one-tap next-step dates: (English label, ISO date)."""
        today = self.today
        return [
            (N_("Tomorrow"), (today + timedelta(days=1)).isoformat()),
            (N_("In 3 days"), (today + timedelta(days=3)).isoformat()),
            (N_("In a week"), (today + timedelta(days=7)).isoformat()),
        ]


# --- reading the quick forms -------------------------------------------------------------------------

Errors = dict[str, list[dict[str, str]]]


def _add(errors: Errors, field: str, message: str, **params: Any) -> None:
    errors.setdefault(field, []).append(field_error("/" + field, message, **params))


def _text(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def read_day(form: Mapping[str, Any], name: str, times: Times, errors: Errors) -> datetime | None:
    """Read a `YYYY-MM-DD` input as the end of that day (not before today); None when empty."""
    text = _text(form, name)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        _add(errors, name, N_("Enter a date (YYYY-MM-DD)."))
        return None
    if day < times.today:
        _add(errors, name, N_("Pick today or a later day."))
        return None
    return end_of_day(day, times.tz)


def read_activity(form: Mapping[str, Any], times: Times) -> tuple[dict[str, Any], Errors]:
    """Read the quick log form into `log_activity` arguments; return them and the field errors."""
    errors: Errors = {}
    kind = _text(form, "kind") or "call"
    outcome = _text(form, "outcome")
    if outcome is not None and outcome not in OUTCOME_NAMES:
        _add(errors, "outcome", N_("Choose an outcome from the list."))
    values = {
        "kind": kind,
        "outcome": outcome,
        "summary": _text(form, "summary"),
        "next_step": _text(form, "next_step"),
        "next_step_due_at": read_day(form, "next_step_due", times, errors),
    }
    return values, errors


def read_task(form: Mapping[str, Any], times: Times) -> tuple[dict[str, Any], Errors]:
    """Read the new-task form into `create_task` arguments; return them and the field errors."""
    errors: Errors = {}
    values = {"title": _text(form, "title") or "", "due_at": read_day(form, "due", times, errors)}
    return values, errors


# Service error paths -> the form inputs they belong to.
SERVICE_FIELDS: Mapping[str, str] = {
    "/next_step_due_at": "next_step_due",
    "/due_at": "due",
}


def service_errors(items: Iterable[Mapping[str, str]], fields: Mapping[str, str] | None = None) -> Errors:
    """Group a service's `RecordError.errors` by form input (`/deal/amount` -> `deal_amount`)."""
    table = {**SERVICE_FIELDS, **(fields or {})}
    grouped: Errors = {}
    for item in items:
        path = item.get("path", "")
        name = table.get(path) or path.lstrip("/").replace("/", "_")
        grouped.setdefault(name, []).append(dict(item))
    return grouped


def error_text(item: Mapping[str, str], locale: str) -> str:
    """Return one error item's message in `locale`."""
    if locale == "zh":
        return item.get("message_zh") or item["message"]
    return item["message"]
