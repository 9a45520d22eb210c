"""First-response SLA: deadlines on the working calendar, the owner told at assignment (one row, one
statement), the clock ended by the first contact, and the breach sweep (escalate once, reassign with a
fresh deadline up to `max_reassignments`, settle what no longer applies), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.jobs import run_job
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import Notification, render
from salesmesh.platform.periodic import PERIODIC_JOBS, run_due_periodic
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.calendars import WorkingCalendar
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing import current_plan, route_lead
from salesmesh.workflows.sla import SlaPolicy, compile_sla
from salesmesh.workflows.sla_sweep import SWEEP_JOB
from tests.workflows.intake_helpers import LEAD_FORM, payload
from tests.workflows.routing_helpers import (
    MD_PACK,
    TERTIARY,
    add_lead,
    add_rep,
    add_team,
    counting,
    import_pack,
    publish,
    routing_doc,
    rule,
)

CST = timedelta(hours=8)  # Asia/Shanghai, the shipped calendars' zone (no daylight saving)
MD_CALENDAR = json.loads((MD_PACK / "definitions" / "calendar.json").read_text(encoding="utf-8"))


def beijing(*args: int) -> datetime:
    """Return the aware UTC moment of a Beijing wall-clock time."""
    return datetime(*args, tzinfo=UTC) - CST


def _sla(**overrides: Any) -> dict[str, Any]:
    sla = {
        "minutes": 30,
        "calendar": "md-workweek",
        "on_breach": "escalate",
        "escalate_to": "team_lead",
        **overrides,
    }
    if sla["on_breach"] == "reassign":
        sla.pop(
            "escalate_to"
        )  # only an escalating SLA names whom; a reassigning one falls back to the team lead
    return sla


def _world(session: Session, clock: FrozenClock, reps: int = 3, **sla: Any) -> dict[str, Any]:
    """The md working calendar, a round-robin routing with a 30-minute SLA, a team with a lead, reps, ops."""
    publish(session, clock, MD_CALENDAR)
    publish(session, clock, routing_doc([rule("everyone", True)], first_response_sla=_sla(**sla)))
    team = add_team(session, clock, "east")
    head = add_rep(session, clock, "Team Lead", team=team, role="lead")
    team.lead_id = head.id
    people = {f"rep{i}": add_rep(session, clock, f"Rep {i}", team=team) for i in range(reps)}
    people["ops"] = add_rep(session, clock, "Ops Person", role="ops")
    session.flush()
    return {"team": team, "head": head, **people}


def _notes(session: Session, user_id: int | None = None, kind: str | None = None) -> list[Notification]:
    stmt = select(Notification).order_by(Notification.id)
    if user_id is not None:
        stmt = stmt.where(Notification.user_id == user_id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    return list(session.scalars(stmt))


def _fresh(session: Session) -> None:
    """End the test session's read snapshot and forget its rows: see what the sweep committed."""
    session.rollback()
    session.expire_all()


def _sweep(runtime: Runtime) -> dict[str, Any]:
    return run_job(runtime, SWEEP_JOB, [])


# --- deadlines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assigned", "due"),
    [
        (beijing(2026, 3, 13, 17, 50), beijing(2026, 3, 16, 9, 20)),  # Friday evening -> Monday morning
        (beijing(2026, 3, 14, 11, 0), beijing(2026, 3, 16, 9, 30)),  # Saturday -> Monday
        (beijing(2026, 3, 16, 7, 0), beijing(2026, 3, 16, 9, 30)),  # before hours -> the same morning
        (beijing(2026, 3, 16, 10, 0), beijing(2026, 3, 16, 10, 30)),  # inside hours
        (beijing(2026, 9, 30, 17, 50), beijing(2026, 10, 8, 9, 20)),  # National Day holidays skipped
        (beijing(2026, 10, 9, 17, 50), beijing(2026, 10, 10, 9, 20)),  # a make-up Saturday counts
    ],
)
def test_deadline_counts_working_minutes_on_the_calendar(assigned: datetime, due: datetime) -> None:
    policy = compile_sla(_sla(), WorkingCalendar.from_document(MD_CALENDAR))
    assert policy is not None and policy.deadline(assigned) == due


def test_deadline_without_a_calendar_counts_wall_clock_minutes() -> None:
    policy = compile_sla({"minutes": 45, "on_breach": "reassign"}, None)
    assert policy == SlaPolicy(45, "reassign", "team_lead", 1, None, None)
    friday = beijing(2026, 3, 13, 17, 50)
    assert policy.deadline(friday) == friday + timedelta(minutes=45)
    named_but_missing = compile_sla(_sla(), None)  # the named calendar is not published
    assert named_but_missing is not None and named_but_missing.deadline(friday) == friday + timedelta(
        minutes=30
    )
    assert compile_sla(None, None) is None


def test_the_plan_compiles_its_sla_once(session: Session, clock: FrozenClock) -> None:
    _world(session, clock)
    plan = current_plan(session)
    assert plan.sla is not None and plan.sla.calendar is not None and plan.sla.calendar.key == "md-workweek"
    assert current_plan(session) is plan  # cached with the plan: nothing read per intake


# --- at assignment -------------------------------------------------------------------------------------


def test_assignment_sets_the_deadline_and_tells_the_owner_once(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    clock.set(beijing(2026, 3, 13, 17, 50))
    _world(session, clock)
    route_lead(session, add_lead(session, clock, TERTIARY), clock=clock)  # warm the plan and the cursor
    lead = add_lead(session, clock, TERTIARY)
    with counting(runtime.db.engine) as statements:
        decision = route_lead(session, lead, clock=clock)
    assert decision.outcome == "assigned" and lead.owner_id == decision.owner_id
    assert lead.sla_due_at == beijing(2026, 3, 16, 9, 20) and lead.sla_state == "pending"
    (note,) = _notes(session, subject_id := lead.owner_id)
    assert subject_id is not None
    assert (note.kind, note.subject_type, note.subject_id, note.read_at) == (
        "lead.assigned",
        "lead",
        lead.id,
        None,
    )
    assert render(note, "en").body == "Please make the first contact by 2026-03-16 09:20."
    touching = [s for s in statements if "notifications" in s]
    assert len(touching) == 1 and touching[0].startswith("INSERT INTO notifications")
    lead_writes = [s for s in statements if s.startswith("UPDATE leads")]
    assert len(lead_writes) == 1 and "sla_due_at" in lead_writes[0]  # the deadline rides the owner's UPDATE


def test_an_intake_writes_the_deadline_with_the_lead_insert(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    _world(session, clock)
    publish(session, clock, LEAD_FORM)
    session.commit()
    intake_lead(
        session, channel="hotline", payload=payload(phone="13700000000", email="w@x.com"), clock=clock
    )
    with counting(runtime.db.engine) as statements:
        result = intake_lead(session, channel="hotline", payload=payload(), clock=clock)
    lead = result.lead
    assert lead.sla_state == "pending" and lead.sla_due_at == clock.now() + timedelta(minutes=30)
    assert not [s for s in statements if s.startswith("UPDATE leads")]  # no UPDATE for the deadline
    assert len([s for s in statements if "notifications" in s]) == 1
    assert [(n.user_id, n.subject_id) for n in _notes(session, kind="lead.assigned")][-1] == (
        lead.owner_id,
        lead.id,
    )


def test_the_medical_device_pack_gives_thirty_working_minutes(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    team = add_team(session, clock, "east")
    rep = add_rep(session, clock, "Wang Senior", team=team, years_medical=8, seniority="senior")
    clock.set(beijing(2026, 3, 13, 17, 50))  # a Friday, ten minutes before the office closes
    decision = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock)
    assert decision.owner_id == rep.id
    assert decision.lead.sla_due_at == beijing(2026, 3, 16, 9, 20)
    plan = current_plan(session)
    assert plan.sla is not None and (plan.sla.on_breach, plan.sla.escalate_to) == ("escalate", "team_lead")


def test_pooled_leads_have_no_clock(session: Session, clock: FrozenClock) -> None:
    publish(session, clock, MD_CALENDAR)
    doc = routing_doc([rule("pool", True, strategy="pool", pool="open")], first_response_sla=_sla())
    publish(session, clock, doc)
    lead = add_lead(session, clock, TERTIARY)
    decision = route_lead(session, lead, clock=clock)
    assert decision.outcome == "pooled" and lead.sla_state is None and lead.sla_due_at is None
    assert _notes(session) == []


# --- the first contact -------------------------------------------------------------------------------


def test_first_contact_in_time_meets_the_sla_and_late_contact_is_overdue(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock)
    on_time = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    late = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    clock.advance(minutes=29)
    owner = session.get(User, on_time.owner_id)
    log_activity(session, owner, kind="note", lead_id=on_time.id, clock=clock)  # not a contact
    assert on_time.sla_state == "pending"
    log_activity(session, owner, kind="call", lead_id=on_time.id, clock=clock)
    assert on_time.sla_state == "met"
    clock.advance(minutes=2)  # the sweep has not run yet when the late call is logged
    log_activity(session, session.get(User, late.owner_id), kind="visit", lead_id=late.id, clock=clock)
    assert late.sla_state == "breached"
    session.commit()
    assert _sweep(runtime)["escalated"] == 0  # contacted, late or not: nobody is escalated
    assert _notes(session, people["head"].id) == []
    audit = session.scalars(select(AuditEvent.payload).where(AuditEvent.action == "activity.log")).all()
    assert [p.get("sla_state") for p in audit if "sla_state" in p] == ["met", "breached"]


# --- the breach sweep ---------------------------------------------------------------------------------


def test_a_breach_is_escalated_once_and_never_early(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock)
    lead = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    session.commit()
    clock.set(lead.sla_due_at - timedelta(seconds=1))  # type: ignore[operator]
    assert _sweep(runtime)["escalated"] == 0
    clock.advance(seconds=1)
    first, second = _sweep(runtime), _sweep(runtime)
    assert first["escalated"] == 1 and second == {**second, "escalated": 0, "reassigned": 0, "settled": 0}
    _fresh(session)
    assert lead.sla_state == "breached" and lead.owner_id is not None
    (alert,) = _notes(session, people["head"].id)
    assert alert.kind == "lead.sla_breached" and alert.subject_id == lead.id
    assert render(alert, "en").title == f"First-response deadline missed: {lead.name}"
    assert render(alert, "zh").body.endswith(f"负责人：{session.get(User, lead.owner_id).name}。")  # type: ignore[union-attr]
    (missed,) = _notes(session, lead.owner_id, kind="lead.sla_missed")
    assert missed.subject_id == lead.id
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.sla_breach")).all()
    assert len(events) == 1 and events[0].payload["action"] == "escalated"
    assert events[0].payload["notified"] == [people["head"].id]
    (entry,) = session.scalars(
        select(Activity).where(Activity.lead_id == lead.id, Activity.kind == "reminder")
    )
    assert entry.outcome == "sla_escalated" and entry.actor_id is None
    assert verify_chain(session) is None


def test_escalation_goes_to_ops_when_the_team_has_no_lead_or_the_owner_is_it(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock, reps=1)
    people["team"].lead_id = None
    lead = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    session.commit()
    clock.advance(minutes=31)
    assert _sweep(runtime)["escalated"] == 1
    assert [n.kind for n in _notes(session, people["ops"].id)] == ["lead.sla_breached"]
    assert _notes(session, people["head"].id) == [] and lead.owner_id == people["rep0"].id


def test_escalate_to_ops_skips_the_team_lead(runtime: Runtime, session: Session, clock: FrozenClock) -> None:
    people = _world(session, clock, escalate_to="ops")
    route_lead(session, add_lead(session, clock, TERTIARY), clock=clock)
    session.commit()
    clock.advance(minutes=31)
    _sweep(runtime)
    assert len(_notes(session, people["ops"].id)) == 1 and _notes(session, people["head"].id) == []


def test_reassign_gives_another_rep_a_fresh_deadline_then_escalates_after_the_maximum(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock, on_breach="reassign", max_reassignments=1)
    lead = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    first_owner = lead.owner_id
    session.commit()
    clock.set(beijing(2026, 1, 5, 17, 31))  # assigned at 17:00 Beijing time, due 17:30
    assert _sweep(runtime)["reassigned"] == 1
    _fresh(session)
    second_owner = lead.owner_id
    assert second_owner not in (None, first_owner)
    assert lead.sla_state == "pending"
    assert lead.sla_due_at == beijing(2026, 1, 6, 9, 1)  # 29 minutes today, 1 tomorrow morning
    assert [n.kind for n in _notes(session, second_owner)] == ["lead.assigned"]
    assert [n.kind for n in _notes(session, first_owner)] == ["lead.assigned", "lead.reassigned_away"]
    (moved,) = session.scalars(select(AuditEvent.payload).where(AuditEvent.action == "lead.sla_breach"))
    assert moved["action"] == "reassigned" and (moved["owner_id"], moved["to_owner_id"]) == (
        first_owner,
        second_owner,
    )
    assert session.scalar(select(func.count()).where(AuditEvent.action == "lead.route")) == 2
    clock.set(lead.sla_due_at)  # type: ignore[arg-type]
    assert _sweep(runtime)["escalated"] == 1  # one reassignment allowed: the second breach escalates
    _fresh(session)
    assert lead.owner_id == second_owner and lead.sla_state == "breached"
    assert [n.kind for n in _notes(session, people["head"].id)] == ["lead.sla_breached"]
    clock.advance(days=3)
    assert _sweep(runtime) == {**_sweep(runtime), "escalated": 0, "reassigned": 0}


def test_reassign_with_nobody_else_escalates_and_keeps_the_owner(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock, reps=1, on_breach="reassign", max_reassignments=3)
    lead = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    session.commit()
    clock.advance(minutes=31)
    assert _sweep(runtime)["escalated"] == 1
    _fresh(session)
    assert lead.owner_id == people["rep0"].id and lead.sla_state == "breached"
    (event,) = session.scalars(select(AuditEvent.payload).where(AuditEvent.action == "lead.sla_breach"))
    assert event["action"] == "escalated" and event["reason"] == "nobody_else"
    assert len(_notes(session, people["head"].id)) == 1


def test_one_reassignment_per_run_and_the_job_runs_again_for_the_rest(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    _world(session, clock, reps=4, on_breach="reassign")
    leads = [route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead for _ in range(3)]
    session.commit()
    clock.advance(minutes=31)
    jobs = runtime.jobs
    first = _sweep(runtime)
    assert first["reassigned"] == 1 and first["more"]
    assert jobs.backlog() == 2  # the job enqueued itself again (and the delivery) after its commit
    assert jobs.drain() >= 4  # two more sweeps, each enqueuing the next, until none is left
    _fresh(session)
    assert session.scalar(select(func.count()).where(AuditEvent.action == "lead.sla_breach")) == 3
    assert all(lead.sla_state == "pending" for lead in leads)  # each has a fresh deadline with its new owner


def test_closed_and_pooled_leads_are_settled_without_effect(
    runtime: Runtime, session: Session, clock: FrozenClock
) -> None:
    people = _world(session, clock)
    closed = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    closed.status = "disqualified"
    session.commit()
    clock.advance(minutes=31)
    assert _sweep(runtime)["settled"] == 1
    _fresh(session)
    assert closed.sla_state is None
    assert _notes(session, people["head"].id) == [] and _notes(session, people["ops"].id) == []


def test_the_periodic_job_runs_the_sweep(runtime: Runtime, session: Session, clock: FrozenClock) -> None:
    people = _world(session, clock)
    route_lead(session, add_lead(session, clock, TERTIARY), clock=clock)
    session.commit()
    clock.advance(minutes=31)
    declared = [job for job in PERIODIC_JOBS if job.name == SWEEP_JOB]
    assert declared and declared[0].every == timedelta(minutes=1)
    jobs = runtime.jobs
    assert run_due_periodic(runtime, declared) == [SWEEP_JOB]
    jobs.drain()
    assert [n.kind for n in _notes(session, people["head"].id)] == ["lead.sla_breached"]


def test_a_duplicate_intake_tells_the_original_owner_in_the_app(session: Session, clock: FrozenClock) -> None:
    _world(session, clock)
    publish(session, clock, LEAD_FORM)
    original = intake_lead(session, channel="hotline", payload=payload(), clock=clock).lead
    again = intake_lead(
        session, channel="ad_platform", payload=payload(contact_name="Dr Chen again"), clock=clock
    )
    assert not again.created
    (note,) = _notes(session, original.owner_id, kind="lead.duplicate")
    assert note.subject_id == original.id
    assert render(note, "en").body == "The same contact came in again via ad_platform (same phone number)."
    assert render(note, "zh").body == "同一联系人通过 ad_platform 再次提交（电话号码 相同）。"


# --- PostgreSQL: concurrent sweeps --------------------------------------------------------------------


@pytest.mark.services
def test_concurrent_sweeps_on_postgresql_handle_each_breach_once(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    with pg_runtime.db.session_scope() as s:
        people = _world(s, clock, reps=5)
        head = people["head"].id
        for _ in range(30):
            route_lead(s, add_lead(s, clock, TERTIARY), clock=clock)
    clock.advance(minutes=31)
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            for _ in range(5):
                run_job(pg_runtime, SWEEP_JOB, [])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with pg_runtime.db.session_scope() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.action == "lead.sla_breach")) == 30
        assert s.scalar(select(func.count()).where(Notification.user_id == head)) == 30
        assert s.scalar(select(func.count()).where(Lead.sla_state == "pending")) == 0
        assert verify_chain(s) is None
        assert s.get(Team, people["team"].id) is not None


def test_the_breach_shows_on_the_lead_timeline_in_both_languages(
    client: Any, runtime: Runtime, session: Session, clock: FrozenClock, make_user: Any
) -> None:
    from tests.platform.auth_helpers import login

    _world(session, clock)
    make_user(email="admin@example.test", role="admin")
    lead = route_lead(session, add_lead(session, clock, TERTIARY), clock=clock).lead
    session.commit()
    clock.advance(minutes=31)
    _sweep(runtime)
    login(client, "admin@example.test")
    english = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert (
        "First-response deadline missed: escalated" in english
        and "First-response deadline missed<" in english
    )
    session.execute(User.__table__.update().values(locale="zh"))
    session.commit()
    chinese = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert "首次响应超时：已上报" in chinese
