"""Sign-in, sign-out, the language switch and the people pages (users, teams, rep attributes).

Thin views: parse the form, call one service from `accounts`/`credentials`, commit once, then redirect
(or re-render with the errors next to their fields). Every POST here is CSRF-checked by `auth.init_app`;
every page that shows people goes through `policy.scope`/`get_or_404`, so a lead sees their team, a rep
themselves and teammates, and a foreign id answers 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from werkzeug.exceptions import BadRequest

from salesmesh.platform import accounts, credentials, policy
from salesmesh.platform.auth import (
    client_ip,
    current_user,
    login_required,
    login_user,
    logout_user,
    safe_next,
)
from salesmesh.platform.i18n import LOCALES
from salesmesh.platform.models import ROLES, ApiToken, Team, User
from salesmesh.platform.rep_attributes import (
    parse_attribute_inputs,
    published_attribute_schema,
)
from salesmesh.platform.web import _, current_locale, db, runtime

bp = Blueprint("auth", __name__)
LANG_COOKIE_SECONDS = 365 * 24 * 3600
MAX_LISTED = 500


def _field_errors(errors: list[dict[str, str]]) -> dict[str, str]:
    """Map a field name ("email", "attributes/skills", "" for the form) to its message in this locale."""
    out: dict[str, str] = {}
    for e in errors:
        key = e["path"].lstrip("/")
        text = e.get("message_zh") if current_locale() == "zh" and e.get("message_zh") else e["message"]
        out[key] = f"{out[key]} {text}" if key in out else text
    return out


def _optional_int(raw: str | None, field: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise accounts.AccountError([accounts.field_error(f"/{field}", "Must be a whole number.")]) from None


def _home() -> str:
    return url_for("home.index")


# --- sign-in, sign-out, language ---------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the sign-in form and sign in (rate limited per e-mail and address)."""
    target = safe_next(request.values.get("next"), _home())
    if current_user() is not None:
        return redirect(target)
    if request.method == "GET":
        return render_template("auth/login.html", email="", errors={}, next=target)
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = _("E-mail is required.")
    if not password:
        errors["password"] = _("Password is required.")
    if errors:
        return render_template("auth/login.html", email=email, errors=errors, next=target), 400
    rt = runtime()
    try:
        user = credentials.authenticate(
            db(),
            email,
            password,
            ip=client_ip(),
            clock=rt.clock,
            max_failures=rt.settings.login_max_failures,
            window_minutes=rt.settings.login_window_minutes,
        )
    except credentials.LoginLocked as exc:
        message = exc.message_zh if current_locale() == "zh" else exc.message
        page = render_template("auth/login.html", email=email, errors={"": message}, next=target)
        return page, 429, {"Retry-After": str(exc.retry_after)}
    except credentials.LoginFailed as exc:
        db().commit()  # keep the failed attempt: it counts towards the limit
        message = exc.message_zh if current_locale() == "zh" else exc.message
        return render_template("auth/login.html", email=email, errors={"password": message}, next=target), 401
    login_user(user)
    db().commit()
    return redirect(target)


@bp.post("/logout")
def logout() -> Any:
    """End this browser's session on the server and clear its cookie."""
    logout_user()
    db().commit()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.post("/language")
def set_language() -> Any:
    """Switch the interface language (cookie, and the user's setting when signed in)."""
    lang = request.form.get("lang", "")
    if lang not in LOCALES:
        raise BadRequest(_("Unknown language."))
    user = current_user()
    if user is not None:
        accounts.set_user_locale(db(), user, lang, clock=runtime().clock)
        db().commit()
    response = redirect(safe_next(request.form.get("next"), _home()))
    response.set_cookie("lang", lang, max_age=LANG_COOKIE_SECONDS, samesite="Lax", httponly=True)
    return response


# --- people ------------------------------------------------------------------------------------------


def _team_rows(session: Any) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(
            select(User.team_id, func.count(User.id)).where(User.active.is_(True)).group_by(User.team_id)
        ).all()
    )
    teams = session.scalars(policy.scope(select(Team).order_by(Team.key), g.user, Team)).all()
    return [{"team": t, "members": counts.get(t.id, 0)} for t in teams]


@bp.get("/people")
@login_required
def users() -> Any:
    """List the people the signed-in user may see, with the teams."""
    session = db()
    stmt = policy.scope(select(User), g.user, User)
    q = request.args.get("q", "").strip()
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(User.name).like(pattern), User.email.like(pattern)))
    team_filter = request.args.get("team", type=int)
    if team_filter:
        stmt = stmt.where(User.team_id == team_filter)
    people = session.scalars(stmt.order_by(User.active.desc(), User.role, User.name).limit(MAX_LISTED)).all()
    return render_template(
        "auth/users.html",
        people=people,
        teams=_team_rows(session),
        q=q,
        team_filter=team_filter,
        can_create=policy.can(g.user, "user.create", User),
        can_create_team=policy.can(g.user, "team.create", Team),
        roles=ROLES,
        errors={},
        form={},
        limit=MAX_LISTED,
    )


def _render_new(form: dict[str, Any], errors: dict[str, str], status: int = 200) -> Any:
    teams = db().scalars(select(Team).order_by(Team.key)).all()
    return render_template("auth/user_new.html", form=form, errors=errors, roles=ROLES, teams=teams), status


@bp.route("/people/new", methods=["GET", "POST"])
@login_required
def new_user() -> Any:
    """Create an account (admin)."""
    policy.require(g.user, "user.create", User)
    if request.method == "GET":
        return _render_new({"role": "rep"}, {})
    form = request.form.to_dict()
    try:
        user = accounts.create_user(
            db(),
            g.user,
            email=form.get("email", ""),
            name=form.get("name", ""),
            role=form.get("role", ""),
            password=form.get("password", ""),
            team_id=_optional_int(form.get("team_id"), "team_id"),
            clock=runtime().clock,
        )
    except accounts.AccountError as exc:
        form.pop("password", None)
        return _render_new(form, _field_errors(exc.errors), 400)
    db().commit()
    flash(_("Account created for %(name)s.", name=user.name), "info")
    return redirect(url_for("auth.user", user_id=user.id))


def _options(spec: Any) -> list[tuple[Any, Any]]:
    """(value, label) pairs of an enum/string_list attribute; options are plain values or {value, label}."""
    pairs = []
    for opt in spec.get("options") or []:
        if isinstance(opt, dict):
            value = opt.get("value", opt.get("key"))
            pairs.append((value, opt.get("label") or value))
        else:
            pairs.append((opt, opt))
    return pairs


def _attribute_rows(person: User, schema: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    values = person.attributes or {}
    for spec in schema.attributes if schema else ():
        seen.add(spec["key"])
        options = _options(spec)
        rows.append(
            {
                "key": spec["key"],
                "label": spec.get("label") or spec["key"],
                "spec": spec,
                "options": options,
                "option_labels": {str(v): text for v, text in options},
                "value": values.get(spec["key"]),
            }
        )
    for key, value in sorted(values.items()):
        if key not in seen:
            rows.append(
                {"key": key, "label": key, "spec": None, "options": [], "option_labels": {}, "value": value}
            )
    return rows


def _render_user(
    person: User, errors: dict[str, str] | None = None, status: int = 200, new_token: str | None = None
) -> Any:
    session = db()
    schema = published_attribute_schema(session)
    actor = g.user
    led = session.scalars(select(Team).where(Team.lead_id == person.id)).first()
    tokens = []
    if actor.id == person.id or actor.role == "admin":
        tokens = session.scalars(
            policy.scope(select(ApiToken).where(ApiToken.user_id == person.id), actor, ApiToken).order_by(
                ApiToken.created_at.desc()
            )
        ).all()
    return render_template(
        "auth/user.html",
        person=person,
        led_team=led,
        attributes=_attribute_rows(person, schema),
        schema=schema,
        errors=errors or {},
        roles=ROLES,
        tokens=tokens,
        teams=session.scalars(select(Team).order_by(Team.key)).all() if actor.role == "admin" else [],
        can_edit=policy.can(actor, "user.edit", person),
        can_edit_attributes=policy.can(actor, "rep_attributes.edit", person),
        can_deactivate=policy.can(actor, "user.deactivate", person) and actor.id != person.id,
        can_set_password=policy.can(actor, "user.set_password", person),
        is_self=actor.id == person.id,
        new_token=new_token,
    ), status


@bp.get("/people/<int:user_id>")
@login_required
def user(user_id: int) -> Any:
    """Show one person: role, team, availability and rep attributes."""
    return _render_user(policy.get_or_404(db(), g.user, User, user_id))


def _post_service(user_id: int, call: Any, done: str) -> Any:
    """Run one service on a visible person, commit, flash and go back to their page (or show errors)."""
    person = policy.get_or_404(db(), g.user, User, user_id)
    try:
        call(person)
    except accounts.AccountError as exc:
        db().rollback()
        person = policy.get_or_404(db(), g.user, User, user_id)
        return _render_user(person, _field_errors(exc.errors), 400)
    db().commit()
    flash(done, "info")
    return redirect(url_for("auth.user", user_id=user_id))


@bp.post("/people/<int:user_id>/deactivate")
@login_required
def deactivate(user_id: int) -> Any:
    """Deactivate an account and end all its sessions and tokens (admin)."""
    rt = runtime()
    return _post_service(
        user_id,
        lambda p: accounts.deactivate_user(db(), g.user, p.id, clock=rt.clock),
        _("Account deactivated."),
    )


@bp.post("/people/<int:user_id>/reactivate")
@login_required
def reactivate(user_id: int) -> Any:
    """Let a deactivated account sign in again (admin)."""
    rt = runtime()
    return _post_service(
        user_id,
        lambda p: accounts.reactivate_user(db(), g.user, p.id, clock=rt.clock),
        _("Account reactivated."),
    )


@bp.post("/people/<int:user_id>/profile")
@login_required
def edit_profile(user_id: int) -> Any:
    """Change name, role and team (admin)."""
    form = request.form
    rt = runtime()

    def call(person: User) -> None:
        accounts.update_user(
            db(),
            g.user,
            person.id,
            clock=rt.clock,
            name=form.get("name", ""),
            role=form.get("role", ""),
            team_id=_optional_int(form.get("team_id"), "team_id"),
        )

    return _post_service(user_id, call, _("Profile saved."))


def _parse_until(raw: str | None) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise accounts.AccountError(
            [accounts.field_error("/unavailable_until", "Enter a date and time.")]
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@bp.post("/people/<int:user_id>/attributes")
@login_required
def edit_attributes(user_id: int) -> Any:
    """Save rep attributes, daily capacity and away-until (ops/admin), checked against the definition."""
    rt = runtime()

    def call(person: User) -> None:
        policy.require(g.user, "rep_attributes.edit", person)
        schema = published_attribute_schema(db())
        if schema is None:
            values: dict[str, Any] = dict(person.attributes or {})
            errors: list[dict[str, str]] = []
        else:
            raw = {spec["key"]: request.form.getlist(f"attr.{spec['key']}") for spec in schema.attributes}
            raw = {k: (v if len(v) != 1 else v[0]) for k, v in raw.items()}
            values, errors = parse_attribute_inputs(schema, raw)
        if errors:
            raise accounts.AccountError(errors)
        accounts.update_user(
            db(),
            g.user,
            person.id,
            clock=rt.clock,
            attributes=values,
            daily_capacity=_optional_int(request.form.get("daily_capacity"), "daily_capacity"),
            unavailable_until=_parse_until(request.form.get("unavailable_until")),
        )

    return _post_service(user_id, call, _("Attributes saved."))


@bp.post("/people/<int:user_id>/password")
@login_required
def set_password(user_id: int) -> Any:
    """Change a password (one's own with the current password, anyone's as admin); ends their sessions."""
    rt = runtime()
    form = request.form
    person = policy.get_or_404(db(), g.user, User, user_id)
    is_self = person.id == g.user.id
    try:
        accounts.change_password(
            db(),
            g.user,
            person.id,
            form.get("new_password", ""),
            clock=rt.clock,
            current_password=form.get("current_password") if is_self else None,
        )
    except accounts.AccountError as exc:
        db().rollback()
        errors = _field_errors(exc.errors)
        if "password" in errors:
            errors["new_password"] = errors.pop("password")
        return _render_user(policy.get_or_404(db(), g.user, User, user_id), errors, 400)
    if is_self:
        login_user(person)  # the change ended every session, this one included: start a fresh one
    db().commit()
    flash(_("Password changed. Other sessions of this account have been signed out."), "info")
    return redirect(url_for("auth.user", user_id=user_id))


@bp.post("/people/<int:user_id>/tokens")
@login_required
def create_token(user_id: int) -> Any:
    """Create an API token for oneself (or, as admin, for anyone); the secret is shown once, here."""
    person = policy.get_or_404(db(), g.user, User, user_id)
    try:
        _token, plaintext = accounts.create_api_token(
            db(), g.user, person.id, label=request.form.get("label", ""), clock=runtime().clock
        )
    except accounts.AccountError as exc:
        db().rollback()
        return _render_user(policy.get_or_404(db(), g.user, User, user_id), _field_errors(exc.errors), 400)
    db().commit()
    # Rendered, not redirected: the secret must never travel in a flash message inside the cookie.
    return _render_user(person, new_token=plaintext)


@bp.post("/people/<int:user_id>/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(user_id: int, token_id: int) -> Any:
    """Revoke one API token (its owner or an admin)."""
    rt = runtime()
    token = policy.get_or_404(db(), g.user, ApiToken, token_id)
    if token.user_id != user_id:
        raise BadRequest()
    return _post_service(
        user_id,
        lambda p: accounts.revoke_api_token(db(), g.user, token.id, clock=rt.clock),
        _("Token revoked."),
    )


@bp.post("/teams")
@login_required
def create_team() -> Any:
    """Create a team, optionally naming its lead (admin)."""
    policy.require(g.user, "team.create", Team)
    form = request.form
    try:
        team = accounts.create_team(
            db(),
            g.user,
            key=form.get("key", ""),
            name={"en": form.get("name_en", ""), "zh": form.get("name_zh", "")},
            lead_id=_optional_int(form.get("lead_id"), "lead_id"),
            clock=runtime().clock,
        )
    except accounts.AccountError as exc:
        db().rollback()
        session = db()
        people = session.scalars(
            policy.scope(select(User), g.user, User).order_by(User.role, User.name).limit(MAX_LISTED)
        ).all()
        page = render_template(
            "auth/users.html",
            people=people,
            teams=_team_rows(session),
            q="",
            team_filter=None,
            can_create=True,
            can_create_team=True,
            roles=ROLES,
            errors=_field_errors(exc.errors),
            form=form.to_dict(),
            limit=MAX_LISTED,
        )
        return page, 400
    db().commit()
    flash(_("Team %(key)s created.", key=team.key), "info")
    return redirect(url_for("auth.users"))
