"""CSV and XLSX exports of a list: the same view, filters, search and policy scope as the list page.

`export_list` runs the list query without paging, bounded by `EXPORT_MAX_ROWS`: a larger result raises
`ExportTooLarge` (the person narrows the filters) instead of writing a silently truncated file. Values are
what the list shows — labels of codes in the person's language, owner and customer names — while numbers
stay numbers and dates stay dates. Every text cell (headers included) that a spreadsheet would read as a
formula — starting with `=`, `+`, `-`, `@`, a tab or a carriage return — gets a leading single quote
(formula-injection defence). CSV is UTF-8 with a byte-order mark so Excel opens Chinese text correctly;
XLSX is written with openpyxl in write-only mode. `record_export` audits who exported what.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_, label
from salesmesh.platform.models import User
from salesmesh.workflows.list_specs import ListView
from salesmesh.workflows.lists import ListParams, ListRow, iter_rows, plain_value

EXPORT_MAX_ROWS = 50_000
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TOO_LARGE = N_(
    "This list has %(total)s rows; an export holds at most %(limit)s. Narrow the filters and try again."
)
_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")


class ExportTooLarge(Exception):
    """The filtered list has more rows than an export may hold."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"{total} rows; exports hold at most {limit}")
        self.total = total
        self.limit = limit


@dataclass(frozen=True)
class Export:
    filename: str
    mimetype: str
    body: bytes
    rows: int


def safe_text(value: str) -> str:
    """Return text a spreadsheet shows as text: formula-like starts get a leading single quote."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell_value(value: Any) -> Any:
    """Return an export cell: numbers/dates unchanged, aware datetimes as naive UTC, text made safe."""
    if value is None:
        return None
    if isinstance(value, bool):
        return safe_text(str(value))
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dt.date):
        return value
    return safe_text(str(value))


def table(view: ListView, rows: list[ListRow], locale: str) -> tuple[list[str], list[list[Any]]]:
    """Return (headers, rows of cell values) for the view's columns in `locale`."""
    headers = [safe_text(label(c.label, locale)) for c in view.columns]
    body = [
        [cell_value(plain_value(c.field, row.values.get(c.field.name), locale)) for c in view.columns]
        for row in rows
    ]
    return headers, body


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_csv(headers: list[str], rows: list[list[Any]]) -> bytes:
    """Write a CSV file (UTF-8 with BOM, CRLF line ends, every field quoted when needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_text(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def to_xlsx(headers: list[str], rows: list[list[Any]], title: str) -> bytes:
    """Write an XLSX workbook with one sheet: a bold, frozen header row and the rows (typed cells)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=(_SHEET_UNSAFE.sub(" ", title).strip() or "Export")[:31])
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for text in headers:
        cell = WriteOnlyCell(sheet, value=_xlsx_value(text))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=_xlsx_value(value))
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever the text
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def export_list(
    session: Session,
    actor: User,
    view: ListView,
    params: ListParams,
    *,
    fmt: str,
    locale: str,
    clock: Clock,
    max_rows: int | None = None,
) -> Export:
    """Build the export file of a list for `actor` (policy-scoped), or raise ExportTooLarge.

    `max_rows` defaults to `EXPORT_MAX_ROWS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    limit = EXPORT_MAX_ROWS if max_rows is None else max_rows
    now = clock.now()
    total, rows = iter_rows(session, actor, view, params, now=now, limit=limit)
    if total > limit:
        raise ExportTooLarge(total, limit)
    headers, body = table(view, rows, locale)
    data = to_csv(headers, body) if fmt == "csv" else to_xlsx(headers, body, label(view.label, locale))
    filename = f"{view.record_type}-{view.key}-{now:%Y%m%d-%H%M}.{fmt}"
    return Export(filename, FORMATS[fmt], data, len(rows))


def record_export(
    session: Session, actor: User, view: ListView, params: ListParams, export: Export, *, clock: Clock
) -> None:
    """Audit an export: who, which view, which parameters, how many rows (the caller commits)."""
    record_event(
        session,
        at=clock.now(),
        actor_id=actor.id,
        action="list.export",
        object_type=None,
        object_id=None,
        payload={
            "record_type": view.record_type,
            "view": view.key,
            "params": [list(p) for p in params.pairs],
            "format": export.filename.rsplit(".", 1)[-1],
            "rows": export.rows,
        },
    )
