"""Lead conversion: customer (new or existing) + contact + deal, owned by the lead's owner; validated
before anything is written; the lead keeps its history, which shows on the deal's and customer's
timelines; and the same on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.exceptions import NotFound

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.workflows import activities
from salesmesh.workflows.conversion import convert_lead
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Lead, Task
from salesmesh.workflows.record_values import DuplicateCustomer, RecordError
from salesmesh.workflows.timeline import timeline
from tests.workflows.conftest import PIPELINE_KEY, pipeline_doc, publish

DEAL = {"pipeline_key": PIPELINE_KEY}


def _lead(make_lead: Any, owner: Any, **overrides: Any) -> Lead:
    values: dict[str, Any] = {
        "name": "王主任 · 北京协和医院",
        "institution": "北京协和医院",
        "institution_grade": "tertiary_a",
        "region": "beijing",
        "phone": "+86 138 0000 0001",
        "email": "wang@pumch.example",
        "status": "qualified",
        "owner_id": owner.id,
        "team_id": owner.team_id,
        "data": {"contact_name": "王主任", "institution_type": "hospital", "department": "影像科"},
    }
    values.update(overrides)
    return make_lead(**values)


def _counts(session: Any) -> tuple[int, int, int]:
    return tuple(session.scalar(select(func.count()).select_from(m)) for m in (Customer, Contact, Deal))  # type: ignore[return-value]


def test_convert_creates_customer_contact_and_deal_from_the_lead(
    session: Any, clock: Any, people: Any, make_lead: Any, pipeline: Any
) -> None:
    rep = people["rep_a1"]
    lead = _lead(make_lead, rep)
    clock.advance(days=3)
    result = convert_lead(
        session, rep, lead.id, deal={**DEAL, "amount": "2400000", "name": "MR upgrade"}, clock=clock
    )
    customer, contact, deal = result.customer, result.contact, result.deal
    assert result.customer_created
    assert (customer.name, customer.region, customer.grade, customer.institution_type) == (
        "北京协和医院",
        "beijing",
        "tertiary_a",
        "hospital",
    )
    assert contact is not None
    assert (contact.customer_id, contact.name, contact.phone, contact.email, contact.department) == (
        customer.id,
        "王主任",
        "+86 138 0000 0001",
        "wang@pumch.example",
        "影像科",
    )
    assert (deal.customer_id, deal.primary_contact_id, deal.name, deal.amount) == (
        customer.id,
        contact.id,
        "MR upgrade",
        Decimal("2400000.00"),
    )
    assert (deal.pipeline_version_id, deal.stage_key) == (pipeline.id, "first_contact")
    for row in (customer, contact, deal):
        assert (row.owner_id, row.team_id) == (rep.id, rep.team_id)
    assert (lead.status, lead.converted_at) == ("converted", clock.now())
    assert (lead.converted_customer_id, lead.converted_deal_id) == (customer.id, deal.id)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.convert")).one()
    assert event.payload == {
        "customer_id": customer.id,
        "contact_id": contact.id,
        "deal_id": deal.id,
        "customer_created": True,
    }
    assert verify_chain(session) is None


def test_the_lead_keeps_its_history_and_the_deal_shows_it(
    session: Any, clock: Any, people: Any, make_lead: Any, pipeline: Any
) -> None:
    rep = people["rep_a1"]
    lead = _lead(make_lead, rep, status="new")
    call = activities.log_activity(session, rep, kind="call", lead_id=lead.id, outcome="reached", clock=clock)
    clock.advance(days=1)
    due = clock.now() + timedelta(days=2)
    visit = activities.log_activity(
        session, rep, kind="visit", lead_id=lead.id, next_step="Quote", next_step_due_at=due, clock=clock
    )
    task = activities.create_task(session, rep, title="Send brochure", lead_id=lead.id, clock=clock)
    clock.advance(days=1)
    result = convert_lead(session, rep, lead.id, deal=DEAL, clock=clock)
    deal, customer = result.deal, result.customer

    for row in (call, visit):
        session.refresh(row)
        assert (row.lead_id, row.deal_id, row.customer_id, row.subject_type) == (
            lead.id,
            deal.id,
            customer.id,
            "lead",
        )
    session.refresh(task)
    assert (task.lead_id, task.deal_id, task.customer_id) == (lead.id, deal.id, customer.id)
    assert deal.last_activity_at == visit.occurred_at == customer.last_activity_at
    assert (deal.next_step, deal.next_step_due_at) == ("Quote", due)

    deal_history = timeline(session, rep, deal_id=deal.id)
    kinds = [(e.kind, e.action) for e in deal_history.entries]
    assert kinds[:2] == [("audit", "lead.convert"), ("audit", "deal.create")]
    assert [e.activity for e in deal_history.entries if e.activity is not None] == [visit, call]
    assert ("audit", "task.create") in kinds
    customer_history = timeline(session, rep, customer_id=customer.id)
    assert {e.activity.id for e in customer_history.entries if e.activity is not None} == {call.id, visit.id}
    assert {e.action for e in customer_history.entries} >= {
        "customer.create",
        "contact.create",
        "lead.convert",
    }
    lead_history = timeline(session, rep, lead_id=lead.id)
    assert [e.activity for e in lead_history.entries if e.activity is not None] == [visit, call]

    # Logging on the converted lead later still lands on the deal's history.
    clock.advance(hours=1)
    late = activities.log_activity(session, rep, kind="message", lead_id=lead.id, clock=clock)
    assert (late.deal_id, late.customer_id) == (deal.id, customer.id)
    assert deal.last_activity_at == clock.now()
    assert timeline(session, rep, deal_id=deal.id, kinds=["message"]).entries[0].activity is late


def test_convert_into_an_existing_customer_and_contact(
    session: Any,
    clock: Any,
    people: Any,
    make_lead: Any,
    make_customer: Any,
    make_contact: Any,
    pipeline: Any,
) -> None:
    rep = people["rep_a1"]
    customer = make_customer(name="北京协和医院", owner=rep)
    contact = make_contact(customer=customer)
    lead = _lead(make_lead, rep)
    result = convert_lead(
        session, rep, lead.id, customer_id=customer.id, contact_id=contact.id, deal=DEAL, clock=clock
    )
    assert (result.customer, result.contact, result.customer_created) == (customer, contact, False)
    assert result.deal.primary_contact_id == contact.id
    assert _counts(session) == (1, 1, 1)
    # A contact from another customer is refused, a foreign customer reads as unknown.
    other = _lead(make_lead, rep)
    with pytest.raises(RecordError) as exc:
        convert_lead(
            session,
            rep,
            other.id,
            customer_id=customer.id,
            contact_id=make_contact().id,
            deal=DEAL,
            clock=clock,
        )
    assert [e["path"] for e in exc.value.errors] == ["/contact_id"]
    foreign = make_customer(owner=people["rep_b1"])
    with pytest.raises(RecordError) as exc:
        convert_lead(session, rep, other.id, customer_id=foreign.id, deal=DEAL, clock=clock)
    assert [e["path"] for e in exc.value.errors] == ["/customer_id"]


def test_a_duplicate_institution_names_the_existing_customer_and_writes_nothing(
    session: Any, clock: Any, people: Any, make_lead: Any, make_customer: Any, pipeline: Any
) -> None:
    existing = make_customer(name="北京 协和医院", region="Beijing", owner=people["rep_b1"])
    lead = _lead(make_lead, people["rep_a1"])
    with pytest.raises(DuplicateCustomer) as exc:
        convert_lead(session, people["rep_a1"], lead.id, deal=DEAL, clock=clock)
    assert exc.value.existing_id == existing.id
    assert [e["path"] for e in exc.value.errors] == ["/customer/name"]
    assert _counts(session) == (1, 0, 0)
    assert lead.status == "qualified"
    # Overriding the name creates a distinct customer.
    result = convert_lead(
        session, people["rep_a1"], lead.id, customer={"name": "北京协和医院（西院）"}, deal=DEAL, clock=clock
    )
    assert result.customer.name == "北京协和医院（西院）"


def test_every_problem_is_reported_before_anything_is_written(
    session: Any, clock: Any, people: Any, make_lead: Any, pipeline: Any
) -> None:
    lead = _lead(make_lead, people["rep_a1"], institution=None, email="not-an-email")
    with pytest.raises(RecordError) as exc:
        convert_lead(
            session,
            people["rep_a1"],
            lead.id,
            contact={"role": "Chief Doctor"},
            deal={"pipeline_key": "nope", "amount": "-1", "stage_key": "signed"},
            clock=clock,
        )
    assert [e["path"] for e in exc.value.errors] == [
        "/customer/name",
        "/contact/role",
        "/contact/email",
        "/deal/stage_key",
        "/deal/pipeline_key",
        "/deal/amount",
    ]
    with pytest.raises(RecordError) as exc:
        convert_lead(session, people["rep_a1"], lead.id, customer={"name": "Clinic"}, deal={}, clock=clock)
    assert [e["path"] for e in exc.value.errors] == ["/contact/email", "/deal/pipeline_key"]
    assert _counts(session) == (0, 0, 0)
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 2  # the two publish events


@pytest.mark.parametrize(
    ("status", "owned", "message"),
    [
        ("converted", True, "already converted"),
        ("disqualified", True, "disqualified"),
        ("pooled", False, "claim it from the pool"),
    ],
)
def test_leads_that_cannot_be_converted(
    session: Any,
    clock: Any,
    people: Any,
    make_lead: Any,
    pipeline: Any,
    status: str,
    owned: bool,
    message: str,
) -> None:
    owner = people["rep_a1"] if owned else None
    lead = make_lead(status=status, owner_id=owner.id if owner else None, institution="Clinic")
    with pytest.raises(RecordError, match=message):
        convert_lead(session, people["rep_a1"], lead.id, deal=DEAL, clock=clock)


def test_only_people_who_see_the_lead_convert_it_and_records_go_to_its_owner(
    session: Any, clock: Any, people: Any, make_lead: Any, pipeline: Any
) -> None:
    lead = _lead(make_lead, people["rep_a2"])
    for stranger in ("rep_a1", "rep_b1", "lead_b"):
        with pytest.raises(NotFound):
            convert_lead(session, people[stranger], lead.id, deal=DEAL, clock=clock)
    result = convert_lead(session, people["lead_a"], lead.id, deal=DEAL, clock=clock)
    assert {row.owner_id for row in (result.customer, result.contact, result.deal)} == {people["rep_a2"].id}
    assert session.scalars(select(AuditEvent.actor_id).where(AuditEvent.action == "lead.convert")).one() == (
        people["lead_a"].id
    )


@pytest.mark.services
def test_conversion_and_timeline_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    from salesmesh.platform.models import Team, User

    with pg_runtime.db.Session() as session:
        team = Team(key="t", name={"en": "T", "zh": "T"}, created_at=clock.now())
        session.add(team)
        session.flush()
        rep = User(
            email="rep@example.test",
            name="Rep",
            role="rep",
            team_id=team.id,
            password_hash="x",
            active=True,
            attributes={},
            created_at=clock.now(),
        )
        session.add(rep)
        publish(session, clock, pipeline_doc())
        lead = Lead(
            name="李主任",
            institution="上海瑞金医院",
            region="shanghai",
            status="new",
            source_channel="web_form",
            received_at=clock.now(),
            created_at=clock.now(),
            data={"contact_name": "李主任"},
        )
        session.add(lead)
        session.flush()
        lead.owner_id, lead.team_id = rep.id, team.id
        for n in range(5):
            clock.advance(hours=1)
            activities.log_activity(
                session, rep, kind="call", lead_id=lead.id, summary=f"call {n}", clock=clock
            )
        session.commit()

    with pg_runtime.db.Session() as session:
        rep = session.get(User, rep.id)
        clock.advance(hours=1)
        result = convert_lead(session, rep, lead.id, deal={**DEAL, "amount": 99.999}, clock=clock)
        session.commit()
        deal_id = result.deal.id

    with pg_runtime.db.Session() as session:
        rep = session.get(User, rep.id)
        deal = session.get(Deal, deal_id)
        assert deal.amount == Decimal("100.00") and deal.stage_key == "first_contact"
        page = timeline(session, rep, deal_id=deal_id, limit=4)
        assert [e.action for e in page.entries[:2]] == ["lead.convert", "deal.create"]
        assert [e.activity.summary for e in page.entries[2:]] == ["call 4", "call 3"]
        assert page.has_more
        rest = timeline(session, rep, deal_id=deal_id, before=page.next_before, kinds=["call"])
        assert [e.activity.summary for e in rest.entries] == ["call 2", "call 1", "call 0"]
        assert (
            session.scalar(select(func.count()).select_from(Activity).where(Activity.deal_id == deal_id)) == 5
        )
        assert session.scalar(select(Lead.status).where(Lead.id == lead.id)) == "converted"
        assert session.scalar(select(func.count()).select_from(Task)) == 0
        assert verify_chain(session) is None
