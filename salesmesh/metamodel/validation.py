"""Validate and upgrade definition documents and pack manifests, and fingerprint them.

`validate_document` is the single entry point the API, CLI, builder UI and pack import use: it checks the
envelope (a JSON object with a known `kind`, a supported `schema_version` and a well-formed `key`), the
overall size and nesting depth, then runs the kind's compiled JSON Schema validator (every error, sorted
by JSON pointer) and, when the structure is sound, the kind's semantic checks. It never raises on bad
input; an empty list means valid. `upgrade_document` brings an older document to its kind's current
schema version through explicit per-version functions. `canonical_json`/`checksum` give the stable form
used for idempotent pack import and change detection.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from salesmesh.metamodel.fastcheck import Check, Uncertain, compile_check
from salesmesh.metamodel.kinds import (
    FORMAT_CHECKER,
    Kind,
    UnknownKind,
    all_kinds,
    compile_schema,
    get_kind,
    load_schema,
)
from salesmesh.metamodel.validation_errors import (
    DocumentInvalid,
    ValidationError,
    sort_key,
    translate_all,
)

__all__ = [
    "MANIFEST_KIND",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "DocumentInvalid",
    "ValidationError",
    "canonical_json",
    "checksum",
    "document_references",
    "upgrade_document",
    "validate_document",
    "validate_manifest",
]

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DOCUMENT_DEPTH = 32
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{1,79}$")
MANIFEST_KIND = "pack"
_MANIFEST_VALIDATOR = compile_schema(load_schema("pack_manifest.json"))
_MANIFEST_CHECK = compile_check(_MANIFEST_VALIDATOR.schema, FORMAT_CHECKER)


def canonical_json(doc: Any) -> str:
    """Serialise `doc` canonically: sorted keys, no whitespace, non-ASCII kept as is."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def checksum(doc: Any) -> str:
    """Return the SHA-256 hex digest of the canonical JSON of `doc`."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def _err(path: str, en: str, zh: str) -> ValidationError:
    return ValidationError(path, en, zh)


def _depth_ok(doc: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in node)
    return True


def _size_and_depth(doc: Any) -> list[ValidationError]:
    if not _depth_ok(doc, MAX_DOCUMENT_DEPTH):
        return [
            _err(
                "",
                f"Document is nested deeper than {MAX_DOCUMENT_DEPTH} levels",
                f"文档嵌套层级超过 {MAX_DOCUMENT_DEPTH} 层",
            )
        ]
    try:
        size = len(canonical_json(doc).encode("utf-8"))
    except (TypeError, ValueError):
        return [_err("", "Document contains values that are not JSON", "文档包含非 JSON 的值")]
    if size > MAX_DOCUMENT_BYTES:
        return [
            _err(
                "",
                f"Document is too large ({size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes)",
                f"文档过大（{size} 字节，上限为 {MAX_DOCUMENT_BYTES} 字节）",
            )
        ]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unsupported(kind: Kind, version: int) -> ValidationError:
    return _err(
        "/schema_version",
        f"Unsupported schema_version {version}: this server knows '{kind.name}' up to version "
        f"{kind.schema_version}",
        f"不支持的 schema_version {version}：本服务器的“{kind.name}”最高只支持到版本 {kind.schema_version}",
    )


def _envelope(doc: dict[str, Any], expected_kind: str | None) -> tuple[list[ValidationError], Any]:
    """Check kind/key/schema_version; return (errors, kind or None when no schema can be chosen)."""
    errors: list[ValidationError] = []
    kind = None
    name = doc.get("kind")
    if "kind" not in doc:
        errors.append(_err("/kind", "Required property 'kind' is missing", "缺少必填项“kind”"))
    elif not isinstance(name, str):
        errors.append(_err("/kind", "Must be of type string", "类型必须为字符串"))
    else:
        try:
            kind = get_kind(name)
        except UnknownKind:
            known = ", ".join(k.name for k in all_kinds())
            errors.append(
                _err(
                    "/kind",
                    f"Unknown kind '{name}' (known: {known})",
                    f"未知的定义类型“{name}”（可用：{known}）",
                )
            )
        if kind is not None and expected_kind is not None and name != expected_kind:
            errors.append(
                _err(
                    "/kind",
                    f"Expected a '{expected_kind}' definition, got '{name}'",
                    f"应为“{expected_kind}”类型的定义，实际为“{name}”",
                )
            )
            kind = None
    key = doc.get("key")
    if "key" not in doc:
        errors.append(_err("/key", "Required property 'key' is missing", "缺少必填项“key”"))
    elif not isinstance(key, str) or not KEY_PATTERN.match(key):
        errors.append(
            _err(
                "/key",
                "Key must be 2-80 characters: a lowercase letter, then lowercase letters, digits, '_' or '-'",
                "标识须为 2–80 个字符：以小写字母开头，其后为小写字母、数字、“_”或“-”",
            )
        )
    version = doc.get("schema_version")
    if "schema_version" not in doc:
        errors.append(
            _err(
                "/schema_version",
                "Required property 'schema_version' is missing",
                "缺少必填项“schema_version”",
            )
        )
        kind = None
    elif not _is_int(version) or version < 1:
        errors.append(_err("/schema_version", "Must be a positive integer", "必须为正整数"))
        kind = None
    elif kind is not None and version > kind.schema_version:
        errors.append(_unsupported(kind, version))
        kind = None
    elif kind is not None and version < kind.schema_version:
        errors.append(
            _err(
                "/schema_version",
                f"schema_version {version} is outdated (current: {kind.schema_version}); "
                "upgrade the document first",
                f"schema_version {version} 已过时（当前为 {kind.schema_version}），请先升级该文档",
            )
        )
        kind = None
    return errors, kind


def _passes_fast_check(check: Check | None, doc: Any) -> bool:
    """Ask the compiled is-valid shortcut; False means "run the full validator" (invalid or undecided)."""
    if check is None:
        return False
    try:
        return check(doc)
    except (Uncertain, TypeError, ValueError, RecursionError):
        return False


def validate_document(doc: object, *, expected_kind: str | None = None) -> list[ValidationError]:
    """Validate a definition document; return every problem (sorted by path), or [] when it is valid."""
    if not isinstance(doc, dict):
        return [_err("", "A definition must be a JSON object", "定义必须是 JSON 对象")]
    limits = _size_and_depth(doc)
    if limits:
        return limits
    envelope, kind = _envelope(doc, expected_kind)
    if kind is None:
        return sorted(envelope, key=sort_key)
    reported = {e.path for e in envelope}
    errors = envelope
    if envelope or not _passes_fast_check(kind.fast_check, doc):
        errors = envelope + [
            e for e in translate_all(kind.validator.iter_errors(doc)) if e.path not in reported
        ]
    if errors:
        return sorted(errors, key=sort_key)
    semantic: list[ValidationError] = []
    for check in kind.semantic_checks:
        semantic.extend(check(doc))
    return sorted(dict.fromkeys(semantic), key=sort_key)


def validate_manifest(doc: object) -> list[ValidationError]:
    """Validate a template pack manifest (`pack.json`); return every problem, or [] when it is valid."""
    if not isinstance(doc, dict):
        return [_err("", "pack.json must be a JSON object", "pack.json 必须是 JSON 对象")]
    limits = _size_and_depth(doc)
    if limits:
        return limits
    errors = (
        []
        if _passes_fast_check(_MANIFEST_CHECK, doc)
        else translate_all(_MANIFEST_VALIDATOR.iter_errors(doc))
    )
    if errors:
        return errors
    seen: dict[str, int] = {}
    for i, path in enumerate(doc["definitions"]):
        if path in seen:
            errors.append(
                _err(
                    f"/definitions/{i}",
                    f"'{path}' is listed twice (first at /definitions/{seen[path]})",
                    f"“{path}”重复列出（首次出现在 /definitions/{seen[path]}）",
                )
            )
        seen.setdefault(path, i)
    return errors


def upgrade_document(doc: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `doc` upgraded to its kind's current schema_version, or raise DocumentInvalid."""
    if not isinstance(doc, dict):
        raise DocumentInvalid([_err("", "A definition must be a JSON object", "定义必须是 JSON 对象")])
    name = doc.get("kind")
    try:
        kind = get_kind(name)  # type: ignore[arg-type]
    except UnknownKind:
        raise DocumentInvalid([_err("/kind", f"Unknown kind '{name}'", f"未知的定义类型“{name}”")]) from None
    version = doc.get("schema_version")
    if not _is_int(version) or version < 1:
        raise DocumentInvalid([_err("/schema_version", "Must be a positive integer", "必须为正整数")])
    if version > kind.schema_version:
        raise DocumentInvalid([_unsupported(kind, version)])
    current = copy.deepcopy(doc)
    while version < kind.schema_version:
        step = kind.upgraders.get(version)
        if step is None:
            raise DocumentInvalid(
                [
                    _err(
                        "/schema_version",
                        f"No upgrade from '{kind.name}' schema_version {version} to {version + 1}",
                        f"“{kind.name}”没有从 schema_version {version} 升级到 {version + 1} 的方法",
                    )
                ]
            )
        current = step(current)
        version += 1
        current["schema_version"] = version
    return current


def document_references(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """List (JSON pointer, kind, key) for every other definition a valid document refers to."""
    try:
        kind = get_kind(doc.get("kind"))  # type: ignore[arg-type]
    except UnknownKind:
        return []
    return kind.references(doc) if kind.references else []
