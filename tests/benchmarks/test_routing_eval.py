"""The routing_eval benchmark: the engine and the hand-written baseline agree on every lead (prepare
checks it) and do the same amount of work; its timings are never asserted here."""

from benchmarks import routing_eval


def test_engine_and_handwritten_routing_agree() -> None:
    case = routing_eval.prepare("S")
    case.before()
    assert case.subject() == case.baseline() == case.notes["assigned"] == 200
    assert case.notes["rules"] == 50 and case.notes["reps"] == 80
    assert case.units == 200
