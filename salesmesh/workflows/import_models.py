"""Lead import tables: one `ImportRun` per uploaded spreadsheet, one `ImportRow` per data row of it.

An `ImportRun` records who imported which file (name, SHA-256, CSV or XLSX, sheet), into which channel
and campaign, with which column mapping (`mapping`: {column index as text: form field key}), in which
`mode` (`all_or_nothing` or `row_by_row`), whether it was a `dry_run`, and where it stands: `status`
(draft → queued → running → done | rejected | failed), `phase` (checking: rows validated and routed in
rolled-back savepoints; writing: rows imported for real), the progress counters the progress page polls
and `next_row`, the position of the first row not yet committed — a step that crashes is rolled back
whole, so the next one resumes from there and never imports a row twice. `ImportRow` holds the file's
cells for one row (staged when the run starts, so workers need no shared file system after that) and,
once processed, its outcome: created (lead id and the routing decision's summary), duplicate (the lead,
or for a dry run the earlier row, it was linked to) or error (a list of {column, letter, field, message,
message_zh}). `phone_key`/`email_key` are the row's normalised contact keys, used by dry runs to spot a
row repeating an earlier row of the same file. Services live in `salesmesh.workflows.imports`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.models import User

MODES = ("all_or_nothing", "row_by_row")
STATUSES = ("draft", "queued", "running", "done", "rejected", "failed")
ACTIVE_STATUSES = ("queued", "running")
PHASES = ("checking", "writing")
OUTCOMES = ("created", "duplicate", "error", "skipped")


class ImportRun(Base):
    __tablename__ = "import_runs"
    __table_args__ = (
        # "This file was imported before": earlier runs of the same content.
        Index("ix_import_runs_file_sha256", "file_sha256"),
        # The import page lists the latest runs.
        Index("ix_import_runs_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(Integer)
    file_type: Mapped[str] = mapped_column(String(8))  # csv | xlsx
    sheet: Mapped[str | None] = mapped_column(String(64))
    # What the first read found: header texts, every sheet's name, the first rows, the encoding.
    headers: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    file_info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    channel: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(120))
    form_key: Mapped[str | None] = mapped_column(String(80))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    mode: Mapped[str] = mapped_column(String(16), default="row_by_row")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    phase: Mapped[str | None] = mapped_column(String(16))
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # Position (0-based, among data rows) of the first row no committed step has processed yet.
    next_row: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    # Why a run failed or was rejected, {"en": ..., "zh": ...}.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    created_by: Mapped[User | None] = relationship()


class ImportRow(Base):
    __tablename__ = "import_rows"
    __table_args__ = (
        UniqueConstraint("run_id", "position", name="uq_import_rows_run_id_position"),
        # Dry runs: did an earlier row of this file carry the same phone / e-mail?
        Index("ix_import_rows_run_phone", "run_id", "phone_key"),
        Index("ix_import_rows_run_email", "run_id", "email_key"),
        # A duplicate of a lead this run created names the row that created it.
        Index("ix_import_rows_run_lead", "run_id", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based among the data rows
    row_number: Mapped[int] = mapped_column(Integer)  # as the spreadsheet shows it (header = row 1)
    cells: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    outcome: Mapped[str | None] = mapped_column(String(16))  # None until processed; one of OUTCOMES
    lead_id: Mapped[int | None] = mapped_column(Integer)  # no FK: a dry run's lead never existed
    duplicate_of_id: Mapped[int | None] = mapped_column(Integer)
    duplicate_of_row: Mapped[int | None] = mapped_column(Integer)
    matched_on: Mapped[str | None] = mapped_column(String(16))
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    errors: Mapped[list[Any] | None] = mapped_column(JSONType)
    phone_key: Mapped[str | None] = mapped_column(String(32))
    email_key: Mapped[str | None] = mapped_column(String(254))
