"""Helpers for the public form tests: a lead form with help, options and a conditional field, its
routing and reps, the form opened to the public, and a browser-like "open the page, wait, send"."""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy.orm import Session

from salesmesh.platform.clock import Clock, FrozenClock
from salesmesh.workflows.public_forms import enable_public_form
from tests.workflows.intake_helpers import LEAD_FORM
from tests.workflows.routing_helpers import add_rep, add_team, publish, routing_doc, rule

URL = "/f/test-lead"
TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def public_lead_form() -> dict[str, Any]:
    """The intake tests' lead form plus help text, a checkbox and a date shown and required when ticked."""
    doc = copy.deepcopy(LEAD_FORM)
    fields = doc["sections"][0]["fields"]
    fields[0]["help"] = {"en": "Who should we call back?", "zh": "我们应该回电给谁？"}
    doc["sections"].append(
        {
            "key": "plans",
            "label": {"en": "Plans", "zh": "计划"},
            "fields": [
                {
                    "key": "tender_planned",
                    "type": "boolean",
                    "label": {"en": "Tender planned", "zh": "计划招标"},
                },
                {
                    "key": "tender_date",
                    "type": "date",
                    "label": {"en": "Tender date", "zh": "招标日期"},
                    "visible_if": {"==": [{"var": "tender_planned"}, True]},
                    "required_if": {"==": [{"var": "tender_planned"}, True]},
                },
            ],
        }
    )
    return doc


def public_world(
    session: Session, clock: Clock, *, form: dict[str, Any] | None = None, enable: bool = True, **options: Any
) -> list[int]:
    """Publish the form (or `form`) and a round-robin routing over it, add three reps, open the form unless
    `enable` is false (`options` go to enable_public_form); return the reps' ids."""
    publish(session, clock, form or public_lead_form())
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
    reps = [add_rep(session, clock, f"Rep {i}", team=team).id for i in range(3)]
    settings: dict[str, Any] = {
        "presets": {"source": "website"},
        "frame_ancestors": ["https://www.example.com"],
    }
    settings.update(options)
    if enable:
        enable_public_form(session, "test-lead", clock=clock, **settings)
    return reps


def fields(**values: Any) -> dict[str, Any]:
    """A valid filled-in form, overridden by `values` (None drops a field)."""
    data: dict[str, Any] = {
        "contact_name": "Dr Chen",
        "institution_name": "Peking Union Hospital",
        "institution_grade": "tertiary_a",
        "phone": "138 1234 5678",
        "email": "chen@example.com",
    }
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def token_of(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "no form token on the page"
    return match.group(1)


def send(
    client: Any, clock: FrozenClock, data: dict[str, Any], *, url: str = URL, wait: float = 5, **kwargs: Any
) -> Any:
    """Open the form like a browser, take `wait` seconds to fill it in, and send `data` with its token."""
    page = client.get(url, **kwargs)
    assert page.status_code == 200, page.status_code
    clock.advance(seconds=wait)
    return client.post(url, data={**data, "_token": token_of(page.get_data(as_text=True))}, **kwargs)
