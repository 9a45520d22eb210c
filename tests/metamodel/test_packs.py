"""Template packs: safe loading (folder and zip), validation with file + JSON pointer, the dry-run plan,
all-or-nothing idempotent import, local-edit conflicts and the export round trip."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.exceptions import Forbidden

from salesmesh.metamodel import packs, versions
from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.metamodel.packs import PackLimits, PackRejected
from salesmesh.platform.audit import AuditEvent
from tests.metamodel.pack_samples import (
    SHIPPED_PACKS,
    calendar_doc,
    manifest,
    objections_doc,
    pool_doc,
    simple_pack,
    write_pack,
)

TABLES = (Definition, DefinitionVersion, PackInstall, AuditEvent)


def counts(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in TABLES}


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes | str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in entries:
            archive.writestr(name, body)
    return buffer.getvalue()


def pack_zip(extra: list[tuple[str | zipfile.ZipInfo, bytes | str]] = (), prefix: str = "") -> bytes:  # type: ignore[assignment]
    files = {"definitions/calendar.json": calendar_doc()}
    entries: list[tuple[str | zipfile.ZipInfo, bytes | str]] = [
        (prefix + "pack.json", json.dumps(manifest(files=list(files)))),
        *((prefix + n, json.dumps(d)) for n, d in files.items()),
    ]
    return make_zip(entries + list(extra))


def messages(errors) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(e) for e in errors]


# --- loading and validating ----------------------------------------------------------------------


def test_valid_folder_pack(tmp_path: Path) -> None:
    pack = packs.load_pack(simple_pack(tmp_path / "p"))
    assert pack.key == "test-pack" and pack.version == "1.0.0"
    assert [f for f, _ in pack.definitions()] == ["definitions/calendar.json", "definitions/objections.json"]
    assert packs.validate_pack(pack) == []


def test_valid_zip_pack_with_wrapper_folder() -> None:
    pack = packs.load_pack_bytes(pack_zip(prefix="my-pack/"), name="my-pack.zip")
    assert packs.validate_pack(pack) == []
    assert pack.listed_files() == ["definitions/calendar.json"]


def test_every_error_has_file_and_pointer(tmp_path: Path) -> None:
    broken = calendar_doc(timezone="not a zone!")
    broken["working_hours"]["mon"][0]["start"] = "25:00"
    root = write_pack(
        tmp_path / "p",
        {
            "definitions/calendar.json": broken,
            "definitions/objections.json": objections_doc(),
            "definitions/copy.json": calendar_doc(),  # same kind + key as calendar.json
            "definitions/missing.json": calendar_doc(key="never-written"),
        },
        extra={"definitions/stray.json": {"kind": "calendar"}, "README.md": "notes"},
    )
    (root / "definitions/missing.json").unlink()
    errors = packs.validate_pack(packs.load_pack(root))
    found = {(e.file, e.path) for e in errors}
    assert ("definitions/calendar.json", "/timezone") in found
    assert ("definitions/calendar.json", "/working_hours/mon/0/start") in found
    assert ("pack.json", "/definitions/3") in found  # listed but not in the pack
    assert ("definitions/stray.json", "") in found  # JSON file not listed
    assert all(e.message and e.message_zh for e in errors)
    assert "README.md" not in {e.file for e in errors}


def test_duplicate_kind_and_key(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "p", {"definitions/a.json": calendar_doc(), "definitions/b.json": calendar_doc()}
    )
    errors = packs.validate_pack(packs.load_pack(root))
    assert messages(errors) == [
        "definitions/b.json:/key: calendar 'office-hours' is also defined in definitions/a.json"
    ]


def test_json_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    root = simple_pack(tmp_path / "p")
    (root / "definitions/calendar.json").write_text(
        '{\n  "kind": "calendar",\n  "key": oops\n}', encoding="utf-8"
    )
    (root / "definitions/objections.json").write_text('{"kind": "a", "kind": "b"}', encoding="utf-8")
    errors = packs.validate_pack(packs.load_pack(root))
    text = messages(errors)
    assert any(
        t.startswith("definitions/calendar.json:/: invalid JSON at line 3, column 10") for t in text
    ), text
    assert "definitions/objections.json:/: duplicate object key 'kind'" in text


def test_manifest_errors(tmp_path: Path) -> None:
    root = simple_pack(tmp_path / "p", version="one", requires={"salesmesh": ">=99.0"})
    errors = packs.validate_pack(packs.load_pack(root))
    assert ("pack.json", "/version") in {(e.file, e.path) for e in errors}
    (root / "pack.json").unlink()
    errors = packs.validate_pack(packs.load_pack(root))
    assert messages(errors)[0] == "pack.json:/: the pack has no pack.json manifest"


def test_requirements(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    root = simple_pack(tmp_path / "p", requires={"salesmesh": ">=99.0"})
    assert messages(packs.validate_pack(packs.load_pack(root))) == [
        "pack.json:/requires/salesmesh: requires salesmesh >=99.0, "
        f"but {packs.salesmesh_version()} is installed"
    ]
    addon = write_pack(
        tmp_path / "addon",
        {"definitions/pool.json": pool_doc()},
        key="addon",
        requires={"salesmesh": ">=0.1", "packs": {"test-pack": ">=1.0, <2"}},
    )
    addon_pack = packs.load_pack(addon)
    # Offline (no database): other packs are not checked, but the calendar reference cannot resolve.
    assert messages(packs.validate_pack(addon_pack)) == [
        "definitions/pool.json:/cooldown/calendar: refers to calendar 'office-hours', which is neither in "
        "this pack nor published"
    ]
    plan = packs.plan_import(session, addon_pack)
    assert (
        "pack.json:/requires/packs/test-pack: requires pack 'test-pack' >=1.0, <2, which is not installed"
        in (messages(plan.errors))
    )
    packs.apply_import(session, None, packs.load_pack(simple_pack(tmp_path / "base")), clock)
    plan = packs.plan_import(session, addon_pack)
    assert plan.ok and plan.counts["create"] == 1


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("0.1.0", ">=0.1", True),
        ("0.1.0", ">=0.2", False),
        ("1.4.2", ">=1.2, <2", True),
        ("2.0.0", ">=1.2, <2", False),
        ("1.4.2", "~=1.4", True),
        ("2.0.0", "~=1.4", False),
        ("1.5.0", "~=1.4.2", False),
        ("1.0.0-beta", ">=1.0", False),
        ("1.0.0", "==1.0", True),
        ("1.0.1", "!=1.0.1", False),
    ],
)
def test_satisfies(version: str, spec: str, expected: bool) -> None:
    assert packs.satisfies(version, spec) is expected


# --- unsafe archives -----------------------------------------------------------------------------


def _symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (("../evil.json", "{}"), "../evil.json:/: unsafe path in the zip: '..' in the path"),
        (("definitions/../../evil.json", "{}"), "'..' in the path"),
        (("/etc/evil.json", "{}"), "absolute path"),
        (("definitions\\evil.json", "{}"), "backslash in the path"),
        (("C:/evil.json", "{}"), "drive letter in the path"),
        (_symlink_entry("definitions/link.json", "/etc/passwd"), "symbolic links are not allowed"),
    ],
)
def test_unsafe_zip_entries_are_refused(entry, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(pack_zip([entry]))
    assert any(expected in str(e) for e in info.value.errors), messages(info.value.errors)


def test_size_and_count_limits() -> None:
    limits = PackLimits(max_total_bytes=4000, max_members=5, max_file_bytes=1000, max_json_depth=10)
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(pack_zip([("definitions/big.json", " " * 2000)]), limits=limits)
    assert "definitions/big.json:/: file too large: 2000 bytes (the limit is 1000)" in messages(
        info.value.errors
    )
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(pack_zip([(f"x{i}.txt", "x") for i in range(5)]), limits=limits)
    assert "too many entries: 7 (the limit is 5)" in str(info.value)
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(
            pack_zip([(f"x{i}.txt", "x" * 900) for i in range(4)]), limits=PackLimits(max_total_bytes=3000)
        )
    assert "the pack unpacks to" in str(info.value)
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(b"PK\x03\x04 definitely not a zip")
    assert "not a readable zip file" in str(info.value)


def test_compression_bomb_is_refused_before_inflating() -> None:
    bomb = pack_zip([("definitions/bomb.json", b"0" * (30 * 1024 * 1024))])
    assert len(bomb) < 100 * 1024
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(bomb)
    assert "file too large" in str(info.value)


def test_lying_header_is_caught_while_reading() -> None:
    data = bytearray(pack_zip([("definitions/lie.json", b"1" * 5000)]))
    limits = PackLimits(max_file_bytes=4096)
    # Patch the declared sizes of the entry in the central directory to 10 bytes.
    central = data.rfind(b"PK\x01\x02", 0, data.find(b"definitions/lie.json", data.find(b"PK\x01\x02")) + 1)
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(bytes(data), limits=limits)
    assert "definitions/lie.json" in str(info.value)


def test_deep_json_is_refused() -> None:
    deep = "[" * 60 + "]" * 60
    very_deep = "[" * 100_000 + "]" * 100_000
    pack = packs.load_pack_bytes(
        pack_zip([("definitions/deep.json", deep), ("definitions/deeper.json", very_deep)])
    )
    text = messages(packs.validate_pack(pack))
    assert "definitions/deep.json:/: JSON nesting deeper than 48 levels" in text
    assert "definitions/deeper.json:/: JSON nesting deeper than 48 levels" in text


def test_duplicate_zip_entries_are_refused() -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = pack_zip([("definitions/calendar.json", "{}")])
    with pytest.raises(PackRejected) as info:
        packs.load_pack_bytes(data)
    assert "the zip lists this entry twice" in str(info.value)


def test_folder_symlinks_are_refused(tmp_path: Path) -> None:
    root = simple_pack(tmp_path / "p")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}", encoding="utf-8")
    os.symlink(outside, root / "linked-folder")
    os.symlink(outside / "secret.json", root / "definitions" / "linked.json")
    with pytest.raises(PackRejected) as info:
        packs.load_pack(root)
    assert sorted(e.file for e in info.value.errors) == ["definitions/linked.json", "linked-folder"]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(PackRejected, match="no such pack folder or zip file"):
        packs.load_pack(tmp_path / "nothing-here")


# --- importing -----------------------------------------------------------------------------------


def test_import_twice_second_is_a_noop(tmp_path: Path, runtime, clock) -> None:  # type: ignore[no-untyped-def]
    root = simple_pack(tmp_path / "p")
    with runtime.db.session_scope() as s:
        plan = packs.apply_import(s, None, packs.load_pack(root), clock)
        assert plan.applied and plan.counts == {"create": 2, "change": 0, "unchanged": 0, "conflict": 0}
    with runtime.db.session_scope() as s:
        before = counts(s)
        assert before["definitions"] == 2 and before["pack_installs"] == 1
        install = s.scalars(select(PackInstall)).one()
        assert install.summary["definitions"]["calendar/office-hours"]["file"] == "definitions/calendar.json"
        assert {d.pack_key for d in s.scalars(select(Definition))} == {"test-pack"}
        assert versions.get_published(s, "calendar", "office-hours").number == 1
    with runtime.db.session_scope() as s:
        plan = packs.apply_import(s, None, packs.load_pack(root), clock)
        assert plan.already_installed and not plan.applied
        assert plan.counts == {"create": 0, "change": 0, "unchanged": 2, "conflict": 0}
    with runtime.db.session_scope() as s:
        assert counts(s) == before


def test_broken_pack_writes_nothing(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    root = simple_pack(tmp_path / "p")
    doc = json.loads((root / "definitions/objections.json").read_text(encoding="utf-8"))
    doc["types"][0]["responses"][0]["text"] = {"en": "only English"}
    (root / "definitions/objections.json").write_text(json.dumps(doc), encoding="utf-8")
    before = counts(session)
    with pytest.raises(packs.PackInvalid) as info:
        packs.apply_import(session, None, packs.load_pack(root), clock)
    assert [(e.file, e.path) for e in info.value.errors] == [
        ("definitions/objections.json", "/types/0/responses/0/text/zh")
    ]
    assert counts(session) == before


def test_pack_update_publishes_new_versions(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    packs.apply_import(session, None, packs.load_pack(simple_pack(tmp_path / "v1")), clock)
    root = write_pack(
        tmp_path / "v2",
        {
            "definitions/calendar.json": calendar_doc(timezone="UTC"),
            "definitions/objections.json": objections_doc(),
        },
        version="1.1.0",
    )
    plan = packs.plan_import(session, packs.load_pack(root))
    by_key = {i.key: i for i in plan.items}
    assert by_key["office-hours"].action == "change"
    assert by_key["office-hours"].changes == [
        {"op": "replace", "path": "/timezone", "old": "Asia/Shanghai", "new": "UTC"}
    ]
    assert by_key["standard-objections"].action == "unchanged"
    clock.advance(hours=1)
    packs.apply_import(session, None, packs.load_pack(root), clock)
    calendar = versions.get_published(session, "calendar", "office-hours")
    assert calendar.number == 2 and calendar.document["timezone"] == "UTC"
    old = session.scalars(
        select(DefinitionVersion).where(
            DefinitionVersion.number == 1, DefinitionVersion.definition_id == calendar.definition_id
        )
    ).one()
    assert old.status == "archived"
    assert session.scalar(select(func.count()).select_from(PackInstall)) == 2


def test_local_edits_are_kept_as_conflicts(tmp_path: Path, session, make_user, clock) -> None:  # type: ignore[no-untyped-def]
    ops = make_user(role="ops")
    # A definition built locally before the pack arrives.
    local = versions.create_definition_draft(session, ops, pool_doc(calendar="office-hours"), clock)
    packs.apply_import(session, None, packs.load_pack(simple_pack(tmp_path / "v1")), clock)
    versions.publish_version(session, ops, local.id, clock)
    # Ops publishes their own calendar version and opens a draft of the objection library.
    cal = versions.create_definition_draft(session, ops, calendar_doc(timezone="Asia/Tokyo"), clock)
    versions.publish_version(session, ops, cal.id, clock)
    draft = versions.create_definition_draft(
        session, ops, objections_doc(label={"en": "Mine", "zh": "我的"}), clock
    )

    root = write_pack(
        tmp_path / "v2",
        {
            "definitions/calendar.json": calendar_doc(timezone="UTC"),
            "definitions/objections.json": objections_doc(description={"en": "New", "zh": "新"}),
            "definitions/pool.json": pool_doc(calendar="office-hours", claim_cap_per_rep=5),
        },
        version="2.0.0",
    )
    plan = packs.apply_import(session, None, packs.load_pack(root), clock)
    by_key = {i.key: i for i in plan.items}
    assert {k: i.action for k, i in by_key.items()} == {
        "office-hours": "conflict",
        "standard-objections": "conflict",
        "open-pool": "conflict",
    }
    assert "published locally" in by_key["office-hours"].reason
    assert "draft" in by_key["standard-objections"].reason
    assert "created locally" in by_key["open-pool"].reason
    assert all(i.reason_zh for i in plan.items)
    # Nothing local was touched.
    assert versions.get_published(session, "calendar", "office-hours").document["timezone"] == "Asia/Tokyo"
    assert draft.status == "draft" and versions.get_published(session, "pool", "open-pool").id == local.id
    install = session.scalars(select(PackInstall).order_by(PackInstall.id.desc())).first()
    assert [c["key"] for c in install.summary["conflicts"]] == [
        "office-hours",
        "standard-objections",
        "open-pool",
    ]


def test_import_needs_admin(tmp_path: Path, session, make_user, clock) -> None:  # type: ignore[no-untyped-def]
    pack = packs.load_pack(simple_pack(tmp_path / "p"))
    for role in ("ops", "lead", "rep"):
        with pytest.raises(Forbidden):
            packs.apply_import(session, make_user(role=role), pack, clock)
    plan = packs.apply_import(session, make_user(role="admin"), pack, clock)
    assert plan.applied


# --- export --------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_zip", [False, True])
def test_export_round_trip(tmp_path: Path, session, clock, as_zip: bool) -> None:  # type: ignore[no-untyped-def]
    original = packs.load_pack(simple_pack(tmp_path / "p"))
    packs.apply_import(session, None, original, clock)
    out = tmp_path / ("out.zip" if as_zip else "out")
    exported = packs.export_pack(session, None, out, key="test-pack", as_zip=as_zip, clock=clock)
    again = packs.load_pack(out)
    assert packs.validate_pack(again) == []
    assert packs.pack_checksum(again) == packs.pack_checksum(original) == packs.pack_checksum(exported)
    assert again.manifest["checksum"] == packs.pack_checksum(original)
    assert again.listed_files() == original.listed_files()
    assert dict(again.definitions()) == dict(original.definitions())
    # Importing the export of an installed pack changes nothing.
    plan = packs.apply_import(session, None, again, clock)
    assert plan.already_installed
    with pytest.raises(packs.PackExportError):
        packs.export_pack(session, None, out, key="test-pack", as_zip=as_zip, clock=clock)


def test_tampered_export_fails_its_checksum(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    packs.apply_import(session, None, packs.load_pack(simple_pack(tmp_path / "p")), clock)
    out = packs.write_pack(packs.build_export(session, None, key="test-pack", clock=clock), tmp_path / "out")
    doc = json.loads((out / "definitions/calendar.json").read_text(encoding="utf-8"))
    doc["timezone"] = "UTC"
    (out / "definitions/calendar.json").write_text(json.dumps(doc), encoding="utf-8")
    assert messages(packs.validate_pack(packs.load_pack(out))) == [
        "pack.json:/checksum: the checksum does not match the pack's content (edited after export?)"
    ]


def test_export_all_and_unknown_pack(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    version = versions.create_definition_draft(session, None, calendar_doc(), clock)
    versions.publish_version(session, None, version.id, clock)
    versions.create_definition_draft(session, None, objections_doc(), clock)  # a draft is not exported
    pack = packs.export_pack(session, None, tmp_path / "all", clock=clock)
    assert pack.listed_files() == ["definitions/calendar/office-hours.json"]
    assert packs.validate_pack(packs.load_pack(tmp_path / "all")) == []
    with pytest.raises(packs.PackExportError, match="no pack 'nope' is installed"):
        packs.build_export(session, None, key="nope", clock=clock)


# --- the shipped packs ---------------------------------------------------------------------------


def test_shipped_packs_validate() -> None:
    for name in ("medical-device-direct", "saas-remote-team"):
        assert messages(packs.validate_pack(packs.load_pack(SHIPPED_PACKS / name))) == [], name


def test_medical_device_pack_imports_once(runtime, clock) -> None:  # type: ignore[no-untyped-def]
    root = SHIPPED_PACKS / "medical-device-direct"
    assert (root / "pack.json").is_file(), "the shipped pack packs/medical-device-direct is missing"
    with runtime.db.session_scope() as s:
        plan = packs.apply_import(s, None, packs.load_pack(root), clock)
        assert plan.applied and plan.counts["create"] == len(plan.items) > 5
    with runtime.db.session_scope() as s:
        before = counts(s)
    with runtime.db.session_scope() as s:
        plan = packs.apply_import(s, None, packs.load_pack(root), clock)
        assert plan.already_installed and set(i.action for i in plan.items) == {"unchanged"}
    with runtime.db.session_scope() as s:
        assert counts(s) == before


def test_broken_copy_of_shipped_pack_is_refused(tmp_path: Path, session, clock) -> None:  # type: ignore[no-untyped-def]
    source = SHIPPED_PACKS / "medical-device-direct"
    assert (source / "pack.json").is_file(), "the shipped pack packs/medical-device-direct is missing"
    root = shutil.copytree(source, tmp_path / "broken")
    listed = json.loads((root / "pack.json").read_text(encoding="utf-8"))["definitions"]
    target = next(f for f in listed if "pipeline" in f) if any("pipeline" in f for f in listed) else listed[0]
    doc = json.loads((root / target).read_text(encoding="utf-8"))
    doc["label"] = {"en": ""}
    (root / target).write_text(json.dumps(doc), encoding="utf-8")
    before = counts(session)
    with pytest.raises(packs.PackInvalid) as info:
        packs.apply_import(session, None, packs.load_pack(root), clock)
    assert {(e.file, e.path) for e in info.value.errors} >= {(target, "/label/en"), (target, "/label/zh")}
    assert counts(session) == before


@pytest.mark.services
def test_import_and_versions_on_postgresql(pg_runtime, clock) -> None:  # type: ignore[no-untyped-def]
    root = SHIPPED_PACKS / "medical-device-direct"
    with pg_runtime.db.session_scope() as s:
        plan = packs.apply_import(s, None, packs.load_pack(root), clock)
        assert plan.applied
    with pg_runtime.db.session_scope() as s:
        before = counts(s)
        assert packs.apply_import(s, None, packs.load_pack(root), clock).already_installed
    with pg_runtime.db.session_scope() as s:
        assert counts(s) == before
        key = plan.items[0].key
        kind = plan.items[0].kind
        published = versions.get_published(s, kind, key)
        draft = versions.create_definition_draft(s, None, published.document, clock)
        edited = {**published.document, "label": {"en": "Edited", "zh": "已修改"}}
        assert versions.update_draft(s, None, draft.id, edited, 1, clock).lock_version == 2
        with pytest.raises(versions.StaleDraft):
            versions.update_draft(s, None, draft.id, published.document, 1, clock)
    with pg_runtime.db.session_scope() as s:
        exported = packs.build_export(s, None, key="medical-device-direct", clock=clock)
        assert packs.pack_checksum(exported) == plan.checksum
        first = next(iter(exported.documents.values()))
        assert list(first)[:3] == ["kind", "key", "schema_version"]


def test_folder_limits(tmp_path: Path) -> None:
    root = simple_pack(tmp_path / "p")
    (root / "definitions" / "huge.json").write_text(" " * 3000, encoding="utf-8")
    with pytest.raises(PackRejected) as info:
        packs.load_pack(root, limits=PackLimits(max_file_bytes=2000))
    assert messages(info.value.errors) == [
        "definitions/huge.json:/: file too large: 3000 bytes (the limit is 2000)"
    ]
    with pytest.raises(PackRejected, match="too many files"):
        packs.load_pack(root, limits=PackLimits(max_members=2))
    with pytest.raises(PackRejected, match="larger than 4000 bytes"):
        packs.load_pack(root, limits=PackLimits(max_total_bytes=4000))
    # Operating-system litter is ignored rather than counted as a stray file.
    (root / "definitions" / "huge.json").unlink()
    (root / ".git").mkdir()
    (root / ".git" / "config.json").write_text("{}", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    assert packs.validate_pack(packs.load_pack(root)) == []
