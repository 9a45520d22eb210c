"""The routing engine: put a lead with the right rep (or into a pool) and record why.

`route_lead(session, lead, clock=..., plan=None)` matches the lead against the published routing's
rules (`routing_plan`: compiled once per version and cached), reads the candidate reps with every count
it needs in one statement (`routing_state.load_snapshot`), decides (`routing_decide.decide`: filters,
exclusions with reasons, strategy), takes the routing's round-robin turn with one conditional UPDATE
(`routing_state.advance_cursor`; re-reads and retries when another transaction took it first), and
then, in the caller's transaction (flush, no commit): sets the lead's owner, team and `assigned_at` (or
puts it in the pool), inserts a `RoutingDecision` pinned to the routing version with the full
explanation, writes a system `routing_decision` activity on the lead's timeline and one `lead.route`
audit event. About 7 statements on SQLite and 8 on PostgreSQL (its audit lock) whatever the number of
reps and rules, plus one to find the published plan when none is passed. The system activity is written
directly rather than through `activities.log_activity`, which would add a second, generic audit event.

Lock order (PostgreSQL): the round-robin turn holds the routing's cursor row until commit, and the audit
event then takes the audit chain's lock. A transaction that writes its own audit events must do so AFTER
`route_lead` (an intake audits the new lead after routing it), otherwise two concurrent transactions can
wait for each other (PostgreSQL then aborts one as a deadlock). `exclude=` leaves reps out of this
decision (a reassignment leaves out the owner it takes the lead from).

Claim cooldown comes from pools: `set_cooldown_source(fn)` installs `fn(session, user_ids, now) ->
ids in cooldown` (the default knows no cooldowns and costs no query); `route_lead(cooldown=...)`
overrides it per call. `explain(decision)` turns a stored decision into the dict the lead page and the
API show, with a bilingual one-line summary.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import record_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_, gettext, label
from salesmesh.platform.models import User
from salesmesh.workflows.models import Activity, Lead
from salesmesh.workflows.routing_decide import (
    OUTCOME_NAMES,
    REASON_NAMES,
    STRATEGY_NAMES,
    Outcome,
    decide,
)
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_plan import (
    RoutingPlan,
    RoutingUnavailable,
    compile_routing,
    current_plan,
    lead_facts,
    plan_for_version,
)
from salesmesh.workflows.routing_state import Snapshot, advance_cursor, load_snapshot
from salesmesh.workflows.sla import on_lead_assigned, start_clock

__all__ = [
    "RoutingContention",
    "RoutingDecision",
    "RoutingPlan",
    "RoutingUnavailable",
    "compile_routing",
    "current_plan",
    "explain",
    "explain_with_names",
    "lead_facts",
    "plan_for_version",
    "route_lead",
    "set_cooldown_source",
]

CooldownSource = Callable[[Session, Sequence[int], datetime], Collection[int]]
MAX_TURN_ATTEMPTS = 500


class RoutingContention(RuntimeError):
    """The round-robin turn was taken by other transactions every time we tried (should not happen)."""


def no_cooldown(_session: Session, _user_ids: Sequence[int], _now: datetime) -> frozenset[int]:
    """Know no claim cooldowns (the default until pools install theirs)."""
    return frozenset()


_cooldown_source: CooldownSource = no_cooldown


def set_cooldown_source(source: CooldownSource) -> CooldownSource:
    """Install the function telling which reps are in claim cooldown; return the previous one."""
    global _cooldown_source
    previous, _cooldown_source = _cooldown_source, source
    return previous


def route_lead(
    session: Session,
    lead: Lead,
    *,
    clock: Clock,
    plan: RoutingPlan | None = None,
    cooldown: CooldownSource | None = None,
    exclude: Collection[int] = (),
) -> RoutingDecision:
    """Route one lead by the published routing (or `plan`), assign it, and record the decision."""
    now = clock.now()
    if plan is None:
        plan = current_plan(session, form_version_id=lead.form_version_id)
    if plan.version_id is None:
        raise RoutingUnavailable("a plan compiled from a bare document cannot route stored leads")
    facts = lead_facts(lead)
    received = lead.received_at or now
    age = max(0.0, (now - received).total_seconds())
    rule, trace = plan.match(facts, now)
    targets = []
    for a in (rule, plan.fallback):
        if a is None:
            continue
        if a.strategy == "pool":
            break
        targets.append(a)
    source = cooldown or _cooldown_source
    for _attempt in range(MAX_TURN_ATTEMPTS):
        snap = load_snapshot(session, plan, targets, now) if targets else Snapshot([], {}, None)
        cooling = source(session, [r.id for r in snap.reps], now) if snap.reps else frozenset()
        outcome = decide(
            plan,
            rule,
            dict(trace),
            snap.reps,
            facts=facts,
            positions=snap.positions,
            now=now,
            lead_age_seconds=age,
            cooldown=cooling,
            exclude=exclude,
        )
        if outcome.owner is None:
            break
        positions = {**snap.positions, outcome.assignment.scope: outcome.owner.id}
        turn = advance_cursor(session, plan.key, positions, snap.turns, now)
        if turn is not None:
            outcome.explanation["state"]["turn"] = turn
            break
    else:
        raise RoutingContention(
            f"could not take a routing turn for lead {lead.id} after {MAX_TURN_ATTEMPTS} tries"
        )
    return _record(session, lead, plan, outcome, now, age)


def _record(
    session: Session, lead: Lead, plan: RoutingPlan, outcome: Outcome, now: datetime, age: float
) -> RoutingDecision:
    a = outcome.assignment
    owner = outcome.owner
    if owner is not None:
        lead.owner_id, lead.team_id, lead.assigned_at = owner.id, owner.team_id, now
        if lead.status == "pooled":
            lead.status = "new"
    elif outcome.outcome == "pooled":
        lead.owner_id, lead.team_id, lead.assigned_at, lead.status = None, None, None, "pooled"
        lead.pool_key = outcome.pool
    start_clock(lead, plan, now, outcome.outcome)  # first-response deadline, in memory
    explanation = outcome.explanation
    labels = {"channel": plan.channel_labels.get(a.channel, {})}
    if outcome.rule_key is not None:
        labels["rule"] = dict(plan.assignment(outcome.rule_key).label or {})
    explanation["labels"] = labels
    decision = RoutingDecision(
        lead=lead,
        routing_version_id=plan.version_id,
        routing_key=plan.key,
        rule_key=a.key,
        used_fallback=a.is_fallback,
        channel=a.channel,
        strategy=a.strategy,
        outcome=outcome.outcome,
        owner_id=owner.id if owner else None,
        team_id=owner.team_id if owner else None,
        pool_key=outcome.pool,
        reason=outcome.reason if outcome.outcome == "unassigned" else None,
        lead_age_seconds=int(age),
        decided_at=now,
        explanation=explanation,
    )
    session.add(decision)
    on_lead_assigned(session, lead, plan, now, decision)  # the owner's notification: one INSERT, no query
    session.flush()
    summary = {
        "decision_id": decision.id,
        "outcome": outcome.outcome,
        "rule": outcome.rule_key,
        "fallback": a.is_fallback,
        "channel": a.channel,
        "strategy": a.strategy,
        "owner_id": decision.owner_id,
        "pool": outcome.pool,
        "reason": decision.reason,
    }
    session.add(
        Activity(
            kind="routing_decision",
            subject_type="lead",
            lead_id=lead.id,
            customer_id=lead.converted_customer_id,
            deal_id=lead.converted_deal_id,
            occurred_at=now,
            actor_id=None,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            outcome=outcome.outcome,
            data=summary,
            created_at=now,
        )
    )
    record_event(
        session,
        at=now,
        actor_id=None,
        action="lead.route",
        object_type="leads",
        object_id=lead.id,
        payload={**summary, "routing_key": plan.key, "routing_version_id": plan.version_id},
    )
    return decision


# --- explanations -----------------------------------------------------------------------------------


def _summary(
    decision: RoutingDecision, explanation: Mapping[str, Any], names: Mapping[int, str], lang: str
) -> str:
    labels = explanation.get("labels") or {}
    rule = explanation.get("rule")
    rule_name = label(labels.get("rule"), lang) or (rule or "")
    channel = label(labels.get("channel"), lang) or decision.channel
    if rule is None:
        first = gettext(N_("No rule matched; the fallback decided."), lang)
    elif decision.used_fallback:
        first = gettext(
            N_("Rule %(rule)s matched but nobody could take the lead; the fallback decided."),
            lang,
            rule=rule_name,
        )
    else:
        first = gettext(N_("Rule %(rule)s matched."), lang, rule=rule_name)
    if decision.outcome == "assigned":
        owner = (
            names.get(decision.owner_id or 0)
            or (explanation.get("owner") or {}).get("name")
            or str(decision.owner_id)
        )
        strategy = gettext(STRATEGY_NAMES.get(decision.strategy, decision.strategy), lang)
        second = gettext(
            N_("Assigned to %(owner)s (%(strategy)s, channel %(channel)s)."),
            lang,
            owner=owner,
            strategy=strategy,
            channel=channel,
        )
    elif decision.outcome == "pooled":
        second = gettext(
            N_("Put in pool %(pool)s (channel %(channel)s)."), lang, pool=decision.pool_key, channel=channel
        )
    else:
        reason = gettext(REASON_NAMES.get(decision.reason or "", decision.reason or ""), lang)
        second = gettext(N_("Left unassigned: %(reason)s."), lang, reason=reason)
    return first + ("" if lang == "zh" else " ") + second


def _rules(trace: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Expand the stored compact rule trace into one entry per rule looked at, in order."""
    if not isinstance(trace, Mapping):
        return list(trace or ())
    disabled = set(trace.get("disabled", ()))
    errors = trace.get("errors") or {}
    out: list[dict[str, Any]] = []
    for key in trace.get("evaluated", ()):
        if key == trace.get("matched"):
            entry: dict[str, Any] = {"rule": key, "result": "matched"}
            if trace.get("no_candidate"):
                entry["candidates"] = 0
        elif key in disabled:
            entry = {"rule": key, "result": "disabled"}
        elif key in errors:
            entry = {"rule": key, "result": "error", "error": errors[key]}
        else:
            entry = {"rule": key, "result": "no_match"}
        out.append(entry)
    return out


def _attempt_view(
    attempt: Mapping[str, Any], names: Mapping[int, str], owner: Mapping[str, Any]
) -> dict[str, Any]:
    table = attempt.get("candidates") or {}
    candidates = []
    for i, uid in enumerate(table.get("user_id", ())):
        entry = {column: values[i] for column, values in table.items()}
        entry["name"] = names.get(uid) or (owner.get("name") if owner.get("user_id") == uid else None)
        if uid == attempt.get("chosen"):
            entry["chosen"] = True
        candidates.append(entry)
    excluded = [{**e, "name": names.get(e["user_id"], e.get("name"))} for e in attempt.get("excluded", ())]
    return {**attempt, "candidates": candidates, "excluded": excluded}


def explain(decision: RoutingDecision, *, names: Mapping[int, str] | None = None) -> dict[str, Any]:
    """Return a stored decision as the dict the lead page and API show (names: current user names by id)."""
    explanation = dict(decision.explanation or {})
    names = names or {}
    owner = explanation.get("owner") or {}
    return {
        "id": decision.id,
        "lead_id": decision.lead_id,
        "decided_at": decision.decided_at.isoformat() if decision.decided_at else None,
        "routing": explanation.get("routing")
        or {"key": decision.routing_key, "version_id": decision.routing_version_id},
        "matched_rule": explanation.get("rule"),
        "decided_by": decision.rule_key or "fallback",
        "fallback": decision.used_fallback,
        "channel": decision.channel,
        "strategy": decision.strategy,
        "outcome": decision.outcome,
        "outcome_name": {lang: gettext(OUTCOME_NAMES[decision.outcome], lang) for lang in ("en", "zh")},
        "owner_id": decision.owner_id,
        "team_id": decision.team_id,
        "pool": decision.pool_key,
        "reason": decision.reason or explanation.get("reason"),
        "lead_age_minutes": round(decision.lead_age_seconds / 60, 1),
        "rules": _rules(explanation.get("rules") or {}),
        "attempts": [_attempt_view(a, names, owner) for a in explanation.get("attempts", ())],
        "state": explanation.get("state"),
        "notify": list(explanation.get("notify", ())),
        "labels": explanation.get("labels", {}),
        "summary": {lang: _summary(decision, explanation, names, lang) for lang in ("en", "zh")},
    }


def explain_with_names(session: Session, decision: RoutingDecision) -> dict[str, Any]:
    """Explain a decision with the current names of every rep it mentions (one query)."""
    ids: set[int] = set()
    for attempt in (decision.explanation or {}).get("attempts", ()):
        ids.update((attempt.get("candidates") or {}).get("user_id", ()))
        ids.update(e["user_id"] for e in attempt.get("excluded", ()))
    if decision.owner_id is not None:
        ids.add(decision.owner_id)
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return explain(decision, names=names)
