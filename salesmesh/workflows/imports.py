"""Lead imports: setting up an import of a CSV or XLSX file, and reading its results.

`upload_import` (ops/admin; `actor=None` is the system, e.g. the CLI) stores the file content-addressed
in the `FileStore`, reads it once to check it (limits, header, rows; `import_reading`) and creates a
draft `ImportRun` with the header, a sample and a suggested column mapping for the channel's lead form
(an `IntakeChannel`'s form and defaults, or plain "import" with the only published routing's form).
`start_import` fixes the mapping, mode (all or nothing, row by row), campaign and dry-run flag — a file
whose content was already imported needs `again=True` — and queues the run; `schedule_import` enqueues
the `imports.advance` job after commit, which runs the steps in `import_steps` (the CLI runs them
inline). `copy_for_import` turns a finished dry run into a new draft to import for real;
`resume_import` enqueues a stalled run again (it continues from its last committed chunk). `progress`,
`report_rows` and `error_lines` read what a run did. Bad settings raise `ImportSetupInvalid` with
[{field, message, message_zh}] naming the form input. Services flush, never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.forms.compile import FormSpec
from salesmesh.forms.fields import FieldInvalid, FieldSpec
from salesmesh.forms.files import FileStore
from salesmesh.platform import policy
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.jobs import JobQueue
from salesmesh.platform.models import User
from salesmesh.workflows.import_models import ACTIVE_STATUSES, MODES, ImportRow, ImportRun
from salesmesh.workflows.import_reading import (
    DEFAULT_LIMITS,
    MB,
    ImportFileError,
    ImportLimits,
    column_name,
    file_type_of,
    importable_fields,
    read_table,
    suggest_mapping,
)
from salesmesh.workflows.intake import IntakeUnavailable, lead_form_for
from salesmesh.workflows.intake_models import IntakeChannel

IMPORT_CHANNEL = "import"
STALLED_AFTER = timedelta(minutes=5)
JOB = "imports.advance"

STATUS_NAMES = {
    "draft": N_("Not started"),
    "queued": N_("Waiting to start"),
    "running": N_("Running"),
    "done": N_("Finished"),
    "rejected": N_("Rejected: nothing imported"),
    "failed": N_("Failed"),
}
MODE_NAMES = {"all_or_nothing": N_("All or nothing"), "row_by_row": N_("Row by row")}
PHASE_NAMES = {"checking": N_("Checking rows"), "writing": N_("Importing rows")}


class ImportSetupInvalid(ValueError):
    """The import's settings are wrong; `errors` are [{field, message, message_zh}] (field = form input)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def setup_error(name: str, message: str, message_zh: str) -> ImportSetupInvalid:
    return ImportSetupInvalid([{"field": name, "message": message, "message_zh": message_zh}])


def _require(actor: User | None) -> None:
    if actor is not None:  # None: the system (CLI), which skips the policy explicitly
        policy.require(actor, "lead.import")


@dataclass
class _Upload:
    """What `FileStore.receive` reads: a file name and a binary stream."""

    filename: str
    stream: BinaryIO


def channel_for(session: Session, key: str) -> IntakeChannel | str:
    """Return the intake channel `key` (its form and defaults apply), or "import" for plain imports."""
    row = session.scalars(select(IntakeChannel).where(IntakeChannel.key == key)).first()
    if row is not None:
        if not row.active:
            raise setup_error("channel", f"Channel '{key}' is disabled", f"渠道“{key}”已停用")
        return row
    if key == IMPORT_CHANNEL:
        return key
    raise setup_error("channel", f"No intake channel '{key}'", f"没有名为“{key}”的接入渠道")


def form_for_channel(session: Session, channel: IntakeChannel | str) -> FormSpec:
    """Return the published lead form a channel's leads are validated against."""
    form_key = channel.form_key if isinstance(channel, IntakeChannel) else None
    try:
        return lead_form_for(session, form_key)[1]
    except IntakeUnavailable:
        raise setup_error(
            "channel",
            "Lead intake is not set up: publish a routing with a lead form first",
            "尚未配置线索接入：请先发布带有线索表单的分配规则",
        ) from None


# --- upload and start --------------------------------------------------------------------------------


def upload_import(
    session: Session,
    actor: User | None,
    *,
    filename: str,
    stream: BinaryIO,
    store: FileStore,
    clock: Clock,
    channel: str = IMPORT_CHANNEL,
    sheet: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ImportRun:
    """Store and read an uploaded file; return a draft run with its header, sample and suggested mapping."""
    _require(actor)
    intake_channel = channel_for(session, channel)
    spec = form_for_channel(session, intake_channel)
    file_type_of(filename)  # a clear word on .xls and friends before the store's generic refusal
    try:
        pending = store.receive(
            _Upload(filename, stream),
            field="import",
            limits={"allowed_types": ["csv", "xlsx"], "max_size_mb": limits.max_bytes / MB},
        )
    except FieldInvalid as exc:
        raise ImportFileError(exc.message, exc.message_zh) from None
    try:
        table = read_table(pending.temp_path.read_bytes(), filename, sheet=sheet or None, limits=limits)
    except BaseException:
        store.discard([pending])
        raise
    store.commit([pending])
    descriptor = pending.descriptor
    now = clock.now()
    run = ImportRun(
        created_by_id=actor.id if actor is not None else None,
        file_name=descriptor["name"],
        file_sha256=descriptor["id"],
        file_size=descriptor["size"],
        file_type=table.file_type,
        sheet=table.sheet,
        headers=table.headers,
        file_info={**table.info(), "rows": len(table.rows)},
        channel=channel,
        form_key=spec.key,
        mapping=suggest_mapping(table.headers, spec),
        mode="row_by_row",
        dry_run=True,
        status="draft",
        total_rows=len(table.rows),
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def form_of(session: Session, run: ImportRun) -> FormSpec:
    """Return the lead form a run's rows are validated against (its channel's)."""
    return form_for_channel(session, channel_for(session, run.channel))


def mapping_problems(
    spec: FormSpec, mapping: Mapping[str, str], headers: Sequence[str]
) -> list[dict[str, Any]]:
    """Return [{field, message, message_zh}] for a mapping that names unknown fields or a field twice."""
    fields = {f.key for f in importable_fields(spec)}
    seen: dict[str, int] = {}
    problems = []
    for column, key in sorted(mapping.items(), key=lambda item: int(item[0])):
        index = int(column)
        name = column_name(headers, index)
        if not 0 <= index < DEFAULT_LIMITS.max_columns:
            problems.append(
                {"field": "", "message": f"No column {column}", "message_zh": f"没有第 {column} 列"}
            )
        elif key not in fields:
            problems.append(
                {
                    "field": f"map_{index}",
                    "message": f"Column {name}: the lead form has no importable field '{key}'",
                    "message_zh": f"列 {name}：线索表单中没有可导入的字段“{key}”",
                }
            )
        elif key in seen:
            first = column_name(headers, seen[key])
            problems.append(
                {
                    "field": f"map_{index}",
                    "message": f"Columns {first} and {name} both fill '{key}': choose one",
                    "message_zh": f"列 {first} 和列 {name} 都对应字段“{key}”：请只保留一列",
                }
            )
        else:
            seen[key] = index
    return problems


def unmapped_required(
    spec: FormSpec, mapping: Mapping[str, str], defaults: Mapping[str, Any]
) -> list[FieldSpec]:
    """Return the always-required fields no column fills and the channel gives no default for."""
    mapped = set(mapping.values())
    return [
        f for f in importable_fields(spec) if f.required and f.key not in mapped and f.key not in defaults
    ]


def earlier_imports(session: Session, run: ImportRun) -> list[ImportRun]:
    """Return the earlier real (not dry) runs of the same file content, newest first."""
    return list(
        session.scalars(
            select(ImportRun)
            .where(
                ImportRun.file_sha256 == run.file_sha256,
                ImportRun.id != run.id,
                ImportRun.dry_run.is_(False),
                ImportRun.status.in_(("queued", "running", "done")),
            )
            .order_by(ImportRun.created_at.desc(), ImportRun.id.desc())
        )
    )


def start_import(
    session: Session,
    actor: User | None,
    run: ImportRun,
    *,
    mapping: Mapping[str, str],
    mode: str,
    dry_run: bool,
    clock: Clock,
    campaign: str | None = None,
    again: bool = False,
) -> ImportRun:
    """Fix a draft run's mapping, mode and dry-run flag and queue it (the caller schedules the job)."""
    _require(actor)
    if run.status != "draft":
        raise setup_error("", "This import has already started", "此导入已经开始")
    if mode not in MODES:
        raise setup_error("mode", "Choose all or nothing, or row by row", "请选择“全部或全不”或“逐行导入”")
    campaign = (campaign or "").strip() or None
    if campaign is not None and len(campaign) > 120:
        raise setup_error("campaign", "Must be at most 120 characters long", "长度不能超过 120 个字符")
    try:
        clean = {str(int(c)): k for c, k in mapping.items() if k}
    except ValueError:
        raise setup_error("", "Columns are numbered from 0", "列号应为从 0 开始的整数") from None
    spec = form_of(session, run)
    problems = mapping_problems(spec, clean, run.headers)
    if not clean:
        problems.append(
            {
                "field": "",
                "message": "Map at least one column to a field",
                "message_zh": "请至少为一列选择对应字段",
            }
        )
    if problems:
        raise ImportSetupInvalid(problems)
    earlier = [] if dry_run else earlier_imports(session, run)
    if earlier and not again:
        first = earlier[0]
        raise setup_error(
            "again",
            f"This file was already imported (import #{first.id}, {first.created_at:%Y-%m-%d %H:%M} UTC): "
            "tick 'Import it again' to import it anyway",
            f"此文件已导入过（导入 #{first.id}，{first.created_at:%Y-%m-%d %H:%M} UTC）："
            "如仍要导入，请勾选“再次导入”",
        )
    now = clock.now()
    run.mapping = clean
    run.mode = mode
    run.dry_run = dry_run
    run.campaign = campaign
    run.status = "queued"
    run.started_at = now
    run.updated_at = now
    session.flush()
    return run


def copy_for_import(session: Session, actor: User | None, run: ImportRun, *, clock: Clock) -> ImportRun:
    """Return a new draft run with a finished dry run's file, channel and sheet (to import it for real)."""
    _require(actor)
    now = clock.now()
    copy = ImportRun(
        created_by_id=actor.id if actor is not None else None,
        file_name=run.file_name,
        file_sha256=run.file_sha256,
        file_size=run.file_size,
        file_type=run.file_type,
        sheet=run.sheet,
        headers=list(run.headers),
        file_info=dict(run.file_info),
        channel=run.channel,
        campaign=run.campaign,
        form_key=run.form_key,
        mapping=dict(run.mapping),
        mode=run.mode,
        dry_run=True,
        status="draft",
        total_rows=run.total_rows,
        created_at=now,
        updated_at=now,
    )
    session.add(copy)
    session.flush()
    return copy


def schedule_import(queue: JobQueue, session: Session, run: ImportRun) -> None:
    """Enqueue the run's next step once the caller's transaction commits."""
    queue.enqueue_after_commit(session, JOB, run.id, job_id=f"import-{run.id}-{run.steps}")


def is_stalled(run: ImportRun, now: datetime) -> bool:
    """Tell whether an active run has not moved for a while (its worker probably died)."""
    return run.status in ACTIVE_STATUSES and now - run.updated_at > STALLED_AFTER


def resume_import(
    session: Session, actor: User | None, run: ImportRun, queue: JobQueue, *, clock: Clock
) -> None:
    """Enqueue an active run's next step again (after a crashed worker); it continues where it stopped."""
    _require(actor)
    if run.status not in ACTIVE_STATUSES:
        raise setup_error("", "This import is not running", "此导入未在运行")
    run.updated_at = clock.now()
    session.flush()
    queue.enqueue_after_commit(session, JOB, run.id)


# --- reading results ---------------------------------------------------------------------------------


def progress(run: ImportRun, now: datetime) -> dict[str, Any]:
    """Return a run's progress as the JSON the progress page polls."""
    total = run.total_rows or 0
    return {
        "id": run.id,
        "status": run.status,
        "phase": run.phase,
        "dry_run": run.dry_run,
        "mode": run.mode,
        "total": total,
        "processed": run.processed_rows,
        "percent": round(100 * run.processed_rows / total, 1) if total else 0.0,
        "created": run.created_count,
        "duplicates": run.duplicate_count,
        "errors": run.error_count,
        "finished": run.status not in ACTIVE_STATUSES and run.status != "draft",
        "stalled": is_stalled(run, now),
        "message": run.message,
    }


def report_rows(
    session: Session,
    run: ImportRun,
    *,
    outcomes: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ImportRow]:
    """Return a run's processed rows in file order (only the given outcomes when named)."""
    stmt = select(ImportRow).where(ImportRow.run_id == run.id, ImportRow.outcome.is_not(None))
    if outcomes:
        stmt = stmt.where(ImportRow.outcome.in_(outcomes))
    stmt = stmt.order_by(ImportRow.position).offset(offset)
    return list(session.scalars(stmt.limit(limit) if limit is not None else stmt))


def error_lines(session: Session, run: ImportRun) -> list[dict[str, Any]]:
    """Return one line per error of a run: row, column, letter, field, message, message_zh."""
    lines = []
    for row in report_rows(session, run, outcomes=("error",)):
        for e in row.errors or ():
            lines.append({"row": row.row_number, **e})
    return lines
