"""What-if routing: run a routing version (draft or published) over past or given leads, writing nothing.

`simulate(session, plan, leads)` replays leads in arrival order through the same decision function the
engine uses (`routing_decide.decide`) against the current reps (roles, teams, attributes, availability)
and an in-memory state that starts empty — no leads open, nothing routed yet — and advances as the
simulation assigns: daily counts per rep and rule (days in the routing's calendar zone), open leads,
the freshness window and the round-robin positions. Each lead is decided at the moment it was really
assigned (else when it arrived), so caps, working hours and freshness behave as they would have. Only
SELECT statements run.

`recent_leads(session, last=N)` takes the last N real leads; `leads_from_rows(rows)` takes dicts (a
CSV read by the caller). The result gives per-rep and per-channel distribution, per-rule counts, the
Gini coefficient of the per-rep counts among reps who could take at least one lead (overall and per
channel), cap hits (a rep passed over because of a daily cap), the unroutable leads, and how many leads
are high grade by the simulated version's `high_grade` condition (`lead_grade`), overall and per rep with
each rep's share (None when the version defines no `high_grade`).
`compare(a, b)` lays two results side by side; `compare_with_published(session, version_id, leads)`
runs a draft and the published version of the same routing over the same leads.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.clock import Clock
from salesmesh.platform.models import Team, User
from salesmesh.workflows.calendars import day_start
from salesmesh.workflows.lead_grade import high_grade_test, is_high_grade, share
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_decide import RepState, decide
from salesmesh.workflows.routing_plan import (
    FALLBACK_SCOPE,
    RoutingPlan,
    RoutingUnavailable,
    lead_facts,
    plan_for_version,
)

CAP_REASONS = ("over_rule_cap", "over_daily_capacity")


@dataclass(frozen=True)
class SimulatedLead:
    ref: Any  # the lead id, or the row number of a given dict
    facts: Mapping[str, Any]
    received_at: datetime
    at: datetime  # when it is decided


@dataclass
class SimulationResult:
    routing: dict[str, Any]
    total: int = 0
    assigned: int = 0
    pooled: int = 0
    unassigned: int = 0
    per_rep: dict[int, dict[str, Any]] = field(default_factory=dict)
    per_channel: dict[str, int] = field(default_factory=dict)
    per_rule: dict[str, int] = field(default_factory=dict)
    per_pool: dict[str, int] = field(default_factory=dict)
    cap_hits: dict[str, Any] = field(default_factory=dict)
    gini: float = 0.0
    gini_by_channel: dict[str, float] = field(default_factory=dict)
    unroutable: list[Any] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    high_grade: int | None = None  # leads meeting the version's `high_grade` (None: it defines none)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data (rep ids become strings)."""
        return {
            "routing": self.routing,
            "total": self.total,
            "assigned": self.assigned,
            "pooled": self.pooled,
            "unassigned": self.unassigned,
            "per_rep": {str(k): v for k, v in self.per_rep.items()},
            "per_channel": self.per_channel,
            "per_rule": self.per_rule,
            "per_pool": self.per_pool,
            "cap_hits": {
                **self.cap_hits,
                "by_rep": {str(k): v for k, v in self.cap_hits.get("by_rep", {}).items()},
            },
            "gini": self.gini,
            "gini_by_channel": self.gini_by_channel,
            "unroutable": self.unroutable,
            "decisions": self.decisions,
            "high_grade": self.high_grade,
        }


def gini(values: Sequence[float]) -> float:
    """Return the Gini coefficient of non-negative values (0 = perfectly even, → 1 = one takes all)."""
    n = len(values)
    total = sum(values)
    if n == 0 or total <= 0:
        return 0.0
    ordered = sorted(values)
    weighted = sum((i + 1) * v for i, v in enumerate(ordered))
    return round((2 * weighted) / (n * total) - (n + 1) / n, 4)


# --- leads --------------------------------------------------------------------------------------------


def recent_leads(session: Session, *, last: int = 200) -> list[SimulatedLead]:
    """Return the last `last` leads received, oldest first, as simulation input (one SELECT)."""
    rows = session.scalars(
        select(Lead).order_by(Lead.received_at.desc(), Lead.id.desc()).limit(max(0, last))
    ).all()
    return [
        SimulatedLead(
            ref=lead.id,
            facts=lead_facts(lead),
            received_at=lead.received_at,
            at=lead.assigned_at or lead.received_at,
        )
        for lead in reversed(rows)
    ]


def leads_from_rows(rows: Iterable[Mapping[str, Any]], *, clock: Clock) -> list[SimulatedLead]:
    """Turn lead dicts (form field values; optional `received_at` ISO text or datetime) into input."""
    now = clock.now()
    out = []
    for i, row in enumerate(rows, start=1):
        data = row.get("data")
        facts = (
            dict(data) if isinstance(data, Mapping) else {k: v for k, v in row.items() if k != "received_at"}
        )
        received = row.get("received_at")
        if isinstance(received, str):
            try:
                received = datetime.fromisoformat(received)
            except ValueError as exc:
                raise ValueError(f"row {i}: received_at {received!r} is not an ISO date-time") from exc
        if not isinstance(received, datetime):
            received = now
        if received.tzinfo is None:
            raise ValueError(f"row {i}: received_at needs a time zone")
        out.append(SimulatedLead(ref=i, facts=facts, received_at=received, at=received))
    return out


# --- running --------------------------------------------------------------------------------------------


def _reps(session: Session, plan: RoutingPlan) -> list[RepState]:
    roles = sorted(set().union(*(a.roles for a in (*plan.rules, plan.fallback))))
    rows = session.execute(
        select(User, Team.key)
        .outerjoin(Team, Team.id == User.team_id)
        .where(User.role.in_(roles))
        .order_by(User.id)
    ).all()
    return [
        RepState(
            id=u.id,
            name=u.name,
            email=u.email,
            role=u.role,
            team_id=u.team_id,
            team_key=team_key,
            active=u.active,
            attributes=dict(u.attributes or {}),
            daily_capacity=u.daily_capacity,
            unavailable_until=u.unavailable_until,
            open_leads=0,
        )
        for u, team_key in rows
    ]


def simulate(
    session: Session,
    plan: RoutingPlan,
    leads: Sequence[SimulatedLead],
    *,
    reps: list[RepState] | None = None,
    cooldown: frozenset[int] = frozenset(),
) -> SimulationResult:
    """Replay `leads` through `plan` against the current reps, in memory; write nothing."""
    reps = reps if reps is not None else _reps(session, plan)
    result = SimulationResult(
        routing={"key": plan.key, "version_id": plan.version_id, "version_number": plan.version_number}
    )
    daily: Counter[tuple[int, datetime]] = Counter()
    daily_scope: Counter[tuple[int, datetime, str]] = Counter()
    window: dict[int, deque[tuple[datetime, bool]]] = defaultdict(deque)
    positions: dict[str, int] = {}
    eligible_seen: dict[str, set[int]] = defaultdict(set)
    cap_by_rep: Counter[int] = Counter()
    cap_total = 0
    counts: Counter[int] = Counter()
    by_channel: dict[int, Counter[str]] = defaultdict(Counter)
    grade = high_grade_test(plan.document)
    high_by_rep: Counter[int] = Counter()
    high_total = 0
    fresh = plan.freshness
    stale_after = fresh.stale_after.total_seconds() if fresh else 0.0
    scopes = [a.scope for a in plan.rules] + [FALLBACK_SCOPE]
    for lead in sorted(leads, key=lambda item: item.at):
        now = lead.at
        day = day_start(now, plan.day_zone)
        for rep in reps:
            rep.today_total = daily[(rep.id, day)]
            rep.today_scope = {s: daily_scope[(rep.id, day, s)] for s in scopes}
            rep.open_leads = counts[rep.id]
            if fresh is not None:
                entries = window[rep.id]
                while entries and entries[0][0] < now - fresh.window:
                    entries.popleft()
                rep.window_total = len(entries)
                rep.window_stale = sum(1 for _at, stale in entries if stale)
        age = max(0.0, (now - lead.received_at).total_seconds())
        rule, trace = plan.match(lead.facts, now)
        out = decide(
            plan,
            rule,
            trace,
            reps,
            facts=lead.facts,
            positions=positions,
            now=now,
            lead_age_seconds=age,
            cooldown=cooldown,
            explain=False,
        )
        a = out.assignment
        result.total += 1
        high = grade is not None and is_high_grade(grade, lead.facts, now)
        high_total += high
        rule_name = a.key or "fallback"
        for reason in CAP_REASONS:
            for rep_id in out.exclusions.get(reason, ()):
                cap_by_rep[rep_id] += 1
                cap_total += 1
        record: dict[str, Any] = {
            "lead": lead.ref,
            "outcome": out.outcome,
            "rule": a.key,
            "channel": a.channel,
        }
        if out.outcome == "assigned":
            owner = out.owner
            assert owner is not None
            result.assigned += 1
            eligible_seen[a.channel].update(out.eligible_ids)
            counts[owner.id] += 1
            high_by_rep[owner.id] += high
            by_channel[owner.id][a.channel] += 1
            daily[(owner.id, day)] += 1
            daily_scope[(owner.id, day, a.scope)] += 1
            window[owner.id].append((now, age > stale_after))
            positions[a.scope] = owner.id
            result.per_channel[a.channel] = result.per_channel.get(a.channel, 0) + 1
            result.per_rule[rule_name] = result.per_rule.get(rule_name, 0) + 1
            record["owner_id"] = owner.id
        elif out.outcome == "pooled":
            result.pooled += 1
            result.per_pool[out.pool or ""] = result.per_pool.get(out.pool or "", 0) + 1
            result.per_channel[a.channel] = result.per_channel.get(a.channel, 0) + 1
            result.per_rule[rule_name] = result.per_rule.get(rule_name, 0) + 1
            record["pool"] = out.pool
        else:
            result.unassigned += 1
            result.unroutable.append(lead.ref)
            record["reason"] = out.reason
        result.decisions.append(record)
    names = {rep.id: rep.name for rep in reps}
    everyone = set().union(*eligible_seen.values()) if eligible_seen else set()
    result.per_rep = {
        rep_id: {
            "name": names[rep_id],
            "count": counts[rep_id],
            "channels": dict(by_channel[rep_id]),
            "high_grade": high_by_rep[rep_id] if grade is not None else None,
            "high_grade_share": share(high_by_rep[rep_id], counts[rep_id]) if grade is not None else None,
        }
        for rep_id in sorted(everyone | set(counts))
    }
    result.high_grade = high_total if grade is not None else None
    result.gini = gini([counts[r] for r in everyone])
    result.gini_by_channel = {
        channel: gini([by_channel[r][channel] for r in ids]) for channel, ids in sorted(eligible_seen.items())
    }
    result.cap_hits = {"total": cap_total, "by_rep": dict(cap_by_rep)}
    return result


def _published_version(session: Session, key: str) -> DefinitionVersion | None:
    return session.scalars(
        select(DefinitionVersion)
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(Definition.kind == "routing", Definition.key == key, DefinitionVersion.status == "published")
    ).first()


def simulate_version(session: Session, version_id: int, leads: Sequence[SimulatedLead]) -> SimulationResult:
    """Simulate a stored routing version (a draft or any other) over `leads`."""
    version = session.get(DefinitionVersion, version_id)
    if version is None:
        raise RoutingUnavailable(f"definition version {version_id} does not exist")
    result = simulate(session, plan_for_version(session, version), leads)
    result.routing["status"] = version.status
    return result


def compare(a: SimulationResult, b: SimulationResult) -> dict[str, Any]:
    """Lay two simulations of the same leads side by side (b minus a for the deltas)."""
    reps = sorted(set(a.per_rep) | set(b.per_rep))
    channels = sorted(set(a.per_channel) | set(b.per_channel))
    a_by_lead = {d["lead"]: d for d in a.decisions}
    changed = [
        d["lead"]
        for d in b.decisions
        if d["lead"] in a_by_lead
        and (
            a_by_lead[d["lead"]].get("owner_id"),
            a_by_lead[d["lead"]]["channel"],
            a_by_lead[d["lead"]].get("pool"),
        )
        != (d.get("owner_id"), d["channel"], d.get("pool"))
    ]

    def rep_count(result: SimulationResult, rep_id: int) -> int:
        return result.per_rep.get(rep_id, {}).get("count", 0)

    def name(rep_id: int) -> str:
        return (b.per_rep.get(rep_id) or a.per_rep.get(rep_id) or {}).get("name", str(rep_id))

    return {
        "a": a.routing,
        "b": b.routing,
        "totals": {
            k: {"a": getattr(a, k), "b": getattr(b, k)} for k in ("total", "assigned", "pooled", "unassigned")
        },
        "gini": {"a": a.gini, "b": b.gini},
        "high_grade": {"a": a.high_grade, "b": b.high_grade},
        "cap_hits": {"a": a.cap_hits.get("total", 0), "b": b.cap_hits.get("total", 0)},
        "per_rep": [
            {
                "user_id": r,
                "name": name(r),
                "a": rep_count(a, r),
                "b": rep_count(b, r),
                "delta": rep_count(b, r) - rep_count(a, r),
                "high_grade_share": {
                    "a": a.per_rep.get(r, {}).get("high_grade_share"),
                    "b": b.per_rep.get(r, {}).get("high_grade_share"),
                },
            }
            for r in reps
        ],
        "per_channel": [
            {"channel": c, "a": a.per_channel.get(c, 0), "b": b.per_channel.get(c, 0)} for c in channels
        ],
        "changed_leads": changed,
    }


def compare_with_published(
    session: Session, version_id: int, leads: Sequence[SimulatedLead]
) -> dict[str, Any]:
    """Simulate a (draft) routing version and the published version of the same key; compare them."""
    version = session.get(DefinitionVersion, version_id)
    if version is None:
        raise RoutingUnavailable(f"definition version {version_id} does not exist")
    published = _published_version(session, version.definition.key)
    if published is None:
        raise RoutingUnavailable(
            f"routing {version.definition.key!r} has no published version to compare with"
        )
    base = simulate_version(session, published.id, leads)
    other = simulate_version(session, version.id, leads)
    return compare(base, other)
