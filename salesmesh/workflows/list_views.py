"""The generated list pages (`/lists/...`): one table per record type, shaped by published list views.

`GET /lists/<record_type>` shows the record type's default view, `GET /lists/<record_type>/<view_key>` a
named one; filters, `sort`, `q`, `page` and `per_page` come from the query string and anything the view
does not declare answers 400 naming the parameter. `.../export.csv` and `.../export.xlsx` download the
same filtered, policy-scoped list. Saved views: `POST .../saved` stores the current parameters under a
name, `GET /lists/saved/<id>` reopens them, `POST /lists/saved/<id>` renames or (un)shares one, and
`POST /lists/saved/<id>/delete` removes it. The views are thin: parse, one engine/service call, render.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

from salesmesh.metamodel import semantics_views as sv
from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.i18n import N_, label
from salesmesh.platform.web import ApiError, _, current_locale, db, runtime
from salesmesh.workflows import exports, lists, saved_views
from salesmesh.workflows.list_specs import FilterSpec, ListView, load_views, pick_view
from salesmesh.workflows.lists import ListPage, ListParams, ListQueryError, ListRow, display_value
from salesmesh.workflows.record_values import RecordError

bp = Blueprint("lists", __name__, url_prefix="/lists", template_folder="templates")

RECORD_TYPE = "<any(lead, customer, contact, deal, activity, task):record_type>"
TITLES = {
    "lead": N_("Leads"),
    "customer": N_("Customers"),
    "contact": N_("Contacts"),
    "deal": N_("Deals"),
    "activity": N_("Activities"),
    "task": N_("Tasks"),
}


# --- parsing and loading -----------------------------------------------------------------------------


def _open_view(record_type: str, key: str | None) -> tuple[ListView, list[ListView]]:
    """Return the view (default when `key` is None) and all views the user may open, or 404."""
    policy.require(g.user, f"{record_type}.list")
    views = load_views(db(), record_type)
    view = pick_view(views, g.user, key)
    if view is None:
        raise NotFound()
    return view, [v for v in views if v.allows(g.user)]


def _parse(view: ListView, pairs: list[tuple[str, str]]) -> ListParams:
    try:
        return lists.parse_params(view, pairs)
    except ListQueryError as exc:
        message = _(exc.message, **exc.params)
        raise ApiError(400, "invalid_query", message, [{"path": exc.param, "message": message}]) from None


def _url(view: ListView, pairs: Any, **changes: Any) -> str:
    """Return the view's URL with `pairs`, where each change replaces a parameter (None drops it)."""
    kept = [(k, v) for k, v in pairs if k not in changes]
    kept += [(k, str(v)) for k, v in changes.items() if v is not None]
    base = url_for("lists.view", record_type=view.record_type, view_key=view.key)
    return base + ("?" + urlencode(kept) if kept else "")


# --- page model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    label: Any
    sort_url: str | None
    aria_sort: str | None
    kind: str  # CSS class of the column's cells: num, when, choice or text


@dataclass(frozen=True)
class Control:
    """One input of the filter bar; `kind` picks the markup: toggle, select, checks, range or input."""

    spec: FilterSpec
    kind: str
    input_type: str
    options: list[tuple[str, Any]]
    values: list[str]


def _headers(view: ListView, params: ListParams) -> list[Header]:
    current = params.sort[0] if params.sort else None
    out = []
    for column in view.columns:
        sorted_here = current is not None and current[0].name == column.field.name
        aria = ("descending" if current[1] else "ascending") if sorted_here and current else None
        url = None
        if column.sortable:
            ascending_now = sorted_here and current is not None and not current[1]
            url = _url(view, params.pairs, sort=("-" if ascending_now else "") + column.field.name, page=None)
        out.append(Header(column.label, url, aria, _cell_kind(column.field)))
    return out


def _cell_kind(f: Any) -> str:
    if f.type in (sv.NUMBER, sv.MONEY):
        return "num"
    if f.type in (sv.DATE, sv.DATETIME):
        return "when"
    # Statuses, stages, lights and activity types show as badges; form choices as plain text.
    return "choice" if f.type == sv.CHOICE and not f.is_data else "text"


def _code(value: Any) -> str:
    """Return a stored code usable in a CSS class (badge colours), or ""."""
    return value if isinstance(value, str) and value.isascii() and value.replace("_", "").isalnum() else ""


def _input_type(spec: FilterSpec) -> str:
    if spec.operator in sv.COUNT_OPERATORS or spec.field.type in (sv.NUMBER, sv.MONEY):
        return "number"
    if spec.field.type in (sv.DATE, sv.DATETIME):
        return "date"
    return "search" if spec.operator == "contains" else "text"


def _controls(view: ListView, live: dict[str, Any]) -> list[Control]:
    out = []
    for spec in view.filters:
        options: list[tuple[str, Any]] = list(spec.options) or list(live.get(spec.field.name, ()))
        if spec.field.type == sv.BOOLEAN and spec.operator == "eq":
            options = [("true", _("Yes")), ("false", _("No"))]
        if not spec.takes_value:
            kind = "toggle"
        elif spec.operator == "between":
            kind = "range"
        elif spec.operator == "in" and options:
            kind = "checks"
        elif options:
            kind = "select"
        else:
            kind = "input"
        values = [v for p in spec.params for v in request.args.getlist(p)]
        out.append(Control(spec, kind, _input_type(spec), options, values))
    return out


def _pages(page: ListPage) -> list[int | None]:
    """Page numbers to show: first, last and two either side of the current one (None = a gap)."""
    wanted = {1, page.pages, *range(page.page - 2, page.page + 3)}
    shown: list[int | None] = []
    for number in sorted(n for n in wanted if 1 <= n <= page.pages):
        if shown and shown[-1] is not None and number - shown[-1] > 1:  # type: ignore[operator]
            shown.append(None)
        shown.append(number)
    return shown


def row_link(record_type: str, row: ListRow) -> str | None:
    """Return the URL of a row's record page (a contact's customer, a task's subject), if that page exists."""
    if record_type in ("lead", "customer", "deal"):
        subject, ident = record_type, row.id
    elif record_type == "contact":
        subject, ident = "customer", row.link.get("customer_id")
    else:
        subject = row.link.get("subject_type")
        ident = row.link.get(f"{subject}_id") if subject else None
    endpoint = f"records.{subject}"
    if ident is None or endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, **{f"{subject}_id": ident})


# --- pages -------------------------------------------------------------------------------------------


def _render(record_type: str, key: str | None) -> Any:
    view, views = _open_view(record_type, key)
    params = _parse(view, list(request.args.items(multi=True)))
    session = db()
    page = lists.run_list(session, g.user, view, params, now=runtime().clock.now())
    live = lists.live_options(session, g.user, view)
    locale = current_locale()
    # Computed codes (the routing channel) show by the labels only the database knows.
    fields = [
        replace(c.field, options=live[c.field.name])
        if c.field.name in live and not c.field.options and c.field.type != sv.USER
        else c.field
        for c in view.columns
    ]
    rows = [
        {
            "id": row.id,
            "link": row_link(record_type, row),
            "cells": [display_value(f, row.values.get(f.name), locale) for f in fields],
            "codes": [_code(row.values.get(c.field.name)) for c in view.columns],
        }
        for row in page.rows
    ]
    active = sum(1 for spec in view.filters if spec.key in params.filters)
    query = urlencode(params.pairs)
    return render_template(
        "lists/list.html",
        view=view,
        views=views,
        title=TITLES[record_type],
        page=page,
        pages=_pages(page),
        rows=rows,
        headers=_headers(view, params),
        controls=_controls(view, live),
        params=params,
        active_filters=active,
        page_url=lambda n: _url(view, params.pairs, page=n if n > 1 else None),
        clear_url=_url(view, [(k, v) for k, v in params.pairs if k in ("sort", "per_page")]),
        export_url=lambda fmt: (
            url_for("lists.export", record_type=record_type, view_key=view.key, fmt=fmt)
            + ("?" + query if query else "")
        ),
        saved=saved_views.list_saved_views(session, g.user, record_type),
        query=query,
        search_hint=", ".join(label(c.label, locale) for c in view.searchable),
        first=(page.page - 1) * page.per_page + 1,
        last=(page.page - 1) * page.per_page + len(page.rows),
    )


@bp.get(f"/{RECORD_TYPE}")
@login_required
def records(record_type: str) -> Any:
    """Show the default list view of a record type."""
    return _render(record_type, None)


@bp.get(f"/{RECORD_TYPE}/<view_key>")
@login_required
def view(record_type: str, view_key: str) -> Any:
    """Show one list view of a record type."""
    return _render(record_type, view_key)


@bp.get(f"/{RECORD_TYPE}/<view_key>/export.<any(csv, xlsx):fmt>")
@login_required
def export(record_type: str, view_key: str, fmt: str) -> Any:
    """Download the filtered list as CSV or XLSX (same scope and filters as the page; bounded)."""
    list_view, _views = _open_view(record_type, view_key)
    params = _parse(list_view, list(request.args.items(multi=True)))
    rt = runtime()
    try:
        made = exports.export_list(
            db(), g.user, list_view, params, fmt=fmt, locale=current_locale(), clock=rt.clock
        )
    except exports.ExportTooLarge as exc:
        message = _(exports.TOO_LARGE, total=exc.total, limit=exc.limit)
        raise ApiError(422, "too_many_rows", message, [{"path": "", "message": message}]) from None
    # The page request reads only; the audit event is its own short write transaction.
    with rt.db.session_scope(immediate=True) as audit_session:
        actor = audit_session.get(type(g.user), g.user.id)
        exports.record_export(audit_session, actor, list_view, params, made, clock=rt.clock)
    response = Response(made.body, mimetype=made.mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{made.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- saved views -------------------------------------------------------------------------------------


def _flash_errors(exc: RecordError) -> None:
    for item in exc.errors:
        flash(item["message_zh"] if current_locale() == "zh" else item["message"], "error")


@bp.post(f"/{RECORD_TYPE}/<view_key>/saved")
@login_required
def save(record_type: str, view_key: str) -> Any:
    """Save the list's current parameters (the form's `query`) under a name."""
    list_view, _views = _open_view(record_type, view_key)
    pairs = parse_qsl(request.form.get("query", ""), keep_blank_values=False)
    params = _parse(list_view, pairs)
    session = db()
    try:
        saved_views.save_view(
            session,
            g.user,
            list_view,
            params,
            name=request.form.get("name"),
            shared_with_team=request.form.get("shared") == "1",
            clock=runtime().clock,
        )
    except RecordError as exc:
        _flash_errors(exc)
        return redirect(_url(list_view, params.pairs))
    session.commit()
    flash(_("View saved."), "success")
    return redirect(_url(list_view, params.pairs))


@bp.get("/saved/<int:saved_id>")
@login_required
def open_saved(saved_id: int) -> Any:
    """Open a saved view: its list view with the stored parameters."""
    session = db()
    saved = saved_views.get_saved_view(session, g.user, saved_id)
    if pick_view(load_views(session, saved.record_type), g.user, saved.view_key) is None:
        flash(_("The list this view was saved on is no longer available."), "error")
        return redirect(url_for("lists.records", record_type=saved.record_type))
    base = url_for("lists.view", record_type=saved.record_type, view_key=saved.view_key)
    pairs = saved_views.query_pairs(saved)
    return redirect(base + ("?" + urlencode(pairs) if pairs else ""))


@bp.post("/saved/<int:saved_id>")
@login_required
def update_saved(saved_id: int) -> Any:
    """Rename a saved view (`name`) or share/unshare it (`shared` = 1/0)."""
    session = db()
    changes: dict[str, Any] = {}
    if "name" in request.form:
        changes["name"] = request.form["name"]
    if "shared" in request.form:
        changes["shared_with_team"] = request.form["shared"] == "1"
    try:
        saved = saved_views.update_saved_view(session, g.user, saved_id, clock=runtime().clock, **changes)
    except RecordError as exc:
        _flash_errors(exc)
        saved = saved_views.get_saved_view(session, g.user, saved_id)
        return redirect(url_for("lists.open_saved", saved_id=saved.id))
    session.commit()
    flash(_("Saved view updated."), "success")
    return redirect(url_for("lists.open_saved", saved_id=saved.id))


@bp.post("/saved/<int:saved_id>/delete")
@login_required
def delete_saved(saved_id: int) -> Any:
    """Delete one of your saved views and go back to its list."""
    session = db()
    saved = saved_views.get_saved_view(session, g.user, saved_id)
    target = url_for("lists.view", record_type=saved.record_type, view_key=saved.view_key)
    saved_views.delete_saved_view(session, g.user, saved_id, clock=runtime().clock)
    session.commit()
    flash(_("Saved view deleted."), "success")
    return redirect(target)
