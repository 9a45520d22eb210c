"""The benchmark runner writes one record per benchmark, and `check` fails records below target.

Wall-clock numbers are never asserted here; only the shape of the records and the check logic.
"""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import runner

ROOT = Path(__file__).resolve().parents[2]


def test_run_writes_records_that_check_reads(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "run",
            "--only",
            "pack_import",
            "--size",
            "S",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "pack_import" in result.stdout, result.stderr
    records = json.loads(out.read_text())["benchmarks"]
    assert [r["name"] for r in records] == ["pack_import"]
    rec = records[0]
    assert {"name", "value", "baseline", "ratio", "target", "pass", "pairs", "ratios"} <= set(rec)
    assert rec["pairs"] == len(rec["ratios"]) >= 5
    # Every definition file of the shipped medical-device pack is imported.
    assert rec["notes"]["definitions"] == len(
        list((ROOT / "packs" / "medical-device-direct" / "definitions").rglob("*.json"))
    )
    assert rec["value"] > 0 and rec["baseline"] > 0
    assert rec["pass"] == (rec["ratio"] >= rec["target"])
    assert result.returncode == (0 if rec["pass"] else 1)


def test_check_flags_records_below_target(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    good = {"name": "a", "value": 10, "baseline": 20, "ratio": 0.5, "target": 0.25, "pass": True}
    bad = {"name": "b", "value": 1, "baseline": 20, "ratio": 0.05, "target": 0.25, "pass": False}
    path.write_text(json.dumps({"benchmarks": [good, bad]}))
    assert runner.check(path) == ["b: ratio 0.050 below target 0.25"]
    path.write_text(json.dumps({"benchmarks": [good]}))
    assert runner.check(path) == []
    path.write_text(json.dumps({"benchmarks": [{"name": "c"}]}))
    assert "lacks" in runner.check(path)[0]


def test_unknown_benchmark_is_an_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--only", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown benchmark" in result.stderr
