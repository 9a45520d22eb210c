"""Helpers for the accounts tests: CSRF tokens from rendered pages, signing in, posting forms.

CSRF stays on in tests, so every form POST first fetches a page and reads the token the page renders.
"""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import TEST_PASSWORD

_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: Any, page: str = "/login") -> str:
    """Return the CSRF token a page renders for this client's session."""
    html = client.get(page).get_data(as_text=True)
    match = _FIELD.search(html) or _META.search(html)
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def login(client: Any, email: str, password: str = TEST_PASSWORD, **extra: str) -> Any:
    """Sign in through the login form (with its CSRF token) and return the response."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra})


def post_form(client: Any, url: str, data: dict[str, Any] | None = None, *, page: str | None = None) -> Any:
    """POST a form with a CSRF token read from `page` (the URL's own page by default)."""
    token = csrf_token(client, page or "/people")
    return client.post(url, data={**(data or {}), "csrf_token": token})


def is_signed_in(client: Any) -> bool:
    """Return True when the client's cookie still authenticates (asks a JSON route that needs a login)."""
    response = client.get("/api/v1/leads")
    assert response.status_code in (200, 401), response.status_code
    return response.status_code == 200
