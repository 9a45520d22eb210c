"""Definition versions: draft → published → archived, optimistic concurrency, immutability, permissions,
audit and the structural diff."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.exceptions import Forbidden

from salesmesh.metamodel import versions
from salesmesh.metamodel.diff import diff_documents, summarize
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.audit import AuditEvent, verify_chain
from tests.metamodel.pack_samples import calendar_doc


@pytest.fixture
def ops(make_user):  # type: ignore[no-untyped-def]
    return make_user(role="ops")


def _draft(session, ops, clock, doc=None):  # type: ignore[no-untyped-def]
    return versions.create_definition_draft(session, ops, doc or calendar_doc(), clock)


def test_lifecycle_draft_publish_archive(session, ops, clock) -> None:
    v1 = _draft(session, ops, clock)
    assert (v1.number, v1.status, v1.lock_version, v1.created_by_id) == (1, "draft", 1, ops.id)
    assert v1.definition.kind == "calendar" and v1.definition.pack_key is None
    assert versions.get_published(session, "calendar", "office-hours") is None

    clock.advance(hours=1)
    versions.publish_version(session, ops, v1.id, clock)
    assert v1.status == "published" and v1.published_at == clock.now()
    assert versions.get_published(session, "calendar", "office-hours") is v1

    clock.advance(hours=1)
    v2 = _draft(session, ops, clock, calendar_doc(timezone="Europe/Berlin"))
    assert v2.number == 2
    # The published version stays the one records pin until the draft is published.
    assert versions.get_published(session, "calendar", "office-hours") is v1
    versions.publish_version(session, ops, v2.id, clock)
    assert (v1.status, v1.archived_at, v2.status) == ("archived", clock.now(), "published")
    assert versions.get_published(session, "calendar", "office-hours") is v2

    versions.archive_version(session, ops, v2.id, clock)
    assert v2.status == "archived"
    assert versions.get_published(session, "calendar", "office-hours") is None
    with pytest.raises(versions.InvalidTransition):
        versions.archive_version(session, ops, v2.id, clock)
    with pytest.raises(versions.InvalidTransition):
        versions.publish_version(session, ops, v1.id, clock)

    actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == [
        "definition.draft_created",
        "definition.published",
        "definition.draft_created",
        "definition.archived",
        "definition.published",
        "definition.archived",
    ]
    assert verify_chain(session) is None


def test_one_open_draft_per_definition(session, ops, clock) -> None:
    v1 = _draft(session, ops, clock)
    with pytest.raises(versions.DraftExists) as info:
        _draft(session, ops, clock)
    assert info.value.draft_number == v1.number
    versions.archive_version(session, ops, v1.id, clock)  # abandoning the draft frees the slot
    assert _draft(session, ops, clock).number == 2


def test_update_draft_checks_lock_version(session, ops, clock) -> None:
    draft = _draft(session, ops, clock)
    saved = versions.update_draft(session, ops, draft.id, calendar_doc(timezone="UTC"), 1, clock)
    assert saved.lock_version == 2 and saved.document["timezone"] == "UTC"
    with pytest.raises(versions.StaleDraft) as info:
        versions.update_draft(session, ops, draft.id, calendar_doc(timezone="Asia/Tokyo"), 1, clock)
    assert info.value.current_lock_version == 2
    assert draft.document["timezone"] == "UTC"


def test_concurrent_save_is_stale_at_flush(runtime, clock) -> None:
    """Two editors read lock_version 1; the second save loses even though its session still says 1."""
    with runtime.db.session_scope() as s:
        draft_id = versions.create_definition_draft(s, None, calendar_doc(), clock).id
    first, second = runtime.db.Session(), runtime.db.Session()
    try:
        mine = first.get(DefinitionVersion, draft_id)
        first.commit()  # end the read transaction; the object keeps lock_version 1
        theirs = second.get(DefinitionVersion, draft_id)
        versions.update_draft(second, None, theirs.id, calendar_doc(timezone="UTC"), 1, clock)
        second.commit()
        assert mine.lock_version == 1
        with pytest.raises(versions.StaleDraft):
            versions.update_draft(first, None, mine.id, calendar_doc(timezone="Asia/Tokyo"), 1, clock)
        first.rollback()
    finally:
        first.close()
        second.close()
    with runtime.db.session_scope() as s:
        assert s.get(DefinitionVersion, draft_id).document["timezone"] == "UTC"


def test_drafts_may_be_incomplete_but_publishing_validates(session, ops, clock) -> None:
    doc = calendar_doc()
    del doc["timezone"]
    draft = _draft(session, ops, clock, doc)
    errors = versions.validation_errors(draft)
    assert errors == [
        {"path": "/timezone", "message": errors[0]["message"], "message_zh": errors[0]["message_zh"]}
    ]
    with pytest.raises(versions.InvalidDefinition) as info:
        versions.publish_version(session, ops, draft.id, clock)
    assert [e["path"] for e in info.value.errors] == ["/timezone"]
    assert all(e["message"] and e["message_zh"] for e in info.value.errors)
    assert draft.status == "draft"


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ([1, 2], ""),
        ({"key": "x1", "schema_version": 1}, "/kind"),
        ({"kind": "nonsense", "key": "x1", "schema_version": 1}, "/kind"),
        ({"kind": "calendar", "key": "Bad Key", "schema_version": 1}, "/key"),
        ({"kind": "calendar", "key": "ok-key", "schema_version": 99}, "/schema_version"),
    ],
)
def test_draft_envelope_must_be_sound(session, ops, clock, document, path) -> None:
    with pytest.raises(versions.InvalidDefinition) as info:
        versions.create_definition_draft(session, ops, document, clock)
    assert info.value.errors[0]["path"] == path
    assert session.scalar(select(func.count()).select_from(Definition)) == 0


def test_kind_and_key_of_a_draft_are_fixed(session, ops, clock) -> None:
    draft = _draft(session, ops, clock)
    with pytest.raises(versions.InvalidDefinition) as info:
        versions.update_draft(session, ops, draft.id, calendar_doc(key="other-hours"), 1, clock)
    assert info.value.errors[0]["path"] == "/key"


def test_published_versions_are_immutable(session, ops, clock) -> None:
    version = _draft(session, ops, clock)
    versions.publish_version(session, ops, version.id, clock)
    session.flush()
    with pytest.raises(versions.PublishedImmutable):
        versions.update_draft(
            session, ops, version.id, calendar_doc(timezone="UTC"), version.lock_version, clock
        )
    version.document = calendar_doc(timezone="UTC")
    with pytest.raises(versions.PublishedImmutable):
        session.flush()
    session.rollback()
    stored = session.scalars(select(DefinitionVersion)).first()
    assert stored is None or stored.document["timezone"] == "Asia/Shanghai"


def test_published_document_guard_holds_after_commit(runtime, clock) -> None:
    with runtime.db.session_scope() as s:
        version = versions.create_definition_draft(s, None, calendar_doc(), clock)
        versions.publish_version(s, None, version.id, clock)
        version_id = version.id
    with runtime.db.Session() as s:
        stored = s.get(DefinitionVersion, version_id)
        stored.checksum = "0" * 64
        with pytest.raises(versions.PublishedImmutable):
            s.flush()


def test_permissions(session, make_user, clock) -> None:
    rep = make_user(role="rep")
    lead = make_user(role="lead")
    for actor in (rep, lead):
        with pytest.raises(Forbidden):
            versions.create_definition_draft(session, actor, calendar_doc(), clock)
        with pytest.raises(Forbidden):
            versions.list_definitions(session, actor)
    version = versions.create_definition_draft(session, None, calendar_doc(), clock)  # the system
    with pytest.raises(Forbidden):
        versions.publish_version(session, rep, version.id, clock)
    with pytest.raises(Forbidden):
        versions.get_definition(session, rep, "calendar", "office-hours")
    admin = make_user(role="admin")
    assert [d.key for d in versions.list_definitions(session, admin)] == ["office-hours"]
    assert versions.list_definitions(session, admin, kind="form") == []
    inactive_ops = make_user(role="ops", active=False)
    with pytest.raises(Forbidden):
        versions.list_definitions(session, inactive_ops)


def test_get_version_and_not_found(session, ops, clock) -> None:
    version = _draft(session, ops, clock)
    assert versions.get_version(session, ops, "calendar", "office-hours", 1) is version
    with pytest.raises(versions.DefinitionNotFound):
        versions.get_version(session, ops, "calendar", "office-hours", 2)
    with pytest.raises(versions.DefinitionNotFound):
        versions.get_definition(session, ops, "calendar", "missing")


def test_diff_versions(session, ops, clock) -> None:
    v1 = _draft(session, ops, clock)
    versions.publish_version(session, ops, v1.id, clock)
    doc = calendar_doc(timezone="UTC")
    doc["working_hours"]["wed"] = [{"start": "10:00", "end": "16:00"}]
    del doc["working_hours"]["tue"]
    v2 = _draft(session, ops, clock, doc)
    changes = versions.diff_versions(v1, v2)
    assert changes == [
        {"op": "replace", "path": "/timezone", "old": "Asia/Shanghai", "new": "UTC"},
        {
            "op": "remove",
            "path": "/working_hours/tue",
            "old": [{"start": "09:00", "end": "18:00"}],
            "new": None,
        },
        {"op": "add", "path": "/working_hours/wed", "old": None, "new": [{"start": "10:00", "end": "16:00"}]},
    ]
    assert versions.diff_versions(v2, v2) == []


def test_diff_documents_arrays_escaping_and_types() -> None:
    old = {"a/b": [1, 2, 3], "t~": True, "n": 1, "same": {"x": [1]}}
    new = {"a/b": [1, 5], "t~": 1, "n": 1.0, "same": {"x": [1]}}
    changes = diff_documents(old, new)
    assert changes == [
        {"op": "replace", "path": "/a~1b/1", "old": 2, "new": 5},
        {"op": "remove", "path": "/a~1b/2", "old": 3, "new": None},
        {"op": "replace", "path": "/t~0", "old": True, "new": 1},
    ]
    assert summarize(changes) == {"add": 0, "remove": 1, "replace": 2}
    assert diff_documents(None, {"k": 1}) == [{"op": "add", "path": "", "old": None, "new": {"k": 1}}]
    assert diff_documents([1], [1, 2, 3]) == [
        {"op": "add", "path": "/1", "old": None, "new": 2},
        {"op": "add", "path": "/2", "old": None, "new": 3},
    ]
