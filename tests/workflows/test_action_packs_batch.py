"""Action-pack steps fired a claimed chunk at a time (`fire_steps`): every reminder once with its
notification, timeline entry and audit event, a constant number of statements whatever the chunk's size,
a step whose ledger key exists doing nothing again, skipped steps recorded, a step that cannot run failing
alone while the others fire, a batch that breaks falling back to one step at a time (the broken step
retried), and four sweepers on PostgreSQL firing each step once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import sweep_once
from salesmesh.platform.timers import Effect, Timer
from salesmesh.workflows.action_packs import STEP_KIND
from salesmesh.workflows.models import Activity, Deal
from tests.workflows.action_support import (
    attach_pack,
    beijing,
    count,
    enter,
    make_deal,
    md_world,
    one_step_pack,
)
from tests.workflows.routing_helpers import counting

START = beijing(2026, 3, 4, 15, 0)
REMIND = {"kind": "remind", "params": {"message": {"en": "Call back", "zh": "回电"}}}


def _world(
    rt: Runtime,
    clock: FrozenClock,
    deals: int,
    *,
    pack: dict[str, Any] | None = None,
    data: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The medical-device world with `deals` deals of one rep entering trial_request, whose only pack is
    `pack` (a reminder an hour after entry unless told otherwise); return the ids."""
    clock.set(START)
    with rt.db.session_scope() as s:
        w = md_world(s, clock)
        attach_pack(s, clock, pack or one_step_pack("batch-pack", REMIND), "trial_request")
        made = [w.deal]
        for i in range(1, deals):
            fields = data[i] if data else {"product_line": "ultrasound"}
            made.append(make_deal(s, clock, w.customer, w.contact, w.rep, name=f"Deal {i}", data=fields))
        if data:
            w.deal.data = data[0]
        for deal in made:
            enter(s, deal, "trial_request", clock.now())
        return {"deals": [d.id for d in made], "rep": w.rep.id, "lead": w.lead.id}


def _more_deals(rt: Runtime, clock: FrozenClock, deals: int) -> list[int]:
    """Add `deals` deals of the same rep entering trial_request now."""
    with rt.db.session_scope() as s:
        first = s.scalars(select(Deal).order_by(Deal.id)).first()
        assert first is not None
        made = [
            make_deal(s, clock, first.customer, first.primary_contact, first.owner, name=f"More {i}")
            for i in range(deals)
        ]
        for deal in made:
            enter(s, deal, "trial_request", clock.now())
        return [d.id for d in made]


def _timers(s: Session, deal_ids: list[int]) -> dict[int, Timer]:
    rows = s.scalars(select(Timer).where(Timer.kind == STEP_KIND, Timer.subject_id.in_(deal_ids)))
    return {t.subject_id: t for t in rows}  # type: ignore[misc]


def _sweep_counting(rt: Runtime) -> tuple[int, list[str]]:
    with counting(rt.db.engine) as statements:
        fired = sweep_once(rt, batch_size=200, owner="test")
    return fired, statements


def test_a_chunk_of_reminders_fires_each_once_in_a_constant_number_of_statements(
    runtime: Runtime, clock: FrozenClock
) -> None:
    world = _world(runtime, clock, 10)
    clock.advance(hours=1)
    later = _more_deals(runtime, clock, 100)
    fired, small = _sweep_counting(runtime)  # the first ten are due
    assert fired == 10
    clock.advance(hours=1)
    fired, large = _sweep_counting(runtime)  # the hundred entered an hour later
    assert fired == 100
    # Ten steps or a hundred: the same statements (claim; lock; deals, owners, pack; ledger, notifications,
    # timeline, audit head and rows, open tasks; done), none per step.
    assert [s.split()[0] for s in large] == [s.split()[0] for s in small]
    assert len(large) <= 22, large
    deals = world["deals"] + later
    with runtime.db.session_scope() as s:
        timers = _timers(s, deals)
        assert {t.status for t in timers.values()} == {"done"} and len(timers) == 110
        assert all(
            t.fired_at == t.due_at for t in timers.values()
        )  # not before, and at the sweep that was due
        keys = s.scalars(select(Effect.idempotency_key).where(Effect.kind == "actions.remind")).all()
        assert sorted(keys) == sorted(f"timer:{t.id}:remind" for t in timers.values())
        notes = s.scalars(select(Notification).where(Notification.kind == "actions.reminder")).all()
        assert Counter(n.subject_id for n in notes) == Counter(deals)
        assert {n.user_id for n in notes} == {world["rep"]}
        assert notes[0].params["message"] == {"en": "Call back", "zh": "回电"}
        reminders = s.scalars(select(Activity).where(Activity.kind == "reminder")).all()
        assert Counter(a.deal_id for a in reminders) == Counter(deals)
        one = next(a for a in reminders if a.deal_id == deals[0])
        assert (
            one.summary == "回电" and one.owner_id == world["rep"] and one.actor_id is None
        )  # the rep reads zh
        assert one.data == {
            "pack": "batch-pack",
            "step": "only",
            "timer_id": timers[deals[0]].id,
            "to": world["rep"],
            "message": {"en": "Call back", "zh": "回电"},
        }
        logged = s.scalars(select(AuditEvent).where(AuditEvent.action == "activity.log")).all()
        assert sorted(e.object_id for e in logged) == sorted(a.id for a in reminders)
        assert {e.payload["kind"] for e in logged} == {"reminder"}
        assert verify_chain(s) is None


def test_a_batch_refreshes_the_lights_that_time_has_changed(runtime: Runtime, clock: FrozenClock) -> None:
    world = _world(runtime, clock, 4)
    deals = world["deals"]
    with runtime.db.session_scope() as s:
        fresh = {d.id: (d.light, d.light_changes_at) for d in s.scalars(select(Deal))}
        assert {light for light, _at in fresh.values()} == {"green"}
        # As if the light sweep had not come by since the deal's light should have turned.
        s.execute(update(Deal).where(Deal.id == deals[1]).values(light="red", light_changes_at=START))
    clock.advance(hours=1)
    sweep_once(runtime, owner="test")
    with runtime.db.session_scope() as s:
        now = {d.id: (d.light, d.light_changes_at) for d in s.scalars(select(Deal))}
        assert now == fresh  # recomputed from its inputs: green again, changing when it did before
        assert count(s, Activity, Activity.kind == "reminder") == 4


def test_a_step_whose_ledger_entry_exists_does_nothing_again(runtime: Runtime, clock: FrozenClock) -> None:
    world = _world(runtime, clock, 5)
    deals = world["deals"]
    with runtime.db.session_scope() as s:
        ran_before = _timers(s, deals)[deals[2]]
        s.add(
            Effect(
                idempotency_key=f"timer:{ran_before.id}:remind",
                timer_id=ran_before.id,
                kind="actions.remind",
                payload={"user_id": world["rep"]},
                created_at=clock.now(),
            )
        )
    clock.advance(hours=1)
    assert sweep_once(runtime, owner="test") == 5
    with runtime.db.session_scope() as s:
        assert {t.status for t in _timers(s, deals).values()} == {"done"}
        assert count(s, Effect, Effect.kind == "actions.remind") == 5
        reminded = s.scalars(select(Activity.deal_id).where(Activity.kind == "reminder")).all()
        assert sorted(reminded) == sorted(d for d in deals if d != deals[2])
        noted = s.scalars(select(Notification.subject_id)).all()
        assert sorted(noted) == sorted(reminded)


def test_skipped_steps_are_recorded_and_do_nothing(runtime: Runtime, clock: FrozenClock) -> None:
    rule = {"==": [{"var": "product_line"}, "ultrasound"]}
    pack = one_step_pack("batch-when", REMIND, when=rule)
    lines = ["ultrasound", "ct", "ultrasound", "ct", "ultrasound", "ultrasound"]
    world = _world(runtime, clock, 6, pack=pack, data=[{"product_line": line} for line in lines])
    deals = world["deals"]
    with runtime.db.session_scope() as s:  # moved without the stage-change signal: its step left behind
        s.execute(update(Deal).where(Deal.id == deals[4]).values(stage_key="contract_negotiation"))
    clock.advance(hours=1)
    assert sweep_once(runtime, owner="test") == 6
    with runtime.db.session_scope() as s:
        timers = _timers(s, deals)
        assert {t.status for t in timers.values()} == {"done"}
        reminded = s.scalars(select(Activity.deal_id).where(Activity.kind == "reminder")).all()
        assert sorted(reminded) == [deals[0], deals[2], deals[5]]
        skips = s.scalars(select(AuditEvent).where(AuditEvent.action == "action_step.skip")).all()
        reasons = {e.object_id: (e.payload["reason"], e.payload["timer_id"]) for e in skips}
        assert reasons == {
            deals[1]: ("condition_false", timers[deals[1]].id),
            deals[3]: ("condition_false", timers[deals[3]].id),
            deals[4]: ("left_stage", timers[deals[4]].id),
        }
        ledger = s.scalars(select(Effect).where(Effect.kind == "action_step.skipped")).all()
        assert sorted(e.timer_id for e in ledger) == sorted(t for _r, t in reasons.values())
        assert next(e for e in skips if e.object_id == deals[4]).payload["now_in"] == "contract_negotiation"
        assert verify_chain(s) is None


def test_a_step_that_cannot_run_fails_alone_while_the_others_fire(
    runtime: Runtime, clock: FrozenClock
) -> None:
    world = _world(runtime, clock, 6)
    deals = world["deals"]
    with runtime.db.session_scope() as s:  # one deal's owner left: its reminder has nobody to go to
        s.get(Deal, deals[3]).owner_id = world["lead"]
        s.get(Deal, deals[3]).owner.active = False
    clock.advance(hours=1)
    sweep_once(runtime, owner="test")
    with runtime.db.session_scope() as s:
        timers = _timers(s, deals)
        assert {d: t.status for d, t in timers.items()} == {
            d: ("failed" if d == deals[3] else "done") for d in deals
        }
        assert "has no active owner" in (timers[deals[3]].last_error or "")
        reminded = s.scalars(select(Activity.deal_id).where(Activity.kind == "reminder")).all()
        assert sorted(reminded) == sorted(d for d in deals if d != deals[3])


def test_a_broken_step_sends_the_chunk_one_by_one_and_is_retried_alone(
    runtime: Runtime, clock: FrozenClock
) -> None:
    world = _world(runtime, clock, 6)
    deals = world["deals"]
    with runtime.db.session_scope() as s:
        broken = _timers(s, deals)[deals[2]]
        broken.payload = {k: v for k, v in broken.payload.items() if k != "stage"}  # damaged
    clock.advance(hours=1)
    sweep_once(runtime, owner="test")
    with runtime.db.session_scope() as s:
        timers = _timers(s, deals)
        retried = timers.pop(deals[2])
        assert {t.status for t in timers.values()} == {"done"}
        assert (
            retried.status == "pending" and retried.attempts == 1 and "KeyError" in (retried.last_error or "")
        )
        assert retried.due_at == clock.now() + timedelta(minutes=5)  # the step's backoff
        assert count(s, Activity, Activity.kind == "reminder") == 5
    clock.advance(minutes=5)
    sweep_once(runtime, owner="test")
    with runtime.db.session_scope() as s:
        assert _timers(s, deals)[deals[2]].attempts == 2
        assert count(s, Activity, Activity.kind == "reminder") == 5  # nobody was reminded twice
        assert count(s, Effect, Effect.kind == "actions.remind") == 5
        assert verify_chain(s) is None


@pytest.mark.services
def test_four_sweepers_on_postgresql_fire_each_step_once(pg_runtime: Runtime, clock: FrozenClock) -> None:
    world = _world(pg_runtime, clock, 120)
    clock.advance(hours=1)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def sweep(owner: str) -> None:
        try:
            start.wait()
            while sweep_once(pg_runtime, batch_size=25, owner=owner):
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(f"sweeper-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    with pg_runtime.db.session_scope() as s:
        timers = _timers(s, world["deals"])
        assert {t.status for t in timers.values()} == {"done"} and len(timers) == 120
        assert set(Counter(s.scalars(select(Effect.timer_id))).values()) == {1}
        reminded = s.scalars(select(Activity.deal_id).where(Activity.kind == "reminder")).all()
        assert Counter(reminded) == Counter(world["deals"])
        assert count(s, Notification) == 120
        assert verify_chain(s) is None
