"""Who is making this request: server-side session cookies, bearer API tokens, CSRF and view guards.

`init_app(app, csrf)` installs one `before_request` hook that sets `g.user` (or None). Browsers carry an
opaque secret in Flask's signed cookie (`session["sid"]`); the hook checks it against `user_sessions`
through `credentials.resolve_session`, so logout, deactivation, a password change or idle time kill the
session on the server and a copied cookie stops working. Requests under `/api/` may instead send
`Authorization: Bearer <token>`; such requests are exempt from CSRF (a browser cannot attach that header
cross-site), while every other unsafe request — every browser form and cookie-authenticated API call —
is CSRF-checked here, because Flask-WTF's automatic check is switched off in favour of this one. A
bearer header that does not resolve to a live token is answered 401 at once, never silently ignored.

Views use `login_required`, `roles_required(*roles)` and `current_user()`; HTML requests are redirected
to the login page (or get 403), API requests get a JSON 401/403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import Forbidden

from salesmesh.platform import credentials
from salesmesh.platform.models import User
from salesmesh.platform.web import _, db, runtime, wants_json

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_KEY = "sid"
T = TypeVar("T")
SQLITE_BUSY_SNAPSHOT = 517


def current_user() -> User | None:
    """Return the signed-in user of this request, or None."""
    return getattr(g, "user", None)


def safe_next(target: str | None, default: str = "/") -> str:
    """Return `target` when it is a local path (never another site), else `default`."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target.rstrip("?") or default


def client_ip() -> str:
    """Return the client address used for login throttling."""
    return request.remote_addr or "unknown"


def login_user(user: User) -> None:
    """Start a server-side session for `user` and put its secret in a fresh cookie (caller commits)."""
    rt = runtime()
    _row, secret = credentials.start_session(
        db(), user, clock=rt.clock, ip=client_ip(), user_agent=request.headers.get("User-Agent")
    )
    session.clear()  # a new cookie for a new login: no session fixation
    session[SESSION_KEY] = secret
    g.user = user


def logout_user() -> None:
    """Revoke this browser's server-side session and empty its cookie (caller commits)."""
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str):
        credentials.end_session(db(), secret, clock=runtime().clock)
    session.clear()
    g.user = None


def _unauthorized(message: str) -> Any:
    return (
        jsonify({"error": {"code": "unauthorized", "message": message, "errors": []}}),
        401,
        {"WWW-Authenticate": 'Bearer realm="salesmesh"'},
    )


def _lookup(find: Callable[[], T]) -> T:
    """Run a credential lookup that may write (last_seen_at, last_used_at, idle revocation).

    A GET reads in a deferred SQLite transaction; when another writer (the sweeper, a job, another request)
    committed after that read began, SQLite refuses the write at once with SQLITE_BUSY_SNAPSHOT. Start
    over once on a fresh snapshot instead of answering 500.
    """
    try:
        return find()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlite_errorcode", None) != SQLITE_BUSY_SNAPSHOT:
            raise
        db().rollback()
        return find()


def _load_user(csrf: CSRFProtect) -> Any:
    g.user = None
    g.auth_method = None
    if request.endpoint == "static":
        return None  # stylesheets need no identity: spare them the session lookup
    rt = runtime()
    header = request.headers.get("Authorization", "")
    if request.path.startswith("/api/") and header:
        scheme, _sep, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _unauthorized("Authorization must be 'Bearer <token>'")
        token, touched = _lookup(lambda: credentials.resolve_api_token(db(), value.strip(), clock=rt.clock))
        if token is None:
            return _unauthorized("invalid or revoked API token")
        if touched:
            db().commit()
        g.user = token.user
        g.auth_method = "token"
        return None
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str):
        row, touched = _lookup(
            lambda: credentials.resolve_session(
                db(), secret, clock=rt.clock, idle_minutes=rt.settings.session_idle_minutes
            )
        )
        if touched:
            # Nothing else has happened in this request yet; committing here keeps last_seen_at (or
            # the idle revocation) even when the view only reads.
            db().commit()
        if row is None:
            session.pop(SESSION_KEY, None)
        else:
            g.user = row.user
            g.auth_method = "session"
    if request.method in UNSAFE_METHODS:
        csrf.protect(apply_exemptions=True)
    return None


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    """Load the user of every request, check CSRF for cookie requests and render auth errors."""
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in _load_user, after bearer tokens are known

    @app.before_request
    def _authenticate() -> Any:
        return _load_user(csrf)

    @app.context_processor
    def _auth_helpers() -> dict[str, Any]:
        return {"current_user": current_user}

    @app.after_request
    def _no_store_for_signed_in(response: Response) -> Response:
        # Pages of a signed-in user (people, tokens shown once, records) must not be kept by the browser
        # or a proxy: after sign-out, Back or a shared computer's cache would show them again.
        if current_user() is not None:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        message = _("The form expired or did not come from this site. Reload the page and try again.")
        if wants_json():
            return jsonify({"error": {"code": "csrf_failed", "message": message, "errors": []}}), 400
        return render_template("error.html", status=400, message=message, errors=[]), 400


def _deny(status: int) -> Any:
    if wants_json():
        if status == 401:
            return _unauthorized("sign in or send a bearer token")
        return jsonify({"error": {"code": "forbidden", "message": "not allowed", "errors": []}}), 403
    if status == 401:
        return redirect(url_for("auth.login", next=safe_next(request.full_path)))
    raise Forbidden()


def login_required(view: F) -> F:
    """Let only signed-in users reach `view` (HTML → login page, API → 401)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return _deny(401)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def roles_required(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users with one of `roles` reach the view (others get 401/403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return _deny(401)
            if user.role not in roles:
                return _deny(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
