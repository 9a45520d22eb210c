"""Helpers for the intake tests: a small published lead form and routing, reps, channels and signed posts."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock
from salesmesh.workflows.intake_channels import create_channel, sign
from tests.workflows.routing_helpers import add_rep, add_team, publish, routing_doc, rule

LEAD_FORM = {
    "kind": "form",
    "key": "test-lead",
    "schema_version": 1,
    "label": {"en": "Test lead", "zh": "测试线索"},
    "record_type": "lead",
    "sections": [
        {
            "key": "main",
            "label": {"en": "Lead", "zh": "线索"},
            "fields": [
                {
                    "key": "contact_name",
                    "type": "text",
                    "label": {"en": "Name", "zh": "姓名"},
                    "required": True,
                },
                {
                    "key": "institution_name",
                    "type": "text",
                    "label": {"en": "Institution", "zh": "机构"},
                    "required": True,
                },
                {
                    "key": "institution_grade",
                    "type": "select",
                    "label": {"en": "Grade", "zh": "等级"},
                    "options": [
                        {"value": "tertiary_a", "label": {"en": "Tertiary A", "zh": "三甲"}},
                        {"value": "primary", "label": {"en": "Primary", "zh": "一级"}},
                    ],
                },
                {"key": "phone", "type": "phone", "label": {"en": "Phone", "zh": "电话"}},
                {"key": "email", "type": "email", "label": {"en": "E-mail", "zh": "邮箱"}},
                {"key": "source", "type": "text", "label": {"en": "Source", "zh": "来源"}},
                {"key": "campaign", "type": "text", "label": {"en": "Campaign", "zh": "活动"}},
            ],
        }
    ],
}


def intake_world(session: Session, clock: Clock, reps: int = 3) -> list[int]:
    """Publish the test lead form and a round-robin routing over it; add reps; return their ids."""
    publish(session, clock, LEAD_FORM)
    publish(
        session,
        clock,
        routing_doc(
            [
                rule("key_account", {"==": [{"var": "institution_grade"}, "tertiary_a"]}),
                rule("everyone", True),
            ]
        ),
    )
    team = add_team(session, clock, "east")
    return [add_rep(session, clock, f"Rep {i}", team=team).id for i in range(reps)]


def add_channel(session: Session, clock: Clock, key: str = "hotline", **kwargs: Any) -> str:
    """Create an intake channel; return its secret."""
    return create_channel(session, key=key, label=key.title(), clock=clock, **kwargs)[1]


def payload(**fields: Any) -> dict[str, Any]:
    """A valid set of form values, overridden by `fields`."""
    values: dict[str, Any] = {
        "contact_name": "Dr Chen",
        "institution_name": "Peking  Union Hospital",
        "phone": "138 1234 5678",
        "email": "  Chen@Example.COM ",
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


def signed_headers(
    secret: str, body: bytes, clock: Clock, *, channel: str = "hotline", skew: int = 0, **extra: str
) -> dict[str, str]:
    """Headers of a correctly signed POST /api/v1/leads (timestamp: the clock's now + `skew` seconds)."""
    ts = str(int(clock.now().timestamp()) + skew)
    return {
        "Content-Type": "application/json",
        "X-Salesmesh-Channel": channel,
        "X-Salesmesh-Timestamp": ts,
        "X-Salesmesh-Signature": sign(secret, ts, body),
        **extra,
    }


def body_of(fields: dict[str, Any], **envelope: Any) -> bytes:
    """The JSON body of a lead post."""
    return json.dumps({"fields": fields, **envelope}).encode()
