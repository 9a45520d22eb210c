"""The demo seeder builds the medical-device company once, deterministically, and only in demo mode."""

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.forms.binding import validate_data
from salesmesh.forms.compile import published_form
from salesmesh.metamodel.models import PackInstall
from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.demo import DEMO_PASSWORD, seed_demo
from salesmesh.platform.models import Team, User
from salesmesh.platform.passwords import verify_password
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Activity, Contact, Customer, Deal, Lead, Task
from salesmesh.workflows.record_values import normalize_name


def test_seed_builds_the_company_once(session: Session, clock: FrozenClock) -> None:
    first = seed_demo(session, clock, reps=12, weeks=1, leads_per_day=20)
    assert first.created
    assert session.scalar(select(func.count()).select_from(Team)) == 3
    roles = dict(session.execute(select(User.role, func.count()).group_by(User.role)).all())
    assert roles == {"admin": 1, "ops": 1, "lead": 3, "rep": 12}
    assert first.leads == session.scalar(select(func.count()).select_from(Lead)) > 50
    assert set(session.scalars(select(PackInstall.pack_key))) == {"medical-device-direct"}
    # demo people went through the account service: attributes pinned to the published definition
    reps = list(session.scalars(select(User).where(User.role == "rep")))
    assert all(r.attributes_version_id is not None and r.attributes["seniority"] for r in reps)
    assert (
        session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "user.create"))
        == 17
    )
    # every team has its lead; every owned lead belongs to its owner's team
    for team in session.scalars(select(Team)):
        assert team.lead is not None and team.lead.team_id == team.id
    for lead in session.scalars(select(Lead).where(Lead.owner_id.is_not(None))):
        assert lead.team_id == lead.owner.team_id
        assert lead.received_at <= clock.now()
    admin = session.scalar(select(User).where(User.role == "admin"))
    assert admin is not None and verify_password(admin.password_hash, DEMO_PASSWORD)

    again = seed_demo(session, clock, reps=12, weeks=1, leads_per_day=20)
    assert not again.created
    assert again.leads == first.leads and again.users == first.users


def test_same_seed_same_company(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.db.session_scope() as s:
        seed_demo(s, clock, reps=6, weeks=1, leads_per_day=10, seed=7)
        names = [u.name for u in s.scalars(select(User).order_by(User.id))]
        leads = [
            (lead.institution, lead.source_channel, lead.status, lead.next_step)
            for lead in s.scalars(select(Lead).order_by(Lead.id))
        ]
        deals = [(d.name, d.amount) for d in s.scalars(select(Deal).order_by(Deal.id))]
    with runtime.db.session_scope() as s:
        for model in (Activity, Task, Lead, Deal, Contact, Customer):
            s.query(model).delete()
        s.query(Team).update({Team.lead_id: None})
        s.query(User).delete()
        s.query(Team).delete()
    with runtime.db.session_scope() as s:
        seed_demo(s, clock, reps=6, weeks=1, leads_per_day=10, seed=7)
        assert [u.name for u in s.scalars(select(User).order_by(User.id))] == names
        assert [
            (x.institution, x.source_channel, x.status, x.next_step)
            for x in s.scalars(select(Lead).order_by(Lead.id))
        ] == leads
        assert [(d.name, d.amount) for d in s.scalars(select(Deal).order_by(Deal.id))] == deals


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
        kinds = session.scalars(select(Activity.kind).where(Activity.deal_id == deal.id)).all()
        assert kinds == ["call"]  # the lead's first call moved along to the deal
    customers = {(c.region_key, c.name_key) for c in session.scalars(select(Customer))}
    for lead in leads:
        if lead.status == "new":  # any lead of a rep's day converts without meeting someone's customer
            assert (normalize_name(lead.region), normalize_name(lead.institution)) not in customers
    assert session.scalar(select(func.count()).select_from(Task).where(Task.status == "open"))
    contacted = [lead for lead in leads if lead.first_contact_at is not None and lead.owner_id is not None]
    calls = session.scalar(select(func.count()).select_from(Activity).where(Activity.kind == "call"))
    assert calls == len(contacted)


def test_cli_refuses_outside_demo_mode(runtime: Runtime) -> None:
    result = CliRunner().invoke(
        cli, ["demo", "seed"], obj=CliState(settings=runtime.settings, runtime=runtime)
    )
    assert result.exit_code != 0
    assert "SALESMESH_DEMO=1" in result.output
    with runtime.db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
