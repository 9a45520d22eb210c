"""The leads list for ops and team leads: filters on the routing channel (the latest decision's), the
owner (people picked from a list), status, age in hours and the first-response SLA (overdue computed
from the deadline), each narrowing the list; scoped by the policy; and a page whose statement count does
not grow with its rows (the routing channel is a correlated subquery, not a query per row); the same
queries on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.list_specs import BUILTIN_VIEWS, ListView, load_views
from salesmesh.workflows.lists import parse_params, run_list
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing import route_lead
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.simulate import recent_leads
from salesmesh.workflows.simulation_runs import routing_versions, run_simulation
from tests.workflows.list_support import count_statements, sign_in
from tests.workflows.page_helpers import make_app
from tests.workflows.routing_helpers import (
    COUNTY,
    MD_PACK,
    TERTIARY,
    TOWNSHIP,
    add_lead,
    add_rep,
    add_team,
    import_pack,
)


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> dict[str, Any]:
    """The medical-device pack, two teams, and six leads routed for real (two per channel)."""
    import_pack(session, clock, MD_PACK)
    east, west = add_team(session, clock, "east"), add_team(session, clock, "west")
    people = {
        "ops": add_rep(session, clock, "Olga Ops", role="ops"),
        "lead_east": add_rep(session, clock, "Lena Lead", role="lead", team=east, years_medical=10),
        "wang": add_rep(session, clock, "Wang", team=east, years_medical=8, seniority="senior"),
        "zhao": add_rep(session, clock, "Zhao", team=east, years_medical=1, seniority="junior"),
        "xu": add_rep(session, clock, "Xu", team=west, years_medical=9, seniority="senior"),
        "sun": add_rep(session, clock, "Sun", team=west, years_medical=0, seniority="junior"),
    }
    east.lead_id = people["lead_east"].id
    leads = []
    for data in (TERTIARY, TOWNSHIP, COUNTY, TERTIARY, TOWNSHIP, COUNTY):
        lead = add_lead(session, clock, dict(data), received_at=clock.now())
        route_lead(session, lead, clock=clock)
        leads.append(lead)
        clock.advance(hours=2)
    session.commit()
    return {**people, "leads": leads}


def _view(session: Session, key: str = "md-leads-all") -> ListView:
    view = next((v for v in load_views(session, "lead") if v.key == key), None)
    assert view is not None
    return view


def _ids(session: Session, actor: Any, view: ListView, clock: FrozenClock, **query: Any) -> set[int]:
    pairs = [(k, str(v)) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
    page = run_list(session, actor, view, parse_params(view, pairs), now=clock.now())
    return {row.id for row in page.rows}


def _channel(session: Session, lead: Lead) -> str:
    return session.scalars(
        select(RoutingDecision.channel)
        .where(RoutingDecision.lead_id == lead.id)
        .order_by(RoutingDecision.decided_at.desc(), RoutingDecision.id.desc())
    ).first()


def test_each_filter_narrows_the_list(session: Session, clock: FrozenClock, md: dict[str, Any]) -> None:
    view = _view(session)
    ops, leads = md["ops"], md["leads"]
    everyone = {lead.id for lead in leads}
    assert _ids(session, ops, view, clock) == everyone
    by_channel = {
        c: {lead.id for lead in leads if _channel(session, lead) == c} for c in ("key_account", "inclusive")
    }
    assert by_channel["key_account"] == {leads[0].id, leads[3].id}
    assert _ids(session, ops, view, clock, channel="key_account") == by_channel["key_account"]
    assert _ids(session, ops, view, clock, channel=["key_account", "inclusive"]) == (
        by_channel["key_account"] | by_channel["inclusive"]
    )
    # The latest decision counts: a lead re-routed into another channel moves with it.
    first = session.scalars(select(RoutingDecision).where(RoutingDecision.lead_id == leads[0].id)).one()
    session.add(
        RoutingDecision(
            lead_id=leads[0].id,
            routing_version_id=first.routing_version_id,
            routing_key=first.routing_key,
            channel="standard",
            strategy="least_loaded",
            outcome="assigned",
            owner_id=first.owner_id,
            decided_at=clock.now(),
            explanation={},
        )
    )
    session.flush()
    assert _ids(session, ops, view, clock, channel="key_account") == {leads[3].id}
    assert leads[0].id in _ids(session, ops, view, clock, channel="standard")

    # Owner: one or several people picked by id.
    owner = leads[0].owner_id
    assert owner is not None
    assert _ids(session, ops, view, clock, owner=owner) == {
        lead.id for lead in leads if lead.owner_id == owner
    }
    two = {leads[0].owner_id, leads[1].owner_id}
    assert _ids(session, ops, view, clock, owner=sorted(two)) == {
        lead.id for lead in leads if lead.owner_id in two
    }

    # Status.
    leads[2].status = "contacted"
    session.flush()
    assert _ids(session, ops, view, clock, status="contacted") == {leads[2].id}

    # Age: received more than N hours ago (the leads arrived 2 hours apart; the clock is 12 h past the first).
    assert _ids(session, ops, view, clock, older=4) == {lead.id for lead in leads[:4]}
    assert _ids(session, ops, view, clock, older=1) == everyone
    builtin = BUILTIN_VIEWS["lead"]
    assert _ids(session, ops, builtin, clock, newer=4) == {leads[4].id, leads[5].id}
    assert _ids(session, ops, builtin, clock, older=72) == set()

    # First-response SLA: overdue is a pending deadline already passed.
    now = clock.now()
    for lead, state, due in zip(
        leads[:4],
        ("pending", "pending", "met", "breached"),
        (
            now - timedelta(minutes=5),
            now + timedelta(minutes=25),
            now - timedelta(hours=3),
            now - timedelta(hours=5),
        ),
        strict=True,
    ):
        lead.sla_state, lead.sla_due_at = state, due
    leads[4].sla_state = leads[5].sla_state = None
    session.flush()
    assert _ids(session, ops, view, clock, sla="overdue") == {leads[0].id}
    assert _ids(session, ops, view, clock, sla="pending") == {leads[1].id}
    assert _ids(session, ops, view, clock, sla="met") == {leads[2].id}
    assert _ids(session, ops, view, clock, sla=["breached", "overdue"]) == {leads[0].id, leads[3].id}
    # Filters combine.
    assert _ids(session, ops, view, clock, sla="overdue", channel="standard", older=4) == {leads[0].id}


def test_filters_are_scoped_by_the_policy(session: Session, clock: FrozenClock, md: dict[str, Any]) -> None:
    view = _view(session)
    leads = md["leads"]
    pooled = add_lead(session, clock, dict(COUNTY), status="pooled")
    session.flush()
    east = {md["lead_east"].id, md["wang"].id, md["zhao"].id}
    for name in ("wang", "zhao", "xu"):
        rep = md[name]
        mine = {lead.id for lead in leads if lead.owner_id == rep.id}
        assert _ids(session, rep, view, clock) == mine | {pooled.id}, name
        # Filtering by someone else as owner shows nothing of theirs.
        other = next(lead.owner_id for lead in leads if lead.owner_id not in (rep.id, None))
        assert _ids(session, rep, view, clock, owner=other) == set()
    team = {lead.id for lead in leads if lead.owner_id in east}
    assert _ids(session, md["lead_east"], view, clock) == team | {pooled.id}
    assert _ids(session, md["ops"], view, clock) == {lead.id for lead in leads} | {pooled.id}


def _page(client: Any, url: str, **headers: str) -> str:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def test_list_page_shows_the_filters_in_both_languages(
    runtime: Runtime, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    client = make_app(runtime).test_client()
    sign_in(client, runtime, md["ops"])
    html = _page(client, "/lists/lead")
    for control in ("f-owner", "f-channel", "f-sla", "f-older", "f-source", "f-status"):
        assert f'id="{control}' in html, control
    assert "Key-account channel" in html and "Inclusive channel" in html  # column values and options
    assert f'name="owner" value="{md["wang"].id}"' in html and "Wang" in html
    assert "Overdue now" in html and "(hours)" not in html  # the older filter offers its hour options
    zh = _page(client, "/lists/lead?channel=key_account", **{"Accept-Language": "zh-CN"})
    assert "大客户通道" in zh and "首次响应时限" in zh and "当前已逾期" in zh and "负责人" in zh
    assert zh.count('<th scope="row"') == 2
    # A lead sees only the people of their own team among the owners.
    sign_in(client, runtime, md["lead_east"])
    mine = _page(client, "/lists/lead")
    assert f'name="owner" value="{md["wang"].id}"' in mine
    assert f'name="owner" value="{md["xu"].id}"' not in mine


def test_bad_filter_values_answer_400_naming_them(runtime: Runtime, md: dict[str, Any]) -> None:
    client = make_app(runtime).test_client()
    sign_in(client, runtime, md["ops"])
    for query, param in [
        ("owner=abc", "owner"),
        ("older=5", "older"),
        ("sla=late", "sla"),
        ("owner=0", "owner"),
    ]:
        response = client.get(f"/lists/lead?{query}", headers={"Accept": "application/json"})
        assert response.status_code == 400, query
        assert response.get_json()["error"]["errors"][0]["path"] == param


def test_statement_count_does_not_grow_with_rows(
    runtime: Runtime, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    client = make_app(runtime).test_client()
    sign_in(client, runtime, md["ops"])
    channels = "channel=key_account&channel=inclusive&channel=standard"
    url = f"/lists/lead?per_page=100&sla=pending&sla=overdue&sla=met&{channels}"
    md["leads"][0].sla_state = "breached"  # filtered out
    for lead in md["leads"][1:]:
        lead.sla_state = "pending"
        lead.sla_due_at = clock.now()
    session.commit()
    client.get(url)
    with count_statements(runtime.db.engine) as few:
        html = _page(client, url)
    assert html.count('<th scope="row"') == 5
    for i in range(45):
        lead = add_lead(session, clock, dict((TERTIARY, TOWNSHIP, COUNTY)[i % 3]), received_at=clock.now())
        route_lead(session, lead, clock=clock)
        lead.sla_state, lead.sla_due_at = "pending", clock.now() + timedelta(minutes=30)
    session.commit()
    with count_statements(runtime.db.engine) as many:
        html = _page(client, url)
    assert html.count('<th scope="row"') == 50
    assert len(many) == len(few), many


def test_filters_and_simulator_queries_run_on_postgresql(pg_runtime: Runtime, clock: FrozenClock) -> None:
    with pg_runtime.db.session_scope() as s:
        import_pack(s, clock, MD_PACK)
        ops = add_rep(s, clock, "Olga Ops", role="ops")
        wang = add_rep(s, clock, "Wang", years_medical=8, seniority="senior")
        add_rep(s, clock, "Zhao", years_medical=1, seniority="junior")
        for data in (TERTIARY, TOWNSHIP, COUNTY):
            lead = add_lead(s, clock, dict(data), received_at=clock.now() - timedelta(hours=5))
            route_lead(s, lead, clock=clock)
            lead.sla_state, lead.sla_due_at = "pending", clock.now() - timedelta(minutes=1)
    with pg_runtime.db.session_scope() as s:
        view = _view(s)
        actor = s.get(type(ops), ops.id)
        tertiary = s.scalars(select(Lead.id).where(Lead.institution_grade == "tertiary_a")).one()
        assert _ids(s, actor, view, clock, channel="key_account", sla="overdue", older=4, owner=wang.id) == {
            tertiary
        }
        assert _ids(s, actor, view, clock, sla="pending") == set()
        page = run_list(s, actor, view, parse_params(view, [("sort", "-sla_state")]), now=clock.now())
        assert {row.values["routing_channel"] for row in page.rows} == {
            "key_account",
            "inclusive",
            "standard",
        }
        (version,) = routing_versions(s)
        assert version.label["en"] == "Hospital lead routing" and version.status == "published"
        run = run_simulation(s, version.id, recent_leads(s, last=10))
        assert run.other.total == 3 and run.base is None
