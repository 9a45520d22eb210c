"""The app factory: `create_app(settings)` builds the Flask app around one Runtime.

Only this module (and the CLI root) sees every package: it wires request plumbing, authentication,
CSRF and the blueprints of each area. Nothing here reads the environment; `wsgi.py` does that.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from salesmesh.platform import web
from salesmesh.platform.clock import Clock
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings

_HERE = Path(__file__).parent
csrf = CSRFProtect()


def create_app(settings: Settings, *, clock: Clock | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the web app for `settings` (and an optional clock or prebuilt runtime, for tests)."""
    rt = runtime or Runtime(settings, clock=clock)
    app = Flask(
        "salesmesh",
        instance_path=str(settings.instance_path),
        template_folder=str(_HERE / "templates"),
        static_folder=str(_HERE / "static"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="salesmesh",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        TESTING=settings.testing,
        JSON_SORT_KEYS=False,
    )
    app.extensions["salesmesh"] = rt
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops, x_host=settings.proxy_hops
        )
    web.init_app(app)
    csrf.init_app(app)

    from salesmesh.forms import web as forms_web
    from salesmesh.metamodel import api as definitions_api
    from salesmesh.metamodel import views as definitions_views
    from salesmesh.platform import auth, auth_views, home_views, notification_views
    from salesmesh.workflows import (
        action_views,
        board_views,
        import_views,
        intake_api,
        lead_api,
        list_views,
        myday,
        new_leads,
        pipeline_views,
        pool_views,
        public_form,
        record_views,
        routing_views,
    )

    forms_web.init_app(app)  # the "forms/fields.html" macros, importable from every template
    auth.init_app(app, csrf)
    app.register_blueprint(home_views.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(definitions_api.bp)
    app.register_blueprint(definitions_views.bp)
    app.register_blueprint(lead_api.bp)
    app.register_blueprint(list_views.bp)
    app.register_blueprint(record_views.bp)
    app.register_blueprint(myday.bp)
    app.register_blueprint(board_views.bp)
    app.register_blueprint(action_views.bp)
    app.register_blueprint(notification_views.bp)
    app.register_blueprint(new_leads.bp)
    app.register_blueprint(routing_views.bp)
    app.register_blueprint(pool_views.bp)
    app.register_blueprint(pipeline_views.bp)
    csrf.exempt(import_views.upload)  # raises the body limit for the file first, then checks CSRF itself
    app.register_blueprint(import_views.bp)
    csrf.exempt(intake_api.bp)
    app.register_blueprint(intake_api.bp)
    csrf.exempt(public_form.submit)  # signed single-use form tokens instead (third-party iframes)
    app.register_blueprint(public_form.bp)
    return app
