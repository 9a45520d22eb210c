"""Record services: customers (dedup by normalised name within a region), contacts, deals pinned to the
published pipeline, activities moving the history fields of their records, and tasks; with validation
errors per field (English and Chinese), ownership rules and the audit trail."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.workflows import activities, records
from salesmesh.workflows.models import Customer, Deal
from salesmesh.workflows.record_values import DuplicateCustomer, RecordError, normalize_name
from tests.workflows.conftest import DEAL_FORM_KEY, PIPELINE_KEY, deal_form_doc, pipeline_doc, publish


def _paths(exc: pytest.ExceptionInfo[RecordError]) -> list[str]:
    return [e["path"] for e in exc.value.errors]


def _events(session: Any, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
    )


# --- customers --------------------------------------------------------------------------------------


def test_create_customer_owned_by_the_creator_and_audited(session: Any, clock: Any, people: Any) -> None:
    rep = people["rep_a1"]
    customer = records.create_customer(
        session,
        rep,
        name="  北京协和医院 ",
        region="beijing",
        grade="tertiary_a",
        institution_type="hospital",
        data={"beds": 2000},
        clock=clock,
    )
    assert customer.name == "北京协和医院"
    assert customer.name_key == "北京协和医院" and customer.region_key == "beijing"
    assert (customer.owner_id, customer.team_id) == (rep.id, rep.team_id)
    assert customer.data == {"beds": 2000}
    assert customer.created_at == clock.now()
    [event] = _events(session, "customer.create")
    assert (event.actor_id, event.object_type, event.object_id) == (rep.id, "customers", customer.id)
    assert verify_chain(session) is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("北京协和医院", " 北京 协和医院"),
        ("St. Mary's Hospital", "st marys hospital"),
        ("ＡＢＣ Clinic", "abc-clinic"),  # full-width letters fold to ASCII
    ],
)
def test_duplicate_names_in_a_region_are_refused(
    session: Any, clock: Any, people: Any, first: str, second: str
) -> None:
    existing = records.create_customer(session, people["rep_a1"], name=first, region="Beijing", clock=clock)
    with pytest.raises(DuplicateCustomer) as exc:
        records.create_customer(session, people["rep_b1"], name=second, region=" beijing", clock=clock)
    assert exc.value.existing_id == existing.id
    [error] = exc.value.errors
    assert error["path"] == "/name"
    # rep_b1 may not see rep_a1's customer: told the name is taken, not which record it is
    assert f"#{existing.id}" not in error["message"] and "ask your team lead" in error["message"]
    assert "组长" in error["message_zh"]
    # The same name in another region is another institution.
    other = records.create_customer(session, people["rep_b1"], name=second, region="tianjin", clock=clock)
    assert other.id != existing.id


def test_the_database_refuses_a_duplicate_that_slipped_past_the_check(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    existing = make_customer(name="Union Hospital", region="beijing")
    values = {"name": "Union  Hospital", "name_key": normalize_name("Union Hospital"), "region": "beijing"}
    values["region_key"] = "beijing"
    with pytest.raises(DuplicateCustomer) as exc:
        records.add_customer(session, None, values, None, clock=clock)
    assert exc.value.existing_id == existing.id
    assert session.scalars(select(Customer.id)).all() == [existing.id]  # the session is still usable


def test_customer_validation_reports_every_field(session: Any, clock: Any, people: Any) -> None:
    with pytest.raises(RecordError) as exc:
        records.create_customer(
            session,
            people["rep_a1"],
            name="   ",
            grade="Tertiary A",
            institution_type="x" * 41,
            region="r" * 81,
            data=["not", "an", "object"],
            form_version_id=999,
            clock=clock,
        )
    assert _paths(exc) == ["/name", "/region", "/grade", "/institution_type", "/data", "/form_version_id"]
    assert exc.value.errors[0]["message"] == "This field is required."
    assert exc.value.errors[0]["message_zh"] == "此项为必填项。"
    with pytest.raises(RecordError) as exc:
        records.create_customer(session, people["rep_a1"], name="（ ）", clock=clock)
    assert _paths(exc) == ["/name"]
    assert session.scalars(select(Customer)).all() == []


def test_update_customer_records_changes_and_rechecks_duplicates(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    rep = people["rep_a1"]
    mine = make_customer(name="Clinic One", owner=rep)
    taken = make_customer(name="Clinic Two", owner=rep)
    clock.advance(hours=1)
    records.update_customer(session, rep, mine.id, grade="secondary", data={"beds": 40}, clock=clock)
    assert (mine.grade, mine.data, mine.updated_at) == ("secondary", {"beds": 40}, clock.now())
    [event] = _events(session, "customer.update")
    assert event.payload["changes"] == {"grade": ["tertiary_a", "secondary"], "data": [{}, {"beds": 40}]}
    with pytest.raises(DuplicateCustomer) as exc:
        records.update_customer(session, rep, mine.id, name="clinic two", clock=clock)
    assert exc.value.existing_id == taken.id
    # Re-saving its own name is not a duplicate of itself, and nothing changed means no audit event.
    records.update_customer(session, rep, mine.id, name="Clinic One", clock=clock)
    assert len(_events(session, "customer.update")) == 1


def test_people_reach_only_the_customers_they_see(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    theirs = make_customer(owner=people["rep_b1"])
    with pytest.raises(NotFound):
        records.update_customer(session, people["rep_a1"], theirs.id, grade="primary", clock=clock)
    with pytest.raises(NotFound):
        records.update_customer(session, people["lead_a"], theirs.id, grade="primary", clock=clock)
    records.update_customer(session, people["lead_b"], theirs.id, grade="primary", clock=clock)
    records.update_customer(session, people["ops"], theirs.id, grade="secondary", clock=clock)
    assert theirs.grade == "secondary"


def test_who_may_give_records_to_whom(session: Any, clock: Any, people: Any) -> None:
    def create(actor: str, owner: str) -> Customer:
        return records.create_customer(
            session, people[actor], name=f"{actor} for {owner}", owner_id=people[owner].id, clock=clock
        )

    assert create("rep_a1", "rep_a1").owner_id == people["rep_a1"].id
    assert create("lead_a", "rep_a2").team_id == people["rep_a2"].team_id
    assert create("admin", "rep_b1").owner_id == people["rep_b1"].id
    assert create("ops", "rep_a1").owner_id == people["rep_a1"].id
    for actor, owner in (("rep_a1", "rep_a2"), ("lead_a", "rep_b1"), ("rep_b1", "lead_b")):
        with pytest.raises(RecordError) as exc:
            create(actor, owner)
        assert _paths(exc) == ["/owner_id"], (actor, owner)
    people["rep_a2"].active = False
    with pytest.raises(RecordError, match="Unknown user"):
        create("lead_a", "rep_a2")


def test_reassigning_a_customer_moves_it_to_the_new_owners_team(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    customer = make_customer(owner=people["rep_a1"])
    records.update_customer(session, people["admin"], customer.id, owner_id=people["rep_b1"].id, clock=clock)
    assert (customer.owner_id, customer.team_id) == (people["rep_b1"].id, people["rep_b1"].team_id)
    with pytest.raises(NotFound):
        records.update_customer(session, people["rep_a1"], customer.id, grade="primary", clock=clock)


# --- contacts ---------------------------------------------------------------------------------------


def test_contacts_belong_to_the_account_owner(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    customer = make_customer(owner=people["rep_a1"])
    contact = records.create_contact(
        session,
        people["lead_a"],
        customer_id=customer.id,
        name="王主任",
        role="clinician",
        department="影像科",
        phone="+86 138 0000 0000",
        email="Wang@Hospital.CN",
        clock=clock,
    )
    assert (contact.customer_id, contact.owner_id, contact.team_id) == (
        customer.id,
        people["rep_a1"].id,
        people["rep_a1"].team_id,
    )
    assert contact.email == "wang@hospital.cn"
    [event] = _events(session, "contact.create")
    assert event.payload == {"customer_id": customer.id, "name": "王主任"}
    records.update_contact(session, people["rep_a1"], contact.id, role="procurement", clock=clock)
    assert contact.role == "procurement"


def test_contact_validation_and_foreign_customers(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    mine, theirs = make_customer(owner=people["rep_a1"]), make_customer(owner=people["rep_b1"])
    with pytest.raises(RecordError) as exc:
        records.create_contact(
            session,
            people["rep_a1"],
            customer_id=mine.id,
            name="",
            phone="call me",
            email="nope",
            clock=clock,
        )
    assert _paths(exc) == ["/name", "/phone", "/email"]
    # A foreign customer reads exactly like one that does not exist.
    errors = []
    for ident in (theirs.id, 10**9):
        with pytest.raises(RecordError) as exc:
            records.create_contact(session, people["rep_a1"], customer_id=ident, name="X", clock=clock)
        errors.append(exc.value.errors[0]["message"].replace(str(ident), "ID"))
    assert errors == ["Unknown customer ID.", "Unknown customer ID."]


# --- deals ------------------------------------------------------------------------------------------


def test_a_deal_pins_the_published_pipeline_and_starts_in_its_first_stage(
    session: Any, clock: Any, people: Any, make_customer: Any, make_contact: Any, pipeline: DefinitionVersion
) -> None:
    rep = people["rep_a1"]
    customer = make_customer(owner=rep)
    contact = make_contact(customer=customer)
    deal = records.create_deal(
        session,
        rep,
        customer_id=customer.id,
        pipeline_key=PIPELINE_KEY,
        name="CT for radiology",
        primary_contact_id=contact.id,
        amount="1,250,000.555",
        expected_close="2026-03-31",
        clock=clock,
    )
    assert (deal.pipeline_version_id, deal.pipeline_key, deal.stage_key) == (
        pipeline.id,
        PIPELINE_KEY,
        "first_contact",
    )
    assert (deal.status, deal.stage_entered_at, deal.currency) == ("open", clock.now(), "CNY")
    assert deal.amount == Decimal("1250000.56") and deal.expected_close == date(2026, 3, 31)
    assert (deal.owner_id, deal.team_id, deal.primary_contact_id) == (rep.id, rep.team_id, contact.id)
    assert deal.form_version_id is None  # this pipeline names no deal form
    session.expire_all()
    assert session.get(Deal, deal.id).amount == Decimal("1250000.56")
    [event] = _events(session, "deal.create")
    assert event.payload["pipeline_version_id"] == pipeline.id and event.payload["amount"] == "1250000.56"

    # A new pipeline version does not move existing deals; new deals pin the new one.
    draft = create_definition_draft(session, None, pipeline_doc(initial_stage="needs_confirmed"), clock)
    v2 = publish_version(session, None, draft.id, clock)
    later = records.create_deal(session, rep, customer_id=customer.id, pipeline_key=PIPELINE_KEY, clock=clock)
    assert (later.pipeline_version_id, later.stage_key, later.name) == (
        v2.id,
        "needs_confirmed",
        customer.name,
    )
    session.refresh(deal)
    assert deal.pipeline_version_id == pipeline.id


def test_a_deal_pins_the_pipelines_deal_form(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    form = publish(session, clock, deal_form_doc())
    publish(session, clock, pipeline_doc("with-form", deal_form=DEAL_FORM_KEY))
    customer = make_customer(owner=people["rep_a1"])
    deal = records.create_deal(
        session,
        people["rep_a1"],
        customer_id=customer.id,
        pipeline_key="with-form",
        data={"product_line": "CT"},
        clock=clock,
    )
    assert (deal.form_version_id, deal.data) == (form.id, {"product_line": "CT"})


def test_deal_validation(
    session: Any, clock: Any, people: Any, make_customer: Any, make_contact: Any, pipeline: DefinitionVersion
) -> None:
    customer = make_customer(owner=people["rep_a1"])
    elsewhere = make_contact(customer=make_customer(owner=people["rep_a1"]))
    draft_only = create_definition_draft(session, None, pipeline_doc("unpublished"), clock)
    assert draft_only.status == "draft"
    with pytest.raises(RecordError) as exc:
        records.create_deal(
            session,
            people["rep_a1"],
            customer_id=customer.id,
            pipeline_key="unpublished",
            amount="-5",
            currency="rmb",
            expected_close="next week",
            primary_contact_id=elsewhere.id,
            clock=clock,
        )
    assert _paths(exc) == ["/pipeline_key", "/amount", "/currency", "/expected_close", "/primary_contact_id"]
    assert "unpublished" in exc.value.errors[0]["message"]
    for bad in ("abc", float("nan"), True, "1e15"):
        with pytest.raises(RecordError, match="amount"):
            records.create_deal(
                session,
                people["rep_a1"],
                customer_id=customer.id,
                pipeline_key=PIPELINE_KEY,
                amount=bad,
                clock=clock,
            )
    assert session.scalars(select(Deal)).all() == []


def test_update_deal(session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any) -> None:
    rep = people["rep_a1"]
    deal = make_deal(owner_id=rep.id, team_id=rep.team_id)
    contact = make_contact(customer_id=deal.customer_id)
    due = clock.now() + timedelta(days=2)
    records.update_deal(
        session,
        rep,
        deal.id,
        amount=300000,
        next_step="Demo for the department head",
        next_step_due_at=due,
        primary_contact_id=contact.id,
        clock=clock,
    )
    assert (deal.amount, deal.next_step_due_at, deal.primary_contact_id) == (
        Decimal("300000.00"),
        due,
        contact.id,
    )
    [event] = _events(session, "deal.update")
    assert event.payload["changes"]["amount"] == [None, "300000.00"]
    with pytest.raises(RecordError) as exc:
        records.update_deal(session, rep, deal.id, next_step_due_at=datetime(2026, 1, 9), clock=clock)
    assert exc.value.errors[0]["message_zh"] == "时间须带时区。"
    with pytest.raises(NotFound):
        records.update_deal(session, people["rep_a2"], deal.id, amount=1, clock=clock)


# --- activities -------------------------------------------------------------------------------------


def test_first_contact_marks_a_new_lead_contacted(
    session: Any, clock: Any, people: Any, make_lead: Any
) -> None:
    rep = people["rep_a1"]
    lead = make_lead(owner_id=rep.id, team_id=rep.team_id)
    note = activities.log_activity(
        session, rep, kind="note", lead_id=lead.id, summary="Looked them up", clock=clock
    )
    assert (lead.status, lead.first_contact_at, lead.last_activity_at) == ("new", None, clock.now())
    assert (note.subject_type, note.lead_id, note.actor_id, note.owner_id) == (
        "lead",
        lead.id,
        rep.id,
        rep.id,
    )
    clock.advance(minutes=30)
    due = clock.now() + timedelta(days=1)
    call = activities.log_activity(
        session,
        rep,
        kind="call",
        lead_id=lead.id,
        outcome="reached",
        next_step="Send the brochure",
        next_step_due_at=due,
        clock=clock,
    )
    assert (lead.status, lead.first_contact_at, lead.last_activity_at) == (
        "contacted",
        clock.now(),
        clock.now(),
    )
    assert (lead.next_step, lead.next_step_due_at) == ("Send the brochure", due)
    events = _events(session, "activity.log")
    assert events[-1].payload["status"] == "contacted" and events[-1].object_id == call.id
    # A backdated visit moves the first contact earlier but not the last activity.
    activities.log_activity(
        session, rep, kind="visit", lead_id=lead.id, occurred_at=clock.now() - timedelta(days=1), clock=clock
    )
    assert lead.first_contact_at == clock.now() - timedelta(days=1)
    assert lead.last_activity_at == clock.now()


def test_a_deal_activity_belongs_to_the_customer_too(
    session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any
) -> None:
    rep = people["rep_a1"]
    deal = make_deal(owner_id=rep.id, team_id=rep.team_id)
    contact = make_contact(customer_id=deal.customer_id, owner_id=None)
    clock.advance(hours=2)
    visit = activities.log_activity(
        session, people["lead_a"], kind="visit", deal_id=deal.id, contact_id=contact.id, clock=clock
    )
    assert (visit.deal_id, visit.customer_id, visit.contact_id) == (deal.id, deal.customer_id, contact.id)
    assert (visit.actor_id, visit.owner_id, visit.team_id) == (people["lead_a"].id, rep.id, rep.team_id)
    assert deal.last_activity_at == clock.now() == deal.customer.last_activity_at
    # The runtime's own entries (stage changes, reminders) do not count as interactions.
    clock.advance(hours=1)
    activities.log_activity(
        session, None, kind="stage_change", deal_id=deal.id, data={"to": "signed"}, clock=clock
    )
    assert deal.last_activity_at == clock.now() - timedelta(hours=1)


def test_activity_validation(
    session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any, make_lead: Any
) -> None:
    rep = people["rep_a1"]
    deal = make_deal(owner_id=rep.id, team_id=rep.team_id)
    stranger = make_contact()
    with pytest.raises(RecordError) as exc:
        activities.log_activity(
            session,
            rep,
            kind="stage_change",
            deal_id=deal.id,
            contact_id=stranger.id,
            occurred_at=clock.now() + timedelta(hours=1),
            next_step_due_at="tomorrow",
            clock=clock,
        )
    assert _paths(exc) == ["/kind", "/occurred_at", "/next_step_due_at", "/contact_id"]
    lead = make_lead(owner_id=rep.id)
    with pytest.raises(RecordError) as exc:
        activities.log_activity(session, rep, kind="call", deal_id=deal.id, lead_id=lead.id, clock=clock)
    assert _paths(exc) == ["/subject"]
    with pytest.raises(RecordError):
        activities.log_activity(session, rep, kind="call", clock=clock)
    with pytest.raises(NotFound):
        activities.log_activity(session, people["rep_b1"], kind="call", deal_id=deal.id, clock=clock)
    with pytest.raises(NotFound):
        activities.log_activity(session, rep, kind="call", lead_id=10**9, clock=clock)


# --- tasks ------------------------------------------------------------------------------------------


def test_tasks_are_created_for_someone_and_completed_once(
    session: Any, clock: Any, people: Any, make_deal: Any
) -> None:
    rep, lead = people["rep_a1"], people["lead_a"]
    deal = make_deal(owner_id=rep.id, team_id=rep.team_id)
    due = datetime(2026, 1, 7, 10, tzinfo=UTC)
    own = activities.create_task(session, rep, title="Call back", deal_id=deal.id, due_at=due, clock=clock)
    assert (own.assignee_id, own.owner_id, own.team_id, own.status) == (rep.id, rep.id, rep.team_id, "open")
    assert (own.deal_id, own.customer_id, own.created_by_id) == (deal.id, deal.customer_id, rep.id)
    given = activities.create_task(
        session, lead, title="Prepare quote", deal_id=deal.id, assignee_id=rep.id, clock=clock
    )
    assert given.assignee_id == rep.id
    with pytest.raises(RecordError) as exc:
        activities.create_task(
            session, rep, title="", deal_id=deal.id, assignee_id=people["rep_a2"].id, clock=clock
        )
    assert _paths(exc) == ["/title", "/assignee_id"]

    clock.advance(hours=3)
    activities.complete_task(session, rep, own.id, clock=clock)
    assert (own.status, own.done_at) == ("done", clock.now())
    clock.advance(hours=1)
    activities.complete_task(session, rep, own.id, clock=clock)  # a second click changes nothing
    assert own.done_at == clock.now() - timedelta(hours=1)
    assert len(_events(session, "task.complete")) == 1
    with pytest.raises(NotFound):
        activities.complete_task(session, people["rep_a2"], given.id, clock=clock)
    given.status = "cancelled"
    with pytest.raises(RecordError, match="cancelled"):
        activities.complete_task(session, lead, given.id, clock=clock)


def test_the_system_files_tasks_for_the_record_owner(
    session: Any, clock: Any, people: Any, make_lead: Any
) -> None:
    rep = people["rep_b1"]
    lead = make_lead(owner_id=rep.id, team_id=rep.team_id)
    task = activities.create_task(
        session, None, title="First-response reminder", lead_id=lead.id, clock=clock
    )
    assert (task.assignee_id, task.team_id, task.created_by_id) == (rep.id, rep.team_id, None)


def test_deal_rows_are_checked_by_the_database(session: Any, make_deal: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    deal = make_deal()
    deal.status = "maybe"
    with pytest.raises(IntegrityError, match="ck_deals_status"):
        session.flush()
