"""Exit criteria of a deal's stage, and the bilingual messages the pipeline services answer with.

`exit_status` checks the criteria of the stage a deal is in, in definition order: required fields (a
standard deal column named in `STANDARD_FIELDS`, or a form field, non-empty), required key nodes (done on
this deal, whichever stage they belong to), required activities (logged on the deal since it entered the
stage, at least `min_count`) and the stage's JsonLogic condition (read against `deal_facts`: the standard
fields overlaid by the form data). Each comes back as a `Criterion` with a bilingual label, so a refusal
can name what is missing in the reader's language; `load_progress` reads what the deal did in its stage
in at most two statements. `both` and `error_item` build {"en", "zh"} labels and {path, message,
message_zh} error items whose parameters are themselves labels or message ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.forms.compile import FormSpec, spec_for_version_id
from salesmesh.platform.i18n import LOCALES, N_, gettext, label
from salesmesh.workflows.models import ACTIVITY_KIND_NAMES, LOGGED_KINDS, Activity, Deal
from salesmesh.workflows.pipeline_models import DealKeyNode
from salesmesh.workflows.pipeline_specs import Label, Pipeline

# Standard deal columns an exit criterion may require, with their display names.
STANDARD_FIELDS = {
    "name": N_("Deal name"),
    "amount": N_("Amount"),
    "currency": N_("Currency"),
    "expected_close": N_("Expected close"),
    "next_step": N_("Next step"),
    "next_step_due_at": N_("Next step by"),
    "primary_contact_id": N_("Primary contact"),
}


# --- bilingual messages ----------------------------------------------------------------------------------


def _param(value: Any, locale: str) -> str:
    if isinstance(value, Mapping):
        return label(value, locale)
    if isinstance(value, tuple):  # message ids (e.g. activity kind names), translated and listed
        return ("、" if locale == "zh" else ", ").join(_param(v, locale) for v in value)
    if isinstance(value, list):
        return ("、" if locale == "zh" else ", ").join(_param(v, locale) for v in value)
    return gettext(value, locale) if isinstance(value, Msg) else str(value)


class Msg(str):
    """A message id to translate when it fills a placeholder."""


def both(message: str, **params: Any) -> dict[str, str]:
    """Return `message` in English and Chinese as a label; params may be labels, Msg ids or tuples."""
    return {loc: gettext(message, loc, **{k: _param(v, loc) for k, v in params.items()}) for loc in LOCALES}


def error_item(path: str, message: str, **params: Any) -> dict[str, str]:
    """Return one error item {path, message, message_zh}; params may be labels, Msg ids or lists."""
    text = both(message, **params)
    return {"path": path, "message": text["en"], "message_zh": text["zh"]}


def kind_names(kinds: Any) -> tuple[Msg, ...]:
    """Return the display names of activity kinds, to list in a message."""
    return tuple(Msg(ACTIVITY_KIND_NAMES.get(k, k)) for k in kinds)


# --- exit criteria ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One exit criterion of a stage and whether the deal meets it (`have`/`need` for activity counts)."""

    kind: str  # field | key_node | activity | condition
    key: str
    label: Label
    met: bool
    have: int | None = None
    need: int | None = None

    @property
    def path(self) -> str:
        return f"/criteria/{self.kind}/{self.key}"


@dataclass(frozen=True)
class Progress:
    """What a deal did in its current stage: key nodes done (any stage) and activities logged by kind."""

    done: Mapping[str, DealKeyNode]
    counts: Mapping[str, int]


def load_progress(session: Session, deal: Deal, *, nodes: bool = True, counts: bool = True) -> Progress:
    """Read the deal's done key nodes and its activity counts since stage entry (one statement each)."""
    done: dict[str, DealKeyNode] = {}
    if nodes:
        done = {
            row.node_key: row
            for row in session.scalars(select(DealKeyNode).where(DealKeyNode.deal_id == deal.id))
        }
    tally: dict[str, int] = {}
    if counts:
        rows = session.execute(
            select(Activity.kind, func.count())
            .where(Activity.deal_id == deal.id, Activity.occurred_at >= deal.stage_entered_at)
            .where(Activity.kind.in_(LOGGED_KINDS))
            .group_by(Activity.kind)
        )
        tally = {kind: int(n) for kind, n in rows}
    return Progress(done, tally)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict | tuple) and not value)


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def deal_facts(deal: Deal) -> dict[str, Any]:
    """Return what a stage condition reads: the deal's standard fields overlaid by its form data."""
    facts = {
        "name": deal.name,
        "amount": _json(deal.amount),
        "currency": deal.currency,
        "expected_close": _json(deal.expected_close),
        "next_step": deal.next_step,
        "stage": deal.stage_key,
        "status": deal.status,
    }
    facts = {k: v for k, v in facts.items() if v is not None}
    facts.update(deal.data or {})
    return facts


def _field_label(spec: FormSpec | None, key: str) -> Label:
    found = spec.field(key) if spec is not None else None
    if found is not None:
        return dict(found.label)
    return both(STANDARD_FIELDS[key]) if key in STANDARD_FIELDS else {"en": key, "zh": key}


def _filled(deal: Deal, key: str) -> bool:
    if key in STANDARD_FIELDS and not _empty(getattr(deal, key)):
        return True
    return not _empty((deal.data or {}).get(key))


def _form(session: Session, deal: Deal) -> FormSpec | None:
    if deal.form_version_id is None:
        return None
    try:
        return spec_for_version_id(session, deal.form_version_id)
    except LookupError:
        return None


def exit_status(
    session: Session, deal: Deal, pipeline: Pipeline, *, now: datetime, progress: Progress | None = None
) -> list[Criterion]:
    """Return each exit criterion of the deal's current stage and whether it is met (in definition order)."""
    stage = pipeline.stage(deal.stage_key)
    if stage is None or stage.exit.empty:
        return []
    crit = stage.exit
    if progress is None:
        progress = load_progress(
            session, deal, nodes=bool(crit.required_key_nodes), counts=bool(crit.required_activities)
        )
    found: list[Criterion] = []
    if crit.required_fields:
        spec = _form(session, deal)
        for key in crit.required_fields:
            found.append(Criterion("field", key, _field_label(spec, key), _filled(deal, key)))
    for key in crit.required_key_nodes:
        node = pipeline.nodes.get(key)
        found.append(
            Criterion("key_node", key, node.label if node else {"en": key, "zh": key}, key in progress.done)
        )
    for index, need in enumerate(crit.required_activities):
        have = progress.counts.get(need.activity_type, 0)
        name = need.label or both(N_("%(kind)s logged"), kind=Msg(ACTIVITY_KIND_NAMES[need.activity_type]))
        found.append(
            Criterion("activity", str(index), name, have >= need.min_count, have=have, need=need.min_count)
        )
    if crit.condition is not None:
        name = crit.description or both(N_("Stage condition"))
        found.append(
            Criterion("condition", "condition", name, crit.condition.test(deal_facts(deal), now=now))
        )
    return found
