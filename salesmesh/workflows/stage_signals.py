"""The stage-change signal: the contract between the pipeline runtime and what reacts to stage moves.

`salesmesh.workflows.pipelines` sends `StageChange` whenever a deal enters a stage — when it is created
at its pipeline's initial stage (`from_stage` None) and on every move, including re-entry and closing
(won/lost stages). Receivers (action packs schedule or cancel their steps, lights recompute) register
with `@on_stage_change` at import and run in the sender's transaction: they may add and flush rows, must
not commit, and must not call out of the process (they schedule durable timers instead). A receiver that
raises aborts the move, so the move and its consequences are written together or not at all.
Registration is by function identity: importing a module twice does not register its receiver twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from salesmesh.workflows.models import Deal


@dataclass(frozen=True)
class StageChange:
    """A deal entered `to_stage` (from `from_stage`, None on creation) at `at`, moved by `actor_id`."""

    deal: Deal
    from_stage: str | None
    to_stage: str
    at: datetime
    actor_id: int | None


Receiver = Callable[[Session, StageChange], None]
_receivers: dict[str, Receiver] = {}


def on_stage_change(receiver: Receiver) -> Receiver:
    """Register `receiver` to run, in the mover's transaction, after every stage change."""
    _receivers[f"{receiver.__module__}.{receiver.__qualname__}"] = receiver
    return receiver


def send_stage_change(session: Session, change: StageChange) -> None:
    """Run every registered receiver for `change`, in registration order."""
    for receiver in list(_receivers.values()):
        receiver(session, change)


def registered_receivers() -> list[str]:
    """Return the dotted names of the registered receivers (start-up checks and tests)."""
    return list(_receivers)
