"""Field types: the registry, and each built-in type's conversion (HTML and JSON input), validation
(through its schema fragment) and display, including bad input with its Chinese message."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

import pytest

from salesmesh.forms.binding import bind
from salesmesh.forms.fields import (
    DuplicateFieldType,
    FieldType,
    UnknownFieldType,
    field_types,
    get_field_type,
    register_field_type,
    unregister_field_type,
)
from salesmesh.forms.phones import PhoneInvalid, format_phone, normalize_phone

BUILTINS = {
    "text",
    "long_text",
    "number",
    "money",
    "date",
    "datetime",
    "select",
    "multi_select",
    "boolean",
    "phone",
    "email",
    "url",
    "reference",
    "file",
    "heading",
}
OPTIONS = [
    {"value": "a", "label": {"en": "Alpha", "zh": "甲"}},
    {"value": "b", "label": {"en": "Beta", "zh": "乙"}},
    {"value": "c", "label": {"en": "Gamma", "zh": "丙"}},
]


def one(spec_of, field: dict[str, Any], raw: Any, source: str = "form", **kwargs: Any) -> tuple[Any, Any]:
    """Bind one value to a one-field form; return (value, error or None)."""
    spec = spec_of({"key": "f", **field})
    bound = bind(spec, {} if raw is None else {"f": raw}, source=source, **kwargs)
    errs = bound.errors.get("f")
    return bound.values.get("f"), (errs[0] if errs else None)


def assert_bad(error: Any, en: str, zh: str) -> None:
    assert error is not None, "expected an error"
    assert error["path"] == "/f"
    assert en in error["message"], error
    assert zh in error["message_zh"], error


# --- registry --------------------------------------------------------------------------------------


def test_every_builtin_type_is_registered_with_a_macro() -> None:
    types = field_types()
    assert set(types) >= BUILTINS
    for name in BUILTINS:
        assert types[name].name == name and types[name].macro


def test_duplicate_registration_fails_and_plugins_can_add_types() -> None:
    class Stars(FieldType):
        name = "stars"
        macro = "stars_input"

        def schema(self, spec):  # type: ignore[no-untyped-def]
            return {"type": "integer", "minimum": 1, "maximum": 5}

    with pytest.raises(DuplicateFieldType):
        register_field_type(type("Text2", (FieldType,), {"name": "text", "macro": "x"})())
    register_field_type(Stars())
    try:
        assert get_field_type("stars").macro == "stars_input"
        with pytest.raises(DuplicateFieldType):
            register_field_type(Stars())
    finally:
        unregister_field_type("stars")
    with pytest.raises(UnknownFieldType):
        get_field_type("stars")
    with pytest.raises(ValueError, match="name and a macro"):
        register_field_type(FieldType())


# --- text types ------------------------------------------------------------------------------------


def test_text_trims_and_limits(spec_of) -> None:
    assert one(spec_of, {"type": "text"}, "  Hello  ") == ("Hello", None)
    assert one(spec_of, {"type": "text"}, "   ") == (None, None)
    _, err = one(spec_of, {"type": "text", "max_length": 5}, "abcdefg")
    assert_bad(err, "at most 5 characters", "不能超过 5 个字符")
    _, err = one(spec_of, {"type": "text", "min_length": 3}, "ab")
    assert_bad(err, "at least 3 characters", "至少为 3 个字符")
    _, err = one(spec_of, {"type": "text"}, "two\nlines")
    assert_bad(err, "single line", "单行文本")
    _, err = one(spec_of, {"type": "text"}, 12, source="json")
    assert_bad(err, "Must be text", "必须是文本")


def test_text_pattern(spec_of) -> None:
    field = {"type": "text", "pattern": "^[A-Za-z][A-Za-z0-9_-]{5,19}$"}
    assert one(spec_of, field, "wx_abc123") == ("wx_abc123", None)
    _, err = one(spec_of, field, "1abc")
    assert_bad(err, "expected format", "格式不正确")
    # A pattern never runs on long input, whatever max_length says.
    _, err = one(spec_of, {**field, "max_length": 5000}, "a" * 300)
    assert_bad(err, "at most 256 characters", "不能超过 256 个字符")


def test_long_text_keeps_lines_and_refuses_control_characters(spec_of) -> None:
    assert one(spec_of, {"type": "long_text"}, "a\r\nb\rc") == ("a\nb\nc", None)
    _, err = one(spec_of, {"type": "long_text"}, "bad\x00byte")
    assert_bad(err, "control characters", "控制字符")
    _, err = one(spec_of, {"type": "long_text"}, "x" * 20001)
    assert_bad(err, "at most 20000", "20000")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("0086 13812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("１３８１２３４５６７８", "+8613812345678"),  # full-width digits
        ("010-12345678", "+861012345678"),
        ("(021) 6123 4567", "+862161234567"),
        ("0571-8765432", "+865718765432"),
        ("+86 (0)10 12345678", "+861012345678"),
        ("400-123-4567", "+864001234567"),
        ("+1 415 555 0100", "+14155550100"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_normalises_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "zh"),
    [
        ("12345678", "请加区号"),
        ("1381234567", "11 位"),
        ("138-1234-5678 ext 12", "分机"),
        ("phone me", "只能包含数字"),
        ("+0 123 4567 890", "不能以 0 开头"),
        ("+1 234", "8 至 15 位"),
        ("55555", "不是有效的中国电话号码"),
        ("+86 12345", "11 位"),
        ("+86 2123", "不是有效的中国电话号码"),
    ],
)
def test_phone_refuses_what_cannot_be_dialled(raw: str, zh: str) -> None:
    with pytest.raises(PhoneInvalid) as info:
        normalize_phone(raw)
    assert zh in info.value.message_zh and info.value.message


def test_phone_field_and_display(spec_of) -> None:
    value, err = one(spec_of, {"type": "phone"}, "138 1234 5678")
    assert (value, err) == ("+8613812345678", None)
    _, err = one(spec_of, {"type": "phone"}, "12345")
    assert err is not None and err["message_zh"]
    spec = spec_of({"key": "f", "type": "phone"})
    assert spec.by_key["f"].display(value, "en") == "+86 138 1234 5678"
    assert format_phone("+861012345678") == "+86 10 12345678"
    assert format_phone("+14155550100") == "+14155550100"


def test_email_lowercases_and_validates(spec_of) -> None:
    assert one(spec_of, {"type": "email"}, "  Wang.Li@Example.COM ") == ("wang.li@example.com", None)
    assert one(spec_of, {"type": "email"}, "li＠example.cn") == ("li@example.cn", None)
    assert one(spec_of, {"type": "email"}, "x@例子.中国")[0] == "x@例子.中国"
    for bad in ("no-at-sign", "a@b", "a..b@example.com", "a@-bad-.com", "a b@example.com", "@example.com"):
        _, err = one(spec_of, {"type": "email"}, bad)
        assert_bad(err, "Not a valid e-mail address", "不是有效的电子邮件地址")


def test_url_accepts_http_and_https_only(spec_of) -> None:
    assert one(spec_of, {"type": "url"}, "https://Example.com/a?b=1") == ("https://example.com/a?b=1", None)
    assert one(spec_of, {"type": "url"}, "www.example.cn") == ("https://www.example.cn", None)
    assert one(spec_of, {"type": "url"}, "http://localhost:8080/x")[1] is None
    for bad in (
        "javascript:alert(1)",
        "ftp://example.com/f",
        "https://",
        "http://exa mple.com",
        "https://x:99999",
    ):
        _, err = one(spec_of, {"type": "url"}, bad)
        assert_bad(err, "http:// or https://", "http:// 或 https://")
    _, err = one(spec_of, {"type": "url"}, "https://user:pw@example.com")
    assert_bad(err, "user name or password", "用户名或密码")


# --- numbers ---------------------------------------------------------------------------------------


def test_number_conversion_and_bounds(spec_of) -> None:
    field = {"type": "number", "min": 0, "max": 20000, "decimals": 0}
    assert one(spec_of, field, "1,200") == (1200, None)
    assert one(spec_of, field, "１２") == (12, None)
    assert one(spec_of, field, 30, source="json") == (30, None)
    assert one(spec_of, field, 30.0, source="json") == (30, None)
    _, err = one(spec_of, field, "12.5")
    assert_bad(err, "whole number", "必须是整数")
    _, err = one(spec_of, field, "-1")
    assert_bad(err, "at least 0", "不能小于 0")
    _, err = one(spec_of, field, "30000")
    assert_bad(err, "at most 20000", "不能大于 20000")
    _, err = one(spec_of, field, "12abc")
    assert_bad(err, "Must be a number", "必须是数字")
    _, err = one(spec_of, field, "12", source="json")
    assert_bad(err, "Must be a number", "必须是数字")
    _, err = one(spec_of, field, True, source="json")
    assert_bad(err, "Must be a number", "必须是数字")
    _, err = one(spec_of, {"type": "number"}, float("nan"), source="json")
    assert_bad(err, "finite", "有限")
    assert one(spec_of, {"type": "number", "decimals": 2}, "3.10") == (3.1, None)
    _, err = one(spec_of, {"type": "number", "decimals": 2}, "3.14159")
    assert_bad(err, "at most 2 decimal places", "最多保留 2 位小数")


def test_number_display() -> None:
    from salesmesh.forms.compile import compile_document
    from tests.forms.conftest import form_doc

    spec = compile_document(
        form_doc({"key": "n", "type": "number", "decimals": 1}, {"key": "i", "type": "number"})
    )
    assert spec.by_key["n"].display(1234.5, "en") == "1,234.5"
    assert spec.by_key["i"].display(1234567, "zh") == "1,234,567"
    assert spec.by_key["i"].display(None, "en") == ""


def test_money_is_a_string_decimal(spec_of) -> None:
    field = {"type": "money", "currency": "CNY", "min": 0, "max": 500000000, "decimals": 2}
    assert one(spec_of, field, "1,234.5") == ("1234.50", None)
    assert one(spec_of, field, "¥ 88") == ("88.00", None)
    assert one(spec_of, field, "CNY1000") == ("1000.00", None)
    assert one(spec_of, field, 99.9, source="json") == ("99.90", None)
    assert one(spec_of, field, "12.30", source="json") == ("12.30", None)
    assert one(spec_of, field, "-0") == ("0.00", None)
    _, err = one(spec_of, field, "-5")
    assert_bad(err, "at least 0", "不能小于 0")
    _, err = one(spec_of, field, "600000000")
    assert_bad(err, "at most 500000000", "不能大于 500000000")
    _, err = one(spec_of, field, "1.234")
    assert_bad(err, "at most 2 decimal places", "最多保留 2 位小数")
    _, err = one(spec_of, field, "lots")
    assert_bad(err, "Must be a number", "必须是数字")
    _, err = one(spec_of, {"type": "money"}, "9" * 16)
    assert_bad(err, "too large", "金额过大")
    spec = spec_of({"key": "f", **field})
    assert spec.by_key["f"].display("1234567.50", "zh") == "¥1,234,567.50"
    sgd = spec_of({"key": "f", "type": "money", "currency": "SGD", "decimals": 0})
    assert one(spec_of, {"type": "money", "decimals": 0}, "12") == ("12", None)
    assert sgd.by_key["f"].display("1500", "en") == "SGD 1,500"


# --- dates -----------------------------------------------------------------------------------------


def test_date_conversion_and_display(spec_of) -> None:
    assert one(spec_of, {"type": "date"}, "2026-03-02") == ("2026-03-02", None)
    assert one(spec_of, {"type": "date"}, "2026/3/2") == ("2026-03-02", None)
    assert one(spec_of, {"type": "date"}, "2026年3月2日") == ("2026-03-02", None)
    _, err = one(spec_of, {"type": "date"}, "2026-02-30")
    assert_bad(err, "Not a valid date", "不是有效的日期")
    _, err = one(spec_of, {"type": "date"}, "next week")
    assert_bad(err, "YYYY-MM-DD", "YYYY-MM-DD")
    _, err = one(spec_of, {"type": "date"}, "2026/3/2", source="json")
    assert_bad(err, "YYYY-MM-DD", "YYYY-MM-DD")
    spec = spec_of({"key": "f", "type": "date"})
    assert spec.by_key["f"].display("2026-03-02", "zh") == "2026年3月2日"
    assert spec.by_key["f"].display("2026-03-02", "en") == "2026-03-02"


def test_datetime_is_stored_in_utc(spec_of) -> None:
    shanghai = timezone(timedelta(hours=8))
    value, err = one(spec_of, {"type": "datetime"}, "2026-03-02T09:30", tz=shanghai)
    assert (value, err) == ("2026-03-02T01:30:00Z", None)
    assert one(spec_of, {"type": "datetime"}, "2026-03-02 09:30:15+02:00")[0] == "2026-03-02T07:30:15Z"
    assert (
        one(spec_of, {"type": "datetime"}, "2026-03-02T01:30:00Z", source="json")[0] == "2026-03-02T01:30:00Z"
    )
    _, err = one(spec_of, {"type": "datetime"}, "2026-03-02")
    assert_bad(err, "date and time", "日期时间")
    spec = spec_of({"key": "f", "type": "datetime"})
    f = spec.by_key["f"]
    assert f.display("2026-03-02T01:30:00Z", "en", shanghai) == "2026-03-02 09:30"
    assert f.input_value("2026-03-02T01:30:00Z", shanghai) == "2026-03-02T09:30"
    assert f.input_value("not a date") == "not a date"
    assert f.display("2026-03-02T01:30:00Z", "zh", UTC) == "2026-03-02 01:30"


# --- choices ---------------------------------------------------------------------------------------


def test_select(spec_of) -> None:
    field = {"type": "select", "options": OPTIONS}
    assert one(spec_of, field, "b") == ("b", None)
    assert one(spec_of, field, "") == (None, None)
    _, err = one(spec_of, field, "z")
    assert_bad(err, "Choose one of the listed options", "请从列出的选项中选择")
    _, err = one(spec_of, field, ["a"], source="json")
    assert_bad(err, "Must be text", "必须是文本")
    spec = spec_of({"key": "f", **field})
    assert spec.by_key["f"].display("b", "zh") == "乙"
    assert spec.by_key["f"].display("gone", "en") == "gone"


def test_multi_select(spec_of) -> None:
    from werkzeug.datastructures import MultiDict

    field = {"type": "multi_select", "options": OPTIONS, "max_selected": 2}
    spec = spec_of({"key": "f", **field})
    bound = bind(spec, MultiDict([("f", "a"), ("f", "c"), ("f", "a")]))
    assert bound.values == {"f": ["a", "c"]} and bound.valid
    assert one(spec_of, field, ["b"], source="json") == (["b"], None)
    assert one(spec_of, field, [], source="json") == (None, None)
    _, err = one(spec_of, field, ["a", "b", "c"], source="json")
    assert_bad(err, "at most 2", "最多选择 2 项")
    _, err = one(spec_of, field, ["a", "zz"], source="json")
    assert err is not None and err["path"] == "/f/1" and "选项" in err["message_zh"]
    _, err = one(spec_of, field, "a", source="json")
    assert_bad(err, "list of option values", "选项值组成的列表")
    assert spec.by_key["f"].display(["a", "c"], "zh") == "甲、丙"
    assert spec.by_key["f"].display(["a", "c"], "en") == "Alpha, Gamma"


def test_boolean(spec_of) -> None:
    assert one(spec_of, {"type": "boolean"}, "on") == (True, None)
    assert one(spec_of, {"type": "boolean"}, None) == (False, None)  # unchecked box sends nothing
    assert one(spec_of, {"type": "boolean"}, "false") == (False, None)
    assert one(spec_of, {"type": "boolean"}, True, source="json") == (True, None)
    _, err = one(spec_of, {"type": "boolean"}, "maybe")
    assert_bad(err, "yes or no", "是或否")
    _, err = one(spec_of, {"type": "boolean"}, "true", source="json")
    assert_bad(err, "true or false", "必须是 true 或 false")
    spec = spec_of({"key": "f", "type": "boolean"})
    assert spec.by_key["f"].display(True, "zh") == "是"
    assert spec.by_key["f"].display(False, "en") == "No"


# --- reference and heading ------------------------------------------------------------------------


def test_reference_stores_the_id_and_asks_the_resolver(spec_of) -> None:
    field = {"type": "reference", "reference": {"target": "customer"}}
    seen = []

    def resolver(spec, value):  # type: ignore[no-untyped-def]
        seen.append((spec.reference["target"], value))
        return value == 7

    assert one(spec_of, field, "7", resolver=resolver) == (7, None)
    assert seen == [("customer", 7)]
    _, err = one(spec_of, field, "8", resolver=resolver)
    assert_bad(err, "No such customer (#8)", "客户（#8）不存在")
    _, err = one(spec_of, field, "seven")
    assert_bad(err, "Choose a record", "请从列表中选择记录")
    _, err = one(spec_of, field, "7", source="json")
    assert_bad(err, "id of a record", "必须是记录的 ID")
    _, err = one(spec_of, field, 0, source="json")
    assert_bad(err, "id of a record", "必须是记录的 ID")
    assert one(spec_of, field, 7, source="json") == (7, None)
    spec = spec_of({"key": "f", **field})
    assert spec.by_key["f"].display(7, "en") == "#7"


def test_heading_takes_no_input(spec_of) -> None:
    spec = spec_of({"key": "h", "type": "heading"}, {"key": "t", "type": "text"})
    assert not spec.by_key["h"].takes_input
    assert "h" not in spec.json_schema["properties"]
    bound = bind(spec, {"h": "ignored", "t": "x"})
    assert bound.values == {"t": "x"}
    bound = bind(spec, {"h": "x"}, source="json")
    assert bound.errors["h"][0]["message_zh"] == "未知字段“h”"
