"""`salesmesh demo seed`: build the medical-device company of PRODUCT.md for demos and manual testing.

It installs the shipped template packs, opens the lead form to the public, then creates an admin, an
ops person, 3 team leads and 52 reps with realistic attributes (years of medical background, skills,
seniority, regions, capacity) through the account service, and weeks of history through the real
services on a simulated clock: leads taken in and routed (`demo_leads`), deals converted and walked along
the locked pipeline (`demo_deals`), then what the periodic jobs would have done by now (missed first
responses escalated, lights advanced). `settle_demo` runs afterwards, once the seed is committed: it
fires the action-pack steps, pool checks and approval deadlines that came due, as the app's sweeper
would. Everything is drawn from a seeded random generator, so the same seed gives the same company.
Running it again on a seeded database changes nothing and prints the logins again. Demo accounts exist
only through this command; they share one password, hashed once.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform.accounts import create_team, create_user, set_team_lead
from salesmesh.platform.audit import record_event
from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.clock import Clock
from salesmesh.platform.demo_deals import seed_deals
from salesmesh.platform.demo_leads import person_name, seed_leads
from salesmesh.platform.jobs import load_task_modules
from salesmesh.platform.models import Team, User
from salesmesh.platform.passwords import hash_password
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.sweeper import sweep_once
from salesmesh.platform.timers import Timer
from salesmesh.workflows.lights import sweep_lights
from salesmesh.workflows.models import Lead
from salesmesh.workflows.public_form_models import PublicForm
from salesmesh.workflows.public_forms import enable_public_form
from salesmesh.workflows.sla_sweep import sweep_breaches

PACKS_DIR = Path(__file__).resolve().parents[2] / "packs"
# The demo company is the medical-device distributor; the SaaS pack stays available to import.
DEMO_PACKS = ("medical-device-direct",)
DEMO_PASSWORD = "salesmesh-demo"
DEMO_DOMAIN = "demo.salesmesh.test"
LEAD_FORM_KEY = "md-lead"

TEAMS = [
    (
        "key-account-east",
        {"en": "Key accounts · East China", "zh": "华东重点客户组"},
        ["shanghai", "jiangsu", "zhejiang"],
    ),
    (
        "key-account-north",
        {"en": "Key accounts · North China", "zh": "华北重点客户组"},
        ["beijing", "tianjin", "hebei"],
    ),
    (
        "inclusive-south",
        {"en": "Inclusive channel · South", "zh": "华南普惠渠道组"},
        ["guangdong", "guangxi", "fujian"],
    ),
]
SKILLS = ["imaging", "ultrasound", "patient_monitoring", "ivd", "surgical", "anesthesia"]


@dataclass
class SeedReport:
    created: bool
    users: int
    teams: int
    leads: int
    packs: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def install_demo_packs(session: Session, clock: Clock) -> list[str]:
    """Import the shipped demo packs (a no-op for packs already installed with the same checksum)."""
    from salesmesh.metamodel.packs import PackInvalid, apply_import, load_pack

    installed = []
    for key in DEMO_PACKS:
        try:
            apply_import(session, None, load_pack(PACKS_DIR / key), clock)
        except PackInvalid as exc:
            raise CliError(f"shipped pack {key} does not validate: {exc}") from None
        installed.append(key)
    return installed


def open_demo_web_form(session: Session, clock: Clock) -> None:
    """Open the md-lead form to the public at /f/md-lead, as the website's enquiry form (once)."""
    if session.scalar(select(PublicForm.id).where(PublicForm.form_key == LEAD_FORM_KEY)) is None:
        enable_public_form(session, LEAD_FORM_KEY, clock=clock, presets={"source_channel": "website"})


def seed_demo(
    session: Session,
    clock: Clock,
    *,
    seed: int = 42,
    reps: int = 52,
    weeks: int = 4,
    leads_per_day: int = 60,
) -> SeedReport:
    """Create the demo company unless it exists; return what is there."""
    load_task_modules()  # the stage-change receivers (action packs, lights) and every timer kind
    packs = install_demo_packs(session, clock)
    open_demo_web_form(session, clock)
    now = clock.now()
    admin_email = f"admin@{DEMO_DOMAIN}"
    if session.scalar(select(User.id).where(User.email == admin_email)) is not None:
        return SeedReport(
            False,
            session.query(User).count(),
            session.query(Team).count(),
            session.query(Lead).count(),
            packs,
        )

    rng = random.Random(seed)
    hashed = hash_password(DEMO_PASSWORD)  # one argon2id hash for every demo login (~0.1 s each)

    def user(email: str, name: str, role: str, **extra: Any) -> User:
        # Through the account service, so demo people get validated attributes (pinned to the
        # published rep_attributes version) and an audit trail like everyone else.
        return create_user(
            session,
            None,
            email=email,
            name=name,
            role=role,
            password=DEMO_PASSWORD,
            password_hash=hashed,
            clock=clock,
            **extra,
        )

    user(admin_email, "Admin 系统管理员", "admin")
    user(f"ops@{DEMO_DOMAIN}", "孙悦 (Ops)", "ops", locale="zh")
    teams: list[tuple[Team, list[str]]] = []
    for i, (key, name, regions) in enumerate(TEAMS, start=1):
        team = create_team(session, None, key=key, name=name, clock=clock)
        lead_user = user(
            f"lead{i}@{DEMO_DOMAIN}",
            f"{person_name(rng)} (组长)",
            "lead",
            team_id=team.id,
            attributes={"years_medical": rng.randint(8, 15), "seniority": "senior", "regions": regions},
        )
        set_team_lead(session, None, team.id, lead_user.id, clock=clock)
        teams.append((team, regions))

    for i in range(1, reps + 1):
        team, regions = teams[(i - 1) % len(teams)]
        years = max(0, int(rng.gauss(4.5, 3.2)))
        seniority = "junior" if years < 2 else "intermediate" if years < 5 else "senior"
        attrs = {
            "years_medical": years,
            "seniority": seniority,
            "skills": rng.sample(SKILLS, k=rng.randint(1, 3)),
            "regions": rng.sample(regions, k=rng.randint(1, 2)),
            "key_account_certified": years >= 5 and rng.random() < 0.7,
        }
        user(
            f"rep{i}@{DEMO_DOMAIN}",
            person_name(rng),
            "rep",
            team_id=team.id,
            attributes=attrs,
            daily_capacity=rng.choice([6, 8, 10, 12]),
        )

    people = list(session.scalars(select(User).order_by(User.id)))
    users = {u.id: u for u in people}
    history = seed_leads(session, clock, rng, people, weeks=weeks, leads_per_day=leads_per_day)
    deals = seed_deals(session, clock, rng, history.converting, users)
    # What the periodic jobs would have done by now: missed first responses, lights that time changed.
    breaches = 0
    while True:
        swept = sweep_breaches(session, clock=clock)
        breaches += swept.handled
        if not swept.more:
            break
    while sweep_lights(session, now=now).more:
        pass
    counts = {**history.counts, **deals, "sla_breaches": breaches}
    record_event(
        session,
        at=now,
        actor_id=None,
        action="demo.seeded",
        payload={"seed": seed, "reps": reps, "weeks": weeks, **counts},
    )
    return SeedReport(
        True, session.query(User).count(), session.query(Team).count(), len(history.leads), packs, counts
    )


@dataclass
class Settled:
    """What `settle_demo` ran: timers fired, and how many of them failed for good."""

    fired: int
    failed: int


def settle_demo(runtime: Runtime) -> Settled:
    """Run the action-pack steps, pool checks and approval deadlines now due; return what ran.

    The seeded history scheduled them on the durable timers at moments in the past; the running app's
    sweeper would fire them at start-up. Firing them here, after the seed committed, makes the first page
    a visitor opens show their reminders, tasks and escalations. Steps that cannot run (a survey for a
    contact without an e-mail address) fail as they would in the app and wait on the failed-actions page;
    the sweeper's log of each is quietened here, the count is reported instead.
    """
    timers_log = logging.getLogger("salesmesh.timers")
    level = timers_log.level
    timers_log.setLevel(logging.CRITICAL)
    try:
        with runtime.db.session_scope() as session:
            failed_before = session.scalar(select(func.count()).where(Timer.status == "failed")) or 0
        total = 0
        while (ran := sweep_once(runtime, owner="demo-seed")) > 0:
            total += ran
    finally:
        timers_log.setLevel(level)
    with runtime.db.session_scope() as session:  # tasks and reminders moved lights: settle those too
        while sweep_lights(session, now=runtime.clock.now()).more:
            pass
        failed = session.scalar(select(func.count()).where(Timer.status == "failed")) or 0
    return Settled(total, failed - failed_before)


@click.group("demo")
def demo_group() -> None:
    """Demo data (demo mode only)."""


@demo_group.command("seed")
@click.option(
    "--seed", default=42, show_default=True, help="Random seed: the same seed builds the same company."
)
@click.option("--reps", default=52, show_default=True, type=click.IntRange(3, 500))
@click.option("--weeks", default=4, show_default=True, type=click.IntRange(1, 52))
@pass_runtime
def demo_seed(rt: Runtime, seed: int, reps: int, weeks: int) -> None:
    """Install the shipped packs and build the demo company, then print the logins."""
    if not rt.settings.demo_mode:
        raise CliError(
            "demo seed runs only with SALESMESH_DEMO=1 (it creates accounts with a known password)"
        )
    with rt.db.session_scope() as session:
        report = seed_demo(session, rt.clock, seed=seed, reps=reps, weeks=weeks)
    settled = settle_demo(rt)
    verb = "created" if report.created else "already there"
    click.echo(
        f"demo company {verb}: {report.users} people in {report.teams} teams, {report.leads} leads; "
        f"packs: {', '.join(report.packs)}"
    )
    if report.created:
        c = report.counts
        click.echo(
            f"  {c.get('deals', 0)} deals ({c.get('signed', 0)} signed, {c.get('lost', 0)} lost), "
            f"{c.get('pooled', 0)} trade-fair leads pooled ({c.get('claims', 0)} claimed), "
            f"{c.get('sla_breaches', 0)} first responses missed, {settled.fired} action-pack steps and "
            f"checks run ({settled.failed} failed: see Failed actions)"
        )
    click.echo("")
    url = rt.settings.base_url or "http://127.0.0.1:5000"
    click.echo(f"  Open {url} and sign in (password for every demo login: {DEMO_PASSWORD})")
    for who, email in (
        ("admin", f"admin@{DEMO_DOMAIN}"),
        ("ops", f"ops@{DEMO_DOMAIN}"),
        ("team lead", f"lead1@{DEMO_DOMAIN}"),
        ("rep", f"rep1@{DEMO_DOMAIN}"),
    ):
        click.echo(f"    {who:<10} {email}")
