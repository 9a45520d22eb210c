"""Lead intake: validate a submission against the lead form, normalise it, de-duplicate it, route it.

`intake_lead(session, channel=..., payload=..., clock=...)` is the one path every intake channel takes
(the signed API, the public form, imports). One query finds the published routing for the channel's lead
form (`IntakeChannel.form_key`, else the only published routing) and that routing's `form`, whose compiled
spec is cached by version id and checksum. The payload is bound to the form (JSON input: unknown fields,
wrong types, missing required fields are errors at `/<field key>` with English and Chinese messages), and
what the runtime matches on is normalised: phone numbers to E.164 (+86 when no country is given), e-mail
trimmed and lower-cased, institution names NFKC-folded with single spaces. Routing decides next, on a
snapshot, without writing (`routing.propose_route`), so the lead is inserted already carrying its owner
and SLA deadline. Then its contact keys (phone, e-mail) are claimed in `lead_dedupe_keys` with one
`INSERT ... ON CONFLICT DO NOTHING`: the UNIQUE (kind, value) index decides between concurrent intakes of
the same person (on PostgreSQL the second waits for the first to commit). A key held by a closed lead
(converted, disqualified) is taken over, since a returning contact is a new enquiry. A key held by an
open lead makes the submission a duplicate: the fresh row is removed again, the submission is kept in
full as a `LeadDuplicate` with `duplicate_of_id`, and a system note on the original lead's timeline tells
its owner; no round-robin turn was taken. Otherwise routing settles (`routing.settle_route`: takes the
turn — deciding again if another intake took it first — and records the decision and the owner's
notification) and writes ONE `lead.intake` audit event carrying channel, campaign, received-at,
idempotency key and the decision. Flushes, never commits. A new lead costs 8 statements on SQLite and 9
on PostgreSQL (gate: 10, `tests/workflows/test_intake_perf.py`): the definitions look-up, the reps
snapshot, lead INSERT, dedupe-key INSERT, round-robin UPDATE, decision INSERT, notification INSERT and
the audit INSERT (after its advisory lock on PostgreSQL); one more while pools install a cooldown source
rather than a clause.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from salesmesh.forms.binding import bind
from salesmesh.forms.compile import FormSpec, compile_form
from salesmesh.forms.phones import PhoneInvalid, normalize_phone
from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.db import UTCDateTime
from salesmesh.platform.rows import Prepared, build_row, insert_row
from salesmesh.workflows.intake_models import IntakeChannel, LeadDedupeKey, LeadDuplicate
from salesmesh.workflows.lead_forms import LEAD_COLUMNS
from salesmesh.workflows.lead_notices import notify_duplicate
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing import (
    RoutingPlan,
    RoutingUnavailable,
    apply_route,
    propose_route,
    settle_route,
)
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_plan import current_plan_and_form

OPEN_STATUSES = ("new", "contacted", "qualified", "pooled")
# Which key wins when a submission matches two open leads; also the order keys are locked in.
KEY_PRIORITY = ("phone", "email")
CONTACT_NAME_FIELDS = ("contact_name", "name")
# A key held by a lead in one of these is taken over by a new enquiry; any other holder makes a duplicate.
CLOSED_STATUSES = ("converted", "disqualified")
_SPACES = re.compile(r"\s+")
# Compiled lead forms by (version id, checksum): published versions never change, so a hit needs no query.
_SPECS: dict[tuple[int, str], FormSpec] = {}
_SPECS_LOCK = threading.Lock()
SPECS_SIZE = 64


class IntakeInvalid(ValueError):
    """The submission does not fit the lead form; `errors` are [{path, message, message_zh}]."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


class IntakeUnavailable(LookupError):
    """Intake is not configured: no published routing for the channel, or its form is not a lead form."""


class IntakeContention(RuntimeError):
    """The open lead a submission duplicates vanished inside our transaction (should not happen)."""


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
    """Return the published routing for a lead form (or the only one) and its compiled lead form.

    One query finds both published versions; the compiled form is cached by version id and checksum.
    """
    try:
        plan, form = current_plan_and_form(session, form_key=form_key)
    except RoutingUnavailable as exc:
        raise IntakeUnavailable(str(exc)) from None
    spec = _spec(session, form.id, form.checksum) if form is not None else None
    if spec is None or spec.record_type != "lead":
        raise IntakeUnavailable(
            f"routing {plan.key!r} reads form {plan.form_key!r}, which is not a published lead form"
        )
    return plan, spec


def _spec(session: Session, version_id: int, checksum: str) -> FormSpec | None:
    key = (version_id, checksum)
    with _SPECS_LOCK:
        spec = _SPECS.get(key)
    if spec is not None:
        return spec
    version = session.get(DefinitionVersion, version_id)
    if version is None:  # deleted since the look-up: cannot happen to a published version
        return None
    spec = compile_form(version)
    with _SPECS_LOCK:
        if len(_SPECS) >= SPECS_SIZE:
            _SPECS.clear()  # a handful of lead forms in practice; a full cache just starts over
        _SPECS[key] = spec
    return spec


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


@functools.cache
def _claim_statement(dialect: str, count: int) -> Prepared:
    """The key-claiming upsert for `count` keys (built once per dialect and count; see `_claim_keys`)."""
    keys_table = LeadDedupeKey.__table__
    leads = Lead.__table__
    rows = [
        {
            "kind": bindparam(f"kind_{i}", type_=String()),
            "value": bindparam(f"value_{i}", type_=String()),
            "lead_id": bindparam("lead_id", type_=Integer()),
            "created_at": bindparam("created_at", type_=UTCDateTime()),
        }
        for i in range(count)
    ]
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(keys_table).values(rows)
    holder_closed = (
        select(leads.c.status)
        # The conflicting row's holder (spelled out: SQLAlchemy does not correlate into ON CONFLICT SET).
        .where(leads.c.id == literal_column(f"{keys_table.name}.lead_id"))
        .scalar_subquery()
        # Inline constants: an expanding IN parameter cannot be sent as one multi-row statement.
        .in_([literal_column(f"'{status}'") for status in CLOSED_STATUSES])
    )
    take_over = case((holder_closed, stmt.excluded.lead_id), else_=keys_table.c.lead_id)
    taken = case((holder_closed, stmt.excluded.created_at), else_=keys_table.c.created_at)
    return Prepared(
        stmt.on_conflict_do_update(
            index_elements=["kind", "value"], set_={"lead_id": take_over, "created_at": taken}
        ).returning(keys_table.c.kind, keys_table.c.lead_id)
    )


def _claim_keys(
    session: Session, lead: Lead, keys: list[tuple[str, str]], now: datetime
) -> tuple[int, str] | None:
    """Give the lead its contact keys; return (open lead id, key kind) when an open lead holds one.

    One statement: an INSERT whose conflict branch takes the key over from a closed holder and leaves it
    with any other holder; RETURNING gives each key's holder after the statement. The holder's status is
    read by the statement itself, so a holder it cannot see (inserted by a concurrent intake that has just
    committed, on PostgreSQL) counts as open: a duplicate, never a takeover.
    """
    pending = sorted(keys, key=lambda k: KEY_PRIORITY.index(k[0]))
    dialect = "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"
    params: dict[str, Any] = {"lead_id": lead.id, "created_at": now}
    for i, (kind, value) in enumerate(pending):
        params[f"kind_{i}"], params[f"value_{i}"] = kind, value
    # ONE multi-row INSERT, from a statement compiled once per number of keys.
    holders = dict(_claim_statement(dialect, len(pending)).execute(session, params).all())
    for kind, _value in pending:
        if holders.get(kind) != lead.id:
            return holders[kind], kind
    return None


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
    lead = build_row(  # written by insert_row below, once routed
        Lead,
        {
            "name": _lead_name(spec, values, columns),
            "status": "new",
            "source_channel": channel_key,
            "form_version_id": spec.version_id,
            "data": values,
            "received_at": received,
            "created_at": now,
            **columns,
        },
    )
    # Decide first, so the lead is inserted with its owner (no UPDATE after); take the turn only after
    # the contact keys are claimed, so a duplicate never consumes one.
    proposal = propose_route(session, lead, plan=plan, now=now)
    apply_route(lead, proposal)
    insert_row(session, lead)  # one prebuilt INSERT: the measured hot path
    keys = [(kind, columns[kind]) for kind in KEY_PRIORITY if columns.get(kind)]
    match = _claim_keys(session, lead, keys, now) if keys else None
    if match is not None:
        session.delete(lead)  # its keys go with it (ON DELETE CASCADE)
        session.flush()
        return _record_duplicate(
            session, match, spec, values, columns, channel_key, received, now, idempotency_key
        )
    decision = settle_route(
        session,
        lead,
        proposal,
        action="lead.intake",
        audit={
            "source_channel": channel_key,
            "campaign": lead.campaign,
            "received_at": received.isoformat(),
            "form_version_id": spec.version_id,
            "idempotency_key": idempotency_key,
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
