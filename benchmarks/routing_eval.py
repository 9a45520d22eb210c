"""Benchmark `routing_eval`: the routing engine's decision (compiled plan) against the same routing rules
written by hand in Python.

Subject: a 50-rule routing document like the medical-device pack's — region-and-grade rules to a
key-account channel (least loaded, candidates with 5+ years and key-account certification, daily cap),
type-and-region rules to an inclusive channel (round robin, junior or intermediate reps), type, bed-count
and region rules to a standard channel (weighted: senior/principal count double, candidates with 2+
years and a matching product skill) and a least-loaded fallback — compiled once with `compile_routing`;
per lead `RoutingPlan.match` then `routing_decide.decide` over 80 reps (the path the what-if simulator
runs: `explain=False`), the in-memory state (counts, round-robin positions) advanced after each decision.
Baseline: the same rules and candidate checks as hand-written Python closures (set lookups,
comparisons), the same exclusions (deactivated, away, rule cap, daily capacity) and tie-breaks. Both
must pick the same owner for every lead (checked before timing). Not measured here: the explanation
`route_lead` also builds (about a quarter more time on this workload; `notes.explained_ms` and
`notes.plain_ms` compare one untimed run of 200 leads) and the database (one snapshot query and the
writes around the decision). Sizes: S = 200 leads, M = 1,000, L = 3,000.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.runner import Benchmark, Case, register
from salesmesh.workflows.routing_decide import RepState, decide
from salesmesh.workflows.routing_plan import FALLBACK_SCOPE, RoutingPlan, compile_routing

LEADS = {"S": 200, "M": 1000, "L": 3000}
REPS = 80
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AREAS = [
    ["beijing", "tianjin", "hebei"],
    ["shanghai", "jiangsu", "zhejiang"],
    ["guangdong", "guangxi", "hainan"],
    ["sichuan", "chongqing", "yunnan"],
    ["hubei", "hunan", "henan"],
    ["liaoning", "jilin", "heilongjiang"],
    ["shaanxi", "gansu", "ningxia"],
]
REGIONS = [r for area in AREAS for r in area]
GRADES = ["tertiary_a", "tertiary", "secondary_a", "secondary", "primary"]
TYPES = ["hospital", "township_health_center", "community_health_center", "private_clinic", "other"]
SKILLS = ["imaging", "ultrasound", "patient_monitoring", "ivd", "surgical", "anesthesia"]
SENIORITY = ["junior", "intermediate", "senior", "principal"]


# --- the routing: as a document, and the same rules as hand-written checks ---------------------------


@dataclass
class HandRule:
    scope: str
    when: Callable[[dict[str, Any]], bool]
    strategy: str
    fits: Callable[[dict[str, Any]], bool]
    cap: int | None
    weight: Callable[[dict[str, Any]], float] = lambda rep: 1.0


def build() -> tuple[dict[str, Any], list[HandRule], HandRule]:
    """Return the 50-rule routing document and the same rules written by hand (rules, fallback)."""
    rules: list[dict[str, Any]] = []
    hand: list[HandRule] = []
    for i in range(50):
        area = AREAS[i % len(AREAS)]
        region_set = frozenset(area)
        key = f"rule_{i:02d}"
        label = {"en": key, "zh": key}
        if i % 3 == 0:
            grade = GRADES[(i // 3) % 2]
            rules.append(
                {
                    "key": key,
                    "label": label,
                    "when": {
                        "and": [
                            {"in": [{"var": "region"}, area]},
                            {"==": [{"var": "institution_grade"}, grade]},
                        ]
                    },
                    "channel": "key_account",
                    "candidates": {
                        "filter": {
                            "and": [
                                {">=": [{"var": "years_medical"}, 5]},
                                {"==": [{"var": "key_account_certified"}, True]},
                            ]
                        },
                        "roles": ["rep"],
                    },
                    "strategy": "least_loaded",
                    "daily_cap": 6,
                }
            )
            hand.append(
                HandRule(
                    key,
                    lambda lead, rs=region_set, g=grade: (
                        lead.get("region") in rs and lead.get("institution_grade") == g
                    ),
                    "least_loaded",
                    lambda rep: rep["years_medical"] >= 5 and rep["key_account_certified"] is True,
                    6,
                )
            )
        elif i % 3 == 1:
            types = TYPES[1:3] if i % 2 else TYPES[3:5]
            type_set = frozenset(types)
            rules.append(
                {
                    "key": key,
                    "label": label,
                    "when": {
                        "and": [
                            {"in": [{"var": "institution_type"}, types]},
                            {"in": [{"var": "region"}, area]},
                        ]
                    },
                    "channel": "inclusive",
                    "candidates": {
                        "filter": {"in": [{"var": "seniority"}, ["junior", "intermediate"]]},
                        "roles": ["rep"],
                    },
                    "strategy": "round_robin",
                    "daily_cap": 10,
                }
            )
            hand.append(
                HandRule(
                    key,
                    lambda lead, ts=type_set, rs=region_set: (
                        lead.get("institution_type") in ts and lead.get("region") in rs
                    ),
                    "round_robin",
                    lambda rep: rep["seniority"] in ("junior", "intermediate"),
                    10,
                )
            )
        else:
            beds = 100 * (1 + i % 5)
            skill = SKILLS[i % len(SKILLS)]
            rules.append(
                {
                    "key": key,
                    "label": label,
                    "when": {
                        "and": [
                            {"==": [{"var": "institution_type"}, "hospital"]},
                            {">=": [{"var": "bed_count"}, beds]},
                            {"in": [{"var": "region"}, area]},
                        ]
                    },
                    "channel": "standard",
                    "candidates": {
                        "filter": {
                            "and": [
                                {">=": [{"var": "years_medical"}, 2]},
                                {"contains_any": [{"var": "skills"}, [skill]]},
                            ]
                        },
                        "roles": ["rep"],
                    },
                    "strategy": "weighted",
                    "weights": [
                        {"filter": {"in": [{"var": "seniority"}, ["senior", "principal"]]}, "weight": 2}
                    ],
                    "default_weight": 1,
                    "daily_cap": 8,
                }
            )
            hand.append(
                HandRule(
                    key,
                    lambda lead, b=beds, rs=region_set: (
                        lead.get("institution_type") == "hospital"
                        and (lead.get("bed_count") or 0) >= b
                        and lead.get("region") in rs
                    ),
                    "weighted",
                    lambda rep, s=skill: rep["years_medical"] >= 2 and s in rep["skills"],
                    8,
                    lambda rep: 2.0 if rep["seniority"] in ("senior", "principal") else 1.0,
                )
            )
    document = {
        "kind": "routing",
        "key": "bench-routing",
        "schema_version": 1,
        "label": {"en": "Benchmark routing", "zh": "基准分配"},
        "form": "md-lead",
        "channels": [
            {"key": c, "label": {"en": c, "zh": c}} for c in ("key_account", "inclusive", "standard")
        ],
        "rules": rules,
        "fallback": {"channel": "standard", "strategy": "least_loaded", "candidates": {"roles": ["rep"]}},
    }
    fallback = HandRule(FALLBACK_SCOPE, lambda lead: True, "least_loaded", lambda rep: True, None)
    return document, hand, fallback


def make_reps(seed: int = 11) -> list[dict[str, Any]]:
    """Generate 80 reps (a few deactivated, away or with a small daily capacity)."""
    rng = random.Random(seed)
    reps = []
    for i in range(REPS):
        reps.append(
            {
                "id": i + 1,
                "name": f"Rep {i + 1}",
                "role": "rep" if i % 20 else "lead",
                "active": i % 37 != 5,
                "away": NOW + timedelta(hours=3) if i % 29 == 3 else None,
                "capacity": 15 if i % 11 == 0 else None,
                "attributes": {
                    "years_medical": rng.randint(0, 15),
                    "key_account_certified": rng.random() < 0.5,
                    "seniority": rng.choice(SENIORITY),
                    "skills": rng.sample(SKILLS, k=rng.randint(1, 3)),
                },
            }
        )
    return reps


def make_leads(count: int, seed: int = 5) -> list[dict[str, Any]]:
    """Generate lead form data shaped like the medical-device pack's."""
    rng = random.Random(seed)
    return [
        {
            "institution_name": f"Hospital {i}",
            "institution_grade": rng.choice(GRADES),
            "institution_type": rng.choice(TYPES),
            "region": rng.choice(REGIONS),
            "bed_count": rng.choice([None, rng.randint(20, 1200)]),
        }
        for i in range(count)
    ]


# --- the two implementations -------------------------------------------------------------------------


@dataclass
class Engine:
    plan: RoutingPlan
    reps: list[RepState]
    positions: dict[str, int] = field(default_factory=dict)
    explain: bool = False

    def reset(self) -> None:
        self.positions = {}
        for rep in self.reps:
            rep.open_leads, rep.today_total, rep.today_scope = 0, 0, {}

    def route(self, lead: dict[str, Any]) -> int | None:
        rule, trace = self.plan.match(lead, NOW)
        out = decide(
            self.plan,
            rule,
            trace,
            self.reps,
            facts=lead,
            positions=self.positions,
            now=NOW,
            lead_age_seconds=0,
            explain=self.explain,
        )
        owner = out.owner
        if owner is None:
            return None
        scope = out.assignment.scope
        owner.open_leads = (owner.open_leads or 0) + 1
        owner.today_total += 1
        owner.today_scope[scope] = owner.today_scope.get(scope, 0) + 1
        self.positions[scope] = owner.id
        return owner.id


@dataclass
class Handwritten:
    rules: list[HandRule]
    fallback: HandRule
    reps: list[dict[str, Any]]
    positions: dict[str, int] = field(default_factory=dict)
    open: dict[int, int] = field(default_factory=dict)
    today: dict[int, int] = field(default_factory=dict)
    scoped: dict[tuple[int, str], int] = field(default_factory=dict)

    def reset(self) -> None:
        self.positions, self.open, self.today, self.scoped = {}, {}, {}, {}

    def _pick(self, rule: HandRule) -> dict[str, Any] | None:
        scope, cap = rule.scope, rule.cap
        last = self.positions.get(scope, 0)
        best, best_key = None, None
        for rep in self.reps:
            if rep["role"] != "rep" or not rule.fits(rep["attributes"]):
                continue
            rid = rep["id"]
            scoped = self.scoped.get((rid, scope), 0)
            if not rep["active"] or (rep["away"] is not None and rep["away"] > NOW):
                continue
            if (cap is not None and scoped >= cap) or (
                rep["capacity"] is not None and self.today.get(rid, 0) >= rep["capacity"]
            ):
                continue
            turn = (0 if rid > last else 1, rid)
            if rule.strategy == "least_loaded":
                key: tuple[Any, ...] = (self.open.get(rid, 0), scoped, turn)
            elif rule.strategy == "weighted":
                key = ((scoped + 1) / rule.weight(rep["attributes"]), turn)
            else:
                key = turn
            if best_key is None or key < best_key:
                best, best_key = rep, key
        return best

    def route(self, lead: dict[str, Any]) -> int | None:
        rule = next((r for r in self.rules if r.when(lead)), None)
        chosen, used = None, None
        for candidate_rule in (rule, self.fallback) if rule is not None else (self.fallback,):
            chosen = self._pick(candidate_rule)
            if chosen is not None:
                used = candidate_rule
                break
        if chosen is None or used is None:
            return None
        rid = chosen["id"]
        self.open[rid] = self.open.get(rid, 0) + 1
        self.today[rid] = self.today.get(rid, 0) + 1
        self.scoped[(rid, used.scope)] = self.scoped.get((rid, used.scope), 0) + 1
        self.positions[used.scope] = rid
        return rid


def _explain_cost(engine: Engine, leads: list[dict[str, Any]]) -> tuple[float, float]:
    """Route `leads` once with and once without explanations; return both times in ms (for the notes)."""
    times = []
    for explain in (True, False):
        engine.reset()
        engine.explain = explain
        start = time.perf_counter()
        for lead in leads:
            engine.route(lead)
        times.append(round((time.perf_counter() - start) * 1000, 2))
    engine.explain = False
    return times[0], times[1]


def prepare(size: str) -> Case:
    document, hand_rules, hand_fallback = build()
    plan = compile_routing(document, version_id=1, version_number=1)
    reps = make_reps()
    engine = Engine(
        plan,
        [
            RepState(
                id=r["id"],
                name=r["name"],
                role=r["role"],
                team_id=None,
                team_key=None,
                active=r["active"],
                attributes=r["attributes"],
                daily_capacity=r["capacity"],
                unavailable_until=r["away"],
                open_leads=0,
            )
            for r in reps
        ],
    )
    handwritten = Handwritten(hand_rules, hand_fallback, reps)
    leads = make_leads(LEADS[size])

    def subject() -> int:
        return sum(1 for lead in leads if engine.route(lead) is not None)

    def baseline() -> int:
        return sum(1 for lead in leads if handwritten.route(lead) is not None)

    def reset() -> None:
        engine.reset()
        handwritten.reset()

    reset()
    ours = [engine.route(lead) for lead in leads]
    theirs = [handwritten.route(lead) for lead in leads]
    disagree = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    if disagree:
        raise RuntimeError(f"engine and hand-written routing disagree on leads {disagree[:5]}")
    explained_ms, plain_ms = _explain_cost(engine, leads[:200])
    reset()
    return Case(
        subject=subject,
        baseline=baseline,
        units=len(leads),
        before=reset,
        notes={
            "leads": len(leads),
            "rules": len(document["rules"]),
            "reps": REPS,
            "assigned": subject(),
            "explained_ms": explained_ms,
            "plain_ms": plain_ms,
        },
    )


register(
    Benchmark(
        name="routing_eval",
        description="routing decision from the compiled plan vs the same rules hand-written in Python",
        target=0.5,
        prepare=prepare,
    )
)
