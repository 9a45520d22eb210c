"""Benchmark command line.

`python -m benchmarks run [--only NAME] [--size S|M|L] [--json PATH]` and `python -m benchmarks check PATH`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run benchmarks and print ratios to their same-run baselines")
    run_p.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    run_p.add_argument("--size", choices=runner.SIZES, default="M")
    run_p.add_argument("--json", type=Path, metavar="PATH", help="also write the records to PATH")
    check_p = sub.add_parser("check", help="exit 1 when any record in PATH is below its target")
    check_p.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "run":
        try:
            records = runner.run(args.only, args.size)
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        print(runner.format_table(records))
        if args.json:
            runner.write(records, args.json)
        return 0 if all(r["pass"] for r in records) else 1
    if not args.path.exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return 2
    failures = runner.check(args.path)
    for line in failures:
        print(line)
    print("all benchmarks meet their targets" if not failures else f"{len(failures)} below target")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
