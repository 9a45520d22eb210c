"""The distribution report: who received how many leads, how fresh, and how good, per rep and channel.

Read from the routing decisions themselves (assigned ones, in a time range, optionally for one routing
key): per rep and channel the count, the median lead age at assignment (minutes between the lead
arriving and being routed) and the share of high-grade leads, with totals per rep and per channel and the
Gini coefficient of the per-rep counts (among reps who received any). This is the measure behind
freshness balancing: a rep who only ever gets stale or low-grade leads shows up here. "High grade" is
what the routing definition's `high_grade` condition says (`lead_grade`), applied to the lead as it is
now; the published version of each decision's routing decides, so every period is measured alike (the
version the decision was made under when its routing has no published version left). The share counts
only leads whose routing defines `high_grade`: None ("—") when none does. One SELECT for the decisions
and one for the routing documents; the actor's record scope applies to the leads (ops and admins see
everything, a team lead their team, a rep their own); `actor=None` is the system.
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

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.models import User
from salesmesh.workflows.lead_grade import GradeTest, high_grade_test, is_high_grade, share
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_plan import RoutingUnavailable, lead_facts
from salesmesh.workflows.simulate import gini


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


def _figures(ages: list[int], grades: list[bool | None]) -> dict[str, Any]:
    graded = [g for g in grades if g is not None]
    return {
        "count": len(ages),
        "median_age_minutes": round(median(ages) / 60, 1) if ages else None,
        "high_grade_share": share(sum(graded), len(graded)),
    }


def _compiled(document: Any) -> GradeTest | None:
    try:
        return high_grade_test(document or {})
    except RoutingUnavailable:
        return None  # a stored document that does not compile defines nothing to measure


def _grade_tests(session: Session, rows: Sequence[Any]) -> dict[tuple[str, int], GradeTest | None]:
    """Return the high-grade test per (routing key, version id) of the rows (published version first)."""
    keys = {row.routing_key for row in rows}
    if not keys:
        return {}
    published = {
        key: _compiled(document)
        for key, document in session.execute(
            select(Definition.key, DefinitionVersion.document)
            .join(Definition, Definition.id == DefinitionVersion.definition_id)
            .where(
                Definition.kind == "routing",
                Definition.key.in_(sorted(keys)),
                DefinitionVersion.status == "published",
            )
        )
    }
    pinned_ids = {row.routing_version_id for row in rows if row.routing_key not in published}
    pinned: dict[int, GradeTest | None] = {}
    if pinned_ids:
        pinned = {
            version_id: _compiled(document)
            for version_id, document in session.execute(
                select(DefinitionVersion.id, DefinitionVersion.document).where(
                    DefinitionVersion.id.in_(sorted(pinned_ids))
                )
            )
        }
    return {
        (row.routing_key, row.routing_version_id): (
            published[row.routing_key] if row.routing_key in published else pinned.get(row.routing_version_id)
        )
        for row in rows
    }


def distribution_report(
    session: Session,
    actor: User | None,
    *,
    since: datetime,
    until: datetime,
    routing_key: str | None = None,
) -> DistributionReport:
    """Report lead distribution per rep and channel over decisions made in [since, until)."""
    stmt = (
        select(
            RoutingDecision.owner_id,
            User.name,
            RoutingDecision.channel,
            RoutingDecision.lead_age_seconds,
            RoutingDecision.routing_key,
            RoutingDecision.routing_version_id,
            RoutingDecision.decided_at,
            # What `lead_facts` reads, so the high-grade condition sees what the rules saw.
            Lead.institution,
            Lead.institution_grade,
            Lead.region,
            Lead.phone,
            Lead.email,
            Lead.campaign,
            Lead.source_channel,
            Lead.received_at,
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
    rows = session.execute(stmt).all()
    tests = _grade_tests(session, rows)
    cells: dict[tuple[int, str], tuple[list[int], list[bool | None]]] = defaultdict(lambda: ([], []))
    names: dict[int, str] = {}
    for row in rows:
        names[row.owner_id] = row.name
        test = tests[(row.routing_key, row.routing_version_id)]
        ages, grades = cells[(row.owner_id, row.channel)]
        ages.append(row.lead_age_seconds)
        grades.append(None if test is None else is_high_grade(test, lead_facts(row), row.decided_at))
    report = DistributionReport(since=since, until=until, routing_key=routing_key)
    per_rep: dict[int, tuple[list[int], list[bool | None]]] = defaultdict(lambda: ([], []))
    per_channel: dict[str, tuple[list[int], list[bool | None]]] = defaultdict(lambda: ([], []))
    for (owner_id, channel), (ages, grades) in sorted(cells.items(), key=lambda kv: (names[kv[0][0]], kv[0])):
        report.rows.append(
            {"user_id": owner_id, "name": names[owner_id], "channel": channel, **_figures(ages, grades)}
        )
        for bucket in (per_rep[owner_id], per_channel[channel]):
            bucket[0].extend(ages)
            bucket[1].extend(grades)
    report.reps = [
        {"user_id": uid, "name": names[uid], **_figures(ages, grades)}
        for uid, (ages, grades) in per_rep.items()
    ]
    report.channels = [
        {"channel": ch, **_figures(ages, grades)} for ch, (ages, grades) in sorted(per_channel.items())
    ]
    report.total = sum(r["count"] for r in report.reps)
    report.gini = gini([r["count"] for r in report.reps])
    return report
