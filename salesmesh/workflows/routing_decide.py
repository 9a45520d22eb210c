"""The routing decision itself, as a pure function of a plan, a lead and a snapshot of the reps.

`decide(plan, rule, trace, reps, ...)` takes the rule the lead matched (or None), a `RepState` per rep
(attributes, team, availability, and the counts that matter: open leads, leads routed today in total and
per rule, stale/total leads in the freshness window) and the round-robin positions, and returns an
`Outcome`: who gets the lead (or which pool, or nobody and why) plus the explanation. No database, no
clock: `route_lead` feeds it a snapshot read in one query, the what-if simulator feeds it an in-memory
state it advances itself, and the `routing_eval` benchmark times it.

Candidates, in this order: role (silently: admins and ops are never candidates), team, the candidate
filter (a mismatch is listed compactly under `not_matching`), then the hard exclusions — deactivated,
away (`unavailable_until` in the future), in claim cooldown, left out by the caller (`exclude`: a
reassignment leaves out the owner it takes the lead from), over the rule's daily cap, over the rep's
`daily_capacity`, zero weight — and two soft ones that only apply while someone else is left:
outside working hours (the rep's own calendar, attribute `calendar`, else the routing's SLA calendar)
and freshness balancing (a stale lead skips reps whose stale share in the window would pass
`max_stale_share`). When a soft exclusion would remove everybody it is relaxed and the explanation says
so: a lead that arrives at night still goes to the next rep, and the SLA counts working time.

Strategies: `round_robin` takes the first eligible rep after the rule's last one in id order (wrapping);
`least_loaded` the fewest open leads, then the fewest from this rule today; `weighted` the smallest
(routed today from this rule + 1) / weight, so a weight-2 rep gets two leads for every one of a weight-1
rep; ties always fall to the round-robin order, so equals take turns. A rule whose candidates are all
excluded hands the lead to the fallback; when the fallback finds nobody the lead stays unassigned.

A caller may have sorted the reps already (`unfit`: the engine reads only the matched rule's candidates,
`routing_state.load_candidates`, with the same tests `candidate_verdict` applies here): the explanation
is the same either way, and `decide` answers None when the decision needs a rule it got no reps for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from salesmesh.metamodel.conditions import ConditionError
from salesmesh.platform.i18n import N_
from salesmesh.workflows.routing_plan import Assignment, RoutingPlan

OPEN_STATUSES = ("new", "contacted", "qualified")

# Display names of the reason codes stored in explanations (English message ids).
REASON_NAMES = {
    "deactivated": N_("Deactivated"),
    "away": N_("Away"),
    "claim_cooldown": N_("In claim cooldown"),
    "excluded": N_("Left out for this lead (e.g. the owner it is taken from)"),
    "over_rule_cap": N_("Reached the rule's daily cap"),
    "over_daily_capacity": N_("Reached their daily capacity"),
    "zero_weight": N_("Weight 0"),
    "outside_working_hours": N_("Outside working hours"),
    "stale_share": N_("Already has enough stale leads"),
    "no_rule_matched": N_("No rule matched"),
    "no_candidate": N_("Nobody could take it"),
}
RESULT_NAMES = {
    "matched": N_("Matched"),
    "no_match": N_("Did not match"),
    "disabled": N_("Disabled"),
    "error": N_("Could not be evaluated"),
}
STRATEGY_NAMES = {
    "round_robin": N_("Round robin"),
    "least_loaded": N_("Least loaded"),
    "weighted": N_("Weighted"),
    "pool": N_("To a pool"),
}
OUTCOME_NAMES = {"assigned": N_("Assigned"), "pooled": N_("Put in a pool"), "unassigned": N_("Unassigned")}


@dataclass(slots=True)
class RepState:
    """What routing knows about one rep at decision time."""

    id: int
    name: str
    role: str
    team_id: int | None
    team_key: str | None
    active: bool
    attributes: Mapping[str, Any]
    daily_capacity: int | None = None
    unavailable_until: datetime | None = None
    email: str = ""
    open_leads: int | None = None  # None: not loaded (no least-loaded strategy involved)
    today_total: int = 0
    today_scope: dict[str, int] = field(default_factory=dict)
    window_total: int = 0
    window_stale: int = 0
    # filter_data's result and the defaults it was built with (a snapshot serves one plan at a time).
    _data: dict[str, Any] | None = field(default=None, repr=False)
    _defaults: Mapping[str, Any] | None = field(default=None, repr=False)

    def filter_data(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Return what candidate filters read: the attributes (with defaults) plus the reserved names."""
        if self._defaults is defaults and self._data is not None:
            return self._data
        attrs = {**defaults, **self.attributes}
        data = {
            **attrs,
            "id": self.id,
            "role": self.role,
            "name": self.name,
            "email": self.email,
            "active": self.active,
            "team": self.team_key,
            "rep": attrs,
            "user": {"id": self.id, "role": self.role, "team": self.team_key, "name": self.name},
        }
        self._data, self._defaults = data, defaults
        return data


@dataclass(frozen=True, slots=True)
class Unfit:
    """The reps of a rule's roles that are not its candidates, by why (ids in id order).

    A snapshot that reads only one rule's candidates hands this to `decide` for the explanation's
    `not_matching`, which a full snapshot derives from the reps themselves.
    """

    team: tuple[int, ...] = ()
    filter: tuple[int, ...] = ()


@dataclass
class Outcome:
    outcome: str  # assigned | pooled | unassigned
    assignment: Assignment  # the rule or fallback that decided
    rule_key: str | None
    used_fallback: bool
    owner: RepState | None
    pool: str | None
    reason: str | None
    position_before: int | None
    explanation: dict[str, Any]
    # Exclusion counts of every attempt, for the simulator: {reason: [user ids]}.
    exclusions: dict[str, list[int]] = field(default_factory=dict)
    eligible_ids: tuple[int, ...] = ()


def _in_hours(plan: RoutingPlan, rep: RepState, now: datetime) -> bool:
    own = rep.attributes.get("calendar")
    calendar = plan.calendars.get(own) if isinstance(own, str) else None
    calendar = calendar or plan.calendar
    return calendar is None or calendar.is_working(now)


@dataclass
class _Attempt:
    chosen: RepState | None
    record: dict[str, Any]
    excluded: dict[str, list[int]]
    eligible_ids: tuple[int, ...]


def _reasons(
    rep: RepState,
    a: Assignment,
    now: datetime,
    cooldown: Collection[int],
    weight: float | None,
    exclude: Collection[int],
) -> list[str]:
    """Name every hard reason `rep` cannot take a lead from `a` (the slow path: only for excluded reps)."""
    reasons: list[str] = []
    if not rep.active:
        reasons.append("deactivated")
    if rep.unavailable_until is not None and rep.unavailable_until > now:
        reasons.append("away")
    if rep.id in cooldown:
        reasons.append("claim_cooldown")
    if rep.id in exclude:
        reasons.append("excluded")
    if a.daily_cap is not None and rep.today_scope.get(a.scope, 0) >= a.daily_cap:
        reasons.append("over_rule_cap")
    if rep.daily_capacity is not None and rep.today_total >= rep.daily_capacity:
        reasons.append("over_daily_capacity")
    if weight is not None and weight <= 0:
        reasons.append("zero_weight")
    return reasons


def candidate_verdict(
    a: Assignment, rep: RepState, defaults: Mapping[str, Any], facts: Mapping[str, Any], now: datetime
) -> str | None:
    """Return why `rep` is no candidate of `a` ("role", "team" or "filter"), or None when they are one.

    The same tests, in the same order, as a decision applies (`_attempt`); a snapshot that reads only
    the candidates of one rule (`routing_state.load_candidates`) sorts the reps with it.
    """
    if rep.role not in a.roles:
        return "role"
    if a.teams is not None and rep.team_key not in a.teams:
        return "team"
    if a.filter is not None:
        data = rep.filter_data(defaults)
        if a.filter_reads_lead:
            data = {**data, "lead": facts}
        try:
            if not a.filter.test(data, now):
                return "filter"
        except ConditionError:  # a filter that cannot be evaluated for this rep: the rep does not fit
            return "filter"
    return None


def _attempt(
    plan: RoutingPlan,
    a: Assignment,
    reps: Sequence[RepState],
    *,
    facts: Mapping[str, Any],
    positions: Mapping[str, int],
    now: datetime,
    lead_age_seconds: float,
    cooldown: Collection[int],
    exclude: Collection[int],
    explain: bool,
    unfit: Unfit | None = None,
) -> _Attempt:
    scope, roles, teams, cap = a.scope, a.roles, a.teams, a.daily_cap
    defaults = plan.attribute_defaults
    test = a.filter.test if a.filter is not None else None
    reads_lead = a.filter_reads_lead
    weights = a.weights if a.strategy == "weighted" else None
    excluded: dict[str, list[int]] = {}
    records: list[dict[str, Any]] = []
    not_team: list[int] = []
    not_filter: list[int] = []
    if unfit is not None:
        # `reps` are exactly the candidates (role, team and filter were applied by the snapshot).
        roles, teams, test = None, None, None
        not_team, not_filter = list(unfit.team), list(unfit.filter)
    eligible: list[tuple[RepState, float | None]] = []
    # One pass per rep (this runs for every rep of every decision): who fits the rule — role, team,
    # candidate filter — and who of them can take a lead now (the hard exclusions).
    for rep in reps:
        if roles is not None and rep.role not in roles:
            continue
        if teams is not None and rep.team_key not in teams:
            if explain:
                not_team.append(rep.id)
            continue
        data = None
        if test is not None:
            data = rep._data if rep._defaults is defaults else rep.filter_data(defaults)
            if reads_lead:
                data = {**data, "lead": facts}
            try:
                fits = test(data, now)
            except ConditionError:  # a filter that cannot be evaluated for this rep: the rep does not fit
                fits = False
            if not fits:
                if explain:
                    not_filter.append(rep.id)
                continue
        weight = None
        if weights is not None:
            if data is None:
                data = rep._data if rep._defaults is defaults else rep.filter_data(defaults)
                if reads_lead:
                    data = {**data, "lead": facts}
            weight = a.default_weight
            for cond, w in weights:
                try:
                    if cond.test(data, now):
                        weight = w
                        break
                except ConditionError:  # cannot be evaluated for this rep: this weight does not apply
                    continue
        away = rep.unavailable_until
        capacity = rep.daily_capacity
        if (
            rep.active
            and (away is None or away <= now)
            and (cap is None or rep.today_scope.get(scope, 0) < cap)
            and (capacity is None or rep.today_total < capacity)
            and (weight is None or weight > 0)
            and rep.id not in cooldown
            and rep.id not in exclude
        ):
            eligible.append((rep, weight))
            continue
        reasons = _reasons(rep, a, now, cooldown, weight, exclude)
        for reason in reasons:
            excluded.setdefault(reason, []).append(rep.id)
        if explain:
            entry: dict[str, Any] = {"user_id": rep.id, "name": rep.name, "reasons": reasons}
            if away is not None and away > now:
                entry["away_until"] = away.isoformat()
            records.append(entry)

    relaxed: list[str] = []
    if plan.respect_working_hours and eligible:
        off = {rep.id for rep, _w in eligible if not _in_hours(plan, rep, now)}
        eligible, relaxed_now = _soft(eligible, off, "outside_working_hours", excluded, records, explain)
        if relaxed_now:
            relaxed.append("working_hours")
    fresh = plan.freshness
    stale = fresh is not None and lead_age_seconds > fresh.stale_after.total_seconds()
    if stale and eligible:
        limit = fresh.max_stale_share  # type: ignore[union-attr]
        over = {rep.id for rep, _w in eligible if (rep.window_stale + 1) / (rep.window_total + 1) > limit}
        eligible, relaxed_now = _soft(eligible, over, "stale_share", excluded, records, explain)
        if relaxed_now:
            relaxed.append("freshness")

    chosen = _choose(a, eligible, positions.get(scope)) if eligible else None
    record: dict[str, Any] = {}
    if explain:
        record = {
            "scope": scope,
            "rule": a.key,
            "channel": a.channel,
            "strategy": a.strategy,
            "candidates": _columns(a, eligible, fresh is not None),
            "chosen": chosen.id if chosen is not None else None,
            "excluded": records,
            "not_matching": {"team": not_team, "filter": not_filter},
        }
        if relaxed:
            record["relaxed"] = relaxed
        if stale:
            record["stale_lead"] = True
    ids = record["candidates"]["user_id"] if explain else [rep.id for rep, _w in eligible]
    return _Attempt(chosen, record, excluded, tuple(ids))


def _soft(
    eligible: list[tuple[RepState, float | None]],
    drop: set[int],
    reason: str,
    excluded: dict[str, list[int]],
    records: list[dict[str, Any]],
    explain: bool,
) -> tuple[list[tuple[RepState, float | None]], bool]:
    """Drop the reps in `drop` unless that leaves nobody; return (eligible, relaxed?)."""
    if not drop:
        return eligible, False
    if len(drop) == len(eligible):
        return eligible, True
    kept = []
    for rep, weight in eligible:
        if rep.id in drop:
            excluded.setdefault(reason, []).append(rep.id)
            if explain:
                records.append({"user_id": rep.id, "name": rep.name, "reasons": [reason]})
        else:
            kept.append((rep, weight))
    return kept, False


def _choose(a: Assignment, eligible: list[tuple[RepState, float | None]], last: int | None) -> RepState:
    """Pick by the strategy; ties (and round robin itself) go to the first rep after `last` by id."""
    if a.strategy == "round_robin":
        # `eligible` is in id order: the first id after `last`, else wrap to the first.
        if last is not None:
            for rep, _w in eligible:
                if rep.id > last:
                    return rep
        return eligible[0][0]
    scope = a.scope
    last = -1 if last is None else last  # ids are positive: with no last rep, everybody comes "after"
    best: RepState | None = None
    best_key: tuple[Any, ...] | None = None
    # One pass, keys compared as tuples: the load (or weighted count), then the round-robin order.
    if a.strategy == "least_loaded":
        for rep, _w in eligible:
            key = (rep.open_leads or 0, rep.today_scope.get(scope, 0), rep.id <= last, rep.id)
            if best_key is None or key < best_key:
                best, best_key = rep, key
    else:
        for rep, weight in eligible:
            key = ((rep.today_scope.get(scope, 0) + 1) / weight, rep.id <= last, rep.id)  # type: ignore[operator]
            if best_key is None or key < best_key:
                best, best_key = rep, key
    return best  # type: ignore[return-value]


def _columns(
    a: Assignment, eligible: list[tuple[RepState, float | None]], fresh: bool
) -> dict[str, list[Any]]:
    """The candidates considered, column by column (compact: a decision may list 80 of them)."""
    scope = a.scope
    columns: dict[str, list[Any]] = {
        "user_id": [rep.id for rep, _w in eligible],
        "today": [rep.today_total for rep, _w in eligible],
        "rule_today": [rep.today_scope.get(scope, 0) for rep, _w in eligible],
    }
    if a.strategy == "least_loaded":
        columns["open_leads"] = [rep.open_leads or 0 for rep, _w in eligible]
    if a.strategy == "weighted":
        columns["weight"] = [w for _rep, w in eligible]
    if fresh:
        columns["window"] = [rep.window_total for rep, _w in eligible]
        columns["window_stale"] = [rep.window_stale for rep, _w in eligible]
    return columns


def decide(
    plan: RoutingPlan,
    rule: Assignment | None,
    trace: dict[str, Any],
    reps: Sequence[RepState],
    *,
    facts: Mapping[str, Any],
    positions: Mapping[str, int],
    now: datetime,
    lead_age_seconds: float,
    cooldown: Collection[int] = (),
    exclude: Collection[int] = (),
    explain: bool = True,
    unfit: Mapping[str, Unfit] | None = None,
) -> Outcome | None:
    """Decide where a lead goes, given the rule it matched and the reps' state (in id order); pure.

    `unfit`: `reps` are only the candidates of the rules it names (by scope), and these are the others;
    the result is then None when the decision needs a rule it does not name (the caller reads more).
    """
    attempts: list[dict[str, Any]] = []
    exclusions: dict[str, list[int]] = {}
    targets = [rule, plan.fallback] if rule is not None else [plan.fallback]
    reason = None if rule is not None else "no_rule_matched"
    result: Outcome | None = None
    for a in targets:
        assert a is not None
        if a.strategy == "pool":
            result = Outcome(
                "pooled", a, rule.key if rule else None, a.is_fallback, None, a.pool, reason, None, {}
            )
            break
        if unfit is not None and a.scope not in unfit:
            return None
        attempt = _attempt(
            plan,
            a,
            reps,
            facts=facts,
            positions=positions,
            now=now,
            lead_age_seconds=lead_age_seconds,
            cooldown=cooldown,
            exclude=exclude,
            explain=explain,
            unfit=unfit[a.scope] if unfit is not None else None,
        )
        for why, ids in attempt.excluded.items():
            exclusions.setdefault(why, []).extend(ids)
        if explain:
            attempts.append(attempt.record)
        if attempt.chosen is not None:
            result = Outcome(
                "assigned",
                a,
                rule.key if rule else None,
                a.is_fallback,
                attempt.chosen,
                None,
                reason,
                positions.get(a.scope),
                {},
                eligible_ids=attempt.eligible_ids,
            )
            break
        if a is rule:
            trace["no_candidate"] = True
        reason = "no_candidate"
    if result is None:
        result = Outcome(
            "unassigned", plan.fallback, rule.key if rule else None, True, None, None, reason, None, {}
        )
    result.exclusions = exclusions
    if explain:
        result.explanation = _explanation(plan, result, trace, attempts, lead_age_seconds)
    return result


def _explanation(
    plan: RoutingPlan,
    result: Outcome,
    trace: dict[str, Any],
    attempts: list[dict[str, Any]],
    lead_age_seconds: float,
) -> dict[str, Any]:
    a = result.assignment
    explanation: dict[str, Any] = {
        "v": 1,
        "routing": {"key": plan.key, "version_id": plan.version_id, "version_number": plan.version_number},
        "lead_age_seconds": int(lead_age_seconds),
        "rules": trace,
        "outcome": result.outcome,
        "rule": result.rule_key,
        "fallback": result.used_fallback,
        "channel": a.channel,
        "strategy": a.strategy,
        "attempts": attempts,
    }
    if result.reason:
        explanation["reason"] = result.reason
    if result.pool:
        explanation["pool"] = result.pool
    if result.owner is not None:
        explanation["owner"] = {"user_id": result.owner.id, "name": result.owner.name}
        explanation["state"] = {"scope": a.scope, "before": result.position_before, "after": result.owner.id}
    if a.is_fallback and a.notify:
        explanation["notify"] = list(a.notify)
    return explanation
