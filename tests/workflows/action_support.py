"""Helpers for the action-pack tests: the medical-device world (pack installed, a team with its lead, a
rep, a hospital with a contact and a deal), stage entries through the real stage-change signal, draining
the sweeper, and reading what steps did. Rows are inserted directly; the services under test run as the
sweeper runs them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.versions import get_published
from salesmesh.platform.clock import Clock
from salesmesh.platform.models import Team, User
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import sweep_once
from salesmesh.platform.timers import Effect, Timer
from salesmesh.workflows.action_packs import STEP_KIND
from salesmesh.workflows.models import Contact, Customer, Deal
from salesmesh.workflows.stage_signals import StageChange, send_stage_change
from tests.workflows.routing_helpers import MD_PACK, import_pack, publish

BEIJING = ZoneInfo("Asia/Shanghai")


def beijing(*args: int) -> datetime:
    """Return a Beijing wall-clock time as an aware UTC datetime."""
    return datetime(*args, tzinfo=BEIJING).astimezone(UTC)


@dataclass
class World:
    team: Team
    lead: User
    rep: User
    customer: Customer
    contact: Contact
    deal: Deal


def _user(
    session: Session, clock: Clock, name: str, role: str, team: Team | None, locale: str | None
) -> User:
    user = User(
        email=f"{name}@hospital-sales.test",
        name=name,
        role=role,
        team_id=team.id if team else None,
        password_hash="!",
        active=True,
        locale=locale,
        attributes={},
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def md_world(
    session: Session, clock: Clock, *, install: bool = True, stage: str = "needs_confirmed"
) -> World:
    """Install the medical-device pack and add a team, a rep's deal at a hospital with a contact."""
    if install:
        import_pack(session, clock, MD_PACK)
    team = Team(key="east", name={"en": "East", "zh": "华东"}, created_at=clock.now())
    session.add(team)
    session.flush()
    lead = _user(session, clock, "lead.li", "lead", team, "zh")
    rep = _user(session, clock, "rep.wang", "rep", team, "zh")
    team.lead_id = lead.id
    customer = Customer(
        name="Ruijin Hospital",
        name_key="ruijinhospital",
        region="shanghai",
        region_key="shanghai",
        grade="tertiary_a",
        institution_type="hospital",
        owner_id=rep.id,
        team_id=team.id,
        data={},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(customer)
    session.flush()
    contact = Contact(
        customer_id=customer.id,
        name="Dr. Zhang",
        role="department_head",
        email="zhang@ruijin.test",
        owner_id=rep.id,
        team_id=team.id,
        data={},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(contact)
    session.flush()
    deal = make_deal(session, clock, customer, contact, rep, stage=stage)
    return World(team, lead, rep, customer, contact, deal)


def make_deal(
    session: Session,
    clock: Clock,
    customer: Customer,
    contact: Contact | None,
    owner: User,
    *,
    stage: str = "needs_confirmed",
    pipeline_key: str = "md-sales",
    data: dict[str, Any] | None = None,
    name: str = "Ultrasound for cardiology",
) -> Deal:
    """Add an open deal on a published pipeline, pinned to its deal form when the pack has one."""
    pipeline = get_published(session, "pipeline", pipeline_key)
    assert pipeline is not None
    form_key = pipeline.document.get("deal_form")
    form = get_published(session, "form", form_key) if form_key else None
    deal = Deal(
        name=name,
        customer_id=customer.id,
        primary_contact_id=contact.id if contact else None,
        pipeline_version_id=pipeline.id,
        pipeline_key=pipeline_key,
        stage_key=stage,
        stage_entered_at=clock.now(),
        status="open",
        owner_id=owner.id,
        team_id=owner.team_id,
        currency="CNY",
        form_version_id=form.id if form else None,
        data=data if data is not None else {"product_line": "ultrasound", "forecast_category": "pipeline"},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(deal)
    session.flush()
    return deal


def enter(session: Session, deal: Deal, stage: str, at: datetime, *, actor_id: int | None = None) -> None:
    """Move the deal into `stage` at `at` the way the pipeline runtime does, and send the signal."""
    previous = deal.stage_key
    deal.stage_key = stage
    deal.stage_entered_at = at
    session.flush()
    send_stage_change(session, StageChange(deal, previous, stage, at, actor_id))


def sweep_all(runtime: Runtime) -> int:
    """Sweep until nothing is due; return how many timers ran."""
    total = 0
    while (n := sweep_once(runtime, owner="test")) > 0:
        total += n
    return total


def steps(session: Session, deal_id: int) -> dict[str, Timer]:
    """Return the deal's step timers by step key (the latest per step)."""
    rows = session.scalars(
        select(Timer).where(Timer.kind == STEP_KIND, Timer.subject_id == deal_id).order_by(Timer.id)
    ).all()
    return {t.payload["step"]: t for t in rows}


def effects(session: Session, timer_id: int) -> list[str]:
    """Return the ledger kinds recorded for a timer."""
    return list(session.scalars(select(Effect.kind).where(Effect.timer_id == timer_id).order_by(Effect.id)))


def count(session: Session, model: Any, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def publish_pack(session: Session, clock: Clock, document: dict[str, Any]) -> DefinitionVersion:
    """Publish an action pack (or any definition) as the system."""
    return publish(session, clock, document)


def attach_pack(session: Session, clock: Clock, pack: dict[str, Any], stage: str) -> None:
    """Publish `pack` and a new md-sales version whose `stage` runs it; re-pin every deal to that version."""
    publish_pack(session, clock, pack)
    pipeline = copy.deepcopy(get_published(session, "pipeline", "md-sales").document)
    for item in pipeline["stages"]:
        if item["key"] == stage:
            item["action_packs"] = [pack["key"]]
    version = publish_pack(session, clock, pipeline)
    for deal in session.scalars(select(Deal)):
        deal.pipeline_version_id = version.id


def one_step_pack(key: str, action: dict[str, Any], **step: Any) -> dict[str, Any]:
    """Return an action pack with one step due an hour after stage entry."""
    return {
        "kind": "action_pack",
        "key": key,
        "schema_version": 1,
        "label": {"en": key, "zh": key},
        "steps": [
            {
                "key": "only",
                "label": {"en": "Only step", "zh": "唯一步骤"},
                "offset": {"after_hours": 1, "relative_to": "stage_entry"},
                "action": action,
                **step,
            }
        ],
    }
