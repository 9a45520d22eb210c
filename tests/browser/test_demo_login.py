"""`make demo` serves the app and a demo login works in a real browser (Debian chromium)."""

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def _login(page: Page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "salesmesh-demo")
    page.click("[data-testid=login-submit]")


def test_admin_logs_in_and_sees_the_packs(page: Page, demo_server: str) -> None:
    _login(page, demo_server, "admin@demo.salesmesh.test")
    expect(page.locator("[data-testid=lead-total]")).to_have_text(re.compile(r"^[1-9]\d*$"))
    page.goto(demo_server + "/definitions")
    expect(page.get_by_text("medical-device-direct").first).to_be_visible()
    page.click("[data-testid=logout]")
    expect(page).to_have_url(re.compile(r"/login"))


def test_rep_works_in_chinese(page: Page, demo_server: str) -> None:
    page.context.set_extra_http_headers({"Accept-Language": "zh-CN,zh;q=0.9"})
    _login(page, demo_server, "rep1@demo.salesmesh.test")
    expect(page.get_by_text("可见线索")).to_be_visible()
    response = page.goto(demo_server + "/definitions")
    assert response is not None and response.status == 403  # definitions are for ops/admin only
    expect(page.get_by_text("无权访问")).to_be_visible()


def test_wrong_password_is_refused(page: Page, demo_server: str) -> None:
    page.goto(demo_server + "/login")
    page.fill("input[name=email]", "admin@demo.salesmesh.test")
    page.fill("input[name=password]", "not-the-password")
    page.click("[data-testid=login-submit]")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("[data-testid=lead-total]")).to_have_count(0)
