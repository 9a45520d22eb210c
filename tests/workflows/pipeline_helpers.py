"""Helpers for the pipeline, approval and objection tests: the medical-device pack's pipeline, deal form,
calendar and objection library published; a small company (team A with lead_a, rep_a1, rep_a2; team B
with lead_b, rep_b1; an ops person and an admin); deals placed directly in any stage; a stage-change
receiver that records every signal; and a free-mode variant of the pipeline."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.models import Team, User
from salesmesh.workflows.models import Customer, Deal
from salesmesh.workflows.stage_signals import StageChange, on_stage_change
from tests.workflows.conftest import publish
from tests.workflows.page_helpers import _password_hash, shipped

# Every stage-change signal sent in this process since `md_world`: (deal id, from, to, actor id).
_SIGNALS: list[tuple[int, str | None, str, int | None]] = []


def signals() -> list[tuple[int, str | None, str, int | None]]:
    """Return the stage-change signals received since the world was built, oldest first."""
    return list(_SIGNALS)


@on_stage_change
def record_signal(session: Session, change: StageChange) -> None:
    """A test receiver: remember the change (and prove the deal row is already in the new stage)."""
    assert change.deal.stage_key == change.to_stage
    _SIGNALS.append((change.deal.id, change.from_stage, change.to_stage, change.actor_id))


# What md-deal needs to leave each stage by its required fields and conditions.
READY = {
    "initial_contact": {"product_line": "ultrasound"},
    "needs_confirmed": {"estimated_amount": 1200000, "decision_maker": "Dr. Wang"},
    "trial_request": {"trial_start_date": "2026-01-10", "trial_result": "positive"},
    "contract_negotiation": {"amount": 1150000, "expected_close_date": "2026-03-01", "budget_approved": True},
}


def free_pipeline_doc() -> dict[str, Any]:
    """The shipped md-sales pipeline as a free one under another key (any stage, waivers by the mover)."""
    doc = copy.deepcopy(shipped("pipeline.json"))
    doc.update(key="md-free", mode="free", allow_any=True)
    doc["label"] = {"en": "Hospital sales (free)", "zh": "医院销售（自由）"}
    doc.pop("transitions")
    return doc


def make_company(session: Session, clock: FrozenClock) -> dict[str, User]:
    """Teams A and B with a lead each, reps, an ops person and an admin (one password hash per run)."""
    teams = {k: Team(key=k, name={"en": k, "zh": k}, created_at=clock.now()) for k in ("team-a", "team-b")}
    session.add_all(teams.values())
    session.flush()
    folks: dict[str, User] = {}
    for name, role, team in [
        ("lead_a", "lead", "team-a"),
        ("lead_b", "lead", "team-b"),
        ("rep_a1", "rep", "team-a"),
        ("rep_a2", "rep", "team-a"),
        ("rep_b1", "rep", "team-b"),
        ("ops", "ops", None),
        ("admin", "admin", None),
    ]:
        folks[name] = User(
            email=f"{name}@example.test",
            name=name,
            role=role,
            team_id=teams[team].id if team else None,
            password_hash=_password_hash(),
            active=True,
            attributes={},
            created_at=clock.now(),
        )
    session.add_all(folks.values())
    session.flush()
    teams["team-a"].lead_id = folks["lead_a"].id
    teams["team-b"].lead_id = folks["lead_b"].id
    session.flush()
    return folks


def build_md(session: Session, clock: FrozenClock) -> SimpleNamespace:
    """Publish the md pack's definitions and the company; `deal(owner, stage, **data)` places a deal."""
    form = publish(session, clock, shipped("deal_form.json"))
    calendar = publish(session, clock, shipped("calendar.json"))
    locked = publish(session, clock, shipped("pipeline.json"))
    free = publish(session, clock, free_pipeline_doc())
    library = publish(session, clock, shipped("objections.json"))
    staff = make_company(session, clock)
    counter = iter(range(1, 100_000))

    def deal(
        owner: User,
        stage: str = "initial_contact",
        *,
        free_mode: bool = False,
        version: DefinitionVersion | None = None,
        **data: Any,
    ) -> Deal:
        n = next(counter)
        pinned = version or (free if free_mode else locked)
        customer = Customer(
            name=f"Hospital {n}",
            name_key=f"hospital{n}",
            region="jiangsu",
            region_key="jiangsu",
            owner_id=owner.id,
            team_id=owner.team_id,
            data={},
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(customer)
        session.flush()
        row = Deal(
            name=f"Hospital {n} ultrasound",
            customer_id=customer.id,
            pipeline_version_id=pinned.id,
            pipeline_key=pinned.document["key"],
            stage_key=stage,
            stage_entered_at=clock.now(),
            status="open",
            currency="CNY",
            owner_id=owner.id,
            team_id=owner.team_id,
            form_version_id=form.id,
            data=data,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(row)
        session.flush()
        return row

    return SimpleNamespace(
        form=form, calendar=calendar, locked=locked, free=free, library=library, deal=deal, **staff
    )


def md_world(session: Session, clock: FrozenClock) -> SimpleNamespace:
    """The md pack's world (see `build_md`) with an empty signal log: what each test module's `md` is."""
    world = build_md(session, clock)
    _SIGNALS.clear()
    return world
