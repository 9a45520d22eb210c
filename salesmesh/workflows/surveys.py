"""Survey links: the invitations `survey_link` steps send and what respondents do with them.

`create_invitation` (called by the action, inside the step's transaction) stores an unguessable token
for one deal's contact; `survey_url` is the public link built from `settings.base_url`. The public page
(`/s/<token>`, no sign-in: the token is the credential) calls `open_invitation`, which counts the open
with one UPDATE (first and latest open), and `answer_invitation`, which validates and stores the answers
once — a second submission changes nothing — writes an audit event and tells the deal's owner in the app.
Every survey asks the same two questions today: a 1–5 rating (required) and a comment.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_event
from salesmesh.platform.i18n import N_
from salesmesh.platform.notifications import notification_kind, notify
from salesmesh.platform.settings import Settings
from salesmesh.workflows.action_models import SurveyInvitation
from salesmesh.workflows.models import Contact, Deal

RATINGS = (1, 2, 3, 4, 5)
MAX_COMMENT = 2000
ANSWERED = notification_kind(
    "actions.survey_answered",
    title=N_("%(contact)s answered the survey for %(deal)s"),
    body=N_("Rating: %(rating)s of 5"),
    path="/deals/{subject_id}",
)


class SurveyNotFound(LookupError):
    """No invitation has this token."""


class SurveyExpired(Exception):
    """The invitation's link has expired."""


class SurveyAnswerInvalid(ValueError):
    """The answers do not validate; `errors` are [{path, message}] with English message ids."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


def survey_url(settings: Settings, token: str) -> str | None:
    """Return the public link of an invitation (None when the app's base URL is not configured)."""
    if not settings.base_url:
        return None
    return f"{settings.base_url.rstrip('/')}/s/{token}"


def create_invitation(
    session: Session,
    *,
    deal: Deal,
    contact: Contact | None,
    email: str,
    survey: str,
    pack_key: str,
    step_key: str,
    timer_id: int,
    now: datetime,
    expires_after: timedelta | None,
) -> SurveyInvitation:
    """Store a new invitation with a fresh token (one per step timer) in the caller's transaction."""
    invitation = SurveyInvitation(
        token=secrets.token_urlsafe(24),
        survey=survey,
        deal_id=deal.id,
        contact_id=contact.id if contact is not None else None,
        email=email,
        pack_key=pack_key,
        step_key=step_key,
        timer_id=timer_id,
        created_at=now,
        expires_at=now + expires_after if expires_after is not None else None,
        open_count=0,
    )
    session.add(invitation)
    session.flush()
    return invitation


def _usable(session: Session, token: str, now: datetime) -> SurveyInvitation:
    invitation = session.scalar(select(SurveyInvitation).where(SurveyInvitation.token == token))
    if invitation is None:
        raise SurveyNotFound(token)
    if invitation.expires_at is not None and invitation.expires_at <= now and invitation.answered_at is None:
        raise SurveyExpired(token)
    return invitation


def open_invitation(session: Session, token: str, *, now: datetime) -> SurveyInvitation:
    """Count one open of the link (first and latest time) and return the invitation."""
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        raise SurveyNotFound(token)
    # Write first, in one statement: concurrent opens never lose a count, and on SQLite the request
    # takes the write lock at once instead of failing to upgrade a read.
    session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.token == token)
        .values(
            open_count=SurveyInvitation.open_count + 1,
            last_opened_at=now,
            first_opened_at=case(
                (SurveyInvitation.first_opened_at.is_(None), now), else_=SurveyInvitation.first_opened_at
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return _usable(session, token, now)


def _clean_answers(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors: list[dict[str, str]] = []
    rating_text = str(raw.get("rating") or "").strip()
    rating = int(rating_text) if rating_text.isascii() and rating_text.isdigit() else None
    if rating not in RATINGS:
        errors.append({"path": "/rating", "message": N_("Choose a rating from 1 to 5.")})
    comment = str(raw.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        errors.append({"path": "/comment", "message": N_("At most 2000 characters.")})
    if errors:
        raise SurveyAnswerInvalid(errors)
    return {"rating": rating, "comment": comment or None}


def answer_invitation(
    session: Session, token: str, raw: Mapping[str, Any], *, now: datetime
) -> tuple[SurveyInvitation, bool]:
    """Store the answers once; return (invitation, True) when they were stored now."""
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        raise SurveyNotFound(token)
    invitation = _usable(session, token, now)
    if invitation.answered_at is not None:
        return invitation, False
    answers = _clean_answers(raw)
    # Conditional UPDATE: of two simultaneous submissions exactly one stores its answers.
    stored = session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.id == invitation.id, SurveyInvitation.answered_at.is_(None))
        .values(answered_at=now, answers=answers)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(invitation)
    if not stored:
        return invitation, False
    deal = invitation.deal
    record_event(
        session,
        at=now,
        actor_id=None,
        action="survey.answer",
        object_type="deals",
        object_id=deal.id,
        payload={"survey": invitation.survey, "invitation_id": invitation.id, "rating": answers["rating"]},
    )
    notify(
        session,
        user_ids=[deal.owner_id],
        kind=ANSWERED.name,
        now=now,
        subject=("deal", deal.id),
        params={
            "contact": invitation.contact.name if invitation.contact is not None else invitation.email,
            "deal": deal.name,
            "rating": answers["rating"],
        },
    )
    session.flush()
    return invitation, True
