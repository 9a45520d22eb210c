"""Editing a lead through its form: which form a lead is shown and validated with, and the edit service.

A lead keeps the form version it was written under (`Lead.form_version_id`); a lead without one (an
import, a demo row) is shown with the published lead form and pinned to it on its first edit. The form's
values live in `Lead.data`; the standard lead columns the runtime queries on (institution, grade,
region, phone, e-mail, campaign) are copies of the form fields named in `LEAD_COLUMNS`, kept in step on
every edit, and they fill those fields when `data` lacks them. Keys of `data` the pinned form does not
define (fields removed in a later version) are kept as history. `update_lead_form` follows the service
rules of `salesmesh.workflows.records`: policy, validation, audit, flush, no commit. A reference field
takes only the id of a record the editor may see (users: active ones, of the field's roles), or the value
it already had.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.forms.binding import BoundForm, bind
from salesmesh.forms.compile import FormSpec, compile_form, spec_for_version_id
from salesmesh.forms.fields import FieldSpec, Resolver
from salesmesh.forms.files import FileStore
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.models import Contact, Customer, Deal, Lead
from salesmesh.workflows.record_values import RecordError

# Lead column -> the form field keys that hold it (the first one the form defines wins) and its width.
LEAD_COLUMNS: Mapping[str, tuple[tuple[str, ...], int]] = {
    "institution": (("institution_name", "company_name"), 200),
    "institution_grade": (("institution_grade",), 40),
    "region": (("region",), 80),
    "phone": (("phone",), 32),
    "email": (("email",), 254),
    "campaign": (("campaign",), 120),
}


REFERENCE_MODELS: Mapping[str, Any] = {
    "customer": Customer,
    "contact": Contact,
    "user": User,
    "lead": Lead,
    "deal": Deal,
}


class LeadFormInvalid(RecordError):
    """The submitted lead form has errors; `bound` carries them per field and the values to redisplay."""

    def __init__(self, bound: BoundForm) -> None:
        super().__init__(bound.error_list())
        self.bound = bound


def default_lead_form(session: Session) -> FormSpec | None:
    """Return the compiled published form for leads (the first by key), or None when there is none."""
    versions = session.scalars(
        select(DefinitionVersion)
        .join(Definition, DefinitionVersion.definition_id == Definition.id)
        .where(Definition.kind == "form", DefinitionVersion.status == "published")
        .order_by(Definition.key)
    )
    for version in versions:
        if version.document.get("record_type") == "lead":
            return compile_form(version)
    return None


def lead_form_spec(session: Session, lead: Lead) -> FormSpec | None:
    """Return the form a lead is shown and edited with: its pinned version, else the published one."""
    if lead.form_version_id is not None:
        try:
            return spec_for_version_id(session, lead.form_version_id)
        except LookupError:
            return None
    return default_lead_form(session)


def _field_for(spec: FormSpec, keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if key in spec.by_key), None)


def lead_form_values(lead: Lead, spec: FormSpec) -> dict[str, Any]:
    """Return the lead's form values: its data, with standard columns filling the fields it lacks."""
    values = dict(lead.data or {})
    for column, (keys, _width) in LEAD_COLUMNS.items():
        key = _field_for(spec, keys)
        stored = getattr(lead, column)
        if key is not None and values.get(key) in (None, "") and stored not in (None, ""):
            values[key] = stored
    return values


def _columns(spec: FormSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The standard column copies of the form values (a value that does not fit leaves its column)."""
    out: dict[str, Any] = {}
    for column, (keys, width) in LEAD_COLUMNS.items():
        key = _field_for(spec, keys)
        if key is None:
            continue
        value = values.get(key)
        if value is None or (isinstance(value, str) and len(value) <= width):
            out[column] = value
    return out


def reference_resolver(session: Session, actor: User | None, existing: Mapping[str, Any]) -> Resolver:
    """Return the check of reference ids: a record `actor` may see (any for the system), or the old value."""

    def resolve(spec: FieldSpec, ident: int) -> bool:
        if existing.get(spec.key) == ident:
            return True
        reference = spec.reference or {}
        model = REFERENCE_MODELS.get(reference.get("target", ""))
        if model is None:
            return False
        stmt = select(model.id).where(model.id == ident)
        if model is User:
            stmt = stmt.where(User.active.is_(True))
            if reference.get("roles"):
                stmt = stmt.where(User.role.in_(reference["roles"]))
        if actor is not None:
            stmt = policy.scope(stmt, actor, model)
        return session.scalar(stmt) is not None

    return resolve


def update_lead_form(
    session: Session,
    actor: User | None,
    lead_id: int,
    raw: Mapping[str, Any],
    *,
    clock: Clock,
    source: str = "form",
    tz: tzinfo = UTC,
    files: FileStore | None = None,
) -> Lead:
    """Validate a submission of the lead's form and store it (raises LeadFormInvalid with field errors)."""
    lead: Lead = rv.load(session, actor, Lead, lead_id)
    # Whoever may see a lead may correct its details, as for customers and deals (policy "lead.edit").
    rv.check(actor, "lead.edit", lead)
    spec = lead_form_spec(session, lead)
    if spec is None:
        raise rv.fail("/form", N_("There is no published lead form to edit this lead with."))
    existing = lead_form_values(lead, spec)
    bound = bind(
        spec,
        raw,
        source=source,
        now=clock.now(),
        tz=tz,
        existing=existing,
        files=files,
        resolver=reference_resolver(session, actor, existing),
    )
    if not bound.valid:
        raise LeadFormInvalid(bound)
    old_data = dict(lead.data or {})
    # Keys the form does not define are history (fields removed in a later version): they stay.
    new_data = {k: v for k, v in old_data.items() if k not in spec.by_key}
    new_data.update(bound.values)
    data_changes = {
        key: [old_data.get(key), new_data.get(key)]
        for key in sorted(set(old_data) | set(new_data))
        if old_data.get(key) != new_data.get(key)
    }
    changes = rv.changed(lead, {**_columns(spec, bound.values), "form_version_id": spec.version_id})
    if data_changes:
        lead.data = new_data
        changes["data"] = data_changes  # type: ignore[assignment]
    if changes:
        session.flush()
        rv.audit(session, clock, actor, "lead.update", lead, changes=changes)
    return lead
