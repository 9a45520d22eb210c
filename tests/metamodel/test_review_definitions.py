"""Review findings in the definitions store, each pinned by a test that failed before its fix: hostile
request bodies and query strings answer 4xx (never a 500), re-importing an older pack version is
applied rather than reported as "already installed", and a pack upload whose preview succeeds can also
be applied (or is refused at the preview, not with a bare 413 afterwards)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from salesmesh.metamodel import packs, versions
from salesmesh.metamodel.packs_io import zip_bytes
from tests.metamodel.pack_samples import calendar_doc, objections_doc, simple_pack, write_pack
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


def test_reimporting_an_earlier_pack_version_applies_it(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    v1 = packs.load_pack(simple_pack(tmp_path / "v1"))
    packs.apply_import(session, None, v1, clock)
    v2 = write_pack(
        tmp_path / "v2",
        {
            "definitions/calendar.json": calendar_doc(timezone="UTC"),
            "definitions/objections.json": objections_doc(),
        },
        version="1.1.0",
    )
    clock.advance(hours=1)
    packs.apply_import(session, None, packs.load_pack(v2), clock)
    clock.advance(hours=1)
    # Going back to 1.0.0 (a rollback) is a real change: the plan says so and applying it does it.
    plan = packs.plan_import(session, v1)
    assert not plan.already_installed
    assert plan.counts == {"create": 0, "change": 1, "unchanged": 1, "conflict": 0}
    applied = packs.apply_import(session, None, v1, clock)
    assert applied.applied
    assert versions.get_published(session, "calendar", "office-hours").document["timezone"] == "Asia/Shanghai"
    assert packs.installed_versions(session) == {"test-pack": "1.0.0"}
    assert packs.build_export(session, None, key="test-pack", clock=clock).version == "1.0.0"
    # ...and the same pack once more is the no-op it always was.
    again = packs.apply_import(session, None, v1, clock)
    assert again.already_installed and not again.applied


def _upload_with_picture(tmp_path: Path, picture_bytes: int) -> bytes:
    """A valid pack zip that also carries an incompressible picture (packs may hold non-JSON files)."""
    root = simple_pack(tmp_path / f"pack-{picture_bytes}")
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")}
    files["images/screenshot.png"] = os.urandom(picture_bytes)
    return zip_bytes(files)


def _preview(client, token: str, upload: bytes):  # type: ignore[no-untyped-def]
    # Encoded in memory: the test client would spool a body this large to a temporary file it never
    # closes (a ResourceWarning, an error under filterwarnings=error).
    boundary, body = encode_multipart(
        {"csrf_token": token, "pack": FileStorage(io.BytesIO(upload), filename="big.zip")}
    )
    return client.post("/packs/preview", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_a_previewed_upload_can_be_applied_or_is_refused_at_preview(  # type: ignore[no-untyped-def]
    client, runtime, session, make_user, tmp_path: Path
) -> None:
    sign_in(client, runtime, committed_user(session, make_user, "admin"))
    token = csrf_token(client, "/packs")
    limit = runtime.settings.max_request_bytes
    # 80% of the request limit uploads fine but would not fit the apply form as base64: refused now.
    refused = _preview(client, token, _upload_with_picture(tmp_path, limit * 8 // 10))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 413 and 'data-testid="pack-refused"' in html
    assert "salesmesh pack import" in html and 'name="payload"' not in html
    # 60% fits: the preview offers apply, and apply goes through.
    preview = _preview(client, token, _upload_with_picture(tmp_path, limit * 6 // 10))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200

    def hidden(name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert match, name
        return match.group(1)

    form = {
        "csrf_token": token,
        "payload": hidden("payload"),
        "name": "big.zip",
        "checksum": hidden("checksum"),
    }
    applied = client.post("/packs/apply", data=form)
    assert applied.status_code == 302
    with runtime.db.Session() as s:
        assert packs.installed_versions(s) == {"test-pack": "1.0.0"}
