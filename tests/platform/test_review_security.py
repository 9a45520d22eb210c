"""Review findings in accounts and access, each pinned by a test that failed before its fix."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from salesmesh.platform import credentials
from salesmesh.platform.models import User
from salesmesh.platform.passwords import hash_password
from salesmesh.platform.rep_attributes import AttributeSchema, parse_attribute_inputs, validate_attributes
from tests.platform.auth_helpers import login


def test_parallel_guesses_on_postgresql_cannot_pass_the_login_limit(pg_runtime: Any, clock: Any) -> None:
    """Ten simultaneous wrong passwords for one e-mail: only the allowed three are even checked."""
    with pg_runtime.db.session_scope() as s:
        s.add(
            User(
                email="victim@example.test",
                name="Victim",
                role="rep",
                password_hash=hash_password("the right password"),
                active=True,
                attributes={},
                created_at=clock.now(),
                session_epoch=0,
            )
        )
    outcomes: list[str] = []
    start = threading.Barrier(10)

    def guess(n: int) -> None:
        session = pg_runtime.db.Session()
        start.wait()
        try:
            credentials.authenticate(
                session,
                "victim@example.test",
                f"guess number {n}",
                ip=f"198.51.100.{n}",  # from many addresses: only the per-e-mail limit applies
                clock=clock,
                max_failures=3,
                window_minutes=15,
            )
        except credentials.LoginLocked:
            outcomes.append("locked")
            session.rollback()
        except credentials.LoginFailed:
            outcomes.append("failed")
            session.commit()  # as the login view does: the failure counts
        finally:
            session.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["failed"] * 3 + ["locked"] * 7


def test_signed_in_pages_are_not_stored_by_the_browser(client: Any, make_user: Any, session: Any) -> None:
    make_user(email="admin@example.test", role="admin")
    session.commit()
    assert login(client, "admin@example.test").status_code == 302
    for url in ("/", "/people", "/definitions", "/api/v1/leads"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers.get("Cache-Control") == "no-store", url
    # Stylesheets carry no identity: they stay cacheable.
    stylesheet = client.get("/static/app.css")
    stylesheet.close()  # a file response: close it, or its file handle leaks
    assert "no-store" not in stylesheet.headers.get("Cache-Control", "")


def test_rep_attributes_refuse_nan_and_infinity() -> None:
    """ "1e999" typed into a number field parses as infinity, which no JSON column (or client) accepts."""
    schema = AttributeSchema(version_id=1, attributes=({"key": "quota", "type": "number", "min": 0},))
    values, errors = parse_attribute_inputs(schema, {"quota": "1e999"})
    assert errors == []
    _clean, errors = validate_attributes(schema, values)
    assert [e["path"] for e in errors] == ["/attributes/quota"]
    # Without a published definition (plain values, e.g. `user create --attributes '{"x": NaN}'`).
    for bad in ({"score": float("nan")}, {"scores": [1.5, float("-inf")]}):
        clean, errors = validate_attributes(None, bad)
        assert clean == {} and len(errors) == 1, bad


def test_the_start_page_lists_pack_installs_to_admins_only(
    app: Any, runtime: Any, make_user: Any, session: Any, tmp_path: Any
) -> None:
    """The policy gives pack installs to admins only; the start page used to show them to ops too."""
    from salesmesh.metamodel import packs
    from tests.metamodel.pack_samples import simple_pack

    with runtime.db.session_scope() as s:
        packs.apply_import(s, None, packs.load_pack(simple_pack(tmp_path / "p")), runtime.clock)
    make_user(email="admin@example.test", role="admin")
    make_user(email="ops@example.test", role="ops")
    session.commit()
    seen = {}
    for email in ("admin@example.test", "ops@example.test"):
        browser = app.test_client()
        login(browser, email)
        seen[email] = "Installed template packs" in browser.get("/").get_data(as_text=True)
    assert seen == {"admin@example.test": True, "ops@example.test": False}


@pytest.mark.parametrize("credential", ["cookie", "token"])
def test_a_write_committed_during_the_identity_lookup_is_not_a_500(
    app: Any, runtime: Any, make_user: Any, session: Any, clock: Any, credential: str
) -> None:
    """SQLite: a GET reads in a deferred transaction; when it then moves last_seen_at / last_used_at after
    another writer (the sweeper, another request) committed, SQLite refuses ("database is locked")."""
    from sqlalchemy import event

    from salesmesh.platform.audit import record_event
    from tests.metamodel.web_auth import bearer, sign_in

    user = make_user(email="rep@example.test", role="rep")
    session.commit()
    browser = app.test_client()
    headers = bearer(runtime, user) if credential == "token" else {}
    if credential == "cookie":
        sign_in(browser, runtime, user)
    clock.advance(hours=1)  # the next request moves last_seen_at / last_used_at
    table = "user_sessions" if credential == "cookie" else "api_tokens"
    interleaved: list[str] = []

    def another_writer_commits_first(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith(f"UPDATE {table}") and not interleaved:
            interleaved.append(statement)
            with runtime.db.session_scope() as other:
                record_event(other, at=clock.now(), actor_id=None, action="test.interleaved", payload={})

    event.listen(runtime.db.engine, "before_cursor_execute", another_writer_commits_first)
    try:
        response = browser.get("/api/v1/leads", headers=headers)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", another_writer_commits_first)
    assert interleaved, "the request did not touch its credential"
    assert response.status_code == 200
