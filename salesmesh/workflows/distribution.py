"""The distribution report: who received how many leads, how fresh, and how good, per rep and channel.

Read from the routing decisions themselves (assigned ones, in a time range, optionally for one routing
key): per rep and channel the count, the median lead age at assignment (minutes between the lead
arriving and being routed) and the share of high-grade leads (`institution_grade` in `high_grades`,
tertiary hospitals by default), with totals per rep and per channel and the Gini coefficient of the
per-rep counts (among reps who received any). This is the measure behind freshness balancing: a rep
who only ever gets stale or low-grade leads shows up here. One SELECT; the actor's record scope applies
to the leads (ops and admins see everything, a team lead their team, a rep their own); `actor=None` is
the system.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform import policy
from salesmesh.platform.models import User
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.simulate import gini

HIGH_GRADES = ("tertiary_a", "tertiary")


@dataclass
class DistributionReport:
    since: datetime
    until: datetime
    routing_key: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)  # per rep and channel
    reps: list[dict[str, Any]] = field(default_factory=list)  # per rep, all channels
    channels: list[dict[str, Any]] = field(default_factory=list)  # per channel, all reps
    total: int = 0
    gini: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "routing_key": self.routing_key,
            "rows": self.rows,
            "reps": self.reps,
            "channels": self.channels,
            "total": self.total,
            "gini": self.gini,
        }


def _figures(ages: list[int], high: int) -> dict[str, Any]:
    return {
        "count": len(ages),
        "median_age_minutes": round(median(ages) / 60, 1) if ages else None,
        "high_grade_share": round(high / len(ages), 3) if ages else None,
    }


def distribution_report(
    session: Session,
    actor: User | None,
    *,
    since: datetime,
    until: datetime,
    routing_key: str | None = None,
    high_grades: Sequence[str] = HIGH_GRADES,
) -> DistributionReport:
    """Report lead distribution per rep and channel over decisions made in [since, until)."""
    stmt = (
        select(
            RoutingDecision.owner_id,
            User.name,
            RoutingDecision.channel,
            RoutingDecision.lead_age_seconds,
            Lead.institution_grade,
            Lead.data,
        )
        .join(Lead, Lead.id == RoutingDecision.lead_id)
        .join(User, User.id == RoutingDecision.owner_id)
        .where(
            RoutingDecision.outcome == "assigned",
            RoutingDecision.decided_at >= since,
            RoutingDecision.decided_at < until,
        )
    )
    if routing_key is not None:
        stmt = stmt.where(RoutingDecision.routing_key == routing_key)
    if actor is not None:
        stmt = policy.scope(stmt, actor, Lead)
    high_set = set(high_grades)
    cells: dict[tuple[int, str], tuple[list[int], list[bool]]] = defaultdict(lambda: ([], []))
    names: dict[int, str] = {}
    for owner_id, name, channel, age, grade, data in session.execute(stmt):
        names[owner_id] = name
        grade = grade if grade is not None else (data or {}).get("institution_grade")
        ages, highs = cells[(owner_id, channel)]
        ages.append(age)
        highs.append(grade in high_set)
    report = DistributionReport(since=since, until=until, routing_key=routing_key)
    per_rep: dict[int, tuple[list[int], int]] = defaultdict(lambda: ([], 0))
    per_channel: dict[str, tuple[list[int], int]] = defaultdict(lambda: ([], 0))
    for (owner_id, channel), (ages, highs) in sorted(cells.items(), key=lambda kv: (names[kv[0][0]], kv[0])):
        high = sum(highs)
        report.rows.append(
            {"user_id": owner_id, "name": names[owner_id], "channel": channel, **_figures(ages, high)}
        )
        rep_ages, rep_high = per_rep[owner_id]
        per_rep[owner_id] = (rep_ages + ages, rep_high + high)
        ch_ages, ch_high = per_channel[channel]
        per_channel[channel] = (ch_ages + ages, ch_high + high)
    report.reps = [
        {"user_id": uid, "name": names[uid], **_figures(ages, high)} for uid, (ages, high) in per_rep.items()
    ]
    report.channels = [
        {"channel": ch, **_figures(ages, high)} for ch, (ages, high) in sorted(per_channel.items())
    ]
    report.total = sum(r["count"] for r in report.reps)
    report.gini = gini([r["count"] for r in report.reps])
    return report
