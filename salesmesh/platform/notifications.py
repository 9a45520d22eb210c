"""In-app notifications, each person's e-mail preference, and the fan-out of notifications to the outbox.

A notification is a row for one person: a registered `kind` (`notification_kind(...)` declares its
English title and body with `%(name)s` placeholders, translated when shown, and the path of the record it
is about), the subject (type, id), the `params` that fill the placeholders, `created_at` and `read_at`.
Params are JSON: plain text and numbers, bilingual labels `{"en", "zh"}`, `{"msg": "<message id>"}` (a
catalogue message) or `{"at": "<ISO time>", "tz": "<zone>"}` (a moment shown in that zone), so a title is
rendered in the reader's language at read time, in the inbox as in an e-mail. `notify(...)` only adds rows
(they are written with the caller's next flush: on the lead-assignment hot path that is one INSERT and no
query). Each new row is `outbox_state="pending"`; the `notifications.deliver` job (periodic, and kicked
after commit by callers that have a job queue: `kick_delivery`) fans pending rows out in batches —
an e-mail for people whose preference is on (the default) when SMTP is configured, a signed webhook when
ops configured a URL for the kind (`SALESMESH_NOTIFY_WEBHOOKS`) — into `salesmesh.platform.outbox` under
the keys `notification:<id>:email|webhook`, then sends what is due. A notification belongs to its person
only: reading or marking someone else's is a 404.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, func, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from salesmesh.platform.audit import record_event
from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.i18n import gettext, label
from salesmesh.platform.jobs import JobContext, job
from salesmesh.platform.models import User
from salesmesh.platform.outbox import DeliveryStats, Message, deliver_due, enqueue_messages
from salesmesh.platform.policy import MAX_ID
from salesmesh.platform.rows import build_row, insert_row

if TYPE_CHECKING:
    from salesmesh.platform.jobs import JobQueue
    from salesmesh.platform.runtime import Runtime
    from salesmesh.platform.settings import Settings

PENDING, DONE = "pending", "done"  # outbox_state: waiting for the fan-out, fanned out
EMAIL_DEFAULT = True  # people get e-mail unless they switch it off (and only when SMTP is configured)
FANOUT_BATCH = 200
MAX_ROUNDS = 10  # batches per job run; the periodic run picks up the rest
UNREAD_CAP = 99  # the badge shows "99+" beyond this; counting stops there
DELIVER_JOB = "notifications.deliver"


class Notification(Base):
    """One message for one person in the app; e-mail and webhooks follow through the outbox."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The unread badge counts one person's rows with no read_at; the inbox pages by id.
        Index("ix_notifications_user_read", "user_id", "read_at"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        # The fan-out reads the pending rows.
        Index("ix_notifications_outbox_state", "outbox_state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(80))
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outbox_state: Mapped[str | None] = mapped_column(String(8))


class NotificationPreference(Base):
    """A person's choice of channels besides the app (no row: the defaults)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, default=EMAIL_DEFAULT)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- kinds ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationKind:
    """A registered kind: title and body (English message ids with %(param)s) and the subject's path."""

    name: str
    title: str
    body: str | None
    path: str | None  # e.g. "/leads/{subject_id}"


_KINDS: dict[str, NotificationKind] = {}


class UnknownNotificationKind(LookupError):
    """No notification kind is registered under this name."""


class NotificationNotFound(LookupError):
    """No such notification for this person (someone else's counts as none)."""


def notification_kind(
    name: str, *, title: str, body: str | None = None, path: str | None = None
) -> NotificationKind:
    """Register notification kind `name` (duplicate names fail at import) and return it."""
    if name in _KINDS:
        raise ValueError(f"notification kind {name!r} is already registered")
    if len(name) > 80:
        raise ValueError(f"notification kind {name!r}: at most 80 characters")
    kind = NotificationKind(name, title, body, path)
    _KINDS[name] = kind
    return kind


def get_kind(name: str) -> NotificationKind:
    """Return the registered kind `name` or raise UnknownNotificationKind."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownNotificationKind(
            f"unknown notification kind {name!r} (registered: {', '.join(sorted(_KINDS))})"
        ) from None


@dataclass(frozen=True)
class Rendered:
    """A notification in one language: title, optional body, and the path of its subject."""

    title: str
    body: str | None
    path: str | None


def _moment(value: Any, zone_name: Any) -> str:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(str(zone_name)) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _param(value: Any, locale: str) -> str:
    if isinstance(value, Mapping):
        if "msg" in value:
            return gettext(str(value["msg"]), locale)
        if "at" in value:
            return _moment(value["at"], value.get("tz"))
        return label(value, locale)
    return "" if value is None else str(value)


def _fill(message: str | None, params: Mapping[str, str], locale: str) -> str | None:
    if message is None:
        return None
    try:
        return gettext(message, locale, **params)
    except (KeyError, ValueError, TypeError):
        return None  # a body whose parameters are missing is left out rather than shown half-filled


def render(notification: Notification, locale: str) -> Rendered:
    """Render a notification's title and body in `locale` (an unknown kind shows its name)."""
    kind = _KINDS.get(notification.kind)
    params = {k: _param(v, locale) for k, v in (notification.params or {}).items()}
    if kind is None:
        return Rendered(notification.kind, None, None)
    path = None
    if kind.path and notification.subject_id is not None:
        path = kind.path.format(subject_id=notification.subject_id)
    return Rendered(_fill(kind.title, params, locale) or kind.title, _fill(kind.body, params, locale), path)


# --- services ---------------------------------------------------------------------------------------


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    try:
        return json.loads(json.dumps(dict(params)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"/params: not JSON-serialisable ({exc})") from None


def notify(
    session: Session,
    *,
    user_ids: Iterable[int | None],
    kind: str,
    now: datetime,
    subject: tuple[str, int] | None = None,
    params: Mapping[str, Any] | None = None,
    write: bool = False,
) -> list[Notification]:
    """Add one notification of `kind` per person (None and repeats skipped); written at the next flush.

    `write=True` inserts each row at once with one statement of its own and no flush (`rows.insert_row`):
    for hot paths telling one person (the owner of a newly routed lead).
    """
    get_kind(kind)
    if subject is not None and (len(subject[0]) > 40 or not isinstance(subject[1], int)):
        raise ValueError("/subject: expected (type of at most 40 characters, integer id)")
    clean = _clean_params(params)
    rows = []
    for user_id in dict.fromkeys(u for u in user_ids if u is not None):
        values = {
            "user_id": user_id,
            "kind": kind,
            "subject_type": subject[0] if subject else None,
            "subject_id": subject[1] if subject else None,
            "params": clean,
            "created_at": now,
            "outbox_state": PENDING,
        }
        rows.append(build_row(Notification, values) if write else Notification(**values))
    if write:
        for row in rows:
            insert_row(session, row)
    else:
        session.add_all(rows)
    return rows


_INSERT_MANY = insert(Notification.__table__)


def notify_each(
    session: Session,
    *,
    kind: str,
    now: datetime,
    notices: Sequence[tuple[int, tuple[str, int] | None, Mapping[str, Any] | None]],
) -> int:
    """Write one notification of `kind` per (person, subject, params) with one INSERT; return how many.

    For callers notifying many people about many records at once (a batch of reminders); unlike `notify`
    it writes at once and keeps repeats (each notice is its own message).
    """
    get_kind(kind)
    try:  # one encoding for all the params; notice by notice only to name a bad one
        clean = json.loads(json.dumps([dict(params or {}) for _user, _subject, params in notices]))
    except (TypeError, ValueError):
        clean = []
        for index, (_user, _subject, params) in enumerate(notices):
            try:
                clean.append(_clean_params(params))
            except ValueError as exc:
                raise ValueError(f"/{index}{exc}") from None
    rows = []
    for index, (user_id, subject, _params) in enumerate(notices):
        if subject is not None and (len(subject[0]) > 40 or not isinstance(subject[1], int)):
            raise ValueError(f"/{index}/subject: expected (type of at most 40 characters, integer id)")
        rows.append(
            {
                "user_id": user_id,
                "kind": kind,
                "subject_type": subject[0] if subject else None,
                "subject_id": subject[1] if subject else None,
                "params": clean[index],
                "created_at": now,
                "outbox_state": PENDING,
            }
        )
    if rows:
        session.execute(_INSERT_MANY, rows)
    return len(rows)


def kick_delivery(session: Session, jobs: JobQueue) -> None:
    """Start the delivery job once this transaction commits (the periodic run catches anything missed)."""
    jobs.enqueue_after_commit(session, DELIVER_JOB)


def unread_count(session: Session, user_id: int, *, cap: int = UNREAD_CAP) -> int:
    """Return how many unread notifications a person has, counting no further than cap + 1."""
    inner = (
        select(Notification.id)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .limit(cap + 1)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(inner)) or 0


@dataclass(frozen=True)
class Inbox:
    """A page of someone's notifications, newest first; pass `next_before` as `before` for older ones."""

    items: list[Notification]
    has_more: bool

    @property
    def next_before(self) -> int | None:
        return self.items[-1].id if self.has_more and self.items else None


def inbox(
    session: Session, actor: User, *, limit: int = 50, before: int | None = None, unread_only: bool = False
) -> Inbox:
    """Return a page of the actor's own notifications, newest first."""
    stmt = select(Notification).where(Notification.user_id == actor.id)
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    rows = list(session.scalars(stmt.order_by(Notification.id.desc()).limit(limit + 1)))
    return Inbox(rows[:limit], len(rows) > limit)


def mark_read(session: Session, actor: User, notification_id: int, *, now: datetime) -> Notification:
    """Mark one of the actor's notifications read (again: no change); someone else's is not found."""
    if not 0 < notification_id <= MAX_ID:  # past BIGINT the driver would fail; no such row can exist
        raise NotificationNotFound(f"notification {notification_id} not found")
    row = session.scalar(
        select(Notification).where(Notification.id == notification_id, Notification.user_id == actor.id)
    )
    if row is None:
        raise NotificationNotFound(f"notification {notification_id} not found")
    if row.read_at is None:
        row.read_at = now
        session.flush()
    return row


def mark_all_read(session: Session, actor: User, *, now: datetime) -> int:
    """Mark every unread notification of the actor read; return how many."""
    result = session.execute(
        update(Notification)
        .where(Notification.user_id == actor.id, Notification.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount  # type: ignore[attr-defined]


def email_enabled(session: Session, user_id: int) -> bool:
    """Tell whether a person wants notifications by e-mail too."""
    value = session.scalar(
        select(NotificationPreference.email).where(NotificationPreference.user_id == user_id)
    )
    return EMAIL_DEFAULT if value is None else bool(value)


def set_email_preference(
    session: Session, actor: User, *, enabled: bool, now: datetime
) -> NotificationPreference:
    """Switch e-mail notifications on or off for the actor."""
    row = session.get(NotificationPreference, actor.id)
    if row is None:
        row = NotificationPreference(user_id=actor.id, email=enabled, updated_at=now)
        session.add(row)
    else:
        row.email, row.updated_at = enabled, now
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=actor.id,
        action="notification.preferences",
        object_type="users",
        object_id=actor.id,
        payload={"email": enabled},
    )
    return row


# --- fan-out to the outbox ------------------------------------------------------------------------


def webhook_url(settings: Settings, kind: str) -> str | None:
    """Return the webhook URL ops configured for a notification kind (or for every kind), if any."""
    return settings.notify_webhooks.get(kind) or settings.notify_webhooks.get("*")


def _email_text(rendered: Rendered, settings: Settings, locale: str) -> str:
    lines = [rendered.title]
    if rendered.body:
        lines += ["", rendered.body]
    if rendered.path and settings.base_url:
        lines += ["", gettext("Open: %(url)s", locale, url=settings.base_url.rstrip("/") + rendered.path)]
    lines += ["", "—", gettext("You get these e-mails because notifications by e-mail are on.", locale)]
    return "\n".join(lines)


def _webhook_body(n: Notification) -> dict[str, Any]:
    titles = {lang: render(n, lang).title for lang in ("en", "zh")}
    return {
        "id": n.id,
        "kind": n.kind,
        "user_id": n.user_id,
        "subject": {"type": n.subject_type, "id": n.subject_id} if n.subject_type else None,
        "params": n.params,
        "title": titles,
        "created_at": n.created_at.isoformat(),
    }


def fan_out(session: Session, settings: Settings, *, now: datetime, limit: int = FANOUT_BATCH) -> int:
    """Queue e-mails and webhooks for a batch of pending notifications; return how many were handled."""
    rows = session.execute(
        select(Notification, User.email, User.locale, User.active, NotificationPreference.email)
        .join(User, User.id == Notification.user_id)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == Notification.user_id)
        .where(Notification.outbox_state == PENDING)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Notification)
    ).all()
    messages: list[Message] = []
    for n, address, user_locale, active, wants_email in rows:
        wants = EMAIL_DEFAULT if wants_email is None else wants_email
        if settings.smtp_configured and active and address and wants:
            locale = user_locale if user_locale in ("en", "zh") else settings.default_locale
            rendered = render(n, locale)
            messages.append(
                Message(
                    "email",
                    address,
                    {"subject": rendered.title, "text": _email_text(rendered, settings, locale)},
                    f"notification:{n.id}:email",
                )
            )
        url = webhook_url(settings, n.kind)
        if url:
            messages.append(
                Message(
                    "webhook",
                    url,
                    {"event": n.kind, "body": _webhook_body(n)},
                    f"notification:{n.id}:webhook",
                )
            )
        n.outbox_state = DONE
    enqueue_messages(session, messages, now=now)
    session.flush()
    return len(rows)


@dataclass
class DeliveryRun:
    """What one run of the delivery job did."""

    fanned_out: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0


def run_delivery(runtime: Runtime, *, fanout_batch: int = FANOUT_BATCH) -> DeliveryRun:
    """Fan pending notifications out to the outbox (own transactions), then send what is due."""
    run = DeliveryRun()
    for _round in range(MAX_ROUNDS):
        with runtime.db.session_scope(immediate=True) as session:
            handled = fan_out(session, runtime.settings, now=runtime.clock.now(), limit=fanout_batch)
        run.fanned_out += handled
        if handled < fanout_batch:
            break
    for _round in range(MAX_ROUNDS):
        stats: DeliveryStats = deliver_due(runtime)
        run.sent, run.retried, run.failed = (
            run.sent + stats.sent,
            run.retried + stats.retried,
            run.failed + stats.failed,
        )
        if stats.claimed == 0:
            break
    return run


@job(DELIVER_JOB)
def deliver_notifications(ctx: JobContext) -> dict[str, int]:
    """Fan out new notifications and send due outbox messages.

    It works in its own short transactions instead of the job's session: no transaction (and on SQLite no
    write lock) is held while an SMTP server or a webhook answers.
    """
    run = run_delivery(ctx.runtime)
    return {"fanned_out": run.fanned_out, "sent": run.sent, "retried": run.retried, "failed": run.failed}
