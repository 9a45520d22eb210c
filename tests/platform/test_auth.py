"""Sign-in, server-side sessions, CSRF, API tokens, login throttling and the language switch, over HTTP.

CSRF protection stays on: every form POST carries the token its page rendered.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import jsonify
from sqlalchemy import func, select

from salesmesh.platform import accounts
from salesmesh.platform.auth import login_required
from salesmesh.platform.models import LoginAttempt, User, UserSession
from tests.conftest import TEST_PASSWORD
from tests.platform.auth_helpers import csrf_token, is_signed_in, login, post_form

COOKIE = "salesmesh"


@pytest.fixture
def settings(settings: Any) -> Any:
    """Fewer allowed failures keep the throttling tests quick (each attempt costs one argon2 hash)."""
    return settings.with_(login_max_failures=3)


@pytest.fixture
def rep(make_user: Any, session: Any) -> User:
    user = make_user(email="rita@example.test", name="Rita Rep", role="rep")
    session.commit()
    return user


@pytest.fixture
def echo_app(app: Any) -> Any:
    """The app plus a tiny unsafe API route, to see which requests the CSRF check lets through."""

    @login_required
    def echo() -> Any:
        from flask import g

        return jsonify({"user": g.user.email, "auth": g.auth_method})

    app.add_url_rule("/api/v1/_echo", "echo", echo, methods=["POST"])
    return app


def _copy_cookie(source: Any, target: Any) -> None:
    cookie = source.get_cookie(COOKIE)
    assert cookie is not None
    target.set_cookie(COOKIE, cookie.value)


# --- sign-in ------------------------------------------------------------------------------------------


def test_login_success_starts_a_server_side_session(client: Any, rep: User, session: Any) -> None:
    response = login(client, "Rita@Example.test ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert is_signed_in(client)
    rows = session.scalars(select(UserSession).where(UserSession.user_id == rep.id)).all()
    assert len(rows) == 1 and rows[0].revoked_at is None
    # The cookie carries an opaque secret; the database keeps only its sha256.
    assert len(rows[0].token_hash) == 64


def test_login_failure_shows_the_error_next_to_the_field(client: Any, rep: User) -> None:
    response = login(client, rep.email, "not the password")
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Wrong e-mail or password." in html
    assert 'id="password-error"' in html
    assert f'value="{rep.email}"' in html
    assert not is_signed_in(client)


def test_login_with_missing_fields_is_400(client: Any, rep: User) -> None:
    response = login(client, "", "")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "E-mail is required." in html and "Password is required." in html


def test_unknown_and_deactivated_users_get_the_same_answer(client: Any, make_user: Any, session: Any) -> None:
    make_user(email="gone@example.test", active=False)
    session.commit()
    for email in ("nobody@example.test", "gone@example.test"):
        response = login(client, email, TEST_PASSWORD)
        assert response.status_code == 401
        assert "Wrong e-mail or password." in response.get_data(as_text=True)


def test_login_form_is_accessible_and_testable(client: Any) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert 'name="email"' in html and 'name="password"' in html
    assert 'data-testid="login-submit"' in html
    assert '<label for="email">' in html and '<label for="password">' in html


def test_login_redirects_only_to_local_paths(client: Any, rep: User) -> None:
    response = login(client, rep.email, next="//evil.example/steal")
    assert response.headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": csrf_token(client, f"/people/{rep.id}")})
    response = login(client, rep.email, next="/people")
    assert response.headers["Location"] == "/people"


def test_password_is_stored_as_argon2id(session: Any, clock: Any) -> None:
    user = accounts.create_user(
        session,
        None,
        email="new@example.test",
        name="New",
        role="rep",
        password="a long enough secret",
        clock=clock,
    )
    assert user.password_hash.startswith("$argon2id$")
    assert "a long enough secret" not in user.password_hash


def test_pages_need_a_login_and_api_answers_401(client: Any) -> None:
    response = client.get("/people")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/people")
    api = client.get("/api/v1/leads")
    assert api.status_code == 401
    assert api.get_json()["error"]["code"] == "unauthorized"


# --- sessions die on the server -----------------------------------------------------------------------


def test_logout_kills_the_session_and_a_copied_cookie(app: Any, client: Any, rep: User, session: Any) -> None:
    login(client, rep.email)
    thief = app.test_client()
    _copy_cookie(client, thief)
    assert is_signed_in(thief)  # the copy works while the session lives

    response = post_form(client, "/logout", page=f"/people/{rep.id}")
    assert response.status_code == 302
    assert not is_signed_in(client)
    assert not is_signed_in(thief)  # clearing the browser cookie is not enough: the row is revoked
    row = session.scalars(select(UserSession).where(UserSession.user_id == rep.id)).one()
    assert row.revoked_at is not None


def test_deactivation_kills_every_session(app: Any, client: Any, rep: User, session: Any, clock: Any) -> None:
    login(client, rep.email)
    other = app.test_client()
    login(other, rep.email)
    assert is_signed_in(client) and is_signed_in(other)
    accounts.deactivate_user(session, None, rep.id, clock=clock)
    session.commit()
    assert not is_signed_in(client)
    assert not is_signed_in(other)
    assert login(app.test_client(), rep.email).status_code == 401


def test_password_change_kills_other_sessions(
    app: Any, client: Any, rep: User, session: Any, clock: Any
) -> None:
    login(client, rep.email)
    laptop = app.test_client()
    login(laptop, rep.email)
    response = post_form(
        client,
        f"/people/{rep.id}/password",
        {"current_password": TEST_PASSWORD, "new_password": "a brand new passphrase"},
        page=f"/people/{rep.id}",
    )
    assert response.status_code == 302
    assert is_signed_in(client)  # the browser that changed it got a fresh session
    assert not is_signed_in(laptop)
    assert login(app.test_client(), rep.email, "a brand new passphrase").status_code == 302

    # An admin (or the CLI) resetting it ends the remaining session as well.
    accounts.change_password(session, None, rep.id, "yet another passphrase", clock=clock)
    session.commit()
    assert not is_signed_in(client)


def test_password_change_needs_the_current_password(client: Any, rep: User) -> None:
    login(client, rep.email)
    response = post_form(
        client,
        f"/people/{rep.id}/password",
        {"current_password": "wrong", "new_password": "a brand new passphrase"},
        page=f"/people/{rep.id}",
    )
    assert response.status_code == 400
    assert "The current password is not right." in response.get_data(as_text=True)
    assert is_signed_in(client)


def test_idle_sessions_expire_and_activity_is_written_at_most_once_a_minute(
    client: Any, rep: User, session: Any, clock: Any, runtime: Any
) -> None:
    login(client, rep.email)
    row = session.scalars(select(UserSession).where(UserSession.user_id == rep.id)).one()
    started = row.last_seen_at
    clock.advance(seconds=30)
    assert is_signed_in(client)
    session.rollback()
    session.expire_all()
    assert session.get(UserSession, row.id).last_seen_at == started  # no write within the minute
    clock.advance(minutes=2)
    assert is_signed_in(client)
    session.rollback()
    session.expire_all()
    assert session.get(UserSession, row.id).last_seen_at == clock.now()
    clock.advance(minutes=runtime.settings.session_idle_minutes + 1)
    assert not is_signed_in(client)
    session.rollback()
    session.expire_all()
    assert session.get(UserSession, row.id).revoked_at is not None


def test_login_replaces_the_anonymous_cookie(client: Any, rep: User) -> None:
    csrf_token(client, "/login")
    before = client.get_cookie(COOKIE).value
    login(client, rep.email)
    assert client.get_cookie(COOKIE).value != before


# --- CSRF ---------------------------------------------------------------------------------------------


def test_form_posts_without_a_csrf_token_are_refused(client: Any, rep: User) -> None:
    assert client.post("/login", data={"email": rep.email, "password": TEST_PASSWORD}).status_code == 400
    login(client, rep.email)
    response = client.post("/logout")
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    assert is_signed_in(client)
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert post_form(client, "/logout", page=f"/people/{rep.id}").status_code == 302
    assert not is_signed_in(client)


def test_cookie_api_calls_need_csrf_but_bearer_calls_do_not(
    echo_app: Any, rep: User, session: Any, clock: Any
) -> None:
    browser = echo_app.test_client()
    login(browser, rep.email)
    assert browser.post("/api/v1/_echo").status_code == 400
    token = csrf_token(browser, f"/people/{rep.id}")
    ok = browser.post("/api/v1/_echo", headers={"X-CSRFToken": token})
    assert ok.status_code == 200 and ok.get_json()["auth"] == "session"

    _row, secret = accounts.create_api_token(session, None, rep.id, label="script", clock=clock)
    session.commit()
    script = echo_app.test_client()
    response = script.post("/api/v1/_echo", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.get_json() == {"user": rep.email, "auth": "token"}


# --- API tokens ---------------------------------------------------------------------------------------


def test_bearer_token_reads_the_api_until_revoked(client: Any, rep: User, session: Any, clock: Any) -> None:
    token, secret = accounts.create_api_token(session, None, rep.id, label="phone sync", clock=clock)
    session.commit()
    assert token.token_hash != secret and secret not in token.token_hash
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/leads", headers=headers).status_code == 200
    session.rollback()
    session.expire_all()
    assert session.get(type(token), token.id).last_used_at == clock.now()

    accounts.revoke_api_token(session, None, token.id, clock=clock)
    session.commit()
    response = client.get("/api/v1/leads", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer smt_not-a-token", "Basic dXNlcjpwYXNz", "Bearer "])
def test_a_bad_authorization_header_is_401_not_anonymous(client: Any, header: str) -> None:
    response = client.get("/api/v1/leads", headers={"Authorization": header})
    assert response.status_code == 401


def test_tokens_of_deactivated_users_stop_working(client: Any, rep: User, session: Any, clock: Any) -> None:
    _token, secret = accounts.create_api_token(session, None, rep.id, label="x", clock=clock)
    accounts.deactivate_user(session, None, rep.id, clock=clock)
    session.commit()
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_token_created_in_the_ui_is_shown_once(client: Any, rep: User, session: Any) -> None:
    login(client, rep.email)
    response = post_form(client, f"/people/{rep.id}/tokens", {"label": "my script"}, page=f"/people/{rep.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    secret = html.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
    assert secret.startswith("smt_")
    assert secret not in client.get(f"/people/{rep.id}").get_data(as_text=True)
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


# --- login throttling ---------------------------------------------------------------------------------


def test_too_many_failures_lock_the_email_until_the_window_passes(
    app: Any, client: Any, rep: User, runtime: Any, clock: Any
) -> None:
    limit = runtime.settings.login_max_failures
    for _ in range(limit):
        assert login(client, rep.email, "wrong password!").status_code == 401
    locked = login(client, rep.email, TEST_PASSWORD)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    assert not is_signed_in(client)

    clock.advance(minutes=runtime.settings.login_window_minutes + 1)
    assert login(client, rep.email, TEST_PASSWORD).status_code == 302
    assert is_signed_in(client)


def test_success_resets_the_failure_count(client: Any, rep: User, runtime: Any, session: Any) -> None:
    limit = runtime.settings.login_max_failures
    for _ in range(limit - 1):
        login(client, rep.email, "wrong password!")
    assert login(client, rep.email).status_code == 302
    assert session.scalar(select(func.count(LoginAttempt.id)).where(LoginAttempt.email == rep.email)) == 0


def test_one_address_guessing_many_accounts_is_locked(
    session: Any, clock: Any, rep: User, runtime: Any
) -> None:
    from salesmesh.platform.credentials import IP_FAILURE_FACTOR, LoginFailed, LoginLocked, authenticate

    limit = 2
    kwargs = {"ip": "203.0.113.9", "clock": clock, "max_failures": limit, "window_minutes": 15}
    for n in range(limit * IP_FAILURE_FACTOR):
        with pytest.raises(LoginFailed):
            authenticate(session, f"guess{n}@example.test", "whatever", **kwargs)
    with pytest.raises(LoginLocked):
        authenticate(session, rep.email, TEST_PASSWORD, **kwargs)
    # Another address is not affected.
    assert authenticate(session, rep.email, TEST_PASSWORD, **{**kwargs, "ip": "198.51.100.1"}).id == rep.id


# --- language -----------------------------------------------------------------------------------------


def test_language_switch_changes_the_page_language(client: Any) -> None:
    assert "Sign in to salesmesh" in client.get("/login").get_data(as_text=True)
    response = client.post(
        "/language", data={"lang": "zh", "next": "/login", "csrf_token": csrf_token(client, "/login")}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    html = client.get("/login").get_data(as_text=True)
    assert "登录 salesmesh" in html
    assert '<html lang="zh-CN">' in html


def test_language_switch_is_remembered_for_the_user(client: Any, rep: User, session: Any) -> None:
    login(client, rep.email)
    response = post_form(
        client, "/language", {"lang": "zh", "next": f"/people/{rep.id}"}, page=f"/people/{rep.id}"
    )
    assert response.status_code == 302
    session.rollback()
    session.expire_all()
    assert session.get(User, rep.id).locale == "zh"
    assert "销售人员属性" in client.get(f"/people/{rep.id}").get_data(as_text=True)
    assert post_form(client, "/language", {"lang": "fr"}, page=f"/people/{rep.id}").status_code == 400


def test_browser_language_is_used_before_a_choice(client: Any) -> None:
    html = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "登录 salesmesh" in html


# --- view guards --------------------------------------------------------------------------------------


def test_roles_required_guards_html_and_api(app: Any, rep: User) -> None:
    from salesmesh.platform.auth import roles_required

    @roles_required("admin", "ops")
    def staff_page() -> str:
        return "staff only"

    app.add_url_rule("/staff", "staff_page", staff_page)
    app.add_url_rule("/api/v1/_staff", "staff_api", staff_page)
    client = app.test_client()
    assert client.get("/staff").headers["Location"].startswith("/login?next=/staff")
    assert client.get("/api/v1/_staff").status_code == 401
    login(client, rep.email)
    assert client.get("/staff").status_code == 403
    denied = client.get("/api/v1/_staff")
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden"


@pytest.mark.services
def test_sessions_and_tokens_on_postgresql(pg_runtime: Any, clock: Any) -> None:
    from salesmesh.platform.app import create_app

    with pg_runtime.db.session_scope() as s:
        user = accounts.create_user(
            s, None, email="pg@example.test", name="PG", role="rep", password=TEST_PASSWORD, clock=clock
        )
        _token, secret = accounts.create_api_token(s, None, user.id, label="pg", clock=clock)
    app = create_app(pg_runtime.settings, runtime=pg_runtime)
    client = app.test_client()
    assert login(client, "pg@example.test", "wrong password").status_code == 401
    assert login(client, "pg@example.test").status_code == 302
    assert is_signed_in(client)
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    clock.advance(minutes=5)
    assert is_signed_in(client)  # touches last_seen_at in its own commit
    assert post_form(client, "/logout", page="/people").status_code == 302
    assert not is_signed_in(client)
