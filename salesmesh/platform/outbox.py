"""The outbox: messages that leave the process (e-mail over SMTP, HMAC-signed webhooks), written as rows in
the transaction that decided to send them and delivered after commit by a job.

`enqueue_messages(session, [...], now=...)` inserts rows with `INSERT ... ON CONFLICT DO NOTHING` on the
idempotency key, so code that runs again (a retried job, a re-run sweep) never queues a message twice.
`deliver_due(runtime)` claims due rows under a lease (the setting `outbox_lease_seconds`) in one short
transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), sends them with no
transaction open (a slow SMTP server never holds a database lock), then records every result in a second
short transaction: sent, or retried with exponential backoff, or failed for good after `max_attempts`
with the last error kept. A crash between sending and recording re-sends once the lease expires (at least
once), so each message carries its key for the receiver to drop repeats: an e-mail's `Message-ID` is
derived from it, a webhook sends it as `Idempotency-Key`. Webhook bodies are signed like inbound intake
requests: `X-Salesmesh-Timestamp` (unix seconds) and
`X-Salesmesh-Signature: sha256=<HMAC-SHA256(secret, timestamp + "." + body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.egress import send_guarded_webhook

if TYPE_CHECKING:
    from salesmesh.platform.runtime import Runtime
    from salesmesh.platform.settings import Settings

log = logging.getLogger("salesmesh.outbox")

CHANNELS = ("email", "webhook")
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
OUTBOX_STATUSES = (PENDING, SENDING, SENT, FAILED)
MAX_ATTEMPTS = 8  # with the backoff below: about four hours of retries
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=6)
DELIVERY_BATCH = 20
_ERROR_LIMIT = 2000
USER_AGENT = "salesmesh-webhooks/1"


class OutboxMessage(Base):
    """One message to send once: an e-mail to an address, or a signed POST to a webhook URL."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status"),
        # The delivery job reads due rows of one status in due order.
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(500))  # an e-mail address or a URL
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=MAX_ATTEMPTS)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryError(RuntimeError):
    """A message could not be sent this time (the message says why); it is retried with backoff."""


@dataclass(frozen=True)
class Message:
    """A message to queue: `payload` is {"subject", "text"} for e-mail, {"event", "body"} for a webhook."""

    channel: str
    recipient: str
    payload: Mapping[str, Any]
    key: str


def enqueue_messages(session: Session, messages: Sequence[Message], *, now: datetime) -> int:
    """Queue messages in the caller's transaction, skipping keys already queued; return how many are new."""
    rows = []
    for i, m in enumerate(messages):
        if m.channel not in CHANNELS:
            raise ValueError(f"messages/{i}/channel: must be one of {', '.join(CHANNELS)}, not {m.channel!r}")
        if not m.recipient or len(m.recipient) > 500:
            raise ValueError(f"messages/{i}/recipient: must be 1-500 characters")
        if not m.key or len(m.key) > 200:
            raise ValueError(f"messages/{i}/key: must be 1-200 characters")
        try:
            payload = json.loads(json.dumps(dict(m.payload)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"messages/{i}/payload: not JSON-serialisable ({exc})") from None
        rows.append(
            {
                "channel": m.channel,
                "recipient": m.recipient,
                "payload": payload,
                "idempotency_key": m.key,
                "status": PENDING,
                "attempts": 0,
                "max_attempts": MAX_ATTEMPTS,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    if not rows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(OutboxMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id)
    )
    return len(session.scalars(stmt).all())


# --- sending ----------------------------------------------------------------------------------------


def message_id(key: str) -> str:
    """Return the e-mail Message-ID derived from an idempotency key (the same key, the same id)."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@salesmesh>"


def sign_webhook(secret: str, timestamp: int | str, body: bytes) -> str:
    """Return the `X-Salesmesh-Signature` value of a webhook body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send_email(
    settings: Settings, recipient: str, payload: Mapping[str, Any], key: str, now: datetime
) -> None:
    """Send one e-mail through the configured SMTP server, or raise DeliveryError."""
    if not settings.smtp_configured:
        raise DeliveryError("SMTP is not configured (SALESMESH_SMTP_HOST and SALESMESH_SMTP_FROM)")
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = recipient
    mail["Subject"] = str(payload.get("subject", ""))
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(key)
    mail.set_content(str(payload.get("text", "")))
    try:
        with smtplib.SMTP(
            settings.smtp_host or "", settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc


def send_webhook(
    settings: Settings, recipient: str, payload: Mapping[str, Any], key: str, now: datetime
) -> None:
    """POST one signed JSON body to a webhook URL; a non-2xx answer raises DeliveryError."""
    if payload.get("guarded"):  # a URL ops wrote (action packs): SSRF-checked, pinned, named secret
        return send_guarded_webhook(settings, recipient, payload, key, now)
    if not settings.webhook_secret:
        raise DeliveryError("no webhook secret is configured (SALESMESH_WEBHOOK_SECRET)")
    body = json.dumps(payload.get("body", {}), ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    request = urllib.request.Request(
        recipient,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": key,
            "X-Salesmesh-Event": str(payload.get("event", "")),
            "X-Salesmesh-Timestamp": str(timestamp),
            "X-Salesmesh-Signature": sign_webhook(settings.webhook_secret, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.smtp_timeout_seconds) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook {recipient}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"webhook {recipient}: {exc}") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {recipient}: HTTP {status}")


Sender = Callable[["Settings", str, Mapping[str, Any], str, datetime], None]
SENDERS: dict[str, Sender] = {"email": send_email, "webhook": send_webhook}


# --- delivery ----------------------------------------------------------------------------------------


@dataclass
class DeliveryStats:
    """What one `deliver_due` call did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed


def retry_delay(attempts: int) -> timedelta:
    """Return the wait after the `attempts`-th failed attempt (doubling from BACKOFF, capped)."""
    return min(BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def _claim(runtime: Runtime, limit: int) -> list[Any]:
    now = runtime.clock.now()
    lease = timedelta(seconds=runtime.settings.outbox_lease_seconds)
    due = or_(
        and_(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == SENDING, OutboxMessage.lease_until < now),  # its sender crashed
    )
    candidates = (
        select(OutboxMessage.id)
        .where(due)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(candidates.scalar_subquery()))
        .values(status=SENDING, lease_until=now + lease, attempts=OutboxMessage.attempts + 1)
        .returning(
            OutboxMessage.id,
            OutboxMessage.channel,
            OutboxMessage.recipient,
            OutboxMessage.payload,
            OutboxMessage.idempotency_key,
            OutboxMessage.attempts,
            OutboxMessage.max_attempts,
        )
        .execution_options(synchronize_session=False)
    )
    with runtime.db.session_scope(immediate=True) as session:
        return sorted(session.execute(claim).all(), key=lambda row: row.id)


def deliver_due(runtime: Runtime, *, limit: int = DELIVERY_BATCH) -> DeliveryStats:
    """Send up to `limit` due messages: claim them, send with no transaction open, record the results."""
    stats = DeliveryStats()
    claimed = _claim(runtime, limit)
    if not claimed:
        return stats
    results: list[tuple[Any, str | None]] = []
    for row in claimed:
        try:
            SENDERS[row.channel](
                runtime.settings, row.recipient, row.payload, row.idempotency_key, runtime.clock.now()
            )
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row and retried
            log.warning(
                "outbox message %s (%s) attempt %s failed: %s", row.id, row.channel, row.attempts, exc
            )
            results.append((row, f"attempt {row.attempts}: {exc}"[:_ERROR_LIMIT]))
        else:
            results.append((row, None))
    now = runtime.clock.now()
    with runtime.db.session_scope(immediate=True) as session:
        for row, error in results:
            if error is None:
                values: dict[str, Any] = {"status": SENT, "sent_at": now, "last_error": None}
                stats.sent += 1
            elif row.attempts >= row.max_attempts:
                values = {"status": FAILED, "last_error": error}
                stats.failed += 1
                log.error("outbox message %s (%s) failed for good: %s", row.id, row.channel, error)
            else:
                values = {
                    "status": PENDING,
                    "next_attempt_at": now + retry_delay(row.attempts),
                    "last_error": error,
                }
                stats.retried += 1
            # Only while this claim still holds the row (a lease that ran out may have been re-claimed).
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.status == SENDING)
                .values(lease_until=None, **values)
                .execution_options(synchronize_session=False)
            )
    return stats


def retry_message(session: Session, message_id_: int, *, now: datetime) -> bool:
    """Put a failed message back in the queue for another round of attempts; False when it is not failed."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id_, OutboxMessage.status == FAILED)
        .values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
