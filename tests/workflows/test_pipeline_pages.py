"""The pipeline pages with the Flask test client: the deal's stage card (criteria met/unmet, key nodes,
allowed moves) in English and Chinese, moving (422 with the unmet criteria by name, 409 when stale),
ticking key nodes, logging objections, and the approvals queue (a lead sees their team's, a rep cannot
decide), plus the deal page's statement count with the card."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.workflows.approval_models import ApprovalRequest
from salesmesh.workflows.models import Activity, Deal
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import count_statements, fresh, make_app, sign_in
from tests.workflows.pipeline_helpers import READY, md_world

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def app(runtime: Any) -> Any:
    return make_app(runtime)


@pytest.fixture
def world(client: Any, session: Any, clock: Any) -> SimpleNamespace:
    """The md world; rep_a1 (signed in) owns a deal in first contact and one in needs confirmed."""
    md = md_world(session, clock)
    md.first = md.deal(md.rep_a1, **READY["initial_contact"])
    md.needs = md.deal(md.rep_a1, "needs_confirmed", **READY["needs_confirmed"])
    md.foreign = md.deal(md.rep_b1, "needs_confirmed")
    session.commit()
    sign_in(client, session, md.rep_a1, clock)
    return md


def _post(
    client: Any, url: str, data: dict[str, Any], *, page: str, headers: dict[str, str] | None = None
) -> Any:
    return client.post(url, data={**data, "csrf_token": csrf_token(client, page)}, headers=headers or {})


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _as(client: Any, session: Any, clock: Any, user: Any) -> None:
    sign_in(client, session, user, clock)  # replaces the signed-in person's session cookie


# --- the stage card ---------------------------------------------------------------------------------------


def test_stage_card_in_english(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/deals/{world.first.id}").get_data(as_text=True)
    text = _text(html)
    assert 'data-testid="stage-card"' in html
    assert "Stage · Hospital direct sales First contact · 10% likely" in text and "Locked path" in text
    assert re.search(r'class="criterion met"[^>]*>.*?Product line', html, re.S)
    assert re.search(r'class="criterion unmet"[^>]*>.*?First real conversation', html, re.S)
    assert "done by logging one of: Call, Visit, Meeting" in text
    routes = re.findall(r'data-route="([a-z_]+)"', html)
    assert routes == ["needs_confirmed", "lost"]
    assert 'name="from_stage" value="initial_contact"' in html
    assert "Waive the unmet criteria (the approver decides)" in text
    assert 'data-testid="objection-form"' not in html  # first contact does not plan objections


def test_stage_card_in_chinese_with_the_objection_form(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/deals/{world.needs.id}", headers=ZH).get_data(as_text=True)
    text = _text(html)
    assert "阶段 · 医院直销流程 需求确认 · 赢率 25%" in text and "锁定流程" in text
    assert "科室需求调研" in text and "退出条件" in text
    assert "需要审批" in text and "跳过演示和试用（复购）" in text
    assert 'data-testid="objection-form"' in html and "价格太高" in text and "全生命周期成本" in text
    assert "自己的应对（需审批）" in text


def test_someone_elses_deal_is_404_for_the_move_too(client: Any, world: SimpleNamespace) -> None:
    page = f"/deals/{world.first.id}"
    response = _post(client, f"/deals/{world.foreign.id}/move", {"to_stage": "lost"}, page=page)
    assert response.status_code == 404


# --- moving -----------------------------------------------------------------------------------------------


def test_a_move_with_unmet_criteria_lists_them_by_name(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    page = f"/deals/{world.first.id}"
    data = {"to_stage": "needs_confirmed", "from_stage": "initial_contact"}
    response = _post(client, f"{page}/move", data, page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    errors = re.search(r'data-testid="criteria-errors">(.*?)</ul>', html, re.S).group(1)
    assert _text(errors).strip() == "Exit criterion not met: First real conversation"
    assert 'value="needs_confirmed" checked' in html
    zh = _post(client, f"{page}/move", data, page=page, headers=ZH).get_data(as_text=True)
    assert "未满足退出条件：首次有效沟通" in zh
    assert fresh(session, world.first).stage_key == "initial_contact"


def test_ticking_a_key_node_then_moving(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    page = f"/deals/{world.first.id}"
    log = _post(client, f"{page}/activities", {"kind": "call", "outcome": "reached"}, page=page)
    assert log.status_code == 302
    assert 'data-testid="tick-first_contact"' in client.get(page).get_data(as_text=True)
    assert _post(client, f"{page}/key-nodes", {"node": "first_contact"}, page=page).status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert re.search(r'class="key-node done" data-node="first_contact"', html)
    response = _post(
        client, f"{page}/move", {"to_stage": "needs_confirmed", "from_stage": "initial_contact"}, page=page
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("#stage")
    html = client.get(page).get_data(as_text=True)
    assert "Moved to Needs confirmed." in html
    assert re.search(r'data-testid="stage-change">\s*First contact → Needs confirmed', html)
    assert fresh(session, world.first).stage_key == "needs_confirmed"


def test_a_stale_move_is_409(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/deals/{world.needs.id}"
    first = _post(client, f"{page}/move", {"to_stage": "lost", "from_stage": "needs_confirmed"}, page=page)
    assert first.status_code == 302
    again = _post(
        client, f"{page}/move", {"to_stage": "solution_demo", "from_stage": "needs_confirmed"}, page=page
    )
    assert again.status_code == 409
    assert "Someone moved this deal meanwhile: it is in Lost now." in _text(again.get_data(as_text=True))
    assert fresh(session, world.needs).stage_key == "lost"


def test_a_skip_goes_to_the_team_leads_queue_and_is_approved_there(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    page = f"/deals/{world.needs.id}"
    data = {"to_stage": "contract_negotiation", "from_stage": "needs_confirmed", "reason": "Repeat order"}
    response = _post(client, f"{page}/move", data, page=page)
    assert response.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "Sent to lead_a for approval." in html and 'data-testid="move-waiting"' in html
    request = session.scalars(select(ApprovalRequest)).one()
    session.commit()

    queue = client.get("/approvals").get_data(as_text=True)  # the rep sees their own request, cannot decide
    assert f'data-approval="{request.id}"' in queue and f'data-testid="approve-{request.id}"' not in queue
    denied = _post(client, f"/approvals/{request.id}/decide", {"decision": "approve"}, page="/approvals")
    assert denied.status_code == 403

    _as(client, session, clock, world.lead_b)
    assert f'data-approval="{request.id}"' not in client.get("/approvals").get_data(as_text=True)
    other = _post(client, f"/approvals/{request.id}/decide", {"decision": "approve"}, page="/approvals")
    assert other.status_code == 404

    _as(client, session, clock, world.lead_a)
    queue = client.get("/approvals").get_data(as_text=True)
    assert "Needs confirmed → Contract negotiation" in _text(queue) and "Reason: Repeat order" in _text(queue)
    assert "Decision chain confirmed" in queue
    rejected = _post(client, f"/approvals/{request.id}/decide", {"decision": "reject"}, page="/approvals")
    assert rejected.status_code == 422 and "Say why you reject it" in rejected.get_data(as_text=True)
    approved = _post(
        client, f"/approvals/{request.id}/decide", {"decision": "approve", "note": "ok"}, page="/approvals"
    )
    assert approved.status_code == 302
    assert fresh(session, world.needs).stage_key == "contract_negotiation"
    decided = client.get("/approvals").get_data(as_text=True)
    assert "Decided by lead_a" in decided and 'data-testid="nothing-waiting"' in decided
    zh = _text(client.get("/approvals", headers=ZH).get_data(as_text=True))
    assert "审批" in zh and "最近处理" in zh and "需求确认 → 合同谈判" in zh


# --- objections -------------------------------------------------------------------------------------------


def test_logging_objections_from_the_deal_page(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    page = f"/deals/{world.needs.id}"
    url = f"{page}/objections"
    bad = _post(client, url, {"response": "price:nonsense"}, page=page)
    assert bad.status_code == 422 and "nonsense is not a standard response" in bad.get_data(as_text=True)
    empty = _post(client, url, {"response": "price:*"}, page=page)
    assert empty.status_code == 422 and "Choose one of the standard responses" in empty.get_data(as_text=True)

    assert _post(client, url, {"response": "price:total_cost"}, page=page).status_code == 302
    custom = {"response": "competitor:*", "custom_text": "We match the competitor's price."}
    assert _post(client, url, custom, page=page).status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "Objection logged. Your own response waits for approval." in html
    entries = [_text(m) for m in re.findall(r'data-testid="objection">(.*?)</p>', html, re.S)]
    assert (
        entries[0].strip().startswith("Prefers a competitor — Own response: We match the competitor's price.")
    )
    assert "Waiting" in entries[0]
    assert entries[1].strip() == "Price is too high — Total cost of ownership"
    activity = session.scalars(
        select(Activity).where(Activity.kind == "objection").order_by(Activity.id.desc())
    ).first()
    assert activity.data["objection"]["approval"]["status"] == "pending"

    _as(client, session, clock, world.lead_a)
    queue = client.get("/approvals").get_data(as_text=True)
    assert "Custom objection response" in queue and "We match the competitor&#39;s price." in queue


# --- measured -------------------------------------------------------------------------------------------


def test_the_deal_page_with_its_stage_card_costs_the_same_whatever_the_history(
    client: Any, world: SimpleNamespace, session: Any, clock: Any, runtime: Any, make_activity: Any
) -> None:
    deal = session.get(Deal, world.needs.id)
    url = f"/deals/{deal.id}"

    def statements() -> int:
        client.get(url)
        with count_statements(runtime) as seen:
            assert client.get(url).status_code == 200
        return len(seen)

    for i in range(3):
        make_activity(deal=deal, kind="visit", occurred_at=clock.now() - timedelta(minutes=i))
    session.commit()
    few = statements()
    for i in range(80):
        make_activity(
            deal=deal, kind=("call", "meeting")[i % 2], occurred_at=clock.now() - timedelta(hours=i)
        )
    session.commit()
    many = statements()
    assert few == many, (few, many)
    assert few <= 26, few


def test_the_approvals_queue_costs_the_same_whatever_its_length(
    client: Any, world: SimpleNamespace, session: Any, clock: Any, runtime: Any
) -> None:
    from salesmesh.workflows.approvals import decide_approval
    from salesmesh.workflows.pipelines import move_deal

    def ask(n: int) -> None:
        for _i in range(n):
            deal = world.deal(world.rep_a1, "needs_confirmed")
            request = move_deal(
                session, world.rep_a1, deal.id, "contract_negotiation", reason="r", clock=clock
            )
            if _i % 2:
                decide_approval(
                    session, world.lead_a, request.approval.id, approve=False, note="no", clock=clock
                )
        session.commit()

    def statements() -> int:
        client.get("/approvals")
        with count_statements(runtime) as seen:
            assert client.get("/approvals").status_code == 200
        return len(seen)

    _as(client, session, clock, world.lead_a)
    ask(2)
    few = statements()
    ask(12)
    many = statements()
    assert few == many, (few, many)
    assert few <= 12, few
