"""The intake service: validation against the routing's lead form, normalisation, de-duplication on
normalised keys (linking, taking over keys of closed leads), routing and audit. The statement gate and
the concurrency case are in test_intake_perf.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.intake import (
    IntakeInvalid,
    IntakeUnavailable,
    intake_lead,
    normalize_institution,
)
from salesmesh.workflows.intake_models import LeadDedupeKey, LeadDuplicate
from salesmesh.workflows.models import Activity, Lead
from tests.workflows.intake_helpers import intake_world, payload


@pytest.fixture
def reps(session: Session, clock: FrozenClock) -> list[int]:
    return intake_world(session, clock)


def _intake(session: Session, clock: FrozenClock, **fields: Any) -> Any:
    return intake_lead(session, channel="hotline", payload=payload(**fields), clock=clock)


def test_new_lead_is_normalised_routed_recorded_and_audited(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    result = intake_lead(
        session,
        channel="hotline",
        payload=payload(institution_grade="tertiary_a", campaign="spring-expo"),
        clock=clock,
        idempotency_key="abc",
    )
    lead = result.lead
    assert result.created and result.duplicate is None
    assert lead.phone == "+8613812345678" and lead.data["phone"] == "+8613812345678"
    assert lead.email == "chen@example.com"
    assert lead.institution == "Peking Union Hospital" == lead.data["institution_name"]
    assert lead.name == "Dr Chen · Peking Union Hospital"
    assert (lead.source_channel, lead.campaign, lead.received_at) == ("hotline", "spring-expo", clock.now())
    assert lead.form_version_id is not None and lead.status == "new"
    assert lead.owner_id in reps and result.decision is not None
    assert result.decision.rule_key == "key_account" and result.decision.outcome == "assigned"
    keys = dict(session.execute(select(LeadDedupeKey.kind, LeadDedupeKey.value)).all())
    assert keys == {"phone": "+8613812345678", "email": "chen@example.com"}
    # One audit event records the intake and its routing decision (routing writes no event of its own).
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.intake")).one()
    assert event.object_id == lead.id
    assert event.payload["idempotency_key"] == "abc" and event.payload["decision_id"] == result.decision.id
    assert (event.payload["source_channel"], event.payload["campaign"]) == ("hotline", "spring-expo")
    assert event.payload["received_at"] == clock.now().isoformat()
    assert event.payload["form_version_id"] == lead.form_version_id
    assert (event.payload["outcome"], event.payload["rule"], event.payload["owner_id"]) == (
        "assigned",
        "key_account",
        lead.owner_id,
    )
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.route")).all() == []
    assert session.scalars(select(Activity).where(Activity.lead_id == lead.id)).all() == []
    assert verify_chain(session) is None


def test_received_at_and_campaign_arguments_win(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    earlier = clock.now().replace(hour=1)
    result = intake_lead(
        session,
        channel="ads",
        payload=payload(campaign="form-value"),
        clock=clock,
        received_at=earlier,
        campaign="override",
    )
    assert (result.lead.received_at, result.lead.campaign) == (earlier, "override")
    assert result.decision is not None and result.decision.lead_age_seconds == 8 * 3600


def test_validation_errors_name_each_field_in_both_languages(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    with pytest.raises(IntakeInvalid) as caught:
        intake_lead(
            session,
            channel="hotline",
            payload={"contact_name": "Chen", "phone": "12345", "institution_grade": "nope", "colour": "red"},
            clock=clock,
        )
    paths = {e["path"] for e in caught.value.errors}
    assert paths == {"/institution_name", "/phone", "/institution_grade", "/colour"}
    assert all(e["message"] and e["message_zh"] for e in caught.value.errors)
    assert session.scalar(select(func.count()).select_from(Lead)) == 0


def test_without_a_published_routing_intake_is_unavailable(session: Session, clock: FrozenClock) -> None:
    with pytest.raises(IntakeUnavailable):
        _intake(session, clock)


def test_duplicate_of_an_open_lead_is_linked_and_the_owner_told(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    first = _intake(session, clock).lead
    clock.advance(hours=1)
    again = intake_lead(
        session,
        channel="ads",
        payload=payload(phone="+86 138-1234-5678", email="other@example.com", campaign="retarget"),
        clock=clock,
    )
    assert not again.created and again.lead.id == first.id and again.decision is None
    dup = again.duplicate
    assert dup is not None and dup.duplicate_of_id == first.id and dup.matched_on == "phone"
    assert (dup.source_channel, dup.campaign, dup.data["email"]) == ("ads", "retarget", "other@example.com")
    assert session.scalar(select(func.count()).select_from(Lead)) == 1  # never a second open lead
    # The new e-mail did not stay behind with the discarded row.
    assert session.scalars(select(LeadDedupeKey.value).where(LeadDedupeKey.kind == "email")).all() == [
        "chen@example.com"
    ]
    note = session.scalars(select(Activity).where(Activity.outcome == "duplicate_intake")).one()
    assert note.lead_id == first.id and note.owner_id == first.owner_id
    assert note.data["duplicate_id"] == dup.id and "ads / retarget" in (note.summary or "")
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.intake_duplicate")).one()
    assert event.object_id == first.id and event.payload["matched_on"] == "phone"


def test_email_alone_matches_too(session: Session, clock: FrozenClock, reps: list[int]) -> None:
    first = _intake(session, clock, phone=None).lead
    again = _intake(session, clock, phone="13900001111", email="CHEN@example.com")
    assert again.duplicate is not None and again.duplicate.matched_on == "email"
    assert again.lead.id == first.id


def test_a_closed_lead_gives_its_keys_to_a_new_enquiry(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    first = _intake(session, clock).lead
    first.status = "converted"
    session.flush()
    second = _intake(session, clock)
    assert second.created and second.lead.id != first.id
    holders = set(session.scalars(select(LeadDedupeKey.lead_id)))
    assert holders == {second.lead.id}
    assert session.scalar(select(func.count()).select_from(LeadDuplicate)) == 0


def test_a_closed_leads_key_does_not_hide_an_open_lead_holding_the_other(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    closed = _intake(session, clock, email=None).lead  # holds the phone
    closed.status = "disqualified"
    session.flush()
    open_lead = _intake(session, clock, phone=None).lead  # holds the e-mail
    again = _intake(session, clock)  # the phone of the closed lead, the e-mail of the open one
    assert again.duplicate is not None and again.duplicate.matched_on == "email"
    assert again.lead.id == open_lead.id
    assert session.scalar(select(func.count()).select_from(Lead)) == 2
    # The phone is free for the next enquiry (the discarded row's takeover went with it).
    fresh = _intake(session, clock, email="new@example.com")
    assert fresh.created and fresh.lead.id not in (closed.id, open_lead.id)
    holders = set(session.execute(select(LeadDedupeKey.kind, LeadDedupeKey.value, LeadDedupeKey.lead_id)))
    assert holders == {
        ("phone", "+8613812345678", fresh.lead.id),
        ("email", "new@example.com", fresh.lead.id),
        ("email", "chen@example.com", open_lead.id),
    }


def test_keys_are_taken_over_and_duplicates_found_on_postgresql(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    with pg_runtime.db.session_scope() as session:
        intake_world(session, clock)
        first = _intake(session, clock).lead
        assert not _intake(session, clock).created  # an open holder: a duplicate
        first.status = "converted"
    with pg_runtime.db.session_scope() as session:
        second = _intake(session, clock)
        assert second.created and second.lead.id != first.id
        holders = set(session.scalars(select(LeadDedupeKey.lead_id)))
        assert holders == {second.lead.id}
        assert session.scalar(select(func.count()).select_from(LeadDuplicate)) == 1


def test_leads_without_contact_keys_are_never_duplicates(
    session: Session, clock: FrozenClock, reps: list[int]
) -> None:
    a = _intake(session, clock, phone=None, email=None)
    b = _intake(session, clock, phone=None, email=None)
    assert a.created and b.created and a.lead.id != b.lead.id


def test_institution_names_are_folded() -> None:
    assert normalize_institution("  北京协和医院（东院）\u3000 ") == "北京协和医院(东院)"
    assert normalize_institution("ＡＢＣ  Clinic") == "ABC Clinic"
    assert normalize_institution("   ") is None
