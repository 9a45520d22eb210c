"""A rep's new leads in a real browser (Debian chromium, the real `make demo` server): one click on
"Log call" logs the first contact and the lead leaves the list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "salesmesh-demo"


def test_rep_logs_a_call_from_new_leads_and_the_lead_disappears(page: Page, demo_server: str) -> None:
    page.goto(demo_server + "/login")
    page.fill("input[name=email]", "rep7@demo.salesmesh.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.click("[data-testid=nav-new-leads]")
    expect(page).to_have_url(re.compile(r"/new-leads$"))
    first = page.locator("[data-testid=new-lead-row]").first
    expect(first).to_be_visible()
    lead_id = first.get_attribute("data-lead")
    name = first.locator("a.agenda-title").inner_text()

    first.locator("[data-testid=log-call]").click()

    expect(page).to_have_url(re.compile(r"/new-leads$"))
    expect(page.get_by_text(f"Call logged: {name} is contacted.")).to_be_visible()
    expect(page.locator(f"[data-testid=new-lead-row][data-lead='{lead_id}']")).to_have_count(0)
