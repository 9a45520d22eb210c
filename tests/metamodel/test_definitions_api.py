"""The definitions JSON API over HTTP: authentication, roles, the draft/publish lifecycle, 409 on a stale
save, 422 with bilingual errors, diff and validate."""

from __future__ import annotations

import json

import pytest

from tests.metamodel.pack_samples import calendar_doc
from tests.metamodel.web_auth import bearer, committed_user, csrf_token, sign_in

BASE = "/api/v1/definitions"


@pytest.fixture
def ops(session, make_user):  # type: ignore[no-untyped-def]
    return committed_user(session, make_user, "ops")


@pytest.fixture
def api(client, runtime, ops):  # type: ignore[no-untyped-def]
    headers = bearer(runtime, ops)

    def call(method: str, url: str, body=None):  # type: ignore[no-untyped-def]
        return client.open(BASE + url, method=method, json=body, headers=headers)

    return call


def test_no_credentials_is_401(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get(BASE)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert client.post(BASE, json=calendar_doc()).status_code in (400, 401)
    bad = client.get(BASE, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize("role", ["rep", "lead"])
def test_reps_and_leads_are_refused(client, runtime, session, make_user, role) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(runtime, committed_user(session, make_user, role))
    assert client.get(BASE, headers=headers).status_code == 403
    assert client.post(BASE, json=calendar_doc(), headers=headers).status_code == 403
    assert client.get(f"{BASE}/calendar/office-hours", headers=headers).status_code == 403


def test_lifecycle_over_http(api) -> None:  # type: ignore[no-untyped-def]
    created = api("POST", "", calendar_doc())
    assert created.status_code == 201, created.json
    version = created.json["version"]
    assert (version["number"], version["status"], version["lock_version"], version["valid"]) == (
        1,
        "draft",
        1,
        True,
    )
    assert created.json["definition"]["draft_number"] == 1

    listing = api("GET", "?kind=calendar").json["definitions"]
    assert [(d["kind"], d["key"], d["draft_number"]) for d in listing] == [("calendar", "office-hours", 1)]
    assert api("GET", "?kind=form").json["definitions"] == []

    saved = api(
        "PUT", "/calendar/office-hours/draft", {"document": calendar_doc(timezone="UTC"), "lock_version": 1}
    )
    assert saved.status_code == 200 and saved.json["version"]["lock_version"] == 2

    stale = api("PUT", "/calendar/office-hours/draft", {"document": calendar_doc(), "lock_version": 1})
    assert stale.status_code == 409
    assert stale.json["error"]["code"] == "stale_draft" and stale.json["error"]["lock_version"] == 2

    published = api("POST", "/calendar/office-hours/versions/1/publish")
    assert published.status_code == 200 and published.json["version"]["status"] == "published"
    again = api("POST", "/calendar/office-hours/versions/1/publish")
    assert again.status_code == 409

    assert api("POST", "", calendar_doc(timezone="Asia/Tokyo")).status_code == 201
    assert api("POST", "", calendar_doc()).json["error"]["code"] == "draft_exists"
    assert api("POST", "/calendar/office-hours/versions/2/publish").status_code == 200

    detail = api("GET", "/calendar/office-hours").json
    assert detail["published"]["number"] == 2 and detail["published"]["document"]["timezone"] == "Asia/Tokyo"
    assert [(v["number"], v["status"]) for v in detail["versions"]] == [(1, "archived"), (2, "published")]
    first = api("GET", "/calendar/office-hours/versions/1").json["version"]
    assert first["document"]["timezone"] == "UTC" and first["archived_at"] is not None

    diff = api("GET", "/calendar/office-hours/diff?from=1&to=2")
    assert diff.status_code == 200
    assert diff.json["changes"] == [{"op": "replace", "path": "/timezone", "old": "UTC", "new": "Asia/Tokyo"}]
    assert diff.json["summary"] == {"add": 0, "remove": 0, "replace": 1}

    # No open draft any more: the published version cannot be edited through the draft endpoint.
    missing = api("PUT", "/calendar/office-hours/draft", {"document": calendar_doc(), "lock_version": 1})
    assert missing.status_code == 404

    archived = api("POST", "/calendar/office-hours/versions/2/archive")
    assert archived.status_code == 200 and archived.json["definition"]["published_number"] is None


def test_invalid_documents_answer_422_with_bilingual_errors(api) -> None:  # type: ignore[no-untyped-def]
    doc = calendar_doc(timezone="not a zone!", colour="blue")
    draft = api("POST", "", doc)
    assert draft.status_code == 201 and draft.json["version"]["valid"] is False
    published = api("POST", "/calendar/office-hours/versions/1/publish")
    assert published.status_code == 422
    errors = published.json["error"]["errors"]
    assert {e["path"] for e in errors} == {"/timezone", "/colour"}
    assert all(set(e) == {"path", "message", "message_zh"} and e["message_zh"] for e in errors)

    envelope = api("POST", "", {"kind": "spaceship", "key": "x1", "schema_version": 1})
    assert envelope.status_code == 422 and envelope.json["error"]["errors"][0]["path"] == "/kind"
    assert api("POST", "", [1, 2]).status_code == 400  # not an object: refused by the body parser


def test_validate_endpoint(api) -> None:  # type: ignore[no-untyped-def]
    assert api("POST", "/validate", calendar_doc()).json == {"valid": True, "errors": []}
    result = api("POST", "/validate", calendar_doc(working_hours={"mon": [{"start": "9am", "end": "18:00"}]}))
    assert result.status_code == 200 and result.json["valid"] is False
    assert [e["path"] for e in result.json["errors"]] == ["/working_hours/mon/0/start"]


def test_bad_requests(api, client, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    assert api("GET", "/calendar/nothing").status_code == 404
    assert api("GET", "?kind=spaceship").status_code == 404
    api("POST", "", calendar_doc())
    assert api("GET", "/calendar/office-hours/versions/7").status_code == 404
    assert api("GET", "/calendar/office-hours/diff?from=1&to=x").status_code == 400
    no_lock = api("PUT", "/calendar/office-hours/draft", {"document": calendar_doc()})
    assert no_lock.status_code == 400 and no_lock.json["error"]["errors"][0]["path"] == "/lock_version"
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    too_deep = client.post(
        BASE + "/validate",
        data=json.dumps(deep),
        headers={**bearer(runtime, ops), "Content-Type": "application/json"},
    )
    assert too_deep.status_code == 400 and too_deep.json["error"]["code"] == "too_deep"


def test_session_cookie_works_with_csrf(client, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, runtime, ops)
    assert client.get(BASE).status_code == 200
    assert client.post(BASE, json=calendar_doc()).status_code == 400  # cookie + no CSRF token
    token = csrf_token(client)
    created = client.post(BASE, json=calendar_doc(), headers={"X-CSRFToken": token})
    assert created.status_code == 201


def test_admin_may_use_the_api(client, runtime, session, make_user) -> None:  # type: ignore[no-untyped-def]
    headers = bearer(runtime, committed_user(session, make_user, "admin"))
    assert client.post(BASE, json=calendar_doc(), headers=headers).status_code == 201
