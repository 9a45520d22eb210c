"""Semantic checks of definition documents: the rules a JSON Schema cannot express (unique keys,
cross-references inside a document, bounded JsonLogic conditions), and the reference finders that list
which other definitions a document names. Every check receives a document that already passed its
kind's schema and returns bilingual `ValidationError`s with JSON pointers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salesmesh.metamodel.validation_errors import ValidationError

MAX_CONDITION_DEPTH = 16
MAX_CONDITION_NODES = 500
CONDITION_KEYS = frozenset({"when", "visible_if", "required_if", "condition", "filter"})


def _condition_shape(node: Any) -> tuple[int, int]:
    """Return (depth, node count) of a JSON value."""
    depth, count = 0, 0
    stack = [(node, 1)]
    while stack:
        value, level = stack.pop()
        count += 1
        depth = max(depth, level)
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return depth, count


def check_conditions(doc: dict[str, Any]) -> list[ValidationError]:
    """Check that every JsonLogic condition is of bounded depth and size."""
    errors: list[ValidationError] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
                if key in CONDITION_KEYS and isinstance(child, dict | bool):
                    depth, count = _condition_shape(child)
                    if depth > MAX_CONDITION_DEPTH:
                        errors.append(
                            ValidationError(
                                child_path,
                                f"Condition is nested deeper than {MAX_CONDITION_DEPTH} levels",
                                f"条件嵌套超过 {MAX_CONDITION_DEPTH} 层",
                            )
                        )
                    elif count > MAX_CONDITION_NODES:
                        errors.append(
                            ValidationError(
                                child_path,
                                f"Condition has more than {MAX_CONDITION_NODES} parts",
                                f"条件的组成部分超过 {MAX_CONDITION_NODES} 个",
                            )
                        )
                else:
                    stack.append((child, child_path))
        elif isinstance(value, list):
            stack.extend((child, f"{path}/{i}") for i, child in enumerate(value))
    return errors


CHECKS: dict[str, tuple[Callable[[dict[str, Any]], list[ValidationError]], ...]] = {}
REFERENCES: dict[str, Callable[[dict[str, Any]], list[tuple[str, str, str]]]] = {}
