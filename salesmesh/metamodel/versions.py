"""Definition versions: the services that move a definition's documents draft → published → archived.

A definition (kind + key) has numbered versions. At most one of them is an open **draft**; saving a draft
must name the `lock_version` it was read at, and a stale save raises `StaleDraft` (HTTP 409). Drafts are
work in progress: their envelope must be sound (a JSON object of a known kind, with a key, at a
schema_version we can read or upgrade), but the body may still fail its schema, and `validation_errors`
reports what is wrong. **Publishing** validates the whole document, archives the previously published
version and freezes the document: a mapper guard refuses any later change to the document of a version
that is no longer a draft. Every service checks permission through `salesmesh.platform.policy`, audits
through the hash-chained log, flushes and never commits. `get_published` is the lookup other areas use to
pin the version a record starts under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from salesmesh.metamodel.diff import diff_documents
from salesmesh.metamodel.kinds import UnknownKind, get_kind
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.metamodel.validation import (
    KEY_PATTERN,
    DocumentInvalid,
    ValidationError,
    checksum,
    upgrade_document,
    validate_document,
)
from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock

_FROZEN_COLUMNS = ("document", "checksum", "schema_version", "number", "definition_id")


def _err(path: str, message: str, message_zh: str) -> dict[str, str]:
    return {"path": path, "message": message, "message_zh": message_zh}


class DefinitionError(Exception):
    """Base of the errors a definition service raises; `code` names it for the API."""

    code = "definition_error"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class DefinitionNotFound(DefinitionError):
    """No such definition or version (or the actor may not see it)."""

    code = "not_found"


class InvalidDefinition(DefinitionError):
    """The document does not validate; `errors` lists {path, message, message_zh}."""

    code = "invalid_definition"


class StaleDraft(DefinitionError):
    """The draft changed since the caller read it; `current_lock_version` is what it is now."""

    code = "stale_draft"

    def __init__(self, message: str, current_lock_version: int | None) -> None:
        super().__init__(message)
        self.current_lock_version = current_lock_version


class DraftExists(DefinitionError):
    """The definition already has an open draft; edit that one instead."""

    code = "draft_exists"

    def __init__(self, message: str, draft: DefinitionVersion) -> None:
        super().__init__(message)
        self.draft_number = draft.number
        self.lock_version = draft.lock_version


class InvalidTransition(DefinitionError):
    """The version is not in a state that allows this step (e.g. publishing an archived version)."""

    code = "invalid_transition"


class PublishedImmutable(InvalidTransition):
    """A published or archived version's document cannot change; create a new draft instead."""

    code = "published_immutable"


def _check(actor: Any, action: str, obj: Any) -> None:
    # The system (CLI, seeder, jobs) acts with actor=None and skips the policy explicitly.
    if actor is not None:
        policy.require(actor, action, obj)


# --- the immutability guard ----------------------------------------------------------------------


@event.listens_for(DefinitionVersion, "before_update")
def _refuse_frozen_changes(_mapper: Mapper[Any], connection: Connection, target: DefinitionVersion) -> None:
    state = inspect(target)
    if not any(state.attrs[name].history.has_changes() for name in _FROZEN_COLUMNS):
        return
    stored = connection.execute(
        select(DefinitionVersion.status).where(DefinitionVersion.id == target.id)
    ).scalar_one_or_none()
    if stored is not None and stored != "draft":
        raise PublishedImmutable(
            f"version {target.number} is {stored}; its document cannot change (create a new draft)"
        )


# --- reading -------------------------------------------------------------------------------------


def get_published(session: Session, kind: str, key: str) -> DefinitionVersion | None:
    """Return the published version of a definition, or None (no permission check: used for pinning)."""
    return session.scalars(
        select(DefinitionVersion)
        .join(Definition)
        .where(Definition.kind == kind, Definition.key == key, DefinitionVersion.status == "published")
    ).first()


def draft_of(definition: Definition) -> DefinitionVersion | None:
    """Return the open draft of a definition, if any."""
    return next((v for v in definition.versions if v.status == "draft"), None)


def published_of(definition: Definition) -> DefinitionVersion | None:
    """Return the published version of a loaded definition, if any."""
    return next((v for v in definition.versions if v.status == "published"), None)


def list_definitions(session: Session, actor: Any, kind: str | None = None) -> list[Definition]:
    """Return the definitions the actor may view (optionally of one kind), ordered by kind and key."""
    _check(actor, "definition.view", None)
    stmt = (
        select(Definition)
        .options(selectinload(Definition.versions))
        .order_by(Definition.kind, Definition.key)
    )
    if kind:
        stmt = stmt.where(Definition.kind == kind)
    return list(session.scalars(stmt))


def get_definition(session: Session, actor: Any, kind: str, key: str) -> Definition:
    """Return one definition with its versions, or raise DefinitionNotFound."""
    definition = session.scalars(
        select(Definition)
        .options(selectinload(Definition.versions))
        .where(Definition.kind == kind, Definition.key == key)
    ).first()
    if definition is None:
        raise DefinitionNotFound(f"no definition {kind}/{key}")
    _check(actor, "definition.view", definition)
    return definition


def get_version(session: Session, actor: Any, kind: str, key: str, number: int) -> DefinitionVersion:
    """Return version `number` of a definition, or raise DefinitionNotFound."""
    definition = get_definition(session, actor, kind, key)
    version = next((v for v in definition.versions if v.number == number), None)
    if version is None:
        raise DefinitionNotFound(f"{kind}/{key} has no version {number}")
    return version


def _load_version(session: Session, version_id: int) -> DefinitionVersion:
    version = session.get(DefinitionVersion, version_id)
    if version is None:
        raise DefinitionNotFound(f"no definition version {version_id}")
    return version


def validation_errors(version: DefinitionVersion) -> list[dict[str, Any]]:
    """Return the current validation errors of a stored version ([] when it validates)."""
    return [e.to_dict() for e in validate_document(version.document, expected_kind=version.definition.kind)]


def diff_versions(a: DefinitionVersion, b: DefinitionVersion) -> list[dict[str, Any]]:
    """Return the changes from version `a` to version `b` as {op, path, old, new} entries."""
    return diff_documents(a.document, b.document)


# --- writing -------------------------------------------------------------------------------------


def prepare_document(document: Any) -> dict[str, Any]:
    """Check a document's envelope and upgrade it to its kind's current schema_version, or raise."""
    if not isinstance(document, dict):
        raise InvalidDefinition(
            "a definition must be a JSON object",
            [_err("", "a definition must be a JSON object", "定义必须是一个 JSON 对象")],
        )
    kind_name = document.get("kind")
    if not isinstance(kind_name, str):
        raise InvalidDefinition(
            "kind is missing", [_err("/kind", "kind is required", "缺少 kind（定义类型）")]
        )
    try:
        get_kind(kind_name)
    except UnknownKind:
        raise InvalidDefinition(
            f"unknown kind {kind_name!r}",
            [_err("/kind", f"unknown kind {kind_name!r}", f"未知的定义类型 {kind_name!r}")],
        ) from None
    key = document.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidDefinition(
            "key is missing or malformed",
            [
                _err(
                    "/key",
                    "Key must be 2-80 characters: a lowercase letter, then lowercase letters, digits, "
                    "'_' or '-'",
                    "标识须为 2–80 个字符：以小写字母开头，其后为小写字母、数字、“_”或“-”",
                )
            ],
        )
    try:
        upgraded = upgrade_document(document)
    except DocumentInvalid as exc:
        raise InvalidDefinition("the document cannot be read", [e.to_dict() for e in exc.errors]) from None
    return upgraded


def _audit(session: Session, actor: Any, clock: Clock, action: str, version: DefinitionVersion) -> None:
    definition = version.definition
    record_event(
        session,
        at=clock.now(),
        actor_id=getattr(actor, "id", None),
        action=action,
        object_type="definition_version",
        object_id=version.id,
        payload={
            "kind": definition.kind,
            "key": definition.key,
            "number": version.number,
            "status": version.status,
            "checksum": version.checksum,
        },
    )


def new_version(
    session: Session,
    definition: Definition,
    document: dict[str, Any],
    *,
    status: str,
    actor: Any,
    now: datetime,
) -> DefinitionVersion:
    """Add the next-numbered version to a definition (no checks; callers validate and authorize)."""
    number = (
        session.scalar(
            select(func.max(DefinitionVersion.number)).where(DefinitionVersion.definition_id == definition.id)
        )
        or 0
    ) + 1
    version = DefinitionVersion(
        definition=definition,
        number=number,
        status=status,
        document=document,
        checksum=checksum(document),
        schema_version=int(document.get("schema_version") or get_kind(definition.kind).schema_version),
        created_by_id=getattr(actor, "id", None),
        created_at=now,
        updated_at=now,
        published_at=now if status == "published" else None,
    )
    session.add(version)
    return version


def promote(session: Session, version: DefinitionVersion, now: datetime) -> DefinitionVersion | None:
    """Make `version` the published one and archive the previous; return the archived version, if any."""
    previous = None
    for other in version.definition.versions:
        if other is not version and other.status == "published":
            other.status = "archived"
            other.archived_at = now
            other.updated_at = now
            previous = other
    version.status = "published"
    version.published_at = now
    version.updated_at = now
    return previous


def create_definition_draft(session: Session, actor: Any, document: Any, clock: Clock) -> DefinitionVersion:
    """Create a draft: a new definition, or the next version of an existing one (one open draft at most)."""
    doc = prepare_document(document)
    now = clock.now()
    definition = session.scalars(
        select(Definition)
        .where(Definition.kind == doc["kind"], Definition.key == doc["key"])
        .with_for_update()
    ).first()
    _check(actor, "definition.edit", definition)
    if definition is None:
        definition = Definition(kind=doc["kind"], key=doc["key"], created_at=now, pack_key=None)
        session.add(definition)
        session.flush()
    else:
        existing = draft_of(definition)
        if existing is not None:
            raise DraftExists(
                f"{definition.kind}/{definition.key} already has draft version {existing.number}", existing
            )
    version = new_version(session, definition, doc, status="draft", actor=actor, now=now)
    session.flush()
    _audit(session, actor, clock, "definition.draft_created", version)
    return version


def update_draft(
    session: Session, actor: Any, version_id: int, document: Any, expected_lock_version: int, clock: Clock
) -> DefinitionVersion:
    """Replace a draft's document, refusing with StaleDraft when `expected_lock_version` is not current."""
    version = _load_version(session, version_id)
    definition = version.definition
    _check(actor, "definition.edit", definition)
    if version.status != "draft":
        raise PublishedImmutable(
            f"version {version.number} is {version.status}; its document cannot change (create a new draft)"
        )
    if version.lock_version != expected_lock_version:
        raise StaleDraft(
            f"the draft was changed by someone else (lock_version is {version.lock_version}, "
            f"not {expected_lock_version}); reload it",
            version.lock_version,
        )
    doc = prepare_document(document)
    if doc["kind"] != definition.kind or doc["key"] != definition.key:
        raise InvalidDefinition(
            "kind and key of a draft cannot change",
            [
                _err(
                    "/kind" if doc["kind"] != definition.kind else "/key",
                    f"must stay {definition.kind}/{definition.key}",
                    f"必须保持为 {definition.kind}/{definition.key}",
                )
            ],
        )
    version.document = doc
    version.checksum = checksum(doc)
    version.schema_version = int(doc.get("schema_version") or version.schema_version)
    version.updated_at = clock.now()
    try:
        session.flush()
    except StaleDataError:
        raise StaleDraft("the draft was changed by someone else; reload it", None) from None
    _audit(session, actor, clock, "definition.draft_updated", version)
    return version


def publish_version(session: Session, actor: Any, version_id: int, clock: Clock) -> DefinitionVersion:
    """Validate a draft and publish it; the previously published version is archived."""
    version = _load_version(session, version_id)
    definition = version.definition
    _check(actor, "definition.publish", definition)
    if version.status != "draft":
        raise InvalidTransition(
            f"only a draft can be published; version {version.number} is {version.status}"
        )
    errors = validate_document(version.document, expected_kind=definition.kind)
    if not errors and version.document.get("key") != definition.key:
        errors = [ValidationError("/key", f"must be {definition.key}", f"必须是 {definition.key}")]
    if errors:
        raise InvalidDefinition(
            f"{definition.kind}/{definition.key} version {version.number} does not validate",
            [e.to_dict() for e in errors],
        )
    now = clock.now()
    previous = promote(session, version, now)
    try:
        session.flush()
    except StaleDataError:
        raise StaleDraft("the draft was changed by someone else; reload it", None) from None
    if previous is not None:
        _audit(session, actor, clock, "definition.archived", previous)
    _audit(session, actor, clock, "definition.published", version)
    return version


def archive_version(session: Session, actor: Any, version_id: int, clock: Clock) -> DefinitionVersion:
    """Archive a published version (retiring the definition) or abandon a draft."""
    version = _load_version(session, version_id)
    definition = version.definition
    _check(actor, "definition.publish", definition)
    if version.status == "archived":
        raise InvalidTransition(f"version {version.number} is already archived")
    now = clock.now()
    version.status = "archived"
    version.archived_at = now
    version.updated_at = now
    session.flush()
    _audit(session, actor, clock, "definition.archived", version)
    return version
