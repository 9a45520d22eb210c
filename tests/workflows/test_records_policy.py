"""The role × object matrix for customers, contacts, deals, activities and tasks: what `policy.scope`
shows each actor, what `get_or_404` refuses, and which record actions each actor may take.

The world of `tests.platform.test_policy` (teams A and B, a lead for each, reps A1, A2, B1, an admin and
an ops person) gets six rows of every record type: owned by A1, A2 and B1; team A without owner; owned
by A1 but tagged team B (moved); and neither owner nor team. Expectations are written out per actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from salesmesh.platform import policy
from salesmesh.platform.models import User
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Task
from tests.platform.test_policy import ACTORS, World, build_world

ROWS = ("own_a1", "own_a2", "own_b1", "team_a_unowned", "moved_a1_in_b", "unowned")
VISIBLE = {
    "admin": set(ROWS),
    "ops": set(ROWS),
    "lead_a": {"own_a1", "own_a2", "team_a_unowned", "moved_a1_in_b"},
    "lead_b": {"own_b1", "moved_a1_in_b"},
    "rep_a1": {"own_a1", "moved_a1_in_b"},
    "rep_a2": {"own_a2"},
    "rep_b1": {"own_b1"},
}
MODELS = (Customer, Contact, Deal, Activity, Task)
# Actions about one row: allowed exactly when the actor sees the row.
ROW_ACTIONS = {
    Customer: (
        "customer.view",
        "customer.edit",
        "contact.create",
        "deal.create",
        "activity.log",
        "task.create",
    ),
    Contact: ("contact.view", "contact.edit"),
    Deal: ("deal.view", "deal.edit", "activity.log", "task.create"),
    Task: ("task.complete",),
}
CLASS_ACTIONS = (
    "customer.create",
    "customer.list",
    "contact.list",
    "deal.list",
    "activity.list",
    "task.list",
)


@dataclass
class RecordWorld:
    base: World
    rows: dict[type, dict[str, Any]]

    def name_of(self, model: type, ident: int) -> str:
        return next(name for name, row in self.rows[model].items() if row.id == ident)


def build_records(session: Any, clock: Any) -> RecordWorld:
    """Add six rows of every record type to the policy test world."""
    base = build_world(session, clock)
    now = clock.now()
    a1, a2, b1 = (base.actors[n] for n in ("rep_a1", "rep_a2", "rep_b1"))
    team_a, team_b = a1.team_id, b1.team_id
    placement = {
        "own_a1": (a1.id, team_a),
        "own_a2": (a2.id, team_a),
        "own_b1": (b1.id, team_b),
        "team_a_unowned": (None, team_a),
        "moved_a1_in_b": (a1.id, team_b),
        "unowned": (None, None),
    }
    rows: dict[type, dict[str, Any]] = {model: {} for model in MODELS}
    stamp = {"created_at": now, "data": {}}
    for name, (owner, team) in placement.items():
        scope = {"owner_id": owner, "team_id": team}
        customer = Customer(name=name, name_key=name, region_key="", updated_at=now, **scope, **stamp)
        session.add(customer)
        session.flush()
        contact = Contact(customer_id=customer.id, name=name, updated_at=now, **scope, **stamp)
        deal = Deal(
            name=name,
            customer_id=customer.id,
            pipeline_version_id=base.versions[0],
            pipeline_key="sales",
            stage_key="first",
            stage_entered_at=now,
            status="open",
            currency="CNY",
            updated_at=now,
            **scope,
            **stamp,
        )
        session.add_all([contact, deal])
        session.flush()
        activity = Activity(
            kind="call",
            subject_type="deal",
            deal_id=deal.id,
            customer_id=customer.id,
            occurred_at=now,
            **scope,
            **stamp,
        )
        task = Task(
            title=name,
            subject_type="deal",
            deal_id=deal.id,
            status="open",
            assignee_id=owner,
            team_id=team,
            **stamp,
        )
        session.add_all([activity, task])
        session.flush()
        for model, row in (
            (Customer, customer),
            (Contact, contact),
            (Deal, deal),
            (Activity, activity),
            (Task, task),
        ):
            rows[model][name] = row
    return RecordWorld(base, rows)


@pytest.fixture
def world(session: Any, clock: Any) -> RecordWorld:
    return build_records(session, clock)


@pytest.mark.parametrize("actor_name", ACTORS)
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__tablename__)
def test_scope_and_single_fetch(world: RecordWorld, session: Any, actor_name: str, model: type) -> None:
    actor = world.base.actors[actor_name]
    ids = session.scalars(policy.scope(select(model.id), actor, model)).all()  # type: ignore[attr-defined]
    assert {world.name_of(model, i) for i in ids} == VISIBLE[actor_name]
    for name, row in world.rows[model].items():
        if name in VISIBLE[actor_name]:
            assert policy.get_or_404(session, actor, model, row.id) is row
        else:
            with pytest.raises(NotFound):
                policy.get_or_404(session, actor, model, row.id)


@pytest.mark.parametrize("actor_name", ACTORS)
def test_row_actions_follow_visibility(world: RecordWorld, actor_name: str) -> None:
    actor = world.base.actors[actor_name]
    wrong = []
    for model, actions in ROW_ACTIONS.items():
        for name, row in world.rows[model].items():
            for action in actions:
                if policy.can(actor, action, row) is not (name in VISIBLE[actor_name]):
                    wrong.append(f"{action} on {model.__tablename__}/{name}")
            assert not policy.can(actor, actions[0], model), "a class is not a row anyone sees"
    assert wrong == []


def test_class_actions_and_conversion(world: RecordWorld, session: Any) -> None:
    lead = world.base.leads["own_a1"]
    for actor_name, actor in world.base.actors.items():
        for action in CLASS_ACTIONS:
            assert policy.can(actor, action, Customer), (actor_name, action)
        assert policy.can(actor, "lead.convert", lead) is (actor_name in {"admin", "ops", "lead_a", "rep_a1"})
    assert not policy.can(None, "customer.create", Customer)
    world.base.actors["admin"].active = False
    assert not policy.can(world.base.actors["admin"], "customer.list", Customer)
    assert session.scalars(policy.scope(select(Deal), world.base.actors["admin"], Deal)).all() == []


def test_who_may_give_records_to_whom(world: RecordWorld) -> None:
    actors = world.base.actors
    for giver in ("admin", "ops", "lead_a"):
        assert all(policy.can(actors[giver], "record.assign", u) for u in actors.values())
    # Reps give records only to themselves; a lead's reach is further limited to the users they see.
    assert policy.can(actors["rep_a1"], "record.assign", actors["rep_a1"])
    assert not policy.can(actors["rep_a1"], "record.assign", actors["rep_a2"])
    assert not policy.can(actors["rep_a1"], "record.assign", User)
    assert not policy.is_visible(actors["lead_a"], actors["rep_b1"])


@pytest.mark.services
def test_the_record_matrix_holds_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    with pg_runtime.db.Session() as session:
        world = build_records(session, clock)
        for actor_name in ACTORS:
            actor = world.base.actors[actor_name]
            for model in MODELS:
                ids = session.scalars(policy.scope(select(model.id), actor, model)).all()  # type: ignore[attr-defined]
                assert {world.name_of(model, i) for i in ids} == VISIBLE[actor_name], (actor_name, model)
        session.rollback()
