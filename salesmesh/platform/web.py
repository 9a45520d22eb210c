"""Request plumbing shared by every blueprint: the per-request session, locale, JSON parsing with size
and depth limits, and one error shape.

Views stay thin: `db()` gives the request's session (rolled back and closed at teardown unless the view
committed), `parse_json()` returns a body or raises `ApiError` naming the JSON pointer that is wrong, and
`ApiError` renders as `{"error": {"code", "message", "errors": [{"path", "message"}]}}` on the API and as
an HTML page elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, current_app, g, jsonify, render_template, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from salesmesh.platform.i18n import LOCALES, gettext, label, negotiate
from salesmesh.platform.runtime import Runtime


class ApiError(Exception):
    """An error with an HTTP status and, for validation, a list of {path, message}."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "errors": self.errors}}


def runtime() -> Runtime:
    """Return the runtime of the current app."""
    return current_app.extensions["salesmesh"]


def db() -> Session:
    """Return the session of the current request (one per request)."""
    if "db_session" not in g:
        database = runtime().db
        # On SQLite a deferred transaction that reads and then writes fails at once ("database is
        # locked") when another writer (the sweeper thread, a job) committed in between; requests that
        # change things take the write lock up front. A no-op distinction on PostgreSQL.
        writes = request.method not in ("GET", "HEAD", "OPTIONS")
        g.db_session = (database.ImmediateSession if writes else database.Session)()
    return g.db_session


def current_locale() -> str:
    """Return the locale of the current request (en or zh)."""
    if "locale" not in g:
        user = getattr(g, "user", None)
        chosen = getattr(user, "locale", None) if user is not None else None
        if chosen not in LOCALES:
            chosen = request.cookies.get("lang")
        if chosen not in LOCALES:
            chosen = negotiate(request.headers.get("Accept-Language"), runtime().settings.default_locale)
        g.locale = chosen
    return g.locale


def _(message: str, /, **params: Any) -> str:
    """Translate a UI message into the request's locale."""
    return gettext(message, current_locale(), **params)


def _depth(value: Any, limit: int, level: int = 1) -> bool:
    if level > limit:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit, level + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth(v, limit, level + 1) for v in value)
    return True


def parse_json(*, expect: type = dict) -> Any:
    """Parse the request body as JSON within the size and depth limits, or raise ApiError(400/413)."""
    raw = request.get_data(cache=True)
    limit = runtime().settings.max_json_depth
    too_deep = ApiError(
        400, "too_deep", "JSON nesting is too deep", [{"path": "", "message": f"nesting deeper than {limit}"}]
    )
    if len(raw) > runtime().settings.max_request_bytes:
        raise ApiError(413, "too_large", "request body is too large")
    try:
        body = json.loads(raw or b"null")
    except RecursionError:
        # The decoder recurses per nesting level: a body of a few thousand "[" must be a 400, not a 500.
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "invalid_json", f"body is not valid JSON: {exc}", [{"path": "", "message": str(exc)}]
        ) from None
    if not _depth(body, limit):
        raise too_deep
    if not isinstance(body, expect):
        raise ApiError(
            400,
            "invalid_body",
            f"body must be a JSON {expect.__name__}",
            [{"path": "", "message": f"expected {'object' if expect is dict else expect.__name__}"}],
        )
    return body


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def init_app(app: Flask) -> None:
    """Wire the per-request session, locale, template helpers and error pages into `app`."""

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        return {"_": _, "locale": current_locale, "label": lambda v: label(v, current_locale())}

    @app.after_request
    def _security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # A page that names who may frame it (CSP frame-ancestors: the embeddable public forms) must not be
        # overruled by X-Frame-Options.
        if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        if wants_json():
            return jsonify(exc.to_json()), exc.status
        return render_template(
            "error.html", status=exc.status, message=exc.message, errors=exc.errors
        ), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "error"
        if wants_json():
            return jsonify({"error": {"code": code, "message": message, "errors": []}}), status
        return render_template("error.html", status=status, message=_(exc.name or "Error"), errors=[]), status
