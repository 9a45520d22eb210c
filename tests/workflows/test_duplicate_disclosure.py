"""A duplicate customer is refused for everyone, but only people who may see it learn its number."""

from typing import Any

import pytest

from salesmesh.workflows import records
from salesmesh.workflows.records import DuplicateCustomer


def _refusal(session: Any, clock: Any, actor: Any) -> dict[str, str]:
    with pytest.raises(DuplicateCustomer) as exc:
        records.create_customer(session, actor, name="Union Hospital", region="beijing", clock=clock)
    [error] = [e for e in exc.value.errors if e["path"] == "/name"]
    return error


def test_other_team_learns_the_name_is_taken_but_not_the_record(
    session: Any, clock: Any, people: Any, make_customer: Any
) -> None:
    existing = make_customer(name="Union Hospital", region="beijing", owner_id=people["rep_a1"].id)
    seen = _refusal(session, clock, people["rep_a1"])
    assert f"#{existing.id}" in seen["message"]
    hidden = _refusal(session, clock, people["rep_b1"])
    assert f"#{existing.id}" not in hidden["message"] and f"#{existing.id}" not in hidden["message_zh"]
    assert "someone else's" in hidden["message"] and "其他同事" in hidden["message_zh"]
    assert f"#{existing.id}" in _refusal(session, clock, people["admin"])["message"]
