"""The demo seeder builds the medical-device company once, deterministically, and only in demo mode, and
its history goes through the real services: every lead routed with a decision and a first-response
deadline, trade-fair leads pooled and claimed, deals walked along the pipeline into several stages with
green, yellow and red lights, a custom objection response waiting for the team lead, and the action-pack
steps that came due fired by `settle_demo` (reminders in the first rep's inbox, failures on the
failed-actions page)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from salesmesh.forms.binding import validate_data
from salesmesh.forms.compile import published_form
from salesmesh.metamodel.models import PackInstall
from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.demo import DEMO_PASSWORD, seed_demo, settle_demo
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.passwords import verify_password
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.timers import Timer
from salesmesh.workflows.approval_models import ApprovalRequest
from salesmesh.workflows.models import Activity, Customer, Deal, Lead, Task
from salesmesh.workflows.pool_models import LeadClaim
from salesmesh.workflows.record_values import normalize_name
from salesmesh.workflows.routing_models import RoutingDecision


def _count(session: Session, model: type, *where: object) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_seed_builds_the_company_once(session: Session, clock: FrozenClock) -> None:
    first = seed_demo(session, clock, reps=12, weeks=1, leads_per_day=20)
    assert first.created
    assert _count(session, Team) == 3
    roles = dict(session.execute(select(User.role, func.count()).group_by(User.role)).all())
    assert roles == {"admin": 1, "ops": 1, "lead": 3, "rep": 12}
    assert first.leads == _count(session, Lead) > 50
    assert set(session.scalars(select(PackInstall.pack_key))) == {"medical-device-direct"}
    # demo people went through the account service: attributes pinned to the published definition
    reps = list(session.scalars(select(User).where(User.role == "rep")))
    assert all(r.attributes_version_id is not None and r.attributes["seniority"] for r in reps)
    assert _count(session, AuditEvent, AuditEvent.action == "user.create") == 17
    # every team has its lead; every owned lead belongs to its owner's team
    for team in session.scalars(select(Team)):
        assert team.lead is not None and team.lead.team_id == team.id
    for lead in session.scalars(select(Lead).where(Lead.owner_id.is_not(None))):
        assert lead.team_id == lead.owner.team_id
        assert lead.received_at <= clock.now()
    # one password hash for every login, and it is the demo password
    hashes = set(session.scalars(select(User.password_hash)))
    assert len(hashes) == 1 and verify_password(hashes.pop(), DEMO_PASSWORD)

    again = seed_demo(session, clock, reps=12, weeks=1, leads_per_day=20)
    assert not again.created
    assert again.leads == first.leads and again.users == first.users


def test_every_lead_came_through_intake_and_routing(session: Session, clock: FrozenClock) -> None:
    report = seed_demo(session, clock, reps=12, weeks=2, leads_per_day=20, seed=5)
    leads = _count(session, Lead)
    assert _count(session, AuditEvent, AuditEvent.action == "lead.intake") == leads == report.leads
    decided = session.scalar(select(func.count(distinct(RoutingDecision.lead_id))))
    assert decided == leads  # the lead page explains every routing and the distribution report counts them
    channels = set(session.scalars(select(RoutingDecision.channel)))
    assert {"key_account", "inclusive", "standard", "exhibition_pool"} <= channels
    routed = list(session.scalars(select(Lead).where(Lead.pool_key.is_(None))))
    assert routed and all(lead.sla_due_at is not None and lead.sla_state for lead in routed)
    assert {lead.sla_state for lead in routed} >= {"met", "breached"}
    # the trade fair's contacts: some still in the pool, some claimed and called
    assert _count(session, Lead, Lead.status == "pooled") > 0
    assert _count(session, LeadClaim) >= report.counts["claims"] > 0
    # reps read yesterday's assignment notices; today's wait for them
    assignments = select(Notification).where(Notification.kind == "lead.assigned")
    states = {n.read_at is None for n in session.scalars(assignments)}
    assert states == {True, False}
    assert verify_chain(session) is None  # the audit chain holds across the simulated clock


@pytest.fixture
def second_runtime(tmp_path: Path, clock: FrozenClock) -> Iterator[Runtime]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'again.db'}",
        instance_path=tmp_path / "again",
        secret_key="x" * 64,
        testing=True,
    )
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)
    yield rt
    rt.close()


def _snapshot(runtime: Runtime) -> tuple[list, list, list]:
    with runtime.db.session_scope() as s:
        seed_demo(s, runtime.clock, reps=6, weeks=1, leads_per_day=10, seed=7)
    with runtime.db.session_scope() as s:
        names = [u.name for u in s.scalars(select(User).order_by(User.id))]
        leads = [
            (lead.institution, lead.source_channel, lead.status, lead.owner_id, lead.next_step)
            for lead in s.scalars(select(Lead).order_by(Lead.id))
        ]
        deals = [(d.name, d.amount, d.stage_key, d.light) for d in s.scalars(select(Deal).order_by(Deal.id))]
    return names, leads, deals


def test_same_seed_same_company(runtime: Runtime, second_runtime: Runtime) -> None:
    assert _snapshot(runtime) == _snapshot(second_runtime)


def test_seeded_history_fits_the_forms_and_the_conversion_rules(session: Session, clock: FrozenClock) -> None:
    """Leads validate under md-lead, converted leads became deals carrying their calls, reps have tasks."""
    seed_demo(session, clock, reps=3, weeks=3, leads_per_day=12, seed=3)
    spec = published_form(session, "md-lead")
    assert spec is not None
    leads = list(session.scalars(select(Lead)))
    for lead in leads:
        assert lead.form_version_id == spec.version_id
        assert validate_data(spec, lead.data) == {}, (lead.id, lead.data)
    converted = [lead for lead in leads if lead.status == "converted"]
    assert converted and all(lead.converted_deal_id and lead.converted_customer_id for lead in converted)
    for lead in converted:
        deal = session.get(Deal, lead.converted_deal_id)
        assert deal is not None and deal.pipeline_key == "md-sales" and deal.data["product_line"]
        first = session.scalars(
            select(Activity).where(Activity.deal_id == deal.id).order_by(Activity.occurred_at)
        ).first()
        assert first is not None and first.kind == "call" and first.lead_id == lead.id  # moved along
    customers = {(c.region_key, c.name_key) for c in session.scalars(select(Customer))}
    for lead in leads:
        if lead.status == "new":  # any lead of a rep's day converts without meeting someone's customer
            assert (normalize_name(lead.region), normalize_name(lead.institution)) not in customers
    assert _count(session, Task, Task.status == "open")
    contacted = [lead for lead in leads if lead.first_contact_at is not None and lead.owner_id is not None]
    first_calls = _count(session, Activity, Activity.kind == "call", Activity.subject_type == "lead")
    assert first_calls == len(contacted)
    # every rep has a new lead waiting in My day
    for rep in session.scalars(select(User).where(User.role == "rep")):
        assert _count(session, Lead, Lead.owner_id == rep.id, Lead.status == "new") >= 1, rep.email


def test_the_demo_fills_the_pipeline_board_approvals_and_reminders(runtime: Runtime) -> None:
    with runtime.db.session_scope() as s:
        report = seed_demo(s, runtime.clock, reps=9, weeks=3, leads_per_day=20, seed=11)
    settled = settle_demo(runtime)
    assert settled.fired > 0 and settled.failed > 0  # survey links need SALESMESH_BASE_URL: failed actions
    with runtime.db.session_scope() as s:
        open_deals = list(s.scalars(select(Deal).where(Deal.status == "open")))
        assert len({d.stage_key for d in open_deals}) >= 3
        assert {d.light for d in open_deals} == {"green", "yellow", "red"}
        assert (
            report.counts["stage_moves"]
            == _count(s, AuditEvent, AuditEvent.action == "deal.stage_change")
            > 0
        )
        # the first rep's showcase deal sits in solution demo; its action-pack reminder came due
        rep1 = s.scalars(select(User).where(User.email == "rep1@demo.salesmesh.test")).one()
        assert _count(s, Deal, Deal.owner_id == rep1.id, Deal.stage_key == "solution_demo") >= 1
        reminders = select(Notification).where(
            Notification.user_id == rep1.id, Notification.kind == "actions.reminder"
        )
        assert [n.read_at for n in s.scalars(reminders)] == [None]
        # a custom objection response waits for the first team's lead; an earlier one was approved
        pending = s.scalars(select(ApprovalRequest).where(ApprovalRequest.status == "pending")).one()
        assert pending.requested_by_id == rep1.id and pending.approver_id == rep1.team.lead_id
        assert _count(s, ApprovalRequest, ApprovalRequest.status == "approved") == 1
        assert _count(s, Timer, Timer.status == "failed") == settled.failed
        assert _count(s, Timer, Timer.status == "pending", Timer.due_at <= runtime.clock.now()) == 0


def test_cli_refuses_outside_demo_mode(runtime: Runtime) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "seed"], obj=CliState(settings=runtime.settings, runtime=runtime)
    )
    assert result.exit_code != 0
    assert "SALESMESH_DEMO=1" in result.output
    with runtime.db.session_scope() as s:
        assert _count(s, User) == 0
