"""Record pages (lead, customer, deal) with the Flask test client: content in English and Chinese, policy
(foreign ids are 404), CSRF on every post, activity logging, tasks, the lead form (server-side
validation and conditional fields), lead conversion, and a statement count independent of history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from salesmesh.platform.audit import AuditEvent
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Lead, Task
from tests.platform.auth_helpers import csrf_token
from tests.workflows.page_helpers import (
    count_statements,
    form_post,
    fresh,
    make_app,
    make_staff,
    publish_calendar,
    publish_lead_form,
    sign_in,
    valid_lead_data,
)

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


@pytest.fixture
def app(runtime: Any) -> Any:
    return make_app(runtime)


@pytest.fixture
def world(
    client: Any,
    session: Any,
    clock: Any,
    pipeline: Any,
    make_lead: Any,
    make_customer: Any,
    make_contact: Any,
    make_deal: Any,
) -> SimpleNamespace:
    """rep_a1 owns a lead (md-lead form), a customer with a contact and a deal; rep_b1 owns the same."""
    form = publish_lead_form(session, clock)
    publish_calendar(session, clock)
    people = make_staff(session, clock)
    rep, other = people["rep_a1"], people["rep_b1"]

    def lead_of(user: Any, name: str) -> Lead:
        return make_lead(
            name=name,
            institution="江苏省人民医院",
            institution_grade="tertiary_a",
            region="jiangsu",
            phone="+8613812345678",
            owner_id=user.id,
            team_id=user.team_id,
            received_at=clock.now() - timedelta(hours=3),
            form_version_id=form.id,
            data=valid_lead_data(),
        )

    lead = lead_of(rep, "王伟 · 江苏省人民医院")
    customer = make_customer(owner=rep, name="Ruijin Hospital", region="shanghai")
    contact = make_contact(customer=customer, name="Dr. Li", phone="+8613900000000")
    deal = make_deal(customer=customer, name="Ruijin ultrasound", light="red", primary_contact_id=contact.id)
    foreign_lead = lead_of(other, "Foreign lead")
    foreign_customer = make_customer(owner=other, name="Foreign Hospital")
    foreign_deal = make_deal(customer=foreign_customer, name="Foreign deal")
    session.commit()
    sign_in(client, session, rep, clock)
    return SimpleNamespace(
        form=form,
        rep=rep,
        other=other,
        lead=lead,
        customer=customer,
        contact=contact,
        deal=deal,
        foreign_lead=foreign_lead,
        foreign_customer=foreign_customer,
        foreign_deal=foreign_deal,
    )


def _post(client: Any, url: str, data: Any, *, page: str, headers: dict[str, str] | None = None) -> Any:
    token = csrf_token(client, page)
    pairs = list(data.items()) if isinstance(data, dict) else list(data)
    return client.post(url, data=MultiDict([*pairs, ("csrf_token", token)]), headers=headers or {})


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</div>', html, re.S)
    assert match, f"no element #{element_id}"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# --- pages --------------------------------------------------------------------------------------------


def test_lead_page_in_english(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/leads/{world.lead.id}").get_data(as_text=True)
    assert "王伟 · 江苏省人民医院" in html
    assert 'data-testid="lead-status">New<' in html
    assert "Waiting for first contact: 3 h" in html
    assert "Tertiary grade A" in html and "Jiangsu" in html  # codes shown through the form's options
    assert "Log an interaction" in html and 'value="call" checked' in html
    assert "Hospital lead · v1" in html and "Institution name" in html
    assert f'href="/leads/{world.lead.id}/convert"' in html
    assert "Nothing here yet." in html


def test_lead_page_in_chinese(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/leads/{world.lead.id}", headers=ZH).get_data(as_text=True)
    assert "记录互动" in html and "互动时间线" in html and "下一步计划" in html
    assert "三级甲等（三甲）" in html and "机构名称" in html
    assert "等待首次联系：3 小时" in html
    assert "转为商机" in html and "暂无记录。" in html


def test_customer_and_deal_pages(client: Any, world: SimpleNamespace) -> None:
    html = client.get(f"/customers/{world.customer.id}").get_data(as_text=True)
    assert "Ruijin Hospital" in html and "Dr. Li" in html and "Clinician" in html
    assert f'href="/deals/{world.deal.id}"' in html and "Ruijin ultrasound" in html
    assert "Foreign deal" not in html
    html = client.get(f"/deals/{world.deal.id}").get_data(as_text=True)
    assert 'data-testid="deal-stage">First contact<' in html
    assert "At risk" in html and 'class="light red"' in html  # the light, with its meaning as text
    assert f'href="/customers/{world.customer.id}"' in html and "Dr. Li" in html
    zh = client.get(f"/deals/{world.deal.id}", headers=ZH).get_data(as_text=True)
    assert "初步接触" in zh and "有风险" in zh and "记录互动" in zh


@pytest.mark.parametrize(
    "path",
    [
        "/leads/{foreign_lead}",
        "/customers/{foreign_customer}",
        "/deals/{foreign_deal}",
        "/leads/{foreign_lead}/edit",
        "/leads/{foreign_lead}/convert",
        "/leads/999999",
        "/deals/999999",
    ],
)
def test_foreign_or_missing_records_are_404(client: Any, world: SimpleNamespace, path: str) -> None:
    url = path.format(
        foreign_lead=world.foreign_lead.id,
        foreign_customer=world.foreign_customer.id,
        foreign_deal=world.foreign_deal.id,
    )
    assert client.get(url).status_code == 404


def test_posts_about_foreign_records_are_404_and_write_nothing(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    page = f"/leads/{world.lead.id}"
    posts = [
        (f"/leads/{world.foreign_lead.id}/activities", {"kind": "call", "outcome": "reached"}),
        (f"/customers/{world.foreign_customer.id}/activities", {"kind": "call"}),
        (f"/deals/{world.foreign_deal.id}/activities", {"kind": "note", "summary": "x"}),
        (f"/deals/{world.foreign_deal.id}/tasks", {"title": "Sneaky"}),
        (f"/leads/{world.foreign_lead.id}/edit", form_post(valid_lead_data())),
        (f"/leads/{world.foreign_lead.id}/convert", {"deal_pipeline_key": "hospital-sales"}),
    ]
    for url, data in posts:
        assert _post(client, url, data, page=page).status_code == 404, url
    session.rollback()  # a fresh snapshot: see what the requests committed
    assert session.scalar(select(Activity.id)) is None
    assert session.scalar(select(Task.id)) is None
    assert fresh(session, world.foreign_lead).status == "new"


def test_anonymous_visitors_are_sent_to_login(app: Any, world: SimpleNamespace) -> None:
    response = app.test_client().get(f"/leads/{world.lead.id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- logging activities -------------------------------------------------------------------------------


def test_logging_a_call_with_a_next_step(
    client: Any, world: SimpleNamespace, session: Any, clock: Any
) -> None:
    page = f"/leads/{world.lead.id}"
    response = _post(
        client,
        f"{page}/activities",
        {
            "kind": "call",
            "outcome": "interested",
            "next_step": "Send the case studies",
            "next_step_due": "2026-01-08",
        },
        page=page,
    )
    assert response.status_code == 302 and response.headers["Location"] == f"{page}#timeline"
    activity = session.scalars(select(Activity)).one()
    assert (activity.kind, activity.outcome, activity.actor_id) == ("call", "interested", world.rep.id)
    # a picked day means "by the end of that day" in the calendar's zone (Asia/Shanghai, UTC+8)
    assert activity.next_step_due_at == datetime(2026, 1, 8, 15, 59, 59, tzinfo=UTC)
    lead = fresh(session, world.lead)
    assert lead.status == "contacted" and lead.next_step == "Send the case studies"
    html = client.get(page).get_data(as_text=True)
    assert 'data-testid="lead-status">Contacted<' in html
    assert "Call logged." in html  # the flash
    assert "Interested" in html and "Send the case studies" in html and "by 2026-01-08" in html
    assert "First response after" in html


def test_logging_redirects_to_a_local_next_page_only(client: Any, world: SimpleNamespace) -> None:
    page = f"/leads/{world.lead.id}"
    ok = _post(client, f"{page}/activities", {"kind": "note", "summary": "a", "next": "/my-day"}, page=page)
    assert ok.headers["Location"] == "/my-day"
    evil = _post(
        client, f"{page}/activities", {"kind": "note", "summary": "b", "next": "https://x.test/"}, page=page
    )
    assert evil.headers["Location"] == f"{page}#timeline"


def test_posts_need_the_csrf_token(client: Any, world: SimpleNamespace, session: Any) -> None:
    for url, data in [
        (f"/leads/{world.lead.id}/activities", {"kind": "call"}),
        (f"/leads/{world.lead.id}/tasks", {"title": "x"}),
        (f"/leads/{world.lead.id}/edit", {"institution_name": "x"}),
        (f"/leads/{world.lead.id}/convert", {"deal_pipeline_key": "hospital-sales"}),
    ]:
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "did not come from this site" in response.get_data(as_text=True)
    session.rollback()  # a fresh snapshot: see what the requests committed
    assert session.scalar(select(Activity.id)) is None and session.scalar(select(Task.id)) is None
    assert fresh(session, world.lead).status == "new"


@pytest.mark.parametrize(
    ("data", "field", "english", "chinese"),
    [
        (
            {"next_step_due": "08/01/2026"},
            "next_step_due",
            "Enter a date (YYYY-MM-DD).",
            "请输入日期（YYYY-MM-DD）。",
        ),
        (
            {"next_step_due": "2025-12-31"},
            "next_step_due",
            "Pick today or a later day.",
            "请选择今天或以后的日期。",
        ),
        ({"outcome": "delighted"}, "outcome", "Choose an outcome from the list.", "请从列表中选择结果。"),
        ({"kind": "stage_change"}, "kind", "Unknown value", "未知的值"),
        (
            {"next_step": "x" * 501},
            "next_step",
            "Too long (at most 500 characters).",
            "过长（最多 500 个字符）。",
        ),
    ],
)
def test_log_errors_show_next_to_their_field(
    client: Any, world: SimpleNamespace, session: Any, data: dict, field: str, english: str, chinese: str
) -> None:
    page = f"/leads/{world.lead.id}"
    form = {"kind": "call", **data}
    response = _post(client, f"{page}/activities", form, page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert english in _text(html, f"err-{field}")
    assert 'aria-invalid="true"' in html
    zh = _post(client, f"{page}/activities", form, page=page, headers=ZH).get_data(as_text=True)
    assert chinese in _text(zh, f"err-{field}")
    session.rollback()  # a fresh snapshot: see what the requests committed
    assert session.scalar(select(Activity.id)) is None


def test_logging_on_customer_and_deal_pages(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/deals/{world.deal.id}"
    _post(
        client,
        f"{page}/activities",
        {"kind": "visit", "outcome": "reached", "summary": "Demo done"},
        page=page,
    )
    page = f"/customers/{world.customer.id}"
    _post(client, f"{page}/activities", {"kind": "email", "summary": "Sent the brochure"}, page=page)
    kinds = sorted(session.scalars(select(Activity.kind)))
    assert kinds == ["email", "visit"]
    html = client.get(page).get_data(as_text=True)  # the customer's timeline has its deal's visit too
    assert "Demo done" in html and "Sent the brochure" in html


def test_timeline_filters_by_kind(
    client: Any, world: SimpleNamespace, make_activity: Any, session: Any
) -> None:
    make_activity(lead=world.lead, kind="call", summary="the call")
    make_activity(lead=world.lead, kind="note", summary="the note")
    session.commit()
    page = f"/leads/{world.lead.id}"
    html = client.get(page + "?kind=call").get_data(as_text=True)
    assert "the call" in html and "the note" not in html
    assert 'data-kind="call" aria-current="true"' in html
    html = client.get(page + "?kind=note&kind=call").get_data(as_text=True)
    assert "the call" in html and "the note" in html
    assert client.get(page + "?kind=bogus").status_code == 400
    assert client.get(page + "?before=yesterday").status_code == 400


def test_timeline_pages_back_with_before(
    client: Any, world: SimpleNamespace, make_activity: Any, session: Any, clock: Any
) -> None:
    start = clock.now() - timedelta(days=10)
    for i in range(55):
        make_activity(
            lead=world.lead, kind="call", summary=f"entry {i:02d}", occurred_at=start + timedelta(hours=i)
        )
    session.commit()
    html = client.get(f"/leads/{world.lead.id}").get_data(as_text=True)
    assert "entry 54" in html and "entry 05" in html and "entry 04" not in html
    older = re.search(r'href="([^"]+)#timeline" data-testid="older"', html)
    assert older
    html = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "entry 04" in html and "entry 00" in html and "entry 54" not in html


# --- tasks --------------------------------------------------------------------------------------------


def test_adding_and_completing_a_task(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/deals/{world.deal.id}"
    response = _post(client, f"{page}/tasks", {"title": "Prepare the quote", "due": "2026-01-09"}, page=page)
    assert response.status_code == 302 and response.headers["Location"] == f"{page}#plan"
    task = session.scalars(select(Task)).one()
    assert (task.deal_id, task.assignee_id, task.status) == (world.deal.id, world.rep.id, "open")
    html = client.get(page).get_data(as_text=True)
    assert "Prepare the quote" in html and "Mark done: Prepare the quote" in html
    done = _post(client, f"/tasks/{task.id}/complete", {"next": f"{page}#plan"}, page=page)
    assert done.status_code == 302
    assert fresh(session, task).status == "done"
    assert "Mark done: Prepare the quote" not in client.get(page).get_data(as_text=True)


def test_task_errors_and_foreign_tasks(client: Any, world: SimpleNamespace, session: Any, clock: Any) -> None:
    foreign = Task(
        title="Theirs",
        subject_type="deal",
        deal_id=world.foreign_deal.id,
        customer_id=world.foreign_customer.id,
        assignee_id=world.other.id,
        team_id=world.other.team_id,
        status="open",
        data={},
        created_at=clock.now(),
    )
    session.add(foreign)
    session.commit()
    page = f"/leads/{world.lead.id}"
    response = _post(client, f"{page}/tasks", {"title": " ", "due": "tomorrow"}, page=page, headers=ZH)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "请输入日期（YYYY-MM-DD）。" in _text(html, "err-due")
    response = _post(client, f"{page}/tasks", {"title": ""}, page=page)
    assert "This field is required." in _text(response.get_data(as_text=True), "err-title")
    assert _post(client, f"/tasks/{foreign.id}/complete", {}, page=page).status_code == 404
    assert fresh(session, foreign).status == "open"


# --- the lead form ------------------------------------------------------------------------------------


def test_edit_form_hides_the_conditional_field_until_its_condition_holds(
    client: Any, world: SimpleNamespace
) -> None:
    html = client.get(f"/leads/{world.lead.id}/edit").get_data(as_text=True)
    wrapper = re.search(r'<div class="field field-date" data-field="tender_date"[^>]*>', html)
    assert wrapper and " hidden" in wrapper.group(0) and "data-visible-if" in wrapper.group(0)
    assert "forms.js" in html and 'value="江苏省人民医院"' in html and "novalidate" in html


def test_saving_the_lead_form(client: Any, world: SimpleNamespace, session: Any) -> None:
    page = f"/leads/{world.lead.id}/edit"
    data = {
        **valid_lead_data(),
        "institution_name": "南京鼓楼医院",
        "email": "Li@Example.CN",
        "tender_planned": True,
        "tender_date": "2026-03-01",
        "wechat": "wang_wei88",
    }
    response = _post(client, page, form_post(data), page=page)
    assert response.status_code == 302 and response.headers["Location"] == f"/leads/{world.lead.id}"
    lead = fresh(session, world.lead)
    assert lead.data["tender_date"] == "2026-03-01" and lead.data["tender_planned"] is True
    assert lead.institution == "南京鼓楼医院" and lead.email == "li@example.cn"  # columns follow the form
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.update")).one()
    assert event.object_id == lead.id and event.actor_id == world.rep.id
    assert event.payload["changes"]["institution"] == ["江苏省人民医院", "南京鼓楼医院"]
    # the conditional field is dropped again once its condition no longer holds
    data["tender_planned"] = False
    _post(client, page, form_post(data), page=page)
    lead = fresh(session, world.lead)
    assert "tender_date" not in lead.data and lead.data["tender_planned"] is False


@pytest.mark.parametrize(
    ("change", "field", "english", "chinese"),
    [
        ({"wechat": "1bad"}, "wechat", "expected format", "格式不正确"),
        ({"tender_planned": True}, "tender_date", "This field is required", "此项为必填项"),
        ({"institution_name": ""}, "institution_name", "This field is required", "此项为必填项"),
        ({"bed_count": "lots"}, "bed_count", "number", "数字"),
    ],
)
def test_lead_form_errors_are_shown_next_to_their_field(
    client: Any, world: SimpleNamespace, session: Any, change: dict, field: str, english: str, chinese: str
) -> None:
    page = f"/leads/{world.lead.id}/edit"
    data = {**valid_lead_data(), **change}
    response = _post(client, page, form_post(data), page=page)
    assert response.status_code == 422
    assert english.lower() in _text(response.get_data(as_text=True), f"err-{field}").lower()
    zh = _post(client, page, form_post(data), page=page, headers=ZH)
    assert chinese in _text(zh.get_data(as_text=True), f"err-{field}")
    assert "请修改标出的字段。" in zh.get_data(as_text=True)
    assert fresh(session, world.lead).data == valid_lead_data()  # nothing saved


def test_a_lead_without_a_form_is_pinned_on_its_first_edit(
    client: Any, world: SimpleNamespace, session: Any, make_lead: Any
) -> None:
    bare = make_lead(
        name="Imported",
        institution="常州市第一人民医院",
        region="jiangsu",
        phone="+8613811112222",
        owner_id=world.rep.id,
        team_id=world.rep.team_id,
    )
    session.commit()
    page = f"/leads/{bare.id}/edit"
    html = client.get(page).get_data(as_text=True)
    assert 'value="常州市第一人民医院"' in html  # columns fill the fields the data lacks
    data = {**valid_lead_data(), "institution_name": "常州市第一人民医院"}
    assert _post(client, page, form_post(data), page=page).status_code == 302
    bare = fresh(session, bare)
    assert bare.form_version_id == world.form.id and bare.data["institution_name"] == "常州市第一人民医院"


# --- conversion ---------------------------------------------------------------------------------------


def test_converting_a_lead_lands_on_the_deal_with_its_history(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    lead_page = f"/leads/{world.lead.id}"
    _post(
        client,
        f"{lead_page}/activities",
        {"kind": "call", "outcome": "interested", "summary": "Keen"},
        page=lead_page,
    )
    html = client.get(f"{lead_page}/convert").get_data(as_text=True)
    assert 'value="江苏省人民医院"' in html and 'value="王伟"' in html and "Hospital sales" in html
    response = _post(
        client,
        f"{lead_page}/convert",
        {
            "customer_choice": "new",
            "customer_name": "江苏省人民医院",
            "customer_region": "jiangsu",
            "customer_grade": "tertiary_a",
            "contact_name": "王伟",
            "contact_role": "department_head",
            "contact_phone": "+8613812345678",
            "deal_pipeline_key": "hospital-sales",
            "deal_name": "江苏省人民医院 · 超声",
            "deal_amount": "1,200,000",
            "deal_expected_close": "2026-06-30",
        },
        page=f"{lead_page}/convert",
    )
    assert response.status_code == 302
    deal = session.scalars(select(Deal).where(Deal.name == "江苏省人民医院 · 超声")).one()
    assert response.headers["Location"] == f"/deals/{deal.id}"
    html = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert "Lead converted: deal 江苏省人民医院 · 超声 opened." in html
    assert "Keen" in html and "Interested" in html  # the lead's call is on the deal's timeline
    assert "CNY 1,200,000.00" in html and "2026-06-30" in html
    assert f'href="/leads/{world.lead.id}"' in html
    html = client.get(lead_page).get_data(as_text=True)
    assert 'data-testid="converted-deal"' in html and 'data-testid="convert-lead"' not in html
    contact = session.scalars(select(Contact).where(Contact.name == "王伟")).one()
    assert contact.role == "department_head"
    # converting again goes to the deal
    assert client.get(f"{lead_page}/convert").headers["Location"] == f"/deals/{deal.id}"


def test_conversion_errors_are_shown_next_to_their_field(
    client: Any, world: SimpleNamespace, session: Any
) -> None:
    page = f"/leads/{world.lead.id}/convert"
    data = {
        "customer_choice": "new",
        "customer_name": "",
        "contact_name": "王伟",
        "deal_pipeline_key": "hospital-sales",
        "deal_amount": "a lot",
    }
    response = _post(client, page, data, page=page, headers=ZH)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "此项为必填项。" in _text(html, "err-customer_name")
    assert "请输入金额。" in _text(html, "err-deal_amount")
    session.rollback()  # a fresh snapshot: see what the requests committed
    assert (
        session.scalar(select(Deal.id).where(Deal.customer_id != world.customer.id)) == world.foreign_deal.id
    )
    assert fresh(session, world.lead).status == "new"


def test_conversion_offers_a_visible_existing_customer(
    client: Any, world: SimpleNamespace, session: Any, make_customer: Any
) -> None:
    existing = make_customer(owner=world.rep, name="江苏省人民医院", region="jiangsu")
    session.commit()
    page = f"/leads/{world.lead.id}/convert"
    html = client.get(page).get_data(as_text=True)
    assert 'id="customer-existing" name="customer_choice" value="existing" checked' in html
    response = _post(
        client,
        page,
        {
            "customer_choice": "existing",
            "customer_id": str(existing.id),
            "contact_name": "王伟",
            "deal_pipeline_key": "hospital-sales",
        },
        page=page,
    )
    assert response.status_code == 302
    session.rollback()  # a fresh snapshot: see what the requests committed
    deal = session.scalars(select(Deal).where(Deal.customer_id == existing.id)).one()
    assert (
        session.scalar(
            select(Customer.id).where(Customer.name == "江苏省人民医院", Customer.id != existing.id)
        )
        is None
    )
    assert deal.name == "江苏省人民医院"


# --- measured: statements independent of the history ---------------------------------------------------


def _page_statements(client: Any, runtime: Any, url: str) -> int:
    client.get(url)  # warm caches (compiled form, templates)
    with count_statements(runtime) as seen:
        response = client.get(url)
    assert response.status_code == 200
    return len(seen)


@pytest.mark.parametrize("subject", ["lead", "deal"])
def test_record_page_statement_count_does_not_grow_with_activities(
    client: Any,
    runtime: Any,
    world: SimpleNamespace,
    session: Any,
    make_activity: Any,
    clock: Any,
    subject: str,
) -> None:
    record = world.lead if subject == "lead" else world.deal
    url = f"/{subject}s/{record.id}"
    users = [world.rep, world.other]

    def add(n: int, offset: int) -> None:
        for i in range(n):
            when = clock.now() - timedelta(minutes=offset + i)
            make_activity(
                **{subject: record},
                kind=("call", "visit", "note")[i % 3],
                occurred_at=when,
                actor_id=users[i % 2].id,
                contact_id=world.contact.id if subject == "deal" else None,
                outcome="reached",
                summary=f"entry {offset + i}",
            )
        session.commit()

    add(3, 0)
    few = _page_statements(client, runtime, url)
    add(57, 100)
    many = _page_statements(client, runtime, url)
    assert many == few, f"{few} statements with 3 activities, {many} with 60"
    assert few <= 20
