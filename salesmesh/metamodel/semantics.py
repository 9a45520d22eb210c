"""Shared pieces of the semantic checks (the rules a JSON Schema cannot express): helpers that build
bilingual errors, the JsonLogic compile check every kind runs (`conditions.condition_errors`), the
safe-regex check, and the reference finders that list which other definitions a document names. Checks
receive a document that already passed its kind's schema. Cross-document references are not checked here
(a draft may name a definition that is published later); `validation.document_references` exposes them
to pack import and publishing.
The per-kind checks live in `semantics_records` and `semantics_process`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from salesmesh.metamodel.conditions import condition_errors
from salesmesh.metamodel.patterns import UnsafePattern, check_pattern
from salesmesh.metamodel.validation_errors import ValidationError, join_pointer

Check = Callable[[dict[str, Any]], list[ValidationError]]
Refs = list[tuple[str, str, str]]

MAX_CONDITION_DEPTH = 16
MAX_CONDITION_NODES = 500
# Every property with one of these names holds a JsonLogic condition, in every kind.
CONDITION_KEYS = frozenset({"when", "visible_if", "required_if", "condition", "filter"})


def err(path: str, en: str, zh: str) -> ValidationError:
    """Build one bilingual error."""
    return ValidationError(path, en, zh)


def duplicates(items: list[dict[str, Any]], base: str, field: str = "key") -> list[ValidationError]:
    """Report items whose `field` repeats an earlier item's."""
    errors: list[ValidationError] = []
    first: dict[Any, int] = {}
    for i, item in enumerate(items):
        value = item.get(field)
        if value in first:
            where = join_pointer(base, first[value])
            errors.append(
                err(
                    join_pointer(base, i, field),
                    f"Duplicate {field} '{value}' (already used at {where})",
                    f"“{value}”重复（已在 {where} 使用）",
                )
            )
        else:
            first[value] = i
    return errors


def not_allowed(path: str, what_en: str, what_zh: str) -> ValidationError:
    """Report a setting that does not apply here."""
    return err(path, f"Not allowed {what_en}", f"{what_zh}不能设置此项")


def is_number(value: Any) -> bool:
    """Tell whether a JSON value is a number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def unknown(path: str, value: Any, thing_en: str, thing_zh: str) -> ValidationError:
    """Report a name that refers to nothing in the document."""
    return err(path, f"Unknown {thing_en} '{value}'", f"未知的{thing_zh}“{value}”")


# --- conditions --------------------------------------------------------------------------------------


def iter_conditions(doc: Any) -> Iterator[tuple[str, Any]]:
    """Yield (JSON pointer, condition) for every JsonLogic condition in a document."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if key in CONDITION_KEYS and isinstance(child, dict | bool):
                    yield join_pointer("", *path, key), child
                elif isinstance(child, dict | list):
                    stack.append((child, (*path, key)))
        elif isinstance(value, list):
            stack.extend(
                (child, (*path, i)) for i, child in enumerate(value) if isinstance(child, dict | list)
            )


def check_conditions(doc: dict[str, Any]) -> list[ValidationError]:
    """Check that every JsonLogic condition compiles: known operators, right arities, bounded depth/size."""
    errors: list[ValidationError] = []
    for path, condition in iter_conditions(doc):
        problems = condition_errors(
            condition, path, max_depth=MAX_CONDITION_DEPTH, max_nodes=MAX_CONDITION_NODES
        )
        errors.extend(err(p["path"], p["message"], p["message_zh"]) for p in problems)
    return errors


def condition_vars(condition: Any) -> set[str]:
    """Return the data names a JsonLogic condition reads with `var` (first path segment only)."""
    names: set[str] = set()
    stack = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for op, arg in node.items():
                if op == "var":
                    target = arg[0] if isinstance(arg, list) and arg else arg
                    if isinstance(target, str) and target:
                        names.add(target.split(".", 1)[0])
                    else:
                        stack.append(arg)
                else:
                    stack.append(arg)
        elif isinstance(node, list):
            stack.extend(node)
    return names


# --- regular expressions -----------------------------------------------------------------------------


def regex_problem(pattern: str) -> tuple[str, str] | None:
    """Return (English, Chinese) reasons a user-supplied regex is unusable or unsafe, or None.

    The same rules as the form compiler (`salesmesh.metamodel.patterns`), so whatever publishes compiles.
    """
    try:
        check_pattern(pattern)
    except UnsafePattern as exc:
        return exc.message, exc.message_zh
    return None


# --- references to other definitions -----------------------------------------------------------------


def _ref(out: Refs, doc: dict[str, Any], path: Iterable[Any], kind: str) -> None:
    node: Any = doc
    for part in path:
        if not isinstance(node, dict | list):
            return
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, str):
        out.append((join_pointer("", *path), kind, node))


def pipeline_refs(doc: dict[str, Any]) -> Refs:
    """List the deal form, calendar and stage action packs a pipeline names."""
    out: Refs = []
    _ref(out, doc, ["deal_form"], "form")
    _ref(out, doc, ["calendar"], "calendar")
    for si, stage in enumerate(doc.get("stages", [])):
        for pi, _key in enumerate(stage.get("action_packs", [])):
            _ref(out, doc, ["stages", si, "action_packs", pi], "action_pack")
    return out


def routing_refs(doc: dict[str, Any]) -> Refs:
    """List the form, rep attributes, pools and SLA calendar a routing definition names."""
    out: Refs = []
    _ref(out, doc, ["form"], "form")
    _ref(out, doc, ["rep_attributes"], "rep_attributes")
    for ri, _rule in enumerate(doc.get("rules", [])):
        _ref(out, doc, ["rules", ri, "pool"], "pool")
    _ref(out, doc, ["fallback", "pool"], "pool")
    _ref(out, doc, ["first_response_sla", "calendar"], "calendar")
    return out


def _single_refs(*specs: tuple[tuple[str, ...], str]) -> Callable[[dict[str, Any]], Refs]:
    def finder(doc: dict[str, Any]) -> Refs:
        out: Refs = []
        for path, kind in specs:
            _ref(out, doc, path, kind)
        return out

    return finder


REFERENCES: dict[str, Callable[[dict[str, Any]], Refs]] = {
    "pipeline": pipeline_refs,
    "routing": routing_refs,
    "action_pack": _single_refs((("calendar",), "calendar")),
    "pool": _single_refs((("form",), "form"), (("cooldown", "calendar"), "calendar")),
    "commission_policy": _single_refs((("pipeline",), "pipeline")),
}
