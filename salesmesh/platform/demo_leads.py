"""The demo company's lead history, written through the real services on a simulated clock.

Weeks of enquiries from the web form, the 400-number phone system and ad platforms, and one trade fair
whose contact list was imported: each lead is taken in by `intake_lead` at the moment it was received (a
`FrozenClock` moved lead by lead), so it is validated against the published md-lead form, de-duplicated,
routed by the published routing (decision and explanation recorded, owner notified, first-response SLA
deadline on the working calendar), and trade-fair leads from private clinics wait in the trade-fair pool.
Reps then claim pool leads (`claim_lead`), log their first calls (`log_activity`, which marks the lead
contacted and settles its SLA as met or late) and plan to-dos (`create_task`); the assignment notices of
days gone by are read (`mark_all_read`). Qualifying or disqualifying a lead has no service yet, so those
two statuses are set on the row. Everything is drawn from the caller's seeded random generator: the same
seed gives the same leads.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock, FrozenClock
from salesmesh.platform.models import User
from salesmesh.platform.notifications import mark_all_read
from salesmesh.workflows.activities import create_task, log_activity
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.models import Lead
from salesmesh.workflows.pools import claim_lead
from salesmesh.workflows.record_ui import end_of_day, work_timezone
from salesmesh.workflows.record_values import normalize_name

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
# Intake channel, its share of the daily enquiries, and the md-lead form's source option for it.
CHANNELS = [("web_form", 0.45), ("phone_system", 0.35), ("ad_platform", 0.20)]
FORM_CHANNELS = {"web_form": "website", "phone_system": "hotline", "ad_platform": "ad_platform"}
CAMPAIGNS = {
    "web_form": ["官网询价", "产品白皮书下载"],
    "phone_system": ["400 热线"],
    "ad_platform": ["百度推广-超声", "微信广告-监护仪"],
}
FAIR_CAMPAIGN = "医疗器械博览会"
FAIR_DAYS_AGO = 18  # the trade fair's contact list was imported then (sooner in a shorter history)
# Option codes of the shipped md-lead form, so demo leads validate under it.
PRODUCTS = ["imaging", "ultrasound", "patient_monitoring", "ivd", "surgical", "anesthesia"]
DEPARTMENTS = ["radiology", "ultrasound", "icu", "laboratory", "equipment", "emergency"]
CONTACT_ROLES = ["clinician", "department_head", "equipment_officer", "procurement"]
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
STATUSES = ["new", "contacted", "qualified", "converted", "disqualified"]
READ_BEFORE = timedelta(days=1)  # reps have read the assignment notices older than this
NEW_PER_REP = 1  # every rep's latest lead still waits for a first contact
SHOWCASE_AGE = timedelta(days=6)  # the first rep's deal has been in the pipeline at least this long


def person_name(rng: random.Random) -> str:
    """Return a Chinese full name."""
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _institution(rng: random.Random, region: str, *, fair: bool = False) -> tuple[str, str, str]:
    city = CITIES[region]
    kind = rng.random()
    if fair and kind < 0.8:  # trade-fair visitors: mostly private clinics and other institutions
        if kind < 0.55:
            name = rng.choice(["康宁", "博爱", "瑞和", "仁心", "美中", "和睦"])
            return f"{city}{name}民营医院", "secondary", "private_clinic"
        return f"{city}{rng.choice(['爱康', '美年', '瑞慈'])}体检中心", "ungraded", "other"
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


@dataclass
class Enquiry:
    """One lead to take in: what was submitted, when, through which channel, and what became of it."""

    channel: str
    payload: dict[str, Any]
    received: datetime
    campaign: str
    status: str  # the status the history gives it if routing hands it to a rep


@dataclass
class LeadHistory:
    """What the lead history made: the leads, the ones to convert (with when), and counts."""

    leads: list[Lead]
    converting: list[tuple[Lead, datetime]]
    counts: dict[str, int] = field(default_factory=dict)


def _status(rng: random.Random, age_days: float) -> str:
    """Draw what became of a lead of this age: recent ones are often still new, old ones rarely."""
    new = 8 if age_days < 1 else 2 if age_days < 2 else 0.05
    return rng.choices(
        STATUSES,
        weights=[new, 5, 3 if age_days > 7 else 1, 1.2 if age_days > 6 else 0, 1.5],
    )[0]


def _enquiry(
    rng: random.Random, received: datetime, now: datetime, index: int, taken: dict[str, set], *, fair: bool
) -> Enquiry:
    region = rng.choice(list(CITIES))
    inst, grade, inst_type = _institution(rng, region, fair=fair)
    channel = "import" if fair else rng.choices([c for c, _ in CHANNELS], weights=[w for _, w in CHANNELS])[0]
    status = _status(rng, (now - received).total_seconds() / 86400)
    if status in taken:
        # A new lead and a converted one never name the same institution, so a rep can convert any lead
        # of their day without running into a customer of someone else (customers are unique per region).
        other = taken["converted" if status == "new" else "new"]
        for _attempt in range(20):
            if (region, inst) not in other:
                break
            inst, grade, inst_type = _institution(rng, region, fair=fair)
        taken[status].add((region, inst))
    data: dict[str, Any] = {
        "institution_name": inst,
        "institution_grade": grade,
        "institution_type": inst_type,
        "region": region,
        "city": CITIES[region],
        "contact_name": person_name(rng),
        "department": rng.choice(DEPARTMENTS),
        "contact_role": rng.choice(CONTACT_ROLES),
        "phone": f"+861{rng.choice('3578')}{rng.randint(100000000, 999999999)}",
        "product_interest": sorted(rng.sample(PRODUCTS, k=rng.randint(1, 2))),
        "purchase_timeframe": rng.choice(TIMEFRAMES),
        "budget_status": rng.choice(BUDGETS),
        "tender_planned": False,
        "source_channel": "exhibition" if fair else FORM_CHANNELS[channel],
        "campaign": FAIR_CAMPAIGN if fair else rng.choice(CAMPAIGNS[channel]),
    }
    if rng.random() < 0.5:
        data["email"] = f"contact{index}@example.cn"
    return Enquiry(channel, data, received, data["campaign"], status)


def plan_enquiries(
    session: Session, clock: Clock, rng: random.Random, *, weeks: int, leads_per_day: int
) -> list[Enquiry]:
    """Draw the enquiries of the last `weeks` (working hours in the company's time zone), oldest first."""
    now = clock.now()
    tz = work_timezone(session)
    today = now.astimezone(tz).date()
    days = weeks * 7
    fair_day = today - timedelta(days=min(FAIR_DAYS_AGO, max(1, days // 2)))
    taken: dict[str, set] = {"new": set(), "converted": set()}
    enquiries: list[Enquiry] = []
    for back in range(days, -1, -1):
        day = today - timedelta(days=back)
        opening = datetime.combine(day, time(8, 0), tzinfo=tz)
        weekend = day.weekday() >= 5
        n = int(leads_per_day * (0.35 if weekend else 1.0) * rng.uniform(0.8, 1.2))
        moments = sorted(opening + timedelta(minutes=rng.randint(0, 13 * 60)) for _ in range(n))
        if day == fair_day:  # the fair's contact list, imported that morning
            fair_at = datetime.combine(day, time(10, 30), tzinfo=tz)
            moments += [fair_at] * max(6, leads_per_day // 2)
        for moment in sorted(moments):
            if moment > now - timedelta(minutes=5):
                continue  # not received yet
            fair = day == fair_day and moment.timetz() == time(10, 30, tzinfo=tz)
            # In UTC like every stored time (an audit event hashes its time as given).
            at = moment.astimezone(UTC)
            enquiries.append(_enquiry(rng, at, now, len(enquiries), taken, fair=fair))
    return enquiries


def take_in(
    session: Session, clock: Clock, enquiries: Sequence[Enquiry], people: Sequence[User]
) -> list[tuple[Lead, Enquiry]]:
    """Take every enquiry in through `intake_lead` at the moment it arrived; return the new leads."""
    sim = FrozenClock(enquiries[0].received if enquiries else clock.now())
    read_until = clock.now() - READ_BEFORE
    read = False
    taken: list[tuple[Lead, Enquiry]] = []
    for enquiry in enquiries:
        if not read and enquiry.received > read_until:
            for person in people:  # the notices of days gone by have been read
                mark_all_read(session, person, now=read_until)
            read = True
        sim.set(enquiry.received)
        result = intake_lead(
            session,
            channel=enquiry.channel,
            payload=enquiry.payload,
            clock=sim,
            received_at=enquiry.received,
            campaign=enquiry.campaign,
        )
        if result.created:
            taken.append((result.lead, enquiry))
    if not read:
        for person in people:
            mark_all_read(session, person, now=read_until)
    return taken


def claim_from_pool(
    session: Session,
    clock: Clock,
    rng: random.Random,
    pooled: Sequence[Lead],
    reps: Sequence[User],
) -> tuple[list[tuple[Lead, datetime]], int]:
    """Let reps claim about two thirds of the pool over the days after the fair; return (claimed, at)."""
    from salesmesh.workflows.pools import PoolError

    now = clock.now()
    plans: list[tuple[datetime, Lead, User]] = []
    for lead in pooled:
        age = now - lead.received_at
        if age < timedelta(days=2) or rng.random() > 0.65:
            continue
        at = lead.received_at + timedelta(hours=rng.uniform(2, min(240, age.total_seconds() / 3600 - 30)))
        plans.append((at, lead, rng.choice(list(reps))))
    sim = FrozenClock(now)
    claimed: list[tuple[Lead, datetime]] = []
    refused = 0
    for at, lead, rep in sorted(plans, key=lambda p: (p[0], p[1].id)):
        sim.set(at)
        try:
            claim_lead(session, rep, lead.id, clock=sim)
        except PoolError:  # a cap reached that day: the lead stays in the pool
            refused += 1
            continue
        session.refresh(lead)
        claimed.append((lead, at))
    return claimed, refused


def first_calls(
    session: Session,
    clock: Clock,
    rng: random.Random,
    calls: Sequence[tuple[Lead, datetime, str]],
    users: dict[int, User],
) -> int:
    """Log each lead's first call as its owner at `at`, planning a next step on recent ones."""
    now = clock.now()
    tz = work_timezone(session)
    today = now.astimezone(tz).date()
    for lead, at, status in calls:
        recent = status in ("contacted", "qualified") and now - lead.received_at < timedelta(days=10)
        due = end_of_day(today + timedelta(days=rng.randint(-3, 5)), tz) if recent else None
        log_activity(
            session,
            users[lead.owner_id],  # type: ignore[index]
            kind="call",
            clock=clock,
            lead_id=lead.id,
            occurred_at=at,
            outcome=rng.choice(OUTCOMES),
            next_step=rng.choice(NEXT_STEPS) if recent else None,
            next_step_due_at=due,
        )
        if status in ("qualified", "disqualified"):
            lead.status = status  # no service qualifies or disqualifies a lead yet
    session.flush()
    return len(calls)


def seed_leads(
    session: Session,
    clock: Clock,
    rng: random.Random,
    people: Sequence[User],
    *,
    weeks: int,
    leads_per_day: int,
) -> LeadHistory:
    """Take in the demo's enquiries, let reps claim from the pool and call, and plan their to-dos."""
    now = clock.now()
    users = {u.id: u for u in people}
    reps = [u for u in people if u.role == "rep"]
    enquiries = plan_enquiries(session, clock, rng, weeks=weeks, leads_per_day=leads_per_day)
    taken = take_in(session, clock, enquiries, people)
    pooled = [lead for lead, _e in taken if lead.status == "pooled"]
    claimed, refused = claim_from_pool(session, clock, rng, pooled, reps)
    # One claim nobody followed up: the pool takes it back and its claimer waits out the cooldown.
    unattended = claimed.pop(len(claimed) // 3) if len(claimed) > 3 else None

    calls: list[tuple[Lead, datetime, str]] = []
    converting: list[tuple[Lead, datetime]] = []
    for lead, at in claimed:
        calls.append((lead, min(now, at + timedelta(hours=rng.uniform(1, 20))), "contacted"))
    from_pool = {lead.id for lead in pooled}
    routed = [(lead, e) for lead, e in taken if lead.id not in from_pool and lead.owner_id is not None]
    for lead, enquiry in routed:
        if enquiry.status == "converted":
            convert_at = lead.received_at + timedelta(hours=rng.uniform(20, 96))
            if convert_at < now - timedelta(hours=6):
                converting.append((lead, convert_at))
            else:
                enquiry.status = "qualified"
    _showcase_conversion(routed, converting, reps[0] if reps else None, now)
    _keep_latest_new(routed, converting)
    for lead, enquiry in routed:
        if enquiry.status == "new":
            continue
        at = min(now, lead.received_at + timedelta(minutes=int(rng.lognormvariate(3.2, 1.3))))
        # A converting lead is contacted first; the deal history converts it later.
        calls.append((lead, at, "contacted" if enquiry.status == "converted" else enquiry.status))
    logged = first_calls(session, clock, rng, calls, users)
    tasks = _plan_todos(session, clock, rng, [lead for lead, _e in taken], users)
    return LeadHistory(
        [lead for lead, _e in taken],
        converting,
        {
            "leads": len(taken),
            "duplicates": len(enquiries) - len(taken),
            "pooled": len(pooled),
            "claims": len(claimed) + (unattended is not None),
            "claims_refused": refused,
            "calls": logged,
            "tasks": tasks,
        },
    )


def _showcase_conversion(
    routed: Sequence[tuple[Lead, Enquiry]],
    converting: list[tuple[Lead, datetime]],
    rep: User | None,
    now: datetime,
) -> None:
    """Make sure the first rep (the login the docs walk through) converted a lead over a week ago."""
    if rep is None or any(lead.owner_id == rep.id and at < now - SHOWCASE_AGE for lead, at in converting):
        return
    for lead, enquiry in routed:  # oldest first
        if lead.owner_id == rep.id and enquiry.status in ("contacted", "qualified"):
            at = lead.received_at + timedelta(days=2)
            if at < now - SHOWCASE_AGE:
                enquiry.status = "converted"
                converting.append((lead, at))
            return


def _keep_latest_new(routed: Sequence[tuple[Lead, Enquiry]], converting: Sequence[tuple[Lead, Any]]) -> None:
    """Leave every rep's latest leads uncontacted, so each has new leads waiting in "My day".

    Not ones naming an institution a converting lead names: a rep converts any lead of their day
    without running into someone else's customer (customers are unique per region and name).
    """
    converted = {(normalize_name(lead.region), normalize_name(lead.institution)) for lead, _at in converting}
    latest: dict[int, list[Enquiry]] = {}
    for lead, enquiry in reversed(routed):  # newest first
        mine = latest.setdefault(lead.owner_id, [])  # type: ignore[arg-type]
        if len(mine) >= NEW_PER_REP or enquiry.status == "converted":
            continue
        if (normalize_name(lead.region), normalize_name(lead.institution)) not in converted:
            enquiry.status = "new"
            mine.append(enquiry)


def _plan_todos(
    session: Session, clock: Clock, rng: random.Random, leads: Sequence[Lead], users: dict[int, User]
) -> int:
    """Two to-dos for each rep, on their most recent leads with a plan: some overdue, some due today."""
    tz = work_timezone(session)
    today = clock.now().astimezone(tz).date()
    planned: dict[int, list[Lead]] = {}
    for lead in leads:
        if lead.owner_id is not None and lead.status in ("contacted", "qualified") and lead.next_step:
            planned.setdefault(lead.owner_id, []).append(lead)
    count = 0
    for owner_id in sorted(planned):
        for lead in planned[owner_id][-2:]:
            create_task(
                session,
                users[owner_id],
                title=rng.choice(TASK_TITLES),
                clock=clock,
                lead_id=lead.id,
                due_at=end_of_day(today + timedelta(days=rng.randint(-2, 1)), tz),
            )
            count += 1
    return count
