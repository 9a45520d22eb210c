"""Reading and retrying action-pack steps: the ops "failed actions" list, the retry of a failed step and
one deal's steps (upcoming, done, skipped, failed).

Steps are the `action_packs.step` rows of the `timers` table; what a fired step did is its ledger row
(`effects`: the action's effect, or `action_step.skipped` with the reason). Listing failed steps and
retrying them is for ops and admins (`action_step.list_failed`, `action_step.retry`); a deal's steps are
shown to whoever may see the deal. A retry re-arms the timer (pending, due now, attempts from zero) with
one conditional UPDATE, so two people pressing the button at once re-arm it once; it is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.platform.timers import FAILED, PENDING, Effect, Timer
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.action_packs import STEP_KIND, PackUnusable, deal_step_timers, pack_for_version
from salesmesh.workflows.models import Deal

FAILED_PAGE = 100
# What a step's timeline shows for it: its timer status, refined by its ledger row once it ran.
STEP_STATE_NAMES = {
    "pending": N_("Scheduled"),
    "running": N_("Running"),
    "done": N_("Done"),
    "skipped": N_("Skipped"),
    "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
}
SKIP_REASON_NAMES = {
    "condition_false": N_("its condition did not hold"),
    "left_stage": N_("the deal had left the stage"),
    "deal_gone": N_("the deal no longer exists"),
    "date_field_empty": N_("its date field is empty"),
}


class StepNotRetryable(Exception):
    """The step is not a failed action-pack step (already retried, or never failed)."""


@dataclass(frozen=True)
class StepView:
    """One step as the pages show it."""

    timer: Timer
    deal: Deal | None
    pack_label: Mapping[str, str]
    step_label: Mapping[str, str]
    action: str | None
    state: str  # a key of STEP_STATE_NAMES
    skip_reason: str | None

    @property
    def payload(self) -> Mapping[str, Any]:
        return self.timer.payload or {}


def _labels(
    session: Session, payload: Mapping[str, Any]
) -> tuple[Mapping[str, str], Mapping[str, str], str | None]:
    fallback = ({"en": str(payload.get("pack"))}, {"en": str(payload.get("step"))}, None)
    try:
        pack = pack_for_version(session, int(payload.get("pack_version")))
    except (LookupError, PackUnusable, TypeError, ValueError):
        return fallback
    step = pack.by_key.get(str(payload.get("step")))
    if step is None:
        return pack.label, fallback[1], None
    return pack.label, step.label, step.kind.name


def _view(session: Session, timer: Timer, deal: Deal | None, effects: Mapping[int, list[Effect]]) -> StepView:
    pack_label, step_label, action = _labels(session, timer.payload or {})
    state, reason = timer.status, None
    for effect in effects.get(timer.id, ()):
        if effect.kind == "action_step.skipped":
            state, reason = "skipped", (effect.payload or {}).get("reason")
    return StepView(timer, deal, pack_label, step_label, action, state, reason)


def _effects(session: Session, timer_ids: list[int]) -> dict[int, list[Effect]]:
    found: dict[int, list[Effect]] = {}
    if timer_ids:
        for effect in session.scalars(select(Effect).where(Effect.timer_id.in_(timer_ids))):
            found.setdefault(effect.timer_id or 0, []).append(effect)
    return found


def failed_steps(
    session: Session, actor: User | None, *, limit: int = FAILED_PAGE, before: int | None = None
) -> list[StepView]:
    """Return failed action-pack steps, newest first, with their deals (ops and admins)."""
    policy.require(actor, "action_step.list_failed")
    stmt = (
        select(Timer, Deal)
        .outerjoin(Deal, and_(Timer.subject_type == "deal", Deal.id == Timer.subject_id))
        .where(Timer.kind == STEP_KIND, Timer.status == FAILED)
    )
    if before is not None:
        stmt = stmt.where(Timer.id < before)
    rows = session.execute(stmt.order_by(Timer.id.desc()).limit(limit)).all()
    return [_view(session, timer, deal, {}) for timer, deal in rows]


def retry_step(session: Session, actor: User | None, timer_id: int, *, clock: Clock) -> Timer:
    """Re-arm a failed step: pending, due now, attempts from zero (raise StepNotRetryable otherwise)."""
    policy.require(actor, "action_step.retry")
    timer = session.get(Timer, timer_id) if isinstance(timer_id, int) else None
    if timer is None or timer.kind != STEP_KIND:
        raise StepNotRetryable(f"no action-pack step {timer_id}")
    previous = timer.last_error
    now = clock.now()
    rearmed = session.execute(
        update(Timer)
        .where(Timer.id == timer.id, Timer.status == FAILED)
        .values(status=PENDING, due_at=now, attempts=0, last_error=None, lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not rearmed:
        raise StepNotRetryable(f"step {timer_id} is not failed (it was retried already or never failed)")
    session.refresh(timer)
    record_event(
        session,
        at=now,
        actor_id=actor.id if actor is not None else None,
        action="action_step.retry",
        object_type="deals" if timer.subject_type == "deal" else None,
        object_id=timer.subject_id,
        payload={
            "timer_id": timer.id,
            "pack": timer.payload.get("pack"),
            "step": timer.payload.get("step"),
            "previous_error": (previous or "")[:500],
        },
    )
    return timer


def deal_steps(session: Session, actor: User | None, deal_id: Any) -> tuple[Deal, list[StepView]]:
    """Return a deal (404 when the actor may not see it) and its steps, by due time."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "deal.view", deal)
    timers = sorted(deal_step_timers(session, deal.id), key=lambda t: (t.due_at, t.id))
    effects = _effects(session, [t.id for t in timers])
    return deal, [_view(session, timer, deal, effects) for timer in timers]
