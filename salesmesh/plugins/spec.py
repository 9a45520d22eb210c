"""Extension points: the interfaces plugins implement and the registries that hold them.

Today this is the action kinds of action-pack steps (remind, task, email, ...). An `ActionKind` names
itself, carries the JSON Schema fragment of its `params` (compiled once, at registration), an optional
`prepare(params, pointer)` that checks and compiles params once per published pack version (templates,
field names) and raises `ActionConfigError` naming the JSON pointer, and `run(ctx, prepared)`, which does
the work inside the firing timer's transaction through an `ActionContext`. A kind may also offer
`run_many(batch, items)` for a chunk of due steps at once (set-based writes, effects recorded with
`ActionBatch.record_effects` — only the items whose ledger key was new get their effect); it returns the
items it leaves to `run` one by one, and it must not have written anything for those. Built-in kinds
register from `salesmesh.plugins.actions`; an outside package exposes an entry point in group
`salesmesh.plugins` whose object is a callable taking the `PluginRegistries` and registering its entries
the same way.
`load_plugins()` does both once per process (web app, worker, scheduler, CLI) and fails there — not when
a step first fires — on a duplicate name, an invalid schema fragment, or a kind the action-pack schema
offers that nothing implements.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from salesmesh.platform.timers import GiveUp

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from salesmesh.platform.clock import Clock
    from salesmesh.platform.models import User
    from salesmesh.platform.runtime import Runtime
    from salesmesh.platform.timers import ClaimedTimer, TimerBatch, TimerContext
    from salesmesh.workflows.models import Deal

log = logging.getLogger("salesmesh.plugins")

ENTRY_POINT_GROUP = "salesmesh.plugins"
BUILTIN_MODULES = ("salesmesh.plugins.actions",)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class PluginError(Exception):
    """A plugin cannot be registered or loaded (duplicate name, bad schema, import failure)."""


class UnknownPlugin(LookupError):
    """Nothing is registered under the name asked for."""


class ActionConfigError(ValueError):
    """An action's params cannot be used; `pointer` is the JSON pointer of the offending value."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


class ActionFailed(Exception):
    """An action could not be carried out this time (a retry may help: a mail server, a receiver)."""


class ActionImpossible(ActionFailed, GiveUp):
    """An action cannot be carried out until someone changes data (no contact e-mail, invalid value);
    the step fails at once instead of retrying (it waits on the failed-actions page)."""


@dataclass(frozen=True)
class StepInfo:
    """The pack step being fired, as an action sees it."""

    pack_key: str
    pack_version_id: int
    step_key: str
    label: Mapping[str, str]
    stage_key: str


@dataclass(frozen=True)
class ActionContext:
    """What an action's `run` gets: the firing timer's context, the deal and the step."""

    timer: TimerContext
    deal: Deal
    step: StepInfo

    @property
    def session(self) -> Session:
        return self.timer.session

    @property
    def runtime(self) -> Runtime:
        return self.timer.runtime

    @property
    def clock(self) -> Clock:
        return self.timer.clock

    @property
    def now(self) -> datetime:
        return self.timer.now

    @property
    def timer_id(self) -> int:
        return self.timer.timer.id

    def idempotency_key(self, suffix: str) -> str:
        """Return the key external calls carry for this step's effect `suffix` (same on every re-run)."""
        return f"timer:{self.timer.timer.id}:{suffix}"

    def record_effect(self, suffix: str, kind: str, payload: dict[str, Any] | None = None) -> bool:
        """Record the effect in the ledger; False when a previous run already did (then do nothing)."""
        return self.timer.record_effect(suffix, kind, payload)


@dataclass(frozen=True)
class ActionItem:
    """One due step of a batch, as `run_many` sees it: its timer, the deal and its owner (None when it has
    none), the step and the step's prepared params."""

    timer: ClaimedTimer
    deal: Deal
    owner: User | None
    step: StepInfo
    prepared: Any

    @property
    def timer_id(self) -> int:
        return self.timer.id

    def idempotency_key(self, suffix: str) -> str:
        """Return the key external calls carry for this step's effect `suffix` (same on every re-run)."""
        return f"timer:{self.timer.id}:{suffix}"


@dataclass(frozen=True)
class ActionBatch:
    """What an action's `run_many` gets besides its items: the batch's session, runtime and clock."""

    timers: TimerBatch

    @property
    def session(self) -> Session:
        return self.timers.session

    @property
    def runtime(self) -> Runtime:
        return self.timers.runtime

    @property
    def clock(self) -> Clock:
        return self.timers.clock

    @property
    def now(self) -> datetime:
        return self.timers.now

    def record_effects(
        self, effects: Sequence[tuple[ActionItem, str, str, dict[str, Any] | None]]
    ) -> list[bool]:
        """Record a ledger effect per (item, suffix, kind, payload) in one statement; False where a
        previous run already did (then do nothing for that item)."""
        return self.timers.record_effects(
            [(item.timer, suffix, kind, payload) for item, suffix, kind, payload in effects]
        )


@dataclass(frozen=True)
class ActionKind:
    """One kind of step action: its params schema fragment, params preparation and what it does."""

    name: str
    label: Mapping[str, str]
    params_schema: Mapping[str, Any]
    run: Callable[[ActionContext, Any], None]
    prepare: Callable[[Mapping[str, Any], str], Any] | None = None
    # True when the effect leaves the process (e-mail, webhook): it goes out after commit, keyed.
    external: bool = False
    # Many steps at once; returns the items left to `run` (see the module docstring).
    run_many: Callable[[ActionBatch, Sequence[ActionItem]], Sequence[ActionItem]] | None = None
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise PluginError(f"action kind name {self.name!r}: lower-case letters, digits and _ (1-40)")
        try:
            Draft202012Validator.check_schema(dict(self.params_schema))
        except SchemaError as exc:
            raise PluginError(f"action kind {self.name!r}: invalid params schema: {exc.message}") from None
        object.__setattr__(self, "validator", Draft202012Validator(dict(self.params_schema)))

    def prepared(self, params: Mapping[str, Any], pointer: str) -> Any:
        """Check `params` against the schema fragment and prepare them (raise ActionConfigError)."""
        for error in sorted(self.validator.iter_errors(params), key=lambda e: list(e.absolute_path)):
            where = "".join(f"/{part}" for part in error.absolute_path)
            raise ActionConfigError(pointer + where, error.message)
        return self.prepare(params, pointer) if self.prepare is not None else params


T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one extension point; registering a name twice fails."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def register(self, name: str, entry: T, *, origin: str = "") -> T:
        """Add `entry` under `name` (PluginError when the name is taken)."""
        if name in self._entries:
            raise PluginError(
                f"{self.what} {name!r} is registered twice ({self._origin[name] or '?'} and {origin or '?'})"
            )
        self._entries[name] = entry
        self._origin[name] = origin
        return entry

    def get(self, name: str) -> T:
        """Return the entry called `name` or raise UnknownPlugin."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPlugin(
                f"unknown {self.what} {name!r} (registered: {', '.join(sorted(self._entries)) or 'none'})"
            ) from None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))


@dataclass
class PluginRegistries:
    """Every extension point's registry; handed to each plugin's register function."""

    action_kinds: Registry[ActionKind] = field(default_factory=lambda: Registry("action kind"))

    def add_action_kind(self, kind: ActionKind, *, origin: str = "") -> ActionKind:
        """Register an action kind."""
        return self.action_kinds.register(kind.name, kind, origin=origin)


REGISTRIES = PluginRegistries()
_loaded = False
_lock = threading.Lock()


def action_kinds() -> Registry[ActionKind]:
    """Return the action-kind registry, loading the plugins first if needed."""
    load_plugins()
    return REGISTRIES.action_kinds


def load_plugins(*, with_entry_points: bool = True) -> PluginRegistries:
    """Register the built-ins and every installed plugin once; raise PluginError on any conflict."""
    global _loaded
    with _lock:
        if _loaded:
            return REGISTRIES
        for module in BUILTIN_MODULES:
            importlib.import_module(module).register(REGISTRIES)
        if with_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    register = ep.load()
                except Exception as exc:
                    raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
                register(REGISTRIES)
        check_action_kinds(REGISTRIES)
        _loaded = True
        log.info("plugins loaded: action kinds %s", ", ".join(REGISTRIES.action_kinds.names()))
        return REGISTRIES


def check_action_kinds(registries: PluginRegistries) -> None:
    """Fail when the action-pack schema offers a kind no plugin implements."""
    from salesmesh.metamodel.kinds import load_schema

    offered = load_schema("action_pack.json")["$defs"]["action"]["properties"]["kind"]["enum"]
    missing = [name for name in offered if name not in registries.action_kinds]
    if missing:
        raise PluginError(f"action kinds offered by the action_pack schema have no plugin: {missing}")
