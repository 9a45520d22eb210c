"""`POST /api/v1/leads`: integrations post leads, signed per channel, with idempotent retries.

The request carries `X-Salesmesh-Channel` (the channel key), `X-Salesmesh-Timestamp` (unix seconds)
and `X-Salesmesh-Signature: sha256=<hex HMAC-SHA256 of timestamp + "." + raw body>`; see
`intake_channels.check_request` and docs/integrations.md. The body is `{"fields": {...form values...},
"campaign": "...", "received_at": "<ISO 8601 with offset>"}` (only `fields` is required), read within
the size and depth limits of `web.parse_json`: a body over `max_request_bytes` is a 413 `too_large`, and
a malformed `Idempotency-Key` a 400 `bad_idempotency_key`, before anything is written. With an
`Idempotency-Key` header the reply is stored with the sha256 of the body, unique per (channel, key), in
the same transaction as the lead: the same key and body again replay it (`Idempotent-Replay: true`), the
same key with another body is a 422, and a concurrent request with the same key that loses the race on
the unique index rolls back and replays the winner's reply, so it never makes a second lead. Only
executed intakes (201 new lead, 200 duplicate of an open lead) are stored; a rejected request may be
corrected and retried under the same key. Errors are `{"error": {code, message, errors: [{path,
message, message_zh}]}}` with JSON pointers into the body. An executed intake starts the notifications
delivery job once it commits (`notifications.kick_delivery`), so the owner's e-mail and webhook leave at
once rather than with the next periodic run. Blueprint "intake_api", CSRF-exempt (signed, not
cookie-authenticated).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from salesmesh.platform.notifications import kick_delivery
from salesmesh.platform.web import ApiError, db, parse_json, runtime
from salesmesh.workflows.intake import IntakeInvalid, IntakeResult, IntakeUnavailable, intake_lead
from salesmesh.workflows.intake_channels import SKEW, SignatureRejected, check_request
from salesmesh.workflows.intake_models import IdempotencyRecord, IntakeChannel
from salesmesh.workflows.routing import explain

bp = Blueprint("intake_api", __name__)
MAX_IDEMPOTENCY_KEY = 200
ENVELOPE_KEYS = ("fields", "campaign", "received_at")


def _error(path: str, message: str, message_zh: str) -> dict[str, str]:
    return {"path": path, "message": message, "message_zh": message_zh}


def _lookup(
    session: Session, channel_key: str, idempotency_key: str | None
) -> tuple[IntakeChannel | None, IdempotencyRecord | None]:
    """Read the channel and, with a key, its stored reply in one query."""
    if idempotency_key is None:
        return session.scalars(select(IntakeChannel).where(IntakeChannel.key == channel_key)).first(), None
    row = session.execute(
        select(IntakeChannel, IdempotencyRecord)
        .outerjoin(
            IdempotencyRecord,
            and_(IdempotencyRecord.channel_id == IntakeChannel.id, IdempotencyRecord.key == idempotency_key),
        )
        .where(IntakeChannel.key == channel_key)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _replay(record: IdempotencyRecord, digest: str) -> Response:
    if record.body_sha256 != digest:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different body",
            [
                _error(
                    "",
                    "use a new Idempotency-Key for a different request",
                    "请求内容不同时请使用新的 Idempotency-Key",
                )
            ],
        )
    response = jsonify(record.response)
    response.status_code = record.status
    response.headers["Idempotent-Replay"] = "true"
    return response


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"the Idempotency-Key header must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            [
                _error(
                    "",
                    f"Idempotency-Key header: use 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
                    f"Idempotency-Key 请求头应为 1 至 {MAX_IDEMPOTENCY_KEY} 个可打印的 ASCII 字符",
                )
            ],
        )
    return key


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Any:
    """Answer a body over the app's size limit in this API's error format (not the generic 413)."""
    limit = runtime().settings.max_request_bytes
    error = ApiError(
        413,
        "too_large",
        f"the request body is larger than {limit} bytes",
        [_error("", f"send at most {limit} bytes", f"请求内容不能超过 {limit} 字节")],
    )
    return jsonify(error.to_json()), 413


def _envelope(body: dict[str, Any], now: datetime) -> tuple[dict[str, Any], str | None, datetime | None]:
    """Check the body's shape; return (fields, campaign, received_at) or raise a 422 with pointers."""
    errors = [
        _error(f"/{key}", f"unknown member '{key}'", f"未知成员“{key}”")
        for key in body
        if key not in ENVELOPE_KEYS
    ]
    fields = body.get("fields")
    if not isinstance(fields, dict):
        errors.append(
            _error("/fields", "required: an object of form field values", "必填：由表单字段值组成的对象")
        )
    campaign = body.get("campaign")
    if campaign is not None and (not isinstance(campaign, str) or not 1 <= len(campaign.strip()) <= 120):
        errors.append(_error("/campaign", "must be a text of 1-120 characters", "应为 1 至 120 个字符的文本"))
    received: datetime | None = None
    raw_received = body.get("received_at")
    if raw_received is not None:
        try:
            received = datetime.fromisoformat(raw_received) if isinstance(raw_received, str) else None
        except ValueError:
            received = None
        if received is None or received.tzinfo is None:
            errors.append(
                _error(
                    "/received_at",
                    "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-11-27T09:30:00+08:00",
                    "应为带时区偏移的 ISO 8601 时间，例如 2026-11-27T09:30:00+08:00",
                )
            )
            received = None
        elif received > now + SKEW:
            errors.append(_error("/received_at", "must not be in the future", "不能晚于当前时间"))
        elif received < now - timedelta(days=366):
            errors.append(_error("/received_at", "must be within the last year", "应在一年以内"))
    if errors:
        raise ApiError(422, "invalid_request", "the request body has errors", errors)
    return fields, campaign.strip() if isinstance(campaign, str) else None, received  # type: ignore[return-value]


def result_json(result: IntakeResult) -> dict[str, Any]:
    """Serialise an intake for the API: the lead, its owner, and the routing decision or duplicate link."""
    lead = result.lead
    decision = result.decision
    owner_name = None
    if decision is not None:
        owner_name = ((decision.explanation or {}).get("owner") or {}).get("name")
    elif lead.owner is not None:
        owner_name = lead.owner.name
    body: dict[str, Any] = {
        "lead_id": lead.id,
        "created": result.created,
        "status": lead.status,
        "owner": {"id": lead.owner_id, "name": owner_name} if lead.owner_id is not None else None,
        "team_id": lead.team_id,
        "duplicate_of_id": None,
        "routing": None,
    }
    if decision is not None:
        explained = explain(decision)
        body["routing"] = {
            "decision_id": decision.id,
            "outcome": decision.outcome,
            "rule": decision.rule_key,
            "fallback": decision.used_fallback,
            "channel": decision.channel,
            "strategy": decision.strategy,
            "pool": decision.pool_key,
            "reason": decision.reason,
            "summary": explained["summary"],
        }
    if result.duplicate is not None:
        body["duplicate_of_id"] = lead.id
        body["duplicate"] = {"id": result.duplicate.id, "matched_on": result.duplicate.matched_on}
    return body


@bp.post("/api/v1/leads")
def post_lead() -> Any:
    """Take one signed lead from an integration: validate, de-duplicate, route; 201 with the decision."""
    rt = runtime()
    session = db()
    idempotency_key = _idempotency_key()
    raw = request.get_data(cache=True)
    channel, stored = _lookup(session, request.headers.get("X-Salesmesh-Channel", ""), idempotency_key)
    try:
        channel = check_request(
            channel,
            request.headers.get("X-Salesmesh-Timestamp"),
            request.headers.get("X-Salesmesh-Signature"),
            raw,
            clock=rt.clock,
        )
    except SignatureRejected as exc:
        raise ApiError(401, exc.code, exc.message) from None
    digest = hashlib.sha256(raw).hexdigest()
    if stored is not None:
        return _replay(stored, digest)
    fields, campaign, received_at = _envelope(parse_json(), rt.clock.now())
    try:
        result = intake_lead(
            session,
            channel=channel,
            payload=fields,
            clock=rt.clock,
            idempotency_key=idempotency_key,
            received_at=received_at,
            campaign=campaign,
        )
    except IntakeInvalid as exc:
        errors = [{**e, "path": "/fields" + e["path"]} for e in exc.errors]
        raise ApiError(422, "invalid_lead", "the lead does not fit the lead form", errors) from None
    except IntakeUnavailable as exc:
        raise ApiError(503, "intake_unavailable", str(exc)) from None
    status = 201 if result.created else 200
    body = result_json(result)
    if idempotency_key is not None:
        session.add(
            IdempotencyRecord(
                channel_id=channel.id,
                key=idempotency_key,
                body_sha256=digest,
                status=status,
                response=body,
                created_at=rt.clock.now(),
            )
        )
    # The owner's (or, for a duplicate, the original owner's) notice leaves after the commit; a lost
    # idempotency race rolls back and drops this with everything else.
    kick_delivery(session, rt.jobs)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: ours is undone, theirs is the answer.
        session.rollback()
        stored = session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.channel_id == channel.id, IdempotencyRecord.key == idempotency_key
            )
        ).first()
        if stored is None:
            raise
        return _replay(stored, digest)
    return jsonify(body), status
