"""Reading import files: encodings and delimiters, sheet row numbers, typed XLSX cells (phones as digits,
dates), limits with bilingual reasons, header matching against the shipped medical-device lead form, and
cells converted per field type (option labels in both languages, 是/否, dates, grouped numbers)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from salesmesh.forms.compile import compile_document
from salesmesh.forms.fields import FieldInvalid
from salesmesh.workflows.import_reading import (
    ImportFileError,
    ImportLimits,
    cell_value,
    column_index,
    column_letter,
    find_column,
    read_table,
    suggest_mapping,
)
from tests.workflows.import_helpers import csv_bytes, xlsx_bytes

LEAD_FORM = (
    Path(__file__).resolve().parents[2] / "packs" / "medical-device-direct" / "definitions" / "lead_form.json"
)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def md_form() -> Any:
    return compile_document(json.loads(LEAD_FORM.read_text(encoding="utf-8")))


def test_csv_encodings_and_delimiters() -> None:
    rows = [["姓名", "电话"], ["王伟", "13812345678"]]
    for encoding, delimiter in [("utf-8", ","), ("utf-8-sig", "\t"), ("gb18030", ";"), ("gb18030", "|")]:
        table = read_table(csv_bytes(rows, encoding=encoding, delimiter=delimiter), "a.csv")
        assert (table.headers, table.rows) == (["姓名", "电话"], [(2, ["王伟", "13812345678"])]), encoding
        assert (table.encoding, table.delimiter) == (encoding, delimiter)


def test_csv_row_numbers_follow_the_sheet() -> None:
    data = b'Name,Notes\r\n"A","two\r\nlines"\r\n,\r\n\r\nB,x\r\n'
    table = read_table(data, "a.csv")
    # Row 3 is empty cells only and row 4 a blank line: skipped, but B keeps its number.
    assert table.rows == [(2, ["A", "two\r\nlines"]), (5, ["B", "x"])]


@pytest.mark.parametrize(
    ("data", "name", "message", "message_zh"),
    [
        (b"", "a.csv", "The file is empty", "文件为空"),
        (b"\r\n\r\n", "a.csv", "Row 1 must hold the column headers", "第 1 行应为列标题"),
        (b"Name,Phone\r\n", "a.csv", "no data rows", "没有数据行"),
        (b"\xef\xbb\xbfName\r\n\xff\xfe\r\n", "a.csv", "says it is UTF-8", "UTF-8"),
        (b"Name\r\n\xff\xff\xff\r\n", "a.csv", "not text in UTF-8 or GB18030", "GB18030"),
        (b"N\x00a\x00m\x00e\x00", "a.csv", "NUL bytes", "空字节"),
        (b"PK\x03\x04 not really", "a.xlsx", "not a readable .xlsx", "不是可读取的 .xlsx"),
        (b"x", "a.xls", "Save the .xls file as .xlsx or .csv", "另存为 .xlsx 或 .csv"),
        (b"x", "a.txt", "Upload a .csv or .xlsx file", "请上传 .csv 或 .xlsx 文件"),
    ],
)
def test_unreadable_files_say_why_in_both_languages(
    data: bytes, name: str, message: str, message_zh: str
) -> None:
    with pytest.raises(ImportFileError) as info:
        read_table(data, name)
    assert message in info.value.message and message_zh in info.value.message_zh


def test_limits() -> None:
    limits = ImportLimits(max_bytes=2000, max_rows=3, max_columns=4)
    ok = csv_bytes([["a", "b"], *[[str(i), "x"] for i in range(3)]])
    assert len(read_table(ok, "a.csv", limits=limits).rows) == 3
    cases = [
        (csv_bytes([["a"], *[[str(i)] for i in range(4)]]), "more than 3 data rows", "超过 3 行"),
        (csv_bytes([["a", "b", "c", "d", "e"], ["1"]]), "more than 4 columns", "列数超过 4"),
        (csv_bytes([["a"], ["1", "2", "3", "4", "5"]]), "more than 4 columns", "列数超过 4"),
        (b"a\r\n" + b"x" * 2000, "larger than", "文件超过"),
    ]
    for data, message, message_zh in cases:
        with pytest.raises(ImportFileError) as info:
            read_table(data, "a.csv", limits=limits)
        assert message in info.value.message and message_zh in info.value.message_zh
    book = xlsx_bytes([["a"], *[[i] for i in range(4)]])
    with pytest.raises(ImportFileError, match="more than 3 data rows"):
        read_table(book, "a.xlsx", limits=ImportLimits(max_rows=3))
    with pytest.raises(ImportFileError, match="unpacks to more than"):
        read_table(book, "a.xlsx", limits=ImportLimits(max_unpacked_bytes=1000))


def test_xlsx_cells_are_typed_and_phones_stay_digits() -> None:
    data = xlsx_bytes(
        [
            ["Phone", "Beds", "Since", "Call at", "Ratio", "VIP"],
            [13812345678, 800, dt.datetime(2026, 3, 2), dt.datetime(2026, 3, 2, 9, 30), 0.25, True],
            [1.3912345678e10, 1.0, dt.date(2025, 12, 31), None, None, None],
        ]
    )
    table = read_table(data, "a.xlsx")
    assert table.rows == [
        (2, [13812345678, 800, "2026-03-02", "2026-03-02 09:30:00", 0.25, True]),
        (3, [13912345678, 1, "2025-12-31"]),
    ]
    assert table.sheet == "Leads" and table.sheet_names == ["Leads"]


def test_named_sheet_and_a_missing_one() -> None:
    data = xlsx_bytes([["Name"], ["A"]], title="2026 expo", extra_sheet="Notes")
    assert read_table(data, "a.xlsx").headers == ["nothing", "here"]  # the first sheet by default
    assert read_table(data, "a.xlsx", sheet="2026 expo").rows == [(2, ["A"])]
    with pytest.raises(ImportFileError) as info:
        read_table(data, "a.xlsx", sheet="2025")
    assert "no sheet named '2025' (sheets: Notes, 2026 expo)" in info.value.message
    assert "Notes、2026 expo" in info.value.message_zh


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]
    assert [column_index(x) for x in ("A", "z", "AA", "aaa", "A1", "")] == [0, 25, 26, 702, None, None]
    headers = ["姓名", "Mobile Phone", ""]
    assert [find_column(headers, n) for n in ("姓名", "mobile_phone", "C", "D", "nope")] == [0, 1, 2, 3, None]


def test_headers_match_keys_labels_and_synonyms_of_the_form(md_form: Any) -> None:
    headers = [
        "机构名称",
        "医院等级",
        "手机号",
        "E-mail",
        "contact_name",
        "省份*",
        "意向产品",
        "备注",
        "姓名",
    ]
    assert suggest_mapping(headers, md_form) == {
        "0": "institution_name",
        "1": "institution_grade",
        "2": "phone",
        "3": "email",
        "4": "contact_name",
        "5": "region",
        "6": "product_interest",
        # 备注 matches nothing; 姓名 would be contact_name again, which column 4 already fills.
    }
    full_width = ["ＰＨＯＮＥ", "Hospital Grade", "institution name"]
    assert suggest_mapping(full_width, md_form) == {
        "0": "phone",
        "1": "institution_grade",
        "2": "institution_name",
    }


def test_cells_become_form_values(md_form: Any) -> None:
    field = md_form.field
    assert cell_value(field("institution_grade"), "三甲", SHANGHAI) == "tertiary_a"
    assert cell_value(field("institution_grade"), "三级甲等", SHANGHAI) == "tertiary_a"
    assert cell_value(field("institution_grade"), "Tertiary grade A", SHANGHAI) == "tertiary_a"
    assert cell_value(field("institution_grade"), "TERTIARY_A", SHANGHAI) == "tertiary_a"
    assert (
        cell_value(field("institution_grade"), "五星级", SHANGHAI) == "五星级"
    )  # left for validation to refuse
    assert cell_value(field("product_interest"), "超声诊断、CT/MR/DR", SHANGHAI) == ["ultrasound", "imaging"]
    assert cell_value(field("product_interest"), "ultrasound; ivd", SHANGHAI) == ["ultrasound", "ivd"]
    assert cell_value(field("tender_planned"), "是", SHANGHAI) is True
    assert cell_value(field("tender_planned"), "No", SHANGHAI) is False
    assert cell_value(field("tender_date"), "2026/3/2", SHANGHAI) == "2026-03-02"
    assert cell_value(field("tender_date"), "2026年3月2日", SHANGHAI) == "2026-03-02"
    assert cell_value(field("bed_count"), "1,200", SHANGHAI) == 1200
    assert cell_value(field("bed_count"), 800, SHANGHAI) == 800
    assert cell_value(field("phone"), 13812345678, SHANGHAI) == "13812345678"
    assert cell_value(field("contact_name"), "", SHANGHAI) is None
    for key, cell, message in [
        ("bed_count", "many", "Must be a number"),
        ("bed_count", "12.5", "Must be a whole number"),
        ("tender_planned", "maybe", "Must be yes or no"),
        ("tender_date", "next spring", "Must be a date written as YYYY-MM-DD"),
    ]:
        with pytest.raises(FieldInvalid) as info:
            cell_value(field(key), cell, SHANGHAI)
        assert info.value.message == message and info.value.message_zh
