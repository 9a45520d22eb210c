"""A pipeline definition compiled for the runtime: stages, key nodes, exit criteria, routes between stages.

`compile_pipeline(document)` turns a pipeline document into a frozen `Pipeline` once: stages in order with
their key nodes and exit criteria (JsonLogic conditions compiled by `salesmesh.metamodel.conditions`), the
transitions, and the approval rules. `pipeline_for(session, version_id)` returns the compiled pipeline a
deal pinned, cached by (database, version id) for published and archived versions (they are immutable, so
a warm cache costs no query) and by (version id, checksum) otherwise.

Routes (`Pipeline.route`): a locked pipeline allows only its listed transitions (without any listed, the
next stage in order and the lost stages; a further jump is a skip); a free pipeline allows any stage when
`allow_any` is set or no transitions are listed, else its listed transitions. A transition marked
`requires_approval` needs the approver in both modes: a jump forward over stages is a `skip_stage`, any
other (reopening a lost deal) a `transition`. Exit criteria gate moves forward to a later open or won stage;
moving back or to a lost stage never needs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.metamodel.conditions import Condition, ConditionError, compile_condition
from salesmesh.metamodel.models import DefinitionVersion

Label = Mapping[str, str]
CACHE_SIZE = 256
DEFAULT_APPROVER = "team_lead"
DEFAULT_DEADLINE_HOURS = 24.0
DEFAULT_ON_DEADLINE = "escalate"


class PipelineUnavailable(LookupError):
    """A deal's pipeline version is missing or cannot be compiled; `errors` lists {path, message}."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass(frozen=True)
class ApprovalRules:
    """Who approves a deviation, within how many (working) hours, and what happens at the deadline."""

    approver: str = DEFAULT_APPROVER
    deadline_hours: float = DEFAULT_DEADLINE_HOURS
    on_deadline: str = DEFAULT_ON_DEADLINE


@dataclass(frozen=True)
class KeyNode:
    key: str
    label: Label
    stage_key: str
    activity_types: tuple[str, ...]
    required: bool
    description: Label | None


@dataclass(frozen=True)
class RequiredActivity:
    activity_type: str
    min_count: int
    label: Label | None


@dataclass(frozen=True)
class ExitCriteria:
    required_fields: tuple[str, ...] = ()
    required_key_nodes: tuple[str, ...] = ()
    required_activities: tuple[RequiredActivity, ...] = ()
    condition: Condition | None = None
    description: Label | None = None

    @property
    def empty(self) -> bool:
        """Tell whether the stage has no exit criteria at all."""
        return not (
            self.required_fields or self.required_key_nodes or self.required_activities or self.condition
        )


@dataclass(frozen=True)
class Stage:
    key: str
    label: Label
    index: int
    probability: int
    outcome: str  # open | won | lost
    description: Label | None
    key_nodes: tuple[KeyNode, ...]
    exit: ExitCriteria
    preset_actions: frozenset[str] | None  # None: any kind may be logged
    action_packs: tuple[str, ...]

    @property
    def closes(self) -> bool:
        """Tell whether entering this stage closes the deal (won or lost)."""
        return self.outcome != "open"


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    requires_approval: bool
    label: Label | None


@dataclass(frozen=True)
class Route:
    """An allowed move to `stage`; `approval_kind` is None, "skip_stage" or "transition"."""

    stage: Stage
    transition: Transition | None
    approval_kind: str | None


@dataclass(frozen=True, eq=False)
class Pipeline:
    key: str
    label: Label
    version_id: int | None
    checksum: str | None
    mode: str
    allow_any: bool
    initial_stage: str
    stages: tuple[Stage, ...]
    transitions: Mapping[tuple[str, str], Transition]
    calendar: str | None
    deal_form: str | None
    approvals: ApprovalRules
    by_key: Mapping[str, Stage] = field(repr=False)
    nodes: Mapping[str, KeyNode] = field(repr=False)

    @property
    def locked(self) -> bool:
        return self.mode == "locked"

    def stage(self, key: Any) -> Stage | None:
        """Return the stage called `key`, or None."""
        return self.by_key.get(key) if isinstance(key, str) else None

    def _free_for_all(self) -> bool:
        return not self.locked and (self.allow_any or not self.transitions)

    def route(self, source: str, target: str) -> Route | None:
        """Return how a deal may move from stage `source` to `target`, or None when it may not."""
        here, there = self.by_key.get(source), self.by_key.get(target)
        if here is None or there is None or here.key == there.key:
            return None
        transition = self.transitions.get((source, target))
        if transition is None and not self._free_for_all():
            if self.transitions:
                return None
            # A locked pipeline without listed transitions: the next stage, any lost stage, or a skip.
            if there.index == here.index + 1 or there.outcome == "lost":
                return Route(there, None, None)
            return (
                Route(there, None, "skip_stage")
                if there.index > here.index and here.outcome == "open"
                else None
            )
        if transition is None or not transition.requires_approval:
            return Route(there, transition, None)
        skip = there.index > here.index + 1 and there.outcome != "lost"
        return Route(there, transition, "skip_stage" if skip else "transition")

    def routes(self, source: str) -> list[Route]:
        """Return every allowed move out of stage `source`, in stage order."""
        found = (self.route(source, stage.key) for stage in self.stages)
        return [r for r in found if r is not None]

    def gated(self, source: str, target: str) -> bool:
        """Tell whether a move must meet the exit criteria of `source` (forward to an open or won stage)."""
        here, there = self.by_key.get(source), self.by_key.get(target)
        if here is None or there is None:
            return False
        return here.outcome == "open" and there.outcome != "lost" and there.index > here.index


# --- compiling -------------------------------------------------------------------------------------------


def _label(value: Any) -> Label | None:
    return dict(value) if isinstance(value, Mapping) else None


def _exit(raw: Mapping[str, Any], path: str, errors: list[dict[str, str]]) -> ExitCriteria:
    condition = None
    if raw.get("condition") is not None:
        try:
            condition = compile_condition(raw["condition"], base_path=f"{path}/condition")
        except ConditionError as exc:
            errors.extend(exc.errors)
    return ExitCriteria(
        required_fields=tuple(raw.get("required_fields") or ()),
        required_key_nodes=tuple(raw.get("required_key_nodes") or ()),
        required_activities=tuple(
            RequiredActivity(a["activity_type"], int(a.get("min_count", 1)), _label(a.get("label")))
            for a in raw.get("required_activities") or ()
        ),
        condition=condition,
        description=_label(raw.get("description")),
    )


def compile_pipeline(
    document: Mapping[str, Any], *, version_id: int | None = None, checksum: str | None = None
) -> Pipeline:
    """Compile a pipeline document; raise PipelineUnavailable when a condition does not compile."""
    errors: list[dict[str, str]] = []
    stages: list[Stage] = []
    nodes: dict[str, KeyNode] = {}
    for index, raw in enumerate(document.get("stages") or ()):
        path = f"/stages/{index}"
        key_nodes = tuple(
            KeyNode(
                key=n["key"],
                label=dict(n["label"]),
                stage_key=raw["key"],
                activity_types=tuple(n.get("activity_types") or ()),
                required=bool(n.get("required", False)),
                description=_label(n.get("description")),
            )
            for n in raw.get("key_nodes") or ()
        )
        for node in key_nodes:
            nodes.setdefault(node.key, node)
        preset = raw.get("preset_actions")
        stages.append(
            Stage(
                key=raw["key"],
                label=dict(raw["label"]),
                index=index,
                probability=int(raw.get("probability", 0)),
                outcome=raw.get("outcome", "open"),
                description=_label(raw.get("description")),
                key_nodes=key_nodes,
                exit=_exit(raw.get("exit_criteria") or {}, f"{path}/exit_criteria", errors),
                preset_actions=frozenset(preset) if preset else None,
                action_packs=tuple(raw.get("action_packs") or ()),
            )
        )
    if not stages:
        raise PipelineUnavailable(f"pipeline {document.get('key')!r} has no stages")
    if errors:
        raise PipelineUnavailable(f"pipeline {document.get('key')!r} does not compile", errors)
    by_key = {s.key: s for s in stages}
    wanted = document.get("initial_stage")
    rules = document.get("approvals") or {}
    return Pipeline(
        key=str(document.get("key", "")),
        label=dict(document.get("label") or {}),
        version_id=version_id,
        checksum=checksum,
        mode=document.get("mode", "free"),
        allow_any=bool(document.get("allow_any", False)),
        initial_stage=wanted if wanted in by_key else stages[0].key,
        stages=tuple(stages),
        transitions={
            (t["from"], t["to"]): Transition(
                t["from"], t["to"], bool(t.get("requires_approval", False)), _label(t.get("label"))
            )
            for t in document.get("transitions") or ()
        },
        calendar=document.get("calendar"),
        deal_form=document.get("deal_form"),
        approvals=ApprovalRules(
            approver=rules.get("approver", DEFAULT_APPROVER),
            deadline_hours=float(rules.get("deadline_hours", DEFAULT_DEADLINE_HOURS)),
            on_deadline=rules.get("on_deadline", DEFAULT_ON_DEADLINE),
        ),
        by_key=by_key,
        nodes=nodes,
    )


# --- the cache -------------------------------------------------------------------------------------------

_LOCK = threading.Lock()
_BY_CHECKSUM: OrderedDict[tuple[int, str], Pipeline] = OrderedDict()
_FROZEN: OrderedDict[tuple[str, int], Pipeline] = OrderedDict()


def _remember(cache: OrderedDict[Any, Pipeline], key: Any, pipeline: Pipeline) -> None:
    cache[key] = pipeline
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def pipeline_for(session: Session, version_id: int) -> Pipeline:
    """Return the compiled pipeline version a deal pinned (no query when warm), or PipelineUnavailable."""
    database = str(session.get_bind().url)
    with _LOCK:
        found = _FROZEN.get((database, version_id))
    if found is not None:
        return found
    version = session.get(DefinitionVersion, version_id)
    document = version.document if version is not None else None
    if not isinstance(document, Mapping) or document.get("kind") != "pipeline":
        raise PipelineUnavailable(f"pipeline version {version_id} does not exist")
    assert version is not None
    with _LOCK:
        found = _BY_CHECKSUM.get((version.id, version.checksum))
    if found is None:
        found = compile_pipeline(document, version_id=version.id, checksum=version.checksum)
    with _LOCK:
        _remember(_BY_CHECKSUM, (version.id, version.checksum), found)
        if version.status != "draft":
            _remember(_FROZEN, (database, version.id), found)
    return found


def clear_pipeline_cache() -> None:
    """Forget every compiled pipeline (tests, and after restoring a database)."""
    with _LOCK:
        _BY_CHECKSUM.clear()
        _FROZEN.clear()
