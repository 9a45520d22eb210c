"""Helpers for the lights and team-board tests: the medical-device pack's pipeline, deal form and working
calendar published, a small company (page_helpers.make_staff: team A with lead_a, rep_a1, rep_a2; team B
with rep_b1; plus ops), deals opened through the real service (so the stage-change signal lights them),
deals written as bare rows with a given light (for big boards), and Beijing wall-clock times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import Team, User
from salesmesh.workflows.models import Customer, Deal
from salesmesh.workflows.records import create_deal
from tests.workflows.conftest import publish
from tests.workflows.page_helpers import _password_hash, make_staff, shipped

BEIJING = timedelta(hours=8)


def beijing(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """Return a Beijing wall-clock moment as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - BEIJING


def add_user(
    session: Session, clock: FrozenClock, name: str, role: str = "rep", team: Team | None = None
) -> User:
    """Insert an active user (the test run's one password hash)."""
    user = User(
        email=f"{name}@example.test",
        name=name,
        role=role,
        team_id=team.id if team is not None else None,
        password_hash=_password_hash(),
        active=True,
        attributes={},
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def md_company(session: Session, clock: FrozenClock) -> SimpleNamespace:
    """Publish md-deal, md-workweek and md-sales; return the staff, teams and two deal factories."""
    publish(session, clock, shipped("deal_form.json"))
    calendar = publish(session, clock, shipped("calendar.json"))
    pipeline = publish(session, clock, shipped("pipeline.json"))
    staff = make_staff(session, clock)
    staff["ops"] = add_user(session, clock, "ops", "ops")
    team_a = session.get(Team, staff["lead_a"].team_id)
    team_b = session.get(Team, staff["rep_b1"].team_id)
    counter = iter(range(1, 1_000_000))

    def customer(owner: User | None) -> Customer:
        n = next(counter)
        row = Customer(
            name=f"Hospital {n}",
            name_key=f"hospital{n}",
            region="jiangsu",
            region_key="jiangsu",
            owner_id=owner.id if owner else None,
            team_id=owner.team_id if owner else None,
            data={},
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(row)
        session.flush()
        return row

    def open_deal(owner: User, **fields: Any) -> Deal:
        """Open a deal through `records.create_deal` (as the system) in md-sales' first stage."""
        return create_deal(
            session,
            None,
            customer_id=customer(owner).id,
            pipeline_key="md-sales",
            owner_id=owner.id,
            clock=clock,
            **fields,
        )

    def row(
        owner: User | None, stage: str, light: str | None, overdue_since: datetime | None, **extra: Any
    ) -> Deal:
        """Write a deal row directly with a given light (no service): for big boards and odd states."""
        values: dict[str, Any] = {
            "name": f"Deal {next(counter)}",
            "customer_id": customer(owner).id,
            "pipeline_version_id": pipeline.id,
            "pipeline_key": "md-sales",
            "stage_key": stage,
            "stage_entered_at": clock.now(),
            "status": "open",
            "currency": "CNY",
            "light": light,
            "overdue_since": overdue_since,
            "owner_id": owner.id if owner else None,
            "team_id": owner.team_id if owner else None,
            "data": {},
            "created_at": clock.now(),
            "updated_at": clock.now(),
        }
        values.update(extra)
        deal = Deal(**values)
        session.add(deal)
        session.flush()
        return deal

    return SimpleNamespace(
        calendar=calendar,
        pipeline=pipeline,
        team_a=team_a,
        team_b=team_b,
        open_deal=open_deal,
        row=row,
        **staff,
    )
