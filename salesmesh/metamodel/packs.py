"""Template packs: import and export bundles of definitions (reading and validating is in `pack_reading`).

A pack is a folder or `.zip` with a `pack.json` manifest (key, bilingual name and description, semver
version, `requires`, the list of definition files) and those definition files. `load_pack` reads it safely
into memory and `validate_pack` reports every problem with file and JSON pointer (both re-exported here);
`plan_import` computes the dry run — per definition `create`, `change`, `unchanged` or `conflict`, with
the diff; `apply_import` writes it in the caller's transaction (all or nothing) and remembers the install
as a `PackInstall` keyed by the pack's checksum, so importing the same pack again is a no-op.
`export_pack` writes installed definitions back in the same format.

Local edits win over a re-import. A definition counts as locally edited when it was not installed by this
pack, has an open draft, has no published version left (someone archived it), or its published version
is not the one this pack installed last time (someone published their own). Such a definition is left
exactly as it is and reported as a `conflict`, the rest of the pack applies. This is the opposite of a
fixture sync that silently overwrites what operations staff built; to take the pack's version, discard
the local change (or copy the pack's document into a new draft) and publish it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from salesmesh.metamodel.diff import diff_documents
from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.metamodel.pack_reading import (
    MANIFEST,
    Pack,
    load_pack,
    load_pack_bytes,
    pack_checksum,
    parse_version,
    salesmesh_version,
    satisfies,
    validate_pack,
)
from salesmesh.metamodel.packs_io import (
    PackError,
    PackLimits,
    PackRejected,
    dump_json,
    unsafe_member_name,
    zip_bytes,
)
from salesmesh.metamodel.validation import checksum, upgrade_document
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
    "parse_version",
    "plan_import",
    "salesmesh_version",
    "satisfies",
    "validate_pack",
    "write_pack",
]

ACTIONS = ("create", "change", "unchanged", "conflict")


class PackInvalid(Exception):
    """The pack does not validate; `errors` lists every PackError."""

    def __init__(self, errors: list[PackError]) -> None:
        super().__init__(f"the pack has {len(errors)} error(s); nothing was written")
        self.errors = errors


class PackExportError(Exception):
    """An export cannot be made (unknown pack, target exists); the message says why."""


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
    # "Already installed" means it is the pack's latest install: an older version imported again after
    # an upgrade (a rollback) must be applied, not skipped because it was installed once before.
    latest = session.scalar(
        select(PackInstall.checksum)
        .where(PackInstall.pack_key == pack.key)
        .order_by(PackInstall.id.desc())
        .limit(1)
    )
    already = latest == digest
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
    return ImportPlan(pack.key, pack.version, digest, [], items, already_installed=already)


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
                definition = Definition(
                    kind=item.kind, key=item.key, created_at=now, pack_key=pack.key, versions=[]
                )
                session.add(definition)
                session.flush()
            # Added as a draft and then promoted, so the previous version is archived in the same
            # flush before this one becomes the (single) published version.
            version = new_version(session, definition, item.document, status="draft", actor=actor, now=now)
            previous = promote(session, version, now)
            session.flush()
            entry["number"] = version.number
            if previous is not None:
                _audit_version(session, actor_id, now, "definition.archived", previous, pack.key)
            _audit_version(session, actor_id, now, "definition.published", version, pack.key)
        elif item.current_number is not None:
            entry["number"] = item.current_number
        summary["definitions"][ident] = entry
    # A rollback to content installed before: its earlier install row (unique per pack and checksum) makes
    # way for this one, which becomes the pack's latest install; the audit log keeps the earlier import.
    session.execute(
        delete(PackInstall).where(PackInstall.pack_key == pack.key, PackInstall.checksum == plan.checksum)
    )
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
