"""The import pages: upload → mapping preview → dry-run report → import (the job runs in-process), the
progress JSON, the error report CSV, both languages, refused files, and ops/admin only (403 on the
upload page, 404 on a run for everyone else)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from sqlalchemy import event, func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ImportRun
from salesmesh.workflows.models import Lead
from tests.platform.auth_helpers import csrf_token
from tests.workflows.import_helpers import HEADER, csv_bytes, good_rows, xlsx_bytes
from tests.workflows.intake_helpers import intake_world
from tests.workflows.page_helpers import _password_hash, make_app, sign_in

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
BAD_ROW = ["", "Hospital X", "primary", "12345", ""]  # name missing, phone invalid


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return make_app(runtime)


@pytest.fixture
def staff(session: Any, clock: Any) -> dict[str, User]:
    intake_world(session, clock)
    people = {}
    for role in ("ops", "admin", "lead", "rep"):
        people[role] = User(
            email=f"{role}@example.test",
            name=f"The {role}",
            role=role,
            password_hash=_password_hash(),
            active=True,
            attributes={},
            created_at=clock.now(),
        )
        session.add(people[role])
    session.commit()
    return people


def _as(client: Any, session: Any, user: User, clock: Any) -> Any:
    sign_in(client, session, user, clock)
    return client


def _upload(
    client: Any, data: bytes, filename: str, headers: dict[str, str] | None = None, **form: str
) -> Any:
    token = csrf_token(client, "/leads/import")
    files = MultiDict({"csrf_token": token, **form})
    files.add("file", FileStorage(io.BytesIO(data), filename=filename))
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart(files)
    return client.post(
        "/leads/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers or {},
    )


def _run_id(response: Any) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    match = re.search(r"/leads/imports/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _selected(html: str, index: int) -> str | None:
    select_html = re.search(rf'<select id="map-{index}".*?</select>', html, re.S)
    assert select_html
    chosen = re.search(r'<option value="([^"]*)" selected', select_html.group(0))
    return chosen.group(1) if chosen else None


def _count(session: Any, model: Any) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_upload_map_dry_run_then_import(
    client: Any, session: Any, clock: Any, runtime: Runtime, staff: Any
) -> None:
    _as(client, session, staff["ops"], clock)
    page = client.get("/leads/import")
    assert page.status_code == 200 and 'data-testid="import-upload"' in page.get_data(as_text=True)
    assert 'data-testid="nav-import-leads"' in page.get_data(as_text=True)

    run_id = _run_id(_upload(client, csv_bytes([HEADER, *good_rows(3), BAD_ROW]), "leads.csv"))
    mapping = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert [_selected(mapping, i) for i in range(5)] == [
        "contact_name",
        "institution_name",
        "institution_grade",
        "phone",
        "email",
    ]
    assert "4 data rows" in mapping and "Person 0" in mapping  # the sample rows

    token = csrf_token(client, f"/leads/imports/{run_id}")
    form = {
        f"map_{i}": key
        for i, key in enumerate(["contact_name", "institution_name", "institution_grade", "phone", "email"])
    }
    response = client.post(
        f"/leads/imports/{run_id}/start",
        data={"csrf_token": token, "mode": "row_by_row", "action": "dry_run", **form},
    )
    assert response.status_code == 303
    queued = client.get(f"/leads/imports/{run_id}/progress").json
    assert (queued["status"], queued["dry_run"], queued["finished"]) == ("queued", True, False)
    progress_page = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert "data-import-progress" in progress_page and "Dry run in progress" in progress_page

    runtime.jobs.drain()
    done = client.get(f"/leads/imports/{run_id}/progress").json
    assert (done["status"], done["created"], done["errors"], done["finished"]) == ("done", 3, 1, True)
    assert _count(session, Lead) == 0
    report = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert "Dry run report" in report and report.count('data-outcome="created"') == 3
    bad = re.search(r'<tr data-row="5" data-outcome="error">.*?</tr>', report, re.S)
    assert bad and "Column A (Name): This field is required" in bad.group(0)
    assert "Column D (Phone)" in bad.group(0)

    errors_csv = client.get(f"/leads/imports/{run_id}/errors.csv")
    text = errors_csv.get_data().decode("utf-8-sig")
    assert errors_csv.mimetype == "text/csv" and text.splitlines()[0] == "Row,Column,Header,Field,Reason,原因"
    assert "5,A,Name,contact_name,This field is required,此项为必填项" in text

    token = csrf_token(client, f"/leads/imports/{run_id}")
    real_id = _run_id(client.post(f"/leads/imports/{run_id}/import", data={"csrf_token": token}))
    assert real_id != run_id
    runtime.jobs.drain()  # the import's steps, and the delivery job its writing step enqueued
    assert _count(session, Lead) == 3
    assert session.scalars(select(Notification.outbox_state)).all() == ["done"] * 3  # fanned out
    real = client.get(f"/leads/imports/{real_id}").get_data(as_text=True)
    assert "Import report" in real and 'data-outcome="error"' in real and 'data-outcome="created"' not in real


def test_report_in_chinese(client: Any, session: Any, clock: Any, runtime: Runtime, staff: Any) -> None:
    staff["ops"].locale = "zh"
    session.commit()
    _as(client, session, staff["ops"], clock)
    data = xlsx_bytes(
        [
            ["姓名", "机构", "等级", "电话"],
            ["王伟", "协和医院", "三甲", 13812345678],
            ["", "医院", "一级", "1"],
        ]
    )
    run_id = _run_id(_upload(client, data, "线索.xlsx"))
    mapping = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert "对应列" in mapping and "— 不导入 —" in mapping and _selected(mapping, 3) == "phone"
    token = csrf_token(client, f"/leads/imports/{run_id}")
    form = {
        "map_0": "contact_name",
        "map_1": "institution_name",
        "map_2": "institution_grade",
        "map_3": "phone",
    }
    client.post(
        f"/leads/imports/{run_id}/start",
        data={"csrf_token": token, "mode": "all_or_nothing", "action": "import", **form},
    )
    runtime.jobs.drain()
    report = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert "导入报告" in report and "已拒绝：未导入任何数据" in report
    assert "第 A 列（姓名）：此项为必填项" in report
    assert "未导入任何数据：有 1 行存在错误" in report
    assert _count(session, Lead) == 0
    csv_zh = client.get(f"/leads/imports/{run_id}/errors.csv").get_data().decode("utf-8-sig")
    assert csv_zh.splitlines()[0] == "行,列,列标题,字段,原因,Reason"


def test_start_errors_are_shown_on_the_mapping_page(
    client: Any, session: Any, clock: Any, staff: Any
) -> None:
    _as(client, session, staff["ops"], clock)
    run_id = _run_id(_upload(client, csv_bytes([HEADER, *good_rows(1)]), "m.csv"))
    token = csrf_token(client, f"/leads/imports/{run_id}")
    response = client.post(
        f"/leads/imports/{run_id}/start",
        data={
            "csrf_token": token,
            "mode": "row_by_row",
            "action": "dry_run",
            "map_0": "phone",
            "map_3": "phone",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Columns Name and Phone both fill &#39;phone&#39;" in html
    assert 'data-testid="import-missing"' in html  # contact_name / institution_name unmapped
    session.rollback()
    assert session.get(ImportRun, run_id).status == "draft"


def test_refused_files_say_why(client: Any, session: Any, clock: Any, staff: Any) -> None:
    _as(client, session, staff["ops"], clock)
    response = _upload(client, b"\xd0\xcf\x11\xe0 old excel", "old.xls")
    assert response.status_code == 422 and "Save the .xls file as .xlsx or .csv" in response.get_data(
        as_text=True
    )
    response = _upload(client, b"Name,Phone\r\n", "empty.csv", headers=ZH)
    assert response.status_code == 422
    assert "文件只有标题行，没有数据行" in response.get_data(
        as_text=True
    ) or "只有标题行" in response.get_data(as_text=True)
    response = _upload(client, b"not a zip", "broken.xlsx")
    assert response.status_code == 422
    assert _count(session, ImportRun) == 0


def test_upload_larger_than_the_app_request_limit(
    client: Any, session: Any, clock: Any, runtime: Runtime, staff: Any
) -> None:
    assert runtime.settings.max_request_bytes == 2 * 1024 * 1024
    notes = "Met at the Shanghai expo; wants a demo. " * 10  # an unmapped column making the file big
    data = csv_bytes([[*HEADER, "Notes"], *([*row, notes] for row in good_rows(6000))])
    assert len(data) > runtime.settings.max_request_bytes
    _as(client, session, staff["ops"], clock)
    run_id = _run_id(_upload(client, data, "big.csv"))
    session.rollback()
    assert session.get(ImportRun, run_id).total_rows == 6000


def test_csrf_is_checked_on_upload(app: Any, session: Any, clock: Any, staff: Any) -> None:
    client = app.test_client()
    _as(client, session, staff["ops"], clock)
    response = client.post(
        "/leads/import",
        data={"file": (io.BytesIO(b"a,b\r\n1,2\r\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400


@pytest.mark.parametrize("role", ["rep", "lead"])
def test_only_ops_and_admins_import(
    client: Any, session: Any, clock: Any, runtime: Runtime, staff: Any, role: str
) -> None:
    _as(client, session, staff["admin"], clock)
    run_id = _run_id(_upload(client, csv_bytes([HEADER, *good_rows(1)]), "x.csv"))
    other = client.application.test_client()
    _as(other, session, staff[role], clock)
    assert other.get("/leads/import").status_code == 403
    home = other.get("/").get_data(as_text=True)
    assert 'data-testid="nav-import-leads"' not in home
    token = csrf_token(other, "/")
    upload = other.post(
        "/leads/import",
        data={"csrf_token": token, "file": (io.BytesIO(csv_bytes([HEADER, *good_rows(1)])), "x.csv")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 403
    for url in (
        f"/leads/imports/{run_id}",
        f"/leads/imports/{run_id}/progress",
        f"/leads/imports/{run_id}/errors.csv",
    ):
        assert other.get(url).status_code == 404, url
    for url in (
        f"/leads/imports/{run_id}/start",
        f"/leads/imports/{run_id}/import",
        f"/leads/imports/{run_id}/resume",
    ):
        assert (
            other.post(
                url, data={"csrf_token": token, "mode": "row_by_row", "map_0": "contact_name"}
            ).status_code
            == 404
        ), url
    session.rollback()
    assert session.get(ImportRun, run_id).status == "draft" and _count(session, ImportRun) == 1


def test_a_stalled_run_can_be_resumed_from_its_page(
    client: Any, session: Any, clock: Any, runtime: Runtime, staff: Any
) -> None:
    _as(client, session, staff["ops"], clock)
    run_id = _run_id(_upload(client, csv_bytes([HEADER, *good_rows(4)]), "stall.csv"))
    token = csrf_token(client, f"/leads/imports/{run_id}")
    form = {
        f"map_{i}": k
        for i, k in enumerate(["contact_name", "institution_name", "institution_grade", "phone"])
    }
    client.post(
        f"/leads/imports/{run_id}/start",
        data={"csrf_token": token, "mode": "row_by_row", "action": "import", **form},
    )
    inserts: list[str] = []

    def crash(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO leads "):
            inserts.append(statement)
            if len(inserts) == 2:
                raise RuntimeError("worker killed")

    event.listen(runtime.db.engine, "before_cursor_execute", crash)
    try:
        runtime.jobs.drain()  # staging commits; the first chunk dies half-way
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", crash)
    assert runtime.jobs.errors and "worker killed" in runtime.jobs.errors[-1][1]
    state = client.get(f"/leads/imports/{run_id}/progress").json
    assert (state["status"], state["processed"], state["stalled"]) == ("running", 0, False)
    assert 'data-testid="import-resume"' not in client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert _count(session, Lead) == 0

    clock.advance(minutes=6)
    page = client.get(f"/leads/imports/{run_id}").get_data(as_text=True)
    assert (
        'data-testid="import-resume"' in page
        and client.get(f"/leads/imports/{run_id}/progress").json["stalled"]
    )
    token = csrf_token(client, f"/leads/imports/{run_id}")
    assert client.post(f"/leads/imports/{run_id}/resume", data={"csrf_token": token}).status_code == 303
    runtime.jobs.drain()
    done = client.get(f"/leads/imports/{run_id}/progress").json
    assert (done["status"], done["created"], done["processed"]) == ("done", 4, 4)
    assert _count(session, Lead) == 4
