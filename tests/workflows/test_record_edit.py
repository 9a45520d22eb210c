"""Customer and deal edit pages with the Flask test client: saving redirects and audits, errors sit next to
their fields in English and Chinese (422), CSRF is required, foreign records are 404, owner/team/stage/
status cannot be changed by posting extra fields, and a deal keeps validating under its pinned form."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from salesmesh.platform.audit import AuditEvent
from salesmesh.workflows.models import Customer, Deal
from tests.platform.auth_helpers import csrf_token
from tests.workflows.conftest import deal_form_doc, publish
from tests.workflows.page_helpers import fresh, make_app, make_staff, publish_lead_form, sign_in

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def customer_form_doc() -> dict[str, Any]:
    """Return a customer form with a required bed count (10..5000) and an optional note."""
    return {
        "kind": "form",
        "key": "hospital-customer",
        "schema_version": 1,
        "label": {"en": "Hospital profile", "zh": "医院资料"},
        "record_type": "customer",
        "sections": [
            {
                "key": "profile",
                "label": {"en": "Profile", "zh": "概况"},
                "fields": [
                    {
                        "key": "bed_count",
                        "type": "number",
                        "required": True,
                        "min": 10,
                        "max": 5000,
                        "label": {"en": "Beds", "zh": "床位数"},
                    },
                    {"key": "note", "type": "text", "label": {"en": "Note", "zh": "备注"}},
                ],
            }
        ],
    }


@pytest.fixture
def app(runtime: Any) -> Any:
    return make_app(runtime)


@pytest.fixture
def world(
    client: Any,
    session: Any,
    clock: Any,
    pipeline: Any,
    make_customer: Any,
    make_contact: Any,
    make_deal: Any,
) -> SimpleNamespace:
    """rep_a1 owns a customer with two contacts and a deal pinned to the deal form; rep_b1 owns the same."""
    publish_lead_form(session, clock)
    deal_form = publish(session, clock, deal_form_doc())
    people = make_staff(session, clock)
    rep, other = people["rep_a1"], people["rep_b1"]
    customer = make_customer(owner=rep, name="Ruijin Hospital", region="shanghai")
    li = make_contact(customer=customer, name="Dr. Li")
    wang = make_contact(customer=customer, name="Dr. Wang")
    deal = make_deal(
        customer=customer,
        name="Ruijin ultrasound",
        primary_contact_id=li.id,
        form_version_id=deal_form.id,
        data={"product_line": "ultrasound", "old_field": "kept"},
    )
    foreign_customer = make_customer(owner=other, name="Foreign Hospital")
    foreign_deal = make_deal(customer=foreign_customer, name="Foreign deal", form_version_id=deal_form.id)
    session.commit()
    sign_in(client, session, rep, clock)
    return SimpleNamespace(
        rep=rep,
        other=other,
        customer=customer,
        li=li,
        wang=wang,
        deal=deal,
        deal_form=deal_form,
        foreign_customer=foreign_customer,
        foreign_deal=foreign_deal,
    )


def _post(client: Any, url: str, data: dict[str, str], *, page: str, headers: Any = None) -> Any:
    token = csrf_token(client, page)
    return client.post(url, data=MultiDict([*data.items(), ("csrf_token", token)]), headers=headers or {})


def _err(html: str, name: str) -> str:
    match = re.search(rf'id="err-{name}"[^>]*>(.*?)</div>', html, re.S)
    assert match, f"no error next to {name}"
    return match.group(1).strip()


def _customer_data(**change: str) -> dict[str, str]:
    return {
        "customer_name": "Ruijin Hospital",
        "customer_grade": "tertiary_a",
        "customer_region": "shanghai",
        "customer_institution_type": "hospital",
        **change,
    }


def _deal_data(world: SimpleNamespace, **change: str) -> dict[str, str]:
    return {
        "deal_amount": "1200000",
        "deal_expected_close": "2027-03-31",
        "deal_primary_contact_id": str(world.wang.id),
        "product_line": "CT",
        **change,
    }


def _events(session: Any, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- pages --------------------------------------------------------------------------------------------


def test_record_pages_link_to_their_edit_pages(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/customers/{world.customer.id}").get_data(as_text=True)
    assert f'href="/customers/{world.customer.id}/edit"' in html
    html = client.get(f"/deals/{world.deal.id}").get_data(as_text=True)
    assert f'href="/deals/{world.deal.id}/edit"' in html
    page = client.get(f"/deals/{world.deal.id}/edit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="product_line"' in html and 'value="ultrasound"' in html
    assert 'value="1200000"' not in html and f'<option value="{world.li.id}" selected>Dr. Li<' in html
    zh = client.get(f"/customers/{world.customer.id}/edit", headers=ZH).get_data(as_text=True)
    assert "编辑客户" in zh and 'value="Ruijin Hospital"' in zh and "机构名称" in zh


# --- customers ----------------------------------------------------------------------------------------


def test_saving_a_customer_without_a_form_edits_the_standard_fields(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    page = f"/customers/{world.customer.id}/edit"
    response = _post(client, page, _customer_data(customer_name="Ruijin Hospital East"), page=page)
    assert response.status_code == 302 and response.headers["Location"] == f"/customers/{world.customer.id}"
    customer = fresh(session, world.customer)
    assert customer.name == "Ruijin Hospital East" and customer.form_version_id is None
    (event,) = _events(session, "customer.update")
    assert event.object_id == customer.id and event.actor_id == world.rep.id
    assert event.payload["changes"]["name"] == ["Ruijin Hospital", "Ruijin Hospital East"]


def test_saving_a_customer_with_the_published_customer_form_pins_it(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    form = publish(session, clock, customer_form_doc())
    session.commit()
    page = f"/customers/{world.customer.id}/edit"
    assert 'name="bed_count"' in client.get(page).get_data(as_text=True)
    response = _post(client, page, _customer_data(bed_count="800", note="New wing"), page=page)
    assert response.status_code == 302
    customer = fresh(session, world.customer)
    assert customer.form_version_id == form.id and customer.data == {"bed_count": 800, "note": "New wing"}
    (event,) = _events(session, "customer.update")
    assert event.payload["changes"]["form_version_id"] == [None, form.id]


@pytest.mark.parametrize(
    ("change", "field", "english", "chinese"),
    [
        ({"customer_name": ""}, "customer_name", "required", "必填"),
        ({"bed_count": "lots"}, "bed_count", "number", "数字"),
        ({"bed_count": ""}, "bed_count", "required", "必填"),
    ],
)
def test_customer_errors_are_shown_next_to_their_field(
    client: Any,
    world: SimpleNamespace,
    session: Any,
    clock: Any,
    change: dict[str, str],
    field: str,
    english: str,
    chinese: str,
) -> None:
    publish(session, clock, customer_form_doc())
    session.commit()
    page = f"/customers/{world.customer.id}/edit"
    data = _customer_data(**{"bed_count": "800", **change})
    response = _post(client, page, data, page=page)
    assert response.status_code == 422
    assert english in _err(response.get_data(as_text=True), field).lower()
    zh = _post(client, page, data, page=page, headers=ZH)
    assert zh.status_code == 422 and chinese in _err(zh.get_data(as_text=True), field)
    assert "请修改标出的字段。" in zh.get_data(as_text=True)
    customer = fresh(session, world.customer)
    assert customer.data == {} and customer.form_version_id is None and customer.name == "Ruijin Hospital"


def test_renaming_a_customer_into_a_duplicate_is_an_error_at_the_name(
    client: Any, world: SimpleNamespace, make_customer: Any, session: Any
) -> None:
    make_customer(owner=world.rep, name="Huashan Hospital", region="shanghai")
    session.commit()
    page = f"/customers/{world.customer.id}/edit"
    response = _post(client, page, _customer_data(customer_name="Huashan  hospital"), page=page)
    assert response.status_code == 422
    assert "already exists" in _err(response.get_data(as_text=True), "customer_name")


def test_customer_owner_and_team_cannot_be_posted(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/customers/{world.customer.id}/edit"
    extra = {"owner_id": str(world.other.id), "team_id": str(world.other.team_id), "name": "Hijack"}
    assert _post(client, page, _customer_data(**extra), page=page).status_code == 302
    customer = fresh(session, world.customer)
    assert customer.owner_id == world.rep.id and customer.team_id == world.rep.team_id
    assert customer.name == "Ruijin Hospital"


# --- deals --------------------------------------------------------------------------------------------


def test_saving_a_deal(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/deals/{world.deal.id}/edit"
    response = _post(client, page, _deal_data(world), page=page)
    assert response.status_code == 302 and response.headers["Location"] == f"/deals/{world.deal.id}"
    deal = fresh(session, world.deal)
    assert deal.amount == Decimal("1200000.00") and deal.expected_close == date(2027, 3, 31)
    assert deal.primary_contact_id == world.wang.id
    assert deal.data == {"product_line": "CT", "old_field": "kept"}  # unknown keys stay as history
    (event,) = _events(session, "deal.update")
    assert event.object_id == deal.id and event.actor_id == world.rep.id
    assert event.payload["changes"]["primary_contact_id"] == [world.li.id, world.wang.id]


def test_a_deal_keeps_its_pinned_form_version(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    doc = deal_form_doc()
    doc["sections"][0]["fields"].append(
        {"key": "budget_code", "type": "text", "required": True, "label": {"en": "Budget", "zh": "预算"}}
    )
    v2 = publish(session, clock, doc)
    session.commit()
    assert v2.id != world.deal_form.id
    page = f"/deals/{world.deal.id}/edit"
    assert 'name="budget_code"' not in client.get(page).get_data(as_text=True)
    assert _post(client, page, _deal_data(world), page=page).status_code == 302  # v1 needs no budget
    assert fresh(session, world.deal).form_version_id == world.deal_form.id


@pytest.mark.parametrize(
    ("change", "field", "english", "chinese"),
    [
        ({"deal_amount": "lots"}, "deal_amount", "Enter an amount.", "金额"),
        ({"deal_expected_close": "31/03/2027"}, "deal_expected_close", "date", "日期"),
        (
            {"deal_primary_contact_id": "abc"},
            "deal_primary_contact_id",
            "Choose a contact",
            "请从列表中选择联系人",
        ),
        ({"product_line": "x" * 5000}, "product_line", "long", "长"),
    ],
)
def test_deal_errors_are_shown_next_to_their_field(
    client: Any,
    world: SimpleNamespace,
    session: Any,
    change: dict[str, str],
    field: str,
    english: str,
    chinese: str,
) -> None:
    page = f"/deals/{world.deal.id}/edit"
    data = _deal_data(world, **change)
    response = _post(client, page, data, page=page)
    assert response.status_code == 422
    assert english.lower() in _err(response.get_data(as_text=True), field).lower()
    zh = _post(client, page, data, page=page, headers=ZH)
    assert zh.status_code == 422 and chinese in _err(zh.get_data(as_text=True), field)
    deal = fresh(session, world.deal)
    assert deal.amount is None and deal.data["product_line"] == "ultrasound"
    assert _events(session, "deal.update") == []


def test_a_contact_of_another_customer_is_refused(
    client: Any, world: SimpleNamespace, session: Any, make_contact: Any
) -> None:
    stranger = make_contact(customer=world.foreign_customer, name="Stranger")
    session.commit()
    page = f"/deals/{world.deal.id}/edit"
    response = _post(client, page, _deal_data(world, deal_primary_contact_id=str(stranger.id)), page=page)
    assert response.status_code == 422
    assert "not at this customer" in _err(response.get_data(as_text=True), "deal_primary_contact_id")


def test_deal_owner_stage_and_status_cannot_be_posted(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    page = f"/deals/{world.deal.id}/edit"
    extra = {
        "owner_id": str(world.other.id),
        "team_id": str(world.other.team_id),
        "stage_key": "signed",
        "status": "won",
        "deal_stage_key": "signed",
        "pipeline_key": "other",
    }
    assert _post(client, page, _deal_data(world, **extra), page=page).status_code == 302
    deal = fresh(session, world.deal)
    assert (deal.owner_id, deal.team_id) == (world.rep.id, world.rep.team_id)
    assert (deal.stage_key, deal.status, deal.pipeline_key) == ("first_contact", "open", "hospital-sales")
    (event,) = _events(session, "deal.update")
    assert not {"owner_id", "team_id", "stage_key", "status"} & set(event.payload["changes"])


# --- policy and CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["customers", "deals"])
def test_another_teams_records_are_404(client: Any, world: SimpleNamespace, session: Any, kind: str) -> None:
    ident = world.foreign_customer.id if kind == "customers" else world.foreign_deal.id
    assert client.get(f"/{kind}/{ident}/edit").status_code == 404
    data = _customer_data(customer_name="Mine now") if kind == "customers" else _deal_data(world)
    page = f"/customers/{world.customer.id}/edit"
    assert _post(client, f"/{kind}/{ident}/edit", data, page=page).status_code == 404
    session.rollback()
    assert fresh(session, world.foreign_customer).name == "Foreign Hospital"
    assert fresh(session, world.foreign_deal).amount is None
    assert _events(session, "customer.update") == [] and _events(session, "deal.update") == []


def test_edits_need_the_csrf_token(client: Any, world: SimpleNamespace, session: Any) -> None:
    for url, data in [
        (f"/customers/{world.customer.id}/edit", _customer_data(customer_name="No token")),
        (f"/deals/{world.deal.id}/edit", _deal_data(world)),
    ]:
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "did not come from this site" in response.get_data(as_text=True)
    session.rollback()
    assert session.scalar(select(Customer.name).where(Customer.id == world.customer.id)) == "Ruijin Hospital"
    assert session.scalar(select(Deal.amount).where(Deal.id == world.deal.id)) is None
