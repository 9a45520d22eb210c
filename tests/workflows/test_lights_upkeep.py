"""Keeping deal lights current: the stage-change signal lights a new deal, activities, tasks and next steps
recompute it, and the sweep moves lights that time alone changes, exactly at the thresholds of the
medical-device pipeline (1 and 3 working days on the Beijing calendar: a weekend does not count; yellow
from 1 to 3 days late inclusive, red once more than 3)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.jobs import get_job, run_job
from salesmesh.platform.models import User
from salesmesh.platform.periodic import PERIODIC_JOBS
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.activities import complete_task, create_task, log_activity
from salesmesh.workflows.lights import SWEEP_JOB, clear_light_caches, refresh_light, sweep_lights
from salesmesh.workflows.models import Deal
from salesmesh.workflows.pipelines import move_deal
from salesmesh.workflows.records import update_deal
from tests.workflows.lights_support import beijing, md_company

S = timedelta(seconds=1)
US = timedelta(microseconds=1)


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> SimpleNamespace:
    clear_light_caches()
    clock.set(beijing(2026, 1, 9, 12))  # Friday noon in Beijing
    return md_company(session, clock)


def _sweep(session: Session, clock: FrozenClock) -> int:
    changed = sweep_lights(session, now=clock.now()).changed
    session.flush()
    session.expire_all()
    return changed


def test_a_new_deal_is_green_and_knows_when_it_turns_yellow(session: Session, md: SimpleNamespace) -> None:
    deal = md.open_deal(md.rep_a1)
    assert deal.light == "green"
    assert deal.overdue_since == beijing(2026, 1, 9, 12)  # untouched since it entered its stage
    assert deal.light_changes_at == beijing(2026, 1, 12, 12)  # one working day: Monday noon, not Saturday


def test_time_turns_it_yellow_at_one_day_and_red_just_after_three(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)
    for moment, light, changes_at in [
        (beijing(2026, 1, 10, 12), "green", beijing(2026, 1, 12, 12)),  # Saturday: the weekend does not count
        (beijing(2026, 1, 12, 12) - US, "green", beijing(2026, 1, 12, 12)),
        (
            beijing(2026, 1, 12, 12),
            "yellow",
            beijing(2026, 1, 14, 12) + US,
        ),  # one working day after Friday noon
        (beijing(2026, 1, 14, 12) - S, "yellow", beijing(2026, 1, 14, 12) + US),
        (
            beijing(2026, 1, 14, 12),
            "yellow",
            beijing(2026, 1, 14, 12) + US,
        ),  # exactly 3 working days: not more
        (beijing(2026, 1, 14, 12) + US, "red", None),  # more than three working days
    ]:
        clock.set(moment)
        _sweep(session, clock)
        row = session.get(Deal, deal.id)
        assert (row.light, row.light_changes_at) == (light, changes_at), moment
    assert session.get(Deal, deal.id).light_changes_at is None  # red stays red until someone acts
    clock.advance(days=30)
    assert sweep_lights(session, now=clock.now()).checked == 0


def test_logging_an_activity_turns_a_red_deal_green(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)
    clock.set(beijing(2026, 1, 15, 10))
    _sweep(session, clock)
    assert session.get(Deal, deal.id).light == "red"
    log_activity(session, md.rep_a1, kind="call", deal_id=deal.id, clock=clock, outcome="reached")
    deal = session.get(Deal, deal.id)
    assert (deal.light, deal.overdue_since) == ("green", clock.now())
    assert deal.light_changes_at == beijing(2026, 1, 16, 10)


def test_a_next_step_planned_with_the_activity_keeps_it_green_until_it_is_late(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)
    due = beijing(2026, 1, 20, 18)  # next Tuesday evening
    log_activity(session, md.rep_a1, kind="visit", deal_id=deal.id, clock=clock, next_step_due_at=due)
    assert (deal.light, deal.overdue_since, deal.light_changes_at) == ("green", due, beijing(2026, 1, 21, 18))
    clock.set(beijing(2026, 1, 19, 12))  # a week untouched, but the plan says Tuesday
    _sweep(session, clock)
    assert session.get(Deal, deal.id).light == "green"
    clock.set(beijing(2026, 1, 21, 18))
    _sweep(session, clock)
    assert session.get(Deal, deal.id).light == "yellow"


def test_an_overdue_task_makes_the_deal_late_and_finishing_it_lifts_that(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)
    clock.set(beijing(2026, 1, 12, 9))  # Monday
    log_activity(session, md.rep_a1, kind="call", deal_id=deal.id, clock=clock)
    task = create_task(
        session,
        md.rep_a1,
        title="Send the quote",
        deal_id=deal.id,
        due_at=beijing(2026, 1, 6, 18),
        clock=clock,
    )
    assert (deal.light, deal.overdue_since) == ("red", beijing(2026, 1, 6, 18))  # 3.6 working days late
    complete_task(session, md.rep_a1, task.id, clock=clock)
    assert (deal.light, deal.overdue_since) == ("green", beijing(2026, 1, 12, 9))


def test_editing_the_next_step_recomputes_the_light(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)  # Friday noon
    clock.set(beijing(2026, 1, 15, 9))  # Thursday
    update_deal(session, md.rep_a1, deal.id, next_step_due_at=beijing(2026, 1, 9, 13), clock=clock)
    assert (deal.light, deal.overdue_since) == ("red", beijing(2026, 1, 9, 13))  # late since Friday 13:00
    update_deal(session, md.rep_a1, deal.id, next_step_due_at=beijing(2026, 1, 16, 9), clock=clock)
    assert (deal.light, deal.light_changes_at) == ("green", beijing(2026, 1, 19, 9))  # Friday + 1: Monday
    update_deal(session, md.rep_a1, deal.id, next_step_due_at=beijing(2026, 1, 6, 9), clock=clock)
    # Due before the deal entered its stage: that step counts as done, the deal is due since the entry.
    assert (deal.light, deal.overdue_since) == ("red", beijing(2026, 1, 9, 12))


def test_a_stage_move_recomputes_and_closing_puts_the_light_out(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.open_deal(md.rep_a1)
    clock.set(beijing(2026, 1, 14, 13))
    _sweep(session, clock)
    deal = session.get(Deal, deal.id)
    assert deal.light == "red"
    move_deal(session, md.rep_a1, deal.id, "lost", clock=clock, reason="Budget went elsewhere")
    assert (deal.status, deal.light, deal.overdue_since, deal.light_changes_at) == ("lost", None, None, None)


def test_the_sweep_works_in_batches_and_runs_as_a_periodic_job(
    runtime: Runtime, session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deals = [md.open_deal(rep) for rep in (md.rep_a1, md.rep_a2, md.rep_b1) for _ in range(3)]
    session.commit()
    clock.set(beijing(2026, 1, 12, 12))
    first = sweep_lights(session, now=clock.now(), limit=4)
    assert (first.checked, first.changed, first.more) == (4, 4, True)
    session.rollback()
    assert SWEEP_JOB in {entry.name for entry in PERIODIC_JOBS}
    assert get_job(SWEEP_JOB).name == SWEEP_JOB
    assert run_job(runtime, SWEEP_JOB, []) == {"checked": 9, "changed": 9, "more": False}
    session.expire_all()
    lights = session.scalars(select(Deal.light).where(Deal.id.in_([d.id for d in deals]))).all()
    assert lights == ["yellow"] * 9


def test_postgresql_sweeps_skip_deals_being_worked_on_and_share_the_rest(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    """A deal locked by a request (an activity being logged) is skipped, not overwritten; two sweeps split
    the due deals without handling one twice."""
    clear_light_caches()
    clock.set(beijing(2026, 1, 9, 12))
    with pg_runtime.db.session_scope() as setup:
        md = md_company(setup, clock)
        ids = [md.open_deal(rep).id for rep in (md.rep_a1, md.rep_a2) for _ in range(3)]
        rep_id = md.rep_a1.id
    clock.set(beijing(2026, 1, 12, 12))
    busy, first, second = (pg_runtime.db.Session() for _ in range(3))
    try:
        log_activity(busy, busy.get(User, rep_id), kind="call", deal_id=ids[0], clock=clock)  # holds the row
        one = sweep_lights(first, now=clock.now(), limit=2)
        two = sweep_lights(second, now=clock.now())  # the two rows `first` holds are skipped too
        assert (one.checked, two.checked) == (2, 3)
        busy.commit()
        first.commit()
        second.commit()
    finally:
        for s in (busy, first, second):
            s.close()
    with pg_runtime.db.session_scope() as check:
        rows = {i: light for i, light in check.execute(select(Deal.id, Deal.light).where(Deal.id.in_(ids)))}
        assert rows[ids[0]] == "green"  # worked on just now: the sweep did not paint it yellow
        assert sorted(rows[i] for i in ids[1:]) == ["yellow"] * 5
        assert sweep_lights(check, now=clock.now()).checked == 0


def test_a_deal_without_a_light_is_lit_by_refresh(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    deal = md.row(md.rep_a1, "initial_contact", None, None, stage_entered_at=beijing(2026, 1, 5, 12))
    state = refresh_light(session, deal, now=clock.now())
    assert (state.light, deal.light, deal.overdue_since) == ("red", "red", beijing(2026, 1, 5, 12))
