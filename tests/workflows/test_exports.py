"""Exports: CSV (UTF-8 with BOM) and XLSX (read back with openpyxl) hold what the list shows, scoped like
the list — a rep gets only their rows — with formula-like text neutralised in both formats while numbers
stay numbers; an export over the row cap is refused with a clear message, and every export is audited.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from salesmesh.platform.audit import AuditEvent
from salesmesh.workflows import exports
from salesmesh.workflows.exports import ExportTooLarge, cell_value, export_list, safe_text, to_csv, to_xlsx
from salesmesh.workflows.list_specs import compile_view
from salesmesh.workflows.lists import parse_params
from tests.workflows.conftest import publish
from tests.workflows.list_support import LEAD_VIEW, sign_in

LEADS = compile_view(LEAD_VIEW)
NASTY = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "=cmd|' /C calc'!A0"]


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def read_xlsx(body: bytes) -> list[list[Any]]:
    sheet = load_workbook(io.BytesIO(body)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("text", NASTY)
def test_formula_like_text_gets_a_quote(text: str) -> None:
    assert safe_text(text) == "'" + text
    assert cell_value(text) == "'" + text


@pytest.mark.parametrize("value", [-5, 3.5, Decimal("-12.30"), 0])
def test_numbers_stay_numbers(value: Any) -> None:
    assert cell_value(value) == value and type(cell_value(value)) is type(value)


def test_plain_text_dates_and_empty_cells() -> None:
    assert cell_value("Beijing 北京") == "Beijing 北京"
    assert cell_value(None) is None
    aware = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert cell_value(aware) == dt.datetime(2026, 3, 2, 9, 0)
    assert cell_value(dt.date(2026, 3, 2)) == dt.date(2026, 3, 2)


def test_csv_and_xlsx_round_trip_safely() -> None:
    headers = ["=Name", "Amount", "When"]
    rows = [[cell_value(t), cell_value(-5), cell_value(dt.date(2026, 1, 2))] for t in NASTY] + [
        ["医院 A", Decimal("1234.50"), None]
    ]
    headers = [safe_text(h) for h in headers]
    table = read_csv(to_csv(headers, rows))
    assert table[0] == ["'=Name", "Amount", "When"]
    assert [r[0] for r in table[1:-1]] == ["'" + t for t in NASTY]
    assert table[1][1:] == ["-5", "2026-01-02"] and table[-1] == ["医院 A", "1234.50", ""]
    book = read_xlsx(to_xlsx(headers, rows, "Leads: all/new"))
    assert book[0] == ["'=Name", "Amount", "When"]
    for row, text in zip(book[1:-1], NASTY, strict=True):
        assert row[0] == "'" + text.replace("\r", "\n")  # XML parsing turns a bare CR into LF
        assert row[1] == -5 and isinstance(row[1], int)
        assert row[2] == dt.datetime(2026, 1, 2)
    assert book[-1][0] == "医院 A" and book[-1][1] == pytest.approx(1234.5)
    sheet = load_workbook(io.BytesIO(to_xlsx(headers, rows, "Leads: all/new"))).active
    assert sheet.title == "Leads  all new"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)  # no formulas at all


@pytest.fixture
def leads(session: Any, clock: Any, people: dict[str, Any], make_lead: Any) -> dict[str, Any]:
    a1, b1 = people["rep_a1"], people["rep_b1"]
    make_lead(
        name="=1+1",
        owner_id=a1.id,
        team_id=a1.team_id,
        data={"grade": "tertiary_a", "beds": 1200, "city": "@evil"},
    )
    make_lead(name="Plain clinic", owner_id=a1.id, team_id=a1.team_id, data={"beds": 35, "city": "-cmd"})
    make_lead(name="Other team", owner_id=b1.id, team_id=b1.team_id, data={"beds": 7})
    session.commit()
    return people


def test_export_is_scoped_and_typed(session: Any, clock: Any, leads: dict[str, Any]) -> None:
    params = parse_params(LEADS, [("sort", "-data.beds")])
    made = export_list(session, leads["rep_a1"], LEADS, params, fmt="xlsx", locale="zh", clock=clock)
    book = read_xlsx(made.body)
    assert made.rows == 2 and made.filename.endswith(".xlsx") and "test-leads" in made.filename
    assert book[0][:5] == ["线索", "状态", "负责人", "等级", "床位数"]
    first = book[1]
    assert first[0] == "'=1+1" and first[1] == "新线索" and first[3] == "三级甲等" and first[4] == 1200
    assert first[5] == "'@evil"
    assert isinstance(first[6], dt.datetime)
    assert [row[0] for row in book[1:]] == ["'=1+1", "Plain clinic"]  # not the other team's lead
    everything = export_list(session, leads["admin"], LEADS, params, fmt="csv", locale="en", clock=clock)
    rows = read_csv(everything.body)
    assert rows[0][:3] == ["Lead", "Status", "Owner"] and len(rows) == 4
    assert rows[1][4] == "1200" and rows[2][5] == "'-cmd"


def test_export_over_the_cap_is_refused(session: Any, clock: Any, leads: dict[str, Any]) -> None:
    with pytest.raises(ExportTooLarge) as info:
        export_list(
            session,
            leads["admin"],
            LEADS,
            parse_params(LEADS, []),
            fmt="csv",
            locale="en",
            clock=clock,
            max_rows=2,
        )
    assert info.value.total == 3 and info.value.limit == 2


def test_export_over_http_is_scoped_audited_and_bounded(
    client: Any, runtime: Any, session: Any, clock: Any, leads: dict[str, Any], monkeypatch: Any
) -> None:
    publish(session, clock, LEAD_VIEW)
    session.commit()
    sign_in(client, runtime, leads["rep_a1"])
    response = client.get("/lists/lead/test-leads/export.csv?sort=data.beds")
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response.data)
    assert [r[0] for r in rows[1:]] == ["Plain clinic", "'=1+1"]  # sorted, and only the rep's own rows
    xlsx = client.get("/lists/lead/test-leads/export.xlsx?q=clinic")
    assert xlsx.status_code == 200 and [r[0] for r in read_xlsx(xlsx.data)[1:]] == ["Plain clinic"]
    assert client.get("/lists/lead/test-leads/export.csv?owner=1").status_code == 400
    assert client.get("/lists/lead/test-leads/export.pdf").status_code == 404
    session.rollback()
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "list.export")).all()
    assert [(e.actor_id, e.payload["format"], e.payload["rows"]) for e in events] == [
        (leads["rep_a1"].id, "csv", 2),
        (leads["rep_a1"].id, "xlsx", 1),
    ]
    assert events[0].payload["params"] == [["sort", "data.beds"]]
    monkeypatch.setattr(exports, "EXPORT_MAX_ROWS", 1)
    refused = client.get("/lists/lead/test-leads/export.csv")
    assert refused.status_code == 422
    assert "at most 1" in refused.get_data(as_text=True) and "Narrow the filters" in refused.get_data(
        as_text=True
    )
