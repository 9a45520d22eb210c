"""Firing due action-pack steps: the `action_packs.step` timer kind, one step or a claimed chunk at a time.

`fire_step` runs one due step: it re-reads the deal, skips (recorded in the ledger and the audit log) when
the deal is gone, left the stage or the step's condition is false, follows a date field that moved, and
otherwise runs the action plugin, whose effects are ledger-keyed so a re-run never doubles them. Failures
retry with the step's backoff; `ActionImpossible` fails at once. `fire_steps` is the batch handler the
sweeper gives a claimed chunk to: the deals with their owners in one query, the pinned packs compiled once,
the same checks per step, the skips recorded as a set, and each action kind that has a `run_many` doing its
steps with set-based writes (ledger rows with one `INSERT ... ON CONFLICT DO NOTHING`, so only the steps
whose key was new get their effect). What it cannot do at once — a date-field step, a pack or step that is
gone, a condition that fails to evaluate, a kind without `run_many`, whatever `run_many` hands back — it
hands back untouched, and the sweeper runs `fire_step` for it; if the batch raises, the sweeper rolls it
back and runs `fire_step` for every step of the chunk. Either way each step ends in the same checks and
effects, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, defer, joinedload

from salesmesh.platform.audit import record_event, record_events
from salesmesh.platform.models import User
from salesmesh.platform.timers import (
    ClaimedTimer,
    GiveUp,
    Timer,
    TimerBatch,
    TimerContext,
    schedule_timer,
    timer_kind,
)
from salesmesh.plugins.spec import ActionBatch, ActionContext, ActionItem, StepInfo
from salesmesh.workflows.action_packs import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_ATTEMPTS,
    STEP_KIND,
    CompiledPack,
    CompiledStep,
    PackUnusable,
    calendar_named,
    iso_utc,
    pack_for_version,
    pipeline_stage,
    step_due,
)
from salesmesh.workflows.models import Deal

# A chunk's deals without the columns no check or batched action reads (loaded if ever used), and their
# owners; built once.
_UNREAD = (defer(Deal.created_at), defer(Deal.updated_at), defer(Deal.closed_at), defer(Deal.expected_close))
_DEALS = select(Deal).options(*_UNREAD).where(Deal.id.in_(bindparam("ids", expanding=True)))
_USERS = select(User).where(User.id.in_(bindparam("ids", expanding=True)))


def deal_facts(deal: Deal) -> dict[str, Any]:
    """Return what step conditions read: the deal's form fields plus a few standard ones."""
    facts: dict[str, Any] = {
        "stage": deal.stage_key,
        "status": deal.status,
        "amount": float(deal.amount) if deal.amount is not None else None,
        "light": deal.light,
        "owner_id": deal.owner_id,
    }
    facts.update(deal.data or {})
    return facts


def _skip_body(timer: Timer | ClaimedTimer, reason: str, details: dict[str, Any]) -> dict[str, Any]:
    payload = timer.payload
    return {"pack": payload.get("pack"), "step": payload.get("step"), "reason": reason, **details}


def _skip_event(
    timer: Timer | ClaimedTimer, deal_id: int | None, body: dict[str, Any], now: Any
) -> dict[str, Any]:
    return {
        "at": now,
        "actor_id": None,
        "action": "action_step.skip",
        "object_type": "deals" if deal_id is not None else None,
        "object_id": deal_id,
        "payload": {**body, "timer_id": timer.id},
    }


def _skip(ctx: TimerContext, deal_id: int | None, reason: str, **details: Any) -> None:
    body = _skip_body(ctx.timer, reason, details)
    if ctx.record_effect("skipped", "action_step.skipped", body):
        record_event(ctx.session, **_skip_event(ctx.timer, deal_id, body, ctx.now))


def _step_info(pack: CompiledPack, step: CompiledStep, stage_key: str) -> StepInfo:
    return StepInfo(
        pack_key=pack.key,
        pack_version_id=pack.version_id,
        step_key=step.key,
        label=step.label,
        stage_key=stage_key,
    )


# --- many steps at once ----------------------------------------------------------------------------------


def fire_steps(batch: TimerBatch) -> list[ClaimedTimer]:
    """Run a chunk of due steps with set-based writes; return the steps left to `fire_step`."""
    session, now = batch.session, batch.now
    deal_ids = sorted({timer.payload["deal"] for timer in batch.timers})
    deals = {deal.id: deal for deal in session.scalars(_DEALS, {"ids": deal_ids})}
    # Nearly every action reads the owner (recipient, language, templates): loaded once per person (and
    # `deal.owner` finds them in the session without a query).
    owner_ids = sorted({deal.owner_id for deal in deals.values() if deal.owner_id is not None})
    owners = {user.id: user for user in session.scalars(_USERS, {"ids": owner_ids})} if owner_ids else {}
    later: list[ClaimedTimer] = []
    skips: list[tuple[ClaimedTimer, int | None, str, dict[str, Any]]] = []
    work: dict[
        str, tuple[Callable[[ActionBatch, Sequence[ActionItem]], Sequence[ActionItem]], list[ActionItem]]
    ] = {}
    packs = _packs_of(session, batch.timers)
    infos: dict[tuple[int, str, str], StepInfo] = {}  # a chunk's steps mostly share a few steps
    for timer in batch.timers:
        payload = timer.payload
        deal = deals.get(payload["deal"])
        if deal is None:
            skips.append((timer, None, "deal_gone", {}))
            continue
        pack = packs[payload["pack_version"]]
        if pack is None:
            later.append(timer)  # fire_step gives up on it, saying why
            continue
        step = pack.by_key.get(payload["step"])
        if step is None or step.kind.run_many is None or step.relative_to == "date_field":
            later.append(timer)  # gone (fire_step gives up), no batch form, or a date that may have moved
            continue
        if pack.on_exit == "cancel" and deal.stage_key != payload["stage"]:
            skips.append((timer, deal.id, "left_stage", {"now_in": deal.stage_key}))
            continue
        if step.condition is not None:
            try:
                met = step.condition.test(deal_facts(deal), now)
            except Exception:  # noqa: BLE001 - fire_step evaluates it again and records the failure
                later.append(timer)
                continue
            if not met:
                skips.append((timer, deal.id, "condition_false", {}))
                continue
        info = infos.get((pack.version_id, step.key, payload["stage"]))
        if info is None:
            info = infos[pack.version_id, step.key, payload["stage"]] = _step_info(
                pack, step, payload["stage"]
            )
        item = ActionItem(timer, deal, owners.get(deal.owner_id), info, step.prepared)
        work.setdefault(step.kind.name, (step.kind.run_many, []))[1].append(item)
    _skip_many(batch, skips)
    actions = ActionBatch(batch)
    for run_many, items in work.values():
        later.extend(item.timer for item in run_many(actions, items))
    return later


def _packs_of(session: Session, timers: Sequence[ClaimedTimer]) -> dict[int, CompiledPack | None]:
    """Return the compiled packs a chunk's steps pin (None: gone or unusable; `fire_step` says why)."""
    packs: dict[int, CompiledPack | None] = {}
    for version_id in {timer.payload["pack_version"] for timer in timers}:
        try:
            packs[version_id] = pack_for_version(session, version_id)
        except (LookupError, PackUnusable):
            packs[version_id] = None
    return packs


def _skip_many(
    batch: TimerBatch, skips: Sequence[tuple[ClaimedTimer, int | None, str, dict[str, Any]]]
) -> None:
    """Record skipped steps in the ledger with one statement and audit the ones recorded now."""
    bodies = [_skip_body(timer, reason, details) for timer, _deal, reason, details in skips]
    new = batch.record_effects(
        [
            (timer, "skipped", "action_step.skipped", body)
            for (timer, *_rest), body in zip(skips, bodies, strict=True)
        ]
    )
    now = batch.now
    record_events(
        batch.session,
        [
            _skip_event(timer, deal_id, body, now)
            for (timer, deal_id, _reason, _details), body, is_new in zip(skips, bodies, new, strict=True)
            if is_new
        ],
    )


# --- one step ----------------------------------------------------------------------------------------------


@timer_kind(
    STEP_KIND,
    max_attempts=DEFAULT_MAX_ATTEMPTS,
    backoff_seconds=DEFAULT_BACKOFF.total_seconds(),
    batch=fire_steps,
)
def fire_step(ctx: TimerContext) -> None:
    """Run one due step: re-check the deal, its stage and the step's condition, then the action."""
    payload = ctx.timer.payload
    deal = ctx.session.get(Deal, payload["deal"], options=[joinedload(Deal.owner)])
    if deal is None:
        _skip(ctx, None, "deal_gone")
        return
    try:
        pack = pack_for_version(ctx.session, payload["pack_version"])
    except (LookupError, PackUnusable) as exc:
        raise GiveUp(str(exc)) from exc
    step = pack.by_key.get(payload["step"])
    if step is None:
        raise GiveUp(f"action pack {pack.key!r} v{pack.number} has no step {payload['step']!r}")
    if pack.on_exit == "cancel" and deal.stage_key != payload["stage"]:
        _skip(ctx, deal.id, "left_stage", now_in=deal.stage_key)
        return
    if step.relative_to == "date_field" and _date_moved(ctx, deal, pack, step):
        return
    if step.condition is not None and not step.condition.test(deal_facts(deal), ctx.now):
        _skip(ctx, deal.id, "condition_false")
        return
    step.kind.run(ActionContext(ctx, deal, _step_info(pack, step, payload["stage"])), step.prepared)


def _date_moved(ctx: TimerContext, deal: Deal, pack: CompiledPack, step: CompiledStep) -> bool:
    """A date-field step follows its field: skip when it was cleared, re-arm when it moved later."""
    pipeline, _ = pipeline_stage(deal, ctx.session, ctx.timer.payload["stage"])
    calendar = calendar_named(ctx.session, pack.calendar_key or pipeline.get("calendar"))
    due = step_due(step, entered_at=ctx.now, deal=deal, calendar=calendar, earlier={})
    if due is None:
        _skip(ctx, deal.id, "date_field_empty", field=step.anchor)
        return True
    if due <= ctx.now:
        return False
    if ctx.record_effect("moved", "action_step.moved", {"due_at": iso_utc(due)}):
        schedule_timer(
            ctx.session,
            kind=STEP_KIND,
            due_at=due,
            payload=dict(ctx.timer.payload),
            subject=("deal", deal.id),
            dedupe_key=f"ap:moved:{ctx.timer.id}",
            max_attempts=ctx.timer.max_attempts,
            now=ctx.now,
        )
    return True
