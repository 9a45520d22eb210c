"""The real `salesmesh` command line plus one test timer kind, `faults.slow_effect`, whose handler records
its ledger effect and then works for a few milliseconds, so a fault test can kill processes mid-batch.

Run it as `python -m tests.platform.fault_support.slow_cli worker|scheduler ...` from the repository root;
the fault tests import it too, to schedule timers of that kind.
"""

from __future__ import annotations

import time

from salesmesh.platform.cli import main
from salesmesh.platform.timers import TimerContext, timer_kind

SLOW_KIND = "faults.slow_effect"
WORK_SECONDS = 0.008


@timer_kind(SLOW_KIND)
def slow_effect(ctx: TimerContext) -> None:
    """Record the effect, then hold the transaction open a little, like a real handler doing work."""
    if ctx.record_effect("slow", "faults.slow", {"subject_id": ctx.timer.subject_id}):
        time.sleep(WORK_SECONDS)


if __name__ == "__main__":
    main()
