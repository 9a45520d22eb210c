"""The field-type registry and the compiled shape of one form field.

A `FieldType` owns everything type-specific about a field: its JSON Schema fragment (merged into the
form's submission schema), `convert()` from HTML form input (strings, lists, uploads) or JSON API input
to a typed JSON-safe value, an optional `check()` for constraints a JSON Schema cannot express, the name
of its Jinja macro in `forms/fields.html`, the string an input shows (`input_value`) and `display()`
for reading. A `FieldSpec` is one field of a compiled form: its settings from the definition, its type
and its compiled conditions. The built-in types live in `field_types` and register the same way a
plugin's would, via `register_field_type`; a duplicate name fails at registration (start-up).
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import cached_property
from typing import Any, ClassVar

from markupsafe import Markup, escape

# A resolver tells whether a reference field's id names an existing record the actor may use.
Resolver = Callable[["FieldSpec", int], bool]


def html_attrs(attrs: Mapping[str, Any]) -> Markup:
    """Render HTML attributes, each with a leading space (True: bare attribute; None/False: left out)."""
    parts = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(f" {name}")
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            parts.append(f' {name}="{escape(str(value))}"')
    return Markup("".join(parts))


class FieldInvalid(ValueError):
    """One input could not be converted or checked; bilingual message."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh


class DuplicateFieldType(ValueError):
    """A field type of that name is already registered."""


class UnknownFieldType(KeyError):
    """No field type of that name is registered."""


@dataclass
class BindContext:
    """What a conversion may need besides the raw value: where it came from and the request's world."""

    source: str = "form"  # "form" (HTML strings/lists/uploads) or "json" (typed JSON values)
    now: datetime | None = None
    tz: tzinfo = UTC  # the zone a date-time without offset is read in
    resolver: Resolver | None = None
    files: Any = None  # a forms.files.FileStore for uploads (None: uploads are refused)
    existing: Any = None  # the value stored before this submission (edits)
    removed: tuple[str, ...] = ()  # attachment ids the form asked to remove
    uploads: list[Any] = field(default_factory=list)  # pending uploads collected by file fields


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One field of a compiled form: the definition's settings, typed, plus compiled conditions."""

    key: str
    type: FieldType
    label: Mapping[str, str]
    section: str
    help: Mapping[str, str] | None = None
    placeholder: Mapping[str, str] | None = None
    required: bool = False
    read_only: bool = False
    show_in_list: bool = False
    searchable: bool = False
    default: Any = None
    options: tuple[tuple[str, Mapping[str, str]], ...] = ()
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    currency: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    max_selected: int | None = None
    reference: Mapping[str, Any] | None = None
    file: Mapping[str, Any] | None = None
    visible_if: Any = None  # a compiled Condition, or None (always visible)
    required_if: Any = None
    visible_if_json: str | None = None  # the rule as compact JSON, for the browser's data attributes
    required_if_json: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict)  # the field as written in the definition

    @property
    def takes_input(self) -> bool:
        return self.type.takes_input

    @property
    def macro(self) -> str:
        return self.type.macro

    @cached_property
    def wrapper_attrs(self) -> Markup:
        """The static attributes of the field's wrapper <div> (what forms.js reads), computed once."""
        return html_attrs(
            {
                "class": f"field field-{self.type.name}",
                "data-field": self.key,
                "data-type": self.type.name,
                "data-visible-if": self.visible_if_json,
                "data-required-if": self.required_if_json,
                "data-required": "true" if self.required and self.takes_input else None,
            }
        )

    @cached_property
    def control_attrs(self) -> Markup:
        """The static attributes of the field's main control (id, name and the type's own), computed once."""
        return html_attrs({"id": "f-" + self.key, "name": self.key, **self.type.control_attributes(self)})

    @property
    def step(self) -> str:
        """Return the HTML `step` of a number input: 'any', '1' or '0.01' for two decimals."""
        if self.decimals is None:
            return "any"
        return "1" if self.decimals == 0 else "0." + "0" * (self.decimals - 1) + "1"

    def option_label(self, value: Any) -> Mapping[str, str] | None:
        """Return the bilingual label of an option value, or None when it is not an option."""
        for opt_value, opt_label in self.options:
            if opt_value == value:
                return opt_label
        return None

    def input_value(self, value: Any, tz: tzinfo | None = None) -> Any:
        """Return what the field's input shows for `value` (typed, or the text a user typed)."""
        return self.type.input_value(value, self, tz or UTC)

    def display(self, value: Any, locale: str, tz: tzinfo | None = None) -> str:
        """Return `value` as text for reading in `locale`."""
        if value is None or value == [] or value == "":
            return ""
        return self.type.display(value, self, locale, tz or UTC)


class FieldType:
    """Base of every field type; subclasses set `name` and `macro` and override what differs."""

    name: ClassVar[str] = ""
    macro: ClassVar[str] = ""
    takes_input: ClassVar[bool] = True
    # True when HTML form data carries several values under the field's name (read with getlist()).
    multiple: ClassVar[bool] = False
    # True when the value comes from uploaded files (request.files) rather than text inputs.
    uploads: ClassVar[bool] = False
    # For types rendered by the generic `text_input` macro: the <input type>, its inputmode and
    # autocomplete hints, and whether a stored value must go through `input_value` before it is shown.
    input_type: ClassVar[str] = "text"
    input_mode: ClassVar[str | None] = None
    autocomplete: ClassVar[str | None] = None
    formats_input: ClassVar[bool] = False

    def schema(self, spec: FieldSpec) -> dict[str, Any] | None:
        """Return the JSON Schema fragment of a value of this field (None: the field stores nothing)."""
        return {}

    def control_attributes(self, spec: FieldSpec) -> dict[str, Any]:
        """Return the static HTML attributes of the field's control besides id and name."""
        return {
            "type": self.input_type,
            "inputmode": self.input_mode,
            "autocomplete": self.autocomplete,
            "maxlength": spec.max_length,
            "readonly": spec.read_only,
        }

    def convert(self, raw: Any, spec: FieldSpec, ctx: BindContext) -> Any:
        """Turn raw input into a typed JSON-safe value (None when empty), or raise FieldInvalid."""
        return raw

    def check(self, value: Any, spec: FieldSpec, ctx: BindContext) -> None:
        """Raise FieldInvalid for a constraint the JSON Schema cannot express (runs after convert)."""

    def input_value(self, value: Any, spec: FieldSpec, tz: tzinfo) -> Any:
        """Return what an input shows for a stored value (or for the text a user typed)."""
        return "" if value is None else value

    def display(self, value: Any, spec: FieldSpec, locale: str, tz: tzinfo) -> str:
        """Return a stored (non-empty) value as readable text."""
        return str(value)


def x_message(en: str, zh: str) -> dict[str, str]:
    """Return a bilingual `x-messages` entry for a schema keyword."""
    return {"en": en, "zh": zh}


def raw_text(raw: Any, ctx: BindContext) -> str | None:
    """Return raw input as a stripped string (None when empty), refusing non-text JSON."""
    if raw is None:
        return None
    if isinstance(raw, list | tuple) and ctx.source == "form":
        raw = raw[0] if raw else ""
    if not isinstance(raw, str):
        raise FieldInvalid("Must be text", "必须是文本")
    text = raw.strip()
    return text or None


_REGISTRY: dict[str, FieldType] = {}
_LOCK = threading.Lock()
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("salesmesh.forms.field_types")


def register_field_type(field_type: FieldType) -> FieldType:
    """Add a field type to the registry; a duplicate name raises DuplicateFieldType."""
    if not field_type.name or not field_type.macro:
        raise ValueError(f"{type(field_type).__name__} needs a name and a macro")
    _load_builtins()
    with _LOCK:
        if field_type.name in _REGISTRY:
            raise DuplicateFieldType(f"field type {field_type.name!r} is already registered")
        _REGISTRY[field_type.name] = field_type
    return field_type


def unregister_field_type(name: str) -> None:
    """Remove a field type (tests and plugin unloading)."""
    with _LOCK:
        _REGISTRY.pop(name, None)


def get_field_type(name: str) -> FieldType:
    """Return the registered field type called `name`, or raise UnknownFieldType."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFieldType(name) from None


def field_types() -> dict[str, FieldType]:
    """Return every registered field type by name."""
    _load_builtins()
    return dict(_REGISTRY)
