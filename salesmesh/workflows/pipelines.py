"""Moving deals through their pipeline: stage moves, approvals of deviations, key nodes, planned actions.

A deal moves with `move_deal`. The route must be allowed (`pipeline_specs.Pipeline.route`); a move
forward to a later open or won stage must meet the exit criteria of the stage it leaves
(`stage_criteria.exit_status`: required fields, key nodes, activities, the condition). Unmet criteria
are listed by name; the mover may ask to waive them with a reason: a free pipeline moves at once and
records the waiver, a locked one opens an approval request (`waive_criteria`). A route that needs
approval (a skip, or a transition marked `requires_approval`) always opens one (`skip_stage`,
`transition`) and the deal stays where it is until the approver approves; the approved move is then
applied as the approver's (`_settle_move`), re-checking the stage. Every applied move writes the stage,
`stage_entered_at`, the status (won/lost stages close the deal), a `stage_change` timeline activity and a
`deal.stage_change` audit event (who, from, to, criteria met and waived, the approval), and sends
`stage_signals.send_stage_change` in the same transaction; a new deal's entry into its initial stage
sends the signal too (`enter_initial_stage`, called by `records.add_deal`). Moves are optimistic: the
stage is changed with `UPDATE ... WHERE stage_key = <the stage the mover saw>`, so a move from a stale
stage is `StaleStage` (409). In a locked pipeline only a stage's `preset_actions` may be logged on its
deals (`refuse_unplanned_activity`, called by `activities.log_activity`). Key nodes are ticked with
`complete_key_node`, on the evidence of an interaction of the node's kind logged in the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import approvals
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.approval_models import MOVE_KINDS, ApprovalRequest
from salesmesh.workflows.models import LOGGED_KINDS, Activity, Deal
from salesmesh.workflows.pipeline_models import DealKeyNode
from salesmesh.workflows.pipeline_specs import KeyNode, Pipeline, Route, Stage, pipeline_for
from salesmesh.workflows.record_values import Errors, RecordError
from salesmesh.workflows.stage_criteria import (
    Criterion,
    both,
    error_item,
    exit_status,
    kind_names,
    load_progress,
)
from salesmesh.workflows.stage_signals import StageChange, send_stage_change

MAX_REASON = 2000


class StaleStage(RecordError):
    """The deal is no longer in the stage the mover saw (someone moved it meanwhile): HTTP 409."""

    status = 409


# --- the stage overview (the deal page's stage card) ------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """A key node of the current stage: done (with its row) or not, and whether it can be ticked now."""

    node: KeyNode
    done: DealKeyNode | None
    evidence: bool


@dataclass(frozen=True)
class StageOverview:
    pipeline: Pipeline
    stage: Stage
    criteria: tuple[Criterion, ...]
    routes: tuple[Route, ...]
    nodes: tuple[NodeState, ...]
    waiting: ApprovalRequest | None

    @property
    def unmet(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.met)

    def gated(self, route: Route) -> bool:
        """Tell whether a move along `route` must meet (or waive) the criteria."""
        return self.pipeline.gated(self.stage.key, route.stage.key)


def stage_overview(session: Session, deal: Deal, *, now: datetime) -> StageOverview | None:
    """Return the deal's stage, criteria, allowed moves and key nodes (None when its pipeline is unusable)."""
    try:
        pipeline = pipeline_for(session, deal.pipeline_version_id)
    except LookupError:
        return None
    stage = pipeline.stage(deal.stage_key)
    if stage is None:
        return None
    wants_nodes = bool(stage.key_nodes or stage.exit.required_key_nodes)
    progress = load_progress(
        session, deal, nodes=wants_nodes, counts=bool(stage.key_nodes or stage.exit.required_activities)
    )
    nodes = tuple(
        NodeState(node, progress.done.get(node.key), any(progress.counts.get(k) for k in node.activity_types))
        for node in stage.key_nodes
    )
    return StageOverview(
        pipeline=pipeline,
        stage=stage,
        criteria=tuple(exit_status(session, deal, pipeline, now=now, progress=progress)),
        routes=tuple(pipeline.routes(stage.key)),
        nodes=nodes,
        waiting=approvals.open_move_request(session, deal.id),
    )


# --- moving ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoveResult:
    """What a move did: moved now, or waiting for `approval`; the criteria seen and the ones waived."""

    deal: Deal
    moved: bool
    approval: ApprovalRequest | None
    criteria: tuple[Criterion, ...]
    waived: tuple[str, ...]


def _stale(pipeline: Pipeline, deal: Deal) -> StaleStage:
    here = pipeline.stage(deal.stage_key)
    return StaleStage(
        [
            error_item(
                "/from_stage",
                N_("Someone moved this deal meanwhile: it is in %(stage)s now. Look again and retry."),
                stage=here.label if here else deal.stage_key,
            )
        ]
    )


def _routeerror_item(pipeline: Pipeline, deal: Deal, target: Stage) -> dict[str, str]:
    here = pipeline.stage(deal.stage_key)
    allowed = [r.stage.label for r in pipeline.routes(deal.stage_key)]
    message = (
        N_("%(pipeline)s is locked: from %(from)s a deal may move only to %(allowed)s, not to %(to)s.")
        if pipeline.locked
        else N_("From %(from)s a deal may move only to %(allowed)s, not to %(to)s.")
    )
    return error_item(
        "/to_stage",
        message,
        pipeline=pipeline.label,
        allowed=allowed or [both(N_("no other stage"))],
        to=target.label,
        **{"from": here.label if here else deal.stage_key},
    )


def move_deal(
    session: Session,
    actor: User | None,
    deal_id: Any,
    to_stage: Any,
    *,
    clock: Clock,
    from_stage: Any = None,
    waive: bool = False,
    reason: Any = None,
) -> MoveResult:
    """Move a deal to `to_stage` or ask for approval; `from_stage` is the stage the mover saw (stale: 409)."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "deal.move", deal)
    pipeline = pipeline_for(session, deal.pipeline_version_id)
    if from_stage is not None and from_stage != deal.stage_key:
        raise _stale(pipeline, deal)
    errors = Errors()
    clean_reason = rv.text(reason, "/reason", errors, max_len=MAX_REASON)
    target = pipeline.stage(to_stage)
    route = None
    if target is None:
        errors.add("/to_stage", N_("Unknown stage %(key)s."), key=to_stage)
    elif target.key == deal.stage_key:
        errors.add("/to_stage", N_("The deal is in this stage already."))
    else:
        route = pipeline.route(deal.stage_key, target.key)
        if route is None:
            errors.items.append(_routeerror_item(pipeline, deal, target))
    errors.raise_if_any()
    assert target is not None and route is not None
    now = clock.now()
    criteria = (
        tuple(exit_status(session, deal, pipeline, now=now))
        if pipeline.gated(deal.stage_key, target.key)
        else ()
    )
    unmet = [c for c in criteria if not c.met]
    kind = route.approval_kind or ("waive_criteria" if unmet and pipeline.locked else None)
    if unmet and not waive and route.approval_kind is None:
        hint = (
            N_('Tick "waive" and give a reason to ask the approver to let the deal move anyway.')
            if pipeline.locked
            else N_('Tick "waive" and give a reason to move the deal anyway.')
        )
        items = [error_item(c.path, N_("Exit criterion not met: %(name)s"), name=c.label) for c in unmet]
        raise RecordError([*items, error_item("/waive", hint)])
    if (kind is not None or unmet) and clean_reason is None:
        message = (
            N_("Say why: the approver reads it.")
            if kind
            else N_("Give a reason for waiving the unmet criteria.")
        )
        raise rv.fail("/reason", message)
    waiting = approvals.open_move_request(session, deal.id)
    if kind is not None:
        if waiting is not None:
            raise rv.fail(
                "/to_stage",
                N_("A move of this deal waits for approval already (request #%(id)s)."),
                id=waiting.id,
            )
        return _request(session, actor, deal, pipeline, target, kind, criteria, clean_reason, clock)
    waived = _apply(
        session,
        actor,
        deal,
        pipeline,
        target,
        clock=clock,
        criteria=criteria,
        reason=clean_reason,
        waiting=waiting,
    )
    return MoveResult(deal, True, None, criteria, waived)


def _request(
    session: Session,
    actor: User | None,
    deal: Deal,
    pipeline: Pipeline,
    target: Stage,
    kind: str,
    criteria: tuple[Criterion, ...],
    reason: str | None,
    clock: Clock,
) -> MoveResult:
    payload = {
        "from_stage": deal.stage_key,
        "to_stage": target.key,
        "unmet": [{"kind": c.kind, "key": c.key, "label": dict(c.label)} for c in criteria if not c.met],
        "reason": reason,
    }
    request = approvals.open_approval(
        session,
        actor,
        kind=kind,
        deal=deal,
        rules=pipeline.approvals,
        payload=payload,
        calendar_key=pipeline.calendar,
        clock=clock,
    )
    rv.audit(session, clock, actor, "deal.move_requested", deal, approval_id=request.id, kind=kind, **payload)
    return MoveResult(deal, False, request, criteria, ())


def _apply(
    session: Session,
    actor: User | None,
    deal: Deal,
    pipeline: Pipeline,
    target: Stage,
    *,
    clock: Clock,
    criteria: tuple[Criterion, ...],
    reason: str | None,
    waiting: ApprovalRequest | None,
    approval: ApprovalRequest | None = None,
) -> tuple[str, ...]:
    """Put the deal in `target` if it is still where it was; timeline, audit, signal. Return waived keys."""
    now = clock.now()
    source = deal.stage_key
    status = target.outcome if target.closes else "open"
    changed = session.execute(
        update(Deal)
        .where(Deal.id == deal.id, Deal.stage_key == source)
        .values(
            stage_key=target.key,
            stage_entered_at=now,
            status=status,
            closed_at=now if target.closes else None,
            updated_at=now,
        )
        .execution_options(synchronize_session="evaluate")
    )
    if changed.rowcount != 1:
        session.refresh(deal)
        raise _stale(pipeline, deal)
    if waiting is not None and waiting is not approval:
        approvals.close_request(session, waiting, status="expired", reason="deal_moved", clock=clock)
    unmet = [c for c in criteria if not c.met]
    here = pipeline.stage(source)
    session.add(
        Activity(
            kind="stage_change",
            subject_type="deal",
            deal_id=deal.id,
            customer_id=deal.customer_id,
            occurred_at=now,
            actor_id=actor.id if actor is not None else None,
            owner_id=deal.owner_id,
            team_id=deal.team_id,
            summary=reason,
            data={
                "from_stage": source,
                "to_stage": target.key,
                "from_label": dict(here.label) if here else {"en": source, "zh": source},
                "to_label": dict(target.label),
                "waived": [dict(c.label) for c in unmet],
                "approval_id": approval.id if approval is not None else None,
            },
            created_at=now,
        )
    )
    session.flush()
    rv.audit(
        session,
        clock,
        actor,
        "deal.stage_change",
        deal,
        from_stage=source,
        to_stage=target.key,
        status=status,
        criteria_met=[c.path for c in criteria if c.met],
        criteria_waived=[c.path for c in unmet],
        reason=reason,
        approval_id=approval.id if approval is not None else None,
        requested_by_id=approval.requested_by_id if approval is not None else None,
    )
    send_stage_change(session, StageChange(deal, source, target.key, now, actor.id if actor else None))
    session.flush()
    return tuple(c.path for c in unmet)


@approvals.settles(*MOVE_KINDS)
def _settle_move(session: Session, actor: User | None, request: ApprovalRequest, clock: Clock) -> None:
    """Apply an approved move as the approver's (the deal must still be where the request left it)."""
    if request.status != "approved":
        return
    deal = request.deal
    pipeline = pipeline_for(session, deal.pipeline_version_id)
    target = pipeline.stage(request.payload.get("to_stage"))
    if target is None or deal.stage_key != request.payload.get("from_stage"):
        raise _stale(pipeline, deal)
    gated = pipeline.gated(deal.stage_key, target.key)
    criteria = tuple(exit_status(session, deal, pipeline, now=clock.now())) if gated else ()
    _apply(
        session,
        actor,
        deal,
        pipeline,
        target,
        clock=clock,
        criteria=criteria,
        reason=request.payload.get("reason"),
        waiting=request,
        approval=request,
    )


def enter_initial_stage(session: Session, actor: User | None, deal: Deal) -> None:
    """Announce a new deal's entry into its initial stage (`send_stage_change` with no source stage)."""
    change = StageChange(deal, None, deal.stage_key, deal.stage_entered_at, actor.id if actor else None)
    send_stage_change(session, change)


# --- key nodes and planned actions -----------------------------------------------------------------------


def complete_key_node(
    session: Session, actor: User | None, deal_id: Any, node_key: Any, *, clock: Clock
) -> DealKeyNode:
    """Tick a key node of the deal's current stage, on the evidence of an interaction of its kind there."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "deal.key_node", deal)
    pipeline = pipeline_for(session, deal.pipeline_version_id)
    stage = pipeline.stage(deal.stage_key)
    node = next((n for n in stage.key_nodes if n.key == node_key), None) if stage else None
    if stage is None or node is None:
        raise rv.fail("/key_node", N_("%(key)s is not a key node of this deal's stage."), key=node_key)
    existing = session.scalar(
        select(DealKeyNode).where(DealKeyNode.deal_id == deal.id, DealKeyNode.node_key == node.key)
    )
    if existing is not None:
        return existing
    evidence = session.scalar(
        select(Activity.id)
        .where(Activity.deal_id == deal.id, Activity.occurred_at >= deal.stage_entered_at)
        .where(Activity.kind.in_(node.activity_types))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(1)
    )
    if evidence is None:
        raise RecordError(
            [
                error_item(
                    "/key_node",
                    N_("Log %(kinds)s for this deal in this stage first: that is the evidence for %(node)s."),
                    kinds=kind_names(node.activity_types),
                    node=node.label,
                )
            ]
        )
    row = DealKeyNode(
        deal_id=deal.id,
        node_key=node.key,
        stage_key=stage.key,
        activity_id=evidence,
        done_by_id=actor.id if actor is not None else None,
        done_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # ticked by someone else at the same moment
        return session.scalars(
            select(DealKeyNode).where(DealKeyNode.deal_id == deal.id, DealKeyNode.node_key == node.key)
        ).one()
    rv.audit(
        session, clock, actor, "deal.key_node", deal, node=node.key, stage=row.stage_key, activity_id=evidence
    )
    return row


def refuse_unplanned_activity(session: Session, deal: Deal, kind: str) -> None:
    """Refuse logging `kind` on a deal whose locked-pipeline stage plans other actions (RecordError)."""
    try:
        pipeline = pipeline_for(session, deal.pipeline_version_id)
    except LookupError:
        return
    stage = pipeline.stage(deal.stage_key)
    if not pipeline.locked or stage is None or stage.preset_actions is None or kind in stage.preset_actions:
        return
    planned = [k for k in LOGGED_KINDS if k in stage.preset_actions]
    raise RecordError(
        [
            error_item(
                "/kind",
                N_("%(stage)s is a locked stage: log one of its planned actions (%(kinds)s)."),
                stage=stage.label,
                kinds=kind_names(planned),
            )
        ]
    )
