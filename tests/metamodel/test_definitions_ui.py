"""The definitions and template-pack pages: access by role, version details, draft editing with
optimistic locking, and the upload → dry run → apply → export flow, in English and Chinese."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from salesmesh.metamodel import packs, versions
from salesmesh.metamodel.models import Definition, PackInstall
from salesmesh.metamodel.packs_io import zip_bytes
from tests.metamodel.pack_samples import calendar_doc, simple_pack
from tests.metamodel.web_auth import committed_user, csrf_token, sign_in


@pytest.fixture
def ops_client(client, runtime, session, make_user):  # type: ignore[no-untyped-def]
    sign_in(client, runtime, committed_user(session, make_user, "ops"))
    return client


@pytest.fixture
def admin_client(client, runtime, session, make_user):  # type: ignore[no-untyped-def]
    sign_in(client, runtime, committed_user(session, make_user, "admin"))
    return client


def pack_upload(tmp_path: Path, **manifest_overrides) -> bytes:  # type: ignore[no-untyped-def]
    root = simple_pack(tmp_path / "pack", **manifest_overrides)
    return zip_bytes({p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")})


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def count(runtime, model) -> int:  # type: ignore[no-untyped-def]
    with runtime.db.Session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_access_by_role(client, runtime, session, make_user) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/definitions").status_code == 302  # to the login page
    sign_in(client, runtime, committed_user(session, make_user, "rep"))
    assert client.get("/definitions").status_code == 403
    assert client.get("/packs").status_code == 403


def test_ops_sees_definitions_but_not_packs(ops_client, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    page = ops_client.get("/definitions")
    assert page.status_code == 200 and "No definitions yet." in page.get_data(as_text=True)
    with runtime.db.session_scope() as s:
        v = versions.create_definition_draft(s, None, calendar_doc(), clock)
        versions.publish_version(s, None, v.id, clock)
    html = ops_client.get("/definitions?kind=calendar").get_data(as_text=True)
    assert "Office hours" in html and "office-hours" in html and 'data-status="published"' in html
    assert ops_client.get("/packs").status_code == 403


def test_detail_edit_publish(ops_client, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.session_scope() as s:
        doc = calendar_doc()
        del doc["timezone"]
        versions.create_definition_draft(s, None, doc, clock)
    page = ops_client.get("/definitions/calendar/office-hours")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="validation-errors"' in html and "/timezone" in html
    token = csrf_token(ops_client, "/definitions/calendar/office-hours")

    refused = ops_client.post(
        "/definitions/calendar/office-hours/versions/1/publish", data={"csrf_token": token}
    )
    assert refused.status_code == 422
    assert "The document is not valid" in refused.get_data(as_text=True)

    saved = ops_client.post(
        "/definitions/calendar/office-hours/draft",
        data={
            "csrf_token": token,
            "lock_version": hidden(html, "lock_version"),
            "document": json.dumps(calendar_doc()),
        },
    )
    assert saved.status_code == 302
    stale = ops_client.post(
        "/definitions/calendar/office-hours/draft",
        data={"csrf_token": token, "lock_version": "1", "document": json.dumps(calendar_doc(timezone="UTC"))},
    )
    assert stale.status_code == 409
    assert "Someone else saved this draft" in stale.get_data(as_text=True)
    broken = ops_client.post(
        "/definitions/calendar/office-hours/draft",
        data={"csrf_token": token, "lock_version": "2", "document": "{not json"},
    )
    assert broken.status_code == 422 and "{not json" in broken.get_data(as_text=True)

    published = ops_client.post(
        "/definitions/calendar/office-hours/versions/1/publish", data={"csrf_token": token}
    )
    assert published.status_code == 302
    html = ops_client.get("/definitions/calendar/office-hours").get_data(as_text=True)
    assert 'data-testid="valid"' in html and '<pre class="json"' in html and "Asia/Shanghai" in html
    new = ops_client.post(
        "/definitions/calendar/office-hours/drafts", data={"csrf_token": token, "from": "1"}
    )
    assert new.status_code == 302 and new.headers["Location"].endswith("v=2")
    with runtime.db.Session() as s:
        assert versions.get_published(s, "calendar", "office-hours").number == 1
        assert [v.status for v in versions.get_definition(s, None, "calendar", "office-hours").versions] == [
            "published",
            "draft",
        ]
    assert ops_client.get("/definitions/calendar/missing").status_code == 404
    no_csrf = ops_client.post("/definitions/calendar/office-hours/versions/2/publish")
    assert no_csrf.status_code == 400


def test_pack_upload_preview_apply_export(admin_client, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = admin_client.get("/packs")
    assert page.status_code == 200 and "No pack is installed yet." in page.get_data(as_text=True)
    token = csrf_token(admin_client, "/packs")
    upload = pack_upload(tmp_path)
    preview = admin_client.post(
        "/packs/preview",
        data={"csrf_token": token, "pack": (io.BytesIO(upload), "test-pack.zip")},
        content_type="multipart/form-data",
    )
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and html.count('data-action="create"') == 2
    assert count(runtime, Definition) == 0  # the preview writes nothing

    form = {"csrf_token": token, "payload": hidden(html, "payload"), "name": "test-pack.zip"}
    tampered = admin_client.post("/packs/apply", data={**form, "checksum": "0" * 64})
    assert tampered.status_code == 302 and count(runtime, Definition) == 0
    applied = admin_client.post("/packs/apply", data={**form, "checksum": hidden(html, "checksum")})
    assert applied.status_code == 302
    assert count(runtime, Definition) == 2 and count(runtime, PackInstall) == 1
    listing = admin_client.get("/packs").get_data(as_text=True)
    assert "Imported test-pack 1.0.0: 2 created" in listing and "/packs/test-pack/export.zip" in listing

    again = admin_client.post(
        "/packs/preview",
        data={"csrf_token": token, "pack": (io.BytesIO(upload), "test-pack.zip")},
        content_type="multipart/form-data",
    )
    assert 'data-testid="already-installed"' in again.get_data(as_text=True)

    download = admin_client.get("/packs/test-pack/export.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    exported = packs.load_pack_bytes(download.data)
    assert packs.validate_pack(exported) == []
    assert packs.pack_checksum(exported) == hidden(html, "checksum")
    everything = admin_client.get("/packs/export-all.zip")
    assert everything.status_code == 200 and len(packs.load_pack_bytes(everything.data).listed_files()) == 2
    assert admin_client.get("/packs/nope/export.zip").status_code == 404


def test_bad_uploads_are_refused_with_every_error(admin_client, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(admin_client, "/packs")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pack.json", "{}")
        archive.writestr("../escape.json", "{}")
    unsafe = admin_client.post(
        "/packs/preview",
        data={"csrf_token": token, "pack": (io.BytesIO(buffer.getvalue()), "evil.zip")},
        content_type="multipart/form-data",
    )
    html = unsafe.get_data(as_text=True)
    assert unsafe.status_code == 422 and 'data-testid="pack-refused"' in html and "../escape.json" in html

    invalid = admin_client.post(
        "/packs/preview",
        data={"csrf_token": token, "pack": (io.BytesIO(pack_upload(tmp_path, version="x")), "p.zip")},
        content_type="multipart/form-data",
    )
    assert invalid.status_code == 422 and "/version" in invalid.get_data(as_text=True)
    missing = admin_client.post(
        "/packs/preview", data={"csrf_token": token}, content_type="multipart/form-data"
    )
    assert missing.status_code == 400
    no_csrf = admin_client.post(
        "/packs/preview",
        data={"pack": (io.BytesIO(pack_upload(tmp_path / "b")), "p.zip")},
        content_type="multipart/form-data",
    )
    assert no_csrf.status_code == 400
    assert count(runtime, Definition) == 0


def test_pages_in_chinese(admin_client, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.session_scope() as s:
        versions.create_definition_draft(s, None, calendar_doc(), clock)
    admin_client.set_cookie("lang", "zh")
    listing = admin_client.get("/definitions").get_data(as_text=True)
    assert "工作日历" in listing and "办公时间" in listing and "草稿" in listing
    detail = admin_client.get("/definitions/calendar/office-hours").get_data(as_text=True)
    assert "编辑草稿" in detail and "保存草稿" in detail
    assert "导入模板包" in admin_client.get("/packs").get_data(as_text=True)
