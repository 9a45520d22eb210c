"""The board_team benchmark: at size S the board and the bare scan count the same open deals at every
history size, the history really grows, and a run that grew with history is recorded as failing; its
timings are never asserted here."""

import json
from pathlib import Path

from benchmarks import board_team
from benchmarks.runner import Benchmark, Case, check, measure


def test_board_and_scan_agree_at_every_history_size() -> None:
    case = board_team.prepare("S")
    try:
        case.subject()
        case.baseline()
        notes = case.notes
        assert notes["open_deals"] == case.units == 2_000
        assert notes["rows_on_board"] == 8 and notes["deals_listed"] == 50
        assert notes["deals_in_database"] == 2_000 + 400 + 200 + 40  # open and closed, both teams
        levels = [(h["activities_per_deal"], h["activities"]) for h in notes["history"]]
        assert levels == [(0, 0), (10, 26_400), (50, 132_000)]
        assert all(h["board_ms"] > 0 and h["scan_ms"] > 0 for h in notes["history"])
        assert isinstance(case.failures, list)
    finally:
        case.cleanup()


def test_a_case_with_failures_fails_its_record(tmp_path: Path) -> None:
    bench = Benchmark(
        name="grows",
        description="a case whose cost grew",
        target=0.0,
        prepare=lambda size: Case(subject=lambda: None, baseline=lambda: None, units=1, failures=["grew"]),
    )
    record = measure(bench, "S")
    assert record["failures"] == ["grew"] and record["pass"] is False
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"benchmarks": [record]}))
    assert check(path) == ["grows: grew"]
