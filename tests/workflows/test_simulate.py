"""The what-if simulator (reads only, predicts the engine exactly, compares a draft with the published
version) and the distribution report, with "high grade" as the routing definition's `high_grade` says
(medical-device and SaaS packs, a changed definition, none at all)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.versions import create_definition_draft, get_published, publish_version
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.distribution import distribution_report
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing import current_plan, route_lead
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.simulate import (
    compare_with_published,
    gini,
    leads_from_rows,
    recent_leads,
    simulate,
    simulate_version,
)
from tests.workflows.routing_helpers import (
    COUNTY,
    MD_PACK,
    SAAS_PACK,
    TERTIARY,
    TOWNSHIP,
    add_lead,
    add_rep,
    add_team,
    counting,
    import_pack,
)

MIX = [TERTIARY, TOWNSHIP, COUNTY, TOWNSHIP, {"institution_type": "private_clinic"}]


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> dict[str, Any]:
    import_pack(session, clock, MD_PACK)
    east = add_team(session, clock, "east")
    return {
        "wang": add_rep(session, clock, "Wang", team=east, years_medical=8, seniority="senior"),
        "li": add_rep(session, clock, "Li", team=east, years_medical=12, seniority="principal"),
        "zhao": add_rep(session, clock, "Zhao", team=east, years_medical=1, seniority="junior"),
        "sun": add_rep(session, clock, "Sun", team=east, years_medical=4, seniority="intermediate"),
        "zhou": add_rep(session, clock, "Zhou", team=east, years_medical=3, seniority="senior"),
    }


def _leads(session: Session, clock: FrozenClock, count: int) -> list[Lead]:
    leads = []
    for i in range(count):
        leads.append(add_lead(session, clock, dict(MIX[i % len(MIX)]), received_at=clock.now()))
        clock.advance(minutes=7)
    return leads


def test_gini() -> None:
    assert gini([]) == 0.0 and gini([0, 0]) == 0.0 and gini([3, 3, 3]) == 0.0
    assert gini([0, 0, 10]) == pytest.approx(0.6667, abs=1e-4)
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)


def test_simulation_reads_only_and_predicts_the_engine(
    runtime: Runtime, session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    _leads(session, clock, 40)
    plan = current_plan(session)
    with counting(runtime.db.engine) as statements:
        result = simulate(session, plan, recent_leads(session, last=40))
    assert statements and all(s.lstrip().upper().startswith("SELECT") for s in statements), statements
    assert session.scalars(select(RoutingDecision)).all() == []
    assert all(lead.owner_id is None for lead in session.scalars(select(Lead)))
    assert (result.total, result.assigned, result.pooled, result.unassigned) == (40, 40, 0, 0)
    assert result.per_channel == {"key_account": 8, "inclusive": 16, "standard": 16}
    assert result.per_rule == {
        "tertiary_a_key_account": 8,
        "primary_care_inclusive": 16,
        "other_hospitals_standard": 8,
        "fallback": 8,
    }
    # Now route the same leads for real, at the moments the simulation used: same owners, lead by lead.
    predicted = {d["lead"]: d.get("owner_id") for d in result.decisions}
    for lead in session.scalars(select(Lead).order_by(Lead.received_at)):
        clock.set(lead.received_at)
        route_lead(session, lead, clock=clock, plan=plan)
    actual = dict(session.execute(select(Lead.id, Lead.owner_id)).all())
    assert actual == predicted
    assert sum(r["count"] for r in result.per_rep.values()) == 40
    assert 0 <= result.gini < 0.5


def test_caps_and_unroutable_leads_are_reported(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    veteran = add_rep(session, clock, "Veteran", years_medical=9, seniority="senior")
    add_rep(session, clock, "Newbie", years_medical=0, seniority="junior")
    leads = leads_from_rows([dict(TERTIARY) for _ in range(8)], clock=clock)
    result = simulate(session, current_plan(session), leads)
    assert result.per_rep[veteran.id]["count"] == 6  # the key-account rule's daily cap
    assert result.cap_hits == {"total": 2, "by_rep": {veteran.id: 2}}
    assert result.per_rule == {"tertiary_a_key_account": 6, "fallback": 2}
    assert result.unroutable == []
    # Next day the cap is fresh again.
    tomorrow = leads_from_rows(
        [{**TERTIARY, "received_at": (clock.now() + timedelta(days=1)).isoformat()}], clock=clock
    )
    again = simulate(session, current_plan(session), leads + tomorrow)
    assert again.per_rep[veteran.id]["count"] == 7


def test_unroutable_leads_are_listed(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, MD_PACK)
    add_rep(session, clock, "Admin", role="admin", years_medical=20)
    result = simulate(session, current_plan(session), leads_from_rows([TERTIARY, TOWNSHIP], clock=clock))
    assert (result.unassigned, result.unroutable) == (2, [1, 2])
    assert [d["reason"] for d in result.decisions] == ["no_candidate", "no_candidate"]
    assert result.to_dict()["unroutable"] == [1, 2]


def test_rows_need_valid_times(clock: FrozenClock, session: Session) -> None:
    with pytest.raises(ValueError, match="row 2: received_at 'yesterday'"):
        leads_from_rows([{}, {"received_at": "yesterday"}], clock=clock)
    with pytest.raises(ValueError, match="row 1: received_at needs a time zone"):
        leads_from_rows([{"received_at": "2026-01-05T09:00:00"}], clock=clock)
    (lead,) = leads_from_rows([{"data": {"institution_type": "hospital"}, "received_at": None}], clock=clock)
    assert lead.facts == {"institution_type": "hospital"} and lead.at == clock.now()


def test_draft_is_compared_side_by_side_with_the_published_version(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    _leads(session, clock, 20)
    published = get_published(session, "routing", "md-lead-routing")
    assert published is not None
    document = copy.deepcopy(published.document)
    # The draft sends township leads to every rep with 3+ years, least loaded, instead of the juniors.
    inclusive = document["rules"][1]
    inclusive["candidates"] = {"filter": {">=": [{"var": "years_medical"}, 3]}, "roles": ["rep"]}
    inclusive["strategy"] = "least_loaded"
    draft = create_definition_draft(session, None, document, clock)
    with_draft = simulate_version(session, draft.id, recent_leads(session, last=20))
    assert with_draft.routing["status"] == "draft"
    assert "inclusive" not in with_draft.per_rep[md["zhao"].id]["channels"]  # Zhao only gets fallback leads
    side = compare_with_published(session, draft.id, recent_leads(session, last=20))
    assert side["a"]["version_id"] == published.id and side["b"]["version_id"] == draft.id
    assert side["totals"]["total"] == {"a": 20, "b": 20}
    rows = {row["user_id"]: row for row in side["per_rep"]}
    zhao = rows[md["zhao"].id]
    assert zhao["b"] < zhao["a"] and zhao["delta"] == zhao["b"] - zhao["a"]
    assert sum(row["delta"] for row in side["per_rep"]) == 0
    assert side["changed_leads"]  # the township leads moved
    assert {"channel": "inclusive", "a": 8, "b": 8} in side["per_channel"]
    assert session.scalars(select(RoutingDecision)).all() == []


# --- distribution report ------------------------------------------------------------------------------


def test_distribution_report_per_rep_and_channel(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    start = clock.now()
    ages = [10, 30, 50, 70]  # minutes between arrival and routing
    for i, minutes in enumerate(ages):
        data = (
            TERTIARY
            if i % 2 == 0
            else {**TERTIARY, "institution_grade": "secondary_a", "institution_type": "x"}
        )
        lead = add_lead(session, clock, data, received_at=clock.now() - timedelta(minutes=minutes))
        route_lead(session, lead, clock=clock)
    report = distribution_report(session, None, since=start, until=clock.now() + timedelta(seconds=1))
    assert report.total == 4
    key_account = [r for r in report.rows if r["channel"] == "key_account"]
    assert sum(r["count"] for r in key_account) == 2
    assert all(r["high_grade_share"] == 1.0 for r in key_account)
    standard = next(c for c in report.channels if c["channel"] == "standard")
    assert standard == {
        "channel": "standard",
        "count": 2,
        "median_age_minutes": 50.0,
        "high_grade_share": 0.0,
    }
    everyone = {c["channel"]: c for c in report.channels}
    assert everyone["key_account"]["median_age_minutes"] == 30.0
    # A rep sees only their own leads in the report.
    mine = distribution_report(session, md["wang"], since=start, until=clock.now() + timedelta(seconds=1))
    assert {r["user_id"] for r in mine.rows} <= {md["wang"].id}
    assert report.to_dict()["total"] == 4


# --- high grade: from the routing definition ------------------------------------------------------------


def _republish(session: Session, clock: FrozenClock, key: str, **changes: Any) -> int:
    """Publish a new version of routing `key` with top-level `changes` (None removes a member)."""
    published = get_published(session, "routing", key)
    assert published is not None
    document = copy.deepcopy(published.document)
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    draft = create_definition_draft(session, None, document, clock)
    return publish_version(session, None, draft.id, clock).id


def _shares(report: Any) -> dict[str, float | None]:
    return {c["channel"]: c["high_grade_share"] for c in report.channels}


def test_the_routing_definition_says_which_leads_are_high_grade(
    session: Session, clock: FrozenClock, md: dict[str, Any]
) -> None:
    start = clock.now()
    _leads(session, clock, 10)  # MIX twice: 2 tertiary A, 4 township, 2 county, 2 private clinics
    for lead in session.scalars(select(Lead).order_by(Lead.id)):
        route_lead(session, lead, clock=clock)
    until = clock.now() + timedelta(seconds=1)
    leads = recent_leads(session, last=10)
    # The pack: tertiary hospitals are high grade (key-account 2, inclusive 4, standard 2 + 2 fallback).
    published = simulate(session, current_plan(session), leads)
    assert published.high_grade == 2 and sum(r["high_grade"] for r in published.per_rep.values()) == 2
    for row in published.per_rep.values():
        assert row["high_grade_share"] == (
            round(row["high_grade"] / row["count"], 3) if row["count"] else None
        )
    report = distribution_report(session, None, since=start, until=until)
    assert _shares(report) == {"inclusive": 0.0, "key_account": 1.0, "standard": 0.0}
    # A draft calling township and community health centres high grade changes the simulation...
    township = {"in": [{"var": "institution_type"}, ["township_health_center", "community_health_center"]]}
    document = copy.deepcopy(get_published(session, "routing", "md-lead-routing").document)  # type: ignore[union-attr]
    document["high_grade"] = township
    draft = create_definition_draft(session, None, document, clock)
    side = compare_with_published(session, draft.id, leads)
    assert side["high_grade"] == {"a": 2, "b": 4} and side["changed_leads"] == []
    moved = [r for r in side["per_rep"] if r["high_grade_share"]["a"] != r["high_grade_share"]["b"]]
    assert moved  # the same leads, the same owners: only the reps' shares differ
    # ...and, once published, the report over the very same decisions.
    publish_version(session, None, draft.id, clock)
    report = distribution_report(session, None, since=start, until=until)
    assert _shares(report) == {"inclusive": 1.0, "key_account": 0.0, "standard": 0.0}
    # Without `high_grade` no lead is graded: no share at all (not 0).
    _republish(session, clock, "md-lead-routing", high_grade=None)
    report = distribution_report(session, None, since=start, until=until)
    assert {r["high_grade_share"] for r in report.rows + report.reps + report.channels} == {None}
    bare = simulate(session, current_plan(session), leads)
    assert bare.high_grade is None and {r["high_grade_share"] for r in bare.per_rep.values()} == {None}
    assert bare.to_dict()["high_grade"] is None


def test_the_saas_pack_grades_companies_by_size(session: Session, clock: FrozenClock) -> None:
    import_pack(session, clock, SAAS_PACK)
    senior = add_rep(session, clock, "Senior AE", seniority="senior_ae")
    add_rep(session, clock, "SDR", seniority="sdr")
    start = clock.now()
    sizes = ["500_plus", "1_20", "101_500", "500_plus", "21_100"]
    for i, size in enumerate(sizes):
        lead = add_lead(session, clock, {"company_name": f"Company {i}", "company_size": size})
        route_lead(session, lead, clock=clock)
    # Only the largest companies are assigned (to the senior AE): all high grade, not 0 as before.
    report = distribution_report(session, None, since=start, until=clock.now() + timedelta(seconds=1))
    assert [(r["user_id"], r["count"], r["high_grade_share"]) for r in report.reps] == [(senior.id, 2, 1.0)]
    result = simulate(session, current_plan(session, form_key="saas-lead"), recent_leads(session, last=5))
    assert (result.pooled, result.high_grade) == (3, 3)  # 500+ twice and 101-500 once
    assert result.per_rep[senior.id]["high_grade_share"] == 1.0
