"""`salesmesh demo seed`: build the medical-device company of PRODUCT.md for demos and manual testing.

It installs the shipped template packs, then creates an admin, an ops person, 3 team leads and 52 reps
with realistic attributes (years of medical background, skills, seniority, regions, capacity) and weeks
of lead history from the web form, the 400-number phone system and ad platforms: leads filled in under
the published md-lead form, first calls and next steps, tasks, and customers, contacts and deals made
from the converted leads through the conversion service. Everything is drawn
from a seeded random generator, so the same seed gives the same company. Running it again on a seeded
database changes nothing and prints the logins again. Demo accounts exist only through this command.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.versions import get_published
from salesmesh.platform.accounts import create_team, create_user, set_team_lead
from salesmesh.platform.audit import record_event
from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.clock import Clock
from salesmesh.platform.models import Team, User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.conversion import convert_lead
from salesmesh.workflows.lights import refresh_light
from salesmesh.workflows.models import Activity, Lead, Task
from salesmesh.workflows.public_form_models import PublicForm
from salesmesh.workflows.public_forms import enable_public_form
from salesmesh.workflows.record_ui import end_of_day, work_timezone
from salesmesh.workflows.records import find_duplicate_customer

PACKS_DIR = Path(__file__).resolve().parents[2] / "packs"
# The demo company is the medical-device distributor; the SaaS pack stays available to import.
DEMO_PACKS = ("medical-device-direct",)
DEMO_PASSWORD = "salesmesh-demo"
DEMO_DOMAIN = "demo.salesmesh.test"
LEAD_FORM_KEY = "md-lead"
DEMO_PIPELINE = "md-sales"

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "晨",
    "欣怡",
    "子涵",
    "浩然",
    "宇轩",
    "思远",
    "梓萱",
    "一鸣",
    "嘉怡",
]
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
CITIES = {
    "shanghai": "上海",
    "jiangsu": "南京",
    "zhejiang": "杭州",
    "beijing": "北京",
    "tianjin": "天津",
    "hebei": "石家庄",
    "guangdong": "广州",
    "guangxi": "南宁",
    "fujian": "福州",
}
CHANNELS = [("web_form", 0.45), ("phone_system", 0.35), ("ad_platform", 0.20)]
CAMPAIGNS = {
    "web_form": ["官网询价", "产品白皮书下载"],
    "phone_system": ["400 热线"],
    "ad_platform": ["百度推广-超声", "微信广告-监护仪", "医疗器械博览会"],
}
# Option codes of the shipped md-lead / md-deal forms, so demo records validate under them.
PRODUCTS = ["imaging", "ultrasound", "patient_monitoring", "ivd", "surgical", "anesthesia"]
PRODUCT_NAMES = {
    "imaging": "医学影像",
    "ultrasound": "超声诊断",
    "patient_monitoring": "监护设备",
    "ivd": "体外诊断",
    "surgical": "手术设备",
    "anesthesia": "麻醉与呼吸",
}
DEPARTMENTS = ["radiology", "ultrasound", "icu", "laboratory", "equipment", "emergency"]
CONTACT_ROLES = ["clinician", "department_head", "equipment_officer", "procurement"]
FORM_CHANNELS = {"web_form": "website", "phone_system": "hotline", "ad_platform": "ad_platform"}
TIMEFRAMES = ["within_3_months", "3_to_6_months", "6_to_12_months", "unknown"]
BUDGETS = ["approved", "applying", "none", "unknown"]
OUTCOMES = ["reached", "interested", "call_back", "no_answer"]
NEXT_STEPS = [
    "发送产品白皮书和案例",
    "约科室主任做产品演示",
    "确认预算和采购流程",
    "回电确认试用需求",
    "发送报价单",
]
TASK_TITLES = ["准备方案演示材料", "整理技术参数对比表", "跟进设备科采购计划", "预约院内试用"]


@dataclass
class SeedReport:
    created: bool
    users: int
    teams: int
    leads: int
    packs: list[str]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _institution(rng: random.Random, region: str) -> tuple[str, str, str]:
    city = CITIES[region]
    kind = rng.random()
    if kind < 0.3:
        return f"{city}市第{rng.randint(1, 9)}人民医院", "tertiary_a", "hospital"
    if kind < 0.55:
        return (
            f"{city}{rng.choice(['中医院', '妇幼保健院', '骨科医院', '肿瘤医院'])}",
            rng.choice(["tertiary", "secondary_a"]),
            "hospital",
        )
    if kind < 0.85:
        town = rng.choice(["东", "西", "南", "北", "新", "河", "山", "湖"]) + rng.choice(
            ["桥", "塘", "口", "坪", "湾", "集"]
        )
        return f"{city}{town}镇卫生院", "primary", "township_health_center"
    return f"{city}{rng.choice(['康宁', '博爱', '瑞和', '仁心'])}民营医院", "secondary", "private_clinic"


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
    weeks: int = 6,
    leads_per_day: int = 60,
) -> SeedReport:
    """Create the demo company unless it exists; return what is there."""
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

    def user(email: str, name: str, role: str, **extra: Any) -> User:
        # Through the account service, so demo people get validated attributes (pinned to the
        # published rep_attributes version) and an audit trail like everyone else.
        return create_user(
            session, None, email=email, name=name, role=role, password=DEMO_PASSWORD, clock=clock, **extra
        )

    user(admin_email, "Admin 系统管理员", "admin")
    user(f"ops@{DEMO_DOMAIN}", "孙悦 (Ops)", "ops", locale="zh")
    teams: list[tuple[Team, list[str]]] = []
    for i, (key, name, regions) in enumerate(TEAMS, start=1):
        team = create_team(session, None, key=key, name=name, clock=clock)
        lead_user = user(
            f"lead{i}@{DEMO_DOMAIN}",
            f"{_name(rng)} (组长)",
            "lead",
            team_id=team.id,
            attributes={"years_medical": rng.randint(8, 15), "seniority": "senior", "regions": regions},
        )
        set_team_lead(session, None, team.id, lead_user.id, clock=clock)
        teams.append((team, regions))

    rep_rows: list[tuple[User, list[str]]] = []
    for i in range(1, reps + 1):
        team, regions = teams[(i - 1) % len(teams)]
        years = max(0, int(rng.gauss(4.5, 3.2)))
        seniority = "junior" if years < 2 else "intermediate" if years < 5 else "senior"
        my_regions = rng.sample(regions, k=rng.randint(1, 2))
        attrs = {
            "years_medical": years,
            "seniority": seniority,
            "skills": rng.sample(SKILLS, k=rng.randint(1, 3)),
            "regions": my_regions,
            "key_account_certified": years >= 5 and rng.random() < 0.7,
        }
        u = user(
            f"rep{i}@{DEMO_DOMAIN}",
            _name(rng),
            "rep",
            team_id=team.id,
            attributes=attrs,
            daily_capacity=rng.choice([6, 8, 10, 12]),
        )
        rep_rows.append((u, my_regions))

    by_region: dict[str, list[User]] = {}
    for u, regs in rep_rows:
        for r in regs:
            by_region.setdefault(r, []).append(u)

    lead_form = get_published(session, "form", LEAD_FORM_KEY)
    start = now - timedelta(weeks=weeks)
    leads: list[Lead] = []
    # A new lead and a converted one never name the same institution, so a rep can convert any lead of
    # their day without running into a customer of someone else (customers are unique per region).
    taken: dict[str, set[tuple[str, str]]] = {"new": set(), "converted": set()}
    days = weeks * 7
    for day in range(days):
        day_start = start + timedelta(days=day)
        n = int(leads_per_day * (0.35 if day_start.weekday() >= 5 else 1.0) * rng.uniform(0.8, 1.2))
        for _ in range(n):
            region = rng.choice(list(CITIES))
            inst, grade, inst_type = _institution(rng, region)
            channel = rng.choices([c for c, _ in CHANNELS], weights=[w for _, w in CHANNELS])[0]
            received = day_start + timedelta(minutes=rng.randint(8 * 60, 20 * 60))
            age_days = (now - received).days
            candidates = by_region.get(region) or [u for u, _ in rep_rows]
            if grade == "tertiary_a":
                senior = [u for u in candidates if u.attributes.get("years_medical", 0) >= 5]
                candidates = senior or candidates
            owner = rng.choice(candidates) if rng.random() < 0.93 else None
            status = (
                "pooled"
                if owner is None
                else rng.choices(
                    ["new", "contacted", "qualified", "converted", "disqualified"],
                    weights=[
                        1 if age_days > 3 else 6,
                        5,
                        3 if age_days > 7 else 1,
                        2 if age_days > 14 else 0.2,
                        1.5,
                    ],
                )[0]
            )
            if status in taken:
                other = taken["converted" if status == "new" else "new"]
                for _attempt in range(20):
                    if (region, inst) not in other:
                        break
                    inst, grade, inst_type = _institution(rng, region)
                taken[status].add((region, inst))
            first_contact = None
            if owner is not None and status != "new":
                first_contact = min(now, received + timedelta(minutes=int(rng.lognormvariate(3.2, 1.3))))
            contact_name = _name(rng)
            phone = f"+861{rng.choice('3578')}{rng.randint(100000000, 999999999)}"
            email = None if rng.random() < 0.5 else f"contact{len(leads)}@example.cn"
            campaign = rng.choice(CAMPAIGNS[channel])
            data: dict[str, Any] = {
                "institution_name": inst,
                "institution_grade": grade,
                "institution_type": inst_type,
                "region": region,
                "city": CITIES[region],
                "contact_name": contact_name,
                "department": rng.choice(DEPARTMENTS),
                "contact_role": rng.choice(CONTACT_ROLES),
                "phone": phone,
                "product_interest": sorted(rng.sample(PRODUCTS, k=rng.randint(1, 2))),
                "purchase_timeframe": rng.choice(TIMEFRAMES),
                "budget_status": rng.choice(BUDGETS),
                "tender_planned": False,
                "source_channel": FORM_CHANNELS[channel],
                "campaign": campaign,
            }
            if email:
                data["email"] = email
            lead = Lead(
                name=f"{contact_name} · {inst}",
                institution=inst,
                institution_grade=grade,
                region=region,
                phone=phone,
                email=email,
                status=status,
                source_channel=channel,
                campaign=campaign,
                owner_id=owner.id if owner else None,
                team_id=owner.team_id if owner else None,
                form_version_id=lead_form.id if lead_form is not None else None,
                data=data,
                received_at=received,
                assigned_at=received + timedelta(seconds=rng.randint(2, 30)) if owner else None,
                first_contact_at=first_contact,
                created_at=received,
            )
            session.add(lead)
            leads.append(lead)
        if day % 7 == 6:
            session.flush()
    session.flush()
    lead_count = len(leads)
    history = _seed_history(session, clock, rng, leads)
    record_event(
        session,
        at=now,
        actor_id=None,
        action="demo.seeded",
        payload={"seed": seed, "reps": reps, "weeks": weeks, "leads": lead_count, **history},
    )
    return SeedReport(True, session.query(User).count(), session.query(Team).count(), lead_count, packs)


def _seed_history(session: Session, clock: Clock, rng: random.Random, leads: list[Lead]) -> dict[str, int]:
    """Give the demo leads a past: first calls, next steps, tasks, and customers/deals for converted ones.

    Calls and tasks are written as rows (like the leads); conversions go through `convert_lead`, so
    customers, contacts and deals are validated, audited and carry the lead's history.
    """
    now = clock.now()
    tz = work_timezone(session)
    today = now.astimezone(tz).date()

    def due(low: int, high: int) -> datetime:
        return end_of_day(today + timedelta(days=rng.randint(low, high)), tz)

    calls = 0
    for lead in leads:
        if lead.owner_id is None or lead.first_contact_at is None:
            continue
        recent = lead.status in ("contacted", "qualified") and now - lead.received_at < timedelta(days=10)
        call = Activity(
            kind="call",
            subject_type="lead",
            lead_id=lead.id,
            occurred_at=lead.first_contact_at,
            actor_id=lead.owner_id,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            outcome=rng.choice(OUTCOMES),
            next_step=rng.choice(NEXT_STEPS) if recent else None,
            next_step_due_at=due(-3, 5) if recent else None,
            data={},
            created_at=lead.first_contact_at,
        )
        session.add(call)
        lead.last_activity_at = lead.first_contact_at
        lead.next_step, lead.next_step_due_at = call.next_step, call.next_step_due_at
        calls += 1
    converting = [lead for lead in leads if lead.status == "converted"]
    for lead in converting:
        lead.status = "qualified"  # converted below, through the service
    session.flush()

    for lead in converting:
        existing = find_duplicate_customer(session, lead.institution or "", lead.region)
        product = (lead.data.get("product_interest") or [rng.choice(PRODUCTS)])[0]
        result = convert_lead(
            session,
            None,
            lead.id,
            deal={
                "pipeline_key": DEMO_PIPELINE,
                "name": f"{lead.institution} · {PRODUCT_NAMES[product]}",
                "amount": rng.randrange(200_000, 3_000_000, 10_000),
                "expected_close": today + timedelta(days=rng.randint(20, 120)),
                "data": {"product_line": product},
            },
            customer_id=existing.id if existing is not None else None,
            contact={"role": lead.data.get("contact_role")},
            clock=clock,
        )
        deal = result.deal
        deal.next_step, deal.next_step_due_at = rng.choice(NEXT_STEPS), due(-6, 6)
        refresh_light(session, deal, now=now)
    session.flush()

    # Two to-dos for each rep, on their most recent leads with a plan: some overdue, some due today.
    planned: dict[int, list[Lead]] = {}
    for lead in leads:
        if lead.owner_id is not None and lead.status in ("contacted", "qualified") and lead.next_step:
            planned.setdefault(lead.owner_id, []).append(lead)
    tasks = 0
    for owner_id in sorted(planned):
        for lead in planned[owner_id][-2:]:
            session.add(
                Task(
                    title=rng.choice(TASK_TITLES),
                    subject_type="lead",
                    lead_id=lead.id,
                    assignee_id=owner_id,
                    team_id=lead.team_id,
                    created_by_id=owner_id,
                    status="open",
                    due_at=due(-2, 1),
                    data={},
                    created_at=now,
                )
            )
            tasks += 1
    session.flush()
    return {"calls": calls, "conversions": len(converting), "tasks": tasks}


@click.group("demo")
def demo_group() -> None:
    """Demo data (demo mode only)."""


@demo_group.command("seed")
@click.option(
    "--seed", default=42, show_default=True, help="Random seed: the same seed builds the same company."
)
@click.option("--reps", default=52, show_default=True, type=click.IntRange(3, 500))
@click.option("--weeks", default=6, show_default=True, type=click.IntRange(1, 52))
@pass_runtime
def demo_seed(rt: Runtime, seed: int, reps: int, weeks: int) -> None:
    """Install the shipped packs and build the demo company, then print the logins."""
    if not rt.settings.demo_mode:
        raise CliError(
            "demo seed runs only with SALESMESH_DEMO=1 (it creates accounts with a known password)"
        )
    with rt.db.session_scope() as session:
        report = seed_demo(session, rt.clock, seed=seed, reps=reps, weeks=weeks)
    verb = "created" if report.created else "already there"
    click.echo(
        f"demo company {verb}: {report.users} people in {report.teams} teams, {report.leads} leads; "
        f"packs: {', '.join(report.packs)}"
    )
    click.echo("")
    click.echo(f"  Open http://127.0.0.1:5000 and sign in (password for every demo login: {DEMO_PASSWORD})")
    for who, email in (
        ("admin", f"admin@{DEMO_DOMAIN}"),
        ("ops", f"ops@{DEMO_DOMAIN}"),
        ("team lead", f"lead1@{DEMO_DOMAIN}"),
        ("rep", f"rep1@{DEMO_DOMAIN}"),
    ):
        click.echo(f"    {who:<10} {email}")
