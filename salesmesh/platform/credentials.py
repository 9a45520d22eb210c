"""Credentials: password login with throttling, server-side browser sessions and API-token lookup.

`authenticate` counts failed logins in `login_attempts` per e-mail and per client address within a
window; past the limit it raises `LoginLocked` even for a right password, until the window has passed.
Unknown e-mails are verified against a dummy hash so timing does not reveal which accounts exist.
A browser session is a `user_sessions` row holding the sha256 of a random secret (the cookie carries
the secret) and the user's `session_epoch` at login; deactivation and password changes bump the epoch,
logout and idle time revoke the row, so a copied cookie dies with it. API tokens are looked up the same
way by hash. Functions flush and return; the caller (the web layer) commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import gettext
from salesmesh.platform.models import ApiToken, LoginAttempt, User, UserSession
from salesmesh.platform.passwords import hash_password, needs_rehash, verify_password

# One office behind one address should not lock itself out by one person's typos: the per-address
# limit is this many times the per-e-mail limit.
IP_FAILURE_FACTOR = 4
_PG_LOGIN_LOCK = 0x10C1  # first key of the per-e-mail advisory locks (the two-key space; audit uses one key)


def digest(secret: str) -> str:
    """Return the sha256 hex digest under which a session secret or API token is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    """Return the canonical (trimmed, lower-case) form of an e-mail address."""
    return (email or "").strip().lower()


def find_user_by_email(session: Session, email: str) -> User | None:
    """Return the user with this e-mail (compared in canonical form), or None."""
    return session.scalars(select(User).where(User.email == normalize_email(email))).first()


class AuthError(Exception):
    """A login was refused; `message` is English, `message_zh` Chinese."""

    def __init__(self, message: str, **params: Any) -> None:
        self.message = gettext(message, "en", **params)
        self.message_zh = gettext(message, "zh", **params)
        super().__init__(self.message)


class LoginFailed(AuthError):
    """Wrong e-mail or password (deliberately not saying which)."""


class LoginLocked(AuthError):
    """Too many failures for this e-mail or address; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__("Too many failed sign-ins. Try again in %(minutes)s minutes.", minutes=minutes)
        self.retry_after = retry_after


def resolve_api_token(session: Session, plaintext: str, *, clock: Clock) -> tuple[ApiToken | None, bool]:
    """Return (token, touched) for a live token of an active user; touched means last_used_at changed."""
    if not plaintext or len(plaintext) > 200:
        return None, False
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest(plaintext))).first()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None, False
    now = clock.now()
    if token.last_used_at is None or now - token.last_used_at >= timedelta(minutes=1):
        token.last_used_at = now
        session.flush()
        return token, True
    return token, False


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


def _failures_since(
    session: Session, column: Any, value: str, since: datetime
) -> tuple[int, datetime | None]:
    row = session.execute(
        select(func.count(LoginAttempt.id), func.min(LoginAttempt.at)).where(
            column == value, LoginAttempt.at > since
        )
    ).one()
    return int(row[0]), row[1]


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    ip: str,
    clock: Clock,
    max_failures: int,
    window_minutes: int,
) -> User:
    """Check a login, counting failures per e-mail and address; raise LoginLocked or LoginFailed."""
    now = clock.now()
    window = timedelta(minutes=window_minutes)
    email_key = normalize_email(email)[:254]
    ip_key = (ip or "unknown")[:64]
    since = now - window
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent attempts on one e-mail would all count the failures before any of them records its
        # own, so a burst of parallel guesses got past the limit. Take turns per e-mail until the caller
        # commits (a failure) or rolls back; SQLite requests already hold the write lock (BEGIN IMMEDIATE).
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:email))"),
            {"space": _PG_LOGIN_LOCK, "email": email_key},
        )
    by_email, first_email = _failures_since(session, LoginAttempt.email, email_key, since)
    by_ip, first_ip = _failures_since(session, LoginAttempt.ip, ip_key, since)
    locked_until = []
    if by_email >= max_failures and first_email is not None:
        locked_until.append(first_email + window)
    if by_ip >= max_failures * IP_FAILURE_FACTOR and first_ip is not None:
        locked_until.append(first_ip + window)
    if locked_until:
        raise LoginLocked(max(1, int((max(locked_until) - now).total_seconds())))
    user = find_user_by_email(session, email_key) if email_key else None
    ok = verify_password(user.password_hash if user else _dummy_hash(), password or "")
    if user is None or not ok or not user.active:
        reason = "unknown_user" if user is None else "bad_password" if not ok else "inactive"
        # Forget this e-mail's and address's failures that fell out of the window (keeps the table small).
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.at <= since, or_(LoginAttempt.email == email_key, LoginAttempt.ip == ip_key)
            )
        )
        session.add(LoginAttempt(email=email_key, ip=ip_key, at=now, reason=reason))
        session.flush()
        record_event(
            session,
            at=now,
            actor_id=user.id if user else None,
            action="auth.login_failed",
            object_type="users" if user else None,
            object_id=user.id if user else None,
            payload={"email": email_key, "ip": ip_key, "reason": reason},
        )
        raise LoginFailed("Wrong e-mail or password.")
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == email_key))
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.flush()
    return user


def start_session(
    session: Session, user: User, *, clock: Clock, ip: str | None = None, user_agent: str | None = None
) -> tuple[UserSession, str]:
    """Open a server-side session for a signed-in user; return the row and the browser's secret."""
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    row = UserSession(
        token_hash=digest(secret),
        user_id=user.id,
        epoch=user.session_epoch or 0,
        created_at=now,
        last_seen_at=now,
        ip=(ip or None) and ip[:64],
        user_agent=(user_agent or None) and user_agent[:300],
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=user.id,
        action="auth.login",
        object_type="users",
        object_id=user.id,
        payload={"ip": row.ip, "session_id": row.id},
    )
    return row, secret


def resolve_session(
    session: Session, secret: str, *, clock: Clock, idle_minutes: int
) -> tuple[UserSession | None, bool]:
    """Return (live session, touched) for a browser secret; touched means a row changed (commit it).

    A session is live when its row exists and is not revoked, its user is active, its epoch equals the
    user's and it was seen within the idle timeout. `last_seen_at` moves at most once a minute.
    """
    if not secret or len(secret) > 200:
        return None, False
    row = session.scalars(select(UserSession).where(UserSession.token_hash == digest(secret))).first()
    if row is None or row.revoked_at is not None:
        return None, False
    user = row.user
    if not user.active or row.epoch != user.session_epoch:
        return None, False
    now = clock.now()
    if now - row.last_seen_at > timedelta(minutes=idle_minutes):
        row.revoked_at = now
        session.flush()
        return None, True
    if now - row.last_seen_at >= timedelta(minutes=1):
        row.last_seen_at = now
        session.flush()
        return row, True
    return row, False


def end_session(session: Session, secret: str, *, clock: Clock) -> UserSession | None:
    """Revoke the session behind a browser secret (logout); return it, or None when unknown."""
    if not secret:
        return None
    row = session.scalars(select(UserSession).where(UserSession.token_hash == digest(secret))).first()
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.flush()
        record_event(
            session,
            at=row.revoked_at,
            actor_id=row.user_id,
            action="auth.logout",
            object_type="users",
            object_id=row.user_id,
            payload={"session_id": row.id},
        )
    return row
