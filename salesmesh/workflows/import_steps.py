"""Running an import: staging its rows, then checking or writing them chunk by chunk through intake.

`advance_import(session, run_id, ...)` does one step of a queued or running `ImportRun`, in the caller's
transaction (flush, no commit); the `imports.advance` job calls it and enqueues itself again while the
run is active, and the CLI calls it in a loop. The run row is read `FOR UPDATE`, so two workers never
process the same chunk. The first step re-reads the stored file and stages every data row into
`import_rows` (one multi-row insert). Each later step takes the next `CHUNK_SIZE` rows: a row's cells are
converted per field type (`import_reading.cell_value`) and given to `intake_lead` inside a SAVEPOINT, so
a row that fails validation rolls back alone; its errors name the row as the spreadsheet numbers it, the
column (header and letter) and the reason in English and Chinese. Duplicates — of an existing open lead
or of an earlier row — are linked by intake and reported with the lead (and row) they were linked to,
never as errors.

Phases: *checking* runs a chunk inside a savepoint rolled back at the end of the step, so nothing
persists — no lead, decision, timer or audit event, no round-robin turn — and records what would happen;
*writing* imports for real. A dry run only checks. Row by row writes chunk after chunk, each committed
together with the run's `next_row`, so a step that crashes is redone from the last committed chunk and
no row is imported twice. All or nothing checks every row first (the run is rejected, nothing written,
when any row has an error), then writes all rows in one transaction, rolled back whole should a row
fail after all. A finished real run writes one `lead.import` audit event (dry runs change nothing; the
run row records them). Because dry runs check chunk by chunk, their routing preview starts each chunk
from the committed round-robin position, and a row repeating a row of an earlier chunk is found through
the staged contact keys (`phone_key`, `email_key`). A step that wrote leads starts the notifications
delivery job once it commits (`wrote_leads`), so new owners hear by e-mail/webhook at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from salesmesh.forms.compile import FormSpec
from salesmesh.forms.fields import FieldInvalid, FieldSpec
from salesmesh.forms.files import FileStore
from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.jobs import JobContext, job
from salesmesh.platform.notifications import kick_delivery
from salesmesh.workflows.import_models import ACTIVE_STATUSES, ImportRow, ImportRun
from salesmesh.workflows.import_reading import (
    DEFAULT_LIMITS,
    ImportFileError,
    ImportLimits,
    Table,
    cell_value,
    column_letter,
    column_name,
    read_table,
)
from salesmesh.workflows.imports import (
    JOB,
    ImportSetupInvalid,
    channel_for,
    form_for_channel,
    mapping_problems,
    schedule_import,
)
from salesmesh.workflows.intake import IntakeInvalid, intake_lead
from salesmesh.workflows.intake_models import IntakeChannel
from salesmesh.workflows.record_ui import work_timezone
from salesmesh.workflows.routing import explain

CHUNK_SIZE = 500


@dataclass
class _World:
    """What processing a run's rows needs, read once per step."""

    channel: IntakeChannel | str
    spec: FormSpec
    tz: tzinfo
    headers: list[str]
    columns: list[tuple[int, FieldSpec]]
    column_of: dict[str, int] = field(default_factory=dict)

    def error(self, key: str | None, index: int | None, message: str, message_zh: str) -> dict[str, Any]:
        return {
            "column": column_name(self.headers, index) if index is not None else None,
            "letter": column_letter(index) if index is not None else None,
            "field": key,
            "message": message,
            "message_zh": message_zh,
        }

    def payload(self, cells: Sequence[Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Return the row's form values, and the cells that could not be read."""
        values: dict[str, Any] = {}
        errors = []
        for index, spec in self.columns:
            cell = cells[index] if index < len(cells) else None
            try:
                value = cell_value(spec, cell, self.tz)
            except FieldInvalid as exc:
                errors.append(self.error(spec.key, index, exc.message, exc.message_zh))
                continue
            if value is not None:
                values[spec.key] = value
        return values, errors

    def intake_errors(self, errors: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Turn intake's JSON-pointer errors into column errors (a field no column fills has none)."""
        out = []
        for e in errors:
            key = e["path"].split("/")[1] if e["path"].count("/") else None
            out.append(self.error(key, self.column_of.get(key or ""), e["message"], e.get("message_zh", "")))
        return out


def _world(session: Session, run: ImportRun) -> _World:
    channel = channel_for(session, run.channel)
    spec = form_for_channel(session, channel)
    problems = mapping_problems(spec, run.mapping, run.headers)
    if problems:
        raise ImportSetupInvalid(problems)
    columns = sorted((int(c), spec.by_key[k]) for c, k in run.mapping.items())
    return _World(
        channel=channel,
        spec=spec,
        tz=work_timezone(session),
        headers=list(run.headers),
        columns=columns,
        column_of={f.key: index for index, f in columns},
    )


def _fail(session: Session, run: ImportRun, now: datetime, message: str, message_zh: str) -> None:
    _finish(session, run, "failed", now, {"en": message, "zh": message_zh})


def _finish(
    session: Session, run: ImportRun, status: str, now: datetime, message: dict[str, str] | None = None
) -> None:
    run.status = status
    run.phase = None
    run.finished_at = now
    run.updated_at = now
    run.message = message
    if run.dry_run:
        return  # a dry run changed nothing: the run row itself is its record
    record_event(
        session,
        at=now,
        actor_id=run.created_by_id,
        action="lead.import",
        object_type="import_runs",
        object_id=run.id,
        payload={
            "file_name": run.file_name,
            "file_sha256": run.file_sha256,
            "channel": run.channel,
            "campaign": run.campaign,
            "mode": run.mode,
            "status": status,
            "rows": run.total_rows,
            "created": run.created_count,
            "duplicates": run.duplicate_count,
            "errors": run.error_count,
        },
    )


def _stage(session: Session, run: ImportRun, store: FileStore, limits: ImportLimits, now: datetime) -> None:
    """Read the stored file again and stage every data row (one multi-row insert)."""
    try:
        data = Path(store.path(run.file_sha256)).read_bytes()
    except (OSError, ValueError):
        _fail(
            session,
            run,
            now,
            "The uploaded file is no longer stored: upload it again",
            "已上传的文件不存在：请重新上传",
        )
        return
    try:
        table: Table = read_table(data, run.file_name, sheet=run.sheet, limits=limits)
    except ImportFileError as exc:
        _fail(session, run, now, exc.message, exc.message_zh)
        return
    session.execute(
        insert(ImportRow),
        [
            {"run_id": run.id, "position": i, "row_number": number, "cells": cells}
            for i, (number, cells) in enumerate(table.rows)
        ],
    )
    run.total_rows = len(table.rows)
    run.status = "running"
    run.phase = "checking" if run.dry_run or run.mode == "all_or_nothing" else "writing"
    run.next_row = 0


def advance_import(
    session: Session,
    run_id: int,
    *,
    store: FileStore,
    clock: Clock,
    chunk_size: int = CHUNK_SIZE,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportRun | None:
    """Do a run's next step (stage, or check/write the next chunk); return the run. Flushes, no commit."""
    run = session.scalars(select(ImportRun).where(ImportRun.id == run_id).with_for_update()).first()
    if run is None or run.status not in ACTIVE_STATUSES:
        return run
    now = clock.now()
    run.steps += 1
    run.updated_at = now
    if run.status == "queued":
        _stage(session, run, store, limits, now)
        session.flush()
        return run
    try:
        world = _world(session, run)
    except ImportSetupInvalid as exc:
        first = exc.errors[0]
        _fail(session, run, now, first["message"], first["message_zh"])
        session.flush()
        return run
    if run.phase == "checking":
        _check_chunk(session, run, world, clock, chunk_size)
    elif run.mode == "row_by_row":
        _write_chunk(session, run, world, clock, chunk_size)
    else:
        _write_all(session, run, world, clock)
    session.flush()
    return run


def _rows(session: Session, run: ImportRun, limit: int | None) -> list[ImportRow]:
    stmt = (
        select(ImportRow)
        .where(ImportRow.run_id == run.id, ImportRow.position >= run.next_row)
        .order_by(ImportRow.position)
    )
    return list(session.scalars(stmt.limit(limit) if limit is not None else stmt))


@dataclass
class _Outcome:
    row: ImportRow
    outcome: str
    lead_id: int | None = None
    duplicate_of_id: int | None = None
    duplicate_of_row: int | None = None
    matched_on: str | None = None
    routing: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    phone_key: str | None = None
    email_key: str | None = None

    def apply(self) -> None:
        row = self.row
        row.outcome = self.outcome
        row.lead_id = self.lead_id
        row.duplicate_of_id = self.duplicate_of_id
        row.duplicate_of_row = self.duplicate_of_row
        row.matched_on = self.matched_on
        row.routing = self.routing
        row.errors = self.errors
        row.phone_key = self.phone_key
        row.email_key = self.email_key


def _routing_summary(decision: Any) -> dict[str, Any]:
    owner = (decision.explanation or {}).get("owner") or {}
    return {
        "outcome": decision.outcome,
        "owner_id": decision.owner_id,
        "owner_name": owner.get("name"),
        "pool": decision.pool_key,
        "rule": decision.rule_key,
        "fallback": decision.used_fallback,
        "summary": explain(decision)["summary"],
    }


def _earlier_row(session: Session, run: ImportRun, phone: str | None, email: str | None) -> int | None:
    """Dry runs: the row of an earlier chunk that would have created a lead with the same key."""
    keys = [ImportRow.phone_key == phone] if phone else []
    keys += [ImportRow.email_key == email] if email else []
    if not keys or run.next_row == 0:
        return None
    return session.scalar(
        select(ImportRow.row_number)
        .where(
            ImportRow.run_id == run.id,
            ImportRow.outcome == "created",
            ImportRow.position < run.next_row,
            or_(*keys),
        )
        .order_by(ImportRow.position)
        .limit(1)
    )


def _process(
    session: Session, run: ImportRun, world: _World, rows: Sequence[ImportRow], clock: Clock, *, dry: bool
) -> list[_Outcome]:
    """Give each row to intake in its own savepoint; return what happened to each (plain data)."""
    outcomes: list[_Outcome] = []
    created_rows: dict[int, int] = {}  # lead id (real, or a dry run's provisional one) → row number
    for row in rows:
        payload, errors = world.payload(row.cells)
        if errors:
            outcomes.append(_Outcome(row, "error", errors=errors))
            continue
        savepoint = session.begin_nested()
        try:
            result = intake_lead(
                session,
                channel=world.channel,
                payload=payload,
                clock=clock,
                idempotency_key=f"import-{run.id}-row-{row.row_number}",
                campaign=run.campaign,
            )
        except IntakeInvalid as exc:
            savepoint.rollback()
            outcomes.append(_Outcome(row, "error", errors=world.intake_errors(exc.errors)))
            continue
        savepoint.commit()
        lead = result.lead
        if result.duplicate is not None:
            of_row = created_rows.get(lead.id)
            if of_row is None and not dry:
                of_row = session.scalar(
                    select(ImportRow.row_number).where(
                        ImportRow.run_id == run.id, ImportRow.lead_id == lead.id
                    )
                )
            provisional = dry and lead.id in created_rows
            outcomes.append(
                _Outcome(
                    row,
                    "duplicate",
                    duplicate_of_id=None if provisional else lead.id,
                    duplicate_of_row=of_row,
                    matched_on=result.duplicate.matched_on,
                )
            )
            continue
        earlier = _earlier_row(session, run, lead.phone, lead.email) if dry else None
        if earlier is not None:
            created_rows[lead.id] = earlier
            matched = "phone" if lead.phone else "email"
            outcomes.append(_Outcome(row, "duplicate", duplicate_of_row=earlier, matched_on=matched))
            continue
        created_rows[lead.id] = row.row_number
        outcomes.append(
            _Outcome(
                row,
                "created",
                lead_id=None if dry else lead.id,
                routing=_routing_summary(result.decision),
                phone_key=lead.phone,
                email_key=lead.email,
            )
        )
    return outcomes


def _count(run: ImportRun, outcomes: Sequence[_Outcome]) -> None:
    for o in outcomes:
        o.apply()
    run.processed_rows += len(outcomes)
    run.next_row += len(outcomes)
    run.created_count += sum(o.outcome == "created" for o in outcomes)
    run.duplicate_count += sum(o.outcome == "duplicate" for o in outcomes)
    run.error_count += sum(o.outcome == "error" for o in outcomes)


def _check_chunk(session: Session, run: ImportRun, world: _World, clock: Clock, chunk_size: int) -> None:
    """Run a chunk through intake inside a savepoint that is rolled back: record, keep nothing."""
    rows = _rows(session, run, chunk_size)
    sandbox = session.begin_nested()
    try:
        outcomes = _process(session, run, world, rows, clock, dry=True)
    finally:
        sandbox.rollback()
    _count(run, outcomes)
    if run.next_row < run.total_rows:
        return
    now = clock.now()
    if run.dry_run:
        _finish(session, run, "done", now)
    elif run.error_count:
        # Nothing will be written: the rows that were fine are reported as skipped, not as created.
        session.execute(
            update(ImportRow)
            .where(ImportRow.run_id == run.id, ImportRow.outcome != "error")
            .values(
                outcome="skipped", routing=None, duplicate_of_id=None, duplicate_of_row=None, matched_on=None
            )
            .execution_options(synchronize_session=False)
        )
        run.created_count = run.duplicate_count = 0
        _finish(session, run, "rejected", now, _rejected(run.error_count))
    else:
        # Every row is fine: write them all in the next step, in one transaction.
        run.phase = "writing"
        run.next_row = run.processed_rows = run.created_count = run.duplicate_count = 0


def _rejected(errors: int) -> dict[str, str]:
    return {
        "en": f"Nothing was imported: {errors} row(s) have errors. Correct them and import the file again.",
        "zh": f"未导入任何数据：有 {errors} 行存在错误。请更正后重新导入该文件。",
    }


def _write_chunk(session: Session, run: ImportRun, world: _World, clock: Clock, chunk_size: int) -> None:
    """Import a chunk for real, row by row (a bad row rolls back alone)."""
    _count(run, _process(session, run, world, _rows(session, run, chunk_size), clock, dry=False))
    if run.next_row >= run.total_rows:
        _finish(session, run, "done", clock.now())


def _write_all(session: Session, run: ImportRun, world: _World, clock: Clock) -> None:
    """Import every row in this transaction; any row failing rolls back all of them."""
    rows = _rows(session, run, None)
    whole = session.begin_nested()
    outcomes = _process(session, run, world, rows, clock, dry=False)
    failed = [o for o in outcomes if o.outcome == "error"]
    if not failed:
        whole.commit()
        _count(run, outcomes)
        _finish(session, run, "done", clock.now())
        return
    whole.rollback()
    kept = {id(o) for o in failed}
    outcomes = [o if id(o) in kept else _Outcome(o.row, "skipped") for o in outcomes]
    _count(run, outcomes)
    run.created_count = run.duplicate_count = 0
    _finish(session, run, "rejected", clock.now(), _rejected(len(failed)))


def wrote_leads(run: ImportRun | None) -> bool:
    """Tell whether the step just done may have written leads (and so notices for their owners).

    True after a writing step that kept leads: one of row by row (still writing, or done) or the single
    write of all or nothing (done). Checking steps, dry runs and rejected runs write none.
    """
    if run is None or run.dry_run or not (run.created_count or run.duplicate_count):
        return False
    return run.phase == "writing" or run.status == "done"


@job(JOB, timeout=3600)
def advance_job(ctx: JobContext, run_id: int) -> None:
    """Do one step of an import run and enqueue the next while the run is active."""
    run = advance_import(
        ctx.session, run_id, store=FileStore.for_settings(ctx.runtime.settings), clock=ctx.clock
    )
    if wrote_leads(run):
        kick_delivery(ctx.session, ctx.runtime.jobs)  # new owners hear by e-mail/webhook after this commit
    if run is not None and run.status in ACTIVE_STATUSES:
        schedule_import(ctx.runtime.jobs, ctx.session, run)
