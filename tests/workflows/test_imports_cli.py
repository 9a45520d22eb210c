"""`salesmesh leads import`: progress on stderr, the per-row report on stdout, exit status 1 on errors,
--dry-run, --map overrides by header or letter, --channel, --sheet, refusals as one line, and
`resume-import` finishing a run whose process died; writing steps start the notifications delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.import_models import ImportRun
from salesmesh.workflows.models import Lead
from tests.workflows.import_helpers import HEADER, csv_bytes, good_rows, start, step, upload, xlsx_bytes
from tests.workflows.intake_helpers import add_channel, intake_world


@pytest.fixture
def reps(runtime: Runtime, clock: FrozenClock) -> list[int]:
    with runtime.db.session_scope() as session:
        ids = intake_world(session, clock)
        add_channel(session, clock, "expo", defaults={"source": "expo-2026"})
        return ids


def _invoke(runtime: Runtime, *args: str) -> Any:
    return CliRunner().invoke(
        cli, list(args), obj=CliState(runtime.settings, runtime), catch_exceptions=False
    )


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _leads(runtime: Runtime) -> int:
    with runtime.db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(Lead)) or 0


def test_good_file_imports_with_progress_and_exit_0(
    runtime: Runtime, reps: list[int], tmp_path: Path
) -> None:
    path = _file(tmp_path, "good.csv", csv_bytes([HEADER, *good_rows(5)]))
    result = _invoke(runtime, "leads", "import", path, "--mode", "row-by-row", "--chunk-size", "2")
    assert result.exit_code == 0, result.output
    assert "imported 2/5 rows" in result.stderr and "imported 5/5 rows" in result.stderr
    assert "column A 'Name' -> contact_name" in result.stderr
    assert "import #1 done: 5 rows, created 5, duplicates 0 (linked, not errors), errors 0" in result.stdout
    assert _leads(runtime) == 5
    # Each of the three writing steps started the owners' e-mail/webhook delivery once it committed.
    assert runtime.jobs.backlog() == 3 and runtime.jobs.drain() == 3
    with runtime.db.session_scope() as session:
        states = session.scalars(select(Notification.outbox_state)).all()
        assert len(states) == 5 and set(states) == {"done"}


def test_errors_are_listed_by_row_and_column_and_exit_1(
    runtime: Runtime, reps: list[int], tmp_path: Path
) -> None:
    rows = [HEADER, *good_rows(2), ["", "H", "primary", "12345", "x@"], good_rows(1)[0]]
    path = _file(tmp_path, "bad.csv", csv_bytes(rows))
    result = _invoke(runtime, "leads", "import", path, "--mode", "row-by-row")
    assert result.exit_code == 1
    out = result.stdout
    assert "row 4, column A 'Name' (contact_name): This field is required | 此项为必填项" in out
    assert "row 4, column D 'Phone' (phone):" in out and "row 4, column E 'E-mail' (email):" in out
    assert "row 5: duplicate, linked to lead #1 (row 2) (same phone)" in out
    assert "created 2, duplicates 1 (linked, not errors), errors 1" in out
    assert _leads(runtime) == 2


def test_all_or_nothing_is_the_default_and_rejects(runtime: Runtime, reps: list[int], tmp_path: Path) -> None:
    path = _file(tmp_path, "bad.csv", csv_bytes([HEADER, *good_rows(3), ["", "H", "primary", "", ""]]))
    result = _invoke(runtime, "leads", "import", path)
    assert result.exit_code == 1
    assert "rejected: 4 rows, created 0" in result.stdout and "Nothing was imported" in result.stdout
    assert _leads(runtime) == 0 and runtime.jobs.backlog() == 0  # nothing written, nobody to tell


def test_dry_run_prints_what_each_row_would_do(runtime: Runtime, reps: list[int], tmp_path: Path) -> None:
    path = _file(
        tmp_path, "dry.csv", csv_bytes([HEADER, *good_rows(2), ["Again", "H", "primary", "13800000000", ""]])
    )
    result = _invoke(runtime, "leads", "import", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "checked 3/3 rows" in result.stderr
    assert "row 2: would create a lead; " in result.stdout
    assert "row 4: duplicate, would be linked to the lead of row 2 (same phone)" in result.stdout
    assert "dry run #1 done: 3 rows, would create 2, duplicates 1" in result.stdout
    assert _leads(runtime) == 0 and runtime.jobs.backlog() == 0


def test_map_overrides_channel_and_sheet(runtime: Runtime, reps: list[int], tmp_path: Path) -> None:
    data = xlsx_bytes(
        [["Who", "Where", "Mobile number", "Remarks"], ["Dr Li", "Ruijin", 13912345678, "VIP"]],
        title="Expo",
        extra_sheet="Readme",
    )
    path = _file(tmp_path, "expo.xlsx", data)
    result = _invoke(
        runtime,
        "leads", "import", path, "--sheet", "Expo", "--channel", "expo", "--campaign", "Spring expo",
        "--map", "Who=contact_name", "--map", "B=institution_name", "--map", "mobile number=phone",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not imported: D 'Remarks'" in result.stderr
    with runtime.db.session_scope() as session:
        lead = session.scalars(select(Lead)).one()
        assert (lead.phone, lead.source_channel, lead.campaign) == ("+8613912345678", "expo", "Spring expo")
        assert lead.data["source"] == "expo-2026"  # the channel's default


def test_one_line_refusals(runtime: Runtime, reps: list[int], tmp_path: Path) -> None:
    good = _file(tmp_path, "good.csv", csv_bytes([HEADER, *good_rows(1)]))
    cases = [
        (["--map", "Nope=phone"], "the file has no column 'Nope'"),
        (["--map", "A=nothing"], "the lead form has no importable field 'nothing'"),
        (["--channel", "fax"], "No intake channel 'fax'"),
    ]
    for extra, message in cases:
        result = CliRunner().invoke(
            cli, ["leads", "import", good, *extra], obj=CliState(runtime.settings, runtime)
        )
        assert result.exit_code == 1 and message in result.output, result.output
    result = CliRunner().invoke(
        cli, ["leads", "import", _file(tmp_path, "x.xls", b"old")], obj=CliState(runtime.settings, runtime)
    )
    assert result.exit_code == 1 and "Save the .xls file as .xlsx or .csv" in result.output
    assert _invoke(runtime, "leads", "import", good).exit_code == 0
    again = CliRunner().invoke(cli, ["leads", "import", good], obj=CliState(runtime.settings, runtime))
    assert again.exit_code == 1 and "already imported" in again.output
    assert _invoke(runtime, "leads", "import", good, "--again").exit_code == 0


def test_resume_import_finishes_a_run_whose_process_died(runtime: Runtime, reps: list[int]) -> None:
    run_id = upload(runtime, csv_bytes([HEADER, *good_rows(6)]), "died.csv")
    start(runtime, run_id)
    step(runtime, run_id, 4)  # staged
    step(runtime, run_id, 4)  # four rows committed, then the process "died"
    result = _invoke(runtime, "leads", "resume-import", str(run_id))
    assert result.exit_code == 0, result.output
    assert f"import #{run_id} done: 6 rows, created 6" in result.stdout
    assert _leads(runtime) == 6
    finished = CliRunner().invoke(
        cli, ["leads", "resume-import", str(run_id)], obj=CliState(runtime.settings, runtime)
    )
    assert finished.exit_code == 1 and "is not running (status: done)" in finished.output
    with runtime.db.session_scope() as session:
        assert session.get(ImportRun, run_id).created_count == 6


def test_map_moves_a_field_away_from_its_matched_column(
    runtime: Runtime, reps: list[int], tmp_path: Path
) -> None:
    rows = [["Name", "Institution", "Phone", "Mobile"], ["Dr Wu", "Huashan", "021-5288 9999", "13712345678"]]
    path = _file(tmp_path, "two-phones.csv", csv_bytes(rows))
    result = _invoke(runtime, "leads", "import", path, "--map", "Mobile=phone")
    assert result.exit_code == 0, result.output
    assert "column D 'Mobile' -> phone" in result.stderr and "not imported: C 'Phone'" in result.stderr
    with runtime.db.session_scope() as session:
        assert session.scalars(select(Lead.phone)).one() == "+8613712345678"


def test_without_a_published_routing_the_import_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    path = _file(tmp_path, "early.csv", csv_bytes([HEADER, *good_rows(1)]))
    result = CliRunner().invoke(cli, ["leads", "import", path], obj=CliState(runtime.settings, runtime))
    assert result.exit_code == 1
    assert "Lead intake is not set up: publish a routing with a lead form first" in result.output
    with runtime.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ImportRun)) == 0
