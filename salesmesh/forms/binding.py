"""Binding a submission to a compiled form: convert every field, settle visibility and requiredness,
check constraints, and collect bilingual errors per field; plus `display_values` for reading a record.

`bind(spec, raw, source="form"|"json", now=...)` runs in this order: each input field's type converts
its raw input (HTML strings, lists and uploads, or typed JSON values) — a value that cannot be read is
an error at `/<field key>`; visibility is evaluated on the converted values (a hidden field is dropped
and never required, whatever was submitted); a visible empty field that is `required` or whose
`required_if` holds is an error; each remaining value gets its type's extra `check` (money bounds,
reference existence through the `resolver`) and then the form's compiled JSON Schema (lengths,
patterns, bounds, options). One field reports its first problem only. Read-only fields keep the
`existing` value whatever was submitted. JSON input naming a field the form does not have is an error;
HTML input ignores unknown names (CSRF token, buttons). A missing JSON key takes the field's default
(`apply_defaults`). Uploads of a valid submission are moved into the file store; those of an invalid
one are deleted.

Records keep the form version they were written with: bind and display with the spec of the pinned
version (`compile.spec_for_version_id`), and a record written under v1 still validates and displays
under v1 after v2 is published; keys of `data` the spec does not know are listed by `display_values` as
removed fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from salesmesh.forms.compile import FormSpec, FormState
from salesmesh.forms.fields import BindContext, FieldInvalid, Resolver
from salesmesh.forms.files import FileStore, PendingUpload
from salesmesh.metamodel.fastcheck import Uncertain
from salesmesh.metamodel.validation_errors import translate

REQUIRED = ("This field is required", "此项为必填项")
REMOVE_SUFFIX = "__remove"  # HTML name of the "remove this attachment" checkboxes: <key>__remove


@dataclass
class BoundForm:
    """The outcome of binding: clean values, errors per field key, and what the inputs should show."""

    spec: FormSpec
    values: dict[str, Any]
    errors: dict[str, list[dict[str, str]]]
    state: FormState
    redisplay: dict[str, Any] = field(default_factory=dict)
    stored_uploads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def error_list(self) -> list[dict[str, str]]:
        """Return every error as one list, in the order of the form's fields."""
        order = {f.key: i for i, f in enumerate(self.spec.fields)}
        out: list[dict[str, str]] = []
        for key in sorted(self.errors, key=lambda k: (order.get(k, len(order)), k)):
            out.extend(self.errors[key])
        return out


def _error(key: str, message: str, message_zh: str, path: str | None = None) -> dict[str, str]:
    return {"path": path if path is not None else "/" + key, "message": message, "message_zh": message_zh}


def bind(
    spec: FormSpec,
    raw: Mapping[str, Any],
    *,
    source: str = "form",
    now: datetime | None = None,
    resolver: Resolver | None = None,
    existing: Mapping[str, Any] | None = None,
    files: FileStore | None = None,
    tz: tzinfo = UTC,
    apply_defaults: bool = True,
) -> BoundForm:
    """Convert and validate a submission against a compiled form; see the module docstring."""
    if source not in ("form", "json"):
        raise ValueError("source must be 'form' or 'json'")
    existing = existing or {}
    ctx = BindContext(source=source, now=now, tz=tz, resolver=resolver, files=files)
    errors: dict[str, list[dict[str, str]]] = {}
    converted: dict[str, Any] = {}
    redisplay: dict[str, Any] = {}
    if not isinstance(raw, Mapping):
        errors[""] = [
            _error("", "Must be a JSON object of field values", "必须是由字段值组成的 JSON 对象", "")
        ]
        raw = {}
    elif source == "json":
        for key in raw:
            known = spec.by_key.get(key)
            if known is None or not known.takes_input:
                errors[str(key)] = [_error(str(key), f"Unknown field '{key}'", f"未知字段“{key}”")]
    getlist = getattr(raw, "getlist", None) if source == "form" else None
    json_defaults = source == "json" and apply_defaults
    for f in spec.input_fields:
        key = f.key
        ftype = f.type
        if f.read_only:
            if existing.get(key) is not None:
                converted[key] = existing[key]
            continue
        if getlist is not None and ftype.multiple:
            raw_value = getlist(key)
        elif key in raw:
            raw_value = raw[key]
        elif json_defaults and f.default is not None:
            raw_value = f.default
        else:
            raw_value = None
        if ftype.uploads:
            ctx.existing = existing.get(key)
            ctx.removed = tuple(getlist(key + REMOVE_SUFFIX)) if getlist is not None else ()
        try:
            value = ftype.convert(raw_value, f, ctx)
        except FieldInvalid as exc:
            errors[key] = [_error(key, exc.message, exc.message_zh)]
            redisplay[key] = raw_value
            continue
        if value is not None:
            converted[key] = value
        redisplay[key] = value
    state = spec.state(converted, now)
    hidden, required = state.hidden, state.required
    values: dict[str, Any] = {}
    for f in spec.input_fields:
        key = f.key
        if key in hidden:
            errors.pop(key, None)  # a hidden field is ignored, including what could not be read
            continue
        if key in errors:
            continue
        value = converted.get(key)
        if value is None:
            if key in required and not f.read_only:
                errors[key] = [_error(key, *REQUIRED)]
            continue
        if not f.read_only:
            try:
                f.type.check(value, f, ctx)
            except FieldInvalid as exc:
                errors[key] = [_error(key, exc.message, exc.message_zh)]
                continue
        values[key] = value
    for schema_error in () if _surely_valid(spec, values) else spec.validator.iter_errors(values):
        for problem in translate(schema_error):
            key = problem.path.split("/")[1] if problem.path.count("/") else ""
            if key not in errors:
                errors[key] = [problem.to_dict()]
                values.pop(key, None)
    pending = _settle_uploads(ctx.uploads, files, values, errors)
    return BoundForm(
        spec=spec, values=values, errors=errors, state=state, redisplay=redisplay, stored_uploads=pending
    )


def _surely_valid(spec: FormSpec, values: dict[str, Any]) -> bool:
    """Ask the compiled is-valid shortcut; False means "run the validator" (invalid or undecided)."""
    if spec.fast_check is None:
        return False
    try:
        return spec.fast_check(values)
    except (Uncertain, TypeError, ValueError, RecursionError):
        return False


def _settle_uploads(
    uploads: list[PendingUpload], files: FileStore | None, values: dict[str, Any], errors: dict[str, Any]
) -> list[dict[str, Any]]:
    """Store the uploads of a valid submission (whose field kept them); delete all others."""
    if not uploads or files is None:
        return []
    if errors:
        files.discard(uploads)
        return []
    keep, drop = [], []
    for item in uploads:
        ids = {d.get("id") for d in values.get(item.field) or [] if isinstance(d, dict)}
        (keep if item.descriptor["id"] in ids else drop).append(item)
    files.discard(drop)
    files.commit(keep)
    return [item.descriptor for item in keep]


def validate_data(
    spec: FormSpec, data: Mapping[str, Any], *, now: datetime | None = None, resolver: Resolver | None = None
) -> dict[str, list[dict[str, str]]]:
    """Check stored record data (JSON) against a form version; return errors per field ({} when valid)."""
    return bind(spec, data, source="json", now=now, resolver=resolver, apply_defaults=False).errors


# --- display ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayEntry:
    """One value of a record for reading: a field of the form, or a key the form no longer has."""

    key: str
    label: Mapping[str, str]
    text: str
    value: Any
    type: str | None
    section: str | None
    removed: bool = False
    hidden: bool = False


def _plain(value: Any, locale: str) -> str:
    """Show a value of a field the form no longer defines."""
    if isinstance(value, bool):
        return ("是" if value else "否") if locale == "zh" else ("Yes" if value else "No")
    if isinstance(value, list):
        return ("、" if locale == "zh" else ", ").join(_plain(v, locale) for v in value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("label") or value)
    return "" if value is None else str(value)


def display_values(
    spec: FormSpec,
    data: Mapping[str, Any],
    locale: str,
    *,
    tz: tzinfo | None = None,
    names: Mapping[tuple[str, int], str] | None = None,
    now: datetime | None = None,
) -> list[DisplayEntry]:
    """List a record's values for reading in `locale`: every input field in form order (hidden ones
    flagged), then keys of `data` the form does not define, flagged as removed fields. `names` maps
    (reference target, id) to the text to show for reference fields."""
    data = data or {}
    state = spec.state(data, now)
    entries: list[DisplayEntry] = []
    for f in spec.fields:
        if not f.takes_input:
            continue
        value = data.get(f.key)
        text = f.display(value, locale, tz)
        if names and f.reference and value is not None:
            text = names.get((f.reference.get("target", ""), value), text)
        entries.append(
            DisplayEntry(
                key=f.key,
                label=f.label,
                text=text,
                value=value,
                type=f.type.name,
                section=f.section,
                hidden=f.key in state.hidden,
            )
        )
    for key, value in data.items():
        if key in spec.by_key:
            continue
        entries.append(
            DisplayEntry(
                key=key,
                label={"en": key, "zh": key},
                text=_plain(value, locale),
                value=value,
                type=None,
                section=None,
                removed=True,
            )
        )
    return entries
