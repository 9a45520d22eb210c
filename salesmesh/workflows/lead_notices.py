"""What people are told about leads: the notification kinds of lead work and the helpers that raise them.

A new owner hears of a lead as soon as it is assigned (`notify_assigned`, with the first-response deadline
when the routing sets one); the owner of an open lead hears when the same contact enquires again
(`notify_duplicate`); the first-response sweep (`salesmesh.workflows.sla_sweep`) tells team leads or ops
of a missed deadline, and the owner who missed it or lost the lead. Titles and bodies are catalogue
messages rendered in the reader's language when shown (`salesmesh.platform.notifications`). Every helper
only adds rows, written with the caller's next flush.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.i18n import N_
from salesmesh.platform.notifications import Notification, notification_kind, notify
from salesmesh.workflows.models import Lead

LEAD_PATH = "/leads/{subject_id}"

ASSIGNED = notification_kind(
    "lead.assigned",
    title=N_("New lead for you: %(lead)s"),
    body=N_("Please make the first contact by %(due)s."),
    path=LEAD_PATH,
)
DUPLICATE = notification_kind(
    "lead.duplicate",
    title=N_("%(lead)s enquired again"),
    body=N_("The same contact came in again via %(channel)s (same %(matched_on)s)."),
    path=LEAD_PATH,
)
SLA_BREACHED = notification_kind(
    "lead.sla_breached",
    title=N_("First-response deadline missed: %(lead)s"),
    body=N_("Nobody contacted this lead by %(due)s. Owner: %(owner)s."),
    path=LEAD_PATH,
)
SLA_MISSED = notification_kind(
    "lead.sla_missed",
    title=N_("You missed the first-response deadline for %(lead)s"),
    body=N_("It was due by %(due)s and has been escalated. Please contact the lead now."),
    path=LEAD_PATH,
)
REASSIGNED_AWAY = notification_kind(
    "lead.reassigned_away",
    title=N_("%(lead)s was given to someone else"),
    body=N_("Nobody contacted it by %(due)s, so it was reassigned."),
    path=LEAD_PATH,
)
RETURNED_TO_POOL = notification_kind(
    "lead.returned_to_pool",
    title=N_("%(lead)s went back to the pool"),
    body=N_("Nobody contacted it by %(due)s, so it was returned to the pool."),
    path=LEAD_PATH,
)
MATCH_NAMES = {"phone": N_("phone number"), "email": N_("e-mail address")}


def moment(at: datetime | None, zone: str | None) -> dict[str, Any] | None:
    """Return a notification parameter showing `at` in the named time zone (UTC when None)."""
    if at is None:
        return None
    return {"at": at.isoformat(), "tz": zone} if zone else {"at": at.isoformat()}


def _params(lead: Lead, **extra: Any) -> dict[str, Any]:
    return {"lead": lead.name, **{k: v for k, v in extra.items() if v is not None}}


def notify_assigned(
    session: Session, lead: Lead, *, now: datetime, due: datetime | None, zone: str | None
) -> list[Notification]:
    """Tell a lead's new owner about it (one INSERT at once, no query: routing's hot path)."""
    return notify(
        session,
        user_ids=[lead.owner_id],
        kind=ASSIGNED.name,
        now=now,
        subject=("lead", lead.id),
        params=_params(lead, due=moment(due, zone)),
        write=True,
    )


def notify_duplicate(
    session: Session, original: Lead, *, channel: str, matched_on: str, now: datetime
) -> list[Notification]:
    """Tell the owner of an open lead that its contact enquired again (nobody when it has no owner)."""
    return notify(
        session,
        user_ids=[original.owner_id],
        kind=DUPLICATE.name,
        now=now,
        subject=("lead", original.id),
        params=_params(
            original, channel=channel, matched_on={"msg": MATCH_NAMES.get(matched_on, matched_on)}
        ),
    )


def notify_lead(
    session: Session,
    user_ids: list[int | None],
    kind: str,
    lead: Lead,
    *,
    now: datetime,
    **params: Any,
) -> list[Notification]:
    """Tell people something of `kind` about a lead, with extra parameters for its message."""
    return notify(
        session,
        user_ids=user_ids,
        kind=kind,
        now=now,
        subject=("lead", lead.id),
        params=_params(lead, **params),
    )
