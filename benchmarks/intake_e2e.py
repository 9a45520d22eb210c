"""Benchmark `intake_e2e`: one lead through the whole intake, against the bare SQL writes it needs.

Subject: `intake_lead` for each of N different people, each in its own transaction committed like a
request (`BEGIN IMMEDIATE` … `COMMIT`) on an SQLite (WAL) file: find the published routing and lead form
(one query; compiled plan and form from their caches), bind and validate the JSON submission against
the form, normalise phone / e-mail / institution, decide among 80 reps with the 50-rule routing of
`routing_eval` (one snapshot statement: the matched rule's candidates with every count they need, the
other reps of its roles for the explanation of who was considered, excluded or not matching), insert the
lead with its owner and working-calendar first-response deadline, claim its dedupe keys, take the
round-robin turn, insert the decision, the owner's in-app notification and the hash-chained `lead.intake`
audit event.
Baseline: the same rows written with plain SQL through the same engine in the same process, one
transaction per lead — INSERT the lead (same data), INSERT its two dedupe keys, UPDATE the cursor, INSERT
the decision (an explanation of the same size), the notification and an audit row — with everything
they contain computed beforehand. Both start from emptied tables (reset untimed before each call).
Sizes: leads per timed call, S = 50, M = 200, L = 500.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.engine import Engine

from benchmarks.routing_eval import NOW, REPS, build, make_leads, make_reps
from benchmarks.runner import Benchmark, Case, register
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.models import User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.workflows.intake import intake_lead
from salesmesh.workflows.intake_models import LeadDedupeKey
from salesmesh.workflows.models import Lead
from salesmesh.workflows.routing_models import RoundRobinCursor, RoutingDecision

LEADS = {"S": 50, "M": 200, "L": 500}
CALENDAR = (
    Path(__file__).resolve().parents[1] / "packs" / "medical-device-direct" / "definitions" / "calendar.json"
)
FORM_KEY = "bench-lead"
TABLES = (AuditEvent, Notification, RoutingDecision, LeadDedupeKey, Lead, RoundRobinCursor)


def _text(key: str, en: str, zh: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": "text", "label": {"en": en, "zh": zh}, **extra}


LEAD_FORM = {
    "kind": "form",
    "key": FORM_KEY,
    "schema_version": 1,
    "label": {"en": "Benchmark lead", "zh": "基准线索"},
    "record_type": "lead",
    "sections": [
        {
            "key": "main",
            "label": {"en": "Lead", "zh": "线索"},
            "fields": [
                _text("institution_name", "Institution", "机构", required=True),
                _text("institution_grade", "Grade", "等级"),
                _text("institution_type", "Type", "类型"),
                _text("region", "Region", "地区"),
                {"key": "bed_count", "type": "number", "label": {"en": "Beds", "zh": "床位数"}},
                _text("contact_name", "Name", "姓名", required=True),
                {"key": "phone", "type": "phone", "label": {"en": "Phone", "zh": "电话"}},
                {"key": "email", "type": "email", "label": {"en": "E-mail", "zh": "邮箱"}},
                _text("campaign", "Campaign", "活动"),
            ],
        }
    ],
}


def payloads(count: int) -> list[dict[str, Any]]:
    """N submissions from N different people, shaped like the medical-device pack's leads."""
    out = []
    for i, lead in enumerate(make_leads(count)):
        fields = {k: v for k, v in lead.items() if v is not None}
        fields.update(
            contact_name=f"Dr {i}", phone=f"139 {i // 10000:04d} {i % 10000:04d}", email=f" P{i}@Example.com "
        )
        out.append(fields)
    return out


def build_world(rt: Runtime, clock: FrozenClock) -> None:
    """Publish the calendar, the lead form and the 50-rule routing (with its SLA); add the 80 reps."""
    document, _hand, _fallback = build()
    document = {
        **document,
        "form": FORM_KEY,
        "first_response_sla": {"minutes": 30, "calendar": "md-workweek", "on_breach": "escalate"},
    }
    with rt.db.session_scope() as session:
        for doc in (json.loads(CALENDAR.read_text(encoding="utf-8")), LEAD_FORM, document):
            draft = create_definition_draft(session, None, doc, clock)
            publish_version(session, None, draft.id, clock)
        for rep in make_reps():
            session.add(
                User(
                    email=f"rep{rep['id']}@example.test",
                    name=rep["name"],
                    role=rep["role"],
                    password_hash="!",
                    active=rep["active"],
                    attributes=rep["attributes"],
                    daily_capacity=rep["capacity"],
                    unavailable_until=rep["away"],
                    created_at=clock.now(),
                )
            )


def _probe(rt: Runtime) -> dict[str, Any]:
    """The rows one real intake wrote, as the baseline's templates (same sizes of JSON)."""
    with rt.db.session_scope() as session:
        lead = session.scalars(select(Lead).order_by(Lead.id.desc()).limit(1)).one()
        decision = session.scalars(select(RoutingDecision).where(RoutingDecision.lead_id == lead.id)).one()
        note = session.scalars(select(Notification).order_by(Notification.id.desc()).limit(1)).one()
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one()
        return {
            "lead": {c.name: getattr(lead, c.key) for c in Lead.__table__.columns if c.name != "id"},
            "decision": {
                c.name: getattr(decision, c.key)
                for c in RoutingDecision.__table__.columns
                if c.name not in ("id", "lead_id")
            },
            "notification": {
                c.name: getattr(note, c.key) for c in Notification.__table__.columns if c.name != "id"
            },
            "event": {c.name: getattr(event, c.key) for c in AuditEvent.__table__.columns if c.name != "id"},
        }


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """Collect the SQL statements sent to `engine` inside the block."""
    statements: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _sql_row(row: dict[str, Any]) -> dict[str, Any]:
    """Values as the driver takes them: JSON as text, datetimes naive UTC (what the column types store)."""
    out = {}
    for name, value in row.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        elif hasattr(value, "tzinfo") and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        out[name] = value
    return out


def _insert(table: str, row: dict[str, Any], returning: str | None = None) -> Any:
    names = ", ".join(row)
    values = ", ".join(f":{n}" for n in row)
    return text(
        f"INSERT INTO {table} ({names}) VALUES ({values})" + (f" RETURNING {returning}" if returning else "")
    )


def prepare(size: str) -> Case:
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    clock = FrozenClock(NOW)
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.db'}", instance_path=work, secret_key=secrets.token_hex(16)
    )
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)
    build_world(rt, clock)
    count = LEADS[size]
    people = payloads(count)

    def reset() -> None:
        with rt.db.session_scope() as session:
            for model in TABLES:
                session.execute(delete(model))

    def subject() -> int:
        created = 0
        for fields in people:
            with rt.db.session_scope(immediate=True) as session:
                created += intake_lead(session, channel="web", payload=fields, clock=clock).created
        return created

    # Two real intakes (untimed): the first warms the caches, the second gives the baseline its rows and
    # the statement counts; then the world starts empty again.
    reset()
    for i in (0, 1):
        with rt.db.session_scope(immediate=True) as session, counting(rt.db.engine) as statements:
            intake_lead(session, channel="web", payload=people[i], clock=clock)
    probe = _probe(rt)
    reset()
    lead_row, decision_row = _sql_row(probe["lead"]), _sql_row(probe["decision"])
    note_row, event_row = _sql_row(probe["notification"]), _sql_row(probe["event"])
    insert_lead = _insert("leads", lead_row, "id")
    insert_keys = text(
        "INSERT INTO lead_dedupe_keys (kind, value, lead_id, created_at) "
        "VALUES ('phone', :phone, :lead_id, :at), ('email', :email, :lead_id, :at)"
    )
    insert_cursor = text(
        "INSERT INTO round_robin_cursors (routing_key, positions, turns, updated_at) "
        "VALUES (:key, '{}', 0, :at)"
    )
    turn = text(
        "UPDATE round_robin_cursors SET positions = :positions, turns = turns + 1, updated_at = :at "
        "WHERE routing_key = :key AND turns = :turns"
    )
    insert_decision = _insert("routing_decisions", {**decision_row, "lead_id": None})
    insert_note = _insert("notifications", note_row)
    insert_event = _insert("audit_events", event_row)
    immediate = rt.db.engine.execution_options(sqlite_begin="IMMEDIATE")
    at = lead_row["created_at"]

    def baseline() -> int:
        with immediate.begin() as conn:
            conn.execute(insert_cursor, {"key": decision_row["routing_key"], "at": at})
        seq = 0
        for i, fields in enumerate(people):
            with immediate.begin() as conn:
                lead_id = conn.execute(
                    insert_lead, {**lead_row, "phone": f"+86139{i:08d}", "email": fields["email"]}
                ).scalar()
                conn.execute(
                    insert_keys,
                    {"phone": f"+86139{i:08d}", "email": f"p{i}@example.com", "lead_id": lead_id, "at": at},
                )
                conn.execute(
                    turn,
                    {"positions": '{"rule": 1}', "at": at, "key": decision_row["routing_key"], "turns": i},
                )
                conn.execute(insert_decision, {**decision_row, "lead_id": lead_id})
                conn.execute(insert_note, {**note_row, "subject_id": lead_id})
                seq += 1
                conn.execute(insert_event, {**event_row, "seq": seq, "object_id": lead_id})
        return len(people)

    def cleanup() -> None:
        rt.close()
        shutil.rmtree(work, ignore_errors=True)

    def check() -> dict[str, Any]:
        """Untimed: what one call of each left behind (for the notes and the smoke test)."""
        reset()
        created = subject()
        with rt.db.session_scope() as session:
            assigned = session.scalar(
                select(func.count())
                .select_from(Lead)
                .where(Lead.owner_id.is_not(None), Lead.sla_due_at.is_not(None))
            )
            found = {
                "leads": count,
                "created": created,
                "assigned_with_deadline": assigned,
                "owners": session.scalar(select(func.count(func.distinct(Lead.owner_id)))),
                "chain_intact": verify_chain(session) is None,
                "subject_rows": _rows(session),
            }
        reset()
        baseline()
        with rt.db.session_scope() as session:
            found["baseline_rows"] = _rows(session)
        return found

    notes = {
        "database": "sqlite-wal",
        "reps": REPS,
        "rules": len(build()[0]["rules"]),
        "statements_per_lead": len([s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]),
        "baseline_statements_per_lead": 6,
        **check(),
    }
    reset()
    return Case(subject=subject, baseline=baseline, units=count, before=reset, cleanup=cleanup, notes=notes)


def _rows(session: Any) -> dict[str, int]:
    """Rows per table the intake writes (the cursor row aside)."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in TABLES
        if model is not RoundRobinCursor
    }


register(
    Benchmark(
        name="intake_e2e",
        description="full intake (validate, dedup, route 80 reps / 50 rules, audit, SLA) vs bare writes",
        target=0.25,
        prepare=prepare,
    )
)
