"""Review of issue 3: the list page's statement count does not grow with the saved views shared with the
reader (each sharer's name was loaded with its own query)."""

from __future__ import annotations

from typing import Any

from salesmesh.workflows.models import SavedView
from tests.workflows.conftest import publish
from tests.workflows.list_support import LEAD_VIEW, count_statements, sign_in


def test_shared_saved_views_cost_no_extra_statements(
    client: Any, runtime: Any, session: Any, clock: Any, people: dict[str, Any]
) -> None:
    publish(session, clock, LEAD_VIEW)

    def share(owner: Any, name: str) -> None:
        session.add(
            SavedView(
                user_id=owner.id,
                record_type="lead",
                view_key=LEAD_VIEW["key"],
                name=name,
                params={"q": [name]},
                shared_with_team=True,
                created_at=clock.now(),
            )
        )
        session.commit()

    share(people["rep_a1"], "from a1")
    sign_in(client, runtime, people["lead_a"])
    client.get("/lists/lead")
    with count_statements(runtime.db.engine) as one_sharer:
        page = client.get("/lists/lead").get_data(as_text=True)
    assert "Shared by rep_a1" in page
    share(people["rep_a2"], "from a2")
    share(people["rep_a1"], "more from a1")
    with count_statements(runtime.db.engine) as two_sharers:
        page = client.get("/lists/lead").get_data(as_text=True)
    assert "Shared by rep_a2" in page and "more from a1" in page
    assert len(two_sharers) == len(one_sharer), two_sharers
