"""Lead conversion: a qualified lead becomes a customer (new or existing), a contact and a deal.

`convert_lead` validates everything it is about to create first (the customer from the lead's
institution fields, the contact from the lead's person, the deal in the published pipeline) and only
then writes, so a bad field leaves no half-made records. The lead itself stays: it is marked converted
and points at the customer and deal it became, and its activities and tasks keep their `lead_id` and are
filed under that customer and deal too, so the deal's timeline starts with the lead's whole history.
The new records belong to the lead's owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows import records
from salesmesh.workflows.lights import refresh_light
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Lead, Task
from salesmesh.workflows.record_values import Errors

_DEAL_FIELDS = ("pipeline_key", "name", "amount", "currency", "expected_close", "data", "form_version_id")


@dataclass(frozen=True)
class Conversion:
    """What a lead became; `customer_created` says whether the customer is new."""

    lead: Lead
    customer: Customer
    contact: Contact | None
    deal: Deal
    customer_created: bool


def _refuse_status(lead: Lead) -> None:
    if lead.status == "converted":
        raise rv.fail(
            "/status", N_("This lead was already converted (deal #%(id)s)."), id=lead.converted_deal_id
        )
    if lead.status == "disqualified":
        raise rv.fail("/status", N_("A disqualified lead cannot be converted."))
    if lead.owner_id is None:
        raise rv.fail("/status", N_("Take the lead (claim it from the pool) before converting it."))


def _customer_defaults(lead: Lead) -> dict[str, Any]:
    extra = lead.data or {}
    return {
        "name": lead.institution,
        "region": lead.region,
        "grade": lead.institution_grade,
        "institution_type": extra.get("institution_type"),
    }


def _contact_defaults(lead: Lead) -> dict[str, Any]:
    extra = lead.data or {}
    return {
        "name": extra.get("contact_name") or lead.name,
        "phone": lead.phone,
        "email": lead.email,
        "department": extra.get("department"),
    }


def convert_lead(
    session: Session,
    actor: User | None,
    lead_id: int,
    *,
    deal: Mapping[str, Any],
    clock: Clock,
    customer_id: int | None = None,
    customer: Mapping[str, Any] | None = None,
    contact_id: int | None = None,
    contact: Mapping[str, Any] | None = None,
) -> Conversion:
    """Convert a lead into a customer (`customer_id`, or one made from the lead), a contact and a deal.

    `customer`, `contact` and `deal` override the fields taken from the lead; `deal` needs
    `pipeline_key`. Errors point into them (`/customer/name`, `/deal/amount`).
    """
    lead: Lead = rv.load(session, actor, Lead, lead_id)
    rv.check(actor, "lead.convert", lead)
    _refuse_status(lead)
    owner = lead.owner if lead.owner is not None and lead.owner.active else actor
    errors = Errors()

    existing = None
    customer_values: dict[str, Any] = {}
    if customer_id is not None:
        existing = rv.ref(
            session, actor, Customer, customer_id, "/customer_id", errors, N_("Unknown customer %(id)s.")
        )
    else:
        fields = {**_customer_defaults(lead), **(customer or {})}
        customer_values = records.prepare_customer(session, errors.nested("/customer"), fields)

    existing_contact = None
    contact_values: dict[str, Any] = {}
    if contact_id is not None:
        target = existing.id if existing is not None else None
        existing_contact = rv.contact_at(session, contact_id, target, "/contact_id", errors)
    else:
        fields = {**_contact_defaults(lead), **(contact or {})}
        contact_values = records.prepare_contact(session, errors.nested("/contact"), fields)

    unknown = sorted(set(deal) - set(_DEAL_FIELDS))
    for key in unknown:
        errors.add(f"/deal/{key}", N_("Unknown field."))
    deal_fields = {"pipeline_key": None, **{k: v for k, v in deal.items() if k in _DEAL_FIELDS}}
    deal_values = records.prepare_deal(session, errors.nested("/deal"), deal_fields)
    errors.raise_if_any()
    if existing is None:
        records.refuse_duplicate(
            session,
            errors.nested("/customer"),
            customer_values["name"],
            customer_values.get("region"),
            None,
            actor=actor,
        )

    if existing is not None:
        rv.check(actor, "deal.create", existing)
        account = existing
    else:
        rv.check(actor, "customer.create", Customer)
        account = records.add_customer(session, actor, customer_values, owner, clock=clock)
    person = existing_contact
    if person is None:
        person = records.add_contact(session, actor, account, contact_values, owner, clock=clock)
    opened = records.add_deal(
        session, actor, account, deal_values, owner, primary_contact=person, clock=clock
    )
    _carry_history(session, lead, account, opened)
    refresh_light(session, opened, now=clock.now())  # the lead's recency, next step and tasks came along

    lead.status = "converted"
    lead.converted_at = clock.now()
    lead.converted_customer_id = account.id
    lead.converted_deal_id = opened.id
    session.flush()
    rv.audit(
        session,
        clock,
        actor,
        "lead.convert",
        lead,
        customer_id=account.id,
        contact_id=person.id,
        deal_id=opened.id,
        customer_created=existing is None,
    )
    return Conversion(lead, account, person, opened, existing is None)


def _carry_history(session: Session, lead: Lead, customer: Customer, deal: Deal) -> None:
    """File the lead's activities and tasks under the customer and deal; carry its recency and next step."""
    for model in (Activity, Task):
        session.execute(
            update(model)
            .where(model.lead_id == lead.id, model.deal_id.is_(None))
            .values(customer_id=customer.id, deal_id=deal.id)
        )
    if lead.last_activity_at is not None:
        deal.last_activity_at = lead.last_activity_at
        if customer.last_activity_at is None or customer.last_activity_at < lead.last_activity_at:
            customer.last_activity_at = lead.last_activity_at
    if lead.next_step or lead.next_step_due_at:
        deal.next_step, deal.next_step_due_at = lead.next_step, lead.next_step_due_at
