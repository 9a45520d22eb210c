"""The demo company's deals, walked along the locked md-sales pipeline through the real services.

Each converting lead becomes a customer, contact and deal with `convert_lead` at the moment it converted
(a `FrozenClock` moved deal by deal), so the deal enters "first contact" and its action pack is scheduled
by the stage-change signal. Deals then go as far as their history allows: in every stage the owner logs
the interactions that evidence its key nodes (`log_activity`, `complete_key_node`), fills the fields its
exit criteria ask for (`update_deal`) and moves on (`move_deal`), so stage changes, timelines, audit
events and action-pack timers are what a rep's clicks would leave. A few deals are signed or lost. The
last interaction of an open deal plans its next step, due in the future (a green light), a day or two
late (yellow) or days late (red); the light itself is computed by the lights service. The first rep
gets a showcase: a deal in "solution demo" for three and a half days (its action-pack reminder, task and
survey are due) and a custom objection response waiting for the team lead's approval; a teammate's
custom response was approved earlier.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock, FrozenClock
from salesmesh.platform.models import User
from salesmesh.workflows.activities import log_activity
from salesmesh.workflows.approvals import decide_approval
from salesmesh.workflows.conversion import convert_lead
from salesmesh.workflows.models import Deal, Lead
from salesmesh.workflows.objections import log_objection
from salesmesh.workflows.pipeline_specs import Pipeline, Stage, pipeline_for
from salesmesh.workflows.pipelines import complete_key_node, move_deal
from salesmesh.workflows.records import find_duplicate_customer, update_deal

PIPELINE = "md-sales"
PRODUCT_NAMES = {
    "imaging": "医学影像",
    "ultrasound": "超声诊断",
    "patient_monitoring": "监护设备",
    "ivd": "体外诊断",
    "surgical": "手术设备",
    "anesthesia": "麻醉与呼吸",
}
# How far along the open path a deal got (0 = still in first contact), and how often; "lost" aside.
DEPTH_WEIGHTS = [4.0, 3.0, 2.5, 1.2, 1.0, 0.7]
LOST_SHARE = 0.07
LIGHTS = [("green", 0.5), ("yellow", 0.28), ("red", 0.22)]
SUMMARIES = {
    "call": "电话沟通项目进展",
    "visit": "拜访科室，了解使用需求",
    "meeting": "与科室主任和设备科开会",
    "email": "邮件发送资料并确认安排",
    "material_sent": "发送定制技术参数表和同类医院案例",
}
NEXT_STEPS = ["约设备科确认采购流程", "发送报价单", "安排院内演示", "跟进试用评估结果", "确认招标时间"]
CUSTOM_RESPONSE = "可为该院提供首年免费维保并延长质保一年，以抵消与进口品牌的价差。"
APPROVED_RESPONSE = "同意先安排两周院内试用，试用期间由我方工程师驻场支持。"
SHOWCASE_DEMO_HOURS = 84  # the showcase deal entered "solution demo" this long ago (its steps are due)


@dataclass
class Journey:
    """Where a deal goes: the stages it passes (first is where it starts), when, and how it ends."""

    stages: list[str]
    entries: list[datetime]
    closing: str | None  # "signed", "lost" or None (stays open)
    light: str


def _field_values(deal: Deal, contact_name: str, rng: random.Random, today: date) -> dict[str, Any]:
    """Values for the fields the md-sales exit criteria ask for."""
    amount = float(deal.amount or rng.randrange(200_000, 3_000_000, 10_000))
    return {
        "estimated_amount": amount,
        "decision_maker": contact_name,
        "trial_start_date": (today - timedelta(days=rng.randint(5, 20))).isoformat(),
        "trial_result": rng.choice(["positive", "positive", "neutral"]),
        "amount": amount,
        "expected_close_date": (today + timedelta(days=rng.randint(10, 60))).isoformat(),
        "budget_approved": True,
    }


class DealWalker:
    """Walks deals along the pipeline for the demo, one service call at a time, on its own clock."""

    def __init__(self, session: Session, clock: Clock, rng: random.Random, users: dict[int, User]) -> None:
        self.session, self.rng, self.users = session, rng, users
        self.now = clock.now()
        self.sim = FrozenClock(self.now)
        self.path: list[str] = []
        self.pipeline: Pipeline | None = None
        self.counts = {"deals": 0, "stage_moves": 0, "activities": 0, "signed": 0, "lost": 0}

    def _at(self, when: datetime) -> None:
        self.sim.set(min(when, self.now))

    def _log(self, owner: User, deal: Deal, kind: str, at: datetime, **extra: Any) -> None:
        self._at(at)
        log_activity(
            self.session,
            owner,
            kind=kind,
            clock=self.sim,
            deal_id=deal.id,
            summary=SUMMARIES.get(kind, SUMMARIES["call"]),
            **extra,
        )
        self.counts["activities"] += 1

    def convert(self, lead: Lead, at: datetime) -> Deal:
        """Convert the lead at `at` (into the existing customer of its institution, if there is one)."""
        self._at(at)
        existing = find_duplicate_customer(self.session, lead.institution or "", lead.region)
        product = (lead.data.get("product_interest") or ["ultrasound"])[0]
        result = convert_lead(
            self.session,
            None,
            lead.id,
            deal={
                "pipeline_key": PIPELINE,
                "name": f"{lead.institution} · {PRODUCT_NAMES[product]}",
                "amount": self.rng.randrange(200_000, 3_000_000, 10_000),
                "expected_close": (at + timedelta(days=self.rng.randint(30, 120))).date(),
                "data": {"product_line": product},
            },
            customer_id=existing.id if existing is not None else None,
            contact={"role": lead.data.get("contact_role")},
            clock=self.sim,
        )
        self.counts["deals"] += 1
        if self.pipeline is None:
            self.pipeline = pipeline_for(self.session, result.deal.pipeline_version_id)
            self.path = [s.key for s in self.pipeline.stages if s.outcome != "lost"]
        return result.deal

    def plan(self, converted_at: datetime) -> Journey:
        """Draw how far a deal converted at `converted_at` got, when it entered each stage, its light."""
        rng = self.rng
        open_path = self.path[:-1]  # the won stage closes the path
        depth = rng.choices(range(len(DEPTH_WEIGHTS)), weights=DEPTH_WEIGHTS)[0]
        span = (self.now - converted_at).total_seconds() / 86400
        depth = min(depth, int(span // 2))  # about two days a stage at the least
        closing = None
        if depth == len(open_path):
            closing = "signed"
        elif rng.random() < LOST_SHARE:
            closing = "lost"
        stages = open_path[: depth + 1]
        reached = len(stages) - 1
        last = converted_at + timedelta(days=span * rng.uniform(0.3, 0.85)) if reached else converted_at
        step = (last - converted_at) / reached if reached else timedelta(0)
        entries = [converted_at + step * i for i in range(len(stages))]
        light = rng.choices([name for name, _ in LIGHTS], weights=[w for _, w in LIGHTS])[0]
        return Journey(stages, entries, closing, light)

    def walk(self, deal: Deal, journey: Journey, contact_name: str) -> None:
        """Take the deal through the journey's stages, then close it or plan its next step."""
        assert self.pipeline is not None
        owner = self.users[deal.owner_id]  # type: ignore[index]
        values = _field_values(deal, contact_name, self.rng, self.now.date())
        final = len(journey.stages) - 1
        for index, key in enumerate(journey.stages):
            entered = journey.entries[index]
            if index == final:
                if journey.closing != "signed":
                    break  # the stage the deal stays in (or is lost from)
                leaving = min(self.now, entered + timedelta(days=self.rng.uniform(1, 3)))
                target = self.path[-1]
            else:
                leaving, target = journey.entries[index + 1], journey.stages[index + 1]
            self._evidence(owner, deal, self.pipeline.by_key[key], entered, leaving, values)
            self._at(leaving)
            move_deal(self.session, owner, deal.id, target, clock=self.sim, from_stage=key)
            self.counts["stage_moves"] += 1
        if journey.closing == "signed":
            self.counts["signed"] += 1
            return
        entered = journey.entries[-1]
        if journey.closing == "lost":
            self._log(owner, deal, "call", entered + timedelta(hours=30), outcome="not_interested")
            self._at(entered + timedelta(hours=31))
            move_deal(self.session, owner, deal.id, "lost", clock=self.sim, from_stage=deal.stage_key)
            self.counts["stage_moves"] += 1
            self.counts["lost"] += 1
            return
        self._last_touch(owner, deal, entered, journey.light)

    def _evidence(
        self,
        owner: User,
        deal: Deal,
        stage: Stage,
        entered: datetime,
        leaving: datetime | None,
        values: dict[str, Any],
    ) -> None:
        """Log what the stage's exit criteria ask for, tick its key nodes and fill its fields."""
        end = leaving or self.now
        gap = (end - entered) / (len(stage.key_nodes) + 3)
        at = entered + gap
        logged: set[str] = set()
        for required in stage.exit.required_activities:
            for _n in range(required.min_count):
                self._log(owner, deal, required.activity_type, at)
                logged.add(required.activity_type)
                at += gap / 4
        nodes = [n for n in stage.key_nodes if n.required]
        for node in nodes:
            if not logged.intersection(node.activity_types):
                # One interaction may evidence several nodes (a meeting: the demo and the Q&A).
                allowed = [
                    k
                    for k in node.activity_types
                    if stage.preset_actions is None or k in stage.preset_actions
                ]
                kind = max(allowed, key=lambda k: sum(k in n.activity_types for n in nodes))
                self._log(owner, deal, kind, at)
                logged.add(kind)
                at += gap
            complete_key_node(self.session, owner, deal.id, node.key, clock=self.sim)
        wanted = {k: values[k] for k in stage.exit.required_fields if k in values and k not in deal.data}
        if stage.exit.condition is not None:  # budget approved / trial judged: the fields it reads
            wanted.update({k: values[k] for k in ("budget_approved", "trial_result") if k not in deal.data})
        if wanted:
            self._at(at)
            update_deal(self.session, owner, deal.id, clock=self.sim, data={**deal.data, **wanted})

    def _last_touch(self, owner: User, deal: Deal, entered: datetime, light: str) -> None:
        """Log the deal's latest interaction, planning a next step due so that the light is `light`."""
        rng, now = self.rng, self.now
        if light == "green":
            at, due = now - timedelta(hours=rng.uniform(2, 30)), now + timedelta(days=rng.uniform(1, 6))
        elif light == "yellow":
            due = now - timedelta(days=rng.uniform(1.2, 2.5))
            at = due - timedelta(days=rng.uniform(1, 3))
        else:
            due = now - timedelta(days=rng.uniform(5, 9))
            at = due - timedelta(days=rng.uniform(1, 3))
        at = max(at, entered + timedelta(hours=1))
        self._log(
            owner,
            deal,
            "call",
            at,
            outcome="interested",
            next_step=rng.choice(NEXT_STEPS),
            next_step_due_at=due,
        )


def _showcase(
    walker: DealWalker, converting: list[tuple[Lead, datetime]], owner: User
) -> tuple[Lead, datetime] | None:
    """Take the owner's oldest converting lead out of the list for the showcase deal (if they have one)."""
    now = walker.now
    mine = [
        (lead, at)
        for lead, at in converting
        if lead.owner_id == owner.id and at < now - timedelta(hours=SHOWCASE_DEMO_HOURS + 48)
    ]
    if not mine:
        return None
    chosen = min(mine, key=lambda pair: pair[1])
    converting.remove(chosen)
    return chosen


def seed_deals(
    session: Session,
    clock: Clock,
    rng: random.Random,
    converting: Sequence[tuple[Lead, datetime]],
    users: dict[int, User],
) -> dict[str, int]:
    """Convert the leads and walk their deals; return counts of what was done."""
    walker = DealWalker(session, clock, rng, users)
    pending = sorted(converting, key=lambda pair: (pair[1], pair[0].id))
    reps = sorted((u for u in users.values() if u.role == "rep"), key=lambda u: u.id)
    showcase = _showcase(walker, pending, reps[0]) if reps else None
    for lead, at in pending:
        contact = lead.data.get("contact_name") or ""
        deal = walker.convert(lead, at)
        walker.walk(deal, walker.plan(at), contact)
    extra = _seed_showcase(walker, *showcase) if showcase is not None else {}
    return {**walker.counts, **extra}


def _seed_showcase(walker: DealWalker, lead: Lead, at: datetime) -> dict[str, int]:
    """The first rep's deal in "solution demo" with a custom objection response awaiting approval."""
    session, now = walker.session, walker.now
    deal = walker.convert(lead, at)
    demo_entered = now - timedelta(hours=SHOWCASE_DEMO_HOURS)
    step = (demo_entered - at) / 2
    journey = Journey(walker.path[:3], [at, at + step, demo_entered], None, "green")
    walker.walk(deal, journey, lead.data.get("contact_name") or "")
    owner = walker.users[deal.owner_id]  # type: ignore[index]
    walker._at(now - timedelta(hours=2))
    logged = log_objection(session, owner, deal.id, "price", clock=walker.sim, custom_text=CUSTOM_RESPONSE)
    approved = _approved_earlier(walker, owner)
    return {"pending_approvals": int(logged.approval is not None), "approved": approved}


def _approved_earlier(walker: DealWalker, requester: User) -> int:
    """A teammate's custom response the team lead approved a few days ago (on an open deal, if any)."""
    session = walker.session
    team_lead = next(
        (u for u in walker.users.values() if u.role == "lead" and u.team_id == requester.team_id), None
    )
    deal = (
        session.query(Deal)
        .filter(
            Deal.team_id == requester.team_id,
            Deal.owner_id != requester.id,
            Deal.status == "open",
            Deal.stage_key.in_(("needs_confirmed", "solution_demo", "trial_request")),
            Deal.stage_entered_at < walker.now - timedelta(days=3),
        )
        .order_by(Deal.id)
        .first()
    )
    if team_lead is None or deal is None:
        return 0
    owner = walker.users[deal.owner_id]  # type: ignore[index]
    walker._at(walker.now - timedelta(days=3))
    logged = log_objection(session, owner, deal.id, "timing", clock=walker.sim, custom_text=APPROVED_RESPONSE)
    if logged.approval is None:
        return 0
    walker._at(walker.now - timedelta(days=3) + timedelta(hours=2))
    decide_approval(
        session,
        team_lead,
        logged.approval.id,
        approve=True,
        note="可以，注意控制驻场成本。",
        clock=walker.sim,
    )
    return 1
