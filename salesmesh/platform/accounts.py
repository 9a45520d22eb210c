"""Account services: users, teams, rep attributes, passwords and API tokens.

Every function here is a plain service (`verb_noun(session, actor, ...)`): it checks the actor through
`salesmesh.platform.policy` (`actor=None` is the system — CLI, demo seeder — and is allowed), validates,
changes rows, writes an audit event, flushes and returns; the caller commits. Bad input raises
`AccountError` whose `errors` are `{path, message, message_zh}` items. Rep attributes are data checked
against the published `rep_attributes` definition (`salesmesh.platform.rep_attributes`). A user's
`session_epoch` is bumped on deactivation and password change, so every older browser session dies at
once; login, sessions and token lookup live in `salesmesh.platform.credentials`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.credentials import digest, normalize_email
from salesmesh.platform.i18n import LOCALES
from salesmesh.platform.models import ROLES, ApiToken, Team, User, UserSession
from salesmesh.platform.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from salesmesh.platform.rep_attributes import (
    KEY_RE,
    ROLES_WITH_ATTRIBUTES,
    field_error,
    published_attribute_schema,
    validate_attributes,
)

MAX_PASSWORD_LENGTH = 1024
TOKEN_PREFIX = "smt_"
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class AccountError(ValueError):
    """Bad input to an account service; `errors` lists {path, message, message_zh}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors)
        )


def _fail(path: str, message: str, **params: Any) -> AccountError:
    return AccountError([field_error(path, message, **params)])


def _audit(session: Session, clock: Clock, actor: User | None, action: str, obj: Any, **payload: Any) -> None:
    record_event(
        session,
        at=clock.now(),
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=type(obj).__tablename__ if obj is not None else None,
        object_id=getattr(obj, "id", None),
        payload=payload,
    )


def _check(actor: User | None, action: str, obj: Any = None) -> None:
    if actor is not None:
        policy.require(actor, action, obj)


# --- validation helpers -----------------------------------------------------------------------------


def _valid_email(email: str) -> str:
    value = normalize_email(email)
    if not value:
        raise _fail("/email", "E-mail is required.")
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise _fail("/email", "Enter a valid e-mail address.")
    return value


def _valid_name(name: str) -> str:
    value = (name or "").strip()
    if not value:
        raise _fail("/name", "Name is required.")
    if len(value) > 200:
        raise _fail("/name", "Name is too long (at most %(n)s characters).", n=200)
    return value


def _valid_role(role: str) -> str:
    if role not in ROLES:
        raise _fail("/role", "Unknown role %(role)s (use admin, ops, lead or rep).", role=repr(role))
    return role


def _valid_password(password: str, path: str = "/password") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise _fail(path, "Password must be at least %(n)s characters.", n=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise _fail(path, "Password is too long (at most %(n)s characters).", n=MAX_PASSWORD_LENGTH)
    return password


def _team_or_error(session: Session, team_id: int | None, path: str = "/team_id") -> Team | None:
    if team_id is None:
        return None
    team = session.get(Team, team_id)
    if team is None:
        raise _fail(path, "Unknown team %(team)s.", team=team_id)
    return team


def _user_or_error(session: Session, user_id: int, path: str = "/user_id") -> User:
    user = session.get(User, user_id)
    if user is None:
        raise _fail(path, "Unknown user %(user)s.", user=user_id)
    return user


def _led_team(session: Session, user: User) -> Team | None:
    return session.scalars(select(Team).where(Team.lead_id == user.id)).first()


def _ensure_not_last_admin(session: Session, user: User) -> None:
    if user.role != "admin" or not user.active:
        return
    others = session.scalar(
        select(func.count(User.id)).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise _fail("", "%(email)s is the last active admin.", email=user.email)


def _apply_attributes(session: Session, user: User, attributes: Any) -> None:
    schema = published_attribute_schema(session)
    clean, errors = validate_attributes(schema, attributes, require=user.role in ROLES_WITH_ATTRIBUTES)
    if errors:
        raise AccountError(errors)
    user.attributes = clean
    user.attributes_version_id = schema.version_id if schema is not None else None


def _valid_capacity(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise _fail("/daily_capacity", "Daily capacity must be a whole number from 0 to 1000.")
    return value


def _valid_until(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail("/unavailable_until", "Enter a date and time.")
    return value


# --- users ------------------------------------------------------------------------------------------


def create_user(
    session: Session,
    actor: User | None,
    *,
    email: str,
    name: str,
    role: str,
    password: str,
    clock: Clock,
    team_id: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    locale: str | None = None,
    daily_capacity: int | None = None,
    password_hash: str | None = None,
) -> User:
    """Create an active user with a hashed password.

    `password_hash`, when given, is `hash_password(password)` made earlier and stored as it is: the demo
    seeder gives its fifty-odd accounts one known password and hashes it once (argon2id costs ~0.1 s).
    """
    _check(actor, "user.create", User)
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for key, fn, arg in (
        ("email", _valid_email, email),
        ("name", _valid_name, name),
        ("role", _valid_role, role),
        ("password", _valid_password, password),
        ("daily_capacity", _valid_capacity, daily_capacity),
    ):
        try:
            values[key] = fn(arg)
        except AccountError as exc:
            errors.extend(exc.errors)
    try:
        _team_or_error(session, team_id)
    except AccountError as exc:
        errors.extend(exc.errors)
    if locale is not None and locale not in LOCALES:
        errors.append(field_error("/locale", "Language must be en or zh."))
    if "email" in values and session.scalar(select(User.id).where(User.email == values["email"])):
        errors.append(
            field_error("/email", "%(email)s is already used by another account.", email=values["email"])
        )
    if errors:
        raise AccountError(errors)
    user = User(
        email=values["email"],
        name=values["name"],
        role=values["role"],
        team_id=team_id,
        password_hash=password_hash or hash_password(values["password"]),
        active=True,
        locale=locale,
        daily_capacity=values["daily_capacity"],
        session_epoch=0,
        created_at=clock.now(),
        attributes={},
    )
    _apply_attributes(session, user, attributes or {})
    session.add(user)
    session.flush()
    _audit(session, clock, actor, "user.create", user, email=user.email, role=user.role, team_id=team_id)
    return user


def update_user(
    session: Session,
    actor: User | None,
    user_id: int,
    *,
    clock: Clock,
    name: Any = UNSET,
    role: Any = UNSET,
    team_id: Any = UNSET,
    attributes: Any = UNSET,
    daily_capacity: Any = UNSET,
    unavailable_until: Any = UNSET,
    locale: Any = UNSET,
) -> User:
    """Change a user's profile (admin), rep attributes and availability (ops/admin) or language (self)."""
    user = _user_or_error(session, user_id)
    changes: dict[str, Any] = {}
    if any(v is not UNSET for v in (name, role, team_id)):
        _check(actor, "user.edit", user)
    if any(v is not UNSET for v in (attributes, daily_capacity, unavailable_until)):
        _check(actor, "rep_attributes.edit", user)
    if locale is not UNSET:
        _check(actor, "user.set_locale", user)
        if locale is not None and locale not in LOCALES:
            raise _fail("/locale", "Language must be en or zh.")
        user.locale = changes["locale"] = locale
    if name is not UNSET:
        user.name = changes["name"] = _valid_name(name)
    if role is not UNSET and role != user.role:
        _valid_role(role)
        led = _led_team(session, user)
        if led is not None and role != "lead":
            raise _fail(
                "/role",
                "%(email)s leads team %(team)s; choose another lead first.",
                email=user.email,
                team=led.key,
            )
        if role != "admin":
            _ensure_not_last_admin(session, user)
        user.role = changes["role"] = role
    if team_id is not UNSET and team_id != user.team_id:
        _team_or_error(session, team_id)
        led = _led_team(session, user)
        if led is not None:
            raise _fail(
                "/team_id",
                "%(email)s leads team %(team)s; choose another lead first.",
                email=user.email,
                team=led.key,
            )
        user.team_id = changes["team_id"] = team_id
    if attributes is not UNSET:
        _apply_attributes(session, user, attributes)
        changes["attributes"] = user.attributes
    if daily_capacity is not UNSET:
        user.daily_capacity = changes["daily_capacity"] = _valid_capacity(daily_capacity)
    if unavailable_until is not UNSET:
        user.unavailable_until = changes["unavailable_until"] = _valid_until(unavailable_until)
    session.flush()
    if changes:
        _audit(session, clock, actor, "user.update", user, changes=changes)
    return user


def set_user_locale(session: Session, actor: User, locale: str, *, clock: Clock) -> User:
    """Remember the actor's own interface language."""
    return update_user(session, actor, actor.id, clock=clock, locale=locale)


def _revoke_all(session: Session, user: User, now: datetime) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def deactivate_user(session: Session, actor: User | None, user_id: int, *, clock: Clock) -> User:
    """Deactivate a user and kill every session and API token they have."""
    user = _user_or_error(session, user_id)
    _check(actor, "user.deactivate", user)
    if actor is not None and actor.id == user.id:
        raise _fail("", "You cannot deactivate your own account.")
    _ensure_not_last_admin(session, user)
    now = clock.now()
    user.active = False
    user.session_epoch = (user.session_epoch or 0) + 1
    _revoke_all(session, user, now)
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    _audit(session, clock, actor, "user.deactivate", user, email=user.email)
    return user


def reactivate_user(session: Session, actor: User | None, user_id: int, *, clock: Clock) -> User:
    """Let a deactivated user sign in again (their old sessions and tokens stay dead)."""
    user = _user_or_error(session, user_id)
    _check(actor, "user.reactivate", user)
    user.active = True
    session.flush()
    _audit(session, clock, actor, "user.reactivate", user, email=user.email)
    return user


def change_password(
    session: Session,
    actor: User | None,
    user_id: int,
    new_password: str,
    *,
    clock: Clock,
    current_password: str | None = None,
) -> User:
    """Set a new password and end every session of the user (self needs the current password)."""
    user = _user_or_error(session, user_id)
    _check(actor, "user.set_password", user)
    # Changing one's own password proves the current one; an admin resetting someone else's does not.
    if (
        actor is not None
        and actor.id == user.id
        and not verify_password(user.password_hash, current_password or "")
    ):
        raise _fail("/current_password", "The current password is not right.")
    user.password_hash = hash_password(_valid_password(new_password))
    user.session_epoch = (user.session_epoch or 0) + 1
    _revoke_all(session, user, clock.now())
    session.flush()
    _audit(session, clock, actor, "user.password_changed", user)
    return user


# --- teams ------------------------------------------------------------------------------------------


def _valid_team_name(name: Any) -> dict[str, str]:
    if isinstance(name, str):
        name = {"en": name.strip(), "zh": name.strip()}
    if not isinstance(name, Mapping) or not str(name.get("en") or "").strip():
        raise _fail("/name/en", "Team name (English) is required.")
    out = {"en": str(name["en"]).strip(), "zh": str(name.get("zh") or name["en"]).strip()}
    if any(len(v) > 200 for v in out.values()):
        raise _fail("/name", "Name is too long (at most %(n)s characters).", n=200)
    return out


def create_team(
    session: Session, actor: User | None, *, key: str, name: Any, clock: Clock, lead_id: int | None = None
) -> Team:
    """Create a team (optionally with its lead)."""
    _check(actor, "team.create", Team)
    key = (key or "").strip().lower()
    if not KEY_RE.match(key):
        raise _fail("/key", "Team key uses a-z, 0-9, - and _ (at most 64 characters).")
    if session.scalar(select(Team.id).where(Team.key == key)):
        raise _fail("/key", "Team %(team)s already exists.", team=key)
    team = Team(key=key, name=_valid_team_name(name), created_at=clock.now())
    session.add(team)
    session.flush()
    _audit(session, clock, actor, "team.create", team, key=key, name=team.name)
    if lead_id is not None:
        set_team_lead(session, actor, team.id, lead_id, clock=clock)
    return team


def set_team_lead(session: Session, actor: User | None, team_id: int, user_id: int, *, clock: Clock) -> Team:
    """Make an active lead-role user the lead of a team (and a member of it)."""
    team = _team_or_error(session, team_id)
    assert team is not None
    _check(actor, "team.edit", team)
    user = _user_or_error(session, user_id)
    if not user.active:
        raise _fail("/user_id", "%(email)s is deactivated.", email=user.email)
    if user.role != "lead":
        raise _fail("/user_id", "%(email)s must have the role lead to lead a team.", email=user.email)
    other = _led_team(session, user)
    if other is not None and other.id != team.id:
        raise _fail("/user_id", "%(email)s already leads team %(team)s.", email=user.email, team=other.key)
    team.lead_id = user.id
    user.team_id = team.id
    session.flush()
    _audit(session, clock, actor, "team.set_lead", team, lead_id=user.id)
    return team


def add_team_member(
    session: Session, actor: User | None, team_id: int, user_id: int, *, clock: Clock
) -> User:
    """Put a user into a team (a user belongs to at most one team)."""
    team = _team_or_error(session, team_id)
    assert team is not None
    _check(actor, "team.edit", team)
    user = _user_or_error(session, user_id)
    led = _led_team(session, user)
    if led is not None and led.id != team.id:
        raise _fail(
            "/user_id",
            "%(email)s leads team %(team)s; choose another lead first.",
            email=user.email,
            team=led.key,
        )
    user.team_id = team.id
    session.flush()
    _audit(session, clock, actor, "team.add_member", team, user_id=user.id)
    return user


def find_team(session: Session, key: str) -> Team | None:
    """Return the team with this key, or None."""
    return session.scalars(select(Team).where(Team.key == (key or "").strip().lower())).first()


# --- API tokens -------------------------------------------------------------------------------------


def create_api_token(
    session: Session, actor: User | None, user_id: int, *, label: str, clock: Clock
) -> tuple[ApiToken, str]:
    """Create a bearer token for a user; return the row and the plaintext (shown once, never stored)."""
    user = _user_or_error(session, user_id)
    _check(actor, "token.create", user)
    label = (label or "").strip()
    if not label or len(label) > 200:
        raise _fail("/label", "Give the token a label (at most %(n)s characters).", n=200)
    if not user.active:
        raise _fail("/user_id", "%(email)s is deactivated.", email=user.email)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(token_hash=digest(plaintext), user_id=user.id, label=label, created_at=clock.now())
    session.add(token)
    session.flush()
    _audit(session, clock, actor, "token.create", token, user_id=user.id, label=label)
    return token, plaintext


def revoke_api_token(session: Session, actor: User | None, token_id: int, *, clock: Clock) -> ApiToken:
    """Revoke an API token (its owner or an admin)."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise _fail("/token_id", "Unknown token %(token)s.", token=token_id)
    _check(actor, "token.revoke", token)
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        session.flush()
        _audit(session, clock, actor, "token.revoke", token, user_id=token.user_id)
    return token
