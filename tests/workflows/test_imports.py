"""Lead imports through intake: CSV and XLSX happy paths, header matching (English, Chinese, letters),
per-row errors with the spreadsheet's row and column, duplicates linked (not errors), all-or-nothing vs
row-by-row, dry runs that leave every table (and the round-robin cursor) as it was, re-import warnings,
and a crashed chunk that resumes without importing a row twice."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ImportRow, ImportRun
from salesmesh.workflows.imports import ImportSetupInvalid
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.intake_models import LeadDuplicate
from salesmesh.workflows.models import Lead
from tests.workflows.import_helpers import (
    HEADER,
    csv_bytes,
    finish,
    good_rows,
    rows_of,
    run_file,
    start,
    step,
    table_counts,
    upload,
    xlsx_bytes,
)
from tests.workflows.intake_helpers import intake_world, payload
from tests.workflows.routing_helpers import counting


@pytest.fixture
def reps(runtime: Runtime, clock: FrozenClock) -> list[int]:
    with runtime.db.session_scope() as session:
        return intake_world(session, clock)


def _leads(runtime: Runtime) -> list[Lead]:
    with runtime.db.session_scope() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
        for lead in leads:
            session.expunge(lead)
        return list(leads)


def test_csv_happy_path_creates_routed_leads(runtime: Runtime, reps: list[int]) -> None:
    run = run_file(runtime, csv_bytes([HEADER, *good_rows(3)]), "leads.csv")
    assert (run.status, run.total_rows, run.created_count, run.error_count) == ("done", 3, 3, 0)
    leads = _leads(runtime)
    assert [lead.phone for lead in leads] == ["+8613800000000", "+8613800000001", "+8613800000002"]
    assert {lead.source_channel for lead in leads} == {"import"}
    assert all(lead.owner_id in reps for lead in leads)
    assert leads[1].institution_grade == "tertiary_a"  # the option's label "Tertiary A" → its value
    rows = rows_of(runtime, run.id)
    assert [rows[n].lead_id for n in (2, 3, 4)] == [lead.id for lead in leads]
    assert rows[2].routing and rows[2].routing["outcome"] == "assigned" and rows[2].routing["summary"]["zh"]
    with runtime.db.session_scope() as session:
        event_ = session.scalars(select(AuditEvent).where(AuditEvent.action == "lead.import")).one()
        assert event_.object_id == run.id and event_.payload["created"] == 3
        assert verify_chain(session) is None


def test_xlsx_with_chinese_headers_and_a_phone_typed_as_a_number(runtime: Runtime, reps: list[int]) -> None:
    data = xlsx_bytes(
        [
            ["姓名", "机构", "等级", "手机号", "邮箱"],
            ["王伟", "江苏省人民医院", "三甲", 13812345678, None],
            ["李娜", "南京鼓楼医院", "一级", 1.3912345678e10, "Li@Example.com"],
        ]
    )
    run = run_file(runtime, data, "线索.xlsx")
    assert (run.status, run.created_count, run.error_count) == ("done", 2, 0)
    assert run.mapping == {
        "0": "contact_name",
        "1": "institution_name",
        "2": "institution_grade",
        "3": "phone",
        "4": "email",
    }
    leads = _leads(runtime)
    assert [lead.phone for lead in leads] == ["+8613812345678", "+8613912345678"]
    assert [lead.institution_grade for lead in leads] == ["tertiary_a", "primary"]
    assert leads[1].email == "li@example.com" and leads[0].data["contact_name"] == "王伟"


def test_gb18030_csv_with_semicolons(runtime: Runtime, reps: list[int]) -> None:
    data = csv_bytes(
        [["姓名", "机构", "电话"], ["张三", "北京协和医院", "138 0013 8000"]],
        encoding="gb18030",
        delimiter=";",
    )
    run = run_file(runtime, data, "export.csv")
    assert (run.status, run.created_count) == ("done", 1)
    assert run.file_info["encoding"] == "gb18030" and run.file_info["delimiter"] == ";"
    assert _leads(runtime)[0].institution == "北京协和医院"


def test_utf8_bom_csv_header_is_clean(runtime: Runtime, reps: list[int]) -> None:
    run = run_file(runtime, csv_bytes([HEADER, *good_rows(1)], encoding="utf-8-sig"), "bom.csv")
    assert run.headers[0] == "Name" and run.mapping["0"] == "contact_name" and run.created_count == 1


def test_named_sheet_of_a_workbook(runtime: Runtime, reps: list[int]) -> None:
    data = xlsx_bytes([HEADER, *good_rows(2)], title="Expo", extra_sheet="Notes")
    run = run_file(runtime, data, "book.xlsx", sheet="Expo")
    assert (run.sheet, run.created_count) == ("Expo", 2)
    assert run.file_info["sheet_names"] == ["Notes", "Expo"]


def _errors_by_row(runtime: Runtime, run_id: int) -> dict[int, list[tuple[Any, ...]]]:
    return {
        number: [(e["column"], e["letter"], e["field"], e["message"]) for e in row.errors or ()]
        for number, row in rows_of(runtime, run_id).items()
        if row.outcome == "error"
    }


BAD_FILE = [
    HEADER,
    good_rows(1)[0],  # row 2: fine
    ["", "Hospital X", "primary", "13800009999", ""],  # row 3: name missing
    [],  # row 4: empty, skipped (numbering keeps the sheet's)
    ["Dr Bad", "Hospital Y", "quaternary", "12345", "not-an-email"],  # row 5: three errors
    good_rows(1, start=7)[0],  # row 6: fine
]


def test_row_by_row_keeps_good_rows_and_reports_row_column_reason(runtime: Runtime, reps: list[int]) -> None:
    run = run_file(runtime, csv_bytes(BAD_FILE), "bad.csv", mode="row_by_row")
    assert (run.status, run.total_rows, run.created_count, run.error_count) == ("done", 4, 2, 2)
    assert len(_leads(runtime)) == 2
    errors = _errors_by_row(runtime, run.id)
    assert errors[3] == [("Name", "A", "contact_name", "This field is required")]
    assert [(c, letter, f) for c, letter, f, _m in errors[5]] == [
        ("Grade", "C", "institution_grade"),
        ("Phone", "D", "phone"),
        ("E-mail", "E", "email"),
    ]
    assert all(row.errors[0]["message_zh"] for row in rows_of(runtime, run.id).values() if row.errors)
    assert 4 not in rows_of(runtime, run.id)


def test_all_or_nothing_writes_nothing_when_one_row_is_bad(runtime: Runtime, reps: list[int]) -> None:
    before = table_counts(runtime)
    run = run_file(runtime, csv_bytes(BAD_FILE), "bad.csv", mode="all_or_nothing")
    assert (run.status, run.created_count, run.error_count) == ("rejected", 0, 2)
    assert run.message and "Nothing was imported" in run.message["en"] and run.message["zh"]
    after = table_counts(runtime)
    assert after["leads"] == 0
    # Nothing but the run's own audit event changed.
    assert {k: v for k, v in after.items() if v != before[k]} == {"audit_events": before["audit_events"] + 1}
    assert set(_errors_by_row(runtime, run.id)) == {3, 5}


def test_all_or_nothing_imports_everything_when_all_rows_are_good(runtime: Runtime, reps: list[int]) -> None:
    run = run_file(
        runtime, csv_bytes([HEADER, *good_rows(7)]), "good.csv", mode="all_or_nothing", chunk_size=3
    )
    assert (run.status, run.created_count, run.processed_rows) == ("done", 7, 7)
    assert len(_leads(runtime)) == 7
    assert {row.outcome for row in rows_of(runtime, run.id).values()} == {"created"}


def test_duplicates_in_the_file_and_against_existing_leads_are_linked(
    runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    with runtime.db.session_scope() as session:
        existing = intake_lead(
            session, channel="hotline", payload=payload(phone="13800000001"), clock=clock
        ).lead.id
    rows = good_rows(3)
    rows.append(["Again", "Hospital 0", "primary", "13800000000", ""])  # row 5 repeats row 2's phone
    run = run_file(runtime, csv_bytes([HEADER, *rows]), "dups.csv", chunk_size=2)
    assert (run.created_count, run.duplicate_count, run.error_count) == (2, 2, 0)
    by_row = rows_of(runtime, run.id)
    assert (by_row[3].outcome, by_row[3].duplicate_of_id, by_row[3].matched_on) == (
        "duplicate",
        existing,
        "phone",
    )
    assert (by_row[5].outcome, by_row[5].duplicate_of_id, by_row[5].duplicate_of_row) == (
        "duplicate",
        by_row[2].lead_id,
        2,
    )
    with runtime.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(LeadDuplicate)) == 2


def test_dry_run_writes_nothing_and_previews_each_row(
    runtime: Runtime, clock: FrozenClock, reps: list[int]
) -> None:
    with runtime.db.session_scope() as session:  # a real lead first: the cursor exists and has turns
        existing = intake_lead(
            session, channel="hotline", payload=payload(phone="13800000001"), clock=clock
        ).lead.id
    before = table_counts(runtime)
    assert before["round_robin_cursors.turns"] >= 1
    rows = [*good_rows(4), ["Again", "H", "primary", "13800000000", ""], ["", "H", "primary", "1", ""]]
    run = run_file(runtime, csv_bytes([HEADER, *rows]), "dry.csv", dry_run=True, chunk_size=3)
    assert table_counts(runtime) == before
    assert (run.status, run.created_count, run.duplicate_count, run.error_count) == ("done", 3, 2, 1)
    by_row = rows_of(runtime, run.id)
    assert by_row[2].outcome == "created" and by_row[2].lead_id is None
    assert by_row[2].routing and by_row[2].routing["owner_id"] in reps
    assert (by_row[3].outcome, by_row[3].duplicate_of_id) == ("duplicate", existing)
    # Row 6 repeats row 2, which an earlier chunk would have created.
    assert (by_row[6].outcome, by_row[6].duplicate_of_id, by_row[6].duplicate_of_row) == (
        "duplicate",
        None,
        2,
    )
    assert by_row[7].outcome == "error"


def test_dry_run_preview_matches_what_the_import_then_does(runtime: Runtime, reps: list[int]) -> None:
    data = csv_bytes([HEADER, *good_rows(8)])
    dry = run_file(runtime, data, "rr.csv", dry_run=True)
    real = run_file(runtime, data, "rr.csv")

    def owners(run_id: int) -> list[Any]:
        rows = sorted(rows_of(runtime, run_id).values(), key=lambda r: r.row_number)
        return [(row.routing or {}).get("owner_id") for row in rows]

    assert owners(dry.id) == owners(real.id) and set(owners(real.id)) == set(reps)
    assert [lead.owner_id for lead in _leads(runtime)] == owners(real.id)


def test_reimporting_the_same_file_needs_again(runtime: Runtime, reps: list[int]) -> None:
    data = csv_bytes([HEADER, *good_rows(2)])
    first = run_file(runtime, data, "a.csv")
    run_id = upload(runtime, data, "copy-of-a.csv")
    with pytest.raises(ImportSetupInvalid) as info:
        start(runtime, run_id)
    assert info.value.errors[0]["field"] == "again" and f"#{first.id}" in info.value.errors[0]["message"]
    start(runtime, run_id, dry_run=True)  # a dry run of it is fine
    again = upload(runtime, data, "a.csv")
    start(runtime, again, again=True)
    run = finish(runtime, again)
    assert (run.created_count, run.duplicate_count) == (0, 2)  # linked to the first import's leads


def test_mapping_problems_are_refused(runtime: Runtime, reps: list[int]) -> None:
    run_id = upload(runtime, csv_bytes([HEADER, *good_rows(1)]), "m.csv")
    with pytest.raises(ImportSetupInvalid) as info:
        start(runtime, run_id, mapping={"0": "contact_name", "1": "contact_name", "2": "nope"})
    assert [e["field"] for e in info.value.errors] == ["map_1", "map_2"]
    assert "both fill 'contact_name'" in info.value.errors[0]["message"]


def test_a_crashed_chunk_resumes_without_importing_twice(runtime: Runtime, reps: list[int]) -> None:
    run_id = upload(runtime, csv_bytes([HEADER, *good_rows(10)]), "crash.csv")
    start(runtime, run_id)
    assert step(runtime, run_id, 4) == "running"  # staged
    assert step(runtime, run_id, 4) == "running"  # rows 2-5 committed
    inserted: list[str] = []

    def crash(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO leads "):
            inserted.append(statement)
            if len(inserted) == 3:  # the worker dies in the middle of the chunk
                raise RuntimeError("worker killed")

    event.listen(runtime.db.engine, "before_cursor_execute", crash)
    try:
        with pytest.raises(RuntimeError, match="worker killed"):
            step(runtime, run_id, 4)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", crash)
    with runtime.db.session_scope() as session:
        run = session.get(ImportRun, run_id)
        assert run is not None and (run.next_row, run.created_count) == (4, 4)
        assert session.scalar(select(func.count()).select_from(Lead)) == 4
    run = finish(runtime, run_id, 4)
    assert (run.status, run.created_count, run.processed_rows, run.duplicate_count) == ("done", 10, 10, 0)
    phones = [lead.phone for lead in _leads(runtime)]
    assert len(phones) == 10 == len(set(phones))
    with runtime.db.session_scope() as session:
        assert (
            session.scalar(select(func.count()).select_from(ImportRow).where(ImportRow.outcome.is_(None)))
            == 0
        )


def test_a_row_costs_intake_plus_its_savepoint(runtime: Runtime, clock: FrozenClock, reps: list[int]) -> None:
    """Deterministic gate: importing N rows costs N intakes plus two statements a row and a constant."""
    with runtime.db.session_scope() as session:  # warm up: the cursor row exists, plans are compiled
        intake_lead(session, channel="import", payload=payload(phone="13900000000", email=None), clock=clock)
    with counting(runtime.db.engine) as one, runtime.db.session_scope() as session:
        intake_lead(session, channel="import", payload=payload(phone="13900000001", email=None), clock=clock)
    per_intake = sum(not s.startswith(("BEGIN", "COMMIT")) for s in one)
    rows = [[f"P{i}", "Hospital", "primary", f"1370000{i:04d}", ""] for i in range(20)]
    run_id = upload(runtime, csv_bytes([HEADER, *rows]), "gate.csv")
    start(runtime, run_id)
    step(runtime, run_id)  # staging
    with counting(runtime.db.engine) as chunk:
        assert step(runtime, run_id) == "done"
    assert len(chunk) <= 20 * (per_intake + 2) + 12, len(chunk)
