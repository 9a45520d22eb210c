"""Input checking shared by the record services: the error type, field cleaners and lookups.

The services in `records`, `conversion` and `activities` validate every field before they write, and
report all problems at once as `RecordError.errors`, a list of `{path, message, message_zh}` items whose
`path` is a JSON pointer into the service's input (`/name`, `/deal/amount`). An `Errors` collector gathers
them; each cleaner takes the raw value, its path and the collector, and returns the clean value (or None
after recording a problem). Lookups of the record an operation acts on go through the policy
(`load`: a foreign id is a 404), while ids given as field values (`ref`) answer a field error that reads
the same for a missing and a foreign row, so neither leaks what exists.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import User
from salesmesh.platform.rep_attributes import field_error
from salesmesh.workflows.models import Contact

MAX_DATA_BYTES = 64 * 1024
MAX_AMOUNT = Decimal("999999999999.99")
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
PHONE_RE = re.compile(r"^\+?[0-9 ()#*.\-]{3,31}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
_CENT = Decimal("0.01")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# Marks an update argument the caller did not pass (None means "clear the field").
UNSET: Any = _Unset()


def given(**fields: Any) -> dict[str, Any]:
    """Return the keyword arguments a caller actually passed (those not left UNSET)."""
    return {k: v for k, v in fields.items() if v is not UNSET}


class RecordError(ValueError):
    """Bad input to a record service; `errors` lists {path, message, message_zh}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors)
        )


class DuplicateCustomer(RecordError):
    """A customer with the same normalised name already exists in the region; `existing_id` names it."""

    def __init__(self, errors: list[dict[str, str]], existing_id: int) -> None:
        super().__init__(errors)
        self.existing_id = existing_id


class Errors:
    """Collects field errors; `raise_if_any()` turns them into one `RecordError`."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str, **params: Any) -> None:
        """Record one problem at `path` (relative to the collector's prefix)."""
        self.items.append(field_error(self.prefix + path, message, **params))

    def nested(self, prefix: str) -> Errors:
        """Return a collector writing into this one under a further path prefix."""
        child = Errors(self.prefix + prefix)
        child.items = self.items
        return child

    def raise_if_any(self) -> None:
        """Raise `RecordError` with everything collected so far, if anything."""
        if self.items:
            raise RecordError(list(self.items))


def fail(path: str, message: str, **params: Any) -> RecordError:
    """Return a `RecordError` with a single problem (for the caller to raise)."""
    return RecordError([field_error(path, message, **params)])


# --- normalisation ----------------------------------------------------------------------------------


def normalize_name(value: str | None) -> str:
    """Return the dedup key of a name: NFKC, case-folded, letters and digits only (full-width safe)."""
    text = unicodedata.normalize("NFKC", value or "").casefold()
    return "".join(ch for ch in text if ch.isalnum())


# --- cleaners ---------------------------------------------------------------------------------------


def text(value: Any, path: str, errors: Errors, *, max_len: int, required: bool = False) -> str | None:
    """Return stripped text (None when empty and optional)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.add(path, N_("This field is required."))
        return None
    if not isinstance(value, str):
        errors.add(path, N_("Must be text."))
        return None
    clean = value.strip()
    if len(clean) > max_len:
        errors.add(path, N_("Too long (at most %(n)s characters)."), n=max_len)
        return None
    return clean


def code(value: Any, path: str, errors: Errors) -> str | None:
    """Return a short stored code such as a grade, type or role (None when empty)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not CODE_RE.match(value):
        errors.add(path, N_("Use a code of lower-case letters, digits, '_', '.' or '-' (at most 40)."))
        return None
    return value


def choice(value: Any, path: str, errors: Errors, allowed: tuple[str, ...]) -> str | None:
    """Return `value` when it is one of `allowed`."""
    if value not in allowed:
        errors.add(
            path,
            N_("Unknown value %(value)s (use one of %(allowed)s)."),
            value=repr(value),
            allowed=", ".join(allowed),
        )
        return None
    return str(value)


def phone(value: Any, path: str, errors: Errors) -> str | None:
    """Return a phone number as written (digits, spaces, + ( ) - . # *), or None."""
    clean = text(value, path, errors, max_len=32)
    if clean is not None and not PHONE_RE.match(clean):
        errors.add(path, N_("Enter a valid phone number."))
        return None
    return clean


def email(value: Any, path: str, errors: Errors) -> str | None:
    """Return a lower-cased e-mail address, or None."""
    clean = text(value, path, errors, max_len=254)
    if clean is not None and not EMAIL_RE.match(clean):
        errors.add(path, N_("Enter a valid e-mail address."))
        return None
    return clean.lower() if clean else None


def moment(value: Any, path: str, errors: Errors) -> datetime | None:
    """Return an aware datetime (naive ones are refused: time comes with its zone)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        errors.add(path, N_("Enter a date and time."))
        return None
    if value.tzinfo is None:
        errors.add(path, N_("Give the time with its time zone."))
        return None
    return value


def day(value: Any, path: str, errors: Errors) -> date | None:
    """Return a date from a `date` or an ISO `YYYY-MM-DD` string."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        errors.add(path, N_("Enter a date (YYYY-MM-DD)."))
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors.add(path, N_("Enter a date (YYYY-MM-DD)."))
    return None


def money(value: Any, path: str, errors: Errors) -> Decimal | None:
    """Return a non-negative amount rounded to cents (numbers or numeric strings)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors.add(path, N_("Enter an amount."))
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", "")) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        errors.add(path, N_("Enter an amount."))
        return None
    if not amount.is_finite():
        errors.add(path, N_("Enter an amount."))
        return None
    amount = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    if amount < 0 or amount > MAX_AMOUNT:
        errors.add(path, N_("The amount must be between 0 and %(max)s."), max=f"{MAX_AMOUNT:,}")
        return None
    return amount


def currency(value: Any, path: str, errors: Errors) -> str | None:
    """Return an ISO 4217 currency code such as CNY."""
    if not isinstance(value, str) or not CURRENCY_RE.match(value):
        errors.add(path, N_("Use a three-letter currency code such as CNY."))
        return None
    return value


def data(value: Any, path: str, errors: Errors) -> dict[str, Any]:
    """Return the form-defined fields as a fresh JSON object (size-limited)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, N_("Must be a JSON object."))
        return {}
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        errors.add(path, N_("Must be a JSON object."))
        return {}
    if len(encoded.encode()) > MAX_DATA_BYTES:
        errors.add(path, N_("Too large (at most %(n)s bytes)."), n=MAX_DATA_BYTES)
        return {}
    return json.loads(encoded)


def form_version(session: Session, value: Any, path: str, errors: Errors) -> int | None:
    """Return the id of a published or archived form version (drafts cannot hold records)."""
    if value is None:
        return None
    found = None
    if isinstance(value, int) and not isinstance(value, bool):
        found = session.scalar(
            select(DefinitionVersion.id)
            .join(Definition)
            .where(
                DefinitionVersion.id == value,
                Definition.kind == "form",
                DefinitionVersion.status.in_(("published", "archived")),
            )
        )
    if found is None:
        errors.add(path, N_("Unknown form version %(id)s."), id=value)
    return found


# --- lookups ----------------------------------------------------------------------------------------


def load(session: Session, actor: User | None, model: Any, ident: Any) -> Any:
    """Fetch the row an operation acts on through the policy (404 when foreign); the system gets any."""
    if actor is not None:
        return policy.get_or_404(session, actor, model, ident)
    try:
        row = session.get(model, int(ident))
    except (TypeError, ValueError):
        row = None
    if row is None:
        raise NotFound()
    return row


def ref(
    session: Session, actor: User | None, model: Any, ident: Any, path: str, errors: Errors, message: str
) -> Any:
    """Fetch a row named by a field value; a missing or foreign id records `message` at `path`."""
    if ident is None:
        return None
    try:
        return load(session, actor, model, ident)
    except NotFound:
        errors.add(path, message, id=ident)
        return None


def assignee(session: Session, actor: User | None, user_id: Any, path: str, errors: Errors) -> User | None:
    """Return the active user a record may be given to by `actor` (reps only themselves, leads their team)."""
    user = session.get(User, user_id) if isinstance(user_id, int) and not isinstance(user_id, bool) else None
    if user is None or not user.active:
        errors.add(path, N_("Unknown user %(id)s."), id=user_id)
        return None
    if actor is not None and not (
        policy.can(actor, "record.assign", user) and policy.is_visible(actor, user)
    ):
        errors.add(path, N_("You cannot give records to %(name)s."), name=user.name)
        return None
    return user


def contact_at(
    session: Session, contact_id: Any, customer_id: int | None, path: str, errors: Errors
) -> Contact | None:
    """Return the contact `contact_id` when it works at `customer_id` (no policy: the customer decides)."""
    if contact_id is None:
        return None
    contact = (
        session.get(Contact, contact_id)
        if isinstance(contact_id, int) and not isinstance(contact_id, bool)
        else None
    )
    if contact is None or customer_id is None or contact.customer_id != customer_id:
        errors.add(path, N_("Contact %(id)s is not at this customer."), id=contact_id)
        return None
    return contact


def check(actor: User | None, action: str, obj: Any = None) -> None:
    """Require `action` of a person; the system (`actor=None`: jobs, CLI, seeder) skips the policy."""
    if actor is not None:
        policy.require(actor, action, obj)


def audit(session: Session, clock: Clock, actor: User | None, action: str, obj: Any, **payload: Any) -> None:
    """Append an audit event about `obj` (a record row) in the caller's transaction."""
    record_event(
        session,
        at=clock.now(),
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=type(obj).__tablename__,
        object_id=obj.id,
        payload=payload,
    )


def changed(row: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply `values` to `row` and return {field: [old, new]} for the ones that really changed."""
    changes: dict[str, list[Any]] = {}
    for key, new in values.items():
        old = getattr(row, key)
        if old != new:
            setattr(row, key, new)
            changes[key] = [old, new]
    return changes
