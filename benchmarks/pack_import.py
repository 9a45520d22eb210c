"""Benchmark `pack_import`: validating and importing a template pack, against the bare work it needs.

Subject: `load_pack` (read + parse a pack folder) → `apply_import` (manifest and definition validation
with the compiled schemas, semantic and reference checks, dry-run plan, definitions + published
versions, hash-chained audit events, the pack install row) → commit, into an empty SQLite (WAL) database.
Baseline: read the same files, `json.loads` each one and INSERT the same `definitions` and
`definition_versions` rows with plain SQL in one transaction. Both start from empty tables (reset
untimed before each call). Sizes: S = the shipped medical-device pack (21 definitions), M = that pack
plus 100 generated definitions, L = plus 400.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, text

from benchmarks.runner import Benchmark, Case, register
from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.metamodel.packs import apply_import, load_pack
from salesmesh.metamodel.validation import canonical_json, checksum
from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings

SHIPPED = Path(__file__).resolve().parents[1] / "packs" / "medical-device-direct"
EXTRA = {"S": 0, "M": 100, "L": 400}
# Kinds whose documents nobody else refers to, so renamed copies keep every reference resolvable.
COPYABLE = ("form", "objection_library", "action_pack")


def build_pack(folder: Path, extra: int) -> list[Path]:
    """Write the shipped pack plus `extra` renamed copies of its leaf definitions into `folder`."""
    shutil.copytree(SHIPPED, folder)
    manifest = json.loads((folder / "pack.json").read_text(encoding="utf-8"))
    sources = [json.loads((folder / f).read_text(encoding="utf-8")) for f in manifest["definitions"]]
    leaves = [d for d in sources if d["kind"] in COPYABLE]
    for i in range(extra):
        doc = dict(leaves[i % len(leaves)])
        doc["key"] = f"{doc['key']}-b{i}"
        name = f"definitions/generated/{doc['kind']}-{i}.json"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        manifest["definitions"].append(name)
    manifest["version"] = f"1.0.{extra}"
    (folder / "pack.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return [folder / f for f in manifest["definitions"]]


def prepare(size: str) -> Case:
    work = Path(tempfile.mkdtemp(prefix="bench-pack-"))
    files = build_pack(work / "pack", EXTRA[size])
    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.db'}", instance_path=work, secret_key=secrets.token_hex(16)
    )
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)

    def reset() -> None:
        with rt.db.session_scope() as s:
            for model in (PackInstall, AuditEvent, DefinitionVersion, Definition):
                s.execute(delete(model))

    def subject() -> None:
        reset_done = False
        pack = load_pack(work / "pack")
        with rt.db.session_scope() as session:
            plan = apply_import(session, None, pack, clock)
            reset_done = plan.applied
        if not reset_done:
            raise RuntimeError("the benchmark import did not apply")

    def baseline() -> None:
        now = clock.now().replace(tzinfo=None)
        defs, versions = [], []
        for i, path in enumerate(files, start=1):
            doc = json.loads(path.read_text(encoding="utf-8"))
            defs.append(
                {"id": i, "kind": doc["kind"], "key": doc["key"], "created_at": now, "pack_key": "bench"}
            )
            versions.append(
                {
                    "definition_id": i,
                    "number": 1,
                    "status": "published",
                    "document": canonical_json(doc),
                    "checksum": checksum(doc),
                    "schema_version": doc["schema_version"],
                    "lock_version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "published_at": now,
                }
            )
        with rt.db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO definitions (id, kind, key, created_at, pack_key) "
                    "VALUES (:id, :kind, :key, :created_at, :pack_key)"
                ),
                defs,
            )
            conn.execute(
                text(
                    "INSERT INTO definition_versions (definition_id, number, status, document, checksum, "
                    "schema_version, lock_version, created_at, updated_at, published_at) "
                    "VALUES (:definition_id, "
                    ":number, :status, :document, :checksum, :schema_version, :lock_version, :created_at, "
                    ":updated_at, :published_at)"
                ),
                versions,
            )

    def cleanup() -> None:
        rt.close()
        shutil.rmtree(work, ignore_errors=True)

    return Case(
        subject=subject,
        baseline=baseline,
        before=reset,
        units=len(files),
        cleanup=cleanup,
        notes={"definitions": len(files), "database": "sqlite-wal"},
    )


register(
    Benchmark(
        name="pack_import",
        description="validate + import a template pack vs json.loads + bare INSERTs of the same rows",
        target=0.05,
        prepare=prepare,
    )
)
