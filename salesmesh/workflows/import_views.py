"""The lead import pages: upload → column mapping preview → dry-run report → import, with a progress page.

`GET /leads/import` shows the upload form and the latest runs; `POST` stores and reads the file
(`imports.upload_import`) and redirects to the run's page, `/leads/imports/<id>`, which shows what the run
needs next: a draft gets the mapping form (every column with a field chooser preset from its header,
the first rows, the mode, campaign and "dry run" or "import" buttons; a file imported before needs
"import it again" ticked); a queued or running run gets the progress page, which polls
`/leads/imports/<id>/progress` (JSON) and reloads when the run is done (without JavaScript it refreshes
itself); a finished run gets its report — totals, every row with an error (row, column, reason),
duplicates with the lead they were linked to, and for a dry run what each row would do — plus the
error report as CSV and, after a dry run, a button importing the same file for real. The run itself
happens in the `imports.advance` job, enqueued after commit. Ops and admins only: others get 403 on the
upload page and 404 on a run (the policy scopes `import_runs`). The upload may be larger than the app's
request limit (`IMPORT_MAX_BYTES`), so that view raises the limit for itself and checks the CSRF token
after doing so (it is exempt from the app-wide check, which would read the body first).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import Forbidden

from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.web import current_locale, db, runtime
from salesmesh.workflows.exports import safe_text, to_csv
from salesmesh.workflows.import_models import ACTIVE_STATUSES, ImportRun
from salesmesh.workflows.import_reading import (
    DEFAULT_LIMITS,
    ImportFileError,
    column_letter,
    importable_fields,
)
from salesmesh.workflows.imports import (
    IMPORT_CHANNEL,
    MODE_NAMES,
    PHASE_NAMES,
    STATUS_NAMES,
    ImportSetupInvalid,
    channel_for,
    copy_for_import,
    earlier_imports,
    error_lines,
    form_of,
    progress,
    report_rows,
    resume_import,
    schedule_import,
    start_import,
    unmapped_required,
    upload_import,
)
from salesmesh.workflows.intake_models import IntakeChannel

bp = Blueprint("imports", __name__, template_folder="templates")
IMPORT_MAX_BYTES = DEFAULT_LIMITS.max_bytes + 64 * 1024  # the file plus the form around it
REPORT_ROWS = 500
PREVIEW_ROWS = 200  # a dry run's new rows shown with their routing preview
RECENT_RUNS = 20


def _allowed() -> None:
    if not policy.can(g.user, "lead.import"):
        raise Forbidden()


def _store() -> Any:
    from salesmesh.forms.files import FileStore

    return FileStore.for_settings(runtime().settings)


def _message(item: dict[str, Any]) -> str:
    if current_locale() == "zh":
        return item.get("message_zh") or item["message"]
    return item["message"]


def _names() -> dict[str, Any]:
    return {
        "status_names": STATUS_NAMES,
        "mode_names": MODE_NAMES,
        "phase_names": PHASE_NAMES,
        "msg": _message,
    }


def _index(errors: list[dict[str, Any]] | None = None, status: int = 200, **form: Any) -> Any:
    session = db()
    runs = session.scalars(
        policy.scope(select(ImportRun), g.user, ImportRun)
        .options(selectinload(ImportRun.created_by))
        .order_by(ImportRun.created_at.desc(), ImportRun.id.desc())
        .limit(RECENT_RUNS)
    ).all()
    channels = session.scalars(
        select(IntakeChannel).where(IntakeChannel.active.is_(True)).order_by(IntakeChannel.key)
    ).all()
    return render_template(
        "imports/index.html",
        runs=runs,
        channels=channels,
        errors=errors or [],
        form=form,
        limits=DEFAULT_LIMITS,
        default_channel=IMPORT_CHANNEL,
        **_names(),
    ), status


@bp.get("/leads/import")
@login_required
def index() -> Any:
    """Show the upload form and the latest import runs."""
    _allowed()
    return _index()


@bp.post("/leads/import")
@login_required
def upload() -> Any:
    """Store and read an uploaded file; continue on its mapping page."""
    _allowed()
    request.max_content_length = IMPORT_MAX_BYTES
    if current_app.config.get("WTF_CSRF_ENABLED", True):
        current_app.extensions["csrf"].protect()
    session = db()
    channel = request.form.get("channel", IMPORT_CHANNEL)
    sheet = request.form.get("sheet", "").strip() or None
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        error = {"field": "file", "message": "Choose a file to upload", "message_zh": "请选择要上传的文件"}
        return _index([error], 422, channel=channel, sheet=sheet)
    try:
        run = upload_import(
            session,
            g.user,
            filename=upload_file.filename,
            stream=upload_file.stream,
            store=_store(),
            clock=runtime().clock,
            channel=channel,
            sheet=sheet,
        )
    except ImportFileError as exc:
        error = {"field": "file", "message": exc.message, "message_zh": exc.message_zh}
        return _index([error], 422, channel=channel, sheet=sheet)
    except ImportSetupInvalid as exc:
        return _index(exc.errors, 422, channel=channel, sheet=sheet)
    session.commit()
    return redirect(url_for("imports.show", run_id=run.id), 303)


def _run(run_id: int) -> ImportRun:
    return policy.get_or_404(db(), g.user, ImportRun, run_id)


def _mapping_page(
    run: ImportRun, errors: list[dict[str, Any]] | None = None, status: int = 200, **form: Any
) -> Any:
    session = db()
    setup_errors = list(errors or [])
    try:
        spec = form_of(session, run)
        channel = channel_for(session, run.channel)
    except ImportSetupInvalid as exc:
        spec, channel = None, None
        setup_errors.extend(exc.errors)
    defaults = channel.defaults if isinstance(channel, IntakeChannel) else {}
    mapping = form.get("mapping", run.mapping)
    width = max([len(run.headers)] + [len(r["cells"]) for r in run.file_info.get("sample", [])])
    return render_template(
        "imports/mapping.html",
        run=run,
        fields=importable_fields(spec) if spec is not None else [],
        mapping=mapping,
        columns=[(i, run.headers[i] if i < len(run.headers) else "", column_letter(i)) for i in range(width)],
        sample=run.file_info.get("sample", []),
        missing=unmapped_required(spec, mapping, defaults or {}) if spec is not None else [],
        earlier=earlier_imports(session, run),
        errors=setup_errors,
        error_fields={e["field"] for e in setup_errors},
        form=form,
        **_names(),
    ), status


def _report_page(run: ImportRun, errors: list[dict[str, Any]] | None = None, status: int = 200) -> Any:
    session = db()
    problems = report_rows(session, run, outcomes=("error", "duplicate"), limit=REPORT_ROWS)
    created = report_rows(session, run, outcomes=("created",), limit=PREVIEW_ROWS) if run.dry_run else []
    return render_template(
        "imports/report.html",
        run=run,
        problems=problems,
        created=created,
        limit=REPORT_ROWS,
        created_limit=PREVIEW_ROWS,
        state=progress(run, runtime().clock.now()),
        earlier=earlier_imports(session, run) if run.dry_run else [],
        errors=errors or [],
        **_names(),
    ), status


@bp.get("/leads/imports/<int:run_id>")
@login_required
def show(run_id: int) -> Any:
    """Show what a run needs next: its mapping, its progress or its report."""
    run = _run(run_id)
    if run.status == "draft":
        return _mapping_page(run)
    if run.status in ACTIVE_STATUSES:
        return render_template(
            "imports/progress.html", run=run, state=progress(run, runtime().clock.now()), **_names()
        )
    return _report_page(run)


def _posted_mapping(run: ImportRun) -> dict[str, str]:
    mapping = {}
    for name, value in request.form.items():
        if name.startswith("map_") and name[4:].isdigit() and value:
            mapping[str(int(name[4:]))] = value
    return mapping


@bp.post("/leads/imports/<int:run_id>/start")
@login_required
def start(run_id: int) -> Any:
    """Start a draft run as a dry run or a real import, with the posted mapping."""
    run = _run(run_id)
    _allowed()
    session = db()
    mapping = _posted_mapping(run)
    form = {
        "mapping": mapping,
        "mode": request.form.get("mode", ""),
        "campaign": request.form.get("campaign", ""),
        "again": request.form.get("again") == "1",
    }
    try:
        start_import(
            session,
            g.user,
            run,
            mapping=mapping,
            mode=form["mode"],
            dry_run=request.form.get("action") != "import",
            clock=runtime().clock,
            campaign=form["campaign"],
            again=form["again"],
        )
    except ImportSetupInvalid as exc:
        session.rollback()
        return _mapping_page(_run(run_id), exc.errors, 422, **form)
    schedule_import(runtime().jobs, session, run)
    session.commit()
    return redirect(url_for("imports.show", run_id=run.id), 303)


@bp.post("/leads/imports/<int:run_id>/import")
@login_required
def import_for_real(run_id: int) -> Any:
    """Import the file of a finished dry run, with the same mapping and mode."""
    dry = _run(run_id)
    _allowed()
    session = db()
    if not dry.dry_run or dry.status != "done":
        return redirect(url_for("imports.show", run_id=dry.id), 303)
    run = copy_for_import(session, g.user, dry, clock=runtime().clock)
    try:
        start_import(
            session,
            g.user,
            run,
            mapping=dry.mapping,
            mode=dry.mode,
            dry_run=False,
            clock=runtime().clock,
            campaign=dry.campaign,
            again=request.form.get("again") == "1",
        )
    except ImportSetupInvalid as exc:
        session.rollback()
        return _report_page(_run(run_id), exc.errors, 422)
    schedule_import(runtime().jobs, session, run)
    session.commit()
    return redirect(url_for("imports.show", run_id=run.id), 303)


@bp.post("/leads/imports/<int:run_id>/resume")
@login_required
def resume(run_id: int) -> Any:
    """Enqueue a stalled run again; it continues from its last committed chunk."""
    run = _run(run_id)
    _allowed()
    if run.status in ACTIVE_STATUSES:
        session = db()
        resume_import(session, g.user, run, runtime().jobs, clock=runtime().clock)
        session.commit()
    return redirect(url_for("imports.show", run_id=run.id), 303)


@bp.get("/leads/imports/<int:run_id>/progress")
@login_required
def progress_json(run_id: int) -> Any:
    """Return the run's progress counters (polled by the progress page)."""
    run = _run(run_id)
    return progress(run, runtime().clock.now())


@bp.get("/leads/imports/<int:run_id>/errors.csv")
@login_required
def errors_csv(run_id: int) -> Response:
    """Download every error of a run: row, column, field and the reason in English and Chinese."""
    run = _run(run_id)
    zh = current_locale() == "zh"
    headers = (
        ["行", "列", "列标题", "字段", "原因", "Reason"]
        if zh
        else ["Row", "Column", "Header", "Field", "Reason", "原因"]
    )
    body = []
    for line in error_lines(db(), run):
        first, second = (line["message_zh"], line["message"]) if zh else (line["message"], line["message_zh"])
        body.append(
            [
                line["row"],
                line["letter"] or "",
                safe_text(line["column"] or ""),
                line["field"] or "",
                safe_text(first),
                safe_text(second),
            ]
        )
    name = f"import-{run.id}-errors.csv"
    return Response(
        to_csv(headers, body),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
