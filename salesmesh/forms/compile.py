"""Compiling a form definition version into a `FormSpec`: ordered sections of typed fields with their
settings, compiled JsonLogic conditions (`visible_if`, `required_if`), a Draft 2020-12 JSON Schema of a
submission and its compiled validator, and the order in which visibility conditions are evaluated.

Compilation happens once per version: `compile_form` caches by (version id, checksum) — a published or
archived version is immutable, so its id alone finds it again (`spec_for_version_id` needs no query);
a draft's checksum changes on every save. The document is validated (and upgraded to the current
schema_version) first, field patterns must pass `patterns.check_pattern`, and every problem comes back
in `FormCompileError.errors` as `{path, message, message_zh}` with the JSON pointer into the document.

Visibility: a hidden field's value counts as absent in every condition, and a hidden section hides its
fields. Conditions are evaluated in dependency order, so one pass settles them; forms whose conditions
depend on each other in a cycle fall back to the rule the browser script uses for every form: start
with everything visible and re-evaluate all conditions until nothing changes (at most n + 1 rounds).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from sqlalchemy.orm import Session, object_session

from salesmesh.forms.fields import FieldSpec, UnknownFieldType, get_field_type
from salesmesh.metamodel.conditions import ConditionError, compile_condition
from salesmesh.metamodel.fastcheck import compile_check
from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.patterns import UnsafePattern, check_pattern
from salesmesh.metamodel.validation import upgrade_document, validate_document
from salesmesh.metamodel.validation_errors import DocumentInvalid
from salesmesh.metamodel.versions import get_published

CACHE_SIZE = 512
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class FormCompileError(Exception):
    """A form definition could not be compiled; `.errors` lists {path, message, message_zh}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {"path": "", "message": "form cannot be compiled"}
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first['path'] or '/'}: {first['message']}{more}")


class _Constant:
    """A literal true/false condition (JsonLogic allows a bare boolean)."""

    variables: frozenset[str] = frozenset()

    def __init__(self, value: bool) -> None:
        self.rule = value
        self.value = value

    def test(self, data: Any, *, now: datetime | None = None) -> bool:
        return self.value


@dataclass(frozen=True, eq=False)
class SectionSpec:
    key: str
    label: Mapping[str, str]
    description: Mapping[str, str] | None
    columns: int
    fields: tuple[FieldSpec, ...]
    visible_if: Any = None
    visible_if_json: str | None = None


@dataclass(frozen=True)
class FormState:
    """Which fields and sections are hidden and which fields are required for some values."""

    hidden: frozenset[str]
    hidden_sections: frozenset[str]
    required: frozenset[str]


@dataclass(frozen=True, eq=False)
class FormSpec:
    """A compiled form version: what binding, rendering and display need, computed once."""

    key: str
    label: Mapping[str, str]
    description: Mapping[str, str] | None
    record_type: str
    version_id: int | None
    version_number: int | None
    checksum: str | None
    sections: tuple[SectionSpec, ...]
    fields: tuple[FieldSpec, ...]
    by_key: Mapping[str, FieldSpec]
    json_schema: Mapping[str, Any]
    validator: Draft202012Validator
    has_files: bool
    # An exact compiled is-valid shortcut of the schema (metamodel.fastcheck); None = always the validator.
    fast_check: Callable[[Any], bool] | None = None
    # (kind, node) pairs with a visible_if, in evaluation order; kind is "section" or "field".
    plan: tuple[tuple[str, Any], ...] = field(default=())
    acyclic: bool = True

    def field(self, key: str) -> FieldSpec | None:
        """Return the field called `key`, or None."""
        return self.by_key.get(key)

    @cached_property
    def input_fields(self) -> tuple[FieldSpec, ...]:
        """The fields that take a value (every type but headings), in form order."""
        return tuple(f for f in self.fields if f.takes_input)

    @cached_property
    def _always_required(self) -> frozenset[str]:
        return frozenset(f.key for f in self.input_fields if f.required)

    @cached_property
    def _required_if(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.input_fields if f.required_if is not None and not f.required)

    def state(self, data: Mapping[str, Any] | None = None, now: datetime | None = None) -> FormState:
        """Evaluate visibility and requiredness for the (typed) values in `data`."""
        data = data or {}
        if not self.plan:
            hidden: set[str] = set()
            hidden_sections: set[str] = set()
            view: Mapping[str, Any] = data
        elif self.acyclic:
            hidden, hidden_sections, view = self._one_pass(data, now)
        else:
            hidden, hidden_sections, view = self._fixpoint(data, now)
        required = set(self._always_required)
        for f in self._required_if:
            if f.required_if.test(view, now=now):
                required.add(f.key)
        required.difference_update(hidden)
        return FormState(frozenset(hidden), frozenset(hidden_sections), frozenset(required))

    def _one_pass(self, data: Mapping[str, Any], now: datetime | None) -> tuple[set[str], set[str], dict]:
        hidden: set[str] = set()
        hidden_sections: set[str] = set()
        view = dict(data)
        for kind, node in self.plan:
            if kind == "section":
                if not node.visible_if.test(view, now=now):
                    hidden_sections.add(node.key)
                    for f in node.fields:
                        hidden.add(f.key)
                        view.pop(f.key, None)
            elif node.key not in hidden and not node.visible_if.test(view, now=now):
                hidden.add(node.key)
                view.pop(node.key, None)
        return hidden, hidden_sections, view

    def _fixpoint(self, data: Mapping[str, Any], now: datetime | None) -> tuple[set[str], set[str], dict]:
        hidden: set[str] = set()
        hidden_sections: set[str] = set()
        view = dict(data)
        for _round in range(len(self.plan) + 1):
            new_hidden: set[str] = set()
            new_sections: set[str] = set()
            for kind, node in self.plan:
                if node.visible_if.test(view, now=now):
                    continue
                if kind == "section":
                    new_sections.add(node.key)
                    new_hidden.update(f.key for f in node.fields)
                else:
                    new_hidden.add(node.key)
            if new_hidden == hidden and new_sections == hidden_sections:
                break
            hidden, hidden_sections = new_hidden, new_sections
            view = {k: v for k, v in data.items() if k not in hidden}
        return hidden, hidden_sections, view


# --- compiling -------------------------------------------------------------------------------------


def _err(path: str, message: str, message_zh: str) -> dict[str, str]:
    return {"path": path, "message": message, "message_zh": message_zh}


def _condition(rule: Any, path: str, errors: list[dict[str, str]]) -> tuple[Any, str | None]:
    """Compile one condition; return (condition or None, compact JSON for the browser)."""
    if rule is None:
        return None, None
    as_json = json.dumps(rule, ensure_ascii=False, separators=(",", ":"))
    if isinstance(rule, bool):
        return (None, None) if rule else (_Constant(False), as_json)
    try:
        return compile_condition(rule, base_path=path), as_json
    except ConditionError as exc:
        errors.extend(dict(e) for e in exc.errors)
        return None, None


def _field(doc: dict[str, Any], section: str, path: str, errors: list[dict[str, str]]) -> FieldSpec | None:
    try:
        ftype = get_field_type(doc["type"])
    except UnknownFieldType:
        errors.append(
            _err(path + "/type", f"Unknown field type '{doc['type']}'", f"未知的字段类型“{doc['type']}”")
        )
        return None
    pattern = None
    if "pattern" in doc:
        try:
            pattern = check_pattern(doc["pattern"])
        except UnsafePattern as exc:
            errors.append(_err(path + "/pattern", exc.message, exc.message_zh))
    visible_if, visible_json = _condition(doc.get("visible_if"), path + "/visible_if", errors)
    required_if, required_json = _condition(doc.get("required_if"), path + "/required_if", errors)
    return FieldSpec(
        key=doc["key"],
        type=ftype,
        label=doc["label"],
        section=section,
        help=doc.get("help"),
        placeholder=doc.get("placeholder"),
        required=bool(doc.get("required", False)),
        read_only=bool(doc.get("read_only", False)),
        show_in_list=bool(doc.get("show_in_list", False)),
        searchable=bool(doc.get("searchable", False)),
        default=doc.get("default"),
        options=tuple((o["value"], o["label"]) for o in doc.get("options", [])),
        min=doc.get("min"),
        max=doc.get("max"),
        decimals=doc.get("decimals"),
        currency=doc.get("currency"),
        min_length=doc.get("min_length"),
        max_length=doc.get("max_length"),
        pattern=pattern,
        max_selected=doc.get("max_selected"),
        reference=doc.get("reference"),
        file=doc.get("file"),
        visible_if=visible_if,
        required_if=required_if,
        visible_if_json=visible_json,
        required_if_json=required_json,
        document=doc,
    )


def _plan(sections: tuple[SectionSpec, ...]) -> tuple[tuple[tuple[str, Any], ...], bool]:
    """Order the conditional sections and fields so that each comes after what its condition reads."""
    nodes: list[tuple[str, Any]] = []
    deciders: dict[str, list[int]] = {}  # field key -> nodes that can hide it
    for section in sections:
        if section.visible_if is not None:
            nodes.append(("section", section))
            for f in section.fields:
                deciders.setdefault(f.key, []).append(len(nodes) - 1)
        for f in section.fields:
            if f.visible_if is not None:
                nodes.append(("field", f))
                deciders.setdefault(f.key, []).append(len(nodes) - 1)
    needs: list[set[int]] = []
    for _kind, node in nodes:
        names = {v.split(".", 1)[0] for v in node.visible_if.variables}
        needs.append({d for name in names for d in deciders.get(name, [])})
    order: list[int] = []
    done: set[int] = set()
    progress = True
    while progress and len(order) < len(nodes):
        progress = False
        for i in range(len(nodes)):
            if i not in done and needs[i] <= done:
                order.append(i)
                done.add(i)
                progress = True
    if len(order) < len(nodes):
        return tuple(nodes), False
    return tuple(nodes[i] for i in order), True


def _schema(sections: tuple[SectionSpec, ...]) -> dict[str, Any]:
    """Build the submission schema; only fields required whatever the values are go into `required`."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for section in sections:
        for f in section.fields:
            fragment = f.type.schema(f)
            if fragment is None:
                continue
            properties[f.key] = fragment
            conditional = f.visible_if is not None or section.visible_if is not None
            if f.required and not conditional and not f.read_only:
                required.append(f.key)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": required,
    }


def compile_document(
    document: Mapping[str, Any],
    *,
    version_id: int | None = None,
    version_number: int | None = None,
    checksum: str | None = None,
) -> FormSpec:
    """Compile a form document (validated first) into a FormSpec, without caching."""
    doc: Any = document
    try:
        if isinstance(doc, dict) and doc.get("kind") == "form" and doc.get("schema_version") != 1:
            doc = upgrade_document(doc)
    except DocumentInvalid as exc:
        raise FormCompileError([e.to_dict() for e in exc.errors]) from None
    problems = validate_document(doc, expected_kind="form")
    if problems:
        raise FormCompileError([e.to_dict() for e in problems])
    errors: list[dict[str, str]] = []
    sections: list[SectionSpec] = []
    for si, sdoc in enumerate(doc["sections"]):
        spath = f"/sections/{si}"
        fields = []
        for fi, fdoc in enumerate(sdoc["fields"]):
            compiled = _field(fdoc, sdoc["key"], f"{spath}/fields/{fi}", errors)
            if compiled is not None:
                fields.append(compiled)
        visible_if, visible_json = _condition(sdoc.get("visible_if"), spath + "/visible_if", errors)
        sections.append(
            SectionSpec(
                key=sdoc["key"],
                label=sdoc["label"],
                description=sdoc.get("description"),
                columns=int(sdoc.get("columns", 1)),
                fields=tuple(fields),
                visible_if=visible_if,
                visible_if_json=visible_json,
            )
        )
    if errors:
        raise FormCompileError(errors)
    all_fields = tuple(f for s in sections for f in s.fields)
    try:
        schema = _schema(tuple(sections))
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise FormCompileError(
            [
                _err(
                    "",
                    f"A field type produced an invalid schema: {exc.message}",
                    f"字段类型生成的模式无效：{exc.message}",
                )
            ]
        ) from None
    plan, acyclic = _plan(tuple(sections))
    return FormSpec(
        key=doc["key"],
        label=doc["label"],
        description=doc.get("description"),
        record_type=doc["record_type"],
        version_id=version_id,
        version_number=version_number,
        checksum=checksum,
        sections=tuple(sections),
        fields=all_fields,
        by_key={f.key: f for f in all_fields},
        json_schema=schema,
        validator=Draft202012Validator(schema),
        fast_check=compile_check(schema, FormatChecker(formats=())),
        has_files=any(f.type.uploads for f in all_fields),
        plan=plan,
        acyclic=acyclic,
    )


_CACHE: OrderedDict[tuple[int, str], FormSpec] = OrderedDict()
# Published/archived versions (immutable) by (database, id), so a pinned record finds its form without a
# query. The database is part of the key because ids repeat across databases (tests, tools).
_FROZEN: OrderedDict[tuple[str, int], FormSpec] = OrderedDict()
_LOCK = threading.Lock()


def _database(session: Session | None) -> str | None:
    return None if session is None else str(session.get_bind().url)


def _remember(cache: OrderedDict[Any, FormSpec], key: Any, spec: FormSpec) -> None:
    cache[key] = spec
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def compile_form(version: DefinitionVersion) -> FormSpec:
    """Return the compiled form of a definition version (cached; raises FormCompileError)."""
    if version.id is None:
        return compile_document(version.document, version_number=version.number, checksum=version.checksum)
    cache_key = (version.id, version.checksum)
    with _LOCK:
        spec = _CACHE.get(cache_key)
        if spec is not None:
            _CACHE.move_to_end(cache_key)
    if spec is None:
        spec = compile_document(
            version.document, version_id=version.id, version_number=version.number, checksum=version.checksum
        )
    database = _database(object_session(version))
    with _LOCK:
        _remember(_CACHE, cache_key, spec)
        if version.status != "draft" and database is not None:
            _remember(_FROZEN, (database, version.id), spec)
    return spec


def spec_for_version_id(session: Session, version_id: int) -> FormSpec:
    """Return the compiled form a record pinned (by definition version id); LookupError when missing."""
    with _LOCK:
        spec = _FROZEN.get((_database(session), version_id))  # type: ignore[arg-type]
    if spec is not None:
        return spec
    version = session.get(DefinitionVersion, version_id)
    if version is None or version.definition.kind != "form":
        raise LookupError(f"form version {version_id} does not exist")
    return compile_form(version)


def published_form(session: Session, key: str) -> FormSpec | None:
    """Return the compiled published version of the form called `key`, or None."""
    version = get_published(session, "form", key)
    return None if version is None else compile_form(version)


def clear_cache() -> None:
    """Forget every compiled form (tests)."""
    with _LOCK:
        _CACHE.clear()
        _FROZEN.clear()
