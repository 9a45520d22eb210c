"""Fixtures for the record tests: a published pipeline (and deal form) and factories for customers,
contacts, deals and activities. Factories insert rows directly (no policy, no audit) so a test can set up
any world; the services under test are called explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.clock import FrozenClock
from salesmesh.workflows.models import Activity, Contact, Customer, Deal
from salesmesh.workflows.record_values import normalize_name

PIPELINE_KEY = "hospital-sales"
DEAL_FORM_KEY = "hospital-deal"


def pipeline_doc(key: str = PIPELINE_KEY, **overrides: Any) -> dict[str, Any]:
    """Return a valid four-stage pipeline definition (two open stages, won, lost)."""
    doc: dict[str, Any] = {
        "kind": "pipeline",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Hospital sales", "zh": "医院销售"},
        "mode": "free",
        "allow_any": True,
        "stages": [
            {
                "key": "first_contact",
                "label": {"en": "First contact", "zh": "初步接触"},
                "probability": 10,
                "outcome": "open",
            },
            {
                "key": "needs_confirmed",
                "label": {"en": "Needs confirmed", "zh": "需求确认"},
                "probability": 30,
                "outcome": "open",
            },
            {"key": "signed", "label": {"en": "Signed", "zh": "签单"}, "probability": 100, "outcome": "won"},
            {"key": "lost", "label": {"en": "Lost", "zh": "丢单"}, "probability": 0, "outcome": "lost"},
        ],
    }
    doc.update(overrides)
    return doc


def deal_form_doc(key: str = DEAL_FORM_KEY) -> dict[str, Any]:
    """Return a valid one-field deal form."""
    return {
        "kind": "form",
        "key": key,
        "schema_version": 1,
        "label": {"en": "Hospital deal", "zh": "医院商机"},
        "record_type": "deal",
        "sections": [
            {
                "key": "deal",
                "label": {"en": "Deal", "zh": "商机"},
                "fields": [{"key": "product_line", "type": "text", "label": {"en": "Product", "zh": "产品"}}],
            }
        ],
    }


def publish(session: Session, clock: FrozenClock, document: dict[str, Any]) -> DefinitionVersion:
    """Create and publish a definition as the system; return its published version."""
    draft = create_definition_draft(session, None, document, clock)
    return publish_version(session, None, draft.id, clock)


@pytest.fixture
def pipeline(session: Session, clock: FrozenClock) -> DefinitionVersion:
    """The published `hospital-sales` pipeline (first stage `first_contact`)."""
    return publish(session, clock, pipeline_doc())


@pytest.fixture
def make_customer(session: Session, clock: FrozenClock) -> Callable[..., Customer]:
    counter = iter(range(1, 100_000))

    def factory(**overrides: Any) -> Customer:
        n = next(counter)
        values: dict[str, Any] = {
            "name": f"Hospital {n}",
            "region": "beijing",
            "grade": "tertiary_a",
            "institution_type": "hospital",
            "data": {},
            "created_at": clock.now(),
            "updated_at": clock.now(),
        }
        values.update(overrides)
        owner = values.pop("owner", None)
        if owner is not None:
            values.update(owner_id=owner.id, team_id=owner.team_id)
        values.setdefault("name_key", normalize_name(values["name"]))
        values.setdefault("region_key", normalize_name(values["region"]))
        customer = Customer(**values)
        session.add(customer)
        session.flush()
        return customer

    return factory


@pytest.fixture
def make_contact(session: Session, clock: FrozenClock, make_customer: Any) -> Callable[..., Contact]:
    counter = iter(range(1, 100_000))

    def factory(**overrides: Any) -> Contact:
        n = next(counter)
        customer = overrides.pop("customer", None)
        if customer is None and "customer_id" not in overrides:
            customer = make_customer(owner_id=overrides.get("owner_id"), team_id=overrides.get("team_id"))
        values: dict[str, Any] = {
            "name": f"Contact {n}",
            "role": "clinician",
            "data": {},
            "created_at": clock.now(),
            "updated_at": clock.now(),
        }
        if customer is not None:
            values.update(customer_id=customer.id, owner_id=customer.owner_id, team_id=customer.team_id)
        values.update(overrides)
        contact = Contact(**values)
        session.add(contact)
        session.flush()
        return contact

    return factory


@pytest.fixture
def make_deal(
    session: Session, clock: FrozenClock, make_customer: Any, pipeline: DefinitionVersion
) -> Callable[..., Deal]:
    counter = iter(range(1, 100_000))

    def factory(**overrides: Any) -> Deal:
        n = next(counter)
        customer = overrides.pop("customer", None)
        if customer is None and "customer_id" not in overrides:
            customer = make_customer(owner_id=overrides.get("owner_id"), team_id=overrides.get("team_id"))
        values: dict[str, Any] = {
            "name": f"Deal {n}",
            "pipeline_version_id": pipeline.id,
            "pipeline_key": PIPELINE_KEY,
            "stage_key": "first_contact",
            "stage_entered_at": clock.now(),
            "status": "open",
            "currency": "CNY",
            "data": {},
            "created_at": clock.now(),
            "updated_at": clock.now(),
        }
        if customer is not None:
            values.update(customer_id=customer.id, owner_id=customer.owner_id, team_id=customer.team_id)
        values.update(overrides)
        deal = Deal(**values)
        session.add(deal)
        session.flush()
        return deal

    return factory


@pytest.fixture
def make_activity(session: Session, clock: FrozenClock) -> Callable[..., Activity]:
    def factory(**overrides: Any) -> Activity:
        """Insert an activity; pass `deal=`, `customer=` or `lead=` to file it under that record."""
        values: dict[str, Any] = {
            "kind": "call",
            "occurred_at": clock.now(),
            "created_at": clock.now(),
            "data": {},
        }
        for name in ("deal", "customer", "lead"):
            row = overrides.pop(name, None)
            if row is None:
                continue
            values.update(subject_type=name, owner_id=row.owner_id, team_id=row.team_id)
            if name == "deal":
                values.update(deal_id=row.id, customer_id=row.customer_id)
            elif name == "customer":
                values.update(customer_id=row.id)
            else:
                values.update(lead_id=row.id)
        values.update(overrides)
        activity = Activity(**values)
        session.add(activity)
        session.flush()
        return activity

    return factory


@pytest.fixture
def people(make_team: Any, make_user: Any, session: Session) -> dict[str, Any]:
    """Team A (lead_a, rep_a1, rep_a2), team B (lead_b, rep_b1), an admin and an ops person, by name."""
    team_a, team_b = make_team(key="team-a"), make_team(key="team-b")
    folks = {
        "admin": make_user(role="admin", name="admin"),
        "ops": make_user(role="ops", name="ops"),
        "lead_a": make_user(role="lead", name="lead_a", team_id=team_a.id),
        "lead_b": make_user(role="lead", name="lead_b", team_id=team_b.id),
        "rep_a1": make_user(name="rep_a1", team_id=team_a.id),
        "rep_a2": make_user(name="rep_a2", team_id=team_a.id),
        "rep_b1": make_user(name="rep_b1", team_id=team_b.id),
    }
    team_a.lead_id, team_b.lead_id = folks["lead_a"].id, folks["lead_b"].id
    session.flush()
    return folks
