"""The intake_e2e benchmark: the subject really runs whole intakes (every lead routed among the 80 reps with
its SLA deadline, notified and audited on an intact chain) and the baseline writes the same rows; the
statement count it reports is within the gate. Timings are never asserted here."""

from benchmarks import intake_e2e


def test_subject_runs_whole_intakes_and_the_baseline_writes_the_same_rows() -> None:
    case = intake_e2e.prepare("S")
    try:
        notes = case.notes
        leads = intake_e2e.LEADS["S"]
        assert (notes["rules"], notes["reps"], notes["leads"]) == (50, 80, leads)
        assert notes["created"] == notes["assigned_with_deadline"] == leads and notes["owners"] > 10
        assert notes["chain_intact"] is True
        assert notes["statements_per_lead"] <= 10 and notes["baseline_statements_per_lead"] == 6
        expected = {
            "audit_events": leads,
            "notifications": leads,
            "routing_decisions": leads,
            "lead_dedupe_keys": 2 * leads,
            "leads": leads,
        }
        assert notes["subject_rows"] == notes["baseline_rows"] == expected
        case.before()
        assert case.subject() == leads
        case.before()
        assert case.baseline() == leads
    finally:
        case.cleanup()
