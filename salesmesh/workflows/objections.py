"""Objection handling: the published objection library and logging an objection on a deal.

`library_for(session, deal)` returns the published `objection_library` that applies to a deal — the one
installed by the same template pack as the deal's pipeline, else the first by key — compiled once per
version (`ObjectionLibrary`). `log_objection` records what the customer objected to and how the rep
answered: the objection type and either one of the type's standard responses or a custom response. It
is an `objection` activity on the deal (so a locked stage must plan objections) whose `data["objection"]`
holds the library, type, response (or custom text) with their labels and, for a custom response when the
library requires it, the approval request and its state. That request goes to the approver the library
names (the team lead by default) with the library's deadline, counted on the pipeline's working calendar;
its outcome — approved, rejected, escalated, expired — is written back onto the activity by the settler
registered here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import approvals
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.approval_models import ApprovalRequest
from salesmesh.workflows.models import Activity, Deal
from salesmesh.workflows.pipeline_specs import ApprovalRules, Label, pipeline_for
from salesmesh.workflows.record_values import Errors

CUSTOM_KIND = "custom_objection_response"
MAX_CUSTOM = 2000
CACHE_SIZE = 64


@dataclass(frozen=True)
class Response:
    key: str
    label: Label
    text: Label


@dataclass(frozen=True)
class ObjectionType:
    key: str
    label: Label
    description: Label | None
    responses: tuple[Response, ...]

    def response(self, key: Any) -> Response | None:
        """Return the standard response called `key`, or None."""
        return next((r for r in self.responses if r.key == key), None)


@dataclass(frozen=True, eq=False)
class ObjectionLibrary:
    key: str
    label: Label
    version_id: int | None
    custom_needs_approval: bool
    rules: ApprovalRules
    types: tuple[ObjectionType, ...]
    by_key: Mapping[str, ObjectionType] = field(repr=False)

    def type(self, key: Any) -> ObjectionType | None:
        """Return the objection type called `key`, or None."""
        return self.by_key.get(key) if isinstance(key, str) else None


def compile_library(document: Mapping[str, Any], *, version_id: int | None = None) -> ObjectionLibrary:
    """Turn an objection_library document into an `ObjectionLibrary`."""
    types = tuple(
        ObjectionType(
            key=t["key"],
            label=dict(t["label"]),
            description=dict(t["description"]) if isinstance(t.get("description"), Mapping) else None,
            responses=tuple(Response(r["key"], dict(r["label"]), dict(r["text"])) for r in t["responses"]),
        )
        for t in document.get("types") or ()
    )
    return ObjectionLibrary(
        key=str(document.get("key", "")),
        label=dict(document.get("label") or {}),
        version_id=version_id,
        # A custom answer is a deviation from the playbook: approved unless the library says otherwise.
        custom_needs_approval=bool(document.get("custom_response_requires_approval", True)),
        rules=ApprovalRules(
            approver=document.get("approver", "team_lead"),
            deadline_hours=float(document.get("approval_deadline_hours", 24)),
            on_deadline=document.get("on_deadline", "escalate"),
        ),
        types=types,
        by_key={t.key: t for t in types},
    )


_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[int, str], ObjectionLibrary] = OrderedDict()


def library_for(session: Session, deal: Deal) -> ObjectionLibrary | None:
    """Return the published objection library for a deal (its pipeline's pack first), or None."""
    pipeline_pack = (
        select(Definition.pack_key)
        .join(DefinitionVersion, DefinitionVersion.definition_id == Definition.id)
        .where(DefinitionVersion.id == deal.pipeline_version_id)
        .scalar_subquery()
    )
    same_pack = (Definition.pack_key.is_not(None) & (Definition.pack_key == pipeline_pack)).label("same_pack")
    row = session.execute(
        select(DefinitionVersion.id, DefinitionVersion.checksum, same_pack)
        .join(Definition, DefinitionVersion.definition_id == Definition.id)
        .where(Definition.kind == "objection_library", DefinitionVersion.status == "published")
        .order_by(same_pack.desc(), Definition.key)
        .limit(1)
    ).first()
    if row is None:
        return None
    key = (row.id, row.checksum)
    with _LOCK:
        found = _CACHE.get(key)
    if found is None:
        version = session.get(DefinitionVersion, row.id)
        assert version is not None
        found = compile_library(version.document, version_id=version.id)
        with _LOCK:
            _CACHE[key] = found
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    return found


@dataclass(frozen=True)
class LoggedObjection:
    """The objection activity, and the approval request a custom response opened (if any)."""

    activity: Activity
    approval: ApprovalRequest | None


def log_objection(
    session: Session,
    actor: User | None,
    deal_id: Any,
    objection_type: Any,
    *,
    clock: Clock,
    response_key: Any = None,
    custom_text: Any = None,
    summary: Any = None,
    contact_id: Any = None,
) -> LoggedObjection:
    """Log an objection on a deal with one standard response, or a custom one (which may need approval)."""
    deal: Deal = rv.load(session, actor, Deal, deal_id)
    rv.check(actor, "activity.log", deal)
    library = library_for(session, deal)
    if library is None:
        raise rv.fail("/objection_type", N_("No objection library is published."))
    errors = Errors()
    otype = library.type(objection_type)
    if otype is None:
        errors.add("/objection_type", N_("Unknown objection type %(key)s."), key=objection_type)
    custom = rv.text(custom_text, "/custom_text", errors, max_len=MAX_CUSTOM)
    wrote = custom is not None or (isinstance(custom_text, str) and bool(custom_text.strip()))
    response = None
    if response_key not in (None, "") and wrote:
        errors.add("/response", N_("Choose a standard response or write your own, not both."))
    elif response_key in (None, "") and not wrote:
        errors.add("/response", N_("Choose one of the standard responses, or write your own."))
    elif not wrote and otype is not None:
        response = otype.response(response_key)
        if response is None:
            errors.add(
                "/response", N_("%(key)s is not a standard response to this objection."), key=response_key
            )
    errors.raise_if_any()
    assert otype is not None
    record: dict[str, Any] = {
        "library": library.key,
        "library_version_id": library.version_id,
        "type": otype.key,
        "type_label": dict(otype.label),
        "response": response.key if response else None,
        "response_label": dict(response.label) if response else None,
        "custom_text": custom,
    }
    needs_approval = custom is not None and library.custom_needs_approval
    if needs_approval:
        record["approval"] = {"id": None, "status": "pending"}
    activity = log_activity(
        session,
        actor,
        kind="objection",
        deal_id=deal.id,
        contact_id=contact_id,
        summary=summary,
        data={"objection": record},
        clock=clock,
    )
    if not needs_approval:
        return LoggedObjection(activity, None)
    request = approvals.open_approval(
        session,
        actor,
        kind=CUSTOM_KIND,
        deal=deal,
        rules=library.rules,
        payload={
            "activity_id": activity.id,
            "objection_type": otype.key,
            "type_label": dict(otype.label),
            "custom_text": custom,
        },
        calendar_key=pipeline_for(session, deal.pipeline_version_id).calendar,
        clock=clock,
    )
    activity.data = {"objection": {**record, "approval": {"id": request.id, "status": request.status}}}
    session.flush()
    return LoggedObjection(activity, request)


@approvals.settles(CUSTOM_KIND)
def _settle_custom_response(
    session: Session, actor: User | None, request: ApprovalRequest, clock: Clock
) -> None:
    """Write the request's new state onto the objection activity it is about."""
    activity = session.get(Activity, request.payload.get("activity_id"))
    if activity is None:
        return
    data = dict(activity.data or {})
    record = dict(data.get("objection") or {})
    record["approval"] = {
        "id": request.id,
        "status": request.status,
        "decided_by_id": request.decided_by_id,
        "note": request.decision_note,
    }
    activity.data = {**data, "objection": record}
