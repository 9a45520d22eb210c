"""The list pages: the default and named views render in English and Chinese with accessible markup
(scoped headers, aria-sort, labelled filters), undeclared parameters answer 400 naming them, rows are
scoped by the policy, the statement count does not grow with the rows, and saved views can be created,
opened, shared, renamed and deleted (CSRF-checked; someone else's private view is a 404).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.platform.audit import AuditEvent
from salesmesh.workflows.models import SavedView
from tests.platform.auth_helpers import csrf_token
from tests.workflows.conftest import publish
from tests.workflows.list_support import DEAL_VIEW, LEAD_VIEW, TASK_VIEW, count_statements, doc, sign_in


@pytest.fixture
def world(session: Any, clock: Any, people: dict[str, Any], make_lead: Any, pipeline: Any) -> dict[str, Any]:
    """Published lead/deal/task views and a few leads; committed so the app sees them."""
    publish(session, clock, LEAD_VIEW)
    publish(
        session,
        clock,
        doc(
            LEAD_VIEW,
            key="test-leads-new",
            default=False,
            position=200,
            label={"en": "New only", "zh": "仅新线索"},
            where=[{"field": "status", "operator": "eq", "value": "new"}],
        ),
    )
    publish(session, clock, DEAL_VIEW)
    publish(session, clock, TASK_VIEW)
    a1, b1 = people["rep_a1"], people["rep_b1"]
    for i, (owner, status) in enumerate([(a1, "new"), (a1, "contacted"), (b1, "new")]):
        make_lead(
            name=f"Hospital {i} of {owner.name}",
            owner_id=owner.id,
            team_id=owner.team_id,
            status=status,
            data={"grade": "tertiary_a", "beds": 100 * (i + 1), "city": "=cmd|' /C calc'!A0"},
            received_at=clock.now() - dt.timedelta(days=i),
        )
    session.commit()
    return people


@pytest.fixture
def as_user(client: Any, runtime: Any) -> Any:
    """Return a function that signs the test client in as a user (server-side session, no password)."""
    return lambda user: sign_in(client, runtime, user)


def test_anonymous_visitors_are_sent_to_login(client: Any) -> None:
    response = client.get("/lists/lead")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_default_view_renders_accessibly_and_scoped(as_user: Any, client: Any, world: dict[str, Any]) -> None:
    as_user(world["rep_a1"])
    response = client.get("/lists/lead")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Test leads" in html and "Hospital 0 of rep_a1" in html and "Hospital 1 of rep_a1" in html
    assert "rep_b1" not in html  # another team's lead
    assert html.count('<th scope="col"') == len(LEAD_VIEW["columns"])
    assert html.count('<th scope="row"') == 2
    assert 'aria-sort="descending"' in html  # the default sort: received_at desc
    for control_id in ("list-q", "f-grade", "f-min_beds", "f-name", "f-mine"):
        assert f'for="{control_id}"' in html and f'id="{control_id}"' in html
    assert 'role="search"' in html and 'class="table-scroll"' in html
    assert "Showing 1–2 of 2" in html
    assert 'href="/lists/lead/test-leads-new"' in html  # the tab of the other view


def test_chinese_page(as_user: Any, client: Any, world: dict[str, Any]) -> None:
    as_user(world["rep_a1"])
    html = client.get("/lists/lead", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "测试线索" in html and "三级甲等" in html and "搜索" in html and "导出 CSV" in html
    assert "第 1–2 条，共 2 条" in html and "新线索" in html


def test_sort_links_toggle_and_mark_the_sorted_column(
    as_user: Any, client: Any, world: dict[str, Any]
) -> None:
    as_user(world["admin"])
    html = client.get("/lists/lead/test-leads?sort=data.beds&status=new").get_data(as_text=True)
    beds_header = re.search(r'<th scope="col"[^>]*aria-sort="ascending"[^>]*>\s*<a href="([^"]+)"', html)
    assert beds_header, html
    assert "sort=-data.beds" in beds_header.group(1).replace(
        "%2E", "."
    ) and "status=new" in beds_header.group(1)
    assert html.index("Hospital 0 of rep_a1") < html.index("Hospital 2 of rep_b1")
    desc = client.get("/lists/lead/test-leads?sort=-data.beds&status=new").get_data(as_text=True)
    assert desc.index("Hospital 2 of rep_b1") < desc.index("Hospital 0 of rep_a1")
    assert 'aria-sort="descending"' in desc


def test_undeclared_parameters_answer_400_naming_them(
    as_user: Any, client: Any, world: dict[str, Any]
) -> None:
    as_user(world["admin"])
    for query, param in [
        ("bogus=1", "bogus"),
        ("sort=data.city", "sort"),
        ("status=maybe", "status"),
        ("page=x", "page"),
    ]:
        response = client.get(f"/lists/lead/test-leads?{query}")
        assert response.status_code == 400 and param in response.get_data(as_text=True), query
        api = client.get(f"/lists/lead/test-leads?{query}", headers={"Accept": "application/json"})
        assert api.status_code == 400 and api.get_json()["error"]["errors"][0]["path"] == param


def test_unknown_views_and_record_types_are_404(as_user: Any, client: Any, world: dict[str, Any]) -> None:
    as_user(world["admin"])
    assert client.get("/lists/lead/nope").status_code == 404
    assert client.get("/lists/invoice").status_code == 404
    assert client.get("/lists/customer").status_code == 200  # the built-in view: nothing published


def test_fixed_conditions_and_filters_through_the_url(
    as_user: Any, client: Any, world: dict[str, Any]
) -> None:
    as_user(world["admin"])
    html = client.get("/lists/lead/test-leads-new?grade=tertiary_a&beds.from=250").get_data(as_text=True)
    assert "Hospital 2 of rep_b1" in html and "Hospital 0 of rep_a1" not in html
    assert "Hospital 1 of rep_a1" not in html  # contacted: outside the view's fixed condition
    assert "2 filters on" in html and "Clear filters" in html


def test_pagination(
    as_user: Any, client: Any, session: Any, clock: Any, world: dict[str, Any], make_lead: Any
) -> None:
    for i in range(25):
        make_lead(
            name=f"Bulk {i:02d}", owner_id=world["admin"].id, received_at=clock.now() - dt.timedelta(hours=i)
        )
    session.commit()
    as_user(world["admin"])
    html = client.get("/lists/lead/test-leads?per_page=10&page=2").get_data(as_text=True)
    assert "Showing 11–20 of 28" in html
    assert 'aria-current="page" aria-label="Page 2"' in html
    assert 'rel="prev"' in html and 'rel="next"' in html
    assert "per_page=10&amp;page=3" in html


def test_statement_count_does_not_grow_with_rows(
    as_user: Any,
    client: Any,
    runtime: Any,
    session: Any,
    clock: Any,
    world: dict[str, Any],
    make_deal: Any,
    make_customer: Any,
) -> None:
    as_user(world["lead_a"])
    make_deal(owner_id=world["rep_a1"].id, team_id=world["rep_a1"].team_id)
    session.commit()
    client.get("/lists/deal")
    with count_statements(runtime.db.engine) as few:
        assert client.get("/lists/deal").status_code == 200
    for i in range(30):
        make_deal(customer=make_customer(name=f"Clinic {i}", owner=world["rep_a2"]))
    session.commit()
    with count_statements(runtime.db.engine) as many:
        page = client.get("/lists/deal")
    assert page.status_code == 200 and "Showing 1–25 of 31" in page.get_data(as_text=True)
    assert len(many) == len(few) <= 14, many


def test_rows_link_to_record_pages_when_they_exist(
    as_user: Any, client: Any, app: Any, world: dict[str, Any]
) -> None:
    as_user(world["admin"])
    html = client.get("/lists/lead").get_data(as_text=True)
    if "records.lead" in app.view_functions:
        assert re.search(r'<a href="/leads/\d+">Hospital 0 of rep_a1</a>', html)
    else:
        assert '<a href="/leads/' not in html


# --- saved views -------------------------------------------------------------------------------------


def _save(client: Any, name: str, query: str, shared: bool = False, view: str = "test-leads") -> Any:
    token = csrf_token(client, f"/lists/lead/{view}")
    data = {"csrf_token": token, "name": name, "query": query}
    if shared:
        data["shared"] = "1"
    return client.post(f"/lists/lead/{view}/saved", data=data)


def test_saved_views_create_open_share_rename_delete(
    as_user: Any, client: Any, session: Any, world: dict[str, Any]
) -> None:
    as_user(world["rep_a1"])
    saved = _save(client, "Big new ones", "status=new&min_beds=50&sort=-data.beds&page=3")
    assert saved.status_code == 302 and "status=new" in saved.headers["Location"]
    row = session.scalars(select(SavedView)).one()
    assert row.params == {"status": ["new"], "min_beds": ["50"], "sort": ["-data.beds"]}  # never the page
    assert row.user_id == world["rep_a1"].id and row.view_key == "test-leads" and not row.shared_with_team
    opened = client.get(f"/lists/saved/{row.id}")
    assert opened.status_code == 302
    html = client.get(opened.headers["Location"]).get_data(as_text=True)
    assert "Hospital 0 of rep_a1" in html and "Hospital 1 of rep_a1" not in html
    assert "Big new ones" in html

    # The same name twice is refused with a message; the list is shown again.
    again = _save(client, "Big new ones", "status=new")
    assert again.status_code == 302
    assert "already have a saved view" in client.get(again.headers["Location"]).get_data(as_text=True)

    token = csrf_token(client, "/lists/lead")
    assert client.post(f"/lists/saved/{row.id}", data={"csrf_token": token, "shared": "1"}).status_code == 302
    assert (
        client.post(f"/lists/saved/{row.id}", data={"csrf_token": token, "name": "Renamed"}).status_code
        == 302
    )
    session.rollback()  # end the test's read snapshot to see what the requests committed
    row = session.get(SavedView, row.id)
    assert row.shared_with_team and row.name == "Renamed"
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "saved_views")))
    assert actions == ["saved_view.create", "saved_view.update", "saved_view.update"]

    # A teammate sees the shared view (read only); someone from another team does not.
    as_user(world["rep_a2"])
    html = client.get("/lists/lead").get_data(as_text=True)
    assert "Renamed" in html and "Shared by rep_a1" in html
    assert client.get(f"/lists/saved/{row.id}").status_code == 302
    mate_token = csrf_token(client, "/lists/lead")
    assert client.post(f"/lists/saved/{row.id}/delete", data={"csrf_token": mate_token}).status_code == 404
    as_user(world["rep_b1"])
    assert "Renamed" not in client.get("/lists/lead").get_data(as_text=True)
    assert client.get(f"/lists/saved/{row.id}").status_code == 404

    as_user(world["rep_a1"])
    token = csrf_token(client, "/lists/lead")
    assert client.post(f"/lists/saved/{row.id}/delete", data={"csrf_token": token}).status_code == 302
    session.rollback()  # end the test's read snapshot to see what the requests committed
    assert session.scalars(select(SavedView)).all() == []


def test_saving_needs_csrf_and_only_declared_parameters(
    as_user: Any, client: Any, session: Any, world: dict[str, Any]
) -> None:
    as_user(world["rep_a1"])
    refused = client.post("/lists/lead/test-leads/saved", data={"name": "x", "query": "status=new"})
    assert refused.status_code in (400, 403)
    bad = _save(client, "Sneaky", "owner_id=7")
    assert bad.status_code == 400 and "owner_id" in bad.get_data(as_text=True)
    nameless = _save(client, "   ", "status=new")
    assert nameless.status_code == 302
    assert session.scalars(select(SavedView)).all() == []


def test_private_saved_views_stay_private(
    as_user: Any, client: Any, session: Any, world: dict[str, Any]
) -> None:
    as_user(world["rep_a1"])
    _save(client, "Mine only", "status=new")
    row = session.scalars(select(SavedView)).one()
    as_user(world["rep_a2"])
    assert client.get(f"/lists/saved/{row.id}").status_code == 404
    assert "Mine only" not in client.get("/lists/lead").get_data(as_text=True)


def test_a_saved_view_whose_list_is_gone_opens_the_default_list(
    as_user: Any, client: Any, session: Any, clock: Any, world: dict[str, Any]
) -> None:
    gone = SavedView(
        user_id=world["rep_a1"].id,
        record_type="lead",
        view_key="retired-view",
        name="Old",
        params={"status": ["new"]},
        shared_with_team=False,
        created_at=clock.now(),
    )
    session.add(gone)
    session.commit()
    as_user(world["rep_a1"])
    response = client.get(f"/lists/saved/{gone.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/lists/lead")
    assert "no longer available" in client.get("/lists/lead").get_data(as_text=True)
