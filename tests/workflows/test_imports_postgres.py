"""Lead imports on PostgreSQL: a dry run leaves every table and the round-robin cursor as they were (the
savepoint's row locks and writes are undone), a bad row rolls back alone, and two workers advancing the
same run at once never process a chunk twice (the run row is read FOR UPDATE)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ImportRow
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.models import Lead
from tests.workflows.import_helpers import (
    HEADER,
    csv_bytes,
    finish,
    good_rows,
    rows_of,
    run_file,
    start,
    step,
    table_counts,
    upload,
)
from tests.workflows.intake_helpers import intake_world, payload


@pytest.fixture
def reps(pg_runtime: Runtime, clock: FrozenClock) -> list[int]:
    with pg_runtime.db.session_scope() as session:
        ids = intake_world(session, clock)
        intake_lead(session, channel="hotline", payload=payload(phone="13900000000"), clock=clock)
        return ids


def test_dry_run_writes_nothing_on_postgresql(pg_runtime: Runtime, reps: list[int]) -> None:
    before = table_counts(pg_runtime)
    rows = [*good_rows(5), ["", "H", "primary", "1", ""], ["Again", "H", "primary", "13800000001", ""]]
    run = run_file(pg_runtime, csv_bytes([HEADER, *rows]), "dry.csv", dry_run=True, chunk_size=4)
    assert (run.status, run.created_count, run.duplicate_count, run.error_count) == ("done", 5, 1, 1)
    assert table_counts(pg_runtime) == before
    assert rows_of(pg_runtime, run.id)[8].duplicate_of_row == 3


def test_row_by_row_on_postgresql(pg_runtime: Runtime, reps: list[int]) -> None:
    rows = [*good_rows(3), ["", "H", "primary", "1", ""], *good_rows(2, start=3)]
    run = run_file(pg_runtime, csv_bytes([HEADER, *rows]), "rows.csv", chunk_size=2)
    assert (run.status, run.created_count, run.error_count) == ("done", 5, 1)
    with pg_runtime.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 6  # five + the one made beforehand


def test_two_workers_on_one_run_never_share_a_chunk(pg_runtime: Runtime, reps: list[int]) -> None:
    run_id = upload(pg_runtime, csv_bytes([HEADER, *good_rows(24)]), "race.csv")
    start(pg_runtime, run_id)
    step(pg_runtime, run_id, 4)  # staged
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(20):
                if step(pg_runtime, run_id, 4) not in ("queued", "running"):
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    run = finish(pg_runtime, run_id, 4)
    assert (run.status, run.created_count, run.duplicate_count, run.processed_rows) == ("done", 24, 0, 24)
    with pg_runtime.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 25
        lead_ids = session.scalars(select(ImportRow.lead_id).where(ImportRow.run_id == run_id)).all()
        assert len(lead_ids) == 24 == len(set(lead_ids)) and None not in lead_ids
