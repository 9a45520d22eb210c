"""Benchmark `sweeper_drain`: firing due action-pack steps with the sweeper, against bare batched SQL that
claims the same rows, writes the same rows and marks them done.

Subject: `sweep_once` in a loop until nothing is due, on SQLite (WAL): batched claims under a lease
(`BEGIN IMMEDIATE`), then per chunk of 20 the row locks and lease checks, and per step a savepoint, the
deal, the pinned pack (compiled once), the ledger entry, and the step's action — a `remind`: an in-app
notification and a `reminder` activity with its hash-chained audit event — then `done`. Baseline: the
same claims as one `UPDATE ... RETURNING` per batch of 200, then with plain SQL per batch the deals'
owners, `executemany` INSERTs of the ledger rows, notifications, activities and audit rows (hashes
computed in Python), and one UPDATE marking the batch done. Both start from the same state (reset,
untimed, before each call): 10 % of the pending steps due, the rest due tomorrow. Sizes: S = 1,000 due of
10,000 pending, M = 5,000 of 50,000, L = 10,000 of 100,000 (the issue's figure).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update

from benchmarks.runner import Benchmark, Case, register
from salesmesh.metamodel.versions import create_definition_draft, publish_version
from salesmesh.platform.audit import AuditEvent
from salesmesh.platform.clock import FrozenClock
from salesmesh.platform.db import Base
from salesmesh.platform.models import Team, User
from salesmesh.platform.notifications import Notification
from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings
from salesmesh.platform.sweeper import sweep_once
from salesmesh.platform.timers import Effect, Timer
from salesmesh.workflows.action_packs import STEP_KIND
from salesmesh.workflows.models import Activity, Customer, Deal

DUE = {"S": 1_000, "M": 5_000, "L": 10_000}
PENDING_FACTOR = 10
DEALS = 500
BATCH = 200
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_STAMP = "%Y-%m-%d %H:%M:%S.%f"

PIPELINE = {
    "kind": "pipeline",
    "key": "bench-sales",
    "schema_version": 1,
    "label": {"en": "Bench", "zh": "基准"},
    "mode": "free",
    "allow_any": True,
    "stages": [
        {
            "key": "demo",
            "label": {"en": "Demo", "zh": "演示"},
            "probability": 40,
            "outcome": "open",
            "action_packs": ["bench-pack"],
        },
        {"key": "won", "label": {"en": "Won", "zh": "赢单"}, "probability": 100, "outcome": "won"},
    ],
}
PACK = {
    "kind": "action_pack",
    "key": "bench-pack",
    "schema_version": 1,
    "label": {"en": "Bench pack", "zh": "基准动作包"},
    "steps": [
        {
            "key": "send_case_studies",
            "label": {"en": "Send case studies", "zh": "发送成功案例"},
            "offset": {"after_hours": 48, "relative_to": "stage_entry"},
            "action": {
                "kind": "remind",
                "params": {
                    "to": "owner",
                    "message": {"en": "Send the case studies.", "zh": "请发送成功案例。"},
                },
            },
        }
    ],
}


def _world(rt: Runtime, clock: FrozenClock, due: int) -> dict[str, Any]:
    """Publish the pipeline and pack, add reps and deals, and insert the step timers in bulk."""
    with rt.db.session_scope() as s:
        for doc in (PACK, PIPELINE):
            draft = create_definition_draft(s, None, doc, clock)
            version = publish_version(s, None, draft.id, clock)
            if doc["kind"] == "pipeline":
                pipeline_id = version.id
            else:
                pack_id = version.id
        team = Team(key="bench", name={"en": "Bench", "zh": "基准"}, created_at=NOW)
        s.add(team)
        s.flush()
        reps = [
            User(
                email=f"rep{i}@bench.test",
                name=f"Rep {i}",
                role="rep",
                team_id=team.id,
                password_hash="!",
                active=True,
                attributes={},
                created_at=NOW,
            )
            for i in range(20)
        ]
        s.add_all(reps)
        s.flush()
        customer = Customer(
            name="Bench Hospital",
            name_key="benchhospital",
            region_key="",
            data={},
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(customer)
        s.flush()
        deals = [
            {
                "name": f"Deal {i}",
                "customer_id": customer.id,
                "pipeline_version_id": pipeline_id,
                "pipeline_key": "bench-sales",
                "stage_key": "demo",
                "stage_entered_at": NOW - timedelta(hours=48),
                "status": "open",
                "owner_id": reps[i % len(reps)].id,
                "team_id": team.id,
                "currency": "CNY",
                "data": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(DEALS)
        ]
        s.execute(insert(Deal), deals)
        deal_ids = list(s.scalars(select(Deal.id).order_by(Deal.id)))
    rows = []
    for n in range(due * PENDING_FACTOR):
        deal = deal_ids[n % len(deal_ids)]
        entered = NOW - timedelta(hours=48, seconds=n) if n < due else NOW + timedelta(days=1, seconds=n)
        rows.append(
            {
                "kind": STEP_KIND,
                "due_at": entered + timedelta(hours=48),
                "status": "pending",
                "payload": {
                    "deal": deal,
                    "stage": "demo",
                    "entered_at": entered.isoformat(),
                    "pack": "bench-pack",
                    "pack_version": pack_id,
                    "step": "send_case_studies",
                    "retry_backoff_seconds": 300,
                },
                "subject_type": "deal",
                "subject_id": deal,
                "attempts": 0,
                "max_attempts": 3,
                "dedupe_key": f"bench:{n}",
                "created_at": NOW,
            }
        )
    with rt.db.session_scope() as s:
        for start in range(0, len(rows), 5000):
            s.execute(insert(Timer), rows[start : start + 5000])
        audit_floor = s.scalar(select(func.max(AuditEvent.id))) or 0
    return {"audit_floor": audit_floor}


def _baseline(rt: Runtime, now: datetime) -> int:
    """Claim, write and mark the due steps with bare SQL, a batch of 200 per transaction."""
    fired = 0
    # Stored as SQLAlchemy stores UTC datetimes on SQLite (text with microseconds), so they compare.
    lease = (now + timedelta(minutes=2)).strftime(_STAMP)
    naive_now = now.strftime(_STAMP)
    claim = text(
        "UPDATE timers SET status = 'running', lease_owner = 'bare', lease_until = :lease, "
        "attempts = attempts + 1 WHERE id IN (SELECT id FROM timers WHERE status = 'pending' "
        "AND due_at <= :now ORDER BY due_at, id LIMIT :n) RETURNING id, payload"
    )
    while True:
        with rt.db.ImmediateSession() as s, s.begin():
            claimed = s.execute(claim, {"lease": lease, "now": naive_now, "n": BATCH}).all()
            if not claimed:
                return fired
            steps = [(row[0], json.loads(row[1])) for row in claimed]
            deal_ids = sorted({p["deal"] for _, p in steps})
            owners = dict(
                s.execute(
                    text(f"SELECT id, owner_id FROM deals WHERE id IN ({','.join(map(str, deal_ids))})")
                ).all()
            )
            last = s.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).first()
            seq, prev = (last[0], last[1]) if last else (0, "0" * 64)
            effects, notes, activities, audits = [], [], [], []
            for timer_id, payload in steps:
                deal, owner = payload["deal"], owners[payload["deal"]]
                effects.append(
                    {"k": f"timer:{timer_id}:remind", "t": timer_id, "p": json.dumps({"user_id": owner})}
                )
                notes.append({"u": owner, "s": deal, "p": json.dumps({"deal": deal}), "at": naive_now})
                activities.append({"d": deal, "o": owner, "at": naive_now, "sum": "Send the case studies."})
                seq += 1
                body = json.dumps([seq, naive_now, None, "activity.log", "activities", deal])
                digest = hashlib.sha256((prev + body).encode()).hexdigest()
                audits.append({"seq": seq, "at": naive_now, "oid": deal, "prev": prev, "h": digest})
                prev = digest
            s.execute(
                text(
                    "INSERT INTO effects (idempotency_key, timer_id, kind, payload, created_at) "
                    "VALUES (:k, :t, 'actions.remind', :p, :now)"
                ),
                [{**e, "now": naive_now} for e in effects],
            )
            s.execute(
                text(
                    "INSERT INTO notifications (user_id, kind, subject_type, subject_id, params, created_at, "
                    "outbox_state) VALUES (:u, 'actions.reminder', 'deal', :s, :p, :at, 'pending')"
                ),
                notes,
            )
            s.execute(
                text(
                    "INSERT INTO activities (kind, subject_type, deal_id, occurred_at, owner_id, summary, "
                    "data, created_at) VALUES ('reminder', 'deal', :d, :at, :o, :sum, '{}', :at)"
                ),
                activities,
            )
            s.execute(
                text(
                    "INSERT INTO audit_events (seq, at, action, object_type, object_id, payload, prev_hash, "
                    "hash) VALUES (:seq, :at, 'activity.log', 'activities', :oid, '{}', :prev, :h)"
                ),
                audits,
            )
            ids = ",".join(str(t) for t, _ in steps)
            s.execute(
                text(
                    f"UPDATE timers SET status = 'done', lease_owner = NULL, lease_until = NULL, "
                    f"fired_at = :now WHERE id IN ({ids})"
                ),
                {"now": naive_now},
            )
            fired += len(steps)


def build(size: str) -> tuple[Case, Callable[[], dict[str, int]]]:
    """Return the case and a function telling what a run left behind (steps done, rows written)."""
    due = DUE[size]
    work = Path(tempfile.mkdtemp(prefix="bench-sweeper-"))
    clock = FrozenClock(NOW)
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.db'}",
        instance_path=work,
        secret_key=secrets.token_hex(16),
        sweeper_batch_size=BATCH,
    )
    rt = Runtime(settings, clock=clock)
    Base.metadata.create_all(rt.db.engine)
    state = _world(rt, clock, due)

    def reset() -> None:
        with rt.db.session_scope(immediate=True) as s:
            s.execute(delete(Effect))
            s.execute(delete(Notification))
            s.execute(delete(Activity))
            s.execute(delete(AuditEvent).where(AuditEvent.id > state["audit_floor"]))
            s.execute(
                update(Timer)
                .where(Timer.due_at <= NOW)
                .values(status="pending", attempts=0, lease_owner=None, lease_until=None, fired_at=None)
            )

    def subject() -> int:
        fired = 0
        while (n := sweep_once(rt, owner="bench")) > 0:
            fired += n
        return fired

    def baseline() -> int:
        return _baseline(rt, clock.now())

    def outcome() -> dict[str, int]:
        """What a run left behind: steps done, ledger rows, notifications, reminders."""
        with rt.db.session_scope() as s:
            return {
                "done": s.scalar(select(func.count()).select_from(Timer).where(Timer.status == "done")) or 0,
                "effects": s.scalar(select(func.count()).select_from(Effect)) or 0,
                "notifications": s.scalar(select(func.count()).select_from(Notification)) or 0,
                "reminders": s.scalar(select(func.count()).select_from(Activity)) or 0,
            }

    def cleanup() -> None:
        rt.close()
        shutil.rmtree(work, ignore_errors=True)

    case = Case(
        subject=subject,
        baseline=baseline,
        units=due,
        before=reset,
        cleanup=cleanup,
        notes={"due": due, "pending": due * PENDING_FACTOR, "batch": BATCH},
    )
    return case, outcome


def prepare(size: str) -> Case:
    return build(size)[0]


register(
    Benchmark(
        name="sweeper_drain",
        description="fire due action-pack steps (remind) with the sweeper vs. bare batched SQL",
        target=0.3,
        prepare=prepare,
        pairs={"S": 3, "M": 3, "L": 3},
    )
)
