"""The first-response SLA of a lead: the policy a routing defines, its deadline, and its state changes.

A routing's `first_response_sla` (`minutes`, optional working `calendar`, `on_breach` escalate|reassign,
`escalate_to` team_lead|ops, `max_reassignments`) is compiled once per routing version into an `SlaPolicy`
held by the `RoutingPlan`, calendar included, so nothing is read per intake. When routing gives a lead an
owner, `start_clock` (called by `routing.apply_route`) sets `sla_due_at` — `minutes` of working time on
the calendar, skipping nights, weekends and holidays; wall-clock minutes without one — and
`sla_state = "pending"` on the lead object, and `on_lead_assigned` (called by `routing._record`) adds the
owner's in-app notification: the deadline is written by the lead's own INSERT/UPDATE and the
notification is one INSERT at routing's flush, so an intake pays one statement for both and reads
nothing. The deadline lives on the lead row rather than in a
`timers` row for that reason, and because the leads list filters and sorts on it ("SLA state") without a
join; it is still swept like the timers (`salesmesh.workflows.sla_sweep`: pending rows whose deadline
passed, by the index `ix_leads_sla_state_due`, each handled once by a conditional UPDATE). The first
contact logged on the lead ends the clock (`state_on_contact`): met when in time, breached when late.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from salesmesh.platform.i18n import N_
from salesmesh.workflows.calendars import CalendarError, WorkingCalendar
from salesmesh.workflows.lead_notices import notify_assigned
from salesmesh.workflows.models import SLA_STATES, Lead

if TYPE_CHECKING:
    from salesmesh.workflows.routing_models import RoutingDecision
    from salesmesh.workflows.routing_plan import RoutingPlan

log = logging.getLogger("salesmesh.sla")

PENDING, MET, BREACHED = SLA_STATES
DEFAULT_MAX_REASSIGNMENTS = 1
# Outcomes of the `reminder` activity the breach sweep writes on a lead's timeline.
SLA_OUTCOME_NAMES = {
    "sla_escalated": N_("First-response deadline missed: escalated"),
    "sla_reassigned": N_("First-response deadline missed: reassigned"),
    "sla_pooled": N_("First-response deadline missed: back to the pool"),
}


@dataclass(frozen=True)
class SlaPolicy:
    """A routing's first-response SLA, compiled: how long, on which calendar, and what a breach does."""

    minutes: int
    on_breach: str  # escalate | reassign
    escalate_to: str  # team_lead | ops
    max_reassignments: int
    calendar: WorkingCalendar | None
    calendar_key: str | None  # as named by the routing (None: wall-clock minutes)

    @property
    def zone(self) -> str | None:
        """Return the calendar's time-zone name (how the deadline is shown), or None."""
        return str(self.calendar.tz) if self.calendar is not None else None

    def deadline(self, start: datetime) -> datetime:
        """Return when the first contact is due for a lead assigned at `start`."""
        budget = timedelta(minutes=self.minutes)
        if self.calendar is None:
            return start + budget
        try:
            return self.calendar.add_working_time(start, budget)
        except CalendarError:
            # A calendar without working time must not stop intake: fall back to wall-clock minutes.
            log.exception("SLA calendar %r has no working time; using wall-clock minutes", self.calendar_key)
            return start + budget


def compile_sla(section: Mapping[str, Any] | None, calendar: WorkingCalendar | None) -> SlaPolicy | None:
    """Compile a routing's `first_response_sla` section (None: no SLA) with its resolved calendar."""
    if not section:
        return None
    named = section.get("calendar")
    if named and calendar is None:
        log.warning("SLA calendar %r is not published; the deadline counts wall-clock minutes", named)
    return SlaPolicy(
        minutes=int(section["minutes"]),
        on_breach=str(section.get("on_breach", "escalate")),
        escalate_to=str(section.get("escalate_to", "team_lead")),
        max_reassignments=int(section.get("max_reassignments", DEFAULT_MAX_REASSIGNMENTS)),
        calendar=calendar,
        calendar_key=named,
    )


def start_clock(lead: Lead, plan: RoutingPlan, now: datetime, outcome: str = "assigned") -> None:
    """Set the first-response deadline for the owner routing just gave the lead, in memory (no statement).

    Called where routing sets the lead's owner (`routing.apply_route`), so the deadline is written by the
    same INSERT or UPDATE. A pooled lead has no clock; a lead already contacted keeps its state; an
    "unassigned" outcome (nobody could take it) changes nothing.
    """
    if outcome == "unassigned":
        return
    if lead.owner_id is None:
        lead.sla_due_at = lead.sla_state = None
        return
    if lead.first_contact_at is not None:
        return
    policy: SlaPolicy | None = getattr(plan, "sla", None)
    if policy is None:
        lead.sla_due_at = lead.sla_state = None
    else:
        lead.sla_due_at, lead.sla_state = policy.deadline(now), PENDING


def on_lead_assigned(
    session: Session,
    lead: Lead,
    plan: RoutingPlan,
    now: datetime,
    decision: RoutingDecision | None = None,
) -> None:
    """Tell a lead's new owner about it, with the deadline `start_clock` set: one INSERT, no query.

    Called when routing records its decision (`routing._record`); pooled and unassigned decisions tell
    nobody.
    """
    if decision is not None and decision.outcome != "assigned":
        return
    if lead.owner_id is None:
        return
    policy: SlaPolicy | None = getattr(plan, "sla", None)
    due = lead.sla_due_at if lead.sla_state == PENDING else None
    notify_assigned(session, lead, now=now, due=due, zone=policy.zone if policy else None)


def state_on_contact(lead: Lead, at: datetime) -> str:
    """Return the SLA state of a pending lead first contacted at `at`: met in time, else breached."""
    return MET if lead.sla_due_at is None or at <= lead.sla_due_at else BREACHED
