"""The one access policy: which rows an actor may see and which actions an actor may perform.

Record scope is a table keyed by table name (`SCOPES`): for each role a function that returns the
WHERE clause limiting a query on that model to the actor's rows. `scope()` applies it to any select
(lists, counts, exports, search), `get_or_404()` fetches one row through the same clause so a foreign id
answers 404, and `can()`/`require()` answer action questions from the `ACTIONS` table. Everything not
in the tables is denied: an unknown model gives no rows, an unknown action is refused, and so is an
anonymous (`None`) or deactivated actor. Services that run as the system (CLI, demo seeder, jobs) pass
`actor=None` and skip the policy explicitly; the policy itself never grants anything to `None`.

The rules, by role:

- leads: admin/ops all; lead: leads of their team (the lead's `team_id` or the team they lead), leads
  owned by a member of that team, their own, and the open pool; rep: their own plus the open pool
  (status "pooled" with no owner).
- customers, contacts, deals, activities, tasks: admin/ops all; lead: their team's (the row's `team_id`,
  an owner in the team, or their own); rep: their own (`owner_id`; a task's owner is its assignee, an
  activity's the owner of the record it was logged on).
- users: admin/ops all; lead: themselves and the members of their team; rep: themselves and teammates.
- teams: every active user sees the list of teams (names appear in routing, pools and boards).
- approval requests: admin/ops all; lead: their team's, those naming them as approver, their own; rep:
  the ones they asked for. Deciding: ops/admin any they see, a lead those addressed to a team lead.
- lead import runs: admin/ops only (importing too).
- definitions, definition versions: admin/ops only. pack installs, audit events: admin only.
- failed action-pack steps: admin/ops list and retry them.
- the team board: a lead sees the teams they lead, ops/admin any team or all; reps have none (their own
  deals and lights are in "My day" and the deal list).
- api tokens, user sessions: the owner, and admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.orm import Session, object_session
from werkzeug.exceptions import Forbidden, NotFound

from salesmesh.platform.models import ROLES, Team, User

POOLED = "pooled"

Rule = Callable[[User, Any], ColumnElement[bool]]


# --- scope rules ------------------------------------------------------------------------------------


def _all(actor: User, model: Any) -> ColumnElement[bool]:
    return true()


def _led_team_ids(actor: User) -> Select[Any]:
    """Ids of the teams a lead answers for: their own team and any team naming them as lead."""
    clauses = [Team.lead_id == actor.id]
    if actor.team_id is not None:
        clauses.append(Team.id == actor.team_id)
    return select(Team.id).where(or_(*clauses))


def _pool(model: Any) -> ColumnElement[bool]:
    return and_(model.status == POOLED, model.owner_id.is_(None))


def own_records(*, pool: bool) -> Rule:
    """Rule for owned records (`owner_id`): the actor's own, plus the open pool when `pool`."""

    def rule(actor: User, model: Any) -> ColumnElement[bool]:
        mine = model.owner_id == actor.id
        return or_(mine, _pool(model)) if pool else mine

    return rule


def team_records(*, pool: bool) -> Rule:
    """Rule for a lead: records of their team (`team_id`), owned by a member, or their own (+ pool)."""

    def rule(actor: User, model: Any) -> ColumnElement[bool]:
        teams = _led_team_ids(actor)
        members = select(User.id).where(User.team_id.in_(teams))
        clauses = [model.team_id.in_(teams), model.owner_id.in_(members), model.owner_id == actor.id]
        if pool:
            clauses.append(_pool(model))
        return or_(*clauses)

    return rule


def _team_users(actor: User, model: Any) -> ColumnElement[bool]:
    return or_(model.id == actor.id, model.team_id.in_(_led_team_ids(actor)))


def _teammates(actor: User, model: Any) -> ColumnElement[bool]:
    if actor.team_id is None:
        return model.id == actor.id
    return or_(model.id == actor.id, model.team_id == actor.team_id)


def _owned(actor: User, model: Any) -> ColumnElement[bool]:
    return model.user_id == actor.id


def _own_or_team_shared(actor: User, model: Any) -> ColumnElement[bool]:
    """Own rows (`user_id`) and rows shared (`shared_with_team`) within a team the actor is in or leads."""
    mine = [Team.id == actor.team_id] if actor.team_id is not None else []
    teams = select(Team.id).where(or_(Team.lead_id == actor.id, *mine))
    sharers = select(User.id).where(User.team_id.in_(teams))
    return or_(model.user_id == actor.id, model.shared_with_team.is_(True) & model.user_id.in_(sharers))


def _approvals_for_lead(actor: User, model: Any) -> ColumnElement[bool]:
    """A lead sees the approval requests of their team, those naming them, and their own."""
    return or_(
        model.team_id.in_(_led_team_ids(actor)),
        model.approver_id == actor.id,
        model.requested_by_id == actor.id,
    )


def _own_requests(actor: User, model: Any) -> ColumnElement[bool]:
    return model.requested_by_id == actor.id


# Business records other than leads: a lead sees their team's, a rep their own, no pool.
_TEAM_OWNED: Mapping[str, Rule] = {
    "admin": _all,
    "ops": _all,
    "lead": team_records(pool=False),
    "rep": own_records(pool=False),
}

# table name → role → rule. A role missing from a row sees nothing of that model.
SCOPES: dict[str, Mapping[str, Rule]] = {
    "leads": {"admin": _all, "ops": _all, "lead": team_records(pool=True), "rep": own_records(pool=True)},
    "customers": _TEAM_OWNED,
    "contacts": _TEAM_OWNED,
    "deals": _TEAM_OWNED,
    "activities": _TEAM_OWNED,
    "tasks": _TEAM_OWNED,
    "users": {"admin": _all, "ops": _all, "lead": _team_users, "rep": _teammates},
    "teams": {"admin": _all, "ops": _all, "lead": _all, "rep": _all},
    "definitions": {"admin": _all, "ops": _all},
    "definition_versions": {"admin": _all, "ops": _all},
    "pack_installs": {"admin": _all},
    "audit_events": {"admin": _all},
    "api_tokens": {"admin": _all, "ops": _owned, "lead": _owned, "rep": _owned},
    "user_sessions": {"admin": _all, "ops": _owned, "lead": _owned, "rep": _owned},
    "saved_views": {role: _own_or_team_shared for role in ("admin", "ops", "lead", "rep")},
    "import_runs": {"admin": _all, "ops": _all},
    "approval_requests": {"admin": _all, "ops": _all, "lead": _approvals_for_lead, "rep": _own_requests},
}


def _is_active(actor: User | None) -> bool:
    return actor is not None and bool(actor.active) and actor.role in ROLES


def _rule(actor: User | None, model: Any) -> Rule | None:
    if not _is_active(actor):
        return None
    rules = SCOPES.get(getattr(model, "__tablename__", ""))
    if rules is None:
        return None
    return rules.get(actor.role)  # type: ignore[union-attr]


def visibility(actor: User | None, model: Any) -> ColumnElement[bool]:
    """Return the WHERE clause limiting `model` to what `actor` may see (false when nothing)."""
    rule = _rule(actor, model)
    return false() if rule is None else rule(actor, model)  # type: ignore[arg-type]


def scope(stmt: Select[Any], actor: User | None, model: Any) -> Select[Any]:
    """Restrict a select on `model` to the rows `actor` may see."""
    return stmt.where(visibility(actor, model))


MAX_ID = 2**63 - 1


def get_or_404(session: Session, actor: User | None, model: Any, ident: Any) -> Any:
    """Fetch one row of `model` by id through the actor's scope, or raise NotFound (a foreign id is 404)."""
    try:
        key = int(ident)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not 0 < key <= MAX_ID:  # past BIGINT the driver would fail; no such row can exist
        raise NotFound()
    row = session.scalars(scope(select(model).where(model.id == key), actor, model)).first()
    if row is None:
        raise NotFound()
    return row


def is_visible(actor: User | None, obj: Any) -> bool:
    """Return True when the row `obj` lies inside the actor's scope (asks the database)."""
    model = type(obj)
    session = object_session(obj)
    if session is None or _rule(actor, model) is None:
        return False
    stmt = scope(select(model.id).where(model.id == obj.id), actor, model)
    return session.scalar(stmt) is not None


# --- actions ----------------------------------------------------------------------------------------

Check = Callable[[User, Any], bool]


def _roles(*allowed: str) -> Check:
    def check(actor: User, obj: Any) -> bool:
        return actor.role in allowed

    return check


def _roles_or_self(*allowed: str) -> Check:
    """Allowed roles, or the user acting on themselves (obj is their User row)."""

    def check(actor: User, obj: Any) -> bool:
        return actor.role in allowed or (isinstance(obj, User) and obj.id == actor.id)

    return check


def _roles_or_owner(*allowed: str) -> Check:
    """Allowed roles, or the owner of a row with a `user_id` (e.g. their own API token)."""

    def check(actor: User, obj: Any) -> bool:
        if actor.role in allowed:
            return True
        return obj is not None and not isinstance(obj, type) and getattr(obj, "user_id", None) == actor.id

    return check


def _visible(actor: User, obj: Any) -> bool:
    return False if obj is None or isinstance(obj, type) else is_visible(actor, obj)


def decides_seen_approval(actor: User, obj: Any) -> bool:
    """The role rule of approval.decide, for a request already read through the actor's scope."""
    return actor.role in ("admin", "ops") or (
        actor.role == "lead" and getattr(obj, "approver_role", None) == "team_lead"
    )


def _decides_approval(actor: User, obj: Any) -> bool:
    """Ops and admins decide any request they see; a lead those addressed to a team lead in their scope."""
    return _visible(actor, obj) and decides_seen_approval(actor, obj)


ACTIONS: dict[str, Check] = {
    "user.create": _roles("admin"),
    "user.edit": _roles("admin"),
    "user.deactivate": _roles("admin"),
    "user.reactivate": _roles("admin"),
    "user.set_password": _roles_or_self("admin"),
    "user.set_locale": _roles_or_self("admin"),
    "user.view": _visible,
    "user.list": _roles("admin", "ops", "lead", "rep"),
    "rep_attributes.edit": _roles("admin", "ops"),
    "team.create": _roles("admin"),
    "team.edit": _roles("admin"),
    "token.create": _roles_or_self("admin"),
    "token.revoke": _roles_or_owner("admin"),
    "lead.view": _visible,
    "lead.edit": _visible,
    "lead.list": _roles("admin", "ops", "lead", "rep"),
    "lead.convert": _visible,
    "lead.import": _roles("admin", "ops"),
    # Record actions: `obj` is the row acted on, or for creation the parent/subject row (the customer a
    # contact or deal is added to, the lead/customer/deal an activity or task is about).
    "record.assign": _roles_or_self("admin", "ops", "lead"),  # obj: the User to become the owner
    "customer.create": _roles("admin", "ops", "lead", "rep"),
    "customer.view": _visible,
    "customer.edit": _visible,
    "customer.list": _roles("admin", "ops", "lead", "rep"),
    "contact.create": _visible,
    "contact.view": _visible,
    "contact.edit": _visible,
    "contact.list": _roles("admin", "ops", "lead", "rep"),
    "deal.create": _visible,
    "deal.view": _visible,
    "deal.edit": _visible,
    "deal.list": _roles("admin", "ops", "lead", "rep"),
    "deal.move": _visible,
    "deal.key_node": _visible,
    # The team board (salesmesh.workflows.board): leads see the teams they lead, ops/admin any or all.
    "board.view": _roles("admin", "ops", "lead"),
    "board.all_teams": _roles("admin", "ops"),
    "approval.list": _roles("admin", "ops", "lead", "rep"),
    "approval.decide": _decides_approval,
    "activity.log": _visible,
    "activity.list": _roles("admin", "ops", "lead", "rep"),
    "task.create": _visible,
    "task.complete": _visible,
    "task.list": _roles("admin", "ops", "lead", "rep"),
    "definition.view": _roles("admin", "ops"),
    "definition.edit": _roles("admin", "ops"),
    "definition.publish": _roles("admin", "ops"),
    "pack.view": _roles("admin"),
    "pack.import": _roles("admin"),
    "pack.export": _roles("admin"),
    "audit.view": _roles("admin"),
    "action_step.list_failed": _roles("admin", "ops"),
    "action_step.retry": _roles("admin", "ops"),
}


def can(actor: User | None, action: str, obj: Any = None) -> bool:
    """Return True when `actor` may perform `action` on `obj` (a row, a model class or None)."""
    check = ACTIONS.get(action)
    if check is None or not _is_active(actor):
        return False
    return bool(check(actor, obj))  # type: ignore[arg-type]


def require(actor: User | None, action: str, obj: Any = None) -> None:
    """Raise Forbidden unless `actor` may perform `action` on `obj`."""
    if not can(actor, action, obj):
        raise Forbidden(f"not allowed: {action}")
