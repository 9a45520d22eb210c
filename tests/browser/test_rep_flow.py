"""A rep's day in a real browser (Debian chromium, the real `make demo` server): log a call from a lead
opened in My day in at most three clicks on a phone-sized screen, convert the lead and land on the deal;
the lead form shows a conditional field only while its condition holds; and a validation error appears
in Chinese next to its field."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "salesmesh-demo"
PHONE = {"width": 390, "height": 844}


def _login(page: Page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    expect(page.locator("[data-testid=logout]")).to_be_visible()


def _open_first_lead_of_my_day(page: Page, base: str) -> str:
    page.goto(base + "/my-day")
    first = page.locator("[data-testid=new-lead] a.agenda-title").first
    expect(first).to_be_visible()
    first.click()
    expect(page).to_have_url(re.compile(r"/leads/\d+$"))
    return page.url


def test_rep_logs_a_call_in_three_clicks_and_converts_the_lead(page: Page, demo_server: str) -> None:
    page.set_viewport_size(PHONE)
    _login(page, demo_server, "rep1@demo.salesmesh.test")
    lead_url = _open_first_lead_of_my_day(page, demo_server)
    expect(page.locator("[data-testid=lead-status]")).to_have_text("New")

    # The quick log form: "Call" is preselected; outcome, a date chip and the button are three taps.
    clicks = 0
    page.click("label[for=log-outcome-interested]")
    clicks += 1
    page.get_by_role("button", name="In 3 days").click()
    clicks += 1
    page.fill("#log-next-step", "Send the ultrasound case studies")  # typed, not a click
    page.click("[data-testid=log-submit]")
    clicks += 1
    assert clicks <= 3

    expect(page).to_have_url(re.compile(re.escape(lead_url) + r"#timeline$"))
    expect(page.get_by_text("Call logged.")).to_be_visible()
    expect(page.locator("[data-testid=lead-status]")).to_have_text("Contacted")
    first_entry = page.locator("[data-testid=timeline] li").first
    expect(first_entry).to_contain_text("Call")
    expect(first_entry).to_contain_text("Interested")
    expect(first_entry).to_contain_text("Send the ultrasound case studies")
    expect(page.locator("[data-testid=next-step]")).to_contain_text("Send the ultrasound case studies")
    # the phone layout has no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.click("[data-testid=convert-lead]")
    expect(page).to_have_url(re.compile(r"/leads/\d+/convert$"))
    page.click("[data-testid=convert-submit]")
    expect(page).to_have_url(re.compile(r"/deals/\d+$"))
    expect(page.get_by_text(re.compile(r"Lead converted: deal .+ opened\."))).to_be_visible()
    expect(page.locator("[data-testid=deal-stage]")).to_have_text("First contact")
    timeline = page.locator("[data-testid=timeline]")
    expect(timeline).to_contain_text("Send the ultrasound case studies")
    expect(timeline.locator("li.tl-call").first).to_contain_text("Interested")
    expect(timeline).to_contain_text("Converted into a customer and a deal")

    page.goto(lead_url)
    expect(page.locator("[data-testid=lead-status]")).to_have_text("Converted")
    expect(page.locator("[data-testid=converted-deal]")).to_be_visible()


def test_conditional_field_follows_its_condition_without_a_reload(page: Page, demo_server: str) -> None:
    _login(page, demo_server, "rep2@demo.salesmesh.test")
    lead_url = _open_first_lead_of_my_day(page, demo_server)
    page.click("[data-testid=edit-lead]")
    expect(page).to_have_url(lead_url + "/edit")
    page.evaluate("window.__sameDocument = true")
    tender_date = page.locator("[data-field=tender_date]")
    planned = page.locator("#f-tender_planned")
    expect(planned).not_to_be_checked()
    expect(tender_date).to_be_hidden()

    planned.check()
    expect(tender_date).to_be_visible()
    expect(page.locator("#f-tender_date")).to_be_enabled()
    planned.uncheck()
    expect(tender_date).to_be_hidden()
    expect(page.locator("#f-tender_date")).to_be_disabled()
    planned.check()
    expect(tender_date).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True  # no page load happened


def test_validation_error_in_chinese_next_to_its_field(page: Page, demo_server: str) -> None:
    page.context.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9"})
    _login(page, demo_server, "rep3@demo.salesmesh.test")
    lead_url = _open_first_lead_of_my_day(page, demo_server)
    page.goto(lead_url + "/edit")
    expect(page.get_by_role("heading", name="编辑线索")).to_be_visible()
    page.fill("#f-wechat", "1bad")
    page.click("[data-testid=save-lead]")

    expect(page).to_have_url(lead_url + "/edit")
    error = page.locator("[data-field=wechat] .field-error")
    expect(error).to_have_text("格式不正确")
    expect(page.locator("#f-wechat")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-wechat")).to_have_value("1bad")
    expect(page.locator("[data-testid=form-errors]")).to_contain_text("请修改标出的字段。")
    expect(page.locator(".field-error")).to_have_count(1)  # only the bad field complains
