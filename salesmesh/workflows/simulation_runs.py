"""What the what-if simulator screen runs: which routing versions can be tried, leads read from a CSV
file, and one run of a version side by side with the published version of the same routing.

`routing_versions(session)` lists every draft and published routing version (one statement).
`leads_from_csv(session, version_id, raw, clock=...)` reads an uploaded CSV (UTF-8, a header row naming
lead form fields, optional `received_at` as an ISO date-time with zone), converts each value through the
routing's lead form (so numbers compare as numbers and multi-choice cells, separated by `;`, become
lists) and refuses the file with a list of {path: "row N/column", message} when a value cannot be read;
an empty required field is no reason to refuse (the simulation only needs what the rules read). Columns
the form does not know (e.g. `source_channel`, `campaign`) are passed to the rules as text.
`run_simulation(session, version_id, leads)` simulates the version and, when it is not itself the
published one, the published version over the same leads and compares them (`simulate.compare`).
Everything here only reads (`simulate` runs SELECT statements only).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from salesmesh.forms.binding import REQUIRED, bind
from salesmesh.forms.compile import published_form
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.metamodel.versions import get_published
from salesmesh.platform.clock import Clock
from salesmesh.platform.i18n import N_
from salesmesh.platform.rep_attributes import field_error
from salesmesh.workflows.record_values import RecordError
from salesmesh.workflows.routing_plan import RoutingUnavailable, plan_for_version
from salesmesh.workflows.simulate import (
    SimulatedLead,
    SimulationResult,
    compare,
    leads_from_rows,
    simulate_version,
)

MAX_CSV_ROWS = 5000
MAX_LAST = 5000
MULTI_SEPARATOR = ";"


@dataclass(frozen=True)
class VersionChoice:
    id: int
    key: str
    number: int
    status: str
    label: Any


@dataclass
class SimulationRun:
    """One run: the version tried (`other`) and, side by side, the published one (`base`) when different."""

    version: VersionChoice
    leads: int
    other: SimulationResult
    base: SimulationResult | None = None
    base_version: VersionChoice | None = None
    comparison: dict[str, Any] | None = None
    channel_labels: dict[str, Any] | None = None

    @property
    def results(self) -> list[tuple[VersionChoice, SimulationResult]]:
        """The results to show, the published one first."""
        first = [(self.base_version, self.base)] if self.base is not None and self.base_version else []
        return [*first, (self.version, self.other)]  # type: ignore[list-item]


def _choice(version: DefinitionVersion) -> VersionChoice:
    document = version.document or {}
    return VersionChoice(
        version.id, version.definition.key, version.number, version.status, document.get("label")
    )


def routing_versions(session: Session) -> list[VersionChoice]:
    """Return the draft and published routing versions, by routing key then newest first."""
    rows = session.execute(
        select(DefinitionVersion.id, Definition.key, DefinitionVersion.number, DefinitionVersion.status)
        .add_columns(DefinitionVersion.document["label"])
        .join(Definition, Definition.id == DefinitionVersion.definition_id)
        .where(Definition.kind == "routing", DefinitionVersion.status.in_(("draft", "published")))
        .order_by(Definition.key, DefinitionVersion.number.desc())
    ).all()
    return [VersionChoice(vid, key, number, status, label) for vid, key, number, status, label in rows]


def _routing_version(session: Session, version_id: Any) -> DefinitionVersion:
    version = session.get(DefinitionVersion, version_id) if isinstance(version_id, int) else None
    if version is None or version.definition.kind != "routing":
        raise RecordError([field_error("/version", N_("Choose a routing version from the list."))])
    return version


def leads_from_csv(session: Session, version_id: int, raw: bytes, *, clock: Clock) -> list[SimulatedLead]:
    """Read simulation leads from CSV bytes through the routing's lead form; RecordError lists problems."""
    version = _routing_version(session, version_id)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecordError([field_error("/file", N_("The file is not UTF-8 text."))]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not any(name.strip() for name in reader.fieldnames):
        raise RecordError([field_error("/file", N_("The file has no header row."))])
    form_key = (version.document or {}).get("form")
    spec = published_form(session, form_key) if isinstance(form_key, str) else None
    errors: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        if len(rows) >= MAX_CSV_ROWS:
            raise RecordError(
                [field_error("/file", N_("At most %(n)s rows can be simulated."), n=MAX_CSV_ROWS)]
            )
        cells = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k and isinstance(v, str)}
        cells = {k: v for k, v in cells.items() if v}
        if "received_at" in cells and not _aware(cells["received_at"]):
            message = N_("Write the time as an ISO date-time with its zone, e.g. 2026-03-02T09:30:00+08:00.")
            errors.append(field_error(f"/rows/{number}/received_at", message))
        facts: dict[str, Any] = {k: v for k, v in cells.items() if spec is None or spec.field(k) is None}
        if spec is not None:
            given = MultiDict()
            for key, value in cells.items():
                found = spec.field(key)
                if found is None or found.type.uploads:
                    continue
                parts = value.split(MULTI_SEPARATOR) if found.type.multiple else [value]
                given.setlist(key, [p.strip() for p in parts if p.strip()])
            bound = bind(spec, given, source="form", now=clock.now(), apply_defaults=False)
            for key, problems in bound.errors.items():
                problem = problems[0]
                if key in cells and problem["message"] != REQUIRED[0]:
                    errors.append({**problem, "path": f"/rows/{number}/{key}"})
            facts.update(bound.values)
        rows.append(facts)
    if errors:
        raise RecordError(errors[:50])
    if not rows:
        raise RecordError([field_error("/file", N_("The file has no lead rows."))])
    return leads_from_rows(rows, clock=clock)


def _aware(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def run_simulation(session: Session, version_id: Any, leads: list[SimulatedLead]) -> SimulationRun:
    """Simulate a routing version and, side by side, its routing's published version (reads only)."""
    version = _routing_version(session, version_id)
    published = get_published(session, "routing", version.definition.key)
    try:
        other = simulate_version(session, version.id, leads)
        base = None
        if published is not None and published.id != version.id:
            base = simulate_version(session, published.id, leads)
        plan = plan_for_version(session, version)
    except RoutingUnavailable as exc:
        problems = exc.errors or [{"path": "/version", "message": str(exc), "message_zh": str(exc)}]
        raise RecordError([{"message_zh": p.get("message", ""), **p} for p in problems]) from None
    run = SimulationRun(_choice(version), len(leads), other, channel_labels=dict(plan.channel_labels))
    if base is not None and published is not None:
        run.base, run.base_version = base, _choice(published)
        run.comparison = compare(base, other)
    return run
