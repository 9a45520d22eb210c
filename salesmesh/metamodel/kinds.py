"""The registry of definition kinds: each `Kind` couples a name and current `schema_version` with its JSON
Schema (Draft 2020-12, compiled once into a validator when the kind is built), its semantic checks (the
cross-references a schema cannot express), its upgrade functions from older schema versions and an
optional reference finder (which other definitions a document names). The built-in kinds are registered
from `schemas/<name>.json` when this module is imported; plugins add theirs with `register_kind`, and a
duplicate name fails at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from salesmesh.metamodel import semantics, semantics_process, semantics_records, semantics_views
from salesmesh.metamodel.fastcheck import Check, compile_check
from salesmesh.metamodel.validation_errors import ValidationError

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_BASE = "https://schemas.salesmesh.dev/v1/"

SemanticCheck = Callable[[dict[str, Any]], list[ValidationError]]
Upgrader = Callable[[dict[str, Any]], dict[str, Any]]
# A reference finder returns (JSON pointer, kind, key) for every other definition a document names.
ReferenceFinder = Callable[[dict[str, Any]], list[tuple[str, str, str]]]


def load_schema(filename: str) -> dict[str, Any]:
    """Read one JSON Schema file shipped in `schemas/`."""
    with (SCHEMA_DIR / filename).open(encoding="utf-8") as fh:
        return json.load(fh)


_COMMON = load_schema("common.json")
SCHEMA_REGISTRY: Registry = Registry().with_resource(
    _COMMON["$id"], Resource.from_contents(_COMMON, default_specification=DRAFT202012)
)
FORMAT_CHECKER = FormatChecker(formats=("date", "email"))

# Keywords whose value is one subschema, a list of subschemas, or a name → subschema map.
_ONE = frozenset(
    {
        "items",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_MAP = frozenset({"properties", "patternProperties", "dependentSchemas"})
_ANNOTATIONS = frozenset({"description", "title", "$comment", "x-messages"})


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `schema` with each `$ref` to common.json or to its own `$defs` replaced by the target.

    Resolving `$ref` through the registry on every validation costs about ten times the validation itself;
    our schemas are not recursive, so the targets are inlined once when the kind is built. A reference that
    cannot be inlined (unknown document, cycle) is kept and resolved through the registry as usual.
    """
    documents = {_COMMON["$id"]: _COMMON, schema.get("$id", ""): schema}

    def target_of(ref: str, base: str) -> tuple[str, Any] | None:
        url, _, fragment = ref.partition("#")
        doc_id = urljoin(base, url) if url else base
        node = documents.get(doc_id)
        if node is None or (fragment and not fragment.startswith("/")):
            return None
        for part in fragment.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return doc_id, node

    def walk(node: Any, base: str, active: frozenset[str]) -> Any:
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ONE:
                out[key] = walk(value, base, active)
            elif key in _MANY and isinstance(value, list):
                out[key] = [walk(v, base, active) for v in value]
            elif key in _MAP and isinstance(value, dict):
                out[key] = {name: walk(v, base, active) for name, v in value.items()}
            else:
                out[key] = value
        ref = out.get("$ref")
        found = target_of(ref, base) if isinstance(ref, str) else None
        if found is None:
            return out
        doc_id, target = found
        marker = f"{doc_id}#{ref.partition('#')[2]}"
        if marker in active:
            return out
        inlined = walk(target, doc_id, active | {marker})
        rest = {k: v for k, v in out.items() if k != "$ref"}
        if not isinstance(inlined, dict):
            return out
        if set(rest) & set(inlined) - _ANNOTATIONS:
            return {**rest, "allOf": [inlined]}
        messages = {**inlined.get("x-messages", {}), **rest.get("x-messages", {})}
        merged = {**inlined, **rest}
        if messages:
            merged["x-messages"] = messages
        return merged

    return walk(schema, schema.get("$id", ""), frozenset())


def compile_schema(schema: dict[str, Any]) -> Draft202012Validator:
    """Check a schema against the Draft 2020-12 meta-schema and compile it into a reusable validator."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(inline_refs(schema), registry=SCHEMA_REGISTRY, format_checker=FORMAT_CHECKER)


class UnknownKind(KeyError):
    """No kind of that name is registered."""


class DuplicateKind(ValueError):
    """A kind of that name is already registered."""


@dataclass(frozen=True, eq=False)
class Kind:
    """One definition kind; `validator` is compiled from `schema` when the Kind is built, never per call."""

    name: str
    schema_version: int
    label: dict[str, str]
    schema: dict[str, Any]
    semantic_checks: tuple[SemanticCheck, ...] = ()
    upgraders: Mapping[int, Upgrader] = field(default_factory=dict)
    references: ReferenceFinder | None = None
    validator: Draft202012Validator = field(init=False, repr=False)
    # Exact is-valid shortcut compiled from the same (inlined) schema; None = always use `validator`.
    fast_check: Check | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.schema_version < 1:
            raise ValueError(f"kind {self.name!r}: schema_version must be >= 1")
        bad = [v for v in self.upgraders if not 1 <= v < self.schema_version]
        if bad:
            raise ValueError(
                f"kind {self.name!r}: upgraders for versions {bad} outside 1..{self.schema_version - 1}"
            )
        if not (self.label.get("en") and self.label.get("zh")):
            raise ValueError(f"kind {self.name!r}: label needs both en and zh")
        validator = compile_schema(self.schema)
        object.__setattr__(self, "validator", validator)
        object.__setattr__(self, "fast_check", compile_check(validator.schema, FORMAT_CHECKER))


_KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> None:
    """Add a kind to the registry; a second kind with the same name raises DuplicateKind."""
    if kind.name in _KINDS:
        raise DuplicateKind(f"definition kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests and plugin unloading only)."""
    _KINDS.pop(name, None)


def get_kind(name: str) -> Kind:
    """Return the registered kind called `name`, or raise UnknownKind."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise UnknownKind(name) from None


def all_kinds() -> list[Kind]:
    """Return every registered kind, sorted by name."""
    return [_KINDS[name] for name in sorted(_KINDS)]


_rec, _proc = semantics_records, semantics_process
# name, label, semantic checks (the bounded-condition check is added to every built-in kind).
BUILTIN_KINDS: tuple[tuple[str, dict[str, str], tuple[SemanticCheck, ...]], ...] = (
    ("form", {"en": "Form", "zh": "表单"}, (_rec.check_form,)),
    ("pipeline", {"en": "Pipeline", "zh": "销售流程"}, (_proc.check_pipeline,)),
    ("routing", {"en": "Routing rules", "zh": "线索分配规则"}, (_proc.check_routing,)),
    ("action_pack", {"en": "Action pack", "zh": "标准动作包"}, (_proc.check_action_pack,)),
    ("pool", {"en": "Lead pool", "zh": "线索公海"}, ()),
    ("rep_attributes", {"en": "Rep attributes", "zh": "销售人员属性"}, (_rec.check_rep_attributes,)),
    ("calendar", {"en": "Working calendar", "zh": "工作日历"}, (_rec.check_calendar,)),
    ("objection_library", {"en": "Objection library", "zh": "异议应对库"}, (_proc.check_objection_library,)),
    ("commission_policy", {"en": "Commission policy", "zh": "提成政策"}, (_proc.check_commission_policy,)),
    ("scoring", {"en": "Engagement scoring", "zh": "客户热度评分"}, (_proc.check_scoring,)),
)


def _register_builtins() -> None:
    for name, label, checks in BUILTIN_KINDS:
        register_kind(
            Kind(
                name=name,
                schema_version=1,
                label=label,
                schema=load_schema(f"{name}.json"),
                semantic_checks=(*checks, semantics.check_conditions),
                upgraders={},
                references=semantics.REFERENCES.get(name),
            )
        )
    register_kind(
        Kind(
            name="list_view",
            schema_version=1,
            label={"en": "List view", "zh": "列表视图"},
            schema=load_schema("list_view.json"),
            semantic_checks=(semantics_views.check_list_view, semantics.check_conditions),
            references=semantics_views.list_view_refs,
        )
    )


_register_builtins()
