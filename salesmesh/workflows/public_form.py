"""`/f/<form key>`: the public, embeddable web form of a lead form, its thank-you page and its headers.

Views only: which forms are public, the token, limits and the hand-over to intake are
`salesmesh.workflows.public_forms`. The pages are standalone (no staff chrome, no cookies) in English or
Chinese: `?lang=en|zh` wins, else the usual choice (a signed-in user's setting, the `lang` cookie,
Accept-Language). The POST is exempt from the app's session CSRF check (it cannot work in a third-party
iframe) and relies on the signed single-use form token instead. Every response here carries
`Content-Security-Policy` with `frame-ancestors` from the form's allow-list (so no X-Frame-Options) and
`Cache-Control: no-store` (a cached page would hand one token to many visitors); bodies are limited to
`MAX_FORM_BYTES`. A valid submission redirects (303) to the thank-you page in the same language, so a
reload does not send it again; errors show the form again with values kept: 422 for field errors, 400 for
a refused token or a too-quick submission, 429 with Retry-After past the hourly limits. A stored lead (new,
or a duplicate whose owner is told) starts the notifications delivery job once the commit is done.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from salesmesh.platform.auth import client_ip
from salesmesh.platform.i18n import LOCALES, N_, gettext
from salesmesh.platform.notifications import kick_delivery
from salesmesh.platform.web import current_locale, db, runtime
from salesmesh.workflows.public_forms import (
    FormNotPublic,
    PublicFormPage,
    Submission,
    clean_campaign,
    find_public_form,
    frame_ancestors_policy,
    issue_token,
    submit_public_form,
)

bp = Blueprint("public_form", __name__, template_folder="templates")
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_PARTS = 500
MAX_KEY = 80
# Query parameters a form page passes on to its POST, thank-you and language links.
KEPT_ARGS = ("utm_campaign", "campaign")
STATUS = {"invalid": 422, "rejected": 400, "too_fast": 400}


@bp.before_request
def _public_request() -> None:
    lang = request.args.get("lang")
    if lang in LOCALES:
        g.locale = lang
    request.max_content_length = min(MAX_FORM_BYTES, runtime().settings.max_request_bytes)
    request.max_form_parts = MAX_FORM_PARTS
    g.csp_nonce = secrets.token_urlsafe(16)


@bp.after_request
def _public_headers(response: Response) -> Response:
    nonce = g.get("csp_nonce", "")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
        f"object-src 'none'; frame-ancestors {frame_ancestors_policy(g.get('public_form'))}"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


def _message(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Any:
    lc = current_locale()
    other = "en" if lc == "zh" else "zh"
    page = render_template(
        "public_form/message.html",
        status=status,
        title=gettext(title, lc),
        message=gettext(message, lc),
        other_title=gettext(title, other),
        other_message=gettext(message, other),
    )
    return page, status, headers or {}


def _not_public() -> Any:
    return _message(404, N_("Form not found"), N_("This form is not available."))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Any:
    return _message(
        413, N_("Too much data"), N_("The form is too large to send. Please shorten your answers.")
    )


def _load(form_key: str) -> PublicFormPage | None:
    if len(form_key) > MAX_KEY:
        return None
    try:
        page = find_public_form(db(), form_key)
    except FormNotPublic:
        return None
    g.public_form = page.config
    return page


def _kept(**extra: Any) -> dict[str, Any]:
    args = {name: request.args[name] for name in KEPT_ARGS if request.args.get(name)}
    return {**args, **extra}


def _form(page: PublicFormPage, values: dict[str, Any], errors: dict[str, Any], status: int = 200) -> Any:
    rt = runtime()
    now = rt.clock.now()
    lc = current_locale()
    html = render_template(
        "public_form/form.html",
        page=page,
        spec=page.spec,
        values=values,
        errors=errors,
        state=page.state(values, now),
        token=issue_token(rt.settings.secret_key, page.key, now),
        action=url_for(".submit", form_key=page.key, **_kept(lang=lc)),
        other_language_url=url_for(".show", form_key=page.key, **_kept(lang="en" if lc == "zh" else "zh")),
    )
    return html, status


@bp.get("/f/<form_key>")
def show(form_key: str) -> Any:
    """Show a public form, empty (with its defaults)."""
    page = _load(form_key)
    if page is None:
        return _not_public()
    return _form(page, page.defaults(), {})


@bp.post("/f/<form_key>")
def submit(form_key: str) -> Any:
    """Take a submitted public form: thank-you page, or the form again with what is wrong."""
    page = _load(form_key)
    if page is None:
        return _not_public()
    rt = runtime()
    session = db()
    result: Submission = submit_public_form(
        session,
        page,
        request.form,
        token=request.form.get("_token"),
        ip=client_ip(),
        campaign=clean_campaign(request.args.get("utm_campaign") or request.args.get("campaign")),
        secret=rt.settings.secret_key,
        clock=rt.clock,
    )
    if result.outcome == "limited":
        session.rollback()
        return _message(
            429,
            N_("Too many submissions"),
            N_("This form has been sent too often. Please try again later."),
            {"Retry-After": str(result.retry_after)},
        )
    if result.outcome in ("accepted", "duplicate"):
        kick_delivery(session, rt.jobs)  # the owner's e-mail/webhook leave right after the commit
    session.commit()  # the attempt (and the lead) are kept whatever the page shows
    if result.thanked:
        return redirect(url_for(".thanks", form_key=page.key, lang=current_locale()), 303)
    return _form(page, result.values, result.errors, STATUS[result.outcome])


@bp.get("/f/<form_key>/thanks")
def thanks(form_key: str) -> Any:
    """Thank the visitor (the same page whether or not anything was stored)."""
    page = _load(form_key)
    if page is None:
        return _not_public()
    again = url_for(".show", form_key=page.key, lang=current_locale())
    return render_template("public_form/thanks.html", spec=page.spec, again_url=again)
