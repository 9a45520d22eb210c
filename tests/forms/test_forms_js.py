"""forms.js in a real browser (Debian chromium through Playwright, no server): conditional fields appear
and disappear without a reload, hidden inputs are disabled, requiredness follows `required_if`, chained
conditions settle as the server settles them, and the script's JsonLogic subset agrees with the public
JsonLogic conformance cases it covers and with the Python compiler."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import render_template_string

from salesmesh.forms.compile import compile_document
from salesmesh.metamodel.conditions import evaluate
from tests.forms.conftest import ROOT, form_doc, shipped

pytestmark = pytest.mark.browser

SCRIPT = (ROOT / "salesmesh" / "platform" / "static" / "forms.js").read_text(encoding="utf-8")
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "jsonlogic" / "tests.json"
SUBSET = {
    "var",
    "missing",
    "and",
    "or",
    "if",
    "?:",
    "!",
    "!!",
    "==",
    "!=",
    "===",
    "!==",
    "<",
    "<=",
    ">",
    ">=",
    "in",
}


def page_with(app, page, spec, values=None):  # type: ignore[no-untyped-def]
    """Fill the page with the rendered form and the script inlined (no network)."""
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        html = render_template_string(
            '{% import "forms/fields.html" as forms %}{{ forms.render_form(spec, values) }}',
            spec=spec,
            values=values or {},
        )
    html = re.sub(r"<link [^>]*>|<script [^>]*></script>", "", html)
    page.set_content(
        f"<!doctype html><html><body><form novalidate>{html}</form><script>{SCRIPT}</script></body></html>"
    )
    return page


def test_conditional_field_appears_only_when_its_condition_holds(forms_app, page) -> None:
    page_with(forms_app, page, compile_document(shipped("md-lead")))
    wrapper = page.locator('[data-field="tender_date"]')
    date = page.locator("#f-tender_date")
    assert wrapper.is_hidden() and date.is_disabled()
    page.check("#f-tender_planned")
    assert wrapper.is_visible() and date.is_enabled()
    assert date.evaluate("el => el.required") is True
    assert page.locator('[data-field="tender_date"] .req').is_visible()
    page.uncheck("#f-tender_planned")
    assert wrapper.is_hidden() and date.is_disabled()
    assert date.evaluate("el => el.required") is False


def test_select_and_date_conditions_on_the_deal_form(forms_app, page) -> None:
    page_with(forms_app, page, compile_document(shipped("md-deal")))
    competitor = page.locator('[data-field="competitor_name"]')
    assert competitor.is_hidden()
    page.select_option("#f-competitor_type", "domestic_brand")
    assert competitor.is_visible()
    page.select_option("#f-competitor_type", "none")
    assert competitor.is_hidden()
    result = page.locator('[data-field="trial_result"]')
    assert result.is_hidden()
    page.fill("#f-trial_start_date", "2026-03-02")
    assert result.is_visible()


def test_chained_conditions_settle_like_the_server(forms_app, page) -> None:
    spec = compile_document(
        form_doc(
            {"key": "c", "type": "text", "visible_if": {"==": [{"var": "b"}, "yes"]}},
            {"key": "b", "type": "text", "visible_if": {"==": [{"var": "a"}, True]}},
            {"key": "a", "type": "boolean"},
        )
    )
    page_with(forms_app, page, spec, {"a": True, "b": "yes"})
    assert page.locator('[data-field="c"]').is_visible()
    page.uncheck("#f-a")
    # b is hidden, so c sees b as absent although its input still says "yes" — as spec.state() decides.
    assert spec.state({"a": False, "b": "yes"}).hidden == frozenset({"b", "c"})
    assert page.locator('[data-field="b"]').is_hidden() and page.locator('[data-field="c"]').is_hidden()
    page.check("#f-a")
    assert page.locator('[data-field="c"]').is_visible()


def _ops(rule: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(rule, dict) and len(rule) == 1:
        [(op, args)] = rule.items()
        found.add(op)
        found |= _ops(args)
    elif isinstance(rule, list):
        for item in rule:
            found |= _ops(item)
    return found


def test_script_evaluator_agrees_with_conformance_cases_and_python(forms_app, page) -> None:
    cases = [c for c in json.loads(Path(CONFORMANCE).read_text(encoding="utf-8")) if isinstance(c, list)]
    covered = [c for c in cases if _ops(c[0]) and _ops(c[0]) <= SUBSET]
    assert len(covered) > 80, "the conformance file should exercise the script's operators"
    page.set_content(f"<!doctype html><html><body><script>{SCRIPT}</script></body></html>")
    results = page.evaluate(
        "cases => cases.map(c => window.salesmeshForms.evaluate(c[0], c[1]))", [[c[0], c[1]] for c in covered]
    )
    mismatches = []
    for (rule, data, expected), got in zip(covered, results, strict=True):
        python = evaluate(rule, data)
        if got != expected or python != expected:
            mismatches.append(
                f"{json.dumps(rule)} on {json.dumps(data)}: js {got!r}, python {python!r}, want {expected!r}"
            )
    assert mismatches == []
