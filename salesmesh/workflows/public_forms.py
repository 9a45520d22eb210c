"""Public web forms: which lead forms anyone may fill in, their single-use form tokens, rate limits and
the submission service that hands a filled-in form to intake.

The rule: `/f/<form key>` is public when an ops person enabled it (`enable_public_form`, an active
`PublicForm` row) AND the key is the `form` of a published routing whose published version is a lead
form — what intake needs to validate and route the lead. Anything else is "not public" (404). The
visitor fills in the form's input fields except those the form gives values itself: `presets`, the
`campaign` field (from the link's `utm_campaign`/`campaign`), reference and file fields (no record
pickers or uploads for the public) and read-only fields; a required field of those kinds needs a preset.

Session-cookie CSRF does not work in a third-party iframe, so each rendered form carries a signed,
time-limited token instead: `v1.<issued unix seconds>.<nonce>.<hex HMAC-SHA256>` over the form key,
issue time and a random nonce, keyed by a key derived from the app secret. `submit_public_form` checks,
in order: the hourly limits per client address and per form (counted in `public_form_attempts`, so all
processes share them; PostgreSQL takes turns per form), the token (missing, forged, expired after
`TOKEN_TTL`), single use (the attempt row's UNIQUE nonce: a token that already brought a lead, or a bot,
just sees the thank-you page again; any other reuse is refused), the honeypot input (filled: thanked,
nothing stored, counted), the minimum fill time (`MIN_FILL` after the token was issued), the form's
validation, and then `intake.intake_lead` records, de-duplicates and routes the lead under the form's
channel key. Flushes, never commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from salesmesh.forms.binding import bind
from salesmesh.forms.compile import FormSpec, FormState, SectionSpec, published_form
from salesmesh.forms.fields import FieldSpec
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_, gettext
from salesmesh.workflows.intake import IntakeInvalid, IntakeUnavailable, intake_lead, lead_form_for
from salesmesh.workflows.intake_channels import KEY_PATTERN
from salesmesh.workflows.intake_models import IntakeChannel
from salesmesh.workflows.public_form_models import PublicForm, PublicFormAttempt

DEFAULT_CHANNEL = "web_form"
DEFAULT_PER_IP_PER_HOUR = 20
DEFAULT_PER_FORM_PER_HOUR = 500
MAX_LIMIT = 100_000
TOKEN_TTL = timedelta(hours=2)
MIN_FILL = timedelta(seconds=3)
RATE_WINDOW = timedelta(hours=1)
# Attempts are kept while their nonce could still be replayed and while the rate window counts them.
KEEP_ATTEMPTS = max(TOKEN_TTL, RATE_WINDOW)
FUTURE_SKEW = timedelta(minutes=1)  # web processes' clocks may differ a little
TOKEN_VERSION = "v1"
SYSTEM_FIELDS = frozenset({"campaign"})
NOT_FOR_THE_PUBLIC = frozenset({"reference", "file"})
HONEYPOT_NAMES = ("homepage", "company_homepage", "fax_number")
CAMPAIGN_MAX = 120
THANKED = frozenset({"accepted", "duplicate", "honeypot"})
_PG_FORM_LOCK = 0x10F0  # first key of the per-form advisory locks (two-key space, like logins)
_ORIGIN = re.compile(r"\*|https?://(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?")
_NONCE = re.compile(r"[0-9a-f]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PublicFormError(ValueError):
    """A public form could not be enabled or changed; the message names the option."""


class FormNotPublic(LookupError):
    """No public form under this key (not enabled, disabled, or intake cannot take its leads)."""


class TokenRejected(Exception):
    """The form token is missing, forged, expired or used; `error` is the bilingual form-level error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.error = {"path": "", "message": gettext(message, "en"), "message_zh": gettext(message, "zh")}


@dataclass(frozen=True)
class FormToken:
    """A verified form token: when it was issued and its single-use nonce."""

    issued_at: datetime
    nonce: str


@dataclass
class PublicFormPage:
    """A public form ready to render or take: its settings, its compiled lead form, what the visitor fills."""

    config: PublicForm
    spec: FormSpec

    @property
    def key(self) -> str:
        return self.spec.key

    @cached_property
    def visitor_fields(self) -> frozenset[str]:
        """Keys of the fields the visitor fills in."""
        return frozenset(f.key for f in self.spec.input_fields if _for_visitor(f, self.config.presets or {}))

    @cached_property
    def sections(self) -> list[tuple[SectionSpec, list[FieldSpec]]]:
        """The sections with something for the visitor to fill in, each with the fields it shows."""
        out = []
        for section in self.spec.sections:
            shown = [f for f in section.fields if f.key in self.visitor_fields or not f.takes_input]
            if any(f.takes_input for f in shown):
                out.append((section, shown))
        return out

    @cached_property
    def honeypot(self) -> str:
        """The name of the trap input (one the form does not use)."""
        return next(name for name in HONEYPOT_NAMES if name not in self.spec.by_key)

    def defaults(self) -> dict[str, Any]:
        """Return the values a fresh form shows: the visitor fields' defaults."""
        return {
            f.key: f.default
            for f in self.spec.input_fields
            if f.key in self.visitor_fields and f.default is not None
        }

    def state(self, values: Mapping[str, Any], now: datetime) -> FormState:
        """Return which fields are hidden and required, with the presets counted in."""
        return self.spec.state({**values, **(self.config.presets or {})}, now)

    def form_input(self, raw: Mapping[str, Any], campaign: str | None) -> MultiDict[str, str]:
        """Return what binding reads: the visitor's fields only, then the presets and the campaign."""
        data: MultiDict[str, str] = MultiDict()
        getlist = getattr(raw, "getlist", None)
        for key in self.visitor_fields:
            values = getlist(key) if getlist is not None else [raw[key]] if key in raw else []
            for value in values:
                data.add(key, value)
        presets = dict(self.config.presets or {})
        if campaign and "campaign" in self.spec.by_key:
            presets["campaign"] = campaign
        for key, value in presets.items():
            for item in value if isinstance(value, list) else [value]:
                data.add(key, _as_form_text(item))
        return data


@dataclass
class Submission:
    """What a submission came to: `outcome`, values and errors to show again, or the lead it made."""

    outcome: str  # accepted | duplicate | honeypot | replayed | invalid | too_fast | rejected | limited
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    lead_id: int | None = None
    retry_after: int | None = None

    @property
    def thanked(self) -> bool:
        """True when the visitor is shown the thank-you page."""
        return self.outcome in THANKED or self.outcome == "replayed"


def _for_visitor(f: FieldSpec, presets: Mapping[str, Any]) -> bool:
    return not (
        f.key in presets or f.key in SYSTEM_FIELDS or f.read_only or f.type.name in NOT_FOR_THE_PUBLIC
    )


def _as_form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def clean_campaign(value: str | None) -> str | None:
    """Return a campaign name from a link's query string: printable, trimmed, at most 120 characters."""
    text_value = _CONTROL.sub("", value or "").strip()[:CAMPAIGN_MAX].strip()
    return text_value or None


# --- which forms are public -----------------------------------------------------------------------


def find_public_form(session: Session, form_key: str) -> PublicFormPage:
    """Return the public form called `form_key`, or raise FormNotPublic (see the module docstring)."""
    config = session.scalars(
        select(PublicForm).where(PublicForm.form_key == form_key, PublicForm.active.is_(True))
    ).first()
    if config is None:
        raise FormNotPublic(form_key)
    try:
        plan, spec = lead_form_for(session, form_key)
    except IntakeUnavailable:
        raise FormNotPublic(form_key) from None
    # Without a routing of its own, current_plan falls back to the only published routing: not this form.
    if plan.form_key != form_key or spec.key != form_key:
        raise FormNotPublic(form_key)
    return PublicFormPage(config=config, spec=spec)


def _check_presets(spec: FormSpec, presets: Mapping[str, Any]) -> None:
    errors = bind(spec, dict(presets), source="json", apply_defaults=False).errors
    problems = [f"{key}: {errs[0]['message']}" for key, errs in errors.items() if key in presets]
    if problems:
        raise PublicFormError("presets: " + "; ".join(problems))
    unfillable = [
        f.key
        for f in spec.input_fields
        if f.required and not _for_visitor(f, presets) and f.key not in presets
    ]
    if unfillable:
        raise PublicFormError(
            f"presets: {', '.join(unfillable)} required but not filled in by visitors; give "
            + ("it" if len(unfillable) == 1 else "them")
            + " a preset value"
        )


def _check_origins(origins: list[str]) -> list[str]:
    cleaned = []
    for origin in origins:
        value = origin.strip().lower().rstrip("/")
        if not _ORIGIN.fullmatch(value):
            raise PublicFormError(
                f"frame ancestors: {origin!r} is not an origin like https://www.example.com, "
                "https://*.example.com or *"
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _limit(name: str, value: int) -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise PublicFormError(f"{name}: give a number from 1 to {MAX_LIMIT}")
    return value


def enable_public_form(
    session: Session,
    form_key: str,
    *,
    clock: Clock,
    channel: str | None = None,
    presets: Mapping[str, Any] | None = None,
    frame_ancestors: list[str] | None = None,
    per_ip_per_hour: int | None = None,
    per_form_per_hour: int | None = None,
) -> PublicForm:
    """Open a published lead form to the public (or change how); options left None keep their value.

    Everything is checked before anything changes, so a refused call leaves no half-made row behind."""
    spec = published_form(session, form_key)
    if spec is None or spec.record_type != "lead":
        raise PublicFormError(f"form: {form_key!r} is not a published lead form")
    config = session.scalars(select(PublicForm).where(PublicForm.form_key == form_key)).first()
    if channel is not None and not KEY_PATTERN.fullmatch(channel):
        raise PublicFormError(
            "channel: 2-40 characters, lower-case letters, digits, '-' or '_', starting with a letter"
        )
    if presets is None:
        presets = config.presets if config is not None else {}
    _check_presets(spec, presets or {})  # also when unchanged: the form may have a new version
    origins = _check_origins(frame_ancestors) if frame_ancestors is not None else None
    per_ip = _limit("per-IP limit", per_ip_per_hour) if per_ip_per_hour is not None else None
    per_form = _limit("per-form limit", per_form_per_hour) if per_form_per_hour is not None else None
    now = clock.now()
    if config is None:
        config = PublicForm(
            form_key=form_key,
            channel=DEFAULT_CHANNEL,
            frame_ancestors=[],
            per_ip_per_hour=DEFAULT_PER_IP_PER_HOUR,
            per_form_per_hour=DEFAULT_PER_FORM_PER_HOUR,
            created_at=now,
        )
        session.add(config)
    config.presets = dict(presets or {})
    if channel is not None:
        config.channel = channel
    if origins is not None:
        config.frame_ancestors = origins
    if per_ip is not None:
        config.per_ip_per_hour = per_ip
    if per_form is not None:
        config.per_form_per_hour = per_form
    config.active = True
    config.updated_at = now
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=None,
        action="public_form.enable",
        object_type="public_forms",
        object_id=config.id,
        payload={
            "form_key": form_key,
            "channel": config.channel,
            "presets": config.presets,
            "frame_ancestors": config.frame_ancestors,
            "per_ip_per_hour": config.per_ip_per_hour,
            "per_form_per_hour": config.per_form_per_hour,
        },
    )
    return config


def disable_public_form(session: Session, form_key: str, *, clock: Clock) -> PublicForm:
    """Close a public form: `/f/<form key>` answers 404 until it is enabled again."""
    config = session.scalars(select(PublicForm).where(PublicForm.form_key == form_key)).first()
    if config is None:
        raise PublicFormError(f"form: {form_key!r} is not a public form")
    if config.active:
        now = clock.now()
        config.active = False
        config.updated_at = now
        session.flush()
        record_event(
            session,
            at=now,
            actor_id=None,
            action="public_form.disable",
            object_type="public_forms",
            object_id=config.id,
            payload={"form_key": form_key},
        )
    return config


def frame_ancestors_policy(config: PublicForm | None) -> str:
    """Return the CSP `frame-ancestors` sources: this site plus the allowed origins, or `*`."""
    origins = list(config.frame_ancestors or []) if config is not None else []
    if "*" in origins:
        return "*"
    return " ".join(["'self'", *origins])


def attempt_counts(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    """Return {form key: {outcome: count}} of the attempts recorded since `since`."""
    rows = session.execute(
        select(PublicFormAttempt.form_key, PublicFormAttempt.outcome, func.count())
        .where(PublicFormAttempt.at > since)
        .group_by(PublicFormAttempt.form_key, PublicFormAttempt.outcome)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for form_key, outcome, count in rows:
        out.setdefault(form_key, {})[outcome] = int(count)
    return out


# --- form tokens ------------------------------------------------------------------------------------


def _token_key(secret: str) -> bytes:
    # A key of its own, so a form token's MAC can never pass for another signature made with the secret.
    return hmac.new(secret.encode(), b"salesmesh public form token", hashlib.sha256).digest()


def _mac(secret: str, form_key: str, body: str) -> str:
    return hmac.new(_token_key(secret), f"{form_key}.{body}".encode(), hashlib.sha256).hexdigest()


def issue_token(secret: str, form_key: str, now: datetime) -> str:
    """Return a fresh signed token for one submission of `form_key`."""
    body = f"{TOKEN_VERSION}.{int(now.timestamp())}.{secrets.token_hex(16)}"
    return f"{body}.{_mac(secret, form_key, body)}"


def read_token(secret: str, form_key: str, token: str | None, now: datetime) -> FormToken:
    """Return the verified token, or raise TokenRejected (missing, forged or expired)."""
    if not token:
        raise TokenRejected("missing", N_("This form could not be verified. Please send it again."))
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION or not parts[1].isdigit() or len(parts[1]) > 12:
        raise TokenRejected("forged", N_("This form could not be verified. Please send it again."))
    if not _NONCE.fullmatch(parts[2]) or not hmac.compare_digest(
        _mac(secret, form_key, ".".join(parts[:3])), parts[3]
    ):
        raise TokenRejected("forged", N_("This form could not be verified. Please send it again."))
    issued = datetime.fromtimestamp(int(parts[1]), UTC)
    if issued > now + FUTURE_SKEW:
        raise TokenRejected("forged", N_("This form could not be verified. Please send it again."))
    if now - issued > TOKEN_TTL:
        raise TokenRejected(
            "expired",
            N_("This form was open too long and has expired. Please check your details and send it again."),
        )
    return FormToken(issued_at=issued, nonce=parts[2])


# --- rate limits ------------------------------------------------------------------------------------


def check_rate(session: Session, config: PublicForm, ip: str, now: datetime) -> int | None:
    """Return seconds to wait when this address or the form is over its hourly limit, else None."""
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent submissions would all count before any records itself; take turns per form until
        # the request commits. SQLite requests already hold the write lock (BEGIN IMMEDIATE).
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
            {"space": _PG_FORM_LOCK, "key": config.form_key},
        )
    since = now - RATE_WINDOW
    mine = PublicFormAttempt.ip == ip
    by_ip, first_ip, by_form, first_form = session.execute(
        select(
            func.count(case((mine, 1))),
            func.min(case((mine, PublicFormAttempt.at))),
            func.count(),
            func.min(PublicFormAttempt.at),
        ).where(PublicFormAttempt.form_key == config.form_key, PublicFormAttempt.at > since)
    ).one()
    until = []
    if by_ip >= config.per_ip_per_hour and first_ip is not None:
        until.append(first_ip + RATE_WINDOW)
    if by_form >= config.per_form_per_hour and first_form is not None:
        until.append(first_form + RATE_WINDOW)
    if not until:
        return None
    return max(1, int((max(until) - now).total_seconds()))


# --- submitting -------------------------------------------------------------------------------------


def _form_error(message: str) -> dict[str, list[dict[str, str]]]:
    return {"": [{"path": "", "message": gettext(message, "en"), "message_zh": gettext(message, "zh")}]}


def _claim(
    session: Session, page: PublicFormPage, ip: str, nonce: str, now: datetime
) -> PublicFormAttempt | None:
    """Record an attempt under the token's nonce; None when the nonce was used already (or just now)."""
    session.execute(
        delete(PublicFormAttempt).where(
            PublicFormAttempt.form_key == page.key, PublicFormAttempt.at <= now - KEEP_ATTEMPTS
        )
    )
    attempt = PublicFormAttempt(form_key=page.key, ip=ip, nonce=nonce, outcome="invalid", at=now)
    try:
        with session.begin_nested():
            session.add(attempt)
    except IntegrityError:
        return None
    return attempt


def _replayed(session: Session, nonce: str, redisplay: dict[str, Any]) -> Submission:
    """Answer a token used before: the thank-you page again when it was thanked (a double click, a
    resent page), else a refusal that shows the form again."""
    previous = session.scalars(select(PublicFormAttempt).where(PublicFormAttempt.nonce == nonce)).first()
    if previous is not None and previous.outcome in THANKED:
        return Submission("replayed", lead_id=previous.lead_id if previous.outcome != "honeypot" else None)
    message = N_("This form was already sent. Please check your details and send it again.")
    return Submission("rejected", redisplay, _form_error(message))


def _keyed_errors(page: PublicFormPage, errors: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """File intake's errors under the visitor's fields; the others (presets, system fields) under the form."""
    out: dict[str, list[dict[str, str]]] = {}
    for error in errors:
        key = error["path"].split("/")[1] if error["path"].count("/") else ""
        if key not in page.visitor_fields:
            f = page.spec.by_key.get(key)
            name_en = f.label.get("en", key) if f else key
            name_zh = f.label.get("zh", key) if f else key
            error = {
                "path": error["path"],
                "message": f"{name_en}: {error['message']}" if key else error["message"],
                "message_zh": f"{name_zh}：{error['message_zh']}" if key else error["message_zh"],
            }
            key = ""
        out.setdefault(key, []).append(error)
    return out


def submit_public_form(
    session: Session,
    page: PublicFormPage,
    raw: Mapping[str, Any],
    *,
    token: str | None,
    ip: str,
    campaign: str | None,
    secret: str,
    clock: Clock,
) -> Submission:
    """Check a public form submission and hand it to intake; see the module docstring for the order."""
    now = clock.now()
    ip = (ip or "unknown")[:64]
    retry_after = check_rate(session, page.config, ip, now)
    if retry_after is not None:
        return Submission("limited", retry_after=retry_after)
    campaign = clean_campaign(campaign) or clean_campaign(
        _as_form_text((page.config.presets or {}).get("campaign"))
    )
    data = page.form_input(raw, campaign)
    bound = bind(page.spec, data, source="form", now=now)
    try:
        issued = read_token(secret, page.key, token, now)
    except TokenRejected as exc:
        return Submission("rejected", bound.redisplay, {"": [exc.error]})
    attempt = _claim(session, page, ip, issued.nonce, now)
    if attempt is None:
        return _replayed(session, issued.nonce, bound.redisplay)
    if str(raw.get(page.honeypot) or "").strip():
        attempt.outcome = "honeypot"
        session.flush()
        return Submission("honeypot")
    if now - issued.issued_at < MIN_FILL:
        attempt.outcome = "too_fast"
        session.flush()
        return Submission(
            "too_fast",
            bound.redisplay,
            _form_error(N_("That was very quick. Please check your details and send the form again.")),
        )
    if not bound.valid:
        return Submission("invalid", bound.redisplay, _keyed_errors(page, bound.error_list()))
    # The form's own channel row is not stored: it only tells intake the source key and the lead form.
    channel = IntakeChannel(key=page.config.channel, form_key=page.key, defaults={})
    try:
        result = intake_lead(session, channel=channel, payload=bound.values, clock=clock, campaign=campaign)
    except IntakeInvalid as exc:
        return Submission("invalid", bound.redisplay, _keyed_errors(page, exc.errors))
    attempt.outcome = "accepted" if result.created else "duplicate"
    attempt.lead_id = result.lead.id
    session.flush()
    return Submission(attempt.outcome, lead_id=result.lead.id)
