"""Phone numbers to E.164 (`+<country><number>`), with mainland China (+86) as the default country.

A small, careful normaliser rather than a library: full-width characters are folded (NFKC), the usual
separators (spaces, `-`, `.`, `/`, brackets) are dropped, `00` and `+` mark an international number and
`+86 (0)10 …` loses its trunk zero. Numbers without a country are read as Chinese: mobiles
(`1[3-9]` + 9 digits), landlines with their trunk `0` and area code (`010`/`02x` + 8 digits, other
3-digit area codes + 7 or 8 digits) and `400`/`800` service numbers (10 digits). Chinese numbers are
checked against those shapes; other countries only against E.164's length (8-15 digits, a country code
not starting with 0). Extensions and letters are refused: a stored phone number must be dialable.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-./()\u2010-\u2015]+")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"(?:10|2\d)\d{8}|[3-9]\d{2}\d{7,8}")
_SERVICE = re.compile(r"[48]00\d{7}")


class PhoneInvalid(ValueError):
    """The text is not a phone number we can store; `.message` / `.message_zh` say why."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh


def _chinese(national: str) -> str:
    """Return +86 and the national number (without trunk 0), or raise PhoneInvalid."""
    if _MOBILE.fullmatch(national) or _SERVICE.fullmatch(national) or _LANDLINE.fullmatch(national):
        return "+86" + national
    if len(national) in (7, 8):
        raise PhoneInvalid(
            "Add the area code to a landline number, e.g. 010-12345678",
            "固定电话请加区号，例如 010-12345678",
        )
    if national.startswith("1") and len(national) != 11:
        raise PhoneInvalid("A mobile number has 11 digits", "手机号码应为 11 位数字")
    raise PhoneInvalid("Not a valid Chinese phone number", "不是有效的中国电话号码")


def normalize_phone(text: str, default_country: str = "86") -> str:
    """Return `text` as an E.164 number (+86 when it names no country), or raise PhoneInvalid."""
    raw = unicodedata.normalize("NFKC", text).strip()
    if not raw:
        raise PhoneInvalid("Enter a phone number", "请输入电话号码")
    if re.search(r"(?i)ext|转|分机|#|x\s*\d", raw):
        raise PhoneInvalid(
            "Extensions cannot be stored in a phone number; note them separately",
            "电话号码中不能包含分机号，请另行备注",
        )
    compact = _SEPARATORS.sub("", raw.replace("(0)", ""))
    international = compact.startswith("+")
    digits = compact[1:] if international else compact
    if not digits.isdigit() or not digits.isascii():
        raise PhoneInvalid(
            "A phone number may contain only digits, spaces, '-' and a leading '+'",
            "电话号码只能包含数字、空格、“-”以及开头的“+”",
        )
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    if not international and digits.startswith("86") and len(digits) == 13 and _MOBILE.fullmatch(digits[2:]):
        international = True
    if not international:
        if default_country != "86":
            return _international(default_country + digits.lstrip("0"))
        return _chinese(digits[1:] if digits.startswith("0") else digits)
    return _international(digits)


def _international(digits: str) -> str:
    if digits.startswith("86"):
        national = digits[2:]
        return _chinese(national[1:] if national.startswith("0") else national)
    if not digits or digits[0] == "0":
        raise PhoneInvalid("A country code cannot start with 0", "国家代码不能以 0 开头")
    if not 8 <= len(digits) <= 15:
        raise PhoneInvalid(
            "An international number has 8 to 15 digits including the country code",
            "国际号码（含国家代码）应为 8 至 15 位数字",
        )
    return "+" + digits


def format_phone(e164: str) -> str:
    """Group an E.164 number for reading (+86 138 1234 5678); other numbers are shown as stored."""
    if not e164.startswith("+86"):
        return e164
    national = e164[3:]
    if _MOBILE.fullmatch(national):
        return f"+86 {national[:3]} {national[3:7]} {national[7:]}"
    if _SERVICE.fullmatch(national):
        return f"+86 {national[:3]} {national[3:6]} {national[6:]}"
    area = 2 if national[0] in "12" else 3
    return f"+86 {national[:area]} {national[area:]}"
