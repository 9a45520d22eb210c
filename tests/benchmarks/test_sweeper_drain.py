"""The sweeper_drain benchmark: the sweeper and the bare-SQL baseline fire the same due steps and leave the
same rows (one ledger entry, notification and reminder per step; nothing not yet due); timings are never
asserted here."""

from benchmarks import sweeper_drain


def test_sweeper_and_bare_sql_fire_the_same_steps() -> None:
    case, outcome = sweeper_drain.build("S")
    try:
        expected = {"done": 1000, "effects": 1000, "notifications": 1000, "reminders": 1000}
        case.before()
        assert case.subject() == 1000 and outcome() == expected
        case.before()
        assert outcome()["done"] == 0
        assert case.baseline() == 1000 and outcome() == expected
        assert case.notes["pending"] == 10_000 and case.units == 1000
    finally:
        case.cleanup()
