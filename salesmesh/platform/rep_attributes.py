"""Rep attributes as data: read the published `rep_attributes` definition and check values against it.

Ops decide which attributes reps have (years of medical background, skills, seniority, regions, ...)
by publishing a `rep_attributes` definition whose document lists `attributes: [{key, label, type,
options?, min?, max?, required?}]` with type integer | number | string | boolean | enum | string_list.
`validate_attributes` checks a user's values against it and returns errors as `{path:
"/attributes/<key>", message, message_zh}`; `parse_attribute_inputs` turns HTML form text into typed
values first. Without a published definition, attributes are accepted as plain JSON scalars or lists.
This module also owns `field_error`, the bilingual error item every account service returns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.i18n import gettext

ATTRIBUTE_TYPES = ("integer", "number", "string", "boolean", "enum", "string_list")
MAX_ATTRIBUTES = 100
MAX_STRING = 500
MAX_ITEMS = 300
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # team keys
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # attribute keys, as in the definition schema


def field_error(path: str, message: str, **params: Any) -> dict[str, str]:
    """Build one error item {path, message, message_zh} from an English message id and its params."""
    return {
        "path": path,
        "message": gettext(message, "en", **params),
        "message_zh": gettext(message, "zh", **params),
    }


@dataclass(frozen=True)
class AttributeSchema:
    """The published rep-attributes definition: its version id and attribute specs by key."""

    version_id: int
    attributes: tuple[Mapping[str, Any], ...]

    def spec(self, key: str) -> Mapping[str, Any] | None:
        """Return the spec of attribute `key`, or None when it is not defined."""
        return next((a for a in self.attributes if a.get("key") == key), None)


def published_attribute_schema(session: Session) -> AttributeSchema | None:
    """Return the newest published `rep_attributes` definition, or None when none is published."""
    row = session.execute(
        select(DefinitionVersion.id, DefinitionVersion.document)
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(Definition.kind == "rep_attributes", DefinitionVersion.status == "published")
        .order_by(DefinitionVersion.published_at.desc(), DefinitionVersion.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    attrs = row.document.get("attributes") if isinstance(row.document, Mapping) else None
    specs = tuple(a for a in (attrs or []) if isinstance(a, Mapping) and isinstance(a.get("key"), str))
    return AttributeSchema(version_id=row.id, attributes=specs)


def option_values(spec: Mapping[str, Any]) -> list[Any]:
    """Return the allowed values of an enum/string_list attribute (options may be plain or {value})."""
    values = []
    for opt in spec.get("options") or []:
        if isinstance(opt, Mapping):
            values.append(opt.get("value", opt.get("key")))
        else:
            values.append(opt)
    return values


def _check_value(spec: Mapping[str, Any], value: Any, path: str) -> list[dict[str, str]]:
    kind = spec.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [field_error(path, "Must be a whole number.")]
    elif kind == "number":
        # NaN and infinities ("1e999" in a form, NaN in CLI JSON) are not JSON: PostgreSQL would refuse them.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return [field_error(path, "Must be a number.")]
    elif kind == "string":
        if not isinstance(value, str):
            return [field_error(path, "Must be text.")]
        limit = spec.get("max_length") or MAX_STRING
        if len(value) > limit:
            return [field_error(path, "Too long (at most %(n)s characters).", n=limit)]
    elif kind == "boolean":
        if not isinstance(value, bool):
            return [field_error(path, "Must be true or false.")]
    elif kind == "enum":
        if value not in option_values(spec):
            return [
                field_error(
                    path, "Must be one of: %(options)s.", options=", ".join(map(str, option_values(spec)))
                )
            ]
    elif kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return [field_error(path, "Must be a list of text values.")]
        limit = spec.get("max_items") or MAX_ITEMS
        if len(value) > limit:
            return [field_error(path, "Too many values (at most %(n)s).", n=limit)]
        if any(len(v) > 200 for v in value):
            return [field_error(path, "Each value is at most %(n)s characters.", n=200)]
        allowed = option_values(spec)
        bad = [v for v in value if allowed and v not in allowed]
        if bad:
            return [
                field_error(
                    path,
                    "Unknown values %(values)s (allowed: %(options)s).",
                    values=", ".join(bad),
                    options=", ".join(map(str, allowed)),
                )
            ]
    else:
        return [field_error(path, "The definition gives an unknown type %(type)s.", type=repr(kind))]
    if kind in ("integer", "number"):
        if spec.get("min") is not None and value < spec["min"]:
            return [field_error(path, "Must be at least %(min)s.", min=spec["min"])]
        if spec.get("max") is not None and value > spec["max"]:
            return [field_error(path, "Must be at most %(max)s.", max=spec["max"])]
    return []


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


# Roles that take leads: rep attributes describe them, so only their required attributes must be set.
ROLES_WITH_ATTRIBUTES = ("rep", "lead")


def validate_attributes(
    schema: AttributeSchema | None, attributes: Any, *, require: bool = True
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Check rep attributes against the published definition; return (clean values, errors)."""
    if not isinstance(attributes, Mapping):
        return {}, [field_error("/attributes", "Attributes must be an object.")]
    if len(attributes) > MAX_ATTRIBUTES:
        return {}, [field_error("/attributes", "Too many attributes (at most %(n)s).", n=MAX_ATTRIBUTES)]
    errors: list[dict[str, str]] = []
    clean: dict[str, Any] = {}
    if schema is None:
        # No published definition yet: keep plain JSON values and short lists of them.
        for key, value in attributes.items():
            path = f"/attributes/{key}"
            scalar = (str, int, float, bool)
            if not isinstance(key, str) or not NAME_RE.match(key):
                errors.append(field_error(path, "Attribute names start with a-z and use a-z, 0-9 and _."))
            elif (
                isinstance(value, list)
                and all(isinstance(v, scalar) and _finite(v) for v in value)
                and len(value) <= 100
            ):
                clean[key] = list(value)
            elif value is None or (isinstance(value, scalar) and _finite(value)):
                clean[key] = value
            else:
                errors.append(field_error(path, "Must be text, a number, true/false or a list of those."))
        return clean, errors
    for key, value in attributes.items():
        path = f"/attributes/{key}"
        spec = schema.spec(key)
        if spec is None:
            errors.append(field_error(path, "Unknown attribute (not in the published rep attributes)."))
        elif value is None or value == [] or value == "":
            continue
        else:
            problems = _check_value(spec, value, path)
            errors.extend(problems)
            if not problems:
                clean[key] = value
    for spec in schema.attributes:
        if (
            require
            and spec.get("required")
            and spec["key"] not in clean
            and not any(e["path"] == f"/attributes/{spec['key']}" for e in errors)
        ):
            errors.append(field_error(f"/attributes/{spec['key']}", "Required."))
    return clean, errors


def parse_attribute_inputs(schema: AttributeSchema, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list]:
    """Turn form text (str or list of str per key) into typed attribute values; return (values, errors)."""
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for spec in schema.attributes:
        key, kind = spec["key"], spec.get("type")
        path = f"/attributes/{key}"
        given = raw.get(key)
        if kind == "boolean":
            values[key] = given not in (None, "", [], "0", "false", "off")
            continue
        if kind == "string_list":
            items = given if isinstance(given, list) else str(given or "").split(",")
            values[key] = [s.strip() for s in items if isinstance(s, str) and s.strip()]
            continue
        text = given[0] if isinstance(given, list) and given else given or ""
        text = str(text).strip()
        if text == "":
            continue
        if kind == "integer":
            try:
                values[key] = int(text)
            except ValueError:
                errors.append(field_error(path, "Must be a whole number."))
        elif kind == "number":
            try:
                values[key] = float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                errors.append(field_error(path, "Must be a number."))
        else:
            values[key] = text
    return values, errors
