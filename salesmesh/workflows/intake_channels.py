"""Intake channels: create and rotate the HMAC secrets integrations sign lead posts with, and check them.

A request is signed with HMAC-SHA256 over `timestamp + "." + raw body` (the timestamp in unix seconds,
as sent in `X-Salesmesh-Timestamp`) and sent as `X-Salesmesh-Signature: sha256=<hex>`. `check_request`
accepts it when the timestamp is within `SKEW` of the clock and the signature matches the channel's
current or previous secret (constant-time comparison), so a rotation (`rotate_channel_secret`) never
breaks a sender that has not switched yet; the rotation after that retires the old secret. Services
follow the house rules: audit, flush, no commit; a secret is returned once and never logged or audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.workflows.intake_models import IntakeChannel

SKEW = timedelta(minutes=5)
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_-]{1,39}")
SIGNATURE_PREFIX = "sha256="


class ChannelError(ValueError):
    """A channel could not be created or changed; the message says why."""


class SignatureRejected(Exception):
    """A request's channel, timestamp or signature is not acceptable; `code` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_secret() -> str:
    """Return a fresh random signing secret (256 bits, hex)."""
    return secrets.token_hex(32)


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """Return the `X-Salesmesh-Signature` value for `body` sent at `timestamp` with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def find_channel(session: Session, key: str) -> IntakeChannel | None:
    """Return the channel called `key`, or None."""
    return session.scalars(select(IntakeChannel).where(IntakeChannel.key == key)).first()


def create_channel(
    session: Session,
    *,
    key: str,
    label: str,
    clock: Clock,
    form_key: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[IntakeChannel, str]:
    """Create an intake channel; return it and its secret (shown once)."""
    if not KEY_PATTERN.fullmatch(key or ""):
        raise ChannelError(
            "key: 2-40 characters, lower-case letters, digits, '-' or '_', starting with a letter"
        )
    label = (label or "").strip()
    if not label or len(label) > 120:
        raise ChannelError("label: give 1-120 characters")
    if find_channel(session, key) is not None:
        raise ChannelError(f"key: a channel called {key!r} already exists")
    secret = new_secret()
    now = clock.now()
    channel = IntakeChannel(
        key=key,
        label=label,
        secret=secret,
        form_key=form_key,
        defaults=dict(defaults or {}),
        active=True,
        created_at=now,
    )
    session.add(channel)
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=None,
        action="intake_channel.create",
        object_type="intake_channels",
        object_id=channel.id,
        payload={"key": key, "label": label, "form_key": form_key},
    )
    return channel, secret


def rotate_channel_secret(session: Session, key: str, *, clock: Clock) -> str:
    """Give the channel a new secret; the current one stays valid until the next rotation."""
    channel = find_channel(session, key)
    if channel is None:
        raise ChannelError(f"unknown channel {key!r}")
    secret = new_secret()
    now = clock.now()
    channel.previous_secret, channel.secret, channel.rotated_at = channel.secret, secret, now
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=None,
        action="intake_channel.rotate",
        object_type="intake_channels",
        object_id=channel.id,
        payload={"key": key},
    )
    return secret


def set_channel_active(session: Session, key: str, active: bool, *, clock: Clock) -> IntakeChannel:
    """Enable or disable a channel (a disabled channel's requests are refused)."""
    channel = find_channel(session, key)
    if channel is None:
        raise ChannelError(f"unknown channel {key!r}")
    if channel.active != active:
        channel.active = active
        session.flush()
        record_event(
            session,
            at=clock.now(),
            actor_id=None,
            action="intake_channel.activate" if active else "intake_channel.deactivate",
            object_type="intake_channels",
            object_id=channel.id,
            payload={"key": key},
        )
    return channel


def check_request(
    channel: IntakeChannel | None, timestamp: str | None, signature: str | None, body: bytes, *, clock: Clock
) -> IntakeChannel:
    """Return the channel of a correctly signed request, or raise SignatureRejected saying what is wrong."""
    if channel is None or not channel.active:
        raise SignatureRejected("unknown_channel", "unknown or inactive channel (X-Salesmesh-Channel)")
    if timestamp is None or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected("bad_timestamp", "X-Salesmesh-Timestamp must be unix seconds")
    if abs(clock.now().timestamp() - int(timestamp)) > SKEW.total_seconds():
        raise SignatureRejected(
            "stale_timestamp", "X-Salesmesh-Timestamp is more than 5 minutes away from the server's clock"
        )
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        raise SignatureRejected("bad_signature", "X-Salesmesh-Signature must be sha256=<hex digest>")
    given = signature.encode()
    matched = False
    # Compare with every active secret (no early exit) so timing does not tell which one matched.
    for secret in (channel.secret, channel.previous_secret):
        if secret:
            matched |= hmac.compare_digest(sign(secret, timestamp, body).encode(), given)
    if not matched:
        raise SignatureRejected("bad_signature", "the signature does not match the channel's secrets")
    return channel
