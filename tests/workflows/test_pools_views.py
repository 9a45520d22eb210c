"""Pool screens and the claim API: the pool index and page (scoped, paginated, in both languages), the
Claim button and its 409 when someone was faster, Release on the lead page, and the JSON API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.accounts import create_api_token
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pool_models import LeadClaim
from salesmesh.workflows.pools import claim_lead
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import make_app, sign_in
from tests.workflows.pool_helpers import POOL, pool_doc, pool_world, pooled_lead
from tests.workflows.routing_helpers import publish


@pytest.fixture
def world(runtime: Runtime, session: Session, clock: FrozenClock) -> dict[str, Any]:
    people = pool_world(session, clock)
    publish(session, clock, pool_doc("vip-pool", label={"en": "VIP pool", "zh": "重点客户池"}))
    leads = [pooled_lead(session, clock, name=f"Pooled {i}", campaign="spring") for i in range(3)]
    other = pooled_lead(session, clock, pool="vip-pool", name="VIP lead")
    owned = pooled_lead(session, clock, name="Owned lead", status="new", owner_id=people["rep_b1"].id)
    session.commit()
    return {"people": people, "leads": leads, "other": other, "owned": owned}


def _client(runtime: Runtime, session: Session, clock: FrozenClock, user: User, lang: str = "en") -> Any:
    client = make_app(runtime).test_client()
    user.locale = lang
    session.commit()
    sign_in(client, session, user, clock)
    return client


def _rows(html: str) -> list[str]:
    return re.findall(r'data-testid="pool-lead" data-lead="(\d+)"', html)


def test_the_pool_page_lists_its_open_leads_with_claim_buttons(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    client = _client(runtime, session, clock, world["people"]["rep_a1"])
    response = client.get(f"/pools/{POOL}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _rows(html) == [str(lead.id) for lead in world["leads"]]  # not the VIP pool's, not an owned one
    assert html.count('data-testid="claim"') == 3 and 'name="csrf_token"' in html
    for column in ("Name", "Institution", "Grade", "Region", "Age", "Source"):
        assert f">{column}</th>" in html
    assert "Peking Union" in html and "Web form · spring" in html
    assert re.search(r'data-testid="claims-used">0 / 3<', html)
    assert re.search(r'data-testid="claims-today">0 / 2<', html)
    assert "Follow a claimed lead up within 72 hours" in html
    assert 'href="/pools"' in client.get("/my-day").get_data(as_text=True)  # the nav link


def test_claiming_from_the_page_opens_the_lead(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    rep, lead = world["people"]["rep_a1"], world["leads"][0]
    client = _client(runtime, session, clock, rep)
    token = csrf_token(client, f"/pools/{POOL}")
    response = client.post(f"/leads/{lead.id}/claim", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == f"/leads/{lead.id}"
    page = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert "Lead claimed: it is yours now." in page
    assert 'data-testid="release-pool"' in page  # the holder may give it back
    session.expire_all()
    assert session.get(Lead, lead.id).owner_id == rep.id
    html = client.get(f"/pools/{POOL}").get_data(as_text=True)
    assert str(lead.id) not in _rows(html) and re.search(r'data-testid="claims-used">1 / 3<', html)


@pytest.mark.parametrize(
    ("lang", "message"),
    [("en", "Someone else claimed this lead first."), ("zh", "这条线索已被其他人抢先领取。")],
)
def test_a_lead_someone_else_claimed_answers_409_with_a_clear_message(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any], lang: str, message: str
) -> None:
    lead = world["leads"][0]
    client = _client(runtime, session, clock, world["people"]["rep_a1"], lang)
    token = csrf_token(client, f"/pools/{POOL}")  # the page still shows the lead ...
    claim_lead(session, world["people"]["rep_a2"], lead.id, clock=clock)  # ... when a teammate takes it
    session.commit()
    response = client.post(f"/leads/{lead.id}/claim", data={"csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert message in html and "flash-error" in html
    assert str(lead.id) not in _rows(html)


def test_a_claim_without_the_csrf_token_is_refused(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    client = _client(runtime, session, clock, world["people"]["rep_a1"])
    assert client.post(f"/leads/{world['leads'][0].id}/claim").status_code == 400
    session.expire_all()
    assert session.get(Lead, world["leads"][0].id).owner_id is None


def test_the_pages_in_chinese(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    client = _client(runtime, session, clock, world["people"]["rep_a1"], "zh")
    html = client.get(f"/pools/{POOL}").get_data(as_text=True)
    for text in (
        "公共池",
        "我的领取情况",
        "今日已领取",
        ">领取<",
        ">姓名</th>",
        ">机构</th>",
        ">时长</th>",
        "网站表单",
    ):
        assert text in html, text
    assert "领取的线索须在 72 小时内跟进，否则退回线索池。" in html
    index = client.get("/pools").get_data(as_text=True)
    assert "线索池" in index and "重点客户池" in index and "3 条待领取线索" in index


def test_the_index_counts_open_leads_per_pool_and_shows_refusals(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    people = world["people"]
    for lead in world["leads"][:2]:
        claim_lead(session, people["rep_a1"], lead.id, clock=clock)
    session.commit()
    client = _client(runtime, session, clock, people["rep_a1"])
    html = client.get("/pools").get_data(as_text=True)
    cards = dict(re.findall(r'data-pool="([\w-]+)".*?data-testid="pool-count">(\d+) open leads', html, re.S))
    assert cards == {POOL: "1", "vip-pool": "1"}
    assert "You have claimed 2 leads from this pool today" in html  # the daily cap is reached
    page = client.get(f"/pools/{POOL}").get_data(as_text=True)
    assert 'data-testid="claim" disabled' in page


def test_pages_of_the_pool(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    extra = [pooled_lead(session, clock, name=f"Extra {i}").id for i in range(25)]
    session.commit()
    client = _client(runtime, session, clock, world["people"]["rep_a1"])
    first = client.get(f"/pools/{POOL}").get_data(as_text=True)
    second = client.get(f"/pools/{POOL}?page=2").get_data(as_text=True)
    assert len(_rows(first)) == 25 and len(_rows(second)) == 3
    assert set(_rows(first)) | set(_rows(second)) == {
        str(i) for i in [*(x.id for x in world["leads"]), *extra]
    }
    assert "Showing 26–28 of 28" in second
    assert client.get(f"/pools/{POOL}?page=0").status_code == 400
    assert client.get("/pools/no-such-pool").status_code == 404


def test_release_from_the_lead_page(
    runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]
) -> None:
    rep, lead = world["people"]["rep_a1"], world["leads"][0]
    claim_lead(session, rep, lead.id, clock=clock)
    session.commit()
    client = _client(runtime, session, clock, rep)
    token = csrf_token(client, f"/leads/{lead.id}")
    refused = client.post(f"/leads/{lead.id}/release", data={"csrf_token": token, "reason": ""})
    assert refused.status_code == 302 and refused.headers["Location"] == f"/leads/{lead.id}"
    assert "Give a reason for releasing the lead." in client.get(f"/leads/{lead.id}").get_data(as_text=True)
    done = client.post(f"/leads/{lead.id}/release", data={"csrf_token": token, "reason": "Not my region"})
    assert done.status_code == 302 and done.headers["Location"] == f"/pools/{POOL}"
    page = client.get(f"/pools/{POOL}").get_data(as_text=True)
    assert "Lead released to the pool." in page and str(lead.id) in _rows(page)
    timeline = client.get(f"/leads/{lead.id}").get_data(as_text=True)
    assert "Lead released to the pool: Not my region" in timeline  # its audit event, on the timeline
    assert 'data-testid="claim-lead"' in timeline  # pooled again: anyone may claim it from here


def test_the_claim_api(runtime: Runtime, session: Session, clock: FrozenClock, world: dict[str, Any]) -> None:
    people, lead = world["people"], world["leads"][0]
    tokens = {
        name: create_api_token(session, None, people[name].id, label="t", clock=clock)[1] for name in people
    }
    session.commit()
    client = make_app(runtime).test_client()

    def call(name: str, lead_id: int, action: str = "claim", **body: Any) -> Any:
        headers = {"Authorization": f"Bearer {tokens[name]}"}
        return client.post(f"/api/v1/leads/{lead_id}/{action}", headers=headers, json=body or None)

    won = call("rep_a1", lead.id)
    assert won.status_code == 201
    assert (
        won.json["claim"]["user_id"] == people["rep_a1"].id
        and won.json["lead"]["owner_id"] == people["rep_a1"].id
    )
    lost = call("rep_b1", lead.id)
    assert lost.status_code == 409 and lost.json["error"]["code"] == "already_claimed"
    assert call("rep_a1", world["owned"].id).status_code == 409  # owned, never claimable
    assert call("rep_a1", 999_999).status_code == 404
    call("rep_a1", world["leads"][1].id)
    capped = call("rep_a1", world["leads"][2].id)
    assert capped.status_code == 403 and capped.json["error"]["code"] == "daily_cap"
    assert capped.json["error"]["errors"][0]["message_zh"].startswith("你今天已从该线索池领取 2 条线索")
    missing = call("rep_a1", lead.id, "release")
    assert missing.status_code == 422 and missing.json["error"]["errors"][0]["path"] == "/reason"
    released = call("rep_a1", lead.id, "release", reason="Duplicate of an account I hold")
    assert released.status_code == 200 and released.json["claim"]["status"] == "released"
    assert released.json["lead"]["status"] == "pooled"
    bogus = client.post(f"/api/v1/leads/{lead.id}/claim", headers={"Authorization": "Bearer sm_not-a-token"})
    assert bogus.status_code == 401
    session.expire_all()
    assert session.scalar(select(LeadClaim.status).where(LeadClaim.lead_id == lead.id)) == "released"
