"""The routing screens: a lead page explains its routing (rule, channel, strategy, candidates, who was
excluded and why, state, history) in English and Chinese and the API gives the same; the what-if
simulator shows a draft next to the published version and writes nothing (every table's row count and
the round-robin cursors unchanged) and refuses a CSV over its row cap naming /file; the distribution
report's numbers match a hand-computed fixture, its high-grade share follows the published routing's
`high_grade`; reps get 403 on the ops pages."""

from __future__ import annotations

import copy
import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.metamodel.versions import create_definition_draft, get_published, publish_version
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.routing import route_lead
from salesmesh.workflows.routing_models import RoundRobinCursor
from salesmesh.workflows.simulate import compare_with_published, recent_leads
from salesmesh.workflows.simulation_runs import MAX_CSV_ROWS
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import count_statements, make_app, sign_in
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
def client(runtime: Runtime) -> Any:
    return make_app(runtime).test_client()


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> dict[str, Any]:
    """The medical-device pack; team east (a lead, Wang, Li who is away, Zhao, Qian), ops; routed leads."""
    import_pack(session, clock, MD_PACK)
    east = add_team(session, clock, "east")
    people = {
        "ops": add_rep(session, clock, "Olga Ops", role="ops"),
        "lead_east": add_rep(session, clock, "Lena Lead", role="lead", team=east, years_medical=10),
        "wang": add_rep(session, clock, "Wang", team=east, years_medical=8, seniority="senior"),
        "li": add_rep(
            session,
            clock,
            "Li",
            team=east,
            years_medical=12,
            seniority="principal",
            unavailable_until=clock.now() + timedelta(days=2),
        ),
        "zhao": add_rep(session, clock, "Zhao", team=east, years_medical=1, seniority="junior"),
        "qian": add_rep(session, clock, "Qian", team=east, years_medical=6, seniority="senior"),
    }
    east.lead_id = people["lead_east"].id
    leads = []
    for i, data in enumerate((TERTIARY, TOWNSHIP, COUNTY) * 4):
        lead = add_lead(session, clock, dict(data), received_at=clock.now() - timedelta(minutes=3))
        route_lead(session, lead, clock=clock)
        leads.append(lead)
        clock.advance(minutes=7 + i)
    session.commit()
    return {**people, "leads": leads}


# --- the lead page ------------------------------------------------------------------------------------


def test_lead_page_explains_the_routing_in_english_and_chinese(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    lead = md["leads"][0]  # a tertiary hospital: key-account channel, least loaded among 5+ years
    owner = md["wang"] if lead.owner_id == md["wang"].id else md["qian"]
    assert lead.owner_id == owner.id
    sign_in(client, session, owner, clock)
    html = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert 'data-testid="routing"' in html
    summary = f"Assigned to {owner.name} (Least loaded, channel Key-account channel)."
    assert f"Rule Tertiary grade-A hospital matched. {summary}" in html
    assert "Key-account channel" in html and "Least loaded" in html
    assert "Li: Away" in html  # excluded, and why
    assert "Not fitting the candidate filter: 1" in html  # Zhao (1 year); the team lead is no rep at all
    assert "Chosen" in html and 'data-testid="routing-candidates"' in html
    assert "Rules looked at, in order" in html and "Matched" in html
    assert 'data-testid="routing-state"' in html
    zh = client.get(f"/leads/{lead.id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert f"匹配规则“三甲医院”。分配给 {owner.name}（负载最少优先，大客户通道）。" in zh
    assert "Li：不在岗" in zh.replace(": ", "：") and "分配依据" in zh and "候选人" in zh


def test_reassignments_show_as_history_and_the_api_explains_the_same(
    client: Any, runtime: Runtime, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    lead = md["leads"][0]
    sign_in(client, session, md["ops"], clock)
    url = f"/leads/{lead.id}"
    client.get(url)
    with count_statements(runtime) as one:
        assert client.get(url).status_code == 200
    owners = [lead.owner_id]
    for _ in range(2):  # taken from its owner twice: Li is away, so it goes back and forth
        clock.advance(minutes=30)
        route_lead(session, lead, clock=clock, exclude=[lead.owner_id])
        owners.append(lead.owner_id)
    session.commit()
    assert owners == [md["wang"].id, md["qian"].id, md["wang"].id]
    client.get(url)  # the first request after a commit refreshes the session row
    with count_statements(runtime) as three:
        html = client.get(url).get_data(as_text=True)
    assert len(three) == len(one)  # names and versions for the whole history at once, not per decision
    assert (
        'data-testid="routing-history"' in html and html.count("Rule Tertiary grade-A hospital matched.") >= 3
    )
    assert "Left out for this lead" in html  # the owner it was taken from
    api = client.get(f"/api/v1/leads/{lead.id}/routing").get_json()
    assert len(api["history"]) == 3 and api["latest"] == api["history"][0]
    latest = api["latest"]
    assert latest["matched_rule"] == "tertiary_a_key_account" and latest["channel"] == "key_account"
    assert latest["owner_id"] == lead.owner_id and latest["strategy"] == "least_loaded"
    assert set(latest["summary"]) == {"en", "zh"} and "匹配规则" in latest["summary"]["zh"]
    excluded = {e["name"]: e["reasons"] for a in latest["attempts"] for e in a["excluded"]}
    assert excluded["Li"] == ["away"] and "excluded" in excluded[[n for n in excluded if n != "Li"][0]]


def test_routing_is_visible_to_whoever_may_see_the_lead(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    lead = md["leads"][0]
    sign_in(client, session, md["zhao"], clock)  # a teammate who does not own it
    assert client.get(f"/leads/{lead.id}").status_code == 404
    assert client.get(f"/api/v1/leads/{lead.id}/routing").status_code == 404
    sign_in(client, session, md["lead_east"], clock)
    assert 'data-testid="routing-summary"' in client.get(f"/leads/{lead.id}").get_data(as_text=True)
    unrouted = add_lead(session, clock, dict(TERTIARY))
    session.commit()
    sign_in(client, session, md["ops"], clock)
    html = client.get(f"/leads/{unrouted.id}").get_data(as_text=True)
    assert "No routing decision is recorded for this lead." in html
    assert client.get(f"/api/v1/leads/{unrouted.id}/routing").get_json() == {"latest": None, "history": []}


# --- the simulator ------------------------------------------------------------------------------------


def _draft(session: Session, clock: FrozenClock) -> Any:
    published = get_published(session, "routing", "md-lead-routing")
    assert published is not None
    document = copy.deepcopy(published.document)
    inclusive = document["rules"][1]  # township leads: every rep with 3+ years, least loaded
    inclusive["candidates"] = {"filter": {">=": [{"var": "years_medical"}, 3]}, "roles": ["rep"]}
    inclusive["strategy"] = "least_loaded"
    draft = create_definition_draft(session, None, document, clock)
    session.commit()
    return draft


def _world_rows(session: Session) -> tuple[dict[str, int], list[Any]]:
    session.rollback()
    counts = {
        t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in Base.metadata.sorted_tables
    }
    cursors = session.execute(
        select(RoundRobinCursor.routing_key, RoundRobinCursor.positions, RoundRobinCursor.turns)
    ).all()
    return counts, [tuple(c) for c in cursors]


def test_simulator_shows_draft_and_published_side_by_side_and_writes_nothing(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    draft = _draft(session, clock)
    published = get_published(session, "routing", "md-lead-routing")
    sign_in(client, session, md["ops"], clock)
    form = client.get("/routing/simulator").get_data(as_text=True)
    assert f'<option value="{draft.id}"' in form and f'<option value="{published.id}"' in form
    before = _world_rows(session)
    assert before[0]["round_robin_cursors"] >= 1 and before[0]["routing_decisions"] == 12
    response = client.get(f"/routing/simulator?version={draft.id}&last=12")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:3000]
    assert _world_rows(session) == before
    expected = compare_with_published(session, draft.id, recent_leads(session, last=12))
    assert "The last 12 leads received, in arrival order." in html
    assert html.count('data-testid="sim-gini"') == 2 and "v1" in html and "v2" in html
    assert "Published" in html and "Draft" in html
    assert f'data-testid="sim-changed">{len(expected["changed_leads"])}<' in html
    for row in expected["per_rep"]:
        assert f'data-rep="{row["user_id"]}"' in html
    assert 'data-channel="inclusive"' in html and "Inclusive channel" in html
    assert "<svg" in html and "<rect" in html
    # High grade as the pack defines it (tertiary hospitals): 4 of the 12 leads, in both versions.
    assert expected["high_grade"] == {"a": 4, "b": 4}
    assert html.count('data-testid="sim-high-grade">4<') == 2
    assert html.count('data-testid="sim-rep-high-grade"') == len(expected["per_rep"])
    zh = client.get(f"/routing/simulator?version={draft.id}&last=12", headers={"Accept-Language": "zh-CN"})
    assert "分配模拟器" in zh.get_data(as_text=True) and "基尼系数" in zh.get_data(as_text=True)
    assert "高等级线索" in zh.get_data(as_text=True)


def test_simulator_over_a_csv_file(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    published = get_published(session, "routing", "md-lead-routing")
    sign_in(client, session, md["ops"], clock)
    token = csrf_token(client, "/routing/simulator")
    before = _world_rows(session)
    good = (
        "institution_name,institution_grade,institution_type,received_at\n"
        "Peking Union,tertiary_a,hospital,2026-01-05T08:00:00+00:00\n"
        "Xiaotangshan,primary,township_health_center,\n"
        "Nowhere Clinic,primary,private_clinic,\n"
    )
    response = client.post(
        "/routing/simulator",
        data={
            "csrf_token": token,
            "version": str(published.id),
            "file": (io.BytesIO(good.encode()), "leads.csv"),
        },
        content_type="multipart/form-data",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:3000]
    assert "3 leads from leads.csv." in html and "There is no other published version" in html
    assert 'data-channel="key_account"' in html and 'data-channel="inclusive"' in html
    bad = "institution_grade,received_at\ntertiary_a,yesterday\n"
    response = client.post(
        "/routing/simulator",
        data={
            "csrf_token": token,
            "version": str(published.id),
            "file": (io.BytesIO(bad.encode()), "bad.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and "/rows/2/received_at" in response.get_data(as_text=True)
    missing = client.post("/routing/simulator", data={"csrf_token": token, "version": str(published.id)})
    assert missing.status_code == 422 and "Choose a CSV file of leads." in missing.get_data(as_text=True)
    assert _world_rows(session) == before


def test_simulator_refuses_a_csv_over_the_row_cap_naming_the_file(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    published = get_published(session, "routing", "md-lead-routing")
    sign_in(client, session, md["ops"], clock)
    token = csrf_token(client, "/routing/simulator")
    header = "institution_name,institution_grade,institution_type\n"

    def post(rows: int) -> Any:
        body = header + "Peking Union,tertiary_a,hospital\n" * rows
        return client.post(
            "/routing/simulator",
            data={
                "csrf_token": token,
                "version": str(published.id),
                "file": (io.BytesIO(body.encode()), "l.csv"),
            },
            content_type="multipart/form-data",
        )

    response = post(MAX_CSV_ROWS + 1)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"<code>/file</code> At most {MAX_CSV_ROWS} rows can be simulated." in html
    assert 'data-testid="simulation-result"' not in html
    exactly = post(MAX_CSV_ROWS)  # the cap itself is fine
    assert exactly.status_code == 200 and f"{MAX_CSV_ROWS} leads from l.csv." in exactly.get_data(
        as_text=True
    )


def test_simulator_rejects_bad_parameters(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    sign_in(client, session, md["ops"], clock)
    lead_form = get_published(session, "form", "md-lead")
    assert (
        client.get("/routing/simulator?last=0&version=1", headers={"Accept": "application/json"}).status_code
        == 400
    )
    response = client.get("/routing/simulator?version=x", headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["errors"][0]["path"] == "version"
    not_routing = client.get(f"/routing/simulator?version={lead_form.id}")
    assert (
        not_routing.status_code == 422
        and "Choose a routing version from the list." in not_routing.get_data(as_text=True)
    )


def test_ops_pages_are_closed_to_reps(
    client: Any, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    assert client.get("/routing/distribution").status_code == 302  # anonymous: to the login page
    sign_in(client, session, md["wang"], clock)
    for url in ("/routing/simulator", "/routing/distribution", "/routing/distribution.csv"):
        assert client.get(url).status_code == 403, url
    token = csrf_token(client, "/new-leads")
    assert client.post("/routing/simulator", data={"csrf_token": token}).status_code == 403
    sign_in(client, session, md["lead_east"], clock)
    assert client.get("/routing/simulator").status_code == 403
    assert client.get("/routing/distribution").status_code == 200


# --- the distribution report --------------------------------------------------------------------------


@pytest.fixture
def spread(session: Session, clock: FrozenClock) -> dict[str, Any]:
    """One rep fits key-account and standard (Veteran, east), one fits inclusive (Newbie, west)."""
    import_pack(session, clock, MD_PACK)
    east, west = add_team(session, clock, "east"), add_team(session, clock, "west")
    people = {
        "ops": add_rep(session, clock, "Olga Ops", role="ops"),
        "lead_east": add_rep(session, clock, "Lena Lead", role="lead", team=east),
        "veteran": add_rep(session, clock, "Veteran", team=east, years_medical=9, seniority="senior"),
        "newbie": add_rep(session, clock, "Newbie", team=west, years_medical=0, seniority="junior"),
    }
    east.lead_id = people["lead_east"].id
    tertiary_township = {**TOWNSHIP, "institution_grade": "tertiary"}
    arrivals = [  # (lead, minutes it waited before routing)
        (TERTIARY, 10),
        (TERTIARY, 40),
        (TERTIARY, 100),
        (COUNTY, 20),
        (COUNTY, 60),
        (TOWNSHIP, 5),
        (tertiary_township, 15),
    ]
    for data, minutes in arrivals:
        lead = add_lead(session, clock, dict(data), received_at=clock.now() - timedelta(minutes=minutes))
        route_lead(session, lead, clock=clock)
    session.commit()
    return people


def _csv(client: Any, query: str) -> list[list[str]]:
    response = client.get(f"/routing/distribution.csv?{query}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_distribution_report_matches_a_hand_computed_fixture(
    client: Any, session: Session, clock: FrozenClock, spread: dict[str, Any]
) -> None:
    sign_in(client, session, spread["ops"], clock)
    day = clock.now().date().isoformat()
    html = client.get(f"/routing/distribution?since={day}&until={day}").get_data(as_text=True)
    assert "7 leads assigned between" in html
    # Gini of (5, 2): 2·(1·2 + 2·5) / (2·7) − 3/2 = 0.214
    assert "Fairness (Gini; 0 = even): 0.214" in html
    rows = _csv(client, f"since={day}&until={day}")
    assert rows[0] == [
        "Rep",
        "Routing channel",
        "Leads",
        "Median age at assignment (min)",
        "High-grade share",
    ]
    assert sorted(rows[1:]) == sorted(
        [
            ["Newbie", "Inclusive channel", "2", "10.0", "0.5"],  # 5 and 15 min; one tertiary of two
            ["Veteran", "Key-account channel", "3", "40.0", "1.0"],  # 10, 40, 100 min; all tertiary A
            ["Veteran", "Standard channel", "2", "40.0", "0.0"],  # 20 and 60 min; secondary
        ]
    )
    # Per rep: Veteran 5 leads, median of 10/20/40/60/100 = 40 min, 3 of 5 high-grade.
    veteran = spread["veteran"].id
    row = re.search(rf'data-rep="{veteran}">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells == ["5", "40.0", "60%"]
    # Another range holds nothing; a team lead sees their own team only.
    later = (clock.now() + timedelta(days=1)).date().isoformat()
    assert "0 leads assigned" in client.get(f"/routing/distribution?since={later}&until={later}").get_data(
        as_text=True
    )
    sign_in(client, session, spread["lead_east"], clock)
    team_rows = _csv(client, f"since={day}&until={day}")
    assert {row[0] for row in team_rows[1:]} == {"Veteran"}
    zh = client.get(f"/routing/distribution?since={day}&until={day}", headers={"Accept-Language": "zh-CN"})
    assert "分配报表" in zh.get_data(as_text=True) and "大客户通道" in zh.get_data(as_text=True)


def _publish_routing(session: Session, clock: FrozenClock, **changes: Any) -> None:
    """Publish a new md-lead-routing version with top-level `changes` (None removes a member)."""
    document = copy.deepcopy(get_published(session, "routing", "md-lead-routing").document)  # type: ignore[union-attr]
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    publish_version(session, None, create_definition_draft(session, None, document, clock).id, clock)
    session.commit()


def test_the_report_grades_leads_as_the_published_routing_says(
    client: Any, session: Session, clock: FrozenClock, spread: dict[str, Any]
) -> None:
    sign_in(client, session, spread["ops"], clock)
    day = clock.now().date().isoformat()
    query = f"since={day}&until={day}"
    # Ops decide that primary care is what matters: the same decisions, graded anew.
    township = {"==": [{"var": "institution_type"}, "township_health_center"]}
    _publish_routing(session, clock, high_grade=township)
    assert sorted(_csv(client, query)[1:]) == sorted(
        [
            ["Newbie", "Inclusive channel", "2", "10.0", "1.0"],
            ["Veteran", "Key-account channel", "3", "40.0", "0.0"],
            ["Veteran", "Standard channel", "2", "40.0", "0.0"],
        ]
    )
    # A routing without `high_grade` grades nothing: an empty cell, "—" on the page.
    _publish_routing(session, clock, high_grade=None)
    assert {row[4] for row in _csv(client, query)[1:]} == {""}
    html = client.get(f"/routing/distribution?{query}").get_data(as_text=True)
    veteran = re.search(rf'data-rep="{spread["veteran"].id}">(.*?)</tr>', html, re.S)
    assert veteran is not None and re.findall(r'<td class="num">([^<]*)</td>', veteran.group(1)) == [
        "5",
        "40.0",
        "—",
    ]
    assert "High-grade share: the share of leads that meet their routing" in html
    zh = client.get(f"/routing/distribution?{query}", headers={"Accept-Language": "zh-CN"})
    assert "高等级线索占比：符合所属分配规则高等级条件" in zh.get_data(as_text=True)


def test_distribution_report_rejects_bad_ranges(
    client: Any, session: Session, clock: FrozenClock, spread: dict[str, Any]
) -> None:
    sign_in(client, session, spread["ops"], clock)
    for query, param in [
        ("since=2026-13-01", "since"),
        ("until=yesterday", "until"),
        ("since=2026-02-01&until=2026-01-01", "since"),
        ("routing=nope", "routing"),
    ]:
        response = client.get(f"/routing/distribution?{query}", headers={"Accept": "application/json"})
        assert response.status_code == 400, query
        assert response.get_json()["error"]["errors"][0]["path"] == param
