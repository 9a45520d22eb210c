"""Saved views: a person names the filters, sort and search of a list view to open it again in one click.

A saved view stores the accepted list parameters (never `page`) as `{name: [values]}`; saving checks them
against the list view first (`lists.parse_params`), so only parameters the view declares are ever stored.
Its owner may rename, re-share, overwrite or delete it; with `shared_with_team` the people of the owner's
team — and the lead of that team — see it too (read only). Everyone else gets a 404, as for a foreign
record. Services flush and audit; the caller commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload
from werkzeug.exceptions import NotFound

from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.workflows import record_values as rv
from salesmesh.workflows.list_specs import ListView
from salesmesh.workflows.lists import ListParams
from salesmesh.workflows.models import SavedView
from salesmesh.workflows.record_values import Errors

MAX_NAME = 120
MAX_ID = 2**63 - 1
MAX_SAVED_PER_TYPE = 50
_TAKEN = N_("You already have a saved view called %(name)s.")
_OTHER_LIST = N_("This saved view belongs to another list.")
_TOO_MANY = N_("You can keep at most %(n)s saved views per list.")


def list_saved_views(session: Session, actor: User, record_type: str) -> list[SavedView]:
    """Return the saved views of a record type `actor` may open (own first, then shared), owners loaded."""
    policy.require(actor, f"{record_type}.list")
    stmt = policy.scope(
        select(SavedView)
        .options(joinedload(SavedView.user))  # the page names the sharer of each shared view
        .where(SavedView.record_type == record_type)
        .order_by((SavedView.user_id != actor.id), SavedView.name, SavedView.id),
        actor,
        SavedView,
    )
    return list(session.scalars(stmt))


def get_saved_view(session: Session, actor: User, view_id: Any) -> SavedView:
    """Return a saved view `actor` may open, or raise NotFound (also for someone else's private one)."""
    try:
        key = int(view_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not 0 < key <= MAX_ID:
        raise NotFound()  # a database integer could not hold it
    stmt = policy.scope(select(SavedView).where(SavedView.id == key), actor, SavedView)
    row = session.scalars(stmt).first()
    if row is None or not policy.can(actor, f"{row.record_type}.list"):
        raise NotFound()
    return row


def _own(session: Session, actor: User, view_id: Any) -> SavedView:
    row = get_saved_view(session, actor, view_id)
    if row.user_id != actor.id:
        raise NotFound()
    return row


def stored_params(params: ListParams) -> dict[str, list[str]]:
    """Return the parameters to store: {name: [values]} of the accepted, non-empty ones (no page)."""
    out: dict[str, list[str]] = {}
    for name, value in params.pairs:
        out.setdefault(name, []).append(value)
    return out


def query_pairs(saved: SavedView) -> list[tuple[str, str]]:
    """Return the stored parameters as URL (name, value) pairs."""
    return [(name, str(v)) for name, values in sorted((saved.params or {}).items()) for v in values]


def _name(
    session: Session, actor: User, record_type: str, raw: Any, errors: Errors, *, skip: int | None
) -> str | None:
    name = rv.text(raw, "/name", errors, max_len=MAX_NAME, required=True)
    if name is None:
        return None
    clash = session.scalar(
        select(SavedView.id).where(
            SavedView.user_id == actor.id,
            SavedView.record_type == record_type,
            SavedView.name == name,
            SavedView.id != (skip or 0),
        )
    )
    if clash is not None:
        errors.add("/name", _TAKEN, name=name)
        return None
    return name


def _audit(session: Session, clock: Clock, actor: User, action: str, row: SavedView, **payload: Any) -> None:
    record_event(
        session,
        at=clock.now(),
        actor_id=actor.id,
        action=action,
        object_type="saved_views",
        object_id=row.id,
        payload=payload,
    )


def save_view(
    session: Session,
    actor: User,
    view: ListView,
    params: ListParams,
    *,
    name: Any,
    shared_with_team: bool = False,
    clock: Clock,
) -> SavedView:
    """Save the accepted parameters of a list view under a name of the actor's."""
    policy.require(actor, f"{view.record_type}.list")
    errors = Errors()
    clean = _name(session, actor, view.record_type, name, errors, skip=None)
    count = len(
        session.scalars(
            select(SavedView.id).where(
                SavedView.user_id == actor.id, SavedView.record_type == view.record_type
            )
        ).all()
    )
    if count >= MAX_SAVED_PER_TYPE:
        errors.add("/name", _TOO_MANY, n=MAX_SAVED_PER_TYPE)
    errors.raise_if_any()
    row = SavedView(
        user_id=actor.id,
        record_type=view.record_type,
        view_key=view.key,
        name=clean,
        params=stored_params(params),
        shared_with_team=bool(shared_with_team),
        created_at=clock.now(),
    )
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise rv.fail("/name", _TAKEN, name=clean) from None
    _audit(
        session,
        clock,
        actor,
        "saved_view.create",
        row,
        view=view.key,
        name=clean,
        shared=row.shared_with_team,
    )
    return row


def update_saved_view(
    session: Session,
    actor: User,
    view_id: Any,
    *,
    name: Any = rv.UNSET,
    shared_with_team: Any = rv.UNSET,
    view: ListView | None = None,
    params: ListParams | None = None,
    clock: Clock,
) -> SavedView:
    """Rename, re-share or overwrite (with `view` and `params`) one of the actor's saved views."""
    row = _own(session, actor, view_id)
    errors = Errors()
    values: dict[str, Any] = {}
    if name is not rv.UNSET:
        values["name"] = _name(session, actor, row.record_type, name, errors, skip=row.id)
    if shared_with_team is not rv.UNSET:
        values["shared_with_team"] = bool(shared_with_team)
    if view is not None and params is not None:
        if view.record_type != row.record_type:
            raise rv.fail("/view", _OTHER_LIST)
        values.update(view_key=view.key, params=stored_params(params))
    errors.raise_if_any()
    changes = rv.changed(row, values)
    if changes:
        session.flush()
        _audit(session, clock, actor, "saved_view.update", row, fields=sorted(changes))
    return row


def delete_saved_view(session: Session, actor: User, view_id: Any, *, clock: Clock) -> None:
    """Delete one of the actor's saved views."""
    row = _own(session, actor, view_id)
    _audit(session, clock, actor, "saved_view.delete", row, name=row.name, view=row.view_key)
    session.delete(row)
    session.flush()
