"""Objection handling: the shipped library (five standard responses per type, bilingual), logging an
objection with a standard response, a custom response that waits for the team lead's approval and
escalates at its deadline (not before), the outcome written back on the activity, which library a deal
uses, and bad input named by field."""

from __future__ import annotations

import copy
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.metamodel.models import Definition
from salesmesh.platform.notifications import Notification
from salesmesh.platform.sweeper import sweep_once
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.approvals import decide_approval, list_approvals
from salesmesh.workflows.models import Activity, Deal
from salesmesh.workflows.objections import compile_library, library_for, log_objection
from salesmesh.workflows.record_values import RecordError
from tests.workflows.conftest import publish
from tests.workflows.page_helpers import fresh, shipped
from tests.workflows.pipeline_helpers import md_world


@pytest.fixture
def md(session: Any, clock: Any) -> SimpleNamespace:
    return md_world(session, clock)


def _paths(exc: RecordError) -> list[str]:
    return [e["path"] for e in exc.errors]


def test_the_shipped_library_has_five_bilingual_responses_per_type() -> None:
    library = compile_library(shipped("objections.json"))
    assert len(library.types) >= 6
    for otype in library.types:
        assert len(otype.responses) == 5, otype.key
        for response in otype.responses:
            assert (
                response.label["en"] and response.label["zh"] and response.text["en"] and response.text["zh"]
            )
    assert library.custom_needs_approval
    assert (library.rules.approver, library.rules.deadline_hours, library.rules.on_deadline) == (
        "team_lead",
        24.0,
        "escalate",
    )


def test_an_objection_with_a_standard_response_is_logged(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    logged = log_objection(
        session,
        md.rep_a1,
        deal.id,
        "price",
        response_key="total_cost",
        summary="Compared with X",
        clock=clock,
    )
    assert logged.approval is None
    activity = logged.activity
    assert (activity.kind, activity.deal_id, activity.actor_id, activity.summary) == (
        "objection",
        deal.id,
        md.rep_a1.id,
        "Compared with X",
    )
    record = activity.data["objection"]
    assert (record["library"], record["type"], record["response"], record["custom_text"]) == (
        "md-objections",
        "price",
        "total_cost",
        None,
    )
    assert (
        record["type_label"]["zh"] == "价格太高"
        and record["response_label"]["en"] == "Total cost of ownership"
    )
    assert "approval" not in record
    assert session.get(Deal, deal.id).last_activity_at == clock.now()
    assert list_approvals(session, md.lead_a) == []


def test_a_custom_response_waits_for_the_team_lead_and_escalates_at_the_deadline(
    session: Any, clock: Any, runtime: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    logged = log_objection(
        session,
        md.rep_a1,
        deal.id,
        "competitor",
        custom_text="We match their price for two years.",
        clock=clock,
    )
    request = logged.approval
    assert request is not None
    assert (request.kind, request.status, request.approver_id) == (
        "custom_objection_response",
        "pending",
        md.lead_a.id,
    )
    assert request.payload["custom_text"] == "We match their price for two years."
    assert request.payload["activity_id"] == logged.activity.id
    assert logged.activity.data["objection"]["approval"] == {"id": request.id, "status": "pending"}
    assert [r.id for r in list_approvals(session, md.lead_a)] == [request.id]
    assert list_approvals(session, md.lead_b) == []
    session.commit()

    clock.set(request.deadline_at - timedelta(minutes=1))
    assert sweep_once(runtime, owner="t") == 0
    assert fresh(session, request).status == "pending"
    clock.set(request.deadline_at)
    assert sweep_once(runtime, owner="t") == 1
    request = fresh(session, request)
    assert request.status == "escalated"
    activity = session.get(Activity, logged.activity.id)
    assert activity.data["objection"]["approval"]["status"] == "escalated"
    escalated = session.scalars(select(Notification.user_id).where(Notification.kind == "approval.escalated"))
    assert list(escalated) == [md.ops.id]

    decide_approval(session, md.lead_a, request.id, approve=True, note="Fine this once", clock=clock)
    activity = session.get(Activity, logged.activity.id)
    assert activity.data["objection"]["approval"]["status"] == "approved"
    assert activity.data["objection"]["approval"]["note"] == "Fine this once"


def test_a_rejected_custom_response_is_recorded_on_the_activity(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    logged = log_objection(session, md.rep_a1, deal.id, "budget", custom_text="Free unit", clock=clock)
    decide_approval(session, md.lead_a, logged.approval.id, approve=False, note="Not allowed", clock=clock)
    assert logged.activity.data["objection"]["approval"]["status"] == "rejected"


def test_bad_input_names_the_field(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    cases = [
        (("weather",), {"response_key": "total_cost"}, ["/objection_type"]),
        (("price",), {}, ["/response"]),
        (("price",), {"response_key": "total_cost", "custom_text": "mine"}, ["/response"]),
        (("price",), {"response_key": "side_by_side"}, ["/response"]),  # a response of another type
        (("price",), {"custom_text": "x" * 2001}, ["/custom_text"]),
    ]
    for args, kwargs, paths in cases:
        with pytest.raises(RecordError) as caught:
            log_objection(session, md.rep_a1, deal.id, *args, clock=clock, **kwargs)
        assert _paths(caught.value) == paths, (args, kwargs)
    assert session.scalars(select(Activity).where(Activity.kind == "objection")).first() is None


def test_a_locked_stage_that_plans_no_objections_refuses_them(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1)  # first contact plans calls, visits, e-mails ... but not objections
    with pytest.raises(RecordError) as caught:
        log_objection(session, md.rep_a1, deal.id, "price", response_key="total_cost", clock=clock)
    assert _paths(caught.value) == ["/kind"]
    with pytest.raises(RecordError):
        log_activity(session, md.rep_a1, kind="objection", deal_id=deal.id, clock=clock)


def test_the_library_of_the_pipelines_pack_wins(session: Any, clock: Any, md: SimpleNamespace) -> None:
    relaxed = copy.deepcopy(shipped("objections.json"))
    relaxed.update(key="aa-objections", custom_response_requires_approval=False)
    publish(session, clock, relaxed)
    deal = md.deal(md.rep_a1, "needs_confirmed")
    assert library_for(session, deal).key == "aa-objections"  # no pack anywhere: the first by key
    logged = log_objection(session, md.rep_a1, deal.id, "price", custom_text="Our own answer", clock=clock)
    assert logged.approval is None and "approval" not in logged.activity.data["objection"]

    for definition in session.scalars(
        select(Definition).where(Definition.key.in_(("md-sales", "md-objections")))
    ):
        definition.pack_key = "medical-device-direct"
    session.flush()
    assert library_for(session, deal).key == "md-objections"
