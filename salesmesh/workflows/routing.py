"""The routing engine: put a lead with the right rep (or into a pool) and record why.

`route_lead(session, lead, clock=..., plan=None)` matches the lead against the published routing's
rules (`routing_plan`: compiled once per version and cached), reads the matched rule's candidate reps with
every count it needs in one statement (`routing_state.load_candidates`: the reps of the rule's roles are
sorted by team and candidate filter, only the candidates are counted), decides (`routing_decide.decide`:
exclusions with reasons, strategy), takes the routing's round-robin turn with one conditional UPDATE
(`routing_state.advance_cursor`; re-reads and decides again when another transaction took it first), and
then, in the caller's transaction (flush, no commit): sets the lead's owner, team, `assigned_at` and
first-response deadline (or puts it in the pool), inserts a `RoutingDecision` pinned to the routing
version with the full explanation, the new owner's in-app notification, and ONE audit event — which is
also the decision's line on the record timeline (no activity row repeats it). That is 6 statements on
SQLite and 7 on PostgreSQL (its audit lock) for a lead already stored — snapshot, turn, lead UPDATE,
decision, notification, audit — whatever the number of reps and rules, plus one to find the published
plan when none is passed, one when a cooldown *source* (not clause) is installed, and one when none of
the rule's candidates can take the lead and the fallback decides (it reads every rep the rule and the
fallback may use, `routing_state.load_snapshot`), or when reps were added or edited since the rule's
last snapshot (counted again, see `load_candidates`).

The same steps are public for a lead that does not exist yet (intake): `propose_route` decides on a
snapshot without writing, `apply_route` sets the lead's routed columns in memory (so the new lead's
INSERT carries them: no UPDATE), and `settle_route` takes the turn, records the decision and writes the
audit event under the caller's action (`lead.intake`) with the caller's fields added. A proposal whose
turn was taken meanwhile is decided again on a fresh snapshot (the lead being routed never counts among
its owner's open leads) and re-applied.

Lock order (PostgreSQL): the round-robin turn holds the routing's cursor row until commit, and the audit
event then takes the audit chain's lock. A transaction that writes its own audit events must do so AFTER
routing (an intake adds its fields to routing's one event instead), otherwise two concurrent transactions
can wait for each other (PostgreSQL then aborts one as a deadlock). `exclude=` leaves reps out of this
decision (a reassignment leaves out the owner it takes the lead from).

Claim cooldown comes from pools: `set_cooldown_clause(fn)` installs `fn(now) -> SQL condition on
users.id` (`now` is a bound parameter: the snapshot statement is built once), read inside the snapshot
at no extra statement; `set_cooldown_source(fn)` installs `fn(session, user_ids, now) -> ids in
cooldown` (one query more per decision; the default knows no cooldowns and costs nothing);
`route_lead(cooldown=...)` overrides the source per call. `explain(decision)` turns a stored decision
into the dict the lead page and the API show, with a bilingual one-line summary.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from salesmesh.platform.audit import append_event
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_, gettext, label
from salesmesh.platform.models import User
from salesmesh.platform.rows import build_row, insert_row
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_decide import (
    OUTCOME_NAMES,
    REASON_NAMES,
    STRATEGY_NAMES,
    Outcome,
    decide,
)
from salesmesh.workflows.routing_models import RoutingDecision
from salesmesh.workflows.routing_plan import (
    Assignment,
    RoutingPlan,
    RoutingUnavailable,
    compile_routing,
    current_plan,
    lead_facts,
    plan_for_version,
)
from salesmesh.workflows.routing_state import (
    Snapshot,
    advance_cursor,
    load_candidates,
    load_snapshot,
    narrows,
)
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
    "Proposal",
    "apply_route",
    "propose_route",
    "route_lead",
    "set_cooldown_clause",
    "set_cooldown_source",
    "settle_route",
]

CooldownSource = Callable[[Session, Sequence[int], datetime], Collection[int]]
# now (a bound parameter) -> a SQL condition on `users.id` that holds for a rep in claim cooldown, e.g.
# `exists().where(cooldowns.c.user_id == users.c.id, cooldowns.c.until > now)`; read inside the snapshot.
CooldownClause = Callable[[ColumnElement[datetime]], ColumnElement[bool]]
MAX_TURN_ATTEMPTS = 500
# The lead columns a decision sets (`apply_route`); restored when a retried decision differs.
ROUTED_COLUMNS = ("owner_id", "team_id", "assigned_at", "status", "pool_key", "sla_due_at", "sla_state")


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


_cooldown_clause: CooldownClause | None = None


def set_cooldown_clause(clause: CooldownClause | None) -> CooldownClause | None:
    """Install the SQL condition telling which reps are in claim cooldown; return the previous one.

    Unlike a cooldown source it costs no statement: the snapshot reads it as one more column.
    """
    global _cooldown_clause
    previous, _cooldown_clause = _cooldown_clause, clause
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
    proposal = propose_route(session, lead, plan=plan, now=now, cooldown=cooldown, exclude=exclude)
    return settle_route(session, lead, proposal)


@dataclass
class Proposal:
    """A routing decision taken on a snapshot but not yet written (see `propose_route`)."""

    plan: RoutingPlan
    now: datetime
    facts: dict[str, Any]
    age: float
    rule: Assignment | None
    trace: dict[str, Any]
    targets: list[Assignment]
    cooldown: CooldownSource | None
    exclude: Collection[int]
    outcome: Outcome = field(init=False)
    snapshot: Snapshot = field(init=False)
    # The lead's routed columns before `apply_route` first changed them (restored when a retry differs),
    # and the outcome applied last.
    before: dict[str, Any] | None = None
    applied: Outcome | None = None


def propose_route(
    session: Session,
    lead: Lead,
    *,
    plan: RoutingPlan,
    now: datetime,
    cooldown: CooldownSource | None = None,
    exclude: Collection[int] = (),
) -> Proposal:
    """Decide where `lead` goes on a fresh snapshot of the reps (one statement); write nothing."""
    if plan.version_id is None:
        raise RoutingUnavailable("a plan compiled from a bare document cannot route stored leads")
    facts = lead_facts(lead)
    age = max(0.0, (now - (lead.received_at or now)).total_seconds())
    rule, trace = plan.match(facts, now)
    targets = []
    for a in (rule, plan.fallback):
        if a is None:
            continue
        if a.strategy == "pool":
            break
        targets.append(a)
    proposal = Proposal(plan, now, facts, age, rule, trace, targets, cooldown, exclude)
    _decide(session, lead, proposal)
    return proposal


def _decide(session: Session, lead: Lead, p: Proposal) -> None:
    """(Re)read the snapshot and decide; the lead itself never counts towards anyone's open leads."""
    plan, now = p.plan, p.now
    first = p.targets[0] if p.targets else None
    if first is not None and narrows(first):
        # Usually the first target decides: read only its candidates (see `load_candidates`).
        snap = load_candidates(session, plan, first, now, lead_id=lead.id, cooldown=_cooldown_clause)
        outcome = _decide_on(session, p, snap)
        if outcome is not None:
            p.snapshot, p.outcome = snap, outcome
            return
    if p.targets:  # every target's reps: the first target's candidates could not take the lead
        snap = load_snapshot(session, plan, p.targets, now, lead_id=lead.id, cooldown=_cooldown_clause)
    else:
        snap = Snapshot([], {}, None)
    outcome = _decide_on(session, p, snap)
    assert outcome is not None  # a full snapshot covers every target
    p.snapshot, p.outcome = snap, outcome


def _decide_on(session: Session, p: Proposal, snap: Snapshot) -> Outcome | None:
    cooling: Collection[int] = snap.cooling
    source = p.cooldown or _cooldown_source
    if snap.reps and source is not no_cooldown:
        cooling = snap.cooling | frozenset(source(session, [r.id for r in snap.reps], p.now))
    return decide(
        p.plan,
        p.rule,
        dict(p.trace),
        snap.reps,
        facts=p.facts,
        positions=snap.positions,
        now=p.now,
        lead_age_seconds=p.age,
        cooldown=cooling,
        exclude=p.exclude,
        unfit=snap.unfit,
    )


def apply_route(lead: Lead, proposal: Proposal) -> None:
    """Set the lead's owner, team, `assigned_at`, status and pool as the proposal says (in memory).

    Everything a routing decision changes ON THE LEAD belongs here: intake applies the proposal before
    the new lead's INSERT, so these columns cost no UPDATE. `_record` only adds rows.
    """
    outcome, now = proposal.outcome, proposal.now
    if proposal.applied is outcome:
        return
    if proposal.before is None:
        proposal.before = {name: getattr(lead, name) for name in ROUTED_COLUMNS}
    else:
        for name, value in proposal.before.items():
            setattr(lead, name, value)
    proposal.applied = outcome
    owner = outcome.owner
    if owner is not None:
        lead.owner_id, lead.team_id, lead.assigned_at = owner.id, owner.team_id, now
        if lead.status == "pooled":
            lead.status = "new"
    elif outcome.outcome == "pooled":
        lead.owner_id, lead.team_id, lead.assigned_at, lead.status = None, None, None, "pooled"
        lead.pool_key = outcome.pool
    start_clock(lead, proposal.plan, now, outcome.outcome)  # first-response deadline, in memory


def settle_route(
    session: Session,
    lead: Lead,
    proposal: Proposal,
    *,
    action: str = "lead.route",
    audit: Mapping[str, Any] | None = None,
) -> RoutingDecision:
    """Take the proposal's round-robin turn (deciding again when another transaction took it first),
    assign the lead and record the decision with one audit event (`action`, payload extended by `audit`).
    """
    plan, now = proposal.plan, proposal.now
    for _attempt in range(MAX_TURN_ATTEMPTS):
        outcome, snap = proposal.outcome, proposal.snapshot
        if outcome.owner is None:
            break
        positions = {**snap.positions, outcome.assignment.scope: outcome.owner.id}
        turn = advance_cursor(session, plan.key, positions, snap.turns, now)
        if turn is not None:
            outcome.explanation["state"]["turn"] = turn
            break
        _decide(session, lead, proposal)
    else:
        raise RoutingContention(
            f"could not take a routing turn for lead {lead.id} after {MAX_TURN_ATTEMPTS} tries"
        )
    apply_route(lead, proposal)
    return _record(session, lead, plan, proposal.outcome, now, proposal.age, action, audit)


def _record(
    session: Session,
    lead: Lead,
    plan: RoutingPlan,
    outcome: Outcome,
    now: datetime,
    age: float,
    action: str = "lead.route",
    audit: Mapping[str, Any] | None = None,
) -> RoutingDecision:
    a = outcome.assignment
    owner = outcome.owner
    explanation = outcome.explanation
    labels = {"channel": plan.channel_labels.get(a.channel, {})}
    if outcome.rule_key is not None:
        labels["rule"] = dict(plan.assignment(outcome.rule_key).label or {})
    explanation["labels"] = labels
    if lead.id is None:
        session.flush()
    decision = build_row(
        RoutingDecision,
        {
            "lead_id": lead.id,
            "routing_version_id": plan.version_id,
            "routing_key": plan.key,
            "rule_key": a.key,
            "used_fallback": a.is_fallback,
            "channel": a.channel,
            "strategy": a.strategy,
            "outcome": outcome.outcome,
            "owner_id": owner.id if owner else None,
            "team_id": owner.team_id if owner else None,
            "pool_key": outcome.pool,
            "reason": outcome.reason if outcome.outcome == "unassigned" else None,
            "lead_age_seconds": int(age),
            "decided_at": now,
            "explanation": explanation,
        },
    )
    insert_row(session, decision)  # one prebuilt INSERT: this runs for every lead
    on_lead_assigned(session, lead, plan, now, decision)  # the owner's notification: one INSERT, no query
    # The one audit event is also the decision's line on the record timeline (no activity row of its own).
    append_event(
        session,
        at=now,
        actor_id=None,
        action=action,
        object_type="leads",
        object_id=lead.id,
        payload={
            **(audit or {}),
            "decision_id": decision.id,
            "outcome": outcome.outcome,
            "rule": outcome.rule_key,
            "fallback": a.is_fallback,
            "channel": a.channel,
            "strategy": a.strategy,
            "owner_id": decision.owner_id,
            "pool": outcome.pool,
            "reason": decision.reason,
            "routing_key": plan.key,
            "routing_version_id": plan.version_id,
        },
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
