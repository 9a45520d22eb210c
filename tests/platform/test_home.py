"""The start page: scoped to the viewer, bilingual, and a bounded number of SQL statements."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from salesmesh.platform.runtime import Runtime
from tests.platform.auth_helpers import login


@contextmanager
def count_statements(runtime: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", hook)


def _company(session: Any, make_team: Any, make_user: Any, make_lead: Any, leads: int) -> dict[str, Any]:
    team = make_team()
    admin = make_user(role="admin", email="admin@example.test")
    rep = make_user(role="rep", team_id=team.id, email="rep@example.test")
    other = make_user(role="rep", team_id=team.id, email="other@example.test")
    for i in range(leads):
        owner = rep if i % 2 == 0 else other
        make_lead(owner_id=owner.id, team_id=team.id, status="contacted" if i % 3 else "new")
    session.commit()
    return {"admin": admin, "rep": rep}


def test_anonymous_visitors_go_to_login(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_rep_sees_only_own_leads_in_chinese(
    client: Any, session: Any, make_team: Any, make_user: Any, make_lead: Any
) -> None:
    _company(session, make_team, make_user, make_lead, leads=10)
    login(client, "rep@example.test")
    html = client.get("/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'data-testid="lead-total">5<' in html
    assert "可见线索" in html and "网站表单" in html
    assert "组织概况" not in html  # the organisation panel is for ops/admin


def test_admin_sees_everything(
    client: Any, session: Any, make_team: Any, make_user: Any, make_lead: Any
) -> None:
    _company(session, make_team, make_user, make_lead, leads=10)
    login(client, "admin@example.test")
    html = client.get("/").get_data(as_text=True)
    assert 'data-testid="lead-total">10<' in html and "Organisation" in html


def test_statement_count_does_not_grow_with_leads(
    client: Any, runtime: Runtime, session: Any, make_team: Any, make_user: Any, make_lead: Any
) -> None:
    _company(session, make_team, make_user, make_lead, leads=3)
    login(client, "admin@example.test")
    client.get("/")
    with count_statements(runtime) as few:
        assert client.get("/").status_code == 200
    for _ in range(40):
        make_lead(owner_id=make_user(role="rep").id)
    session.commit()
    with count_statements(runtime) as many:
        assert client.get("/").status_code == 200
    assert len(many) == len(few) <= 12, many
