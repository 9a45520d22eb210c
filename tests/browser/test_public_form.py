"""A visitor fills in the demo's public enquiry form (/f/md-lead, in Chinese) in a real browser: the
conditional tender date appears when ticked, and sending the form lands on the thank-you page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_visitor_sends_the_public_form_and_is_thanked(page: Page, demo_server: str) -> None:
    page.goto(demo_server + "/f/md-lead?lang=zh&utm_campaign=browser-test")
    expect(page.get_by_role("heading", name="医院线索")).to_be_visible()
    expect(page.locator("[data-field=source_channel]")).to_have_count(0)  # preset by the demo, not asked
    page.fill("#f-institution_name", "浏览器测试人民医院")
    page.select_option("#f-institution_grade", "tertiary_a")
    page.select_option("#f-institution_type", "hospital")
    page.select_option("#f-region", "jiangsu")
    page.fill("#f-contact_name", "测试医生")
    page.fill("#f-phone", "139 0000 4242")
    page.check("[data-field=product_interest] input[value=ultrasound]")
    tender_date = page.locator("[data-field=tender_date]")
    expect(tender_date).to_be_hidden()
    page.check("#f-tender_planned")
    expect(tender_date).to_be_visible()
    page.fill("#f-tender_date", "2027-03-01")
    # The server refuses forms sent within 3 seconds of being served (a bot's speed); a person is slower.
    page.wait_for_timeout(3200)
    page.click("[data-testid=public-form-submit]")

    expect(page).to_have_url(re.compile(r"/f/md-lead/thanks\?lang=zh$"))
    expect(page.locator("[data-testid=thank-you]")).to_contain_text("我们已收到您的咨询")
