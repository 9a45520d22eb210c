"""Pipelines at run time, through the services: the shipped locked medical-device pipeline refuses moves it
does not list and names the unmet exit criteria; skips and waivers wait for the team lead's approval and
are applied as the approver's; a free pipeline lets the mover waive with a reason; won/lost stages close
the deal; a stale move is a 409; every entry sends the stage-change signal once (creation included); a
locked stage refuses unplanned actions; key nodes need evidence; a move costs a bounded number of SQL
statements whatever the deal's history."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.workflows import stage_signals
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.approvals import decide_approval
from salesmesh.workflows.conversion import convert_lead
from salesmesh.workflows.models import Activity, Deal
from salesmesh.workflows.pipeline_specs import compile_pipeline
from salesmesh.workflows.pipelines import (
    StaleStage,
    complete_key_node,
    exit_status,
    move_deal,
    pipeline_for,
)
from salesmesh.workflows.record_values import RecordError
from salesmesh.workflows.records import create_deal
from tests.workflows.page_helpers import count_statements, shipped
from tests.workflows.pipeline_helpers import READY, md_world, signals


@pytest.fixture
def md(session: Any, clock: Any) -> SimpleNamespace:
    return md_world(session, clock)


def _events(session: Any, action: str, deal: Deal) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.object_id == deal.id)
            .order_by(AuditEvent.seq)
        )
    )


def _tick(session: Any, clock: Any, actor: Any, deal: Deal, *nodes: str, kind: str = "meeting") -> None:
    """Log an interaction of `kind` on the deal and tick `nodes` with it as the evidence."""
    log_activity(session, actor, kind=kind, deal_id=deal.id, clock=clock)
    for node in nodes:
        complete_key_node(session, actor, deal.id, node, clock=clock)


def _paths(exc: RecordError) -> list[str]:
    return [e["path"] for e in exc.errors]


# --- compiling --------------------------------------------------------------------------------------------


def test_the_shipped_pipeline_compiles_with_its_routes() -> None:
    pipeline = compile_pipeline(shipped("pipeline.json"))
    assert pipeline.locked and pipeline.initial_stage == "initial_contact"
    assert [s.key for s in pipeline.stages][:3] == ["initial_contact", "needs_confirmed", "solution_demo"]
    assert {r.stage.key: r.approval_kind for r in pipeline.routes("needs_confirmed")} == {
        "solution_demo": None,
        "contract_negotiation": "skip_stage",
        "lost": None,
    }
    assert pipeline.route("lost", "initial_contact").approval_kind == "transition"  # reopening
    assert pipeline.route("initial_contact", "signed") is None
    assert pipeline.gated("solution_demo", "trial_request")
    assert not pipeline.gated("trial_request", "solution_demo") and not pipeline.gated(
        "trial_request", "lost"
    )
    assert pipeline.stage("trial_request").exit.condition.test({"trial_result": "positive"})


# --- locked mode ------------------------------------------------------------------------------------------


def test_locked_pipeline_refuses_a_transition_it_does_not_list(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, **READY["initial_contact"])
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "signed", clock=clock)
    (error,) = caught.value.errors
    assert error["path"] == "/to_stage"
    assert error["message"] == (
        "Hospital direct sales is locked: from First contact a deal may move only to Needs confirmed, Lost, "
        "not to Signed."
    )
    assert (
        error["message_zh"] == "医院直销流程为锁定流程：商机只能从初步接触移到需求确认、丢单，不能移到签单。"
    )
    assert session.get(Deal, deal.id).stage_key == "initial_contact" and signals() == []


def test_unmet_exit_criteria_are_listed_by_name(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1)
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "needs_confirmed", clock=clock)
    messages = [e["message"] for e in caught.value.errors]
    assert messages[:2] == [
        "Exit criterion not met: Product line",
        "Exit criterion not met: First real conversation",
    ]
    assert "waive" in messages[2] and "approver" in messages[2]
    assert _paths(caught.value) == [
        "/criteria/field/product_line",
        "/criteria/key_node/first_contact",
        "/waive",
    ]
    assert caught.value.errors[1]["message_zh"] == "未满足退出条件：首次有效沟通"
    assert session.get(Deal, deal.id).stage_key == "initial_contact"


def test_meeting_the_criteria_moves_the_deal_with_timeline_audit_and_signal(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, **READY["initial_contact"])
    _tick(session, clock, md.rep_a1, deal, "first_contact", kind="call")
    clock.advance(hours=2)
    result = move_deal(
        session, md.rep_a1, deal.id, "needs_confirmed", from_stage="initial_contact", clock=clock
    )
    assert result.moved and result.approval is None and result.waived == ()
    assert [c.met for c in result.criteria] == [True, True]
    deal = session.get(Deal, deal.id)
    assert (deal.stage_key, deal.stage_entered_at, deal.status) == ("needs_confirmed", clock.now(), "open")
    (event,) = _events(session, "deal.stage_change", deal)
    assert event.actor_id == md.rep_a1.id and event.at == clock.now()
    assert event.payload["from_stage"] == "initial_contact" and event.payload["to_stage"] == "needs_confirmed"
    assert event.payload["criteria_met"] == [
        "/criteria/field/product_line",
        "/criteria/key_node/first_contact",
    ]
    assert event.payload["criteria_waived"] == [] and event.payload["approval_id"] is None
    activity = session.scalars(
        select(Activity).where(Activity.deal_id == deal.id, Activity.kind == "stage_change")
    ).one()
    assert activity.data["to_label"] == {"en": "Needs confirmed", "zh": "需求确认"}
    assert activity.actor_id == md.rep_a1.id
    assert signals() == [(deal.id, "initial_contact", "needs_confirmed", md.rep_a1.id)]
    assert verify_chain(session) is None


def test_the_stage_condition_is_a_criterion(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "trial_request", trial_start_date="2026-01-10", trial_result="negative")
    status = {
        c.kind: c
        for c in exit_status(session, deal, pipeline_for(session, deal.pipeline_version_id), now=clock.now())
    }
    assert status["condition"].label["en"] == "The trial ran and was not judged negative."
    assert not status["condition"].met and status["field"].met
    deal.data = {**deal.data, "trial_result": "positive"}
    status = {
        c.kind: c
        for c in exit_status(session, deal, pipeline_for(session, deal.pipeline_version_id), now=clock.now())
    }
    assert status["condition"].met


def test_skip_waits_for_approval_then_moves_as_the_approvers_move(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed", **READY["needs_confirmed"])
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "contract_negotiation", clock=clock)
    assert _paths(caught.value) == ["/reason"]  # the approver reads why
    result = move_deal(
        session,
        md.rep_a1,
        deal.id,
        "contract_negotiation",
        reason="Repeat purchase of the same model",
        clock=clock,
    )
    assert not result.moved and result.approval is not None
    request = result.approval
    assert (request.kind, request.status, request.approver_id) == ("skip_stage", "pending", md.lead_a.id)
    assert [u["key"] for u in request.payload["unmet"]] == ["needs_assessment", "decision_chain"]
    assert session.get(Deal, deal.id).stage_key == "needs_confirmed" and signals() == []
    (asked,) = _events(session, "deal.move_requested", deal)
    assert asked.payload["approval_id"] == request.id

    with pytest.raises(RecordError, match="waits for approval already"):
        move_deal(session, md.rep_a1, deal.id, "contract_negotiation", reason="again", clock=clock)

    clock.advance(hours=1)
    decide_approval(
        session, md.lead_a, request.id, approve=True, note="Fine: same model as 2024", clock=clock
    )
    deal = session.get(Deal, deal.id)
    assert (deal.stage_key, deal.stage_entered_at) == ("contract_negotiation", clock.now())
    (event,) = _events(session, "deal.stage_change", deal)
    assert event.actor_id == md.lead_a.id  # applied as the approver's move
    assert event.payload["approval_id"] == request.id and event.payload["requested_by_id"] == md.rep_a1.id
    assert event.payload["criteria_waived"] == [
        "/criteria/key_node/needs_assessment",
        "/criteria/key_node/decision_chain",
    ]
    assert request.status == "approved" and request.decided_by_id == md.lead_a.id
    assert signals() == [(deal.id, "needs_confirmed", "contract_negotiation", md.lead_a.id)]


def test_a_rejected_skip_leaves_the_deal_where_it_was(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    request = move_deal(
        session, md.rep_a1, deal.id, "contract_negotiation", reason="No trial needed", clock=clock
    ).approval
    with pytest.raises(RecordError) as caught:
        decide_approval(session, md.lead_a, request.id, approve=False, clock=clock)
    assert _paths(caught.value) == ["/note"]
    decide_approval(session, md.lead_a, request.id, approve=False, note="Run the trial first", clock=clock)
    assert session.get(Deal, deal.id).stage_key == "solution_demo"
    assert request.status == "rejected" and request.decision_note == "Run the trial first"
    assert _events(session, "deal.stage_change", deal) == [] and signals() == []
    with pytest.raises(RecordError, match="already"):
        decide_approval(session, md.lead_a, request.id, approve=True, clock=clock)


def test_locked_waiver_of_unmet_criteria_needs_the_approver(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, **READY["initial_contact"])
    result = move_deal(
        session, md.rep_a1, deal.id, "needs_confirmed", waive=True, reason="Met at the congress", clock=clock
    )
    assert not result.moved and result.approval.kind == "waive_criteria"
    assert result.approval.payload["unmet"][0]["label"]["en"] == "First real conversation"
    decide_approval(session, md.lead_a, result.approval.id, approve=True, clock=clock)
    assert session.get(Deal, deal.id).stage_key == "needs_confirmed"
    (event,) = _events(session, "deal.stage_change", deal)
    assert event.payload["criteria_waived"] == ["/criteria/key_node/first_contact"]
    assert event.payload["criteria_met"] == ["/criteria/field/product_line"]


def test_a_direct_move_expires_a_waiting_request(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    request = move_deal(
        session, md.rep_a1, deal.id, "contract_negotiation", reason="skip", clock=clock
    ).approval
    move_deal(session, md.rep_a1, deal.id, "lost", reason="Budget cut", clock=clock)
    assert request.status == "expired"
    with pytest.raises(RecordError, match="already"):
        decide_approval(session, md.lead_a, request.id, approve=True, clock=clock)
    assert session.get(Deal, deal.id).stage_key == "lost"


def test_a_move_back_needs_no_criteria(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "trial_request")
    result = move_deal(session, md.rep_a1, deal.id, "solution_demo", clock=clock)
    assert result.moved and result.criteria == ()


# --- free mode ----------------------------------------------------------------------------------------


def test_free_pipeline_moves_anywhere_and_the_mover_waives_with_a_reason(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, free_mode=True)
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "trial_request", clock=clock)
    assert "/waive" in _paths(caught.value) and "Exit criterion not met: Product line" in str(caught.value)
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "trial_request", waive=True, clock=clock)
    assert _paths(caught.value) == ["/reason"]
    result = move_deal(
        session, md.rep_a1, deal.id, "trial_request", waive=True, reason="Existing customer", clock=clock
    )
    assert result.moved and result.approval is None
    assert result.waived == ("/criteria/field/product_line", "/criteria/key_node/first_contact")
    (event,) = _events(session, "deal.stage_change", deal)
    assert event.payload["reason"] == "Existing customer"
    assert event.payload["criteria_waived"] == list(result.waived)
    activity = session.scalars(
        select(Activity).where(Activity.deal_id == deal.id, Activity.kind == "stage_change")
    ).one()
    assert activity.summary == "Existing customer" and len(activity.data["waived"]) == 2


def test_free_pipeline_lets_any_activity_be_logged(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, free_mode=True)
    assert log_activity(session, md.rep_a1, kind="meeting", deal_id=deal.id, clock=clock).kind == "meeting"


# --- closing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "status"), [("signed", "won"), ("lost", "lost")])
def test_won_and_lost_stages_close_the_deal(
    session: Any, clock: Any, md: SimpleNamespace, target: str, status: str
) -> None:
    deal = md.deal(md.rep_a1, "contract_negotiation", **READY["contract_negotiation"])
    _tick(session, clock, md.rep_a1, deal, "budget_approval", "commercial_terms")
    clock.advance(days=1)
    move_deal(session, md.rep_a1, deal.id, target, reason="Tender result", clock=clock)
    deal = session.get(Deal, deal.id)
    assert (deal.status, deal.closed_at, deal.stage_key) == (status, clock.now(), target)
    assert _events(session, "deal.stage_change", deal)[0].payload["status"] == status


def test_reopening_a_lost_deal_needs_approval_and_reopens_it(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    move_deal(session, md.rep_a1, deal.id, "lost", clock=clock)
    request = move_deal(
        session, md.rep_a1, deal.id, "initial_contact", reason="New budget", clock=clock
    ).approval
    assert request.kind == "transition"
    decide_approval(session, md.lead_a, request.id, approve=True, clock=clock)
    deal = session.get(Deal, deal.id)
    assert (deal.stage_key, deal.status, deal.closed_at) == ("initial_contact", "open", None)


# --- concurrency, signals, creation ---------------------------------------------------------------------


def test_a_move_from_a_stale_stage_is_a_conflict(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    move_deal(session, md.lead_a, deal.id, "lost", from_stage="needs_confirmed", clock=clock)
    with pytest.raises(StaleStage) as caught:
        move_deal(session, md.rep_a1, deal.id, "solution_demo", from_stage="needs_confirmed", clock=clock)
    assert caught.value.status == 409
    assert caught.value.errors[0]["message"] == (
        "Someone moved this deal meanwhile: it is in Lost now. Look again and retry."
    )
    assert caught.value.errors[0]["message_zh"].startswith("有人刚刚移动了这个商机：它现在处于丢单阶段")


def test_signal_receivers_run_once_per_entry(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    move_deal(session, md.rep_a1, deal.id, "lost", clock=clock)
    request = move_deal(session, md.rep_a1, deal.id, "initial_contact", reason="back", clock=clock).approval
    decide_approval(session, md.lead_a, request.id, approve=True, clock=clock)
    assert signals() == [
        (deal.id, "solution_demo", "lost", md.rep_a1.id),
        (deal.id, "lost", "initial_contact", md.lead_a.id),
    ]


def test_creating_a_deal_sends_the_signal_for_its_initial_stage(
    session: Any, clock: Any, md: SimpleNamespace, make_customer: Any
) -> None:
    customer = make_customer(owner=md.rep_a1)
    deal = create_deal(session, md.rep_a1, customer_id=customer.id, pipeline_key="md-sales", clock=clock)
    assert deal.stage_key == "initial_contact"
    assert signals() == [(deal.id, None, "initial_contact", md.rep_a1.id)]


def test_converting_a_lead_sends_the_signal_for_the_new_deal(
    session: Any, clock: Any, md: SimpleNamespace, make_lead: Any
) -> None:
    rep = md.rep_a1
    lead = make_lead(
        name="Wang", institution="Ruijin", status="qualified", owner_id=rep.id, team_id=rep.team_id
    )
    deal = convert_lead(session, md.rep_a1, lead.id, deal={"pipeline_key": "md-sales"}, clock=clock).deal
    assert signals() == [(deal.id, None, "initial_contact", md.rep_a1.id)]


def test_a_rep_cannot_move_someone_elses_deal(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_b1, "solution_demo")
    with pytest.raises(NotFound):
        move_deal(session, md.rep_a1, deal.id, "lost", clock=clock)


def test_bad_input_names_the_field(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1)
    with pytest.raises(RecordError) as caught:
        move_deal(session, md.rep_a1, deal.id, "nowhere", reason="x" * 2001, clock=clock)
    assert _paths(caught.value) == ["/reason", "/to_stage"]
    with pytest.raises(RecordError, match="in this stage already"):
        move_deal(session, md.rep_a1, deal.id, "initial_contact", clock=clock)


# --- planned actions and key nodes ------------------------------------------------------------------------


def test_a_locked_stage_refuses_unplanned_actions(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1)
    with pytest.raises(RecordError) as caught:
        log_activity(session, md.rep_a1, kind="meeting", deal_id=deal.id, clock=clock)
    (error,) = caught.value.errors
    assert error["path"] == "/kind"
    assert error["message"] == (
        "First contact is a locked stage: log one of its planned actions "
        "(Call, Visit, E-mail, Message, Material sent, Note)."
    )
    assert "初步接触" in error["message_zh"]
    assert log_activity(session, md.rep_a1, kind="visit", deal_id=deal.id, clock=clock).kind == "visit"


def test_a_key_node_needs_evidence_in_the_stage(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    log_activity(
        session,
        md.rep_a1,
        kind="meeting",
        deal_id=deal.id,
        clock=clock,
        occurred_at=clock.now() - timedelta(days=1),
    )
    with pytest.raises(RecordError) as caught:
        complete_key_node(session, md.rep_a1, deal.id, "product_demo", clock=clock)
    assert caught.value.errors[0]["message"] == (
        "Log Meeting, Visit for this deal in this stage first: "
        "that is the evidence for Product demonstration."
    )
    with pytest.raises(RecordError, match="not a key node"):
        complete_key_node(session, md.rep_a1, deal.id, "first_contact", clock=clock)
    meeting = log_activity(session, md.rep_a1, kind="meeting", deal_id=deal.id, clock=clock)
    done = complete_key_node(session, md.rep_a1, deal.id, "product_demo", clock=clock)
    assert (done.activity_id, done.stage_key, done.done_by_id) == (meeting.id, "solution_demo", md.rep_a1.id)
    assert complete_key_node(session, md.rep_a1, deal.id, "product_demo", clock=clock).id == done.id
    assert _events(session, "deal.key_node", deal)[0].payload["node"] == "product_demo"


def test_required_activities_count_only_in_the_stage(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "solution_demo")
    pipeline = pipeline_for(session, deal.pipeline_version_id)
    status = {c.kind: c for c in exit_status(session, deal, pipeline, now=clock.now())}
    assert (status["activity"].have, status["activity"].need, status["activity"].met) == (0, 1, False)
    assert status["activity"].label["zh"] == "已发送成功案例"
    log_activity(session, md.rep_a1, kind="material_sent", deal_id=deal.id, clock=clock)
    status = {c.kind: c for c in exit_status(session, deal, pipeline, now=clock.now())}
    assert status["activity"].met


# --- measured -------------------------------------------------------------------------------------------


def test_a_move_costs_a_bounded_number_of_statements(
    session: Any, clock: Any, md: SimpleNamespace, runtime: Any, make_activity: Any, monkeypatch: Any
) -> None:
    def measured(history: int) -> int:
        deal = md.deal(md.rep_a1, "solution_demo")
        _tick(session, clock, md.rep_a1, deal, "product_demo", "technical_qa")
        log_activity(session, md.rep_a1, kind="material_sent", deal_id=deal.id, clock=clock)
        for i in range(history):
            make_activity(deal=deal, kind="call", occurred_at=clock.now() - timedelta(minutes=i))
        session.commit()
        with count_statements(runtime) as seen:
            move_deal(session, md.rep_a1, deal.id, "trial_request", from_stage="solution_demo", clock=clock)
        session.commit()
        return len(seen)

    few, many = measured(2), measured(200)
    assert few == many, f"{few} statements with 2 activities, {many} with 200"
    # The move's own cost, without what the signal's receivers (action packs, lights) add to it.
    monkeypatch.setattr(stage_signals, "_receivers", {})
    assert measured(2) <= 9
