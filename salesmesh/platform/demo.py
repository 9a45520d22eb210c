"""`salesmesh demo seed`: build the medical-device company of PRODUCT.md for demos and manual testing.

It installs the shipped template packs, then creates an admin, an ops person, 3 team leads and 52 reps
with realistic attributes (years of medical background, skills, seniority, regions, capacity) and weeks
of lead history from the web form, the 400-number phone system and ad platforms. Everything is drawn
from a seeded random generator, so the same seed gives the same company. Running it again on a seeded
database changes nothing and prints the logins again. Demo accounts exist only through this command.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.accounts import create_team, create_user, set_team_lead
from salesmesh.platform.audit import record_event
from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.clock import Clock
from salesmesh.platform.models import Team, User
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.models import Lead

PACKS_DIR = Path(__file__).resolve().parents[2] / "packs"
# The demo company is the medical-device distributor; the SaaS pack stays available to import.
DEMO_PACKS = ("medical-device-direct",)
DEMO_PASSWORD = "salesmesh-demo"
DEMO_DOMAIN = "demo.salesmesh.test"

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
PRODUCTS = ["ultrasound", "patient_monitor", "ventilator", "infusion_pump", "ivd_analyzer"]


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
            rng.choice(["tertiary_b", "secondary"]),
            "hospital",
        )
    if kind < 0.85:
        town = rng.choice(["东", "西", "南", "北", "新", "河", "山", "湖"]) + rng.choice(
            ["桥", "塘", "口", "坪", "湾", "集"]
        )
        return f"{city}{town}镇卫生院", "primary", "township_clinic"
    return f"{city}{rng.choice(['康宁', '博爱', '瑞和', '仁心'])}民营医院", "secondary", "private_hospital"


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

    start = now - timedelta(weeks=weeks)
    lead_count = 0
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
            first_contact = None
            if owner is not None and status != "new":
                first_contact = received + timedelta(minutes=int(rng.lognormvariate(3.2, 1.3)))
            contact_name = _name(rng)
            session.add(
                Lead(
                    name=f"{contact_name} · {inst}",
                    institution=inst,
                    institution_grade=grade,
                    region=region,
                    phone=f"+86 1{rng.choice('3578')}{rng.randint(100000000, 999999999)}",
                    email=None if rng.random() < 0.5 else f"contact{lead_count}@example.cn",
                    status=status,
                    source_channel=channel,
                    campaign=rng.choice(CAMPAIGNS[channel]),
                    owner_id=owner.id if owner else None,
                    team_id=owner.team_id if owner else None,
                    data={
                        "contact_name": contact_name,
                        "institution_type": inst_type,
                        "product_interest": rng.choice(PRODUCTS),
                        "department": rng.choice(["影像科", "ICU", "检验科", "设备科", "急诊科"]),
                    },
                    received_at=received,
                    assigned_at=received + timedelta(seconds=rng.randint(2, 30)) if owner else None,
                    first_contact_at=first_contact,
                    created_at=received,
                )
            )
            lead_count += 1
        if day % 7 == 6:
            session.flush()
    session.flush()
    record_event(
        session,
        at=now,
        actor_id=None,
        action="demo.seeded",
        payload={"seed": seed, "reps": reps, "weeks": weeks, "leads": lead_count},
    )
    return SeedReport(True, session.query(User).count(), session.query(Team).count(), lead_count, packs)


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
