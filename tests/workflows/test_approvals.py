"""Approval requests: who sees and decides them (a lead their team's, ops all, a rep only their own and
never decides), self-requests, the deadline on the working calendar and what the deadline timer does
(escalate and tell ops, approve as the system, reject as expired) — never before the deadline — and the
notifications; a concurrent second decision on PostgreSQL is a 409."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.jobs import load_task_modules
from salesmesh.platform.notifications import Notification, render
from salesmesh.platform.sweeper import sweep_once
from salesmesh.platform.timers import Timer
from salesmesh.workflows.approval_models import ApprovalRequest
from salesmesh.workflows.approvals import (
    DecisionConflict,
    can_decide,
    decide_approval,
    list_approvals,
    missing_settlers,
)
from salesmesh.workflows.models import Deal
from salesmesh.workflows.pipelines import move_deal
from salesmesh.workflows.record_values import RecordError
from tests.workflows.conftest import publish
from tests.workflows.page_helpers import fresh, shipped
from tests.workflows.pipeline_helpers import build_md, md_world, signals


@pytest.fixture
def md(session: Any, clock: Any) -> SimpleNamespace:
    return md_world(session, clock)


def _skip(session: Any, clock: Any, actor: Any, deal: Deal) -> ApprovalRequest:
    result = move_deal(session, actor, deal.id, "contract_negotiation", reason="Repeat order", clock=clock)
    assert result.approval is not None
    return result.approval


def _notified(session: Any, kind: str) -> list[int]:
    session.flush()
    return sorted(session.scalars(select(Notification.user_id).where(Notification.kind == kind)))


def test_every_approval_kind_has_a_settler_once_the_task_modules_are_loaded() -> None:
    load_task_modules()  # what every worker, scheduler and web process does at start-up
    assert missing_settlers() == []


def test_a_team_lead_sees_only_their_teams_requests(session: Any, clock: Any, md: SimpleNamespace) -> None:
    ours = _skip(session, clock, md.rep_a1, md.deal(md.rep_a1, "needs_confirmed"))
    theirs = _skip(session, clock, md.rep_b1, md.deal(md.rep_b1, "needs_confirmed"))
    names = ("lead_a", "lead_b", "ops", "admin", "rep_a1", "rep_a2", "rep_b1")
    seen = {name: [r.id for r in list_approvals(session, getattr(md, name))] for name in names}
    assert seen == {
        "lead_a": [ours.id],
        "lead_b": [theirs.id],
        "ops": [ours.id, theirs.id],
        "admin": [ours.id, theirs.id],
        "rep_a1": [ours.id],
        "rep_a2": [],
        "rep_b1": [theirs.id],
    }
    assert (ours.approver_id, theirs.approver_id) == (md.lead_a.id, md.lead_b.id)
    assert _notified(session, "approval.requested") == sorted([md.lead_a.id, md.lead_b.id])


def test_a_rep_cannot_decide(session: Any, clock: Any, md: SimpleNamespace) -> None:
    request = _skip(session, clock, md.rep_a1, md.deal(md.rep_a1, "needs_confirmed"))
    with pytest.raises(Forbidden):  # their own request: visible, not theirs to decide
        decide_approval(session, md.rep_a1, request.id, approve=True, clock=clock)
    for outsider in (md.rep_a2, md.lead_b, md.rep_b1):
        with pytest.raises(NotFound):
            decide_approval(session, outsider, request.id, approve=True, clock=clock)
    assert (
        not can_decide(md.rep_a1, request) and can_decide(md.lead_a, request) and can_decide(md.ops, request)
    )
    assert request.status == "pending"


def test_a_lead_asking_for_their_own_team_goes_to_ops(session: Any, clock: Any, md: SimpleNamespace) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    request = _skip(session, clock, md.lead_a, deal)
    assert (request.approver_role, request.approver_id) == ("ops", None)
    assert _notified(session, "approval.requested") == [md.ops.id]
    with pytest.raises(Forbidden):
        decide_approval(session, md.lead_a, request.id, approve=True, clock=clock)
    decide_approval(session, md.ops, request.id, approve=True, clock=clock)
    assert session.get(Deal, deal.id).stage_key == "contract_negotiation"
    assert _notified(session, "approval.decided") == [md.lead_a.id]


def test_an_inactive_team_lead_leaves_the_decision_to_ops(
    session: Any, clock: Any, md: SimpleNamespace
) -> None:
    md.lead_a.active = False
    request = _skip(session, clock, md.rep_a1, md.deal(md.rep_a1, "needs_confirmed"))
    assert (request.approver_role, request.approver_id) == ("ops", None)


def test_nobody_but_an_admin_decides_their_own_request(session: Any, clock: Any, md: SimpleNamespace) -> None:
    request = _skip(session, clock, md.ops, md.deal(md.rep_a1, "needs_confirmed"))
    assert request.approver_id == md.lead_a.id  # ops asking: the team lead decides
    with pytest.raises(RecordError, match="your own request"):
        decide_approval(session, md.ops, request.id, approve=True, clock=clock)
    other = _skip(session, clock, md.admin, md.deal(md.rep_a1, "needs_confirmed"))
    decide_approval(session, md.admin, other.id, approve=False, note="Changed my mind", clock=clock)
    assert other.status == "rejected"


def test_the_deadline_counts_working_hours_and_escalates_after_it(
    session: Any, clock: Any, runtime: Any, md: SimpleNamespace
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed")
    request = _skip(session, clock, md.rep_a1, deal)
    # Monday 17:00 Beijing + 24 working hours (09:00-18:00 on weekdays) = Thursday 14:00 Beijing.
    assert clock.now() == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert request.deadline_at == datetime(2026, 1, 8, 6, 0, tzinfo=UTC)
    asked = session.scalars(select(Notification).where(Notification.kind == "approval.requested")).one()
    assert (asked.user_id, render(asked, "en").path) == (md.lead_a.id, f"/approvals#approval-{request.id}")
    assert render(asked, "en").title == f"Approval requested: Skip stages for {deal.name}"
    assert render(asked, "en").body == "rep_a1 asks for your decision by 2026-01-08 14:00."  # Beijing time
    assert render(asked, "zh").title == f"待审批：{deal.name} 的跳过阶段"
    timer = session.scalars(select(Timer).where(Timer.kind == "approvals.deadline")).one()
    assert (timer.due_at, timer.subject_id) == (request.deadline_at, request.id)
    session.commit()

    clock.set(request.deadline_at - timedelta(seconds=1))
    assert sweep_once(runtime, owner="t") == 0
    assert fresh(session, request).status == "pending"

    clock.set(request.deadline_at)
    assert sweep_once(runtime, owner="t") == 1
    request = fresh(session, request)
    assert (request.status, request.escalated_at) == ("escalated", request.deadline_at)
    assert _notified(session, "approval.escalated") == [md.ops.id]
    told = session.scalars(select(Notification).where(Notification.kind == "approval.escalated")).one()
    assert render(told, "zh").title == f"已升级：{deal.name} 的跳过阶段已超过审批时限"
    assert render(told, "en").body == "lead_a did not decide in time; sales operations can decide now."
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "approval.escalate")).one()
    assert event.payload["notified"] == [md.ops.id]
    assert session.get(Deal, deal.id).stage_key == "needs_confirmed"

    clock.advance(days=3)
    assert sweep_once(runtime, owner="t") == 0  # escalated once; the timer is done
    decide_approval(session, md.ops, request.id, approve=True, clock=clock)  # still open for ops
    assert session.get(Deal, deal.id).stage_key == "contract_negotiation"


def _auto(session: Any, clock: Any, on_deadline: str) -> Any:
    doc = copy.deepcopy(shipped("pipeline.json"))
    doc.update(key=f"md-{on_deadline}", approvals={"deadline_hours": 2, "on_deadline": on_deadline})
    doc.pop("calendar")
    return publish(session, clock, doc)


@pytest.mark.parametrize(
    ("on_deadline", "status", "stage"),
    [("approve", "approved", "contract_negotiation"), ("reject", "expired", "needs_confirmed")],
)
def test_the_deadline_can_approve_or_reject_as_the_system(
    session: Any, clock: Any, runtime: Any, md: SimpleNamespace, on_deadline: str, status: str, stage: str
) -> None:
    deal = md.deal(md.rep_a1, "needs_confirmed", version=_auto(session, clock, on_deadline))
    request = _skip(session, clock, md.rep_a1, deal)
    assert request.deadline_at == clock.now() + timedelta(hours=2)  # no calendar: wall-clock hours
    session.commit()
    clock.advance(hours=1, minutes=59)
    assert sweep_once(runtime, owner="t") == 0
    clock.advance(minutes=1)
    assert sweep_once(runtime, owner="t") == 1
    request = fresh(session, request)
    assert (request.status, request.decided_by_id, request.decided_at) == (status, None, clock.now())
    assert session.get(Deal, deal.id).stage_key == stage
    if status == "approved":
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "deal.stage_change")).one()
        assert (event.actor_id, event.payload["approval_id"]) == (None, request.id)
        assert signals()[-1] == (deal.id, "needs_confirmed", "contract_negotiation", None)
    assert _notified(session, "approval.decided") == [md.rep_a1.id]


def test_a_decision_conflicts_with_a_concurrent_one_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    first, second = pg_runtime.db.Session(), pg_runtime.db.Session()
    try:
        world = build_md(first, clock)
        deal = world.deal(world.rep_a1, "needs_confirmed")
        request = _skip(first, clock, world.rep_a1, deal)
        first.commit()
        lead_a, ops = first.get(type(world.lead_a), world.lead_a.id), world.ops.id
        stale = second.get(ApprovalRequest, request.id)  # second reads it while it is pending
        assert stale.status == "pending"
        decide_approval(first, lead_a, request.id, approve=False, note="No", clock=clock)
        first.commit()
        ops_user = second.get(type(world.ops), ops)
        with pytest.raises(DecisionConflict) as caught:
            decide_approval(second, ops_user, request.id, approve=True, clock=clock)
        assert caught.value.status == 409
        second.rollback()
        assert second.get(Deal, deal.id).stage_key == "needs_confirmed"
    finally:
        first.close()
        second.close()


def test_a_move_from_a_stale_stage_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    from salesmesh.workflows.pipelines import StaleStage

    first, second = pg_runtime.db.Session(), pg_runtime.db.Session()
    try:
        world = build_md(first, clock)
        deal = world.deal(world.rep_a1, "needs_confirmed")
        first.commit()
        rep = second.get(type(world.rep_a1), world.rep_a1.id)
        assert second.get(Deal, deal.id).stage_key == "needs_confirmed"  # second sees the old stage
        move_deal(first, first.get(type(rep), rep.id), deal.id, "lost", clock=clock)
        first.commit()
        with pytest.raises(StaleStage):
            move_deal(second, rep, deal.id, "solution_demo", from_stage="needs_confirmed", clock=clock)
        second.rollback()
        assert second.get(Deal, deal.id).stage_key == "lost"
    finally:
        first.close()
        second.close()
