"""The team board: who sees which team, counts per rep and stage, the risk-ordered deal list across pages,
filters, one click from a red deal to its timeline, both languages, a fixed statement count, and the
medical-device end-to-end case: a deal untouched for 4 days is red on the board."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden

from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.jobs import run_job
from salesmesh.platform.models import User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.activities import complete_task, create_task, log_activity
from salesmesh.workflows.board import PAGE_SIZE, UNASSIGNED, BoardError, BoardQuery, load_board
from salesmesh.workflows.lights import SWEEP_JOB, clear_light_caches
from salesmesh.workflows.models import Activity, Deal, Task
from tests.workflows.lights_support import add_user, beijing, md_company
from tests.workflows.page_helpers import count_statements, make_app, sign_in
from tests.workflows.routing_helpers import counting

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
D = timedelta(days=1)


@pytest.fixture
def app(runtime: Runtime) -> Any:
    return make_app(runtime)


@pytest.fixture
def md(session: Session, clock: FrozenClock) -> Iterator[SimpleNamespace]:
    clear_light_caches()
    clock.set(beijing(2026, 1, 16, 12))  # a Friday
    yield md_company(session, clock)


def _board(session: Session, actor: Any, clock: FrozenClock, **query: Any) -> Any:
    return load_board(session, actor, BoardQuery(**query), now=clock.now())


def _cells(board: Any) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Return {(rep name, stage key or 'total'): (green, yellow, red)} for the non-empty cells."""
    found = {}
    for row in board.rows:
        name = row.user.name if row.user else "unassigned"
        for stage, cell in [*row.cells.items(), ("total", row.total)]:
            if cell.total:
                found[(name, stage)] = (cell.green, cell.yellow, cell.red)
    return found


def test_counts_per_rep_and_stage_with_totals(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    now = clock.now()
    for stage, light in [
        ("initial_contact", "green"),
        ("initial_contact", "red"),
        ("solution_demo", "yellow"),
    ]:
        md.row(md.rep_a1, stage, light, now - D)
    md.row(md.rep_a2, "initial_contact", "red", now - 5 * D)
    md.row(None, "trial_request", "green", now, team_id=md.team_a.id)  # unassigned, in the team
    md.row(md.rep_b1, "initial_contact", "red", now - D)  # another team
    md.row(md.rep_a1, "signed", None, None, status="won")  # closed: not on the board
    board = _board(session, md.lead_a, clock)
    assert board.team.id == md.team_a.id and board.pipeline_key == "md-sales"
    assert [s.key for s in board.stages] == [
        "initial_contact",
        "needs_confirmed",
        "solution_demo",
        "trial_request",
        "contract_negotiation",
    ]
    assert [r.user.name if r.user else None for r in board.rows] == ["rep_a1", "rep_a2", None]
    assert _cells(board) == {
        ("rep_a1", "initial_contact"): (1, 0, 1),
        ("rep_a1", "solution_demo"): (0, 1, 0),
        ("rep_a1", "total"): (1, 1, 1),
        ("rep_a2", "initial_contact"): (0, 0, 1),
        ("rep_a2", "total"): (0, 0, 1),
        ("unassigned", "trial_request"): (1, 0, 0),
        ("unassigned", "total"): (1, 0, 0),
    }
    by_stage = {s.key: (s.total.green, s.total.yellow, s.total.red) for s in board.stages}
    assert by_stage["initial_contact"] == (1, 0, 2)
    assert (board.totals.green, board.totals.yellow, board.totals.red) == (2, 1, 2)


def test_who_sees_which_board(session: Session, clock: FrozenClock, md: SimpleNamespace) -> None:
    md.row(md.rep_a1, "initial_contact", "red", clock.now())
    md.row(md.rep_b1, "initial_contact", "yellow", clock.now())
    lead_a = _board(session, md.lead_a, clock)
    assert [t.key for t in lead_a.teams] == ["team-a"] and not lead_a.may_see_all
    with pytest.raises(BoardError) as refused:
        _board(session, md.lead_a, clock, team_id=md.team_b.id)
    assert refused.value.path == "/team"
    with pytest.raises(Forbidden):
        _board(session, md.rep_a1, clock)
    everyone = _board(session, md.ops, clock)  # ops start with all teams
    assert everyone.team is None and everyone.may_see_all
    assert {name for name, _stage in _cells(everyone)} == {"rep_a1", "rep_b1"}
    team_b = _board(session, md.ops, clock, team_id=md.team_b.id)
    assert _cells(team_b) == {("rep_b1", "initial_contact"): (0, 1, 0), ("rep_b1", "total"): (0, 1, 0)}
    # A lead of a second team sees both of theirs; a lead of none gets an empty board.
    md.team_b.lead_id = md.lead_a.id
    session.flush()
    assert [t.key for t in _board(session, md.lead_a, clock).teams] == ["team-a", "team-b"]
    loner = add_user(session, clock, "loner", "lead")
    empty = _board(session, loner, clock)
    assert (empty.team, empty.rows, empty.deals) == (None, [], [])


def test_the_list_is_red_first_then_longest_overdue_across_pages(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    now = clock.now()
    expected = []
    for i in range(PAGE_SIZE + 10):  # more than a page of reds, then yellows and greens
        light = ("red", "yellow", "green")[i % 3] if i >= 30 else "red"
        since = now - timedelta(hours=7 * i + 1)
        deal = md.row((md.rep_a1, md.rep_a2)[i % 2], "initial_contact", light, since)
        expected.append((("red", "yellow", "green").index(light), since, deal.id))
    order = [deal_id for _rank, _since, deal_id in sorted(expected)]
    pages = [_board(session, md.lead_a, clock, page=n) for n in (1, 2)]
    assert [len(p.deals) for p in pages] == [PAGE_SIZE, 10] and pages[0].pages == 2
    assert [r.deal.id for p in pages for r in p.deals] == order
    red_first = pages[0].deals[0]
    assert red_first.deal.light == "red" and red_first.days_late > pages[0].deals[1].days_late
    # Filters narrow the list; the grid stays the whole team's.
    yellow_a2 = _board(session, md.lead_a, clock, light="yellow", rep=md.rep_a2.id)
    assert {(r.deal.light, r.deal.owner_id) for r in yellow_a2.deals} == {("yellow", md.rep_a2.id)}
    assert yellow_a2.matching == len(yellow_a2.deals) == 5
    assert yellow_a2.totals.total == PAGE_SIZE + 10
    by_rep = _board(session, md.lead_a, clock, sort="rep")
    assert [r.deal.owner.name for r in by_rep.deals] == sorted(r.deal.owner.name for r in by_rep.deals)


def test_days_late_count_working_days(session: Session, clock: FrozenClock, md: SimpleNamespace) -> None:
    md.row(md.rep_a1, "initial_contact", "red", beijing(2026, 1, 9, 12))  # last Friday noon
    (row,) = _board(session, md.lead_a, clock).deals
    assert row.days_late == 5.0  # Friday noon to Friday noon: the weekend does not count


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"stage": "nowhere"}, "/stage"),
        ({"light": "blue"}, "/light"),
        ({"rep": 999_999}, "/rep"),
        ({"sort": "amount"}, "/sort"),
        ({"page": 0}, "/page"),
        ({"pipeline_key": "nope"}, "/pipeline"),
    ],
)
def test_bad_filters_name_the_parameter(
    session: Session, clock: FrozenClock, md: SimpleNamespace, query: dict[str, Any], path: str
) -> None:
    with pytest.raises(BoardError) as refused:
        _board(session, md.ops, clock, team_id=md.team_a.id, **query)
    assert refused.value.path == path


def test_unassigned_deals_have_their_own_row_and_filter(
    session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    md.row(None, "initial_contact", "red", clock.now(), team_id=md.team_a.id)
    board = _board(session, md.lead_a, clock, rep=UNASSIGNED)
    assert board.rows[-1].user is None and [r.deal.owner_id for r in board.deals] == [None]


# --- the page ------------------------------------------------------------------------------------------


def test_page_scoping_en_zh_and_one_click_to_the_timeline(
    client: Any, session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    red = md.row(md.rep_a1, "initial_contact", "red", clock.now() - 5 * D, name="Ruijin ultrasound")
    md.row(md.rep_b1, "initial_contact", "green", clock.now(), name="Team B deal")
    session.commit()
    sign_in(client, session, md.rep_a1, clock)
    assert client.get("/board").status_code == 403
    sign_in(client, session, md.lead_a, clock)
    page = client.get("/board")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Team board" in html and "At risk" in html
    assert "Ruijin ultrasound" in html and "Team B deal" not in html
    link = re.search(r'<a href="([^"]+)" data-testid="deal-link">Ruijin ultrasound', html)
    assert link and link.group(1) == f"/deals/{red.id}#timeline"
    timeline = client.get(link.group(1).split("#")[0])
    assert timeline.status_code == 200 and 'id="timeline"' in timeline.get_data(as_text=True)
    assert client.get(f"/board?team={md.team_b.id}").status_code == 404
    bad = client.get("/board?light=blue")
    assert bad.status_code == 400 and "/light" in bad.get_data(as_text=True)
    zh = client.get("/board", headers=ZH).get_data(as_text=True)
    assert "团队看板" in zh and "有风险" in zh and "Team board" not in zh
    sign_in(client, session, md.ops, clock)
    everyone = client.get("/board").get_data(as_text=True)
    assert "Ruijin ultrasound" in everyone and "Team B deal" in everyone
    assert 'data-testid="nav-board"' in everyone


def test_statement_count_does_not_grow_with_reps_or_deals(
    runtime: Runtime, client: Any, session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    session.commit()
    sign_in(client, session, md.lead_a, clock)

    def statements() -> int:
        client.get("/board")  # warm caches: the same work is measured twice
        with count_statements(runtime) as seen:
            page = client.get("/board?stage=initial_contact")
        assert page.status_code == 200
        return len(seen)

    for light in ("green", "yellow", "red"):  # the list reads one light at a time: all three in both
        md.row(md.rep_a1, "initial_contact", light, clock.now())
    session.commit()
    small = statements()
    for n in range(12):
        rep = add_user(session, clock, f"extra_{n}", team=md.team_a)
        for light in ("green", "yellow", "red"):
            md.row(rep, "initial_contact", light, clock.now() - D)
            md.row(rep, "solution_demo", light, clock.now() - 2 * D)
    session.commit()
    assert statements() == small


HISTORY_TABLES = re.compile(r"\b(activities|audit_events|tasks)\b", re.I)


def test_the_board_reads_no_history_and_costs_the_same_with_50_activities_per_deal(
    runtime: Runtime, client: Any, session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    """The board reads the lights stored on the deals: 50 logged activities per deal (each with its audit
    event) and finished tasks change none of its statements, and none reads those tables."""
    deals = []
    for entered, owner in [
        (beijing(2026, 1, 12, 9), md.rep_a1),  # Monday: red by Friday noon
        (beijing(2026, 1, 14, 9), md.rep_a2),  # Wednesday: yellow
        (beijing(2026, 1, 16, 9), md.rep_a1),  # Friday morning: green
    ]:
        clock.set(entered)
        deals.append(md.open_deal(owner, name=f"Deal of {owner.name} {entered:%d}"))
    session.commit()
    clock.set(beijing(2026, 1, 16, 12))
    run_job(runtime, SWEEP_JOB, [])
    sign_in(client, session, md.lead_a, clock)

    def board_sql() -> list[str]:
        assert client.get("/board").status_code == 200  # warm caches: the same work is measured twice
        with counting(runtime.db.engine) as seen:
            page = client.get("/board")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and all(deal.name in html for deal in deals)
        return seen

    def lights() -> list[tuple[str | None, Any]]:
        session.expire_all()
        return [(session.get(Deal, d.id).light, session.get(Deal, d.id).overdue_since) for d in deals]

    before_lights = lights()
    assert [light for light, _ in before_lights] == ["red", "yellow", "green"]
    empty = board_sql()
    assert empty and not [sql for sql in empty if HISTORY_TABLES.search(sql)]
    audit_before = session.scalar(select(func.count()).select_from(AuditEvent))
    for deal in deals:  # history from before the deals entered their stage: their lights stay as they are
        owner = session.get(User, deal.owner_id)
        for n in range(50):
            log_activity(
                session,
                owner,
                kind="call",
                deal_id=deal.id,
                clock=clock,
                occurred_at=beijing(2026, 1, 5, 9) + timedelta(minutes=n),
                summary=f"Call {n}",
            )
        for n in range(5):
            task = create_task(session, owner, title=f"Task {n}", deal_id=deal.id, clock=clock)
            complete_task(session, owner, task.id, clock=clock)
    session.commit()
    assert session.scalar(select(func.count()).select_from(Activity).where(Activity.kind == "call")) == 150
    assert session.scalar(select(func.count()).select_from(AuditEvent)) - audit_before >= 150 + 30
    assert session.scalar(select(func.count()).select_from(Task)) == 15
    assert lights() == before_lights
    full = board_sql()
    assert full == empty  # the very same statements, in the same order


def test_medical_device_deal_untouched_for_4_days_is_red_on_the_board(
    runtime: Runtime, client: Any, session: Session, clock: FrozenClock, md: SimpleNamespace
) -> None:
    """End to end: opened through the service on Monday, nobody touches it, the periodic sweep runs."""
    clock.set(beijing(2026, 1, 19, 9))  # Monday 09:00 Beijing
    untouched = md.open_deal(md.rep_a1, name="Untouched ultrasound")
    worked = md.open_deal(md.rep_a2, name="Worked ultrasound")
    session.commit()
    clock.set(beijing(2026, 1, 22, 15))  # Thursday afternoon: the worked one gets a call
    log_activity(session, md.rep_a2, kind="call", deal_id=worked.id, clock=clock)
    session.commit()
    clock.set(beijing(2026, 1, 23, 9))  # Friday: 4 working days untouched
    run_job(runtime, SWEEP_JOB, [])
    sign_in(client, session, md.lead_a, clock)
    html = client.get("/board").get_data(as_text=True)
    row = re.search(rf'<tr data-testid="board-row" data-rep="{md.rep_a1.id}">(.*?)</tr>', html, re.S)
    assert row and re.search(
        r'data-stage="initial_contact">.*?data-light="red"[^>]*>.*?1<', row.group(1), re.S
    )
    deal_row = re.search(
        rf'<tr data-testid="board-deal" data-light="(\w+)" data-deal="{untouched.id}">', html
    )
    assert deal_row and deal_row.group(1) == "red"
    other = re.search(rf'<tr data-testid="board-deal" data-light="(\w+)" data-deal="{worked.id}">', html)
    assert other and other.group(1) == "green"
