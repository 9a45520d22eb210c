"""Reading and checking template packs: load a folder or `.zip` into a `Pack`, and `validate_pack` it.

`load_pack` and `load_pack_bytes` read a pack safely into memory (the limits and refusals live in
`packs_io`). `validate_pack` reports every problem as a `PackError` naming the file and the JSON pointer:
the manifest against its compiled schema, listed files that are missing or unsafe, JSON files the manifest
does not list, every definition against its kind (after upgrading older schema versions), two files
defining the same kind and key, references to definitions that are neither in the pack nor published, the
`requires` section (salesmesh version, other installed packs) and a declared checksum that does not match.
`pack_checksum` fingerprints what an import installs. The import and export services are in `packs`.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesmesh.metamodel.packs_io import (
    DEFAULT_LIMITS,
    PackError,
    PackLimits,
    PackRejected,
    parse_json_file,
    read_folder,
    read_zip,
    unsafe_member_name,
)
from salesmesh.metamodel.validation import (
    DocumentInvalid,
    checksum,
    document_references,
    upgrade_document,
    validate_document,
    validate_manifest,
)

MANIFEST = "pack.json"


def salesmesh_version() -> str:
    """Return the installed salesmesh version (what `requires: {"salesmesh": ...}` is checked against)."""
    try:
        return importlib.metadata.version("salesmesh")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


# --- loading -------------------------------------------------------------------------------------


@dataclass
class Pack:
    """A pack read into memory: the manifest, the parsed JSON files and the problems found while reading."""

    source: str
    manifest: dict[str, Any] | None
    documents: dict[str, Any]
    all_files: set[str]
    problems: list[PackError] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        value = (self.manifest or {}).get("key")
        return value if isinstance(value, str) else None

    @property
    def version(self) -> str | None:
        value = (self.manifest or {}).get("version")
        return value if isinstance(value, str) else None

    def listed_files(self) -> list[str]:
        """Return the definition files the manifest lists (strings only, in manifest order)."""
        listed = (self.manifest or {}).get("definitions")
        return [f for f in listed if isinstance(f, str)] if isinstance(listed, list) else []

    def definitions(self) -> list[tuple[str, Any]]:
        """Return (file, parsed document) for every listed file that was read and parsed."""
        return [(f, self.documents[f]) for f in self.listed_files() if f in self.documents]


def _assemble(source: str, raw: dict[str, bytes], listed: set[str], limits: PackLimits) -> Pack:
    documents: dict[str, Any] = {}
    problems: list[PackError] = []
    for name in sorted(raw):
        value, errors = parse_json_file(name, raw[name], limits)
        problems.extend(errors)
        if not errors:
            documents[name] = value
    manifest = documents.pop(MANIFEST, None)
    if MANIFEST not in raw:
        problems.insert(
            0, PackError(MANIFEST, "", "the pack has no pack.json manifest", "模板包缺少 pack.json 清单")
        )
    return Pack(source=source, manifest=manifest, documents=documents, all_files=listed, problems=problems)


def load_pack(path: str | Path, *, limits: PackLimits = DEFAULT_LIMITS) -> Pack:
    """Read a pack folder or `.zip` file into memory, or raise PackRejected when it is unsafe/unreadable."""
    source = Path(path)
    if source.is_dir():
        raw, listed = read_folder(source, limits)
        return _assemble(str(source), raw, listed, limits)
    if not source.is_file():
        raise PackRejected(
            [PackError(str(source), "", "no such pack folder or zip file", "找不到该模板包文件夹或 zip 文件")]
        )
    if source.stat().st_size > limits.max_total_bytes:
        raise PackRejected(
            [
                PackError(
                    str(source),
                    "",
                    f"the zip is larger than {limits.max_total_bytes} bytes",
                    f"zip 文件大于 {limits.max_total_bytes} 字节",
                )
            ]
        )
    return load_pack_bytes(source.read_bytes(), name=str(source), limits=limits)


def load_pack_bytes(data: bytes, *, name: str = "upload.zip", limits: PackLimits = DEFAULT_LIMITS) -> Pack:
    """Read a zipped pack held in memory (an upload), or raise PackRejected."""
    raw, listed = read_zip(data, name, limits)
    return _assemble(name, raw, listed, limits)


# --- versions and requirements -------------------------------------------------------------------

_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_CLAUSE = re.compile(r"^(>=|<=|==|!=|~=|>|<)\s*(\d+(?:\.\d+){0,2})$")


def parse_version(text: str) -> tuple[int, int, int, int, str]:
    """Parse a (partial) semantic version into a comparable tuple; raise ValueError when malformed."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch, pre = match.groups()
    # A pre-release sorts before its release: (.., 0, "beta") < (.., 1, "").
    return int(major), int(minor or 0), int(patch or 0), 0 if pre else 1, pre or ""


def satisfies(version: str, spec: str) -> bool:
    """Return True when `version` meets every comma-separated clause of `spec` (">=0.1", ">=1.2, <2")."""
    have = parse_version(version)
    clauses = [c.strip() for c in spec.split(",")]
    if not any(clauses):
        raise ValueError("empty version requirement")
    for clause in clauses:
        match = _CLAUSE.match(clause)
        if not match:
            raise ValueError(f"not a version requirement: {clause!r}")
        op, target_text = match.groups()
        target = parse_version(target_text)
        if op == "~=":
            # Compatible release: ~=1.4 means >=1.4 and 1.*; ~=1.4.2 means >=1.4.2 and 1.4.*.
            parts = target_text.split(".")
            if len(parts) < 2:
                raise ValueError(f"~= needs at least two version parts: {clause!r}")
            prefix = tuple(int(p) for p in parts[:-1])
            if have < target or have[: len(prefix)] != prefix:
                return False
            continue
        ok = {
            ">=": have >= target,
            "<=": have <= target,
            ">": have > target,
            "<": have < target,
            "!=": have[:3] != target[:3],
            "==": have[:3] == target[:3],
        }[op]
        if not ok:
            return False
    return True


# --- validation ----------------------------------------------------------------------------------


# The fingerprint covers what an import installs: the manifest's metadata and the definition documents.
# File names, sample data and the declared checksum are left out, so an export of an installed pack
# (which may lay out files differently and carries no sample data) has the checksum it was imported with.
_NOT_FINGERPRINTED = ("definitions", "checksum", "sample_data")


def pack_checksum(pack: Pack) -> str:
    """Fingerprint a pack's content: its manifest metadata and its documents, independent of file names."""
    manifest = {k: v for k, v in (pack.manifest or {}).items() if k not in _NOT_FINGERPRINTED}
    documents = sorted((checksum(doc) for _file, doc in pack.definitions()))
    return checksum({"manifest": manifest, "definitions": documents})


def _document_errors(file: str, doc: Any) -> tuple[dict[str, Any] | None, list[PackError]]:
    try:
        upgraded = upgrade_document(doc)
    except DocumentInvalid as exc:
        return None, [PackError(file, e.path, e.message, e.message_zh) for e in exc.errors]
    errors = validate_document(upgraded)
    return (None if errors else upgraded), [PackError(file, e.path, e.message, e.message_zh) for e in errors]


def _requirement_errors(pack: Pack, installed: Mapping[str, str] | None) -> list[PackError]:
    requires = (pack.manifest or {}).get("requires") or {}
    wanted: list[tuple[str, str, str, str | None]] = [
        ("/requires/salesmesh", "salesmesh", requires.get("salesmesh", ""), salesmesh_version())
    ]
    for name, spec in sorted((requires.get("packs") or {}).items()):
        pointer = "/requires/packs/" + name
        if name == pack.key:
            return [PackError(MANIFEST, pointer, "a pack cannot require itself", "模板包不能依赖自身")]
        if installed is None:
            continue  # no database at hand (offline `pack validate`): checked again at import
        wanted.append((pointer, f"pack '{name}'", spec, installed.get(name)))
    errors: list[PackError] = []
    for pointer, what, spec, have in wanted:
        if have is None:
            errors.append(
                PackError(
                    MANIFEST,
                    pointer,
                    f"requires {what} {spec}, which is not installed",
                    f"需要 {what} {spec}，但尚未安装",
                )
            )
            continue
        try:
            ok = satisfies(have, spec)
        except ValueError as exc:
            errors.append(
                PackError(
                    MANIFEST, pointer, f"cannot read the requirement: {exc}", f"无法解析版本要求：{exc}"
                )
            )
            continue
        if not ok:
            errors.append(
                PackError(
                    MANIFEST,
                    pointer,
                    f"requires {what} {spec}, but {have} is installed",
                    f"需要 {what} {spec}，但已安装的是 {have}",
                )
            )
    return errors


def validate_pack(
    pack: Pack,
    *,
    installed: Mapping[str, str] | None = None,
    known: Iterable[tuple[str, str]] = (),
) -> list[PackError]:
    """Return every problem of a pack (manifest, files, documents, duplicates, references, requirements).

    `installed` maps installed pack keys to versions (None skips the checks of other packs); `known` are
    (kind, key) pairs already published in the database, which references may also point at.
    """
    errors = list(pack.problems)
    if pack.manifest is None:
        return errors
    manifest_errors = validate_manifest(pack.manifest)
    errors.extend(PackError(MANIFEST, e.path, e.message, e.message_zh) for e in manifest_errors)
    seen_files: set[str] = set()
    for index, name in enumerate(pack.listed_files()):
        pointer = f"/definitions/{index}"
        reason = unsafe_member_name(name)
        if reason or name == MANIFEST:
            errors.append(
                PackError(
                    MANIFEST,
                    pointer,
                    f"not a valid definition file path: {name!r}",
                    f"不是有效的定义文件路径：{name!r}",
                )
            )
        elif name not in pack.all_files:
            errors.append(
                PackError(
                    MANIFEST,
                    pointer,
                    f"lists {name}, which is not in the pack",
                    f"列出了 {name}，但模板包中没有该文件",
                )
            )
        elif not name.lower().endswith(".json"):
            errors.append(
                PackError(MANIFEST, pointer, f"{name} is not a .json file", f"{name} 不是 .json 文件")
            )
        seen_files.add(name)
    samples = pack.manifest.get("sample_data")
    samples = samples if isinstance(samples, str) else None
    if samples is not None and not any(
        f == samples or f.startswith(samples.rstrip("/") + "/") for f in pack.all_files
    ):
        errors.append(
            PackError(MANIFEST, "/sample_data", f"{samples} is not in the pack", f"模板包中没有 {samples}")
        )

    def is_sample(name: str) -> bool:
        return samples is not None and (name == samples or name.startswith(samples.rstrip("/") + "/"))

    for name in sorted(pack.all_files):
        if (
            name.lower().endswith(".json")
            and name != MANIFEST
            and name not in seen_files
            and not is_sample(name)
        ):
            errors.append(
                PackError(
                    name,
                    "",
                    'this JSON file is not listed in pack.json; list it under "definitions" or remove it',
                    "此 JSON 文件未在 pack.json 中列出；请在“definitions”中列出或将其删除",
                )
            )
    owners: dict[tuple[str, str], str] = {}
    valid_documents: list[tuple[str, dict[str, Any]]] = []
    for name, doc in pack.definitions():
        upgraded, doc_errors = _document_errors(name, doc)
        errors.extend(doc_errors)
        if upgraded is None:
            continue
        ident = (upgraded["kind"], upgraded["key"])
        if ident in owners:
            errors.append(
                PackError(
                    name,
                    "/key",
                    f"{ident[0]} '{ident[1]}' is also defined in {owners[ident]}",
                    f"{ident[0]}“{ident[1]}”在 {owners[ident]} 中也有定义",
                )
            )
            continue
        owners[ident] = name
        valid_documents.append((name, upgraded))
    available = set(owners) | set(known)
    for name, doc in valid_documents:
        for pointer, kind, key in document_references(doc):
            if (kind, key) not in available:
                errors.append(
                    PackError(
                        name,
                        pointer,
                        f"refers to {kind} '{key}', which is neither in this pack nor published",
                        f"引用的 {kind}“{key}”既不在此模板包中，也未发布",
                    )
                )
    if not manifest_errors:
        errors.extend(_requirement_errors(pack, installed))
        declared = pack.manifest.get("checksum")
        if isinstance(declared, str) and declared != pack_checksum(pack):
            errors.append(
                PackError(
                    MANIFEST,
                    "/checksum",
                    "the checksum does not match the pack's content (edited after export?)",
                    "校验和与模板包内容不符（导出后被修改过？）",
                )
            )
    return errors
