"""Editing a customer or a deal from its record page: the standard fields plus the record's form.

A deal is edited with its pinned form version (`Deal.form_version_id`, the pipeline's deal form when it
was opened; v1 stays v1 after v2 is published), or with its standard fields only when it has none. A
customer is edited with its pinned form version, else the published form whose `record_type` is
"customer" (pinned on the first edit), else with its standard fields only. The standard fields are a
customer's name, grade, region and institution type, and a deal's amount, expected close and primary
contact; they are written through `records.update_customer` / `records.update_deal`, so the policy
("customer.edit" / "deal.edit"), duplicate check and audit event are theirs. Owner, team, stage and
status are never read from a submission. Every problem — standard fields and form fields — comes back
together in `RecordFormInvalid` before anything is written. Keys of `data` the form does not define
(fields removed in a later version) are kept as history. Services follow the house rules: flush, no
commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.forms.binding import BoundForm, bind
from salesmesh.forms.compile import FormSpec, compile_form, spec_for_version_id
from salesmesh.forms.files import FileStore
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.lead_forms import reference_resolver
from salesmesh.workflows.models import Customer, Deal
from salesmesh.workflows.record_values import Errors, RecordError
from salesmesh.workflows.records import prepare_customer, prepare_deal, update_customer, update_deal

# Standard fields: form input name -> service argument. Prefixed so they never clash with form field keys.
CUSTOMER_INPUTS: Mapping[str, str] = {
    "customer_name": "name",
    "customer_grade": "grade",
    "customer_region": "region",
    "customer_institution_type": "institution_type",
}
DEAL_INPUTS: Mapping[str, str] = {
    "deal_amount": "amount",
    "deal_expected_close": "expected_close",
    "deal_primary_contact_id": "primary_contact_id",
}


class RecordFormInvalid(RecordError):
    """A customer or deal edit has errors: `bound` (None without a form) has the form's, `fields` the rest."""

    def __init__(self, bound: BoundForm | None, fields: list[dict[str, str]]) -> None:
        super().__init__([*fields, *(bound.error_list() if bound is not None else [])])
        self.bound = bound
        self.fields = fields


def published_form_for(session: Session, record_type: str) -> FormSpec | None:
    """Return the compiled published form for `record_type` records (the first by key), or None."""
    versions = session.scalars(
        select(DefinitionVersion)
        .join(Definition, DefinitionVersion.definition_id == Definition.id)
        .where(Definition.kind == "form", DefinitionVersion.status == "published")
        .order_by(Definition.key)
    )
    for version in versions:
        if version.document.get("record_type") == record_type:
            return compile_form(version)
    return None


def _pinned(session: Session, version_id: int | None) -> FormSpec | None:
    if version_id is None:
        return None
    try:
        return spec_for_version_id(session, version_id)
    except LookupError:
        return None


def customer_form_spec(session: Session, customer: Customer) -> FormSpec | None:
    """Return the form a customer is edited with: its pinned version, else the published customer form."""
    if customer.form_version_id is not None:
        return _pinned(session, customer.form_version_id)
    return published_form_for(session, "customer")


def deal_form_spec(session: Session, deal: Deal) -> FormSpec | None:
    """Return the deal's pinned form version (None when the deal has no form)."""
    return _pinned(session, deal.form_version_id)


def customer_inputs(customer: Customer) -> dict[str, Any]:
    """Return the standard-field inputs of the customer edit form filled from the row."""
    return {name: getattr(customer, attr) or "" for name, attr in CUSTOMER_INPUTS.items()}


def deal_inputs(deal: Deal) -> dict[str, Any]:
    """Return the standard-field inputs of the deal edit form filled from the row."""
    return {
        "deal_amount": "" if deal.amount is None else f"{deal.amount:.2f}",
        "deal_expected_close": deal.expected_close.isoformat() if deal.expected_close else "",
        "deal_primary_contact_id": str(deal.primary_contact_id or ""),
    }


def _text(raw: Mapping[str, Any], name: str) -> Any:
    value = raw.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        value = value.strip()
    return value if value not in (None, "") else None


def _contact_id(value: Any, errors: Errors) -> Any:
    """Read a posted contact id: None when empty, an int for ASCII digits, else an error."""
    if value is None or isinstance(value, int):
        return value
    text = str(value)
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    errors.add("/primary_contact_id", N_("Choose a contact from the list."))
    return None


def _bind_form(
    session: Session,
    actor: User | None,
    spec: FormSpec | None,
    data: Mapping[str, Any] | None,
    raw: Mapping[str, Any],
    **options: Any,
) -> tuple[BoundForm | None, dict[str, Any] | None]:
    """Bind the record's form; return the bound form and the new `data` (history keys kept)."""
    if spec is None:
        return None, None
    old = dict(data or {})
    existing = {k: v for k, v in old.items() if k in spec.by_key}
    bound = bind(
        spec, raw, existing=existing, resolver=reference_resolver(session, actor, existing), **options
    )
    new = {k: v for k, v in old.items() if k not in spec.by_key}
    new.update(bound.values)
    return bound, new


def _fail_if_invalid(bound: BoundForm | None, errors: Errors) -> None:
    if errors.items or (bound is not None and not bound.valid):
        raise RecordFormInvalid(bound, list(errors.items))


def update_customer_form(
    session: Session,
    actor: User | None,
    customer_id: int,
    raw: Mapping[str, Any],
    *,
    clock: Clock,
    source: str = "form",
    tz: tzinfo = UTC,
    files: FileStore | None = None,
) -> Customer:
    """Validate a customer edit (standard fields + form) and store it (raises RecordFormInvalid)."""
    customer: Customer = rv.load(session, actor, Customer, customer_id)
    rv.check(actor, "customer.edit", customer)
    spec = customer_form_spec(session, customer)
    fields = {attr: _text(raw, name) for name, attr in CUSTOMER_INPUTS.items()}
    fields["name"] = fields["name"] or ""
    errors = Errors()
    prepare_customer(session, errors, fields)
    bound, data = _bind_form(
        session, actor, spec, customer.data, raw, source=source, now=clock.now(), tz=tz, files=files
    )
    _fail_if_invalid(bound, errors)
    extra: dict[str, Any] = {}
    if spec is not None:
        extra = {"data": data, "form_version_id": spec.version_id}
    try:
        return update_customer(session, actor, customer.id, clock=clock, **fields, **extra)
    except RecordError as exc:  # a duplicate name in the region: shown with the submission
        raise RecordFormInvalid(bound, exc.errors) from exc


def update_deal_form(
    session: Session,
    actor: User | None,
    deal_id: int,
    raw: Mapping[str, Any],
    *,
    clock: Clock,
    source: str = "form",
    tz: tzinfo = UTC,
    files: FileStore | None = None,
) -> Deal:
    """Validate a deal edit (standard fields + its pinned form) and store it (raises RecordFormInvalid)."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "deal.edit", deal)
    spec = deal_form_spec(session, deal)
    errors = Errors()
    fields = {attr: _text(raw, name) for name, attr in DEAL_INPUTS.items()}
    fields["primary_contact_id"] = _contact_id(fields["primary_contact_id"], errors)
    prepare_deal(session, errors, {k: v for k, v in fields.items() if k != "primary_contact_id"})
    if fields["primary_contact_id"] is not None:
        rv.contact_at(session, fields["primary_contact_id"], deal.customer_id, "/primary_contact_id", errors)
    bound, data = _bind_form(
        session, actor, spec, deal.data, raw, source=source, now=clock.now(), tz=tz, files=files
    )
    _fail_if_invalid(bound, errors)
    extra = {"data": data} if spec is not None else {}
    try:
        return update_deal(session, actor, deal.id, clock=clock, **fields, **extra)
    except RecordError as exc:
        raise RecordFormInvalid(bound, exc.errors) from exc
