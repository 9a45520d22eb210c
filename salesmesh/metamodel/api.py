"""The definitions JSON API under `/api/v1/definitions`: list, read, create and update drafts, validate,
publish, archive and diff versions.

Token- or session-authenticated, ops and admin only. Each handler parses the request, calls one service
of `salesmesh.metamodel.versions` and commits once. Service errors map to HTTP statuses: unknown
definition or version → 404, invalid document → 422 with the list of `{path, message, message_zh}`, a
stale draft save → 409 carrying the draft's current `lock_version`, a forbidden state change → 409.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, jsonify, request

from salesmesh.metamodel import versions
from salesmesh.metamodel.diff import summarize
from salesmesh.metamodel.kinds import UnknownKind, get_kind
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.metamodel.validation import validate_document
from salesmesh.platform.auth import current_user, roles_required
from salesmesh.platform.web import ApiError, db, parse_json, runtime

bp = Blueprint("definitions_api", __name__, url_prefix="/api/v1/definitions")

F = TypeVar("F", bound=Callable[..., Any])


class StaleDraftError(ApiError):
    """409 for a stale draft save; the body also carries the draft's current lock_version."""

    def __init__(self, message: str, lock_version: int | None) -> None:
        super().__init__(409, "stale_draft", message)
        self.lock_version = lock_version

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["error"]["lock_version"] = self.lock_version
        return body


def _api_errors(view: F) -> F:
    """Translate the services' exceptions into ApiError responses."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except versions.StaleDraft as exc:
            raise StaleDraftError(exc.message, exc.current_lock_version) from None
        except versions.DraftExists as exc:
            raise ApiError(
                409,
                exc.code,
                exc.message,
                [
                    {
                        "path": "",
                        "message": f"edit draft version {exc.draft_number} (lock_version "
                        f"{exc.lock_version}) instead",
                        "message_zh": f"请编辑草稿版本 {exc.draft_number}",
                    }
                ],
            ) from None
        except versions.DefinitionNotFound as exc:
            raise ApiError(404, exc.code, exc.message) from None
        except versions.InvalidDefinition as exc:
            raise ApiError(422, exc.code, exc.message, exc.errors) from None
        except versions.InvalidTransition as exc:
            raise ApiError(409, exc.code, exc.message) from None

    return wrapper  # type: ignore[return-value]


def guarded(view: F) -> F:
    """Ops/admin only, with service errors rendered as JSON."""
    return roles_required("admin", "ops")(_api_errors(view))  # type: ignore[return-value]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def version_json(version: DefinitionVersion, *, document: bool = False) -> dict[str, Any]:
    """Serialise a version (with its document and current validation errors when `document`)."""
    body: dict[str, Any] = {
        "id": version.id,
        "number": version.number,
        "status": version.status,
        "lock_version": version.lock_version,
        "checksum": version.checksum,
        "schema_version": version.schema_version,
        "created_by_id": version.created_by_id,
        "created_at": _iso(version.created_at),
        "updated_at": _iso(version.updated_at),
        "published_at": _iso(version.published_at),
        "archived_at": _iso(version.archived_at),
    }
    if document:
        errors = versions.validation_errors(version)
        body["document"] = version.document
        body["valid"] = not errors
        body["errors"] = errors
    return body


def definition_json(definition: Definition) -> dict[str, Any]:
    """Serialise a definition's identity and where its versions stand."""
    published = versions.published_of(definition)
    draft = versions.draft_of(definition)
    latest = definition.versions[-1] if definition.versions else None
    label = (published or latest).document.get("label") if (published or latest) else None
    return {
        "kind": definition.kind,
        "key": definition.key,
        "label": label,
        "pack_key": definition.pack_key,
        "created_at": _iso(definition.created_at),
        "published_number": published.number if published else None,
        "draft_number": draft.number if draft else None,
        "draft_lock_version": draft.lock_version if draft else None,
        "latest_number": latest.number if latest else None,
        "updated_at": _iso(latest.updated_at) if latest else None,
    }


def _kind_or_404(kind: str) -> None:
    try:
        get_kind(kind)
    except UnknownKind:
        raise ApiError(404, "not_found", f"unknown kind {kind!r}") from None


@bp.get("")
@guarded
def list_definitions() -> Any:
    """List definitions (?kind=form to filter)."""
    kind = request.args.get("kind") or None
    if kind:
        _kind_or_404(kind)
    items = versions.list_definitions(db(), current_user(), kind=kind)
    return jsonify({"definitions": [definition_json(d) for d in items]})


@bp.post("")
@guarded
def create_draft() -> Any:
    """Create a draft from the posted document (a new definition or the next version of one)."""
    document = parse_json()
    version = versions.create_definition_draft(db(), current_user(), document, runtime().clock)
    body = {
        "definition": definition_json(version.definition),
        "version": version_json(version, document=True),
    }
    db().commit()
    return jsonify(body), 201


@bp.post("/validate")
@guarded
def validate() -> Any:
    """Validate a posted document without storing it."""
    document = parse_json()
    errors = [e.to_dict() for e in validate_document(document)]
    return jsonify({"valid": not errors, "errors": errors})


@bp.get("/<kind>/<key>")
@guarded
def get_definition(kind: str, key: str) -> Any:
    """Return a definition, its published version (with document) and every version's summary."""
    definition = versions.get_definition(db(), current_user(), kind, key)
    published = versions.published_of(definition)
    return jsonify(
        {
            "definition": definition_json(definition),
            "published": version_json(published, document=True) if published else None,
            "versions": [version_json(v) for v in definition.versions],
        }
    )


@bp.get("/<kind>/<key>/versions/<int:number>")
@guarded
def get_version(kind: str, key: str, number: int) -> Any:
    """Return one version with its document and current validation errors."""
    version = versions.get_version(db(), current_user(), kind, key, number)
    return jsonify(
        {"definition": definition_json(version.definition), "version": version_json(version, document=True)}
    )


@bp.put("/<kind>/<key>/draft")
@guarded
def update_draft(kind: str, key: str) -> Any:
    """Save the open draft: body {document, lock_version}; a stale lock_version answers 409."""
    body = parse_json()
    errors = []
    if "document" not in body:
        errors.append({"path": "/document", "message": "required", "message_zh": "必填"})
    lock = body.get("lock_version")
    if not isinstance(lock, int) or isinstance(lock, bool):
        errors.append(
            {
                "path": "/lock_version",
                "message": "required: the lock_version you read",
                "message_zh": "必填：读取时的 lock_version",
            }
        )
    if errors:
        raise ApiError(400, "invalid_body", "body must be {document, lock_version}", errors)
    definition = versions.get_definition(db(), current_user(), kind, key)
    draft = versions.draft_of(definition)
    if draft is None:
        raise ApiError(404, "not_found", f"{kind}/{key} has no open draft (POST the document to start one)")
    version = versions.update_draft(db(), current_user(), draft.id, body["document"], lock, runtime().clock)
    result = {"definition": definition_json(definition), "version": version_json(version, document=True)}
    db().commit()
    return jsonify(result)


@bp.post("/<kind>/<key>/versions/<int:number>/publish")
@guarded
def publish(kind: str, key: str, number: int) -> Any:
    """Publish a draft version (the previously published one is archived)."""
    version = versions.get_version(db(), current_user(), kind, key, number)
    versions.publish_version(db(), current_user(), version.id, runtime().clock)
    result = {
        "definition": definition_json(version.definition),
        "version": version_json(version, document=True),
    }
    db().commit()
    return jsonify(result)


@bp.post("/<kind>/<key>/versions/<int:number>/archive")
@guarded
def archive(kind: str, key: str, number: int) -> Any:
    """Archive a version (a published one retires the definition; a draft is abandoned)."""
    version = versions.get_version(db(), current_user(), kind, key, number)
    versions.archive_version(db(), current_user(), version.id, runtime().clock)
    result = {"definition": definition_json(version.definition), "version": version_json(version)}
    db().commit()
    return jsonify(result)


@bp.get("/<kind>/<key>/diff")
@guarded
def diff(kind: str, key: str) -> Any:
    """Diff two versions: ?from=1&to=2 (JSON pointer paths, old and new values)."""
    numbers = []
    for name in ("from", "to"):
        raw = request.args.get(name, "")
        if not (raw.isascii() and raw.isdigit()):
            raise ApiError(
                400,
                "invalid_query",
                f"?{name}= must be a version number",
                [{"path": name, "message": "expected a version number", "message_zh": "应为版本号"}],
            )
        numbers.append(int(raw))
    old = versions.get_version(db(), current_user(), kind, key, numbers[0])
    new = versions.get_version(db(), current_user(), kind, key, numbers[1])
    changes = versions.diff_versions(old, new)
    return jsonify({"from": old.number, "to": new.number, "summary": summarize(changes), "changes": changes})
