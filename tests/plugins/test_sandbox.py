"""Sandboxed templates: plain data renders, escapes are blocked, and output size, big operands and time
are bounded; syntax errors name the JSON pointer of the template."""

from __future__ import annotations

import time

import pytest

from salesmesh.plugins.sandbox import MAX_OUTPUT, TemplateFailed, compile_template, render_template
from salesmesh.plugins.spec import ActionConfigError


def _render(source: str, **context: object) -> str:
    return render_template(compile_template(source, "/body/en"), context)


def test_plain_data_renders_and_missing_values_render_empty() -> None:
    out = _render(
        "Dear {{ contact.name }}, {{ deal.fields.x.y }}{{ survey_url }}", contact={"name": "Dr. Zhang"}
    )
    assert out == "Dear Dr. Zhang, "


def test_escapes_render_nothing_and_mutation_is_refused() -> None:
    assert _render("{{ ''.__class__.__mro__ }}{{ contact.__init__ }}", contact={"name": "x"}) == ""
    with pytest.raises(TemplateFailed, match="SecurityError"):
        _render("{{ items.append(1) }}", items=[])


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ 'x' * 1000000 }}", "would exceed"),
        ("{{ [1] * 1000000 }}", "would exceed"),
        ("{{ 10 ** 100000 }}", "exponents above"),
        ("{% for i in range(100000) %}{{ 'abcdefghij' }}{% endfor %}", f"passed {MAX_OUTPUT} characters"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_resource_hungry_templates_fail_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(TemplateFailed, match=reason):
        _render(source)


def test_a_busy_loop_without_output_is_stopped_after_a_second() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateFailed, match="longer than 1 s"):
        _render("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
    assert time.monotonic() - started < 5
    assert _render("still {{ 'fine' }}") == "still fine"  # the interrupt never leaks into the next render


def test_syntax_errors_name_the_pointer_and_line() -> None:
    with pytest.raises(ActionConfigError) as caught:
        compile_template("line one\n{% if %}", "/steps/2/action/params/body/zh")
    assert caught.value.pointer == "/steps/2/action/params/body/zh" and "line 2" in caught.value.message
