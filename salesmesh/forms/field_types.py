"""The built-in field types: text, long_text, number, money, date, datetime, select, multi_select,
boolean, phone, email, url, reference, file and heading (the picked ones — select, multi_select, boolean,
reference, file — and heading are defined in `picker_types`). They register here, at import, exactly as a
plugin's types would.

Stored (JSON-safe) values, per type: text types → trimmed strings (phone → E.164 such as
`+8613812345678`, email → lowercase, url → an http(s) URL); number → a JSON number (an integer when
`decimals` is 0 or the value is whole); money → a **string decimal** with exactly `decimals` places
(default 2), e.g. `"1234.50"`, so amounts are exact and JsonLogic comparisons with numbers still work;
date → `YYYY-MM-DD`; datetime → UTC `YYYY-MM-DDTHH:MM:SSZ` (input without an offset is read in the
binding's time zone); select → the option value; multi_select → a list of option values; boolean →
true/false; reference → the integer id of the record; file → a list of attachment descriptors
`{id (sha256 of the content), name, size, type, content_type}`. Empty input is None (not stored).
Constraints a JSON Schema can express (lengths, patterns, bounds, options) live in each type's schema
fragment with bilingual `x-messages`; `convert` only parses.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from salesmesh.forms.fields import (
    BindContext,
    FieldInvalid,
    FieldSpec,
    FieldType,
    raw_text,
    register_field_type,
    x_message,
)
from salesmesh.forms.phones import PhoneInvalid, format_phone, normalize_phone
from salesmesh.forms.picker_types import (
    BooleanType,
    FileType,
    HeadingType,
    MultiSelectType,
    ReferenceType,
    SelectType,
)
from salesmesh.metamodel.patterns import MAX_PATTERN_INPUT

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")


# --- text ------------------------------------------------------------------------------------------


class TextType(FieldType):
    name = "text"
    macro = "text_input"
    default_max_length = 1000
    multiline = False

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        frag: dict[str, Any] = {"type": "string", "maxLength": spec.max_length or self.default_max_length}
        if spec.min_length:
            frag["minLength"] = spec.min_length
        if spec.pattern is not None:
            frag["pattern"] = spec.pattern.pattern
            frag["x-messages"] = {
                "pattern": x_message("Does not have the expected format", "格式不正确"),
            }
        return frag

    def clean(self, text: str, spec: FieldSpec, ctx: BindContext) -> str:
        """Normalise a non-empty text (the e-mail, phone and URL types override this)."""
        return text

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        text = raw_text(raw, ctx)
        if text is None:
            return None
        if self.multiline:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if _CONTROL.search(text):
                raise FieldInvalid("Contains control characters", "包含控制字符")
        elif _CONTROL_LINE.search(text):
            raise FieldInvalid(
                "Must be a single line without control characters", "必须为单行文本且不含控制字符"
            )
        limit = spec.max_length or self.default_max_length
        if spec.pattern is not None and len(text) > MAX_PATTERN_INPUT:
            # Never run a user-defined pattern on long input (bounded backtracking, see patterns.py).
            limit = min(limit, MAX_PATTERN_INPUT)
        if len(text) > limit:
            raise FieldInvalid(f"Must be at most {limit} characters long", f"长度不能超过 {limit} 个字符")
        return self.clean(text, spec, ctx)


class LongTextType(TextType):
    name = "long_text"
    macro = "textarea"
    default_max_length = 20000
    multiline = True

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        return {"rows": 4, "maxlength": spec.max_length, "readonly": spec.read_only}


class PhoneType(TextType):
    name = "phone"
    macro = "text_input"
    input_type = "tel"
    autocomplete = "tel"
    default_max_length = 40

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        frag = super().schema(spec)
        frag["maxLength"] = min(frag["maxLength"], 16)
        return frag

    def clean(self, text: str, spec: FieldSpec, ctx: BindContext) -> str:
        try:
            return normalize_phone(text)
        except PhoneInvalid as exc:
            raise FieldInvalid(exc.message, exc.message_zh) from None

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        return format_phone(str(value))


_EMAIL_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _ascii_domain(domain: str) -> str | None:
    """Return the ASCII (punycode) form of a domain name, or None when it is not one."""
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(part) for part in labels):
        return None
    if labels[-1].isdigit():
        return None
    return domain


class EmailType(TextType):
    name = "email"
    macro = "text_input"
    input_type = "email"
    autocomplete = "email"
    default_max_length = 254

    def clean(self, text: str, spec: FieldSpec, ctx: BindContext) -> str:
        address = unicodedata.normalize("NFKC", text).lower()
        local, at, domain = address.rpartition("@")
        if not at or not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
            raise FieldInvalid("Not a valid e-mail address", "不是有效的电子邮件地址")
        if _ascii_domain(domain) is None:
            raise FieldInvalid("Not a valid e-mail address", "不是有效的电子邮件地址")
        return address


class UrlType(TextType):
    name = "url"
    macro = "text_input"
    input_type = "url"
    default_max_length = 2048

    def clean(self, text: str, spec: FieldSpec, ctx: BindContext) -> str:
        bad = FieldInvalid(
            "Must be a web address starting with http:// or https://",
            "必须是以 http:// 或 https:// 开头的网址",
        )
        if any(ch.isspace() for ch in text):
            raise bad
        if "://" not in text and re.match(r"[\w-]+(\.[\w-]+)+(/|$|:|\?|#)", text):
            text = "https://" + text  # "www.example.com" means the website
        try:
            parts = urlsplit(text)
            if parts.port is not None and not 0 < parts.port < 65536:
                raise bad
        except ValueError:
            raise bad from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise bad
        if "@" in parts.netloc:
            raise FieldInvalid(
                "A web address must not contain a user name or password", "网址中不能包含用户名或密码"
            )
        host = parts.hostname
        ip_like = re.fullmatch(r"[0-9.]+|[0-9a-f:]+", host) is not None
        if not ip_like and host != "localhost" and _ascii_domain(host) is None:
            raise bad
        return urlunsplit(
            (parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment)
        )


# --- numbers ---------------------------------------------------------------------------------------


_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


def _decimal(raw: Any, ctx: BindContext, *, money: bool = False) -> Decimal | None:
    """Parse form text or a JSON number into a finite Decimal (None when empty)."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise FieldInvalid("Must be a number", "必须是数字")
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise FieldInvalid("Must be a finite number", "必须是有限的数字")
        return Decimal(str(raw))
    if ctx.source == "json" and not money:
        raise FieldInvalid("Must be a number", "必须是数字")
    text = raw_text(raw, ctx)
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", text).replace(" ", "")
    if money:
        text = re.sub(r"^(?:[A-Z]{3}|[¥$€£])", "", text)
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if len(text) > 40 or not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        raise FieldInvalid("Must be a number", "必须是数字")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise FieldInvalid("Must be a number", "必须是数字") from None


def _places(value: Decimal) -> int:
    """Return how many decimal places a number really uses (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _places_error(decimals: int) -> FieldInvalid:
    if decimals == 0:
        return FieldInvalid("Must be a whole number", "必须是整数")
    return FieldInvalid(f"Use at most {decimals} decimal places", f"最多保留 {decimals} 位小数")


def _bounds(frag: dict[str, Any], spec: FieldSpec) -> dict[str, Any]:
    if spec.min is not None:
        frag["minimum"] = spec.min
    if spec.max is not None:
        frag["maximum"] = spec.max
    return frag


class NumberType(FieldType):
    name = "number"
    macro = "text_input"
    input_type = "number"

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        attrs = super().control_attributes(spec)
        attrs.update(step=spec.step, min=spec.min, max=spec.max)
        return attrs

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return _bounds({"type": "integer" if spec.decimals == 0 else "number"}, spec)

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        value = _decimal(raw, ctx)
        if value is None:
            return None
        if spec.decimals is not None and _places(value) > spec.decimals:
            raise _places_error(spec.decimals)
        if value == value.to_integral_value():
            if abs(value) >= Decimal(10) ** 18:
                raise FieldInvalid("Number is too large", "数字过大")
            return int(value)
        return float(value)

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        return "" if value is None else str(value)

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
        if isinstance(value, int):
            return f"{value:,}"
        places = spec.decimals if spec.decimals is not None else len(repr(value).split(".")[-1])
        return f"{value:,.{places}f}"


_CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$", "JPY": "JP¥"}


class MoneyType(FieldType):
    name = "money"
    macro = "text_input"
    input_mode = "decimal"
    max_digits = 15

    def places(self, spec: FieldSpec) -> int:
        return 2 if spec.decimals is None else spec.decimals

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        places = self.places(spec)
        fraction = rf"\.[0-9]{{{places}}}" if places else ""
        return {
            "type": "string",
            "pattern": rf"^-?(0|[1-9][0-9]{{0,{self.max_digits - 1}}}){fraction}$",
            "x-messages": {"pattern": x_message("Must be an amount", "必须是金额")},
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        value = _decimal(raw, ctx, money=True)
        if value is None:
            return None
        places = self.places(spec)
        if _places(value) > places:
            raise _places_error(places)
        value = value.quantize(Decimal(1).scaleb(-places))
        if value == 0:
            value = value.copy_abs()  # never store "-0.00"
        if value.adjusted() >= self.max_digits:
            raise FieldInvalid("Amount is too large", "金额过大")
        return format(value, "f")

    def check(self, value: Any, spec: FieldSpec, ctx: BindContext) -> None:
        amount = Decimal(value)
        if spec.min is not None and amount < Decimal(str(spec.min)):
            low = _number_text(spec.min)
            raise FieldInvalid(f"Must be at least {low}", f"不能小于 {low}")
        if spec.max is not None and amount > Decimal(str(spec.max)):
            high = _number_text(spec.max)
            raise FieldInvalid(f"Must be at most {high}", f"不能大于 {high}")

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        text = f"{amount:,.{self.places(spec)}f}"
        if not spec.currency:
            return text
        symbol = _CURRENCY_SYMBOLS.get(spec.currency)
        return f"{symbol}{text}" if symbol else f"{spec.currency} {text}"


# --- dates -----------------------------------------------------------------------------------------

_DATE_INPUT = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")


class DateType(FieldType):
    name = "date"
    macro = "text_input"
    input_type = "date"

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return {
            "type": "string",
            "format": "date",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "x-messages": {
                "pattern": x_message("Must be a date written as YYYY-MM-DD", "日期格式须为 YYYY-MM-DD")
            },
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        text = raw_text(raw, ctx)
        if text is None:
            return None
        text = unicodedata.normalize("NFKC", text).replace(" ", "")
        match = _DATE_INPUT.fullmatch(text)
        if match is None or (ctx.source == "json" and len(text) != 10):
            raise FieldInvalid("Must be a date written as YYYY-MM-DD", "日期格式须为 YYYY-MM-DD")
        try:
            return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        except ValueError:
            raise FieldInvalid("Not a valid date", "不是有效的日期") from None

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            return str(value)
        return f"{day.year}年{day.month}月{day.day}日" if locale == "zh" else day.isoformat()


def _parse_datetime(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None


class DateTimeType(FieldType):
    name = "datetime"
    macro = "text_input"
    input_type = "datetime-local"
    formats_input = True

    def schema(self, spec: FieldSpec) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
            "x-messages": {"pattern": x_message("Must be a date and time", "必须是日期时间")},
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        text = raw_text(raw, ctx)
        if text is None:
            return None
        moment = _parse_datetime(unicodedata.normalize("NFKC", text)) if len(text) <= 40 else None
        if moment is None or len(text) < 16:
            raise FieldInvalid(
                "Must be a date and time such as 2026-03-02 09:30", "必须是日期时间，例如 2026-03-02 09:30"
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ctx.tz)
        return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        moment = _parse_datetime(str(value)) if value else None
        if moment is None or moment.tzinfo is None:
            return "" if value is None else value
        return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        moment = _parse_datetime(str(value))
        if moment is None or moment.tzinfo is None:
            return str(value)
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


BUILTIN_TYPES = (
    TextType(),
    LongTextType(),
    NumberType(),
    MoneyType(),
    DateType(),
    DateTimeType(),
    SelectType(),
    MultiSelectType(),
    BooleanType(),
    PhoneType(),
    EmailType(),
    UrlType(),
    ReferenceType(),
    FileType(),
    HeadingType(),
)

for _builtin in BUILTIN_TYPES:
    register_field_type(_builtin)
