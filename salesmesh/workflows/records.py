"""Customer, contact and deal services: create and update, with policy checks, validation and audit.

Plain services (`verb_noun(session, actor, ..., clock)`): check the actor through the policy
(`actor=None` is the system and skips it), validate every field (problems come back together as
`RecordError.errors`), write, audit, flush, return; the caller commits. Each create is split into
`prepare_*` (validate, no writes) and `add_*` (insert + audit) so lead conversion can validate the
customer, contact and deal it is about to create before writing any of them.

Ownership: a contact or deal belongs by default to its customer's owner (the account owner), a customer
to whoever creates it; an explicit owner must be someone the actor may give records to. The team is
always the owner's. Customers are deduplicated by normalised name within a region (`name_key`,
`region_key`, backed by a unique constraint). A deal pins the published pipeline version of its pipeline
key and starts in its initial stage (announced with the stage-change signal, as every later move is by
`salesmesh.workflows.pipelines`); its form-defined fields are pinned to the pipeline's deal form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.versions import get_published
from salesmesh.platform import policy
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.lights import refresh_light
from salesmesh.workflows.models import Contact, Customer, Deal
from salesmesh.workflows.pipelines import enter_initial_stage
from salesmesh.workflows.record_values import UNSET, DuplicateCustomer, Errors, RecordError

__all__ = [
    "UNSET",
    "DuplicateCustomer",
    "RecordError",
    "add_contact",
    "add_customer",
    "add_deal",
    "create_contact",
    "create_customer",
    "create_deal",
    "find_duplicate_customer",
    "initial_stage",
    "prepare_contact",
    "prepare_customer",
    "prepare_deal",
    "refuse_duplicate",
    "update_contact",
    "update_customer",
    "update_deal",
]

_UNKNOWN_CUSTOMER = N_("Unknown customer %(id)s.")


def _owner(session: Session, actor: User | None, owner_id: Any, default: Any, errors: Errors) -> User | None:
    """The explicit owner (checked), else the default owner (a user id), else the actor."""
    if owner_id is not None:
        return rv.assignee(session, actor, owner_id, "/owner_id", errors)
    user = session.get(User, default) if default is not None else None
    return user if user is not None and user.active else actor


# --- customers --------------------------------------------------------------------------------------


def find_duplicate_customer(
    session: Session, name: str, region: str | None, *, exclude_id: int | None = None
) -> Customer | None:
    """Return the customer with the same normalised name in the same region, if any (no policy: dedup)."""
    stmt = select(Customer).where(
        Customer.name_key == rv.normalize_name(name), Customer.region_key == rv.normalize_name(region)
    )
    if exclude_id is not None:
        stmt = stmt.where(Customer.id != exclude_id)
    return session.scalars(stmt.limit(1)).first()


def prepare_customer(session: Session, errors: Errors, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate customer fields (name, region, grade, institution_type, data, form_version_id)."""
    values: dict[str, Any] = {}
    if "name" in fields:
        values["name"] = rv.text(fields["name"], "/name", errors, max_len=200, required=True)
        if values["name"] is not None and not rv.normalize_name(values["name"]):
            errors.add("/name", N_("The name needs at least one letter or digit."))
            values["name"] = None
        values["name_key"] = rv.normalize_name(values["name"])[:200]
    if "region" in fields:
        values["region"] = rv.text(fields["region"], "/region", errors, max_len=80)
        values["region_key"] = rv.normalize_name(values["region"])[:80]
    if "grade" in fields:
        values["grade"] = rv.code(fields["grade"], "/grade", errors)
    if "institution_type" in fields:
        values["institution_type"] = rv.code(fields["institution_type"], "/institution_type", errors)
    if "data" in fields:
        values["data"] = rv.data(fields["data"], "/data", errors)
    if "form_version_id" in fields:
        values["form_version_id"] = rv.form_version(
            session, fields["form_version_id"], "/form_version_id", errors
        )
    return values


def refuse_duplicate(
    session: Session,
    errors: Errors,
    name: str,
    region: str | None,
    exclude_id: int | None,
    *,
    actor: User | None = None,
) -> None:
    """Raise DuplicateCustomer (with `errors` so far) when the name is taken in the region.

    The existing customer's number is named only to someone who may see it; others learn that the
    name is taken (so they do not create a twin) and whom to ask.
    """
    existing = find_duplicate_customer(session, name, region, exclude_id=exclude_id)
    if existing is None:
        return
    if actor is None or policy.is_visible(actor, existing):
        errors.add(
            "/name",
            N_("Customer %(name)s (#%(id)s) already exists in this region."),
            name=existing.name,
            id=existing.id,
        )
    else:
        errors.add(
            "/name",
            N_("Customer %(name)s already exists in this region and is someone else's; ask your team lead."),
            name=existing.name,
        )
    raise DuplicateCustomer(list(errors.items), existing.id)


def add_customer(
    session: Session, actor: User | None, values: dict[str, Any], owner: User | None, *, clock: Clock
) -> Customer:
    """Insert a prepared customer owned by `owner` and audit it (a racing twin raises DuplicateCustomer)."""
    now = clock.now()
    customer = Customer(
        owner_id=owner.id if owner else None,
        team_id=owner.team_id if owner else None,
        created_at=now,
        updated_at=now,
        **{"region": None, "region_key": "", "data": {}, **values},
    )
    try:
        with session.begin_nested():
            session.add(customer)
    except IntegrityError:
        errors = Errors()
        refuse_duplicate(session, errors, customer.name, customer.region, None, actor=actor)
        raise
    rv.audit(
        session, clock, actor, "customer.create", customer, name=customer.name, owner_id=customer.owner_id
    )
    return customer


def create_customer(
    session: Session,
    actor: User | None,
    *,
    name: str,
    clock: Clock,
    region: str | None = None,
    grade: str | None = None,
    institution_type: str | None = None,
    owner_id: int | None = None,
    data: dict[str, Any] | None = None,
    form_version_id: int | None = None,
) -> Customer:
    """Create a customer (institution); a duplicate name in the same region raises DuplicateCustomer."""
    rv.check(actor, "customer.create", Customer)
    errors = Errors()
    values = prepare_customer(
        session,
        errors,
        {
            "name": name,
            "region": region,
            "grade": grade,
            "institution_type": institution_type,
            "data": data,
            "form_version_id": form_version_id,
        },
    )
    owner = _owner(session, actor, owner_id, None, errors)
    errors.raise_if_any()
    refuse_duplicate(session, errors, values["name"], values["region"], None, actor=actor)
    return add_customer(session, actor, values, owner, clock=clock)


def update_customer(
    session: Session,
    actor: User | None,
    customer_id: int,
    *,
    clock: Clock,
    name: Any = UNSET,
    region: Any = UNSET,
    grade: Any = UNSET,
    institution_type: Any = UNSET,
    owner_id: Any = UNSET,
    data: Any = UNSET,
    form_version_id: Any = UNSET,
) -> Customer:
    """Change a customer's fields; renaming into an existing name of the region raises DuplicateCustomer."""
    customer: Customer = rv.load(session, actor, Customer, customer_id)
    rv.check(actor, "customer.edit", customer)
    given = rv.given(
        name=name,
        region=region,
        grade=grade,
        institution_type=institution_type,
        data=data,
        form_version_id=form_version_id,
    )
    errors = Errors()
    values = prepare_customer(session, errors, given)
    owner = rv.assignee(session, actor, owner_id, "/owner_id", errors) if owner_id is not UNSET else None
    errors.raise_if_any()
    if "name" in values or "region" in values:
        refuse_duplicate(
            session,
            errors,
            values.get("name", customer.name),
            values.get("region", customer.region),
            customer.id,
            actor=actor,
        )
    if owner is not None:
        values.update(owner_id=owner.id, team_id=owner.team_id)
    changes = rv.changed(customer, values)
    if changes:
        customer.updated_at = clock.now()
        changes.pop("name_key", None)
        changes.pop("region_key", None)
        session.flush()
        rv.audit(session, clock, actor, "customer.update", customer, changes=changes)
    return customer


# --- contacts ---------------------------------------------------------------------------------------


def prepare_contact(session: Session, errors: Errors, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate contact fields (name, role, department, phone, email, data, form_version_id)."""
    values: dict[str, Any] = {}
    if "name" in fields:
        values["name"] = rv.text(fields["name"], "/name", errors, max_len=200, required=True)
    if "role" in fields:
        values["role"] = rv.code(fields["role"], "/role", errors)
    if "department" in fields:
        values["department"] = rv.text(fields["department"], "/department", errors, max_len=120)
    if "phone" in fields:
        values["phone"] = rv.phone(fields["phone"], "/phone", errors)
    if "email" in fields:
        values["email"] = rv.email(fields["email"], "/email", errors)
    if "data" in fields:
        values["data"] = rv.data(fields["data"], "/data", errors)
    if "form_version_id" in fields:
        values["form_version_id"] = rv.form_version(
            session, fields["form_version_id"], "/form_version_id", errors
        )
    return values


def add_contact(
    session: Session,
    actor: User | None,
    customer: Customer,
    values: dict[str, Any],
    owner: User | None,
    *,
    clock: Clock,
) -> Contact:
    """Insert a prepared contact at `customer` owned by `owner` and audit it."""
    now = clock.now()
    contact = Contact(
        customer_id=customer.id,
        owner_id=owner.id if owner else None,
        team_id=owner.team_id if owner else None,
        created_at=now,
        updated_at=now,
        **{"data": {}, **values},
    )
    session.add(contact)
    session.flush()
    rv.audit(session, clock, actor, "contact.create", contact, customer_id=customer.id, name=contact.name)
    return contact


def create_contact(
    session: Session,
    actor: User | None,
    *,
    customer_id: int,
    name: str,
    clock: Clock,
    role: str | None = None,
    department: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    owner_id: int | None = None,
    data: dict[str, Any] | None = None,
    form_version_id: int | None = None,
) -> Contact:
    """Add a person at a customer the actor may see (owned by the customer's owner unless told otherwise)."""
    errors = Errors()
    customer = rv.ref(session, actor, Customer, customer_id, "/customer_id", errors, _UNKNOWN_CUSTOMER)
    errors.raise_if_any()
    rv.check(actor, "contact.create", customer)
    values = prepare_contact(
        session,
        errors,
        {
            "name": name,
            "role": role,
            "department": department,
            "phone": phone,
            "email": email,
            "data": data,
            "form_version_id": form_version_id,
        },
    )
    owner = _owner(session, actor, owner_id, customer.owner_id, errors)
    errors.raise_if_any()
    return add_contact(session, actor, customer, values, owner, clock=clock)


def update_contact(
    session: Session,
    actor: User | None,
    contact_id: int,
    *,
    clock: Clock,
    name: Any = UNSET,
    role: Any = UNSET,
    department: Any = UNSET,
    phone: Any = UNSET,
    email: Any = UNSET,
    data: Any = UNSET,
    form_version_id: Any = UNSET,
) -> Contact:
    """Change a contact's fields."""
    contact: Contact = rv.load(session, actor, Contact, contact_id)
    rv.check(actor, "contact.edit", contact)
    given = rv.given(
        name=name,
        role=role,
        department=department,
        phone=phone,
        email=email,
        data=data,
        form_version_id=form_version_id,
    )
    errors = Errors()
    values = prepare_contact(session, errors, given)
    errors.raise_if_any()
    changes = rv.changed(contact, values)
    if changes:
        contact.updated_at = clock.now()
        session.flush()
        rv.audit(session, clock, actor, "contact.update", contact, changes=changes)
    return contact


# --- deals ------------------------------------------------------------------------------------------


def initial_stage(document: Mapping[str, Any]) -> str:
    """Return the stage a new deal starts in: the pipeline's `initial_stage`, else its first stage."""
    keys = [stage["key"] for stage in document.get("stages", [])]
    wanted = document.get("initial_stage")
    return wanted if wanted in keys else keys[0]


def _pipeline(session: Session, key: Any, errors: Errors) -> DefinitionVersion | None:
    if not isinstance(key, str) or not key.strip():
        errors.add("/pipeline_key", N_("This field is required."))
        return None
    version = get_published(session, "pipeline", key)
    if version is None or not version.document.get("stages"):
        errors.add(
            "/pipeline_key", N_("Unknown pipeline %(key)s (nothing published under that key)."), key=key
        )
        return None
    return version


def prepare_deal(session: Session, errors: Errors, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate deal fields; `pipeline_key` (create only) pins the published pipeline and its deal form."""
    values: dict[str, Any] = {}
    if "pipeline_key" in fields:
        pipeline = _pipeline(session, fields["pipeline_key"], errors)
        if pipeline is not None:
            document = pipeline.document
            values.update(
                pipeline_version_id=pipeline.id,
                pipeline_key=document["key"],
                stage_key=initial_stage(document),
            )
            form = (
                get_published(session, "form", document["deal_form"]) if document.get("deal_form") else None
            )
            values["form_version_id"] = form.id if form is not None else None
    if "name" in fields:
        values["name"] = rv.text(fields["name"], "/name", errors, max_len=200, required=True)
    if "amount" in fields:
        values["amount"] = rv.money(fields["amount"], "/amount", errors)
    if "currency" in fields:
        values["currency"] = rv.currency(fields["currency"], "/currency", errors)
    if "expected_close" in fields:
        values["expected_close"] = rv.day(fields["expected_close"], "/expected_close", errors)
    if "next_step" in fields:
        values["next_step"] = rv.text(fields["next_step"], "/next_step", errors, max_len=500)
    if "next_step_due_at" in fields:
        values["next_step_due_at"] = rv.moment(fields["next_step_due_at"], "/next_step_due_at", errors)
    if "data" in fields:
        values["data"] = rv.data(fields["data"], "/data", errors)
    if fields.get("form_version_id") is not None:
        values["form_version_id"] = rv.form_version(
            session, fields["form_version_id"], "/form_version_id", errors
        )
    return values


def add_deal(
    session: Session,
    actor: User | None,
    customer: Customer,
    values: dict[str, Any],
    owner: User | None,
    *,
    primary_contact: Contact | None = None,
    clock: Clock,
) -> Deal:
    """Insert a prepared deal at `customer` in its pipeline's initial stage for `owner`; audit it."""
    now = clock.now()
    fields = {"name": customer.name, "currency": "CNY", "data": {}, **values}
    if fields["name"] is None:
        fields["name"] = customer.name
    deal = Deal(
        customer_id=customer.id,
        primary_contact_id=primary_contact.id if primary_contact else None,
        stage_entered_at=now,
        status="open",
        owner_id=owner.id if owner else None,
        team_id=owner.team_id if owner else None,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(deal)
    session.flush()
    rv.audit(
        session,
        clock,
        actor,
        "deal.create",
        deal,
        customer_id=customer.id,
        pipeline_key=deal.pipeline_key,
        pipeline_version_id=deal.pipeline_version_id,
        stage_key=deal.stage_key,
        amount=deal.amount,
        owner_id=deal.owner_id,
    )
    enter_initial_stage(session, actor, deal)  # action packs and lights start with the first stage
    return deal


def create_deal(
    session: Session,
    actor: User | None,
    *,
    customer_id: int,
    pipeline_key: str,
    clock: Clock,
    name: str | None = None,
    primary_contact_id: int | None = None,
    amount: Any = None,
    currency: str = "CNY",
    expected_close: Any = None,
    owner_id: int | None = None,
    data: dict[str, Any] | None = None,
    form_version_id: int | None = None,
) -> Deal:
    """Open a deal at a customer in the initial stage of the published pipeline `pipeline_key`."""
    errors = Errors()
    customer = rv.ref(session, actor, Customer, customer_id, "/customer_id", errors, _UNKNOWN_CUSTOMER)
    errors.raise_if_any()
    rv.check(actor, "deal.create", customer)
    fields: dict[str, Any] = {
        "pipeline_key": pipeline_key,
        "amount": amount,
        "currency": currency,
        "expected_close": expected_close,
        "data": data,
        "form_version_id": form_version_id,
    }
    if name is not None:
        fields["name"] = name
    values = prepare_deal(session, errors, fields)
    contact = rv.contact_at(session, primary_contact_id, customer.id, "/primary_contact_id", errors)
    owner = _owner(session, actor, owner_id, customer.owner_id, errors)
    errors.raise_if_any()
    return add_deal(session, actor, customer, values, owner, primary_contact=contact, clock=clock)


def update_deal(
    session: Session,
    actor: User | None,
    deal_id: int,
    *,
    clock: Clock,
    name: Any = UNSET,
    primary_contact_id: Any = UNSET,
    amount: Any = UNSET,
    currency: Any = UNSET,
    expected_close: Any = UNSET,
    next_step: Any = UNSET,
    next_step_due_at: Any = UNSET,
    owner_id: Any = UNSET,
    data: Any = UNSET,
    form_version_id: Any = UNSET,
) -> Deal:
    """Change a deal's fields (stage and outcome move through the pipeline services, not here)."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "deal.edit", deal)
    given = rv.given(
        name=name,
        amount=amount,
        currency=currency,
        expected_close=expected_close,
        next_step=next_step,
        next_step_due_at=next_step_due_at,
        data=data,
        form_version_id=form_version_id,
    )
    errors = Errors()
    values = prepare_deal(session, errors, given)
    if primary_contact_id is not UNSET:
        contact = rv.contact_at(session, primary_contact_id, deal.customer_id, "/primary_contact_id", errors)
        values["primary_contact_id"] = contact.id if contact is not None else None
    if owner_id is not UNSET:
        owner = rv.assignee(session, actor, owner_id, "/owner_id", errors)
        if owner is not None:
            values.update(owner_id=owner.id, team_id=owner.team_id)
    errors.raise_if_any()
    changes = rv.changed(deal, values)
    if changes:
        deal.updated_at = clock.now()
        session.flush()
        rv.audit(session, clock, actor, "deal.update", deal, changes=changes)
        if "next_step_due_at" in changes:
            refresh_light(session, deal, now=deal.updated_at)  # the next step is part of the light's plan
    return deal
