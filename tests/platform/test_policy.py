"""The role × object matrix: what `policy.scope` shows each actor and what `get_or_404` refuses.

Two teams (A and B), a lead for each, reps A1, A2 (team A) and B1 (team B), plus an admin and an ops
person. Every expectation is written out per actor, so a change in the rules shows up here as a diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import accounts, policy
from salesmesh.platform.models import ApiToken, LoginAttempt, Team, User
from salesmesh.platform.passwords import hash_password
from salesmesh.workflows.models import Lead
from tests.conftest import TEST_PASSWORD
from tests.platform.auth_helpers import login

ACTORS = ("admin", "ops", "lead_a", "lead_b", "rep_a1", "rep_a2", "rep_b1")
ALL_LEADS = {"own_a1", "own_a2", "own_b1", "pooled", "team_a_unassigned", "moved_a1_in_b"}
ALL_USERS = set(ACTORS)

# What each actor sees. Leads: "own_xx" is owned by rep xx in their team; "pooled" is in the open pool;
# "team_a_unassigned" belongs to team A without owner; "moved_a1_in_b" is tagged team B but owned by A1.
VISIBLE_LEADS = {
    "admin": ALL_LEADS,
    "ops": ALL_LEADS,
    "lead_a": {"own_a1", "own_a2", "pooled", "team_a_unassigned", "moved_a1_in_b"},
    "lead_b": {"own_b1", "pooled", "moved_a1_in_b"},
    "rep_a1": {"own_a1", "pooled", "moved_a1_in_b"},
    "rep_a2": {"own_a2", "pooled"},
    "rep_b1": {"own_b1", "pooled"},
}
VISIBLE_USERS = {
    "admin": ALL_USERS,
    "ops": ALL_USERS,
    "lead_a": {"lead_a", "rep_a1", "rep_a2"},
    "lead_b": {"lead_b", "rep_b1"},
    "rep_a1": {"rep_a1", "rep_a2", "lead_a"},
    "rep_a2": {"rep_a2", "rep_a1", "lead_a"},
    "rep_b1": {"rep_b1", "lead_b"},
}
SEES_DEFINITIONS = {"admin", "ops"}

ACTION_MATRIX = {
    # action: roles allowed (on the model class, i.e. not about a particular row)
    "user.create": {"admin"},
    "user.deactivate": {"admin"},
    "team.create": {"admin"},
    "team.edit": {"admin"},
    "rep_attributes.edit": {"admin", "ops"},
    "definition.view": {"admin", "ops"},
    "definition.edit": {"admin", "ops"},
    "definition.publish": {"admin", "ops"},
    "pack.import": {"admin"},
    "pack.export": {"admin"},
    "lead.list": {"admin", "ops", "lead", "rep"},
}


@dataclass
class World:
    actors: dict[str, User]
    leads: dict[str, Lead]
    definitions: list[int]
    versions: list[int]

    def user_name(self, user_id: int) -> str:
        return next(name for name, u in self.actors.items() if u.id == user_id)

    def lead_name(self, lead_id: int) -> str:
        return next(name for name, lead in self.leads.items() if lead.id == lead_id)


@cache
def _password_hash() -> str:
    return hash_password(TEST_PASSWORD)


def build_world(session: Any, clock: Any) -> World:
    """Create the two teams, seven actors, six leads and one definition (works on any database)."""
    now = clock.now()
    team_a = Team(key="team-a", name={"en": "A", "zh": "A"}, created_at=now)
    team_b = Team(key="team-b", name={"en": "B", "zh": "B"}, created_at=now)
    session.add_all([team_a, team_b])
    session.flush()
    homes = {
        "admin": None,
        "ops": None,
        "lead_a": team_a,
        "lead_b": team_b,
        "rep_a1": team_a,
        "rep_a2": team_a,
        "rep_b1": team_b,
    }
    actors = {
        name: User(
            email=f"{name}@example.test",
            name=name,
            role=name.split("_")[0],
            active=True,
            team_id=team.id if team else None,
            password_hash=_password_hash(),
            attributes={},
            created_at=now,
        )
        for name, team in homes.items()
    }
    session.add_all(actors.values())
    session.flush()
    team_a.lead_id, team_b.lead_id = actors["lead_a"].id, actors["lead_b"].id

    def lead(name: str, owner: str | None, team: Team | None, status: str = "new") -> Lead:
        return Lead(
            name=name,
            source_channel="web_form",
            status=status,
            received_at=now,
            created_at=now,
            data={},
            owner_id=actors[owner].id if owner else None,
            team_id=team.id if team else None,
        )

    leads = {
        "own_a1": lead("own_a1", "rep_a1", team_a),
        "own_a2": lead("own_a2", "rep_a2", team_a),
        "own_b1": lead("own_b1", "rep_b1", team_b),
        "pooled": lead("pooled", None, None, status="pooled"),
        "team_a_unassigned": lead("team_a_unassigned", None, team_a),
        "moved_a1_in_b": lead("moved_a1_in_b", "rep_a1", team_b),
    }
    session.add_all(leads.values())
    definition = Definition(kind="pipeline", key="sales", created_at=now)
    session.add(definition)
    session.flush()
    version = DefinitionVersion(
        definition_id=definition.id,
        number=1,
        status="draft",
        document={},
        checksum="0" * 64,
        schema_version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(version)
    session.flush()
    return World(actors=actors, leads=leads, definitions=[definition.id], versions=[version.id])


@pytest.fixture
def world(session: Any, clock: Any) -> World:
    return build_world(session, clock)


@pytest.mark.parametrize("actor_name", ACTORS)
def test_lead_scope_and_single_fetch(world: World, session: Any, actor_name: str) -> None:
    actor = world.actors[actor_name]
    ids = session.scalars(policy.scope(select(Lead.id), actor, Lead)).all()
    assert {world.lead_name(i) for i in ids} == VISIBLE_LEADS[actor_name]
    for name, lead in world.leads.items():
        if name in VISIBLE_LEADS[actor_name]:
            assert policy.get_or_404(session, actor, Lead, lead.id) is lead
            assert policy.can(actor, "lead.view", lead)
        else:
            with pytest.raises(NotFound):
                policy.get_or_404(session, actor, Lead, lead.id)
            assert not policy.can(actor, "lead.view", lead)


@pytest.mark.parametrize("actor_name", ACTORS)
def test_user_scope_and_single_fetch(world: World, session: Any, actor_name: str) -> None:
    actor = world.actors[actor_name]
    ids = session.scalars(policy.scope(select(User.id), actor, User)).all()
    assert {world.user_name(i) for i in ids} == VISIBLE_USERS[actor_name]
    for name, user in world.actors.items():
        if name in VISIBLE_USERS[actor_name]:
            assert policy.get_or_404(session, actor, User, user.id) is user
        else:
            with pytest.raises(NotFound):
                policy.get_or_404(session, actor, User, user.id)


@pytest.mark.parametrize("actor_name", ACTORS)
def test_definitions_are_for_ops_and_admin(world: World, session: Any, actor_name: str) -> None:
    actor = world.actors[actor_name]
    role = actor.role
    defs = session.scalars(policy.scope(select(Definition.id), actor, Definition)).all()
    versions = session.scalars(policy.scope(select(DefinitionVersion.id), actor, DefinitionVersion)).all()
    if role in SEES_DEFINITIONS:
        assert defs == world.definitions and versions == world.versions
        assert policy.get_or_404(session, actor, Definition, world.definitions[0]).kind == "pipeline"
    else:
        assert defs == [] and versions == []
        with pytest.raises(NotFound):
            policy.get_or_404(session, actor, DefinitionVersion, world.versions[0])


@pytest.mark.parametrize("actor_name", ACTORS)
def test_everyone_sees_the_team_list(world: World, session: Any, actor_name: str) -> None:
    keys = session.scalars(policy.scope(select(Team.key), world.actors[actor_name], Team)).all()
    assert sorted(keys) == ["team-a", "team-b"]


def test_action_matrix(world: World) -> None:
    wrong = []
    for actor_name, actor in world.actors.items():
        for action, roles in ACTION_MATRIX.items():
            expected = actor.role in roles
            target = Lead if action.startswith("lead") else User
            if policy.can(actor, action, target) is not expected:
                wrong.append(f"{actor_name} {action}: expected {expected}")
            try:
                policy.require(actor, action, target)
                allowed = True
            except Forbidden:
                allowed = False
            if allowed is not expected:
                wrong.append(f"{actor_name} {action}: require() disagrees")
    assert wrong == []


def test_self_service_actions(world: World, session: Any, clock: Any) -> None:
    rep, other = world.actors["rep_a1"], world.actors["rep_a2"]
    assert policy.can(rep, "user.set_password", rep)
    assert not policy.can(rep, "user.set_password", other)
    assert policy.can(world.actors["admin"], "user.set_password", other)
    token, _secret = accounts.create_api_token(session, None, rep.id, label="x", clock=clock)
    assert policy.can(rep, "token.revoke", token)
    assert not policy.can(other, "token.revoke", token)
    assert not policy.can(other, "token.revoke", ApiToken)  # a class is not a row anyone owns
    assert policy.can(world.actors["admin"], "token.revoke", token)
    assert session.scalars(policy.scope(select(ApiToken.id), other, ApiToken)).all() == []


def test_deny_by_default(world: World, session: Any, make_lead: Any) -> None:
    admin = world.actors["admin"]
    # A model nobody registered: no rows, even for an admin.
    session.add(
        LoginAttempt(email="x@example.test", ip="1.2.3.4", at=world.leads["pooled"].received_at, reason="t")
    )
    session.flush()
    assert session.scalars(policy.scope(select(LoginAttempt), admin, LoginAttempt)).all() == []
    with pytest.raises(NotFound):
        policy.get_or_404(session, admin, LoginAttempt, 1)
    # An action nobody registered.
    assert not policy.can(admin, "lead.delete_everything", Lead)
    # No actor, or a deactivated one, sees and may do nothing.
    assert session.scalars(policy.scope(select(Lead), None, Lead)).all() == []
    assert not policy.can(None, "lead.list", Lead)
    admin.active = False
    assert session.scalars(policy.scope(select(Lead), admin, Lead)).all() == []
    assert not policy.can(admin, "user.create", User)
    # A malformed id is a 404, not a 500.
    with pytest.raises(NotFound):
        policy.get_or_404(session, world.actors["ops"], Lead, "1 or 1=1")


def test_lead_without_team_sees_own_and_pool(session: Any, make_user: Any, make_lead: Any) -> None:
    loner = make_user(role="lead")
    mine = make_lead(owner_id=loner.id)
    pooled = make_lead(status="pooled")
    make_lead(owner_id=make_user(role="rep").id)
    ids = set(session.scalars(policy.scope(select(Lead.id), loner, Lead)))
    assert ids == {mine.id, pooled.id}


def test_a_claimed_pooled_lead_leaves_the_pool(world: World, session: Any) -> None:
    lead = world.leads["pooled"]
    lead.owner_id = world.actors["rep_b1"].id  # status still says pooled, but it has an owner now
    session.flush()
    with pytest.raises(NotFound):
        policy.get_or_404(session, world.actors["rep_a1"], Lead, lead.id)


@pytest.mark.services
def test_the_matrix_holds_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    with pg_runtime.db.Session() as session:
        world = build_world(session, clock)
        for actor_name, actor in world.actors.items():
            leads = session.scalars(policy.scope(select(Lead.id), actor, Lead)).all()
            assert {world.lead_name(i) for i in leads} == VISIBLE_LEADS[actor_name], actor_name
            users = session.scalars(policy.scope(select(User.id), actor, User)).all()
            assert {world.user_name(i) for i in users} == VISIBLE_USERS[actor_name], actor_name
            with pytest.raises(NotFound):
                policy.get_or_404(session, actor, Lead, 10**9)
        session.rollback()


# --- the same over HTTP -------------------------------------------------------------------------------


def test_lead_api_answers_404_for_a_foreign_id(world: World, session: Any, client: Any, app: Any) -> None:
    session.commit()
    login(client, world.actors["rep_a1"].email)
    listing = client.get("/api/v1/leads?limit=200")
    assert listing.status_code == 200
    body = listing.get_json()
    assert {world.lead_name(item["id"]) for item in body["items"]} == VISIBLE_LEADS["rep_a1"]
    assert body["total"] == len(VISIBLE_LEADS["rep_a1"])
    assert (
        client.get(f"/api/v1/leads/{world.leads['own_a1'].id}").get_json()["name"]
        == world.leads["own_a1"].name
    )
    foreign = client.get(f"/api/v1/leads/{world.leads['own_b1'].id}")
    assert foreign.status_code == 404
    assert foreign.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/leads/999999").status_code == 404  # same answer as a foreign id
    assert client.get("/api/v1/leads?status=pooled").get_json()["total"] == 1
    assert client.get("/api/v1/leads?status=nonsense").status_code == 400
    assert client.get("/api/v1/leads?limit=100000").status_code == 400

    lead_client = app.test_client()
    login(lead_client, world.actors["lead_a"].email)
    assert lead_client.get(f"/api/v1/leads/{world.leads['own_a2'].id}").status_code == 200
    assert lead_client.get(f"/api/v1/leads/{world.leads['own_b1'].id}").status_code == 404


def test_people_pages_are_scoped(world: World, session: Any, client: Any) -> None:
    session.commit()
    login(client, world.actors["lead_a"].email)
    html = client.get("/people").get_data(as_text=True)
    for name in VISIBLE_USERS["lead_a"]:
        assert world.actors[name].email in html
    for name in ALL_USERS - VISIBLE_USERS["lead_a"]:
        assert world.actors[name].email not in html
    assert client.get(f"/people/{world.actors['rep_a2'].id}").status_code == 200
    assert client.get(f"/people/{world.actors['rep_b1'].id}").status_code == 404
