"""Action packs on durable timers: compiling packs, scheduling on stage entry (stage entry, earlier step,
date field; working calendar), nothing firing early, leaving and re-entering stages, conditions checked
at fire time, and failures (retry with the step's backoff, give up at once when retrying cannot help)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.versions import get_published
from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import GiveUp, Timer, TimerContext, schedule_timer, timer_kind
from salesmesh.workflows.action_packs import PackUnusable, compile_pack, dedupe_key, pack_for_version
from salesmesh.workflows.models import Activity, Deal, Task
from salesmesh.workflows.stage_signals import StageChange, send_stage_change
from tests.workflows.action_support import (
    BEIJING,
    attach_pack,
    beijing,
    count,
    effects,
    enter,
    md_world,
    steps,
    sweep_all,
)
from tests.workflows.routing_helpers import MD_PACK, SAAS_PACK, import_pack

WEDNESDAY_3PM = beijing(2026, 3, 4, 15, 0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(base_url="https://crm.example.test")


@pytest.fixture
def world(runtime: Runtime, clock: FrozenClock) -> Any:
    clock.set(WEDNESDAY_3PM)
    with runtime.db.session_scope() as s:
        w = md_world(s, clock)
        return {"deal": w.deal.id, "rep": w.rep.id, "lead": w.lead.id, "contact": w.contact.id}


def _enter(runtime: Runtime, deal_id: int, stage: str, at: Any) -> None:
    with runtime.db.session_scope() as s:
        enter(s, s.get(Deal, deal_id), stage, at)


def _steps(runtime: Runtime, deal_id: int) -> dict[str, Timer]:
    with runtime.db.session_scope() as s:
        return steps(s, deal_id)


# --- compiling ---------------------------------------------------------------------------------------


def test_every_shipped_pack_compiles(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    import_pack(session, clock, SAAS_PACK)
    keys = ["md-first-contact", "md-needs-confirmed", "md-solution-demo", "md-trial", "md-contract"]
    for key in [*keys, "saas-first-touch", "saas-trial-nurture"]:
        version = get_published(session, "action_pack", key)
        pack = pack_for_version(session, version.id)
        assert pack.key == key and pack.steps
    demo = pack_for_version(session, get_published(session, "action_pack", "md-solution-demo").id)
    survey = demo.by_key["satisfaction_survey"]
    assert survey.kind.name == "survey_link" and survey.calendar_aware
    assert survey.offset == timedelta(hours=72) and survey.max_attempts == 5
    assert survey.backoff == timedelta(minutes=10)
    assert demo.by_key["send_case_studies"].calendar_aware is False
    assert (
        pack_for_version(session, get_published(session, "action_pack", "saas-trial-nurture").id).on_reentry
        == "resume"
    )


def _pack(**step_overrides: Any) -> dict[str, Any]:
    step = {
        "key": "hello",
        "label": {"en": "Hello", "zh": "你好"},
        "offset": {"after_hours": 1, "relative_to": "stage_entry"},
        "action": {
            "kind": "email",
            "params": {
                "to": "primary_contact",
                "subject": {"en": "Hi", "zh": "您好"},
                "body": {"en": "Dear {{ contact.name }}", "zh": "{{ contact.name }} 您好"},
            },
        },
    }
    step.update(step_overrides)
    return {
        "kind": "action_pack",
        "key": "test-pack",
        "schema_version": 1,
        "label": {"en": "Test", "zh": "测试"},
        "steps": [step],
    }


def test_a_broken_template_or_condition_names_its_json_pointer() -> None:
    broken = _pack()
    broken["steps"][0]["action"]["params"]["body"]["zh"] = "{{ contact.name }"
    with pytest.raises(PackUnusable) as caught:
        compile_pack(broken, version_id=1)
    assert [e["path"] for e in caught.value.errors] == ["/steps/0/action/params/body/zh"]
    bad_rule = _pack(when={"no_such_operator": [1]})
    with pytest.raises(PackUnusable) as caught:
        compile_pack(bad_rule, version_id=2)
    assert caught.value.errors[0]["path"].startswith("/steps/0/when")
    bad_params = _pack(action={"kind": "remind", "params": {"message": "plain text"}})
    with pytest.raises(PackUnusable) as caught:
        compile_pack(bad_params, version_id=3)
    assert caught.value.errors[0]["path"] == "/steps/0/action/params/message"


# --- scheduling and the clock -----------------------------------------------------------------------


def test_entering_solution_demo_schedules_one_timer_per_step_at_the_right_times(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _enter(runtime, world["deal"], "solution_demo", WEDNESDAY_3PM)
    timers = _steps(runtime, world["deal"])
    assert set(timers) == {"parameter_sheet", "send_case_studies", "satisfaction_survey"}
    local = {key: t.due_at.astimezone(BEIJING).replace(tzinfo=None).isoformat() for key, t in timers.items()}
    assert local == {
        "parameter_sheet": "2026-03-05T15:00:00",  # +24 h, Thursday afternoon: working time already
        "send_case_studies": "2026-03-06T15:00:00",  # +48 h, not calendar-aware
        "satisfaction_survey": "2026-03-09T09:00:00",  # +72 h = Saturday 15:00 → Monday at opening
    }
    survey = timers["satisfaction_survey"]
    assert survey.max_attempts == 5 and survey.payload["retry_backoff_seconds"] == 600
    assert survey.dedupe_key == dedupe_key(
        world["deal"], "solution_demo", WEDNESDAY_3PM, "md-solution-demo", "satisfaction_survey"
    )
    # The same signal again (a retried request) schedules nothing new.
    with runtime.db.session_scope() as s:
        change = StageChange(
            s.get(Deal, world["deal"]), "needs_confirmed", "solution_demo", WEDNESDAY_3PM, None
        )
        send_stage_change(s, change)
    with runtime.db.session_scope() as s:
        assert count(s, Timer) == 3
        scheduled = s.scalars(select(AuditEvent).where(AuditEvent.action == "action_pack.schedule")).all()
        assert [e.payload["scheduled"] for e in scheduled] == [3]


def test_the_48_hour_reminder_fires_at_48_hours_not_before(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _enter(runtime, world["deal"], "solution_demo", WEDNESDAY_3PM)
    clock.set(WEDNESDAY_3PM + timedelta(hours=47, minutes=59, seconds=59))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        assert count(s, Activity, Activity.kind == "reminder") == 0
        assert steps(s, world["deal"])["send_case_studies"].status == "pending"
    clock.set(WEDNESDAY_3PM + timedelta(hours=48))
    assert sweep_all(runtime) == 1
    with runtime.db.session_scope() as s:
        timer = steps(s, world["deal"])["send_case_studies"]
        assert timer.status == "done" and timer.fired_at == WEDNESDAY_3PM + timedelta(hours=48)
        assert effects(s, timer.id) == ["actions.remind"]
        reminder = s.scalars(select(Activity).where(Activity.kind == "reminder")).one()
        assert reminder.deal_id == world["deal"] and reminder.actor_id is None
        assert reminder.summary.startswith("请向客户发送同类医院的成功案例")  # the rep reads Chinese
        note = s.scalars(select(Notification).where(Notification.kind == "actions.reminder")).one()
        assert note.user_id == world["rep"] and note.subject_id == world["deal"]
        assert s.get(Deal, world["deal"]).last_activity_at is None  # a reminder is not an interaction


def test_a_calendar_aware_step_due_on_saturday_fires_monday_at_opening(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _enter(runtime, world["deal"], "solution_demo", WEDNESDAY_3PM)
    for moment in (beijing(2026, 3, 7, 15, 0), beijing(2026, 3, 8, 12, 0), beijing(2026, 3, 9, 8, 59, 59)):
        clock.set(moment)
        sweep_all(runtime)
        assert _steps(runtime, world["deal"])["satisfaction_survey"].status == "pending", moment
    clock.set(beijing(2026, 3, 9, 9, 0))
    sweep_all(runtime)
    survey = _steps(runtime, world["deal"])["satisfaction_survey"]
    assert survey.status == "done" and survey.fired_at == beijing(2026, 3, 9, 9, 0)


def test_calendar_aware_steps_skip_public_holidays(runtime: Runtime, clock: FrozenClock, world: Any) -> None:
    # Entering on 28 September 2026: +72 h is Thursday 1 October, National Day (1-7 October, then the
    # make-up working Saturday 10 October).
    _enter(runtime, world["deal"], "solution_demo", beijing(2026, 9, 28, 11, 0))
    survey = _steps(runtime, world["deal"])["satisfaction_survey"]
    assert survey.due_at == beijing(2026, 10, 8, 9, 0)


# --- leaving and re-entering -----------------------------------------------------------------------------


def test_leaving_the_stage_cancels_pending_steps_and_restart_schedules_them_again(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _enter(runtime, world["deal"], "solution_demo", WEDNESDAY_3PM)
    clock.set(WEDNESDAY_3PM + timedelta(hours=25))
    sweep_all(runtime)  # the parameter-sheet task is done
    _enter(runtime, world["deal"], "trial_request", clock.now())
    with runtime.db.session_scope() as s:
        statuses = {
            t.payload["step"]: t.status
            for t in s.scalars(select(Timer))
            if t.payload["pack"] == "md-solution-demo"
        }
        assert statuses == {
            "parameter_sheet": "done",
            "send_case_studies": "cancelled",
            "satisfaction_survey": "cancelled",
        }
        assert {t.payload["pack"] for t in s.scalars(select(Timer).where(Timer.status == "pending"))} == {
            "md-trial"
        }
    clock.set(WEDNESDAY_3PM + timedelta(days=10))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        assert count(s, Activity, Activity.kind == "reminder") == 0  # the cancelled 48 h reminder never fired
    back = clock.now()
    _enter(runtime, world["deal"], "solution_demo", back)  # "demonstrate again" (restart)
    with runtime.db.session_scope() as s:
        again = [
            t
            for t in s.scalars(select(Timer).where(Timer.status == "pending"))
            if t.payload["pack"] == "md-solution-demo"
        ]
        assert sorted(t.payload["step"] for t in again) == [
            "parameter_sheet",
            "satisfaction_survey",
            "send_case_studies",
        ]
        assert all(t.payload["entered_at"] == back.isoformat() for t in again)
        trial = {
            t.payload["step"]: t.status for t in s.scalars(select(Timer)) if t.payload["pack"] == "md-trial"
        }
        assert trial == {"confirm_installation": "done", "feedback_visit": "done"}  # ran during the ten days


def test_resume_schedules_only_the_steps_that_have_not_run(
    runtime: Runtime, clock: FrozenClock, session: Session, world: Any
) -> None:
    pack = _pack(
        offset={"after_hours": 1, "relative_to": "stage_entry"},
        action={"kind": "remind", "params": {"message": {"en": "One", "zh": "一"}}},
    )
    second = copy.deepcopy(pack["steps"][0])
    second.update(key="later", offset={"after_hours": 30, "relative_to": "stage_entry"})
    third = copy.deepcopy(second)
    third.update(key="chained", offset={"after_hours": 2, "relative_to": "step", "step": "later"})
    pack["steps"] += [second, third]
    pack.update(key="resume-pack", on_reentry="resume", on_exit="cancel")
    _add_pack_to_stage(runtime, clock, pack, "trial_request")
    _enter(runtime, world["deal"], "trial_request", WEDNESDAY_3PM)
    first = _steps(runtime, world["deal"])
    assert first["chained"].due_at == first["later"].due_at + timedelta(hours=2)
    clock.set(WEDNESDAY_3PM + timedelta(hours=2))
    sweep_all(runtime)
    _enter(runtime, world["deal"], "solution_demo", clock.now())
    _enter(runtime, world["deal"], "trial_request", clock.now())
    with runtime.db.session_scope() as s:
        rows = [t for t in s.scalars(select(Timer).order_by(Timer.id)) if t.payload["pack"] == "resume-pack"]
        assert [(t.payload["step"], t.status) for t in rows] == [
            ("hello", "done"),
            ("later", "cancelled"),
            ("chained", "cancelled"),
            ("later", "pending"),
            ("chained", "pending"),
        ]


def _add_pack_to_stage(runtime: Runtime, clock: FrozenClock, pack: dict[str, Any], stage: str) -> None:
    with runtime.db.session_scope() as s:
        attach_pack(s, clock, pack, stage)


def test_on_exit_keep_lets_steps_fire_after_the_deal_moved_on(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    pack = _pack(action={"kind": "remind", "params": {"message": {"en": "Follow up", "zh": "跟进"}}})
    pack.update(key="keep-pack", on_exit="keep")
    _add_pack_to_stage(runtime, clock, pack, "trial_request")
    _enter(runtime, world["deal"], "trial_request", WEDNESDAY_3PM)
    _enter(runtime, world["deal"], "contract_negotiation", WEDNESDAY_3PM + timedelta(minutes=5))
    clock.set(WEDNESDAY_3PM + timedelta(hours=1))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        kept = next(t for t in s.scalars(select(Timer)) if t.payload["pack"] == "keep-pack")
        assert kept.status == "done" and effects(s, kept.id) == ["actions.remind"]


# --- conditions, date fields, set_field ----------------------------------------------------------------


def _contract_deal(runtime: Runtime, world: Any, **data: Any) -> None:
    with runtime.db.session_scope() as s:
        deal = s.get(Deal, world["deal"])
        deal.data = {**deal.data, **data}


def test_contract_pack_sets_the_forecast_and_escalates_before_the_close_date_unless_the_budget_is_approved(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _contract_deal(runtime, world, expected_close_date="2026-03-20", budget_approved=False)
    _enter(runtime, world["deal"], "contract_negotiation", WEDNESDAY_3PM)
    timers = _steps(runtime, world["deal"])
    # 72 h before local midnight of 20 March is Tuesday 17 March 00:00: rolled to 09:00 (calendar-aware).
    assert timers["close_date_risk"].due_at == beijing(2026, 3, 17, 9, 0)
    sweep_all(runtime)  # "commit_forecast" is due at once
    with runtime.db.session_scope() as s:
        assert s.get(Deal, world["deal"]).data["forecast_category"] == "commit"
        change = s.scalars(select(AuditEvent).where(AuditEvent.action == "deal.update")).one()
        assert (
            change.actor_id is None and change.payload["changes"]["data"][1]["forecast_category"] == "commit"
        )
    clock.set(beijing(2026, 3, 17, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        escalation = s.scalars(select(Notification).where(Notification.kind == "actions.escalation")).one()
        assert escalation.user_id == world["lead"]


def test_a_false_condition_skips_the_step_and_records_why(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _contract_deal(runtime, world, expected_close_date="2026-03-20", budget_approved=False)
    _enter(runtime, world["deal"], "contract_negotiation", WEDNESDAY_3PM)
    _contract_deal(runtime, world, budget_approved=True)  # approved in the meantime: checked at fire time
    clock.set(beijing(2026, 3, 17, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        timer = steps(s, world["deal"])["close_date_risk"]
        assert timer.status == "done" and effects(s, timer.id) == ["action_step.skipped"]
        skip = s.scalars(select(AuditEvent).where(AuditEvent.action == "action_step.skip")).one()
        assert skip.object_id == world["deal"] and skip.payload["reason"] == "condition_false"
        assert count(s, Notification, Notification.kind == "actions.escalation") == 0


def test_a_date_field_step_follows_its_field(runtime: Runtime, clock: FrozenClock, world: Any) -> None:
    _contract_deal(runtime, world, expected_close_date="2026-03-20")
    _enter(runtime, world["deal"], "contract_negotiation", WEDNESDAY_3PM)
    _contract_deal(runtime, world, expected_close_date="2026-03-27")  # the close date slipped a week
    clock.set(beijing(2026, 3, 17, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        rows = [
            t for t in s.scalars(select(Timer).order_by(Timer.id)) if t.payload["step"] == "close_date_risk"
        ]
        assert [t.status for t in rows] == ["done", "pending"]
        assert effects(s, rows[0].id) == ["action_step.moved"]
        assert rows[1].due_at == beijing(2026, 3, 24, 9, 0)
        assert count(s, Notification, Notification.kind == "actions.escalation") == 0
    clock.set(beijing(2026, 3, 24, 9, 0))
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        assert count(s, Notification, Notification.kind == "actions.escalation") == 1


def test_a_step_whose_date_field_is_empty_is_not_scheduled(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    _enter(runtime, world["deal"], "contract_negotiation", WEDNESDAY_3PM)
    assert set(_steps(runtime, world["deal"])) == {"commit_forecast", "budget_check"}


# --- failures --------------------------------------------------------------------------------------------


def test_a_step_that_cannot_run_fails_at_once_and_runs_again_after_a_retry(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    from salesmesh.workflows.action_steps import retry_step

    with runtime.db.session_scope() as s:
        s.get(Deal, world["deal"]).primary_contact_id = None
    _enter(runtime, world["deal"], "solution_demo", WEDNESDAY_3PM)
    clock.set(beijing(2026, 3, 9, 9, 0))
    sweep_all(runtime)
    survey = _steps(runtime, world["deal"])["satisfaction_survey"]
    assert survey.status == "failed" and survey.attempts == 1  # no five attempts for a missing contact
    assert "has no primary contact" in survey.last_error
    with runtime.db.session_scope() as s:
        s.get(Deal, world["deal"]).primary_contact_id = world["contact"]
        retry_step(s, _ops(s, clock), survey.id, clock=clock)
    sweep_all(runtime)
    survey = _steps(runtime, world["deal"])["satisfaction_survey"]
    assert survey.status == "done" and survey.last_error is None


def _ops(session: Session, clock: FrozenClock) -> Any:
    from salesmesh.platform.models import User

    user = User(
        email="ops@x.test",
        name="ops",
        role="ops",
        password_hash="!",
        active=True,
        attributes={},
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def test_a_task_for_the_team_lead_fails_when_the_team_has_none(
    runtime: Runtime, clock: FrozenClock, world: Any
) -> None:
    pack = _pack(
        action={
            "kind": "task",
            "params": {"title": {"en": "Review", "zh": "复盘"}, "assignee": "team_lead", "due_in_hours": 24},
        }
    )
    pack.update(key="lead-task")
    _add_pack_to_stage(runtime, clock, pack, "trial_request")
    with runtime.db.session_scope() as s:
        from salesmesh.platform.models import Team

        s.scalars(select(Team)).one().lead_id = None
    _enter(runtime, world["deal"], "trial_request", WEDNESDAY_3PM)
    clock.set(WEDNESDAY_3PM + timedelta(hours=1))
    sweep_all(runtime)
    timer = next(t for t in _steps(runtime, world["deal"]).values() if t.payload["pack"] == "lead-task")
    assert timer.status == "failed" and "no active team lead" in timer.last_error
    with runtime.db.session_scope() as s:
        assert count(s, Task) == 0


@timer_kind("tests.action_packs_flaky")
def _always_down(ctx: TimerContext) -> None:
    raise ConnectionError("the mail relay is down")


@timer_kind("tests.action_packs_hopeless")
def _hopeless(ctx: TimerContext) -> None:
    raise GiveUp("the contact has no e-mail address")


def test_a_step_retries_with_its_own_backoff_then_fails(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        timer_id = schedule_timer(
            s,
            kind="tests.action_packs_flaky",
            due_at=clock.now(),
            payload={"retry_backoff_seconds": 600},
            max_attempts=3,
            now=clock.now(),
        ).id
    waits = []
    for _ in range(3):
        sweep_all(runtime)
        with runtime.db.session_scope() as s:
            timer = s.get(Timer, timer_id)
            waits.append((timer.status, timer.due_at - clock.now()))
            clock.set(timer.due_at)
    assert waits == [
        ("pending", timedelta(minutes=10)),
        ("pending", timedelta(minutes=20)),
        ("failed", timedelta(0)),
    ]
    assert "ConnectionError: the mail relay is down" in timer.last_error


def test_give_up_fails_a_timer_at_its_first_attempt(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        timer_id = schedule_timer(
            s, kind="tests.action_packs_hopeless", due_at=clock.now(), max_attempts=5
        ).id
    sweep_all(runtime)
    with runtime.db.session_scope() as s:
        timer = s.get(Timer, timer_id)
        assert (timer.status, timer.attempts) == ("failed", 1) and "no e-mail address" in timer.last_error
