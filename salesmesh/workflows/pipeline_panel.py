"""What the deal page shows about the deal's pipeline: its stage card and the objection form's choices.

`deal_panel` gathers, in a fixed number of statements, the deal's stage with its exit criteria (met or
not), key nodes (done, or ready to tick), the moves allowed from here, the move waiting for approval, and
the objection library when the stage lets objections be logged. The record page (`record_views`) calls
it; the posts it leads to are in `pipeline_views`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform import policy
from salesmesh.platform.models import User
from salesmesh.workflows.approval_models import APPROVAL_KIND_NAMES, APPROVER_NAMES
from salesmesh.workflows.models import ACTIVITY_KIND_NAMES, Deal
from salesmesh.workflows.objections import library_for
from salesmesh.workflows.pipelines import stage_overview
from salesmesh.workflows.record_ui import Times


def deal_panel(
    session: Session, actor: User, deal: Deal, times: Times, **posted: Any
) -> dict[str, Any] | None:
    """Return the stage card's and objection form's values for `deal` (None when its pipeline is unusable).

    `posted` carries a failed post back into the forms: `move_values`/`move_errors`,
    `objection_values`/`objection_errors`.
    """
    overview = stage_overview(session, deal, now=times.now)
    if overview is None:
        return None
    stage = overview.stage
    objections_allowed = not (
        overview.pipeline.locked
        and stage.preset_actions is not None
        and "objection" not in stage.preset_actions
    )
    return {
        "overview": overview,
        # The form-error keys unmet criteria come back under (`record_ui.service_errors`), in order.
        "criteria_keys": [c.path.lstrip("/").replace("/", "_") for c in overview.criteria],
        "can_move": policy.can(actor, "deal.move", deal),
        "can_tick": policy.can(actor, "deal.key_node", deal),
        "library": library_for(session, deal) if objections_allowed else None,
        "kind_names": ACTIVITY_KIND_NAMES,
        "approver_names": APPROVER_NAMES,
        "approval_kind_names": APPROVAL_KIND_NAMES,
        "move_values": posted.get("move_values") or {},
        "move_errors": posted.get("move_errors") or {},
        "objection_values": posted.get("objection_values") or {},
        "objection_errors": posted.get("objection_errors") or {},
    }
