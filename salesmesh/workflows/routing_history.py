"""A lead's routing history as the lead page and the API show it: every decision, newest first, explained.

`lead_routing(session, lead)` reads the lead's routing decisions (the latest first, at most `limit`), the
current names of every rep they mention and the routing versions they were decided under, in three
statements whatever the number of decisions or candidates, and explains each with
`routing.explain`: the bilingual summary, the rules looked at (with their labels from the pinned
version), the candidates considered, who was excluded and why, and the round-robin state. The caller
has already fetched the lead through the policy (whoever may see the lead may see why it went where it
went); nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.models import User
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing import explain
from salesmesh.workflows.routing_decide import OUTCOME_NAMES, REASON_NAMES, RESULT_NAMES, STRATEGY_NAMES
from salesmesh.workflows.routing_models import RoutingDecision

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class LeadRouting:
    """A lead's explained decisions, newest first, and the labels of the routings they name."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    # (routing version id, rule key) -> bilingual label; (version id, channel key) -> label
    rule_labels: dict[tuple[int, str], Any] = field(default_factory=dict)
    channel_labels: dict[tuple[int, str], Any] = field(default_factory=dict)
    version_numbers: dict[int, int] = field(default_factory=dict)

    @property
    def latest(self) -> dict[str, Any] | None:
        """The decision that put the lead where it is (None when it was never routed)."""
        return self.decisions[0] if self.decisions else None

    def rule_label(self, decision: dict[str, Any], key: str | None) -> Any:
        """Return a rule's label in the routing version a decision was made under (its key otherwise)."""
        if key is None:
            return None
        version = (decision.get("routing") or {}).get("version_id")
        return self.rule_labels.get((version, key)) or key

    def channel_label(self, decision: dict[str, Any]) -> Any:
        """Return the label of a decision's channel (stored with it, else from its routing version)."""
        stored = (decision.get("labels") or {}).get("channel")
        if stored:
            return stored
        version = (decision.get("routing") or {}).get("version_id")
        return self.channel_labels.get((version, decision["channel"])) or decision["channel"]

    def to_dict(self) -> dict[str, Any]:
        """Return the history as JSON-ready data (the API's shape)."""
        plain = [{k: v for k, v in d.items() if k != "at"} for d in self.decisions]
        return {"latest": plain[0] if plain else None, "history": plain}

    # English message ids of stored codes (the template translates them).
    @staticmethod
    def reason_name(code: str | None) -> str:
        return REASON_NAMES.get(code or "", code or "")

    @staticmethod
    def result_name(code: str) -> str:
        return RESULT_NAMES.get(code, code)

    @staticmethod
    def strategy_name(code: str) -> str:
        return STRATEGY_NAMES.get(code, code)

    @staticmethod
    def outcome_name(code: str) -> str:
        return OUTCOME_NAMES.get(code, code)


def _mentioned(decision: RoutingDecision) -> set[int]:
    ids: set[int] = set()
    explanation = decision.explanation or {}
    for attempt in explanation.get("attempts", ()):
        ids.update((attempt.get("candidates") or {}).get("user_id", ()))
        ids.update(e["user_id"] for e in attempt.get("excluded", ()))
    state = explanation.get("state") or {}
    ids.update(v for v in (state.get("before"), state.get("after")) if isinstance(v, int))
    if decision.owner_id is not None:
        ids.add(decision.owner_id)
    return ids


def lead_routing(session: Session, lead: Lead, *, limit: int = HISTORY_LIMIT) -> LeadRouting:
    """Return the lead's routing decisions explained with current names, newest first (3 statements)."""
    rows = session.scalars(
        select(RoutingDecision)
        .where(RoutingDecision.lead_id == lead.id)
        .order_by(RoutingDecision.decided_at.desc(), RoutingDecision.id.desc())
        .limit(limit)
    ).all()
    if not rows:
        return LeadRouting()
    ids = set().union(*(_mentioned(d) for d in rows))
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    rule_labels: dict[tuple[int, str], Any] = {}
    channel_labels: dict[tuple[int, str], Any] = {}
    numbers: dict[int, int] = {}
    versions = session.execute(
        select(DefinitionVersion.id, DefinitionVersion.number, DefinitionVersion.document).where(
            DefinitionVersion.id.in_({d.routing_version_id for d in rows})
        )
    )
    for version_id, number, document in versions:
        numbers[version_id] = number
        for rule in (document or {}).get("rules", ()):
            rule_labels[(version_id, rule["key"])] = rule.get("label") or rule["key"]
        for channel in (document or {}).get("channels", ()):
            channel_labels[(version_id, channel["key"])] = channel.get("label") or channel["key"]
    return LeadRouting(
        decisions=[{**explain(d, names=names), "at": d.decided_at} for d in rows],
        names=names,
        rule_labels=rule_labels,
        channel_labels=channel_labels,
        version_numbers=numbers,
    )
