"""Ids outside the database's integer range are simply not found (404), never a driver error (500)."""

from typing import Any

import pytest
from werkzeug.exceptions import NotFound

from salesmesh.platform import policy
from salesmesh.workflows.models import Lead
from tests.platform.auth_helpers import login


@pytest.mark.parametrize("ident", ["99999999999999999999", "0", "-5", str(2**63)])
def test_out_of_range_ids_are_not_found(session: Any, make_user: Any, ident: str) -> None:
    admin = make_user(role="admin")
    with pytest.raises(NotFound):
        policy.get_or_404(session, admin, Lead, ident)


def test_out_of_range_id_in_a_url_is_404(client: Any, session: Any, make_user: Any) -> None:
    make_user(role="admin", email="admin@example.test")
    session.commit()
    login(client, "admin@example.test")
    assert client.get("/leads/99999999999999999999").status_code == 404
    assert client.get("/api/v1/leads/99999999999999999999").status_code == 404
