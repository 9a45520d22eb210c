"""Benchmark `condition_eval`: compiled JsonLogic conditions against the same checks written in Python.

Subject: 20 realistic rules (routing `when`s and candidate filters like the shipped medical-device
pack's, plus a few form and stage conditions: equality, `in` lists, numeric ranges, `and`/`or`, nested
paths, `!!`, `some`, `if`, and the domain operators `contains_any`, `in_region`, `hours_since`), compiled
once with `compile_condition` and evaluated with `Condition.test` over generated lead dicts. Baseline:
one hand-written Python function per rule doing the same checks (`dict.get`, comparisons,
`datetime.fromisoformat`). Both loops have the same shape and must agree on every match (checked once
before timing). Sizes: S = 200 leads, M = 1,000, L = 5,000.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.runner import Benchmark, Case, register
from salesmesh.metamodel.conditions import compile_condition

LEADS = {"S": 200, "M": 1000, "L": 5000}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

RULES: list[dict[str, Any]] = [
    {"==": [{"var": "institution_grade"}, "tertiary_a"]},
    {"in": [{"var": "institution_type"}, ["township_health_center", "community_health_center"]]},
    {"==": [{"var": "institution_type"}, "hospital"]},
    {"and": [{"==": [{"var": "institution_type"}, "hospital"]}, {">=": [{"var": "bed_count"}, 500]}]},
    {
        "or": [
            {"in": [{"var": "region"}, ["beijing", "tianjin", "hebei"]]},
            {"==": [{"var": "channel"}, "phone_system"]},
        ]
    },
    {"!!": [{"var": "trial_start_date"}]},
    {"==": [{"var": "tender_planned"}, True]},
    {"and": [{">": [{"var": "budget"}, 1000000]}, {"<=": [{"var": "budget"}, 5000000]}]},
    {"in": [{"var": "customer.grade"}, ["tertiary_a", "tertiary_b"]]},
    {"!": [{"var": "budget_approved"}]},
    {"and": [{"==": [{"var": "channel"}, "web_form"]}, {"!=": [{"var": "campaign"}, None]}]},
    {"<": [100, {"var": "bed_count"}, 800]},
    {"some": [{"var": "products"}, {"==": [{"var": ""}, "ultrasound"]}]},
    {"contains_any": [{"var": "products"}, ["imaging", "ivd"]]},
    {"in_region": [{"var": "region"}, ["guangdong", "guangxi", "fujian"]]},
    {"<": [{"hours_since": [{"var": "created_at"}]}, 24]},
    {
        "or": [
            {"==": [{"var": "institution_grade"}, "tertiary_a"]},
            {
                "and": [
                    {"==": [{"var": "institution_grade"}, "tertiary_b"]},
                    {">=": [{"var": "bed_count"}, 300]},
                ]
            },
        ]
    },
    {
        "if": [
            {"==": [{"var": "channel"}, "ad_platform"]},
            {">=": [{"var": "score"}, 50]},
            {">=": [{"var": "score"}, 30]},
        ]
    },
    {"!=": [{"var": "institution_type"}, "private_clinic"]},
    {
        "and": [
            {"in": [{"var": "institution_type"}, ["hospital"]]},
            {"==": [{"var": "tender_planned"}, True]},
            {">=": [{"var": "budget"}, 200000]},
        ]
    },
]


def _hours_since(value: Any, now: datetime) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (now - moment).total_seconds() / 3600


def _in_region(code: Any, regions: tuple[str, ...]) -> bool:
    return isinstance(code, str) and any(code == r or code.startswith(r + "/") for r in regions)


# The same checks, written by hand against the lead form (numbers are numbers or absent): what a Python
# developer would code for each rule above.
HANDWRITTEN: list[Callable[[dict[str, Any], datetime], bool]] = [
    lambda lead, now: lead.get("institution_grade") == "tertiary_a",
    lambda lead, now: lead.get("institution_type") in ("township_health_center", "community_health_center"),
    lambda lead, now: lead.get("institution_type") == "hospital",
    lambda lead, now: lead.get("institution_type") == "hospital" and (lead.get("bed_count") or 0) >= 500,
    lambda lead, now: (
        lead.get("region") in ("beijing", "tianjin", "hebei") or lead.get("channel") == "phone_system"
    ),
    lambda lead, now: bool(lead.get("trial_start_date")),
    lambda lead, now: lead.get("tender_planned") is True,
    lambda lead, now: 1000000 < (lead.get("budget") or 0) <= 5000000,
    lambda lead, now: (lead.get("customer") or {}).get("grade") in ("tertiary_a", "tertiary_b"),
    lambda lead, now: not lead.get("budget_approved"),
    lambda lead, now: lead.get("channel") == "web_form" and lead.get("campaign") is not None,
    lambda lead, now: 100 < (lead.get("bed_count") or 0) < 800,
    lambda lead, now: "ultrasound" in (lead.get("products") or ()),
    lambda lead, now: bool({"imaging", "ivd"}.intersection(lead.get("products") or ())),
    lambda lead, now: _in_region(lead.get("region"), ("guangdong", "guangxi", "fujian")),
    lambda lead, now: (_hours_since(lead.get("created_at"), now) or 0) < 24,
    lambda lead, now: (
        lead.get("institution_grade") == "tertiary_a"
        or (lead.get("institution_grade") == "tertiary_b" and (lead.get("bed_count") or 0) >= 300)
    ),
    lambda lead, now: (lead.get("score") or 0) >= (50 if lead.get("channel") == "ad_platform" else 30),
    lambda lead, now: lead.get("institution_type") != "private_clinic",
    lambda lead, now: (
        lead.get("institution_type") == "hospital"
        and lead.get("tender_planned") is True
        and (lead.get("budget") or 0) >= 200000
    ),
]


def make_leads(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Generate lead dicts shaped like the medical-device pack's lead form data."""
    rng = random.Random(seed)
    grades = ["tertiary_a", "tertiary_b", "secondary", "primary", None]
    types = ["hospital", "township_health_center", "community_health_center", "private_clinic", "other"]
    regions = [
        "beijing",
        "tianjin",
        "hebei",
        "shanghai",
        "jiangsu",
        "zhejiang",
        "guangdong",
        "guangxi",
        "fujian",
    ]
    products = ["imaging", "ultrasound", "patient_monitoring", "ivd", "surgical", "anesthesia"]
    leads = []
    for i in range(count):
        grade = rng.choice(grades)
        lead: dict[str, Any] = {
            "id": i,
            "institution_name": f"Hospital {i}",
            "institution_grade": grade,
            "institution_type": rng.choice(types),
            "region": rng.choice(regions),
            "channel": rng.choice(["web_form", "phone_system", "ad_platform"]),
            "bed_count": rng.choice([None, rng.randint(20, 2500)]),
            "budget": rng.choice([None, rng.randint(0, 80) * 100000]),
            "tender_planned": rng.random() < 0.3,
            "budget_approved": rng.choice([True, False, None]),
            "trial_start_date": rng.choice([None, "", "2026-02-20"]),
            "campaign": rng.choice([None, "expo-2026", "wechat-ads"]),
            "products": rng.sample(products, k=rng.randint(0, 3)),
            "score": rng.randint(0, 100),
            "customer": {"grade": grade, "beds": rng.randint(0, 2000)},
            "created_at": (NOW - timedelta(minutes=rng.randint(0, 4 * 24 * 60))).isoformat(),
        }
        if rng.random() < 0.1:
            del lead["bed_count"]
        leads.append(lead)
    return leads


def prepare(size: str) -> Case:
    leads = make_leads(LEADS[size])
    tests = [compile_condition(rule).test for rule in RULES]
    now = NOW

    def subject() -> int:
        matches = 0
        for lead in leads:
            for test in tests:
                if test(lead, now=now):
                    matches += 1
        return matches

    def baseline() -> int:
        matches = 0
        for lead in leads:
            for check in HANDWRITTEN:
                if check(lead, now):
                    matches += 1
        return matches

    for rule, test, check in zip(RULES, tests, HANDWRITTEN, strict=True):
        disagree = [lead["id"] for lead in leads if test(lead, now=now) != check(lead, now)]
        if disagree:
            raise RuntimeError(f"rule {rule} disagrees with its hand-written check on leads {disagree[:5]}")
    return Case(
        subject=subject,
        baseline=baseline,
        units=len(leads) * len(RULES),
        notes={"leads": len(leads), "rules": len(RULES), "matches": subject()},
    )


register(
    Benchmark(
        name="condition_eval",
        description="compiled JsonLogic rules (Condition.test) vs the same checks hand-written in Python",
        target=0.5,
        prepare=prepare,
    )
)
