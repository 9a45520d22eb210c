"""Template packs: load, validate, plan, apply and export bundles of definitions.

A pack is a folder or `.zip` with a `pack.json` manifest (key, bilingual name and description, semver
version, `requires`, the list of definition files) and those definition files. `load_pack` reads it safely
into memory (see `packs_io`); `validate_pack` reports every problem as a `PackError` with the file and
JSON pointer; `plan_import` computes the dry run — per definition `create`, `change`, `unchanged` or
`conflict`, with the diff; `apply_import` writes it in the caller's transaction (all or nothing) and
remembers the install as a `PackInstall` keyed by the pack's checksum, so importing the same pack again
is a no-op. `export_pack` writes installed definitions back in the same format.

Local edits win over a re-import. A definition counts as locally edited when it was not installed by this
pack, has an open draft, has no published version left (someone archived it), or its published version
is not the one this pack installed last time (someone published their own). Such a definition is left
exactly as it is and reported as a `conflict`, the rest of the pack applies. This is the opposite of a
fixture sync that silently overwrites what operations staff built; to take the pack's version, discard
the local change (or copy the pack's document into a new draft) and publish it.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from salesmesh.metamodel.diff import diff_documents
from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.metamodel.packs_io import (
    DEFAULT_LIMITS,
    PackError,
    PackLimits,
    PackRejected,
    dump_json,
    parse_json_file,
    read_folder,
    read_zip,
    unsafe_member_name,
    zip_bytes,
)
from salesmesh.metamodel.validation import (
    DocumentInvalid,
    checksum,
    document_references,
    upgrade_document,
    validate_document,
    validate_manifest,
)
from salesmesh.metamodel.versions import draft_of, new_version, promote, published_of
from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock

__all__ = [
    "ImportPlan",
    "Pack",
    "PackError",
    "PackExportError",
    "PackInvalid",
    "PackLimits",
    "PackRejected",
    "PlanItem",
    "apply_import",
    "build_export",
    "export_files",
    "export_pack",
    "load_pack",
    "load_pack_bytes",
    "pack_checksum",
    "plan_import",
    "validate_pack",
    "write_pack",
]

MANIFEST = "pack.json"
ACTIONS = ("create", "change", "unchanged", "conflict")


def salesmesh_version() -> str:
    """Return the installed salesmesh version (what `requires: {"salesmesh": ...}` is checked against)."""
    try:
        return importlib.metadata.version("salesmesh")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


class PackInvalid(Exception):
    """The pack does not validate; `errors` lists every PackError."""

    def __init__(self, errors: list[PackError]) -> None:
        super().__init__(f"the pack has {len(errors)} error(s); nothing was written")
        self.errors = errors


class PackExportError(Exception):
    """An export cannot be made (unknown pack, target exists); the message says why."""


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


# --- planning and applying -----------------------------------------------------------------------


@dataclass
class PlanItem:
    """What an import would do to one definition."""

    kind: str
    key: str
    file: str
    action: str
    document: dict[str, Any]
    checksum: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    current_number: int | None = None
    reason: str = ""
    reason_zh: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "file": self.file,
            "action": self.action,
            "current_number": self.current_number,
            "changes": self.changes,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
        }


@dataclass
class ImportPlan:
    """The dry run of an import: errors (nothing may be written) or one item per definition."""

    pack_key: str | None
    pack_version: str | None
    checksum: str | None
    errors: list[PackError]
    items: list[PlanItem]
    already_installed: bool = False
    applied: bool = False
    install_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ACTIONS, 0)
        for item in self.items:
            counts[item.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        """True when applying would write anything (a definition or the install record)."""
        return self.ok and not self.already_installed

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": {"key": self.pack_key, "version": self.pack_version, "checksum": self.checksum},
            "ok": self.ok,
            "already_installed": self.already_installed,
            "applied": self.applied,
            "counts": self.counts,
            "errors": [e.to_dict() for e in self.errors],
            "items": [i.to_dict() for i in self.items],
        }


def installed_versions(session: Session) -> dict[str, str]:
    """Return {pack key: version} of the latest install of every pack."""
    rows = session.execute(select(PackInstall.pack_key, PackInstall.version).order_by(PackInstall.id))
    return {key: version for key, version in rows}


def published_idents(session: Session) -> set[tuple[str, str]]:
    """Return (kind, key) of every definition with a published version."""
    rows = session.execute(
        select(Definition.kind, Definition.key)
        .join(DefinitionVersion)
        .where(DefinitionVersion.status == "published")
    )
    return {(kind, key) for kind, key in rows}


def _installed_checksums(session: Session, pack_key: str) -> dict[str, str]:
    """Return {"kind/key": checksum} of what this pack's installs last wrote or confirmed."""
    merged: dict[str, str] = {}
    for summary in session.scalars(
        select(PackInstall.summary).where(PackInstall.pack_key == pack_key).order_by(PackInstall.id)
    ):
        for ident, entry in (summary or {}).get("definitions", {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("checksum"), str):
                merged[ident] = entry["checksum"]
    return merged


def _classify(
    item: PlanItem, definition: Definition | None, pack_key: str, installed: Mapping[str, str]
) -> None:
    if definition is None:
        item.action = "create"
        item.changes = diff_documents(None, item.document)
        return
    published = published_of(definition)
    item.current_number = published.number if published else None
    if published is not None and published.checksum == item.checksum:
        item.action = "unchanged"
        return
    item.changes = diff_documents(published.document if published else None, item.document)
    item.action = "conflict"
    if definition.pack_key != pack_key:
        owner = f"pack '{definition.pack_key}'" if definition.pack_key else "locally (in the builder)"
        owner_zh = f"模板包“{definition.pack_key}”" if definition.pack_key else "本地（在构建器中）"
        item.reason = f"kept the existing definition: it was created {owner}"
        item.reason_zh = f"保留现有定义：它由{owner_zh}创建"
    elif draft_of(definition) is not None:
        item.reason = f"kept the local version: draft {draft_of(definition).number} is open"  # type: ignore[union-attr]
        item.reason_zh = f"保留本地版本：草稿 {draft_of(definition).number} 正在编辑"  # type: ignore[union-attr]
    elif published is None:
        item.reason = "kept the local state: the definition was archived locally"
        item.reason_zh = "保留本地状态：该定义已在本地归档"
    elif installed.get(f"{item.kind}/{item.key}") != published.checksum:
        item.reason = f"kept the local version: version {published.number} was published locally"
        item.reason_zh = f"保留本地版本：版本 {published.number} 是在本地发布的"
    else:
        item.action = "change"
        item.reason = item.reason_zh = ""


def plan_import(session: Session, pack: Pack) -> ImportPlan:
    """Validate a pack against the database and compute what importing it would do (writes nothing)."""
    errors = validate_pack(pack, installed=installed_versions(session), known=published_idents(session))
    if errors:
        return ImportPlan(pack.key, pack.version, None, errors, [])
    assert pack.key is not None and pack.version is not None  # the manifest validated
    digest = pack_checksum(pack)
    already = session.scalar(
        select(PackInstall.id).where(PackInstall.pack_key == pack.key, PackInstall.checksum == digest)
    )
    idents = {(doc["kind"], doc["key"]) for _f, doc in pack.definitions()}
    candidates = select(Definition).options(selectinload(Definition.versions))
    existing = {
        (d.kind, d.key): d
        for d in session.scalars(candidates.where(Definition.key.in_(sorted({key for _k, key in idents}))))
        if (d.kind, d.key) in idents
    }
    provenance = _installed_checksums(session, pack.key)
    items: list[PlanItem] = []
    for name, doc in pack.definitions():
        upgraded = upgrade_document(doc)
        item = PlanItem(upgraded["kind"], upgraded["key"], name, "unchanged", upgraded, checksum(upgraded))
        _classify(item, existing.get((item.kind, item.key)), pack.key, provenance)
        items.append(item)
    return ImportPlan(pack.key, pack.version, digest, [], items, already_installed=already is not None)


def apply_import(session: Session, actor: Any, pack: Pack, clock: Clock) -> ImportPlan:
    """Import a pack in the caller's transaction; raise PackInvalid (writing nothing) when it is broken.

    Created and changed definitions get a new published version (the previous one is archived);
    unchanged ones and conflicts (local edits) are left alone. The same pack checksum twice is a no-op.
    """
    if actor is not None:
        policy.require(actor, "pack.import", None)
    plan = plan_import(session, pack)
    if not plan.ok:
        raise PackInvalid(plan.errors)
    if plan.already_installed:
        return plan
    assert pack.key is not None and pack.manifest is not None
    now = clock.now()
    actor_id = getattr(actor, "id", None)
    summary: dict[str, Any] = {"counts": plan.counts, "definitions": {}, "conflicts": []}
    for item in plan.items:
        ident = f"{item.kind}/{item.key}"
        if item.action == "conflict":
            summary["conflicts"].append({"kind": item.kind, "key": item.key, "reason": item.reason})
            continue
        entry = {"file": item.file, "checksum": item.checksum, "action": item.action}
        if item.action in ("create", "change"):
            definition = session.scalars(
                select(Definition).where(Definition.kind == item.kind, Definition.key == item.key)
            ).first()
            if definition is None:
                definition = Definition(kind=item.kind, key=item.key, created_at=now, pack_key=pack.key)
                session.add(definition)
                session.flush()
            version = new_version(
                session, definition, item.document, status="published", actor=actor, now=now
            )
            previous = promote(session, version, now)
            session.flush()
            entry["number"] = version.number
            if previous is not None:
                _audit_version(session, actor_id, now, "definition.archived", previous, pack.key)
            _audit_version(session, actor_id, now, "definition.published", version, pack.key)
        elif item.current_number is not None:
            entry["number"] = item.current_number
        summary["definitions"][ident] = entry
    install = PackInstall(
        pack_key=pack.key,
        version=pack.version or "",
        checksum=plan.checksum or "",
        manifest=pack.manifest,
        summary=summary,
        installed_by_id=actor_id,
        installed_at=now,
    )
    session.add(install)
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=actor_id,
        action="pack.imported",
        object_type="pack_install",
        object_id=install.id,
        payload={"pack": pack.key, "version": pack.version, "checksum": plan.checksum, "counts": plan.counts},
    )
    plan.applied = True
    plan.install_id = install.id
    return plan


def _audit_version(
    session: Session, actor_id: int | None, now: Any, action: str, version: DefinitionVersion, pack_key: str
) -> None:
    record_event(
        session,
        at=now,
        actor_id=actor_id,
        action=action,
        object_type="definition_version",
        object_id=version.id,
        payload={
            "kind": version.definition.kind,
            "key": version.definition.key,
            "number": version.number,
            "status": version.status,
            "checksum": version.checksum,
            "pack": pack_key,
        },
    )


# --- export --------------------------------------------------------------------------------------


_LEADING_KEYS = ("kind", "key", "schema_version", "label", "description")


def _readable_order(document: dict[str, Any]) -> dict[str, Any]:
    # PostgreSQL's JSONB does not keep key order; put the envelope first so exported files read well.
    head = {k: document[k] for k in _LEADING_KEYS if k in document}
    return {**head, **{k: v for k, v in document.items() if k not in head}}


def _default_file(kind: str, key: str) -> str:
    return f"definitions/{kind}/{key}.json"


def build_export(session: Session, actor: Any, *, key: str | None = None, clock: Clock) -> Pack:
    """Assemble a pack in memory from published definitions: those of pack `key`, or all of them."""
    if actor is not None:
        policy.require(actor, "pack.export", None)
    stmt = (
        select(Definition)
        .options(selectinload(Definition.versions))
        .order_by(Definition.kind, Definition.key)
    )
    original_files: dict[str, str] = {}
    order: list[str] = []
    if key is not None:
        last = session.scalars(
            select(PackInstall).where(PackInstall.pack_key == key).order_by(PackInstall.id.desc())
        ).first()
        if last is None:
            raise PackExportError(f"no pack '{key}' is installed")
        manifest = dict(last.manifest)
        for install_summary in session.scalars(
            select(PackInstall.summary).where(PackInstall.pack_key == key).order_by(PackInstall.id)
        ):
            for ident, entry in (install_summary or {}).get("definitions", {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                    original_files[ident] = entry["file"]
        order = [f for f in manifest.get("definitions", []) if isinstance(f, str)]
        stmt = stmt.where(Definition.pack_key == key)
    else:
        today = clock.now().date()
        manifest = {
            "kind": "pack",
            "schema_version": 1,
            "key": "salesmesh-export",
            "name": {
                "en": f"Definitions exported on {today.isoformat()}",
                "zh": f"{today.isoformat()} 导出的定义",
            },
            "version": f"{today.year}.{today.month}.{today.day}",
            "requires": {"salesmesh": f">={salesmesh_version()}"},
            "description": {
                "en": "Every published definition of this installation.",
                "zh": "本系统中所有已发布的定义。",
            },
        }
    documents: dict[str, Any] = {}
    used: set[str] = set()
    for definition in session.scalars(stmt):
        published = published_of(definition)
        if published is None:
            continue
        ident = f"{definition.kind}/{definition.key}"
        name = original_files.get(ident)
        if name is None or name in used or unsafe_member_name(name):
            name = _default_file(definition.kind, definition.key)
        used.add(name)
        documents[name] = _readable_order(published.document)
    # Keep the original manifest order for files that are still there; new ones follow, sorted.
    listed = [f for f in order if f in documents] + sorted(f for f in documents if f not in order)
    manifest["definitions"] = listed
    manifest.pop("sample_data", None)  # sample data is not stored, so it cannot be exported
    manifest["checksum"] = ""
    pack = Pack(
        source=f"export:{key or 'all'}",
        manifest=manifest,
        documents=documents,
        all_files={MANIFEST, *documents},
    )
    manifest["checksum"] = pack_checksum(pack)
    record_event(
        session,
        at=clock.now(),
        actor_id=getattr(actor, "id", None),
        action="pack.exported",
        object_type="pack_install",
        payload={"pack": manifest.get("key"), "definitions": len(listed)},
    )
    return pack


def export_files(pack: Pack) -> dict[str, bytes]:
    """Return every file of a pack as bytes, in the on-disk format (pack.json first)."""
    files = {MANIFEST: dump_json(pack.manifest)}
    for name, doc in pack.definitions():
        files[name] = dump_json(doc)
    return files


def write_pack(pack: Pack, out_path: str | Path, *, as_zip: bool = False) -> Path:
    """Write a pack as a folder or a `.zip`; refuse to overwrite an existing file or a non-empty folder."""
    target = Path(out_path)
    files = export_files(pack)
    if as_zip:
        if target.exists():
            raise PackExportError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zip_bytes(files))
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PackExportError(f"{target} already exists and is not an empty folder")
    for name, body in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return target


def export_pack(
    session: Session,
    actor: Any,
    out_path: str | Path,
    *,
    key: str | None = None,
    as_zip: bool = False,
    clock: Clock,
) -> Pack:
    """Export pack `key` (or every published definition) to a folder or zip; return the exported Pack."""
    pack = build_export(session, actor, key=key, clock=clock)
    write_pack(pack, out_path, as_zip=as_zip)
    return pack
