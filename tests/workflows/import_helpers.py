"""Helpers for the import tests: spreadsheet files built in the test (csv module, openpyxl), a published
lead form and routing with reps (`intake_world`), running an import step by step the way the job does
(one transaction per step), and counting every table's rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook
from sqlalchemy import func, select, text

from salesmesh.forms.files import FileStore
from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ImportRow, ImportRun
from salesmesh.workflows.import_steps import advance_import
from salesmesh.workflows.imports import start_import, upload_import

HEADER = ["Name", "Institution", "Grade", "Phone", "E-mail"]


def csv_bytes(rows: Iterable[Sequence[Any]], *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    """Return a CSV file of `rows` (the first is the header) in `encoding` ('utf-8-sig' adds a BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode(encoding)


def xlsx_bytes(
    rows: Iterable[Sequence[Any]], *, title: str = "Leads", extra_sheet: str | None = None
) -> bytes:
    """Return an XLSX workbook whose first sheet holds `rows` (cells keep their Python types)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    if extra_sheet:
        sheet.title = extra_sheet
        sheet.append(["nothing", "here"])
        sheet.append(["see", "the next sheet"])
        sheet = book.create_sheet(title)
    else:
        sheet.title = title
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def good_rows(n: int, *, start: int = 0) -> list[list[Any]]:
    """`n` valid, distinct data rows (phones 13800000000 + i)."""
    return [
        [
            f"Person {i}",
            f"Hospital {i}",
            "Tertiary A" if i % 2 else "primary",
            f"1380000{i:04d}",
            f"p{i}@example.com",
        ]
        for i in range(start, start + n)
    ]


def store_of(runtime: Runtime) -> FileStore:
    return FileStore.for_settings(runtime.settings)


def upload(runtime: Runtime, data: bytes, filename: str, **kwargs: Any) -> int:
    """Upload a file as the system; return the draft run's id."""
    with runtime.db.session_scope(immediate=True) as session:
        run = upload_import(
            session,
            None,
            filename=filename,
            stream=io.BytesIO(data),
            store=store_of(runtime),
            clock=runtime.clock,
            **kwargs,
        )
        return run.id


def start(
    runtime: Runtime, run_id: int, *, mode: str = "row_by_row", dry_run: bool = False, **kwargs: Any
) -> None:
    """Start a draft run with its suggested mapping (or `mapping=`)."""
    with runtime.db.session_scope(immediate=True) as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        mapping = kwargs.pop("mapping", None) or dict(run.mapping)
        start_import(
            session, None, run, mapping=mapping, mode=mode, dry_run=dry_run, clock=runtime.clock, **kwargs
        )


def step(runtime: Runtime, run_id: int, chunk_size: int = 500) -> str:
    """Do one step in its own transaction; return the run's status afterwards."""
    with runtime.db.session_scope(immediate=True) as session:
        run = advance_import(
            session, run_id, store=store_of(runtime), clock=runtime.clock, chunk_size=chunk_size
        )
        assert run is not None
        return run.status


def finish(runtime: Runtime, run_id: int, chunk_size: int = 500) -> ImportRun:
    """Run steps until the run is no longer active; return it."""
    for _ in range(10_000):
        if step(runtime, run_id, chunk_size) not in ("queued", "running"):
            break
    with runtime.db.session_scope() as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        session.expunge(run)
        return run


def run_file(
    runtime: Runtime, data: bytes, filename: str, *, chunk_size: int = 500, **options: Any
) -> ImportRun:
    """Upload, start and finish an import; return the finished run."""
    upload_options = {k: options.pop(k) for k in ("channel", "sheet") if k in options}
    run_id = upload(runtime, data, filename, **upload_options)
    start(runtime, run_id, **options)
    return finish(runtime, run_id, chunk_size)


def rows_of(runtime: Runtime, run_id: int) -> dict[int, ImportRow]:
    """Return a run's rows by spreadsheet row number."""
    with runtime.db.session_scope() as session:
        rows = session.scalars(select(ImportRow).where(ImportRow.run_id == run_id)).all()
        for row in rows:
            session.expunge(row)
        return {row.row_number: row for row in rows}


def table_counts(runtime: Runtime, *, skip: Iterable[str] = ("import_runs", "import_rows")) -> dict[str, int]:
    """Return the row count of every table (and the round-robin cursors' total turns)."""
    skipped = set(skip)
    with runtime.db.session_scope() as session:
        counts = {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name not in skipped
        }
        counts["round_robin_cursors.turns"] = session.scalar(
            text("SELECT COALESCE(SUM(turns), 0) FROM round_robin_cursors")
        )
    return counts
