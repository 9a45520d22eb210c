"""Reading lead spreadsheets: CSV and XLSX files into header + rows, and columns onto lead form fields.

`read_table(data, filename, sheet=...)` reads a CSV file (UTF-8 with or without a byte-order mark, else
GB18030 — what Excel on a Chinese Windows saves as "CSV"; the delimiter is whichever of `,` `;` tab `|`
the header line uses most) or an XLSX workbook (openpyxl in read-only mode; the first sheet or the named
one). Row 1 is the header; data rows keep the number the spreadsheet shows, and wholly empty rows are
skipped. Cells come back JSON-safe: text stripped, whole numbers as integers — so a phone number typed
into a number cell is `13812345678`, never `1.3812345678e10` —, dates as `YYYY-MM-DD` (`YYYY-MM-DD
HH:MM:SS` with a time). Limits (`ImportLimits`: bytes, rows, columns, unpacked XLSX size) fail with an
`ImportFileError` in English and Chinese before anything is imported.

`suggest_mapping(headers, spec)` matches header texts to the form's input fields by key, English or
Chinese label, or a few common synonyms (手机号 → phone), ignoring case, width, spaces and `*` marks.
`cell_value(field, cell, tz)` turns one cell into the JSON value intake expects for that field's type:
option labels in either language become option values (a label "三级甲等（三甲）" also answers to 三级甲等
and 三甲), 是/否 booleans, 2026/3/2 dates and grouped
numbers are read as the web form would read them; a cell that cannot be read raises `FieldInvalid`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import Any

from salesmesh.forms.compile import FormSpec
from salesmesh.forms.fields import BindContext, FieldInvalid, FieldSpec

MB = 1024 * 1024
FILE_TYPES = ("csv", "xlsx")
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_ROWS = 5
_IGNORED_IN_NAMES = re.compile(r"[\s_\-*:：()（）\[\]【】.。/]+")
_LIST_SEPARATORS = re.compile(r"[,，、;；|\n]+")
_TRUE = frozenset({"true", "yes", "y", "1", "是", "对", "有", "√", "✓", "✔"})
_FALSE = frozenset({"false", "no", "n", "0", "否", "不", "无", "×", "✗", "✘"})

# Header texts people commonly use for a field, beyond its key and labels (only used when the form has
# the field). Compared after `header_key`.
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "phone": (
        "手机",
        "手机号",
        "手机号码",
        "联系电话",
        "电话号码",
        "mobile",
        "cellphone",
        "tel",
        "telephone",
    ),
    "email": ("邮箱", "电子邮件", "邮件", "mail", "emailaddress"),
    "contact_name": ("联系人", "联系人姓名", "客户姓名", "contact", "contactperson", "fullname"),
    "institution_name": ("医院", "医院名称", "单位", "单位名称", "机构", "institution", "hospital"),
    "company_name": ("公司", "公司名称", "企业名称", "company", "organisation", "organization"),
    "region": ("省", "地区", "区域", "province"),
    "campaign": ("活动", "活动名称", "推广活动"),
}


class ImportFileError(ValueError):
    """The file cannot be imported as it is; the message says why in English and Chinese."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh


@dataclass(frozen=True)
class ImportLimits:
    """How large an import may be: file bytes, data rows, columns, and an XLSX's unpacked size."""

    max_bytes: int = 20 * MB
    max_rows: int = 50_000
    max_columns: int = 200
    max_unpacked_bytes: int = 400 * MB


DEFAULT_LIMITS = ImportLimits()


@dataclass
class Table:
    """A read spreadsheet: header texts and the data rows as (row number, cells)."""

    file_type: str
    headers: list[str]
    rows: list[tuple[int, list[Any]]]
    sheet: str | None = None
    sheet_names: list[str] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None

    def info(self) -> dict[str, Any]:
        """Return what a preview shows about the file (JSON-safe)."""
        return {
            "sheet_names": self.sheet_names,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "sample": [{"row": number, "cells": cells} for number, cells in self.rows[:SAMPLE_ROWS]],
        }


def column_letter(index: int) -> str:
    """Return the spreadsheet letter of a 0-based column index (0 → A, 26 → AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int | None:
    """Return the 0-based index of a column letter such as "B" or "aa" (None when it is not one)."""
    if not re.fullmatch(r"[A-Za-z]{1,3}", letters):
        return None
    value = 0
    for ch in letters.upper():
        value = value * 26 + ord(ch) - 64
    return value - 1


def file_type_of(filename: str) -> str:
    """Return csv or xlsx from a file name, or raise ImportFileError naming what is accepted."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext in FILE_TYPES:
        return ext
    if ext in ("xls", "et", "numbers", "ods"):
        raise ImportFileError(
            f"Save the .{ext} file as .xlsx or .csv (UTF-8) and upload that",
            f"请将 .{ext} 文件另存为 .xlsx 或 .csv（UTF-8）后再上传",
        )
    raise ImportFileError("Upload a .csv or .xlsx file", "请上传 .csv 或 .xlsx 文件")


# --- cells ---------------------------------------------------------------------------------------------


def plain_cell(value: Any) -> Any:
    """Return a cell as a JSON-safe value (None when empty); see the module docstring."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e18 else value
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.replace(microsecond=0, tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    text = str(value).strip()
    return text or None


def _row_cells(raw: Sequence[Any]) -> list[Any]:
    cells = [plain_cell(v) for v in raw]
    while cells and cells[-1] is None:
        cells.pop()
    return cells


def _header_texts(raw: Sequence[Any]) -> list[str]:
    headers = []
    for value in _row_cells(raw):
        text = "" if value is None else str(value)
        headers.append(" ".join(text.replace("\ufeff", "").split()))
    return headers


# --- CSV ---------------------------------------------------------------------------------------------


def decode_text(data: bytes) -> tuple[str, str]:
    """Return (text, encoding) of CSV bytes: UTF-8 (BOM or not), else GB18030."""
    if data.startswith(b"\xef\xbb\xbf"):
        data, bom = data[3:], True
    else:
        bom = False
    try:
        return data.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError:
        if bom:
            raise ImportFileError(
                "The file says it is UTF-8 but is not valid UTF-8 text",
                "文件标明为 UTF-8，但内容不是有效的 UTF-8 文本",
            ) from None
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        raise ImportFileError(
            "The file is not text in UTF-8 or GB18030 (GBK): save it as CSV UTF-8",
            "文件不是 UTF-8 或 GB18030（GBK）编码的文本：请另存为“CSV UTF-8”格式",
        ) from None


def sniff_delimiter(text: str) -> str:
    """Return the delimiter the header line uses most (a comma when it uses none)."""
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_records(text: str, delimiter: str) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise ImportFileError(
            f"The CSV file is malformed near row {reader.line_num}: {exc}",
            f"CSV 文件在第 {reader.line_num} 行附近格式有误：{exc}",
        ) from None


def read_csv(data: bytes, limits: ImportLimits = DEFAULT_LIMITS) -> Table:
    """Read CSV bytes into a Table (see the module docstring)."""
    if b"\x00" in data:
        raise ImportFileError(
            "The file contains NUL bytes: it is not a CSV text file (UTF-16 files are not supported)",
            "文件包含空字节，不是 CSV 文本文件（不支持 UTF-16 编码）",
        )
    text, encoding = decode_text(data)
    delimiter = sniff_delimiter(text)
    return _table("csv", _csv_records(text, delimiter), limits, encoding=encoding, delimiter=delimiter)


# --- XLSX --------------------------------------------------------------------------------------------


def read_xlsx(data: bytes, sheet: str | None = None, limits: ImportLimits = DEFAULT_LIMITS) -> Table:
    """Read the first (or the named) sheet of XLSX bytes into a Table."""
    from openpyxl import load_workbook

    not_xlsx = ImportFileError("The file is not a readable .xlsx workbook", "文件不是可读取的 .xlsx 工作簿")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise not_xlsx from None
    if unpacked > limits.max_unpacked_bytes:
        raise ImportFileError(
            f"The workbook unpacks to more than {limits.max_unpacked_bytes // MB} MB",
            f"工作簿解压后超过 {limits.max_unpacked_bytes // MB} MB",
        )
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many types for damaged files
        raise not_xlsx from None
    try:
        names = list(book.sheetnames)
        if sheet:
            if sheet not in names:
                shown = "、".join(names)
                raise ImportFileError(
                    f"The workbook has no sheet named '{sheet}' (sheets: {', '.join(names)})",
                    f"工作簿中没有名为“{sheet}”的工作表（现有：{shown}）",
                )
            worksheet = book[sheet]
        elif names:
            worksheet = book.worksheets[0]
        else:
            raise not_xlsx
        worksheet.reset_dimensions()  # some writers store a wrong size; read what is really there
        rows = worksheet.iter_rows(values_only=True)
        return _table("xlsx", rows, limits, sheet=worksheet.title, sheet_names=names)
    finally:
        book.close()


# --- both --------------------------------------------------------------------------------------------


def _table(file_type: str, records: Iterator[Sequence[Any]], limits: ImportLimits, **extra: Any) -> Table:
    header_row = next(records, None)
    headers = _header_texts(header_row or ())
    if not any(headers):
        raise ImportFileError(
            "Row 1 must hold the column headers, but it is empty", "第 1 行应为列标题，但该行为空"
        )
    too_wide = ImportFileError(
        f"The file has more than {limits.max_columns} columns", f"文件的列数超过 {limits.max_columns}"
    )
    if len(headers) > limits.max_columns:
        raise too_wide
    rows: list[tuple[int, list[Any]]] = []
    for number, raw in enumerate(records, start=2):
        cells = _row_cells(raw)
        if not cells:
            continue
        if len(cells) > limits.max_columns:
            raise too_wide
        if len(rows) >= limits.max_rows:
            raise ImportFileError(
                f"The file has more than {limits.max_rows:,} data rows: split it into smaller files",
                f"文件的数据行超过 {limits.max_rows} 行：请拆分为多个较小的文件",
            )
        rows.append((number, cells))
    if not rows:
        raise ImportFileError("The file has a header row but no data rows", "文件只有标题行，没有数据行")
    return Table(file_type, headers, rows, **extra)


def read_table(
    data: bytes, filename: str, *, sheet: str | None = None, limits: ImportLimits = DEFAULT_LIMITS
) -> Table:
    """Read an uploaded CSV or XLSX file (by its name's extension) within `limits`."""
    file_type = file_type_of(filename)
    if len(data) > limits.max_bytes:
        size = f"{limits.max_bytes / MB:g} MB" if limits.max_bytes >= MB else f"{limits.max_bytes // 1024} KB"
        raise ImportFileError(f"The file is larger than {size}", f"文件超过 {size}")
    if not data:
        raise ImportFileError("The file is empty", "文件为空")
    if file_type == "csv":
        return read_csv(data, limits)
    return read_xlsx(data, sheet, limits)


# --- mapping -----------------------------------------------------------------------------------------


def header_key(text: str) -> str:
    """Return a header text folded for matching (NFKC, case, spaces, `_ - * : ()` ignored)."""
    return _IGNORED_IN_NAMES.sub("", unicodedata.normalize("NFKC", text or "").casefold())


def importable_fields(spec: FormSpec) -> list[FieldSpec]:
    """Return the form fields a column may fill: input fields that are not files or read-only."""
    return [f for f in spec.input_fields if not f.type.uploads and not f.read_only]


def suggest_mapping(headers: Sequence[str], spec: FormSpec) -> dict[str, str]:
    """Return {column index as text: field key} for headers naming a field; each field once, first wins."""
    names: dict[str, str] = {}
    fields = importable_fields(spec)
    # Keys and labels first, synonyms after, so a real label is never shadowed by a synonym.
    for f in fields:
        for text in (f.key, f.label.get("en", ""), f.label.get("zh", "")):
            names.setdefault(header_key(text), f.key)
    for f in fields:
        for text in SYNONYMS.get(f.key, ()):
            names.setdefault(header_key(text), f.key)
    names.pop("", None)
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        key = names.get(header_key(header))
        if key is not None and key not in taken:
            mapping[str(index)] = key
            taken.add(key)
    return mapping


def column_name(headers: Sequence[str], index: int) -> str:
    """Return how a column is named in messages: its header, else its letter."""
    header = headers[index] if index < len(headers) else ""
    return header or column_letter(index)


def find_column(headers: Sequence[str], name: str) -> int | None:
    """Return the index of the column a user named: header text (exact, then folded), or its letter."""
    text = name.strip()
    for index, header in enumerate(headers):
        if header == text:
            return index
    folded = header_key(text)
    for index, header in enumerate(headers):
        if folded and header_key(header) == folded:
            return index
    return column_index(text)


# --- cells to form values ------------------------------------------------------------------------------


def _text(cell: Any) -> str:
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return format(cell, "g") if abs(cell) < 1e15 else str(cell)
    return str(cell)


_BRACKETED = re.compile(r"^(.*?)\s*[(（]([^()（）]+)[)）]\s*$")


def _names_of(text: str) -> set[str]:
    """Return the folded names a label answers to: itself, and "A（B）" also as A and as B."""
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    names = {folded}
    match = _BRACKETED.match(folded)
    if match:
        names.update(part.strip() for part in match.groups() if part.strip())
    return names


def _option(spec: FieldSpec, text: str) -> str:
    """Return the option value a cell names (value or label, any case/width); the text when none."""
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    for value, _labels in spec.options:
        if folded == value.casefold():
            return value
    for value, labels in spec.options:
        if any(folded in _names_of(str(lab)) for lab in labels.values()):
            return value
    return text


def cell_value(spec: FieldSpec, cell: Any, tz: tzinfo) -> Any:
    """Convert one cell into the JSON value intake expects for `spec`'s type (None when empty)."""
    if cell is None or cell == "":
        return None
    kind = spec.type.name
    ctx = BindContext(source="form", tz=tz)
    if kind in ("number", "money"):
        if isinstance(cell, int | float) and not isinstance(cell, bool):
            return spec.type.convert(cell, spec, ctx)
        return spec.type.convert(_text(cell), spec, ctx)
    if kind == "boolean":
        if isinstance(cell, bool):
            return cell
        word = unicodedata.normalize("NFKC", _text(cell)).strip().casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise FieldInvalid("Must be yes or no", "必须为是或否")
    if kind == "reference":
        return spec.type.convert(_text(cell), spec, ctx)
    if kind in ("date", "datetime"):
        return spec.type.convert(_text(cell), spec, ctx)
    if kind == "select":
        return _option(spec, _text(cell))
    if kind == "multi_select":
        parts = [p.strip() for p in _LIST_SEPARATORS.split(_text(cell))]
        return [_option(spec, p) for p in parts if p] or None
    return _text(cell)
