"""Signing in for the definitions web and API tests: committed users, a server-side session cookie,
bearer tokens and the CSRF token a rendered page carries."""

from __future__ import annotations

import re
from typing import Any

from salesmesh.platform import accounts, credentials
from salesmesh.platform.models import User

_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def committed_user(session: Any, make_user: Any, role: str, **overrides: Any) -> User:
    """Create a user and commit it so the app's own sessions see it."""
    user = make_user(role=role, **overrides)
    session.commit()
    return user


def sign_in(client: Any, runtime: Any, user: User) -> None:
    """Open a server-side session for `user` and put its secret in the test client's cookie."""
    with runtime.db.session_scope() as s:
        _row, secret = credentials.start_session(s, s.get(User, user.id), clock=runtime.clock)
    with client.session_transaction() as browser:
        browser["sid"] = secret


def bearer(runtime: Any, user: User) -> dict[str, str]:
    """Return an Authorization header with a fresh API token of `user`."""
    with runtime.db.session_scope() as s:
        _token, plaintext = accounts.create_api_token(s, None, user.id, label="tests", clock=runtime.clock)
    return {"Authorization": f"Bearer {plaintext}"}


def csrf_token(client: Any, page: str = "/definitions") -> str:
    """Return the CSRF token a page renders for this client's session."""
    html = client.get(page).get_data(as_text=True)
    match = _META.search(html)
    assert match, f"no CSRF token on {page}"
    return match.group(1)
