"""Review of issue 3: ids that are not database integers answer a field error or a 404, not a crash.

`"²".isdigit()` is true but `int("²")` fails, and an id past 64 bits overflows the database driver; both
ended in an unhandled exception (a 500) on the conversion form and on a saved view's URL."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from salesmesh.workflows.models import Customer, Deal
from tests.workflows.list_support import sign_in as list_sign_in
from tests.workflows.page_helpers import fresh
from tests.workflows.test_record_pages import _post, app, world  # noqa: F401  (fixtures)

HUGE = "99999999999999999999"


@pytest.mark.parametrize("customer_id", ["²", HUGE, "12a"])
def test_conversion_with_a_bad_customer_id_is_a_field_error(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
    session: Any,
    customer_id: str,
) -> None:
    page = f"/leads/{world.lead.id}/convert"
    customers = session.scalar(select(Customer.id).order_by(Customer.id.desc()))
    response = _post(
        client,
        page,
        {
            "customer_choice": "existing",
            "customer_id": customer_id,
            "deal_pipeline_key": "hospital-sales",
            "contact_name": "王伟",
        },
        page=page,
    )
    assert response.status_code == 422
    assert "Unknown customer" in response.get_data(as_text=True)
    session.rollback()
    assert session.scalar(select(Customer.id).order_by(Customer.id.desc())) == customers
    assert session.scalar(select(Deal.id).where(Deal.name == "王伟")) is None
    assert fresh(session, world.lead).status == "new"


def test_a_saved_view_id_past_64_bits_is_404(
    client: Any, runtime: Any, session: Any, people: dict[str, Any]
) -> None:
    session.commit()
    list_sign_in(client, runtime, people["rep_a1"])
    assert client.get(f"/lists/saved/{HUGE}").status_code == 404
