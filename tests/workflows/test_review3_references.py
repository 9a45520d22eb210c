"""Review of issue 3: a reference field of the lead form accepts only records the editor may see.

Before the fix the lead edit bound the form without a resolver, so any integer was stored: the id of
another team's customer, a user of another team or a record that does not exist."""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace
from typing import Any

from salesmesh.metamodel.models import DefinitionVersion
from tests.workflows.conftest import publish
from tests.workflows.page_helpers import form_post, fresh, shipped, valid_lead_data
from tests.workflows.test_record_pages import ZH, _post, app, world  # noqa: F401  (fixtures)


def _form_with_references(session: Any, clock: Any) -> DefinitionVersion:
    doc = copy.deepcopy(shipped("lead_form.json"))
    doc["sections"][0]["fields"] += [
        {
            "key": "account",
            "type": "reference",
            "reference": {"target": "customer"},
            "label": {"en": "Account", "zh": "客户账户"},
        },
        {
            "key": "referrer",
            "type": "reference",
            "reference": {"target": "user"},
            "label": {"en": "Referred by", "zh": "推荐人"},
        },
    ]
    return publish(session, clock, doc)


def _error(html: str, key: str) -> str:
    match = re.search(rf'id="err-{key}"[^>]*>(.*?)</div>', html, re.S)
    return match.group(1) if match else ""


def test_reference_fields_accept_only_visible_records(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
    session: Any,
    clock: Any,
) -> None:
    version = _form_with_references(session, clock)
    world.lead.form_version_id = version.id
    session.commit()
    page = f"/leads/{world.lead.id}/edit"
    base = valid_lead_data()

    foreign = _post(client, page, form_post({**base, "account": world.foreign_customer.id}), page=page)
    assert foreign.status_code == 422
    assert "No such customer" in _error(foreign.get_data(as_text=True), "account")
    missing = _post(client, page, form_post({**base, "account": 999999}), page=page, headers=ZH)
    assert missing.status_code == 422 and "不存在" in _error(missing.get_data(as_text=True), "account")
    stranger = _post(client, page, form_post({**base, "referrer": world.other.id}), page=page)
    assert stranger.status_code == 422 and "No such user" in _error(
        stranger.get_data(as_text=True), "referrer"
    )
    assert "account" not in fresh(session, world.lead).data

    own = _post(
        client, page, form_post({**base, "account": world.customer.id, "referrer": world.rep.id}), page=page
    )
    assert own.status_code == 302
    lead = fresh(session, world.lead)
    assert lead.data["account"] == world.customer.id and lead.data["referrer"] == world.rep.id


def test_an_unchanged_reference_still_saves_after_the_record_went_out_of_sight(
    client: Any,
    world: SimpleNamespace,  # noqa: F811
    session: Any,
    clock: Any,
) -> None:
    version = _form_with_references(session, clock)
    world.lead.form_version_id = version.id
    world.lead.data = {**valid_lead_data(), "account": world.foreign_customer.id}
    session.commit()
    page = f"/leads/{world.lead.id}/edit"
    data = {**valid_lead_data(), "account": world.foreign_customer.id, "city": "南京"}
    assert _post(client, page, form_post(data), page=page).status_code == 302
    assert fresh(session, world.lead).data["city"] == "南京"
