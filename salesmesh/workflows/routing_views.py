"""Routing screens: the what-if simulator, the distribution report, and a lead's routing history as JSON.

- `GET /routing/simulator` (ops, admin): pick a routing version (draft or published) and the last N leads
  (`?version=&last=`) and see, side by side with the published version, the distribution per rep and per
  channel (counts and inline SVG bars), the Gini coefficient, cap hits and the unroutable leads.
  `POST /routing/simulator` does the same over an uploaded CSV file of leads. Nothing is written: the
  simulation runs only SELECT statements, and on SQLite the POST lets go of the write lock its request
  took before simulating (`simulation_runs` owns the running).
- `GET /routing/distribution` (ops, admin, team leads for their team): per rep and channel the count, the
  median lead age at assignment and the share of high-grade leads over a date range (`?since=&until=`,
  days in the work time zone, `until` included) and optionally one routing (`?routing=`);
  `/routing/distribution.csv` downloads the same rows (`distribution.distribution_report`).
- `GET /api/v1/leads/<id>/routing`: the lead's latest decision and its history, explained
  (`routing_history.lead_routing`); a lead the caller may not see is a 404.

Bad parameters answer 400 naming the parameter; reps get 403 on the ops pages.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template, request
from werkzeug.exceptions import Forbidden

from salesmesh.platform import policy
from salesmesh.platform.auth import login_required, roles_required
from salesmesh.platform.i18n import N_, label
from salesmesh.platform.rep_attributes import field_error
from salesmesh.platform.web import ApiError, _, current_locale, db, runtime
from salesmesh.workflows.distribution import distribution_report
from salesmesh.workflows.lists import routing_channel_labels
from salesmesh.workflows.models import Lead
from salesmesh.workflows.record_ui import Times, error_text, work_timezone
from salesmesh.workflows.record_values import RecordError
from salesmesh.workflows.routing_decide import REASON_NAMES
from salesmesh.workflows.routing_history import lead_routing
from salesmesh.workflows.simulate import recent_leads
from salesmesh.workflows.simulation_runs import (
    MAX_LAST,
    leads_from_csv,
    routing_versions,
    run_simulation,
)

bp = Blueprint("routing_ui", __name__, template_folder="templates")

DEFAULT_LAST = 200
DEFAULT_DAYS = 30
MAX_RANGE_DAYS = 3660
REPORT_ROLES = ("admin", "ops", "lead")
STATUS_NAMES = {"draft": N_("Draft"), "published": N_("Published")}


def _bad(param: str, message: str, /, **params: Any) -> ApiError:
    text = _(message, **params)
    return ApiError(400, "invalid_query", text, [{"path": param, "message": text}])


def _int(param: str, raw: str | None, default: int | None, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad(
            param,
            N_("%(param)s must be a whole number from %(low)s to %(high)s."),
            param=param,
            low=low,
            high=high,
        )
    return int(raw)


def _times() -> Times:
    return Times(work_timezone(db()), runtime().clock.now(), current_locale())


# --- the lead's routing, as JSON ----------------------------------------------------------------------


@bp.get("/api/v1/leads/<int:lead_id>/routing")
@login_required
def lead_routing_api(lead_id: int) -> Any:
    """Return the lead's latest routing decision and its history, explained (404 outside the scope)."""
    session = db()
    lead = policy.get_or_404(session, g.user, Lead, lead_id)
    return jsonify(lead_routing(session, lead).to_dict())


# --- the what-if simulator ----------------------------------------------------------------------------


def _require_simulator() -> None:
    if not policy.can(g.user, "definition.view"):
        raise Forbidden()


def _bars(counts: list[int]) -> int:
    return max([1, *counts])


def _simulator_page(status: int = 200, **extra: Any) -> Any:
    session = extra.pop("session", None) or db()
    versions = routing_versions(session)
    run = extra.get("run")
    labels = dict(routing_channel_labels(session))
    if run is not None and run.channel_labels:
        labels.update(run.channel_labels)
    peak = 1
    if run is not None:
        peak = _bars([r["count"] for _v, result in run.results for r in result.per_rep.values()])
    return render_template(
        "routing/simulator.html",
        versions=versions,
        status_names=STATUS_NAMES,
        reason_names=REASON_NAMES,
        channel_label=lambda key: label(labels.get(key), current_locale()) or key,
        peak=peak,
        max_last=MAX_LAST,
        chosen=extra.pop("chosen", None),
        last=extra.pop("last", DEFAULT_LAST),
        errors=extra.pop("errors", []),
        err=lambda item: error_text(item, current_locale()),
        **extra,
    ), status


@bp.get("/routing/simulator")
@login_required
def simulator() -> Any:
    """Show the simulator; with `version`, run it over the last `last` leads."""
    _require_simulator()
    version = _int("version", request.args.get("version"), None, 1, policy.MAX_ID)
    last = _int("last", request.args.get("last"), DEFAULT_LAST, 1, MAX_LAST)
    if version is None:
        return _simulator_page(last=last)
    session = db()
    try:
        run = run_simulation(session, version, recent_leads(session, last=last or DEFAULT_LAST))
    except RecordError as exc:
        return _simulator_page(422, chosen=version, last=last, errors=exc.errors)
    return _simulator_page(chosen=version, last=last, run=run, source="last")


@bp.post("/routing/simulator")
@login_required
def simulator_csv() -> Any:
    """Run the simulator over an uploaded CSV file of leads (writes nothing)."""
    _require_simulator()
    rt = runtime()
    # A POST's request session holds SQLite's write lock from its first statement (the sign-in check):
    # end that transaction and simulate in a read session, so intake keeps writing meanwhile.
    db().commit()
    version = _int("version", request.form.get("version"), None, 1, policy.MAX_ID)
    upload = request.files.get("file")
    with rt.db.session_scope() as read:
        if version is None:
            errors = [field_error("/version", N_("Choose a routing version from the list."))]
            return _simulator_page(422, session=read, errors=errors)
        if upload is None or not upload.filename:
            errors = [field_error("/file", N_("Choose a CSV file of leads."))]
            return _simulator_page(422, session=read, chosen=version, errors=errors)
        try:
            leads = leads_from_csv(read, version, upload.read(), clock=rt.clock)
            run = run_simulation(read, version, leads)
        except RecordError as exc:
            return _simulator_page(422, session=read, chosen=version, errors=exc.errors)
        return _simulator_page(session=read, chosen=version, run=run, source="csv", filename=upload.filename)


# --- the distribution report --------------------------------------------------------------------------


def _day(param: str, raw: str | None, default: date) -> date:
    if not raw:
        return default
    try:
        if len(raw) != 10 or not raw.isascii():
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(param, N_("%(param)s must be a date written as YYYY-MM-DD."), param=param) from None


def _report_args(times: Times) -> tuple[date, date, str | None]:
    until_day = _day("until", request.args.get("until"), times.today)
    since_day = _day("since", request.args.get("since"), until_day - timedelta(days=DEFAULT_DAYS - 1))
    if since_day > until_day:
        raise _bad("since", N_("The start date must not be after the end date."))
    if (until_day - since_day).days > MAX_RANGE_DAYS:
        raise _bad("since", N_("Choose at most %(n)s days."), n=MAX_RANGE_DAYS)
    routing = request.args.get("routing") or None
    if routing is not None and routing not in _routing_keys():
        raise _bad("routing", N_("Unknown routing %(key)s."), key=routing)
    return since_day, until_day, routing


def _routing_keys() -> list[str]:
    """Return the keys of the routings with a draft or published version, sorted."""
    return sorted({v.key for v in routing_versions(db())})


def _report(times: Times) -> tuple[Any, date, date, str | None]:
    since_day, until_day, routing = _report_args(times)
    start = datetime.combine(since_day, time(), tzinfo=times.tz)
    end = datetime.combine(until_day + timedelta(days=1), time(), tzinfo=times.tz)
    report = distribution_report(db(), g.user, since=start, until=end, routing_key=routing)
    return report, since_day, until_day, routing


@bp.get("/routing/distribution")
@roles_required(*REPORT_ROLES)
def distribution() -> Any:
    """Show the lead distribution per rep and channel over a date range."""
    times = _times()
    report, since_day, until_day, routing = _report(times)
    labels = routing_channel_labels(db())
    counts = [r["count"] for r in report.reps]
    query = request.query_string.decode("ascii", "replace")
    return render_template(
        "routing/distribution.html",
        report=report,
        since=since_day,
        until=until_day,
        routing=routing,
        routings=_routing_keys(),
        channel_label=lambda key: label(labels.get(key), current_locale()) or key,
        peak=_bars(counts),
        csv_query=query,
        can_simulate=policy.can(g.user, "definition.view"),
    )


@bp.get("/routing/distribution.csv")
@roles_required(*REPORT_ROLES)
def distribution_csv() -> Any:
    """Download the report's rep × channel rows as CSV (same range and scope as the page)."""
    times = _times()
    report, since_day, until_day, _routing = _report(times)
    labels = routing_channel_labels(db())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            _("Rep"),
            _("Routing channel"),
            _("Leads"),
            _("Median age at assignment (min)"),
            _("High-grade share"),
        ]
    )
    for row in report.rows:
        name = row["name"]
        # A name starting like a formula must stay text in a spreadsheet.
        safe = "'" + name if name[:1] in ("=", "+", "-", "@") else name
        writer.writerow(
            [
                safe,
                label(labels.get(row["channel"]), current_locale()) or row["channel"],
                row["count"],
                row["median_age_minutes"],
                row["high_grade_share"],
            ]
        )
    response = Response("\ufeff" + out.getvalue(), mimetype="text/csv")
    filename = f"distribution-{since_day.isoformat()}-{until_day.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
