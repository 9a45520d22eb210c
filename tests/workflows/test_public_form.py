"""The public web form `/f/<form key>`: renders from the form definition in English and Chinese, takes a
valid submission into intake (routed, with channel and campaign), shows field errors (422), stops bots
(honeypot, too quick, rate limits) and forged, expired or replayed tokens, de-duplicates like every
intake, and sends the headers that let allowed sites embed it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.intake_models import LeadDuplicate
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.public_form_models import PublicFormAttempt
from salesmesh.workflows.public_forms import (
    TOKEN_TTL,
    PublicFormError,
    disable_public_form,
    enable_public_form,
    issue_token,
)
from salesmesh.workflows.routing_models import RoutingDecision
from tests.workflows.public_form_helpers import URL, fields, public_lead_form, public_world, send, token_of


@pytest.fixture
def reps(runtime: Runtime, clock: FrozenClock) -> list[int]:
    with runtime.db.session_scope() as session:
        return public_world(session, clock)


def _count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _outcomes(runtime: Runtime) -> list[str]:
    with runtime.db.session_scope() as session:
        return list(session.scalars(select(PublicFormAttempt.outcome).order_by(PublicFormAttempt.id)))


def test_renders_from_the_definition_in_english_and_chinese(client: Any, reps: list[int]) -> None:
    en = client.get(URL, headers={"Accept-Language": "en-US"})
    assert en.status_code == 200
    html = en.get_data(as_text=True)
    assert '<html lang="en">' in html and "<h1>Test lead</h1>" in html
    for text in ("Name", "Who should we call back?", "Tertiary A", "Tender date", "Send", "中文"):
        assert text in html, text
    # The conditional field starts hidden (server-side) and carries its rule for forms.js.
    assert 'data-field="tender_date"' in html and "data-visible-if=" in html
    assert 'id="f-tender_date"' in html and "forms.js" in html
    # Preset and system-filled fields are not offered to the visitor; staff chrome and cookies are absent.
    assert 'name="source"' not in html and 'name="campaign"' not in html
    assert 'name="homepage"' in html and 'name="_token"' in html
    assert "Sign out" not in html and "csrf_token" not in html
    assert "Set-Cookie" not in en.headers

    zh = client.get(URL + "?lang=zh").get_data(as_text=True)
    assert '<html lang="zh-CN">' in zh and "<h1>测试线索</h1>" in zh
    for text in ("姓名", "我们应该回电给谁？", "三甲", "招标日期", "提交", "English"):
        assert text in zh, text
    by_header = client.get(URL, headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "<h1>测试线索</h1>" in by_header


def test_headers_allow_the_listed_sites_to_embed_it(client: Any, reps: list[int]) -> None:
    response = client.get(URL)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://www.example.com" in csp
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    # Staff pages keep refusing to be framed.
    assert client.get("/login").headers["X-Frame-Options"] == "SAMEORIGIN"


def test_valid_submission_makes_a_routed_lead_with_channel_and_campaign(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    response = send(
        client,
        clock,
        fields(tender_planned="true", tender_date="2027-03-01"),
        url=URL + "?lang=zh&utm_campaign=spring-expo",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/f/test-lead/thanks?lang=zh"
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "我们已收到您的咨询" in thanks
    with runtime.db.session_scope() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.source_channel, lead.campaign) == ("web_form", "spring-expo")
        assert lead.received_at == clock.now()
        assert lead.phone == "+8613812345678" and lead.owner_id in reps
        assert lead.data["source"] == "website" and lead.data["campaign"] == "spring-expo"
        assert lead.data["tender_date"] == "2027-03-01" and lead.data["tender_planned"] is True
        decision = session.scalars(select(RoutingDecision).where(RoutingDecision.lead_id == lead.id)).one()
        assert (decision.outcome, decision.rule_key) == ("assigned", "key_account")
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.intake")).one()
        assert event.object_id == lead.id
        owner_notice = select(Notification).where(Notification.user_id == lead.owner_id)
        assert session.scalars(owner_notice).one().outbox_state == "pending"
    assert _outcomes(runtime) == ["accepted"]
    # The delivery of the owner's notice was enqueued by the commit; running it fans the notice out.
    assert runtime.jobs.backlog() == 1 and runtime.jobs.drain() == 1
    assert _count(runtime, Notification, Notification.outbox_state == "done") == 1


def test_field_errors_come_back_next_to_their_fields_with_values_kept(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    data = fields(contact_name=None, email="not-an-address", tender_planned="true")
    response = send(client, clock, data, url=URL + "?lang=zh")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<div class="field-error" id="err-contact_name">此项为必填项</div>' in html
    assert 'id="err-email"' in html and 'value="not-an-address"' in html
    assert 'id="err-tender_date">此项为必填项' in html  # required because the box is ticked
    assert 'value="Peking Union Hospital"' in html
    assert "请修改标出的字段。" in html
    assert _count(runtime, Lead) == 0 and _outcomes(runtime) == ["invalid"]
    # The page carries a fresh token: correcting the form and sending it again works.
    clock.advance(seconds=5)
    again = client.post(URL, data={**fields(), "_token": token_of(html)})
    assert again.status_code == 303 and _count(runtime, Lead) == 1


def test_honeypot_is_thanked_but_nothing_is_stored(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    response = send(client, clock, fields(homepage="http://spam.example"))
    assert response.status_code == 303 and response.headers["Location"].startswith("/f/test-lead/thanks")
    assert _count(runtime, Lead) == 0 and _count(runtime, LeadDuplicate) == 0
    assert _outcomes(runtime) == ["honeypot"]
    assert runtime.jobs.backlog() == 0  # nobody to tell, nothing to deliver


def test_too_quick_a_submission_is_refused_and_can_be_sent_again(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    response = send(client, clock, fields(), wait=1)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "That was very quick" in html and 'value="Dr Chen"' in html
    assert _count(runtime, Lead) == 0
    clock.advance(seconds=4)
    assert client.post(URL, data={**fields(), "_token": token_of(html)}).status_code == 303
    assert _outcomes(runtime) == ["too_fast", "accepted"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "This form could not be verified"),
        ("v1.1.00000000000000000000000000000000.00", "This form could not be verified"),
        ("garbage", "This form could not be verified"),
    ],
)
def test_missing_or_forged_tokens_are_refused(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int], token: str | None, message: str
) -> None:
    data = fields() if token is None else {**fields(), "_token": token}
    response = client.post(URL, data=data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and 'value="Dr Chen"' in html
    assert _count(runtime, Lead) == 0 and _outcomes(runtime) == []


def test_tokens_signed_with_another_secret_or_for_another_form_are_refused(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    issued = clock.now()
    clock.advance(seconds=10)
    for token in (
        issue_token("another-secret-of-enough-length", "test-lead", issued),
        issue_token(runtime.settings.secret_key, "other-form", issued),
    ):
        response = client.post(URL, data={**fields(), "_token": token})
        assert response.status_code == 400 and "could not be verified" in response.get_data(as_text=True)
    good = issue_token(runtime.settings.secret_key, "test-lead", issued)
    assert client.post(URL, data={**fields(), "_token": good}).status_code == 303


def test_expired_tokens_are_refused(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    response = send(client, clock, fields(), wait=TOKEN_TTL.total_seconds() + 1, url=URL + "?lang=zh")
    assert response.status_code == 400
    assert "此表单打开时间过长，已失效" in response.get_data(as_text=True)
    assert _count(runtime, Lead) == 0


def test_a_token_is_used_once(client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]) -> None:
    page = client.get(URL).get_data(as_text=True)
    token = token_of(page)
    clock.advance(seconds=5)
    assert client.post(URL, data={**fields(), "_token": token}).status_code == 303
    # The same page sent again (a double click, Back and resend) is thanked again without a second lead.
    assert client.post(URL, data={**fields(), "_token": token}).status_code == 303
    assert _count(runtime, Lead) == 1 and _count(runtime, LeadDuplicate) == 0
    # A token spent on an invalid submission cannot be reused.
    page = client.get(URL).get_data(as_text=True)
    clock.advance(seconds=5)
    token = token_of(page)
    assert client.post(URL, data={**fields(contact_name=None), "_token": token}).status_code == 422
    response = client.post(URL, data={**fields(phone="13900000000", email=None), "_token": token})
    assert response.status_code == 400 and "already sent" in response.get_data(as_text=True)
    assert _count(runtime, Lead) == 1


def test_rate_limit_per_address_answers_429_until_the_hour_has_passed(
    client: Any, runtime: Runtime, clock: FrozenClock
) -> None:
    with runtime.db.session_scope() as session:
        public_world(session, clock, per_ip_per_hour=3)
    for n in range(3):
        assert send(client, clock, fields(phone=f"1390000000{n}", email=None)).status_code == 303
    blocked = send(client, clock, fields(phone="13900000009", email=None), url=URL + "?lang=zh")
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    html = blocked.get_data(as_text=True)
    assert "此表单提交次数过多" in html and "This form has been sent too often" in html
    # Another address is not blocked by this one.
    other = send(
        client, clock, fields(phone="13900000010", email=None), environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 303
    clock.advance(timedelta(hours=1))
    assert send(client, clock, fields(phone="13900000011", email=None)).status_code == 303
    assert _count(runtime, Lead) == 5


def test_rate_limit_per_form_counts_every_address(client: Any, runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as session:
        public_world(session, clock, per_form_per_hour=2)
    for n in range(2):
        env = {"REMOTE_ADDR": f"10.0.0.{n}"}
        assert (
            send(client, clock, fields(phone=f"1390000000{n}", email=None), environ_base=env).status_code
            == 303
        )
    env = {"REMOTE_ADDR": "10.0.0.7"}
    assert send(client, clock, fields(phone="13900000007", email=None), environ_base=env).status_code == 429


def test_proxy_hops_make_the_forwarded_address_the_client(
    runtime: Runtime, clock: FrozenClock, settings: Any
) -> None:
    from salesmesh.platform.app import create_app

    with runtime.db.session_scope() as session:
        public_world(session, clock, per_ip_per_hour=1)
    client = create_app(settings.with_(proxy_hops=1), runtime=runtime).test_client()
    first = {"X-Forwarded-For": "203.0.113.5"}
    assert send(client, clock, fields(), headers=first).status_code == 303
    assert send(client, clock, fields(phone="13900000001", email=None), headers=first).status_code == 429
    second = {"X-Forwarded-For": "203.0.113.6"}
    assert send(client, clock, fields(phone="13900000002", email=None), headers=second).status_code == 303
    with runtime.db.session_scope() as session:
        ips = set(session.scalars(select(PublicFormAttempt.ip)))
    assert ips == {"203.0.113.5", "203.0.113.6"}


def test_a_returning_contact_is_linked_to_the_open_lead(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    assert send(client, clock, fields()).status_code == 303
    again = send(
        client,
        clock,
        fields(contact_name="Chen Wei", email="CHEN@example.com "),
        url=URL + "?campaign=retarget",
    )
    assert again.status_code == 303  # the visitor is thanked the same way
    with runtime.db.session_scope() as session:
        lead = session.scalars(select(Lead)).one()
        duplicate = session.scalars(select(LeadDuplicate)).one()
        assert duplicate.duplicate_of_id == lead.id and duplicate.matched_on == "phone"
        assert (duplicate.source_channel, duplicate.campaign) == ("web_form", "retarget")
        assert duplicate.data["contact_name"] == "Chen Wei"
        notes = select(Activity).where(Activity.lead_id == lead.id, Activity.outcome == "duplicate_intake")
        assert len(session.scalars(notes).all()) == 1  # the owner is told
    assert _outcomes(runtime) == ["accepted", "duplicate"]
    assert runtime.jobs.backlog() == 2  # one delivery per committed intake: the new lead, the duplicate


def test_unknown_disabled_and_unrouted_forms_are_404(
    client: Any, runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    assert client.get("/f/nope").status_code == 404
    assert client.post("/f/nope", data=fields()).status_code == 404
    assert "此表单不可用" in client.get("/f/nope?lang=zh").get_data(as_text=True)
    assert client.get("/f/" + "x" * 200).status_code == 404
    with runtime.db.session_scope() as session:
        disable_public_form(session, "test-lead", clock=clock)
    assert client.get(URL).status_code == 404
    assert client.get(URL + "/thanks").status_code == 404


def test_csrf_exemption_is_only_this_post(app: Any, client: Any, reps: list[int], clock: FrozenClock) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    # The public form needs no session token...
    assert send(client, clock, fields()).status_code == 303
    # ...while staff forms still do.
    response = client.post("/login", data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 400


def test_oversized_bodies_are_413(client: Any, reps: list[int]) -> None:
    response = client.post(URL, data={**fields(), "requirements": "x" * 100_000})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_a_required_field_visitors_do_not_fill_needs_a_preset(
    client: Any, runtime: Runtime, clock: FrozenClock
) -> None:
    form = public_lead_form()
    campaign = next(f for f in form["sections"][0]["fields"] if f["key"] == "campaign")
    campaign["required"] = True
    with runtime.db.session_scope() as session:
        public_world(session, clock, form=form, enable=False)
    with runtime.db.session_scope() as session, pytest.raises(PublicFormError) as refused:
        enable_public_form(session, "test-lead", clock=clock)
    assert (
        str(refused.value)
        == "presets: campaign required but not filled in by visitors; give it a preset value"
    )
    with runtime.db.session_scope() as session:
        enable_public_form(session, "test-lead", clock=clock, presets={"campaign": "website"})
    assert send(client, clock, fields()).status_code == 303
    link = URL + "?utm_campaign=%20autumn%0A-fair%20"
    assert send(client, clock, fields(phone="13900000001", email=None), url=link).status_code == 303
    with runtime.db.session_scope() as session:
        campaigns = list(session.scalars(select(Lead.campaign).order_by(Lead.id)))
    assert campaigns == ["website", "autumn-fair"]
