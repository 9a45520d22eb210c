"""`salesmesh leads import FILE`: import leads from a CSV or XLSX file from the command line.

The file is read and checked, columns are matched to the lead form's fields by header (English or
Chinese label, or key; `--map COLUMN=FIELD` overrides, `--map COLUMN=` drops a column; COLUMN is a
header or a column letter), and the run goes through the same steps as a web import, inline: progress
goes to stderr after every chunk, the report to stdout — one line per row that has errors (row as the
spreadsheet numbers it, column header and letter, reason in English and Chinese) and per duplicate (the
lead it was linked to); a dry run also prints what each new row would do. The exit status is 1 when any
row has an error or the run was rejected or failed. Runs as the system (audited as such).
`salesmesh leads resume-import RUN_ID` finishes a run whose process died; it continues from the last
committed chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from salesmesh.forms.files import FileStore
from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.notifications import kick_delivery
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ACTIVE_STATUSES, ImportRow, ImportRun
from salesmesh.workflows.import_reading import ImportFileError, column_letter, column_name, find_column
from salesmesh.workflows.import_steps import CHUNK_SIZE, advance_import, wrote_leads
from salesmesh.workflows.imports import (
    IMPORT_CHANNEL,
    ImportSetupInvalid,
    channel_for,
    form_of,
    progress,
    report_rows,
    start_import,
    unmapped_required,
    upload_import,
)
from salesmesh.workflows.intake_models import IntakeChannel

MODES = {"all-or-nothing": "all_or_nothing", "row-by-row": "row_by_row"}


@click.group("leads")
def leads_group() -> None:
    """Leads: import them from CSV or XLSX files."""


def _overrides(headers: list[str], pairs: tuple[str, ...]) -> dict[str, str]:
    """Parse --map COLUMN=FIELD options into {column index: field key or ''}."""
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, key = pair.partition("=")
        if not sep or not column.strip():
            raise CliError(f"--map {pair!r}: write COLUMN=FIELD (COLUMN is a header or a letter such as B)")
        index = find_column(headers, column)
        if index is None:
            shown = ", ".join(f"{column_letter(i)}={h!r}" for i, h in enumerate(headers))
            raise CliError(f"--map {pair!r}: the file has no column {column.strip()!r} (columns: {shown})")
        out[str(index)] = key.strip()
    return out


def _setup_failed(exc: ImportSetupInvalid) -> CliError:
    return CliError("; ".join(f"{e['message']} ({e['message_zh']})" for e in exc.errors))


def _describe_mapping(run: ImportRun) -> list[str]:
    lines = []
    for column, key in sorted(run.mapping.items(), key=lambda item: int(item[0])):
        index = int(column)
        lines.append(f"  column {column_letter(index)} {column_name(run.headers, index)!r} -> {key}")
    unused = [i for i in range(len(run.headers)) if str(i) not in run.mapping]
    if unused:
        names = ", ".join(f"{column_letter(i)} {column_name(run.headers, i)!r}" for i in unused)
        lines.append(f"  not imported: {names}")
    return lines


def _prepare(rt: Runtime, path: Path, options: dict[str, Any]) -> int:
    """Upload, map and start the run in one transaction; return its id."""
    store = FileStore.for_settings(rt.settings)
    try:
        with rt.db.session_scope(immediate=True) as session, path.open("rb") as stream:
            run = upload_import(
                session,
                None,
                filename=path.name,
                stream=stream,
                store=store,
                clock=rt.clock,
                channel=options["channel"],
                sheet=options["sheet"],
            )
            overrides = _overrides(run.headers, options["pairs"])
            chosen = set(overrides.values())
            # A field named by --map leaves the column it was matched to by header.
            mapping = {c: k for c, k in run.mapping.items() if k not in chosen}
            mapping.update(overrides)
            run.mapping = {c: k for c, k in mapping.items() if k and k != "-"}
            click.echo(f"{run.file_name}: {run.total_rows} data rows; columns:", err=True)
            for line in _describe_mapping(run):
                click.echo(line, err=True)
            channel = channel_for(session, run.channel)
            defaults = channel.defaults if isinstance(channel, IntakeChannel) else {}
            missing = unmapped_required(form_of(session, run), run.mapping, defaults or {})
            if missing:
                keys = ", ".join(f.key for f in missing)
                click.echo(f"warning: no column fills the required field(s) {keys}", err=True)
            start_import(
                session,
                None,
                run,
                mapping=run.mapping,
                mode=MODES[options["mode"]],
                dry_run=options["dry_run"],
                clock=rt.clock,
                campaign=options["campaign"],
                again=options["again"],
            )
            return run.id
    except ImportFileError as exc:
        raise CliError(f"{path.name}: {exc.message} ({exc.message_zh})") from None
    except ImportSetupInvalid as exc:
        raise _setup_failed(exc) from None


def _drive(rt: Runtime, run_id: int, chunk_size: int) -> dict[str, Any]:
    """Run the steps inline, one transaction each, printing progress; return the final progress."""
    store = FileStore.for_settings(rt.settings)
    phase = None
    while True:
        with rt.db.session_scope(immediate=True) as session:
            run = advance_import(session, run_id, store=store, clock=rt.clock, chunk_size=chunk_size)
            if run is None:
                raise CliError(f"no import run #{run_id}")
            if wrote_leads(run):
                kick_delivery(session, rt.jobs)  # new owners' e-mails/webhooks (embedded: run at exit)
            state = progress(run, rt.clock.now())
        if state["status"] == "draft":
            raise CliError(f"import #{run_id} was never started (it is a draft from the web page)")
        if phase is None and state["processed"] == 0:
            click.echo(f"read {state['total']} rows", err=True)
        elif phase is not None:
            verb = "checked" if phase == "checking" else "imported"
            done = state["processed"] if state["phase"] == phase else state["total"]  # else: phase over
            click.echo(f"{verb} {done}/{state['total']} rows", err=True)
        phase = state["phase"]
        if state["status"] not in ACTIVE_STATUSES:
            return state


def _row_lines(row: ImportRow, dry_run: bool) -> list[str]:
    where = f"row {row.row_number}"
    if row.outcome == "error":
        lines = []
        for e in row.errors or ():
            column = f"column {e['letter']} {e['column']!r}" if e.get("letter") else "not in the file"
            field = f" ({e['field']})" if e.get("field") else ""
            lines.append(f"{where}, {column}{field}: {e['message']} | {e['message_zh']}")
        return lines
    if row.outcome == "duplicate":
        target = (
            f"lead #{row.duplicate_of_id}"
            if row.duplicate_of_id
            else f"the lead of row {row.duplicate_of_row}"
        )
        if row.duplicate_of_id and row.duplicate_of_row:
            target += f" (row {row.duplicate_of_row})"
        verb = "would be linked" if dry_run else "linked"
        return [f"{where}: duplicate, {verb} to {target} (same {row.matched_on})"]
    if row.outcome == "created" and dry_run:
        summary = ((row.routing or {}).get("summary") or {}).get("en", "")
        return [f"{where}: would create a lead; {summary}".rstrip("; ")]
    return []


def _report(rt: Runtime, run_id: int, state: dict[str, Any]) -> None:
    with rt.db.session_scope() as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        for row in report_rows(session, run, outcomes=None if run.dry_run else ("error", "duplicate")):
            for line in _row_lines(row, run.dry_run):
                click.echo(line)
    label = "dry run" if state["dry_run"] else "import"
    created = "would create" if state["dry_run"] else "created"
    click.echo(
        f"{label} #{run_id} {state['status']}: {state['total']} rows, {created} {state['created']}, "
        f"duplicates {state['duplicates']} (linked, not errors), errors {state['errors']}"
    )
    if state["message"]:
        click.echo(f"{state['message']['en']} | {state['message']['zh']}")
    if state["errors"] or state["status"] in ("rejected", "failed"):
        click.get_current_context().exit(1)


@leads_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(sorted(MODES)),
    default="all-or-nothing",
    show_default=True,
    help="all-or-nothing: any bad row and nothing is imported; row-by-row: good rows are kept.",
)
@click.option("--dry-run", is_flag=True, help="Check and preview every row; write nothing.")
@click.option("--channel", default=IMPORT_CHANNEL, show_default=True, help="Intake channel key.")
@click.option("--map", "pairs", multiple=True, metavar="COLUMN=FIELD", help="Fill FIELD from COLUMN.")
@click.option("--sheet", default=None, help="XLSX: the sheet to read (default: the first).")
@click.option("--campaign", default=None, help="Campaign recorded on every lead.")
@click.option("--again", is_flag=True, help="Import a file that was already imported.")
@click.option("--chunk-size", type=click.IntRange(1, 5000), default=CHUNK_SIZE, show_default=True)
@pass_runtime
def import_command(rt: Runtime, path: Path, chunk_size: int, **options: Any) -> None:
    """Import leads from a CSV or XLSX file (header in row 1)."""
    run_id = _prepare(rt, path, options)
    state = _drive(rt, run_id, chunk_size)
    _report(rt, run_id, state)


@leads_group.command("resume-import")
@click.argument("run_id", type=int)
@click.option("--chunk-size", type=click.IntRange(1, 5000), default=CHUNK_SIZE, show_default=True)
@pass_runtime
def resume_command(rt: Runtime, run_id: int, chunk_size: int) -> None:
    """Finish an import whose process died (from its last committed chunk)."""
    with rt.db.session_scope() as session:
        run = session.get(ImportRun, run_id)
        if run is None:
            raise CliError(f"no import run #{run_id}")
        if run.status not in ACTIVE_STATUSES:
            raise CliError(f"import #{run_id} is not running (status: {run.status})")
    state = _drive(rt, run_id, chunk_size)
    _report(rt, run_id, state)
