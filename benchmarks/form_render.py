"""Benchmark `form_render`: rendering a 30-field generated form and validating a submission, against the
same form written by hand as a static template with a precompiled validator.

Subject (salesmesh's way, per request): find the compiled form of the pinned version (`compile_form`,
a cache hit), `bind` the HTML submission (strings and lists from a MultiDict: conversion, visibility
and requiredness conditions, JSON Schema) and render `forms.render_form` (the per-type Jinja macros)
with the bound values. Baseline: the same markup written out as a static Jinja template (compiled once;
labels through `_()`, values and errors from dicts) and the form's JSON Schema checked on the already
typed submission by a precompiled `Draft202012Validator`. Both run inside one English test request of
the real app. The form: 3 sections, 30 input fields of 11 types, 3 of them conditional. Sizes: the
number of render + validate rounds per timed call (S 20, M 60, L 150).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from benchmarks.runner import Benchmark, Case, register
from salesmesh.forms.binding import bind
from salesmesh.forms.compile import compile_document, compile_form
from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.metamodel.validation import checksum
from salesmesh.platform.app import create_app
from salesmesh.platform.settings import Settings

ROUNDS = {"S": 20, "M": 60, "L": 150}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GRADES = [
    ("tertiary_a", "Tertiary grade A", "三级甲等"),
    ("secondary", "Secondary", "二级"),
    ("primary", "Primary", "一级"),
]
PRODUCTS = [("imaging", "Imaging", "影像"), ("ultrasound", "Ultrasound", "超声"), ("ivd", "IVD", "体外诊断")]


def _options(items: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [{"value": v, "label": {"en": en, "zh": zh}} for v, en, zh in items]


def _field(key: str, ftype: str, en: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": ftype, "label": {"en": en, "zh": en + "（中）"}, **extra}


def build_form() -> dict[str, Any]:
    """Return the 30-field benchmark form document."""
    fields = []
    for i in range(6):
        fields.append(_field(f"text_{i}", "text", f"Text {i}", max_length=120, required=i < 3))
    for i in range(4):
        fields.append(_field(f"grade_{i}", "select", f"Grade {i}", options=_options(GRADES), required=i == 0))
    for i in range(3):
        fields.append(_field(f"count_{i}", "number", f"Count {i}", min=0, max=100000, decimals=0))
    for i in range(3):
        fields.append(_field(f"amount_{i}", "money", f"Amount {i}", currency="CNY", min=0, max=1e9))
    for i in range(3):
        fields.append(_field(f"day_{i}", "date", f"Day {i}"))
    fields.append(_field("flag_0", "boolean", "Flag 0"))
    fields.append(_field("flag_1", "boolean", "Flag 1"))
    fields.append(_field("phone", "phone", "Phone", required=True))
    fields.append(_field("email", "email", "E-mail"))
    fields.append(_field("website", "url", "Website"))
    fields.append(_field("products", "multi_select", "Products", options=_options(PRODUCTS)))
    fields.append(
        _field("notes", "long_text", "Notes", max_length=2000, help={"en": "Anything else", "zh": "其他"})
    )
    cond = {"==": [{"var": "flag_0"}, True]}
    fields.append(_field("tender_date", "date", "Tender date", visible_if=cond, required_if=cond))
    fields.append(_field("tender_no", "text", "Tender number", visible_if=cond, max_length=60))
    fields.append(
        _field(
            "competitor",
            "text",
            "Competitor",
            visible_if={"in": [{"var": "grade_1"}, ["tertiary_a", "secondary"]]},
        )
    )
    fields.append(_field("extra", "text", "Extra"))
    sections = [
        {
            "key": f"s{n}",
            "label": {"en": f"Section {n}", "zh": f"第{n}部分"},
            "columns": 2,
            "fields": fields[n * 10 : n * 10 + 10],
        }
        for n in range(3)
    ]
    return {
        "kind": "form",
        "key": "bench-form",
        "schema_version": 1,
        "label": {"en": "Benchmark form", "zh": "基准表单"},
        "record_type": "lead",
        "sections": sections,
    }


SUBMISSION: dict[str, Any] = {
    **{f"text_{i}": f"Value {i}" for i in range(6)},
    **{f"grade_{i}": "tertiary_a" for i in range(4)},
    **{f"count_{i}": str(100 * (i + 1)) for i in range(3)},
    **{f"amount_{i}": f"{1000 * (i + 1)}.50" for i in range(3)},
    **{f"day_{i}": f"2026-03-0{i + 1}" for i in range(3)},
    "flag_0": "on",
    "phone": "13812345678",
    "email": "li@example.cn",
    "website": "https://example.cn",
    "products": ["imaging", "ivd"],
    "notes": "Two lines\nof notes",
    "tender_date": "2026-05-20",
    "tender_no": "T-2026-001",
    "competitor": "Other brand",
}


def form_post() -> MultiDict:
    """The submission as a browser posts it."""
    pairs = []
    for key, value in SUBMISSION.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return MultiDict(pairs)


def static_template(doc: dict[str, Any]) -> str:
    """Write the form out as a plain Jinja template with the same markup the macros produce."""
    out = ['<div class="form-body" data-form="bench-form">']
    for section in doc["sections"]:
        out.append(f'<fieldset class="form-section" data-section="{section["key"]}">')
        out.append(f'<legend>{{{{ _("{section["label"]["en"]}") }}}}</legend>')
        out.append(f'<div class="form-grid cols-{section["columns"]}">')
        for f in section["fields"]:
            key, ftype, text = f["key"], f["type"], f["label"]["en"]
            cond = ""
            if "visible_if" in f:
                import json

                cond = f' data-visible-if="{escape(json.dumps(f["visible_if"], separators=(",", ":")))}"'
            err = (
                f'{{% if errors.{key} %}}<div class="field-error" id="err-{key}">'
                f"{{{{ errors.{key}[0].message }}}}</div>{{% endif %}}"
            )
            invalid = f'{{% if errors.{key} %}} aria-describedby="err-{key}" aria-invalid="true"{{% endif %}}'
            required = ' required aria-required="true"' if f.get("required") else ""
            out.append(f'<div class="field field-{ftype}" data-field="{key}" data-type="{ftype}"{cond}>')
            label = f'<label for="f-{key}">{{{{ _("{text}") }}}}</label>'
            value = f'{{{{ values.get("{key}", "") }}}}'
            if ftype == "boolean":
                checked = f'{{% if values.get("{key}") %}} checked{{% endif %}}'
                out.append(
                    f'<div class="choice"><input type="checkbox" id="f-{key}" name="{key}" '
                    f'value="true"{checked}><label for="f-{key}">{{{{ _("{text}") }}}}</label></div>'
                )
            elif ftype == "select":
                out.append(
                    label
                    + f'<select id="f-{key}" name="{key}"{invalid}{required}>'
                    + '<option value="">{{ _("Choose…") }}</option>'
                )
                for opt in f["options"]:
                    sel = f'{{% if values.get("{key}") == "{opt["value"]}" %}} selected{{% endif %}}'
                    out.append(
                        f'<option value="{opt["value"]}"{sel}>{{{{ _("{opt["label"]["en"]}") }}}}</option>'
                    )
                out.append("</select>")
            elif ftype == "multi_select":
                out.append(f'<fieldset class="choices" id="f-{key}"><legend>{{{{ _("{text}") }}}}</legend>')
                for n, opt in enumerate(f["options"], 1):
                    chk = f'{{% if "{opt["value"]}" in values.get("{key}", []) %}} checked{{% endif %}}'
                    out.append(
                        f'<div class="choice"><input type="checkbox" id="f-{key}-{n}" name="{key}" '
                        f'value="{opt["value"]}"{chk}><label for="f-{key}-{n}">'
                        f'{{{{ _("{opt["label"]["en"]}") }}}}</label></div>'
                    )
                out.append("</fieldset>")
            elif ftype == "long_text":
                out.append(
                    label
                    + f'<textarea id="f-{key}" name="{key}" rows="4"{invalid}{required}>{value}</textarea>'
                )
            else:
                kind = {
                    "number": "number",
                    "date": "date",
                    "phone": "tel",
                    "email": "email",
                    "url": "url",
                }.get(ftype, "text")
                out.append(
                    label
                    + f'<input type="{kind}" id="f-{key}" name="{key}" value="{value}"{invalid}{required}>'
                )
            if "help" in f:
                out.append(
                    f'<div class="field-help muted" id="help-{key}">{{{{ _("{f["help"]["en"]}") }}}}</div>'
                )
            out.append(err + "</div>")
        out.append("</div></fieldset>")
    out.append("</div>")
    return "\n".join(out)


def prepare(size: str) -> Case:
    work = Path(tempfile.mkdtemp(prefix="bench-form-"))
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.db'}", instance_path=work, secret_key=secrets.token_hex(16)
    )
    app = create_app(settings)
    doc = build_form()
    version = DefinitionVersion(id=1, number=1, status="published", document=doc, checksum=checksum(doc))
    spec = compile_form(version)
    subject_page = app.jinja_env.from_string(
        '{% import "forms/fields.html" as forms %}{{ forms.render_form(spec, values, errors, state=state) }}'
    )
    static_page = app.jinja_env.from_string(static_template(doc))
    validator = Draft202012Validator(compile_document(doc).json_schema)
    post = form_post()
    typed = bind(spec, post, now=NOW)
    if not typed.valid:
        raise RuntimeError(f"the benchmark submission does not validate: {typed.errors}")
    values = typed.values
    rounds = ROUNDS[size]
    ctx = app.test_request_context("/", headers={"Accept-Language": "en"})
    ctx.push()

    def subject() -> None:
        for _ in range(rounds):
            form = compile_form(version)
            bound = bind(form, post, now=NOW)
            subject_page.render(spec=form, values=bound.redisplay, errors=bound.errors, state=bound.state)

    def baseline() -> None:
        for _ in range(rounds):
            errors: dict[str, list[dict[str, str]]] = {}
            for error in validator.iter_errors(values):
                errors.setdefault(str(error.path[0]) if error.path else "", []).append(
                    {"message": error.message}
                )
            static_page.render(values=values, errors=errors)

    def cleanup() -> None:
        ctx.pop()
        app.extensions["salesmesh"].close()
        shutil.rmtree(work, ignore_errors=True)

    return Case(
        subject=subject,
        baseline=baseline,
        units=rounds,
        cleanup=cleanup,
        notes={
            "fields": 30,
            "conditional_fields": 3,
            "rounds": rounds,
            "subject_html_bytes": len(subject_page.render(spec=spec, values=typed.redisplay, errors={})),
        },
    )


register(
    Benchmark(
        name="form_render",
        description="bind + render a 30-field generated form vs a static template + precompiled validator",
        target=0.75,
        prepare=prepare,
    )
)
