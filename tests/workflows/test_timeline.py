"""The interaction timeline: activities and audit events of a record newest first, filters, paging,
scoping through the record, and a fixed number of SQL statements whatever the number of activities."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from werkzeug.exceptions import NotFound

from salesmesh.workflows import activities, records
from salesmesh.workflows.record_values import RecordError
from salesmesh.workflows.timeline import timeline


@contextmanager
def count_statements(engine: Any) -> Iterator[list[str]]:
    """Collect the SQL statements run on `engine` inside the block."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _deal_with_history(
    session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any, n: int
) -> Any:
    """A deal of rep_a1 with `n` activities by three different people, each naming its own contact."""
    rep = people["rep_a1"]
    deal = make_deal(owner_id=rep.id, team_id=rep.team_id)
    contacts = [make_contact(customer_id=deal.customer_id) for _ in range(n)]
    authors = [rep, people["lead_a"], people["ops"]]
    for i in range(n):
        clock.advance(minutes=10)
        activities.log_activity(
            session,
            authors[i % 3],
            kind=("call", "visit", "note")[i % 3],
            deal_id=deal.id,
            contact_id=contacts[i].id,
            summary=f"#{i}",
            clock=clock,
        )
    records.update_deal(session, people["lead_a"], deal.id, amount=n, clock=clock)
    records.update_deal(session, people["ops"], deal.id, next_step="Follow up", clock=clock)
    session.commit()
    return deal


def test_entries_come_newest_first_with_their_actors(
    session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any
) -> None:
    deal = _deal_with_history(session, clock, people, make_deal, make_contact, 4)
    page = timeline(session, people["rep_a1"], deal_id=deal.id)
    assert [(e.kind, e.action) for e in page.entries] == [
        ("audit", "deal.update"),
        ("audit", "deal.update"),
        ("call", None),
        ("note", None),
        ("visit", None),
        ("call", None),
    ]
    assert [e.actor.name for e in page.entries] == ["ops", "lead_a", "rep_a1", "ops", "lead_a", "rep_a1"]
    assert [e.activity.summary for e in page.entries[2:]] == ["#3", "#2", "#1", "#0"]
    assert page.entries[2].activity.contact.customer_id == deal.customer_id
    assert all(a.at >= b.at for a, b in zip(page.entries, page.entries[1:], strict=False))
    assert not page.has_more and page.next_before is None


def test_filters_and_paging(session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any) -> None:
    deal = _deal_with_history(session, clock, people, make_deal, make_contact, 9)
    rep = people["rep_a1"]
    assert [e.activity.summary for e in timeline(session, rep, deal_id=deal.id, kinds=["visit"]).entries] == [
        "#7",
        "#4",
        "#1",
    ]
    only_audit = timeline(session, rep, deal_id=deal.id, kinds=["audit"]).entries
    assert [e.action for e in only_audit] == ["deal.update", "deal.update"]
    seen, before = [], None
    while True:
        page = timeline(
            session, rep, deal_id=deal.id, kinds=["call", "visit", "note"], limit=4, before=before
        )
        seen += [e.activity.summary for e in page.entries]
        if not page.has_more:
            break
        before = page.next_before
    assert seen == [f"#{i}" for i in range(8, -1, -1)]


def test_bad_arguments(session: Any, people: Any, make_deal: Any) -> None:
    deal = make_deal(owner_id=people["rep_a1"].id)
    with pytest.raises(RecordError) as exc:
        timeline(
            session, people["rep_a1"], deal_id=deal.id, kinds=["call", "gossip"], limit=0, before="yesterday"
        )
    assert [e["path"] for e in exc.value.errors] == ["/kinds", "/limit", "/before"]
    assert "gossip" in exc.value.errors[0]["message_zh"]
    with pytest.raises(RecordError):
        timeline(session, people["rep_a1"])


def test_whoever_sees_the_record_sees_its_whole_history(
    session: Any, clock: Any, people: Any, make_deal: Any, make_contact: Any
) -> None:
    deal = _deal_with_history(session, clock, people, make_deal, make_contact, 3)
    for name in ("rep_a1", "lead_a", "ops", "admin"):
        assert len(timeline(session, people[name], deal_id=deal.id).entries) == 5, name
    for name in ("rep_a2", "rep_b1", "lead_b"):
        with pytest.raises(NotFound):
            timeline(session, people[name], deal_id=deal.id)
        with pytest.raises(NotFound):
            timeline(session, people[name], customer_id=deal.customer_id)
    with pytest.raises(NotFound):
        timeline(session, people["admin"], lead_id=10**9)


def test_a_customer_timeline_gathers_its_deals_and_contacts(
    session: Any, clock: Any, people: Any, make_customer: Any, make_deal: Any
) -> None:
    rep = people["rep_a1"]
    customer = make_customer(owner=rep)
    first = make_deal(customer=customer)
    second = make_deal(customer=customer)
    activities.log_activity(session, rep, kind="call", deal_id=first.id, clock=clock)
    clock.advance(minutes=1)
    activities.log_activity(session, rep, kind="visit", customer_id=customer.id, clock=clock)
    clock.advance(minutes=1)
    activities.log_activity(session, rep, kind="email", deal_id=second.id, clock=clock)
    clock.advance(minutes=1)
    records.create_contact(session, rep, customer_id=customer.id, name="Dr Zhao", clock=clock)
    entries = timeline(session, rep, customer_id=customer.id).entries
    assert [e.action or e.kind for e in entries] == ["contact.create", "email", "visit", "call"]
    assert [e.kind for e in timeline(session, rep, deal_id=first.id).entries] == ["call"]


@pytest.mark.parametrize("subject", ["deal", "customer", "lead"])
def test_the_statement_count_does_not_grow_with_the_history(
    runtime: Any,
    session: Any,
    clock: Any,
    people: Any,
    make_deal: Any,
    make_contact: Any,
    make_lead: Any,
    subject: str,
) -> None:
    def measure(n: int) -> int:
        rep = people["rep_a1"]
        if subject == "lead":
            lead = make_lead(owner_id=rep.id, team_id=rep.team_id)
            for i in range(n):
                clock.advance(minutes=1)
                activities.log_activity(
                    session, (rep, people["ops"])[i % 2], kind="call", lead_id=lead.id, clock=clock
                )
            records_kwargs = {"lead_id": lead.id}
            session.commit()
        else:
            deal = _deal_with_history(session, clock, people, make_deal, make_contact, n)
            records_kwargs = {"deal_id": deal.id} if subject == "deal" else {"customer_id": deal.customer_id}
        session.expire_all()  # nothing cached: every row must come from the timeline's own queries
        actor = people["rep_a1"]
        session.refresh(actor)
        with count_statements(runtime.db.engine) as seen:
            page = timeline(session, actor, limit=100, **records_kwargs)
            for entry in page.entries:  # what a page renders: who, when, with whom
                _ = (entry.actor.name if entry.actor else None, entry.at)
                if entry.activity is not None:
                    _ = entry.activity.contact.name if entry.activity.contact else None
        assert len([e for e in page.entries if e.activity is not None]) == n
        return len(seen)

    small, large = measure(3), measure(60)
    assert small == large
    assert large <= 5


def test_backdated_activities_sort_by_when_they_happened(
    session: Any, clock: Any, people: Any, make_deal: Any
) -> None:
    rep = people["rep_a1"]
    deal = make_deal(owner_id=rep.id)
    today = activities.log_activity(session, rep, kind="call", deal_id=deal.id, clock=clock)
    yesterday = activities.log_activity(
        session, rep, kind="visit", deal_id=deal.id, occurred_at=clock.now() - timedelta(days=1), clock=clock
    )
    assert [e.activity for e in timeline(session, rep, deal_id=deal.id).entries] == [today, yesterday]
