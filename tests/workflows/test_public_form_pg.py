"""The public form on PostgreSQL under concurrency: one token sent twice at the same moment makes one
lead (both visitors are thanked), and a burst from one address past its hourly limit lets through
exactly the limit."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from salesmesh.platform.app import create_app
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Lead
from salesmesh.workflows.public_form_models import PublicFormAttempt
from tests.workflows.public_form_helpers import URL, fields, public_world, token_of


def _together(work: list[Any]) -> list[Any]:
    """Run the callables in threads released at the same moment; return their results in order."""
    results: list[Any] = [None] * len(work)
    barrier = threading.Barrier(len(work))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _count(runtime: Runtime, model: Any) -> int:
    with runtime.db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_one_token_sent_twice_at_once_makes_one_lead(pg_runtime: Runtime, clock: FrozenClock) -> None:
    with pg_runtime.db.session_scope() as session:
        public_world(session, clock)
    app = create_app(pg_runtime.settings, runtime=pg_runtime)
    token = token_of(app.test_client().get(URL).get_data(as_text=True))
    clock.advance(seconds=5)
    data = {**fields(), "_token": token}
    codes = _together([lambda: app.test_client().post(URL, data=data).status_code for _ in range(2)])
    assert codes == [303, 303]
    assert _count(pg_runtime, Lead) == 1 and _count(pg_runtime, PublicFormAttempt) == 1


def test_a_burst_from_one_address_gets_exactly_the_limit_through(
    pg_runtime: Runtime, clock: FrozenClock
) -> None:
    with pg_runtime.db.session_scope() as session:
        public_world(session, clock, per_ip_per_hour=3)
    app = create_app(pg_runtime.settings, runtime=pg_runtime)
    tokens = [token_of(app.test_client().get(URL).get_data(as_text=True)) for _ in range(6)]
    clock.advance(seconds=5)

    def post(n: int) -> Any:
        data = {**fields(phone=f"1390000000{n}", email=None), "_token": tokens[n]}
        return lambda: app.test_client().post(URL, data=data).status_code

    codes = _together([post(n) for n in range(6)])
    assert sorted(codes) == [303, 303, 303, 429, 429, 429]
    assert _count(pg_runtime, Lead) == 3
