"""The benchmark runner: every benchmark is a ratio to a baseline measured in the same process.

A benchmark module registers a `Benchmark` whose `prepare(size)` returns a `Case` with two callables
doing the same unit of work: `subject` (salesmesh's way) and `baseline` (the bare minimum it needs,
e.g. `json.loads` + plain INSERTs). The runner times them in interleaved pairs (alternating which goes
first, so cache and frequency effects fall on both), takes the median of the per-pair ratios
`baseline_seconds / subject_seconds` and compares it to the benchmark's target. 1.0 means "as fast as
the bare baseline"; a target of 0.25 means "at least a quarter of the baseline's throughput".
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIZES = ("S", "M", "L")


@dataclass
class Case:
    subject: Callable[[], Any]
    baseline: Callable[[], Any]
    units: int  # work items per call, for throughput figures
    cleanup: Callable[[], None] = lambda: None
    before: Callable[[], None] = lambda: None  # untimed reset before every timed call
    notes: dict[str, Any] = field(default_factory=dict)
    # Conditions besides the ratio that the case found broken (e.g. cost growing with history): the
    # record fails with these messages whatever its ratio.
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    target: float
    prepare: Callable[[str], Case]
    pairs: dict[str, int] = field(default_factory=lambda: {"S": 5, "M": 7, "L": 9})


REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    """Add a benchmark to the registry (duplicate names are a programming error)."""
    if bench.name in REGISTRY:
        raise ValueError(f"benchmark {bench.name!r} registered twice")
    REGISTRY[bench.name] = bench
    return bench


def _timed(fn: Callable[[], Any], before: Callable[[], None]) -> float:
    before()
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(bench: Benchmark, size: str) -> dict[str, Any]:
    """Run one benchmark at `size` and return its JSON record."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    case = bench.prepare(size)
    try:
        _timed(case.subject, case.before)  # warm-up: imports, compiled validators, statement caches
        _timed(case.baseline, case.before)
        ratios, subject_times, baseline_times = [], [], []
        for i in range(bench.pairs[size]):
            if i % 2 == 0:
                b = _timed(case.baseline, case.before)
                s = _timed(case.subject, case.before)
            else:
                s = _timed(case.subject, case.before)
                b = _timed(case.baseline, case.before)
            ratios.append(b / s if s > 0 else float("inf"))
            subject_times.append(s)
            baseline_times.append(b)
    finally:
        case.cleanup()
    ratio = statistics.median(ratios)
    s_med, b_med = statistics.median(subject_times), statistics.median(baseline_times)
    return {
        "name": bench.name,
        "size": size,
        "unit": "items/s",
        "value": round(case.units / s_med, 2) if s_med else None,
        "baseline": round(case.units / b_med, 2) if b_med else None,
        "ratio": round(ratio, 4),
        "target": bench.target,
        "pass": ratio >= bench.target and not case.failures,
        "failures": list(case.failures),
        "pairs": len(ratios),
        "ratios": [round(r, 4) for r in ratios],
        "notes": case.notes,
    }


def run(names: list[str] | None, size: str) -> list[dict[str, Any]]:
    """Run the named benchmarks (all by default) and return their records."""
    from benchmarks import catalogue

    catalogue.load()
    unknown = sorted(set(names or []) - set(REGISTRY))
    if unknown:
        raise KeyError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}")
    return [measure(REGISTRY[n], size) for n in (names or sorted(REGISTRY))]


def write(records: list[dict[str, Any]], path: Path) -> None:
    """Write records as a JSON document."""
    path.write_text(
        json.dumps({"benchmarks": records}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def check(path: Path) -> list[str]:
    """Return one failure line per record below its target (empty when all pass)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(records, list) or not records:
        return [f"{path}: no benchmark records"]
    failures = []
    for i, rec in enumerate(records):
        missing = [k for k in ("name", "value", "baseline", "ratio", "target", "pass") if k not in rec]
        if missing:
            failures.append(f"{path}: record {i} lacks {', '.join(missing)}")
        elif rec["ratio"] < rec["target"]:
            failures.append(f"{rec['name']}: ratio {rec['ratio']:.3f} below target {rec['target']}")
        failures.extend(f"{rec.get('name')}: {message}" for message in rec.get("failures") or ())
    return failures


def format_table(records: list[dict[str, Any]]) -> str:
    """Render records as a plain-text table."""
    head = f"{'benchmark':<22} {'size':<4} {'subject/s':>12} {'baseline/s':>12} {'ratio':>7} {'target':>7}"
    lines = [head + "  result"]
    for r in records:
        lines.append(
            f"{r['name']:<22} {r['size']:<4} {r['value']:>12} {r['baseline']:>12} {r['ratio']:>7.3f} "
            f"{r['target']:>7}  {'pass' if r['pass'] else 'FAIL'}"
        )
    return "\n".join(lines)
