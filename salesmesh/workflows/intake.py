"""Lead intake: validate a submission against the lead form, normalise it, de-duplicate it, route it.

`intake_lead(session, channel=..., payload=..., clock=...)` is the one path every intake channel takes
(the signed API now; the public form and imports later). It finds the published routing for the
channel's lead form (`IntakeChannel.form_key`, else the only published routing) and that routing's
`form`, binds the payload to the form (JSON input: unknown fields, wrong types, missing required
fields are errors at `/<field key>` with English and Chinese messages), and normalises what the
runtime matches on: phone numbers to E.164 (+86 when no country is given), e-mail trimmed and
lower-cased, institution names NFKC-folded with single spaces. The lead is inserted, then its contact
keys (phone, e-mail) are claimed in `lead_dedupe_keys` with one `INSERT ... ON CONFLICT DO NOTHING`:
the UNIQUE (kind, value) index decides between concurrent intakes of the same person (on PostgreSQL
the second waits for the first to commit). A key held by a closed lead (converted, disqualified) is
taken over, since a returning contact is a new enquiry. A key held by an open lead makes the submission
a duplicate: the fresh row is removed again, the submission is kept in full as a `LeadDuplicate` with
`duplicate_of_id`, and a system note on the original lead's timeline tells its owner. Otherwise the
lead is routed (`routing.route_lead`) and one `lead.intake` audit event records channel, campaign,
received-at, idempotency key and decision, written after routing as the routing module's lock order
requires. Flushes, never commits. A new lead costs 13 statements on SQLite (15 on PostgreSQL): two
definition look-ups, two inserts, routing (7 / 8) and the audit event (2 / 3).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from salesmesh.forms.binding import bind
from salesmesh.forms.compile import FormSpec, published_form
from salesmesh.forms.phones import PhoneInvalid, normalize_phone
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.workflows.intake_models import IntakeChannel, LeadDedupeKey, LeadDuplicate
from salesmesh.workflows.lead_forms import LEAD_COLUMNS
from salesmesh.workflows.lead_notices import notify_duplicate
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing import RoutingPlan, RoutingUnavailable, current_plan, route_lead
from salesmesh.workflows.routing_models import RoutingDecision

OPEN_STATUSES = ("new", "contacted", "qualified", "pooled")
# Which key wins when a submission matches two open leads; also the order keys are locked in.
KEY_PRIORITY = ("phone", "email")
CONTACT_NAME_FIELDS = ("contact_name", "name")
MAX_CLAIM_ROUNDS = 5
_SPACES = re.compile(r"\s+")


class IntakeInvalid(ValueError):
    """The submission does not fit the lead form; `errors` are [{path, message, message_zh}]."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


class IntakeUnavailable(LookupError):
    """Intake is not configured: no published routing for the channel, or its form is not a lead form."""


class IntakeContention(RuntimeError):
    """The lead's contact keys kept changing hands while we tried to claim them (should not happen)."""


@dataclass
class IntakeResult:
    """What an intake did: the new lead and its routing decision, or the open lead it duplicated."""

    lead: Lead
    decision: RoutingDecision | None
    duplicate: LeadDuplicate | None = None

    @property
    def created(self) -> bool:
        return self.duplicate is None


def normalize_email(value: str | None) -> str | None:
    """Return an e-mail address trimmed and lower-cased (None when empty)."""
    text = (value or "").strip().lower()
    return text or None


def normalize_institution(value: str | None) -> str | None:
    """Return an institution name NFKC-folded (full-width letters, brackets) with single spaces."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", value or "")).strip()
    return text or None


def _field(spec: FormSpec, keys: Sequence[str]) -> str | None:
    return next((key for key in keys if key in spec.by_key), None)


def _channel(channel: IntakeChannel | str) -> tuple[str, str | None, Mapping[str, Any]]:
    if isinstance(channel, IntakeChannel):
        return channel.key, channel.form_key, channel.defaults or {}
    return channel, None, {}


def lead_form_for(session: Session, form_key: str | None = None) -> tuple[RoutingPlan, FormSpec]:
    """Return the published routing for a lead form (or the only one) and its compiled lead form."""
    try:
        plan = current_plan(session, form_key=form_key)
    except RoutingUnavailable as exc:
        raise IntakeUnavailable(str(exc)) from None
    spec = published_form(session, plan.form_key) if plan.form_key else None
    if spec is None or spec.record_type != "lead":
        raise IntakeUnavailable(
            f"routing {plan.key!r} reads form {plan.form_key!r}, which is not a published lead form"
        )
    return plan, spec


def _normalise(spec: FormSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Normalise the matched-on values in place; return the lead's standard column values."""
    columns: dict[str, Any] = {}
    for column, (keys, width) in LEAD_COLUMNS.items():
        key = _field(spec, keys)
        value = values.get(key) if key is not None else None
        if isinstance(value, str):
            if column == "phone":
                try:
                    value = normalize_phone(value)
                except PhoneInvalid:
                    value = None  # a free-text phone field the form accepted: keep it in data only
                else:
                    values[key] = value  # type: ignore[index]
            elif column == "email":
                value = values[key] = normalize_email(value)  # type: ignore[index]
            elif column == "institution":
                value = values[key] = normalize_institution(value)  # type: ignore[index]
        if value is None or (isinstance(value, str) and len(value) <= width):
            columns[column] = value
    return columns


def _lead_name(spec: FormSpec, values: Mapping[str, Any], columns: Mapping[str, Any]) -> str:
    person_key = _field(spec, CONTACT_NAME_FIELDS)
    person = values.get(person_key) if person_key else None
    parts = [p for p in (person, columns.get("institution")) if isinstance(p, str) and p.strip()]
    if not parts:
        parts = [p for p in (columns.get("email"), columns.get("phone")) if p] or ["Lead"]
    return " · ".join(parts)[:200]


def _insert_keys(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert dedupe keys, skipping any already held; return the kinds that were inserted."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(LeadDedupeKey)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["kind", "value"])
        .returning(LeadDedupeKey.kind)
    )
    return set(session.scalars(stmt))


def _claim_keys(
    session: Session, lead: Lead, keys: list[tuple[str, str]], now: datetime
) -> tuple[int, str] | None:
    """Give the lead its contact keys; return (open lead id, key kind) when an open lead holds one."""
    pending = sorted(keys, key=lambda k: KEY_PRIORITY.index(k[0]))
    for _round in range(MAX_CLAIM_ROUNDS):
        rows = [{"kind": k, "value": v, "lead_id": lead.id, "created_at": now} for k, v in pending]
        inserted = _insert_keys(session, rows)
        pending = [k for k in pending if k[0] not in inserted]
        if not pending:
            return None
        holders = session.execute(
            select(LeadDedupeKey.kind, LeadDedupeKey.lead_id, Lead.status)
            .join(Lead, Lead.id == LeadDedupeKey.lead_id)
            .where(or_(*(and_(LeadDedupeKey.kind == k, LeadDedupeKey.value == v) for k, v in pending)))
        ).all()
        open_holders = sorted(
            ((kind, lead_id) for kind, lead_id, status in holders if status in OPEN_STATUSES),
            key=lambda h: KEY_PRIORITY.index(h[0]),
        )
        if open_holders:
            kind, lead_id = open_holders[0]
            return lead_id, kind
        # Held by closed leads only: take each over, unless another intake took it first (then look again).
        by_kind = {kind: lead_id for kind, lead_id, _status in holders}
        taken = set()
        for kind, value in pending:
            if kind not in by_kind:
                continue  # its holder vanished in between: insert it again next round
            result = session.execute(
                update(LeadDedupeKey)
                .where(
                    LeadDedupeKey.kind == kind,
                    LeadDedupeKey.value == value,
                    LeadDedupeKey.lead_id == by_kind[kind],
                )
                .values(lead_id=lead.id, created_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                taken.add(kind)
        pending = [k for k in pending if k[0] not in taken]
        if not pending:
            return None
    raise IntakeContention(f"could not claim the contact keys of lead {lead.id}")


def intake_lead(
    session: Session,
    *,
    channel: IntakeChannel | str,
    payload: Mapping[str, Any],
    clock: Clock,
    idempotency_key: str | None = None,
    received_at: datetime | None = None,
    campaign: str | None = None,
) -> IntakeResult:
    """Validate, normalise, de-duplicate and route one submitted lead; see the module docstring."""
    now = clock.now()
    channel_key, form_key, defaults = _channel(channel)
    plan, spec = lead_form_for(session, form_key)
    raw = {**defaults, **payload} if isinstance(payload, Mapping) else payload
    bound = bind(spec, raw, source="json", now=now)
    if not bound.valid:
        raise IntakeInvalid(bound.error_list())
    values = dict(bound.values)
    columns = _normalise(spec, values)
    if campaign is not None:
        columns["campaign"] = campaign
    received = received_at or now
    lead = Lead(
        name=_lead_name(spec, values, columns),
        status="new",
        source_channel=channel_key,
        form_version_id=spec.version_id,
        data=values,
        received_at=received,
        created_at=now,
        **columns,
    )
    session.add(lead)
    session.flush()
    keys = [(kind, columns[kind]) for kind in KEY_PRIORITY if columns.get(kind)]
    match = _claim_keys(session, lead, keys, now) if keys else None
    if match is not None:
        session.delete(lead)  # its keys go with it (ON DELETE CASCADE)
        session.flush()
        return _record_duplicate(
            session, match, spec, values, columns, channel_key, received, now, idempotency_key
        )
    decision = route_lead(session, lead, clock=clock, plan=plan)
    record_event(
        session,
        at=now,
        actor_id=None,
        action="lead.intake",
        object_type="leads",
        object_id=lead.id,
        payload={
            "channel": channel_key,
            "campaign": lead.campaign,
            "received_at": received.isoformat(),
            "form_version_id": spec.version_id,
            "idempotency_key": idempotency_key,
            "decision_id": decision.id,
            "outcome": decision.outcome,
            "owner_id": decision.owner_id,
        },
    )
    return IntakeResult(lead=lead, decision=decision)


def _record_duplicate(
    session: Session,
    match: tuple[int, str],
    spec: FormSpec,
    values: dict[str, Any],
    columns: Mapping[str, Any],
    channel_key: str,
    received: datetime,
    now: datetime,
    idempotency_key: str | None,
) -> IntakeResult:
    original_id, matched_on = match
    original = session.get(Lead, original_id)
    if original is None:  # deleted since the key was read: cannot happen inside our transaction
        raise IntakeContention(f"lead {original_id} vanished while recording a duplicate of it")
    duplicate = LeadDuplicate(
        duplicate_of_id=original.id,
        matched_on=matched_on,
        source_channel=channel_key,
        campaign=columns.get("campaign"),
        form_version_id=spec.version_id,
        data=values,
        received_at=received,
        created_at=now,
    )
    session.add(duplicate)
    session.flush()
    where = channel_key + (f" / {columns['campaign']}" if columns.get("campaign") else "")
    session.add(
        Activity(
            kind="note",
            subject_type="lead",
            lead_id=original.id,
            customer_id=original.converted_customer_id,
            deal_id=original.converted_deal_id,
            occurred_at=now,
            actor_id=None,
            owner_id=original.owner_id,
            team_id=original.team_id,
            outcome="duplicate_intake",
            summary=f"The same contact enquired again via {where} (same {matched_on}).",
            data={
                "duplicate_id": duplicate.id,
                "channel": channel_key,
                "campaign": columns.get("campaign"),
                "matched_on": matched_on,
                "received_at": received.isoformat(),
            },
            created_at=now,
        )
    )
    notify_duplicate(session, original, channel=channel_key, matched_on=matched_on, now=now)  # in-app too
    record_event(
        session,
        at=now,
        actor_id=None,
        action="lead.intake_duplicate",
        object_type="leads",
        object_id=original.id,
        payload={
            "duplicate_id": duplicate.id,
            "channel": channel_key,
            "campaign": columns.get("campaign"),
            "matched_on": matched_on,
            "received_at": received.isoformat(),
            "idempotency_key": idempotency_key,
        },
    )
    return IntakeResult(lead=original, decision=None, duplicate=duplicate)
