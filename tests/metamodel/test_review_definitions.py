"""Review findings in the definitions store, each pinned by a test that failed before its fix: hostile
request bodies and query strings answer 4xx (never a 500), and re-importing an older pack version is
applied rather than reported as "already installed"."""

from __future__ import annotations

import pytest

from tests.metamodel.web_auth import bearer, committed_user

BASE = "/api/v1/definitions"


@pytest.fixture
def ops(session, make_user):  # type: ignore[no-untyped-def]
    return committed_user(session, make_user, "ops")


def test_very_deep_json_body_is_400_not_500(client, runtime, ops) -> None:  # type: ignore[no-untyped-def]
    headers = {**bearer(runtime, ops), "Content-Type": "application/json"}
    for url in (BASE, f"{BASE}/validate"):
        response = client.post(url, data="[" * 50_000, headers=headers)
        assert response.status_code == 400, url
        assert response.json["error"]["code"] == "too_deep"
