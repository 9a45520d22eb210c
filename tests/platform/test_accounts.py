"""Account services: validation with field paths, permissions, rep attributes against the published
definition, teams, tokens and the audit trail; plus the admin/ops people pages over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.exceptions import Forbidden

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import accounts
from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.credentials import digest
from salesmesh.platform.models import ApiToken, Team, User, UserSession
from salesmesh.platform.rep_attributes import parse_attribute_inputs, published_attribute_schema
from tests.platform.auth_helpers import login, post_form

REP_ATTRIBUTES = {
    "kind": "rep_attributes",
    "key": "reps",
    "schema_version": 1,
    "label": {"en": "Rep attributes", "zh": "销售人员属性"},
    "attributes": [
        {
            "key": "years_medical",
            "label": {"en": "Years in medical sales", "zh": "医疗行业年限"},
            "type": "integer",
            "min": 0,
            "max": 50,
            "required": True,
        },
        {
            "key": "skills",
            "label": {"en": "Skills", "zh": "专长"},
            "type": "string_list",
            "options": [
                {"value": "imaging", "label": {"en": "Imaging", "zh": "影像"}},
                {"value": "ivd", "label": {"en": "IVD", "zh": "体外诊断"}},
            ],
        },
        {
            "key": "seniority",
            "label": {"en": "Seniority", "zh": "资历"},
            "type": "enum",
            "options": [
                {"value": "junior", "label": {"en": "Junior", "zh": "初级"}},
                {"value": "senior", "label": {"en": "Senior", "zh": "资深"}},
            ],
        },
        {"key": "mandarin_only", "label": {"en": "Mandarin only", "zh": "仅普通话"}, "type": "boolean"},
        {"key": "quota_factor", "label": {"en": "Quota factor", "zh": "指标系数"}, "type": "number"},
        {"key": "note", "label": {"en": "Note", "zh": "备注"}, "type": "string", "max_length": 20},
    ],
}


def publish_rep_attributes(session: Any, clock: Any, document: dict[str, Any] = REP_ATTRIBUTES) -> int:
    definition = Definition(kind="rep_attributes", key=document["key"], created_at=clock.now())
    session.add(definition)
    session.flush()
    version = DefinitionVersion(
        definition_id=definition.id,
        number=1,
        status="published",
        document=document,
        checksum="0" * 64,
        schema_version=1,
        created_at=clock.now(),
        updated_at=clock.now(),
        published_at=clock.now(),
    )
    session.add(version)
    session.flush()
    return version.id


def _paths(exc: pytest.ExceptionInfo[accounts.AccountError]) -> list[str]:
    return [e["path"] for e in exc.value.errors]


def _create(session: Any, clock: Any, **overrides: Any) -> User:
    values: dict[str, Any] = {
        "email": "ana@example.test",
        "name": "Ana",
        "role": "rep",
        "password": "long enough password",
    }
    values.update(overrides)
    return accounts.create_user(session, None, clock=clock, **values)


# --- users --------------------------------------------------------------------------------------------


def test_create_user_normalises_and_audits(session: Any, clock: Any, make_team: Any) -> None:
    team = make_team()
    user = _create(session, clock, email="  Ana@Example.TEST ", team_id=team.id, locale="zh")
    assert (user.email, user.team_id, user.active, user.session_epoch, user.locale) == (
        "ana@example.test",
        team.id,
        True,
        0,
        "zh",
    )
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.create")).one()
    assert event.object_id == user.id and event.payload["email"] == "ana@example.test"
    assert "password" not in str(event.payload)
    assert verify_chain(session) is None


@pytest.mark.parametrize(
    ("overrides", "path", "text"),
    [
        ({"email": "not-an-email"}, "/email", "valid e-mail"),
        ({"email": ""}, "/email", "required"),
        ({"name": "  "}, "/name", "required"),
        ({"role": "boss"}, "/role", "Unknown role 'boss'"),
        ({"password": "short"}, "/password", "at least 10"),
        ({"team_id": 4242}, "/team_id", "Unknown team 4242"),
        ({"locale": "fr"}, "/locale", "en or zh"),
        ({"daily_capacity": -1}, "/daily_capacity", "0 to 1000"),
    ],
)
def test_create_user_rejects_bad_input(
    session: Any, clock: Any, overrides: Any, path: str, text: str
) -> None:
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, **overrides)
    assert _paths(exc) == [path]
    assert text in exc.value.errors[0]["message"]
    assert exc.value.errors[0]["message_zh"]  # every error also comes in Chinese
    assert session.scalar(select(func.count(User.id))) == 0


def test_create_user_reports_every_bad_field_at_once(session: Any, clock: Any) -> None:
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, email="x", name="", role="boss", password="1")
    assert _paths(exc) == ["/email", "/name", "/role", "/password"]


def test_duplicate_email_is_refused(session: Any, clock: Any) -> None:
    _create(session, clock)
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, email="ANA@example.test")
    assert _paths(exc) == ["/email"] and "already used" in str(exc.value)


def test_only_admin_manages_users(session: Any, clock: Any, make_user: Any) -> None:
    ops, lead, admin = make_user(role="ops"), make_user(role="lead"), make_user(role="admin")
    target = make_user(role="rep")
    for actor in (ops, lead, target):
        with pytest.raises(Forbidden):
            accounts.create_user(
                session,
                actor,
                email="z@example.test",
                name="Z",
                role="rep",
                password="long enough password",
                clock=clock,
            )
        with pytest.raises(Forbidden):
            accounts.deactivate_user(session, actor, admin.id, clock=clock)
        with pytest.raises(Forbidden):
            accounts.update_user(session, actor, target.id, role="admin", clock=clock)
    made = accounts.create_user(
        session,
        admin,
        email="z@example.test",
        name="Z",
        role="rep",
        password="long enough password",
        clock=clock,
    )
    assert (
        session.scalars(select(AuditEvent).where(AuditEvent.object_id == made.id)).one().actor_id == admin.id
    )


def test_deactivation_bumps_epoch_and_revokes_sessions_and_tokens(
    session: Any, clock: Any, make_user: Any
) -> None:
    from salesmesh.platform.credentials import start_session

    admin, rep = make_user(role="admin"), make_user(role="rep")
    start_session(session, rep, clock=clock)
    accounts.create_api_token(session, None, rep.id, label="t", clock=clock)
    accounts.deactivate_user(session, admin, rep.id, clock=clock)
    assert rep.active is False and rep.session_epoch == 1
    assert all(
        s.revoked_at for s in session.scalars(select(UserSession).where(UserSession.user_id == rep.id))
    )
    assert all(t.revoked_at for t in session.scalars(select(ApiToken).where(ApiToken.user_id == rep.id)))
    accounts.reactivate_user(session, admin, rep.id, clock=clock)
    assert rep.active is True
    # Old tokens stay dead after reactivation.
    assert all(t.revoked_at for t in session.scalars(select(ApiToken).where(ApiToken.user_id == rep.id)))


def test_the_last_admin_cannot_be_removed(session: Any, clock: Any, make_user: Any) -> None:
    admin = make_user(role="admin")
    with pytest.raises(accounts.AccountError, match="last active admin"):
        accounts.deactivate_user(session, None, admin.id, clock=clock)
    with pytest.raises(accounts.AccountError, match="last active admin"):
        accounts.update_user(session, None, admin.id, role="ops", clock=clock)
    with pytest.raises(accounts.AccountError, match="your own account"):
        accounts.deactivate_user(session, admin, admin.id, clock=clock)
    second = make_user(role="admin")
    accounts.deactivate_user(session, second, admin.id, clock=clock)
    assert admin.active is False


def test_change_password_rules(session: Any, clock: Any, make_user: Any) -> None:
    from salesmesh.platform.passwords import verify_password
    from tests.conftest import TEST_PASSWORD

    rep, other = make_user(role="rep"), make_user(role="rep")
    with pytest.raises(accounts.AccountError) as exc:
        accounts.change_password(session, rep, rep.id, "new password 123", clock=clock)
    assert _paths(exc) == ["/current_password"]
    with pytest.raises(accounts.AccountError) as exc:
        accounts.change_password(session, rep, rep.id, "short", current_password=TEST_PASSWORD, clock=clock)
    assert _paths(exc) == ["/password"]
    with pytest.raises(Forbidden):
        accounts.change_password(session, rep, other.id, "new password 123", clock=clock)
    accounts.change_password(
        session, rep, rep.id, "new password 123", current_password=TEST_PASSWORD, clock=clock
    )
    assert verify_password(rep.password_hash, "new password 123") and rep.session_epoch == 1


# --- rep attributes -----------------------------------------------------------------------------------


def test_attributes_are_checked_against_the_published_definition(session: Any, clock: Any) -> None:
    version_id = publish_rep_attributes(session, clock)
    good = {
        "years_medical": 6,
        "skills": ["imaging"],
        "seniority": "senior",
        "mandarin_only": False,
        "quota_factor": 1.2,
    }
    user = _create(session, clock, attributes=good)
    assert user.attributes == good and user.attributes_version_id == version_id

    bad = {
        "years_medical": "six",
        "skills": ["imaging", "dentistry"],
        "seniority": "guru",
        "mandarin_only": "yes",
        "quota_factor": True,
        "note": "x" * 21,
        "shoe_size": 44,
    }
    with pytest.raises(accounts.AccountError) as exc:
        accounts.update_user(session, None, user.id, attributes=bad, clock=clock)
    by_path = {e["path"]: e["message"] for e in exc.value.errors}
    assert set(by_path) == {f"/attributes/{k}" for k in bad}
    assert "whole number" in by_path["/attributes/years_medical"]
    assert "dentistry" in by_path["/attributes/skills"]
    assert "one of: junior, senior" in by_path["/attributes/seniority"]
    assert "Unknown attribute" in by_path["/attributes/shoe_size"]
    assert "20" in by_path["/attributes/note"]


def test_required_and_range_rules(session: Any, clock: Any) -> None:
    publish_rep_attributes(session, clock)
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, attributes={"skills": []})
    assert _paths(exc) == ["/attributes/years_medical"]
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, attributes={"years_medical": 51})
    assert "at most 50" in str(exc.value)


def test_required_attributes_apply_only_to_roles_that_take_leads(session: Any, clock: Any) -> None:
    publish_rep_attributes(session, clock)
    for role in ("admin", "ops"):
        user = _create(session, clock, role=role, email=f"{role}@example.test", attributes={})
        assert user.attributes == {}
    with pytest.raises(accounts.AccountError) as exc:
        _create(session, clock, role="lead", attributes={})
    assert _paths(exc) == ["/attributes/years_medical"]


def test_without_a_definition_attributes_are_plain_json(session: Any, clock: Any) -> None:
    user = _create(session, clock, attributes={"years_medical": 3, "regions": ["shanghai"]})
    assert user.attributes_version_id is None
    with pytest.raises(accounts.AccountError) as exc:
        accounts.update_user(session, None, user.id, attributes={"nested": {"a": 1}}, clock=clock)
    assert _paths(exc) == ["/attributes/nested"]


def test_ops_edits_attributes_but_not_profiles_and_leads_neither(
    session: Any, clock: Any, make_user: Any
) -> None:
    publish_rep_attributes(session, clock)
    ops, lead, rep = make_user(role="ops"), make_user(role="lead"), make_user(role="rep")
    accounts.update_user(session, ops, rep.id, attributes={"years_medical": 2}, daily_capacity=8, clock=clock)
    assert rep.attributes == {"years_medical": 2} and rep.daily_capacity == 8
    with pytest.raises(Forbidden):
        accounts.update_user(session, ops, rep.id, name="Renamed", clock=clock)
    with pytest.raises(Forbidden):
        accounts.update_user(session, lead, rep.id, attributes={"years_medical": 9}, clock=clock)
    with pytest.raises(Forbidden):
        accounts.update_user(session, rep, rep.id, attributes={"years_medical": 9}, clock=clock)


def test_form_inputs_are_typed_before_validation(session: Any, clock: Any) -> None:
    publish_rep_attributes(session, clock)
    schema = published_attribute_schema(session)
    assert schema is not None
    values, errors = parse_attribute_inputs(
        schema,
        {
            "years_medical": "7",
            "skills": ["imaging", "ivd"],
            "seniority": "junior",
            "mandarin_only": "1",
            "quota_factor": "0.8",
            "note": "",
        },
    )
    assert errors == []
    assert values == {
        "years_medical": 7,
        "skills": ["imaging", "ivd"],
        "seniority": "junior",
        "mandarin_only": True,
        "quota_factor": 0.8,
    }
    _values, errors = parse_attribute_inputs(schema, {"years_medical": "seven"})
    assert [e["path"] for e in errors] == ["/attributes/years_medical"]


def test_the_newest_published_definition_wins(session: Any, clock: Any) -> None:
    publish_rep_attributes(session, clock)
    definition = session.scalars(select(Definition).where(Definition.kind == "rep_attributes")).one()
    draft = DefinitionVersion(
        definition_id=definition.id,
        number=2,
        status="draft",
        document={
            **REP_ATTRIBUTES,
            "attributes": [{"key": "x", "label": {"en": "X", "zh": "X"}, "type": "string"}],
        },
        checksum="1" * 64,
        schema_version=1,
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(draft)
    session.flush()
    schema = published_attribute_schema(session)
    assert schema is not None and schema.spec("years_medical") is not None and schema.spec("x") is None


# --- teams and tokens ---------------------------------------------------------------------------------


def test_teams_leads_and_members(session: Any, clock: Any, make_user: Any) -> None:
    lead, rep, other_lead = make_user(role="lead"), make_user(role="rep"), make_user(role="lead")
    team = accounts.create_team(
        session, None, key="East", name={"en": "East", "zh": "华东"}, lead_id=lead.id, clock=clock
    )
    assert (team.key, team.lead_id, lead.team_id) == ("east", lead.id, team.id)
    accounts.add_team_member(session, None, team.id, rep.id, clock=clock)
    assert rep.team_id == team.id
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.create_team(session, None, key="east", name="Again", clock=clock)
    with pytest.raises(accounts.AccountError, match="role lead"):
        accounts.set_team_lead(session, None, team.id, rep.id, clock=clock)
    north = accounts.create_team(session, None, key="north", name="North", clock=clock)
    assert north.name == {"en": "North", "zh": "North"}
    with pytest.raises(accounts.AccountError, match="already leads team east"):
        accounts.set_team_lead(session, None, north.id, lead.id, clock=clock)
    with pytest.raises(accounts.AccountError, match="leads team east"):
        accounts.add_team_member(session, None, north.id, lead.id, clock=clock)
    with pytest.raises(accounts.AccountError, match="leads team east"):
        accounts.update_user(session, None, lead.id, role="rep", clock=clock)
    accounts.set_team_lead(session, None, north.id, other_lead.id, clock=clock)
    with pytest.raises(accounts.AccountError) as exc:
        accounts.create_team(session, None, key="bad key!", name="x", clock=clock)
    assert _paths(exc) == ["/key"]
    with pytest.raises(Forbidden):
        accounts.create_team(session, rep, key="mine", name="Mine", clock=clock)
    assert verify_chain(session) is None


def test_api_tokens_store_only_a_hash(session: Any, clock: Any, make_user: Any) -> None:
    rep, other = make_user(role="rep"), make_user(role="rep")
    token, secret = accounts.create_api_token(session, rep, rep.id, label="sync", clock=clock)
    assert secret.startswith("smt_") and token.token_hash == digest(secret)
    with pytest.raises(Forbidden):
        accounts.create_api_token(session, other, rep.id, label="steal", clock=clock)
    with pytest.raises(Forbidden):
        accounts.revoke_api_token(session, other, token.id, clock=clock)
    with pytest.raises(accounts.AccountError) as exc:
        accounts.create_api_token(session, rep, rep.id, label=" ", clock=clock)
    assert _paths(exc) == ["/label"]
    accounts.revoke_api_token(session, rep, token.id, clock=clock)
    assert token.revoked_at == clock.now()


def test_nothing_creates_accounts_implicitly(client: Any, session: Any) -> None:
    assert client.get("/login").status_code == 200
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/leads").status_code == 401
    assert session.scalar(select(func.count(User.id))) == 0
    assert session.scalar(select(func.count(Team.id))) == 0


# --- people pages -------------------------------------------------------------------------------------


@pytest.fixture
def staff(make_user: Any, make_team: Any, session: Any) -> dict[str, Any]:
    team = make_team(key="east")
    people = {
        "team": team,
        "admin": make_user(role="admin", email="admin@example.test", name="Ada Admin"),
        "ops": make_user(role="ops", email="ops@example.test", name="Otto Ops"),
        "rep": make_user(role="rep", email="rep@example.test", name="Rui Rep", team_id=team.id),
    }
    session.commit()
    return people


def test_admin_creates_and_deactivates_people_in_the_ui(
    client: Any, staff: dict[str, Any], session: Any
) -> None:
    login(client, "admin@example.test")
    page = client.get("/people/new")
    assert page.status_code == 200
    bad = post_form(
        client,
        "/people/new",
        {"name": "", "email": "rep@example.test", "role": "rep", "password": "short"},
        page="/people/new",
    )
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert 'id="email-error"' in html and "already used" in html
    assert 'id="password-error"' in html and 'id="name-error"' in html

    created = post_form(
        client,
        "/people/new",
        {
            "name": "Nia New",
            "email": "nia@example.test",
            "role": "rep",
            "password": "long enough password",
            "team_id": str(staff["team"].id),
        },
        page="/people/new",
    )
    assert created.status_code == 302
    nia = session.scalars(select(User).where(User.email == "nia@example.test")).one()
    assert nia.team_id == staff["team"].id
    assert "Nia New" in client.get("/people").get_data(as_text=True)

    response = post_form(client, f"/people/{nia.id}/deactivate", page=f"/people/{nia.id}")
    assert response.status_code == 302
    session.rollback()
    session.expire_all()
    assert session.get(User, nia.id).active is False
    assert "Deactivated" in client.get(f"/people/{nia.id}").get_data(as_text=True)


def test_people_admin_actions_are_forbidden_to_others(client: Any, staff: dict[str, Any]) -> None:
    login(client, "ops@example.test")
    assert client.get("/people/new").status_code == 403
    rep_id = staff["rep"].id
    assert post_form(client, f"/people/{rep_id}/deactivate", page=f"/people/{rep_id}").status_code == 403
    assert post_form(client, "/teams", {"key": "x", "name_en": "X"}, page="/people").status_code == 403
    html = client.get(f"/people/{rep_id}").get_data(as_text=True)
    assert 'data-testid="deactivate"' not in html


def test_ops_edits_rep_attributes_in_the_ui(
    client: Any, staff: dict[str, Any], session: Any, clock: Any
) -> None:
    publish_rep_attributes(session, clock)
    session.commit()
    rep_id = staff["rep"].id
    login(client, "ops@example.test")
    html = client.get(f"/people/{rep_id}").get_data(as_text=True)
    assert "Years in medical sales" in html and 'name="attr.skills"' in html

    bad = post_form(
        client, f"/people/{rep_id}/attributes", {"attr.years_medical": "99"}, page=f"/people/{rep_id}"
    )
    assert bad.status_code == 400
    assert 'id="attributes-years_medical-error"' in bad.get_data(as_text=True)

    data = {
        "attr.years_medical": "6",
        "attr.skills": ["imaging", "ivd"],
        "attr.seniority": "senior",
        "daily_capacity": "9",
        "unavailable_until": "2026-02-01T09:00",
    }
    token_page = f"/people/{rep_id}"
    from tests.platform.auth_helpers import csrf_token

    response = client.post(
        f"/people/{rep_id}/attributes", data={**data, "csrf_token": csrf_token(client, token_page)}
    )
    assert response.status_code == 302
    session.rollback()
    session.expire_all()
    rep = session.get(User, rep_id)
    assert rep.attributes == {
        "years_medical": 6,
        "skills": ["imaging", "ivd"],
        "seniority": "senior",
        "mandarin_only": False,
    }
    assert rep.daily_capacity == 9 and rep.unavailable_until.isoformat() == "2026-02-01T09:00:00+00:00"
    shown = client.get(f"/people/{rep_id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "影像" in shown and "资深" in shown


def test_admin_creates_a_team_in_the_ui(client: Any, staff: dict[str, Any], session: Any) -> None:
    login(client, "admin@example.test")
    bad = post_form(client, "/teams", {"key": "east", "name_en": "Again"})
    assert bad.status_code == 400 and "already exists" in bad.get_data(as_text=True)
    ok = post_form(client, "/teams", {"key": "west", "name_en": "West", "name_zh": "华西"})
    assert ok.status_code == 302
    assert session.scalars(select(Team).where(Team.key == "west")).one().name == {"en": "West", "zh": "华西"}
