"""Rendering forms with the Jinja macros: accessible markup (labels, aria, required), errors next to their
field in the request's language, the data attributes the browser script reads, server-side initial
visibility, every field type's macro, the read-only value list, and the static assets."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import render_template_string

from salesmesh.forms.binding import bind, display_values
from salesmesh.forms.compile import compile_document
from tests.forms.conftest import form_doc, shipped

PAGE = (
    '{% import "forms/fields.html" as forms %}<form method="post" novalidate>'
    "{{ forms.render_form(spec, values, errors, choices=choices) }}</form>"
)


class Tags(HTMLParser):
    """Collect every start tag with its attributes, and the text inside elements with an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in ("input", "link", "br", "meta"):
            self._open.append(attributes.get("id"))
            if attributes.get("id"):
                self.text_by_id[attributes["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("input", "link", "br", "meta") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident:
                self.text_by_id[ident] += data

    def find(self, tag: str, **attrs: str) -> dict[str, Any]:
        for name, attributes in self.tags:
            if name == tag and all(attributes.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                return attributes
        raise AssertionError(f"no <{tag} {attrs}>")

    def wrapper(self, key: str) -> dict[str, Any]:
        return self.find("div", data_field=key)


def render(app, spec, values=None, errors=None, *, lang="en", choices=None) -> Tags:  # type: ignore[no-untyped-def]
    with app.test_request_context("/", headers={"Accept-Language": lang}):
        html = render_template_string(
            PAGE, spec=spec, values=values or {}, errors=errors or {}, choices=choices or {}
        )
    return Tags(html)


def test_english_form_with_errors_is_accessible(forms_app) -> None:
    spec = compile_document(shipped("md-lead"))
    bound = bind(spec, {"institution_name": "Ruijin", "bed_count": "lots"})
    page = render(forms_app, spec, bound.redisplay, bound.errors)
    label = page.find("label", **{"for": "f-institution_name"})
    assert label is not None
    name = page.find("input", id="f-institution_name")
    assert name["value"] == "Ruijin" and name["maxlength"] == "200" and "required" in name
    assert name["aria-required"] == "true" and "aria-invalid" not in name
    beds = page.find("input", id="f-bed_count")
    assert beds["value"] == "lots" and beds["aria-invalid"] == "true"
    assert beds["aria-describedby"] == "err-bed_count" and beds["type"] == "number" and beds["step"] == "1"
    assert page.text_by_id["err-bed_count"] == "Must be a number"
    grade = page.find("select", id="f-institution_grade")
    assert grade["aria-describedby"] == "help-institution_grade err-institution_grade"
    assert page.text_by_id["help-institution_grade"].startswith("Official grade")
    assert page.text_by_id["err-institution_grade"] == "This field is required"
    assert page.find("option", value="tertiary_a") is not None
    assert page.find("input", id="f-phone")["type"] == "tel"
    assert page.find("fieldset", id="f-product_interest") is not None
    assert page.find("label", **{"for": "f-product_interest-1"}) is not None
    assert page.find("script")["src"].endswith("/static/forms.js")


def test_chinese_form_shows_chinese_labels_and_errors(forms_app) -> None:
    spec = compile_document(shipped("md-lead"))
    bound = bind(spec, {"institution_name": "", "tender_planned": "on"})
    page = render(forms_app, spec, bound.redisplay, bound.errors, lang="zh-CN,zh;q=0.9")
    assert page.text_by_id["err-institution_name"] == "此项为必填项"
    assert page.text_by_id["err-tender_date"] == "此项为必填项"
    assert page.text_by_id["help-institution_grade"].startswith("卫健委评定的等级")
    with forms_app.test_request_context("/", headers={"Accept-Language": "zh"}):
        html = render_template_string(PAGE, spec=spec, values={}, errors={}, choices={})
    assert "机构名称" in html and "三级甲等（三甲）" in html and "请选择…" in html and "机构信息" in html
    assert "Institution name" not in html


def test_conditional_fields_carry_their_rules_and_initial_state(forms_app) -> None:
    spec = compile_document(shipped("md-lead"))
    page = render(forms_app, spec, {"tender_planned": False})
    wrapper = page.wrapper("tender_date")
    assert json.loads(wrapper["data-visible-if"]) == {"==": [{"var": "tender_planned"}, True]}
    assert json.loads(wrapper["data-required-if"]) == {"==": [{"var": "tender_planned"}, True]}
    assert "hidden" in wrapper and wrapper["data-type"] == "date"
    assert "disabled" in page.find("input", id="f-tender_date")
    assert "data-visible-if" not in page.wrapper("institution_name")
    assert page.wrapper("institution_name")["data-required"] == "true"
    shown = render(forms_app, spec, {"tender_planned": True})
    date_input = shown.find("input", id="f-tender_date")
    assert "hidden" not in shown.wrapper("tender_date") and "disabled" not in date_input
    assert "required" in date_input  # required_if holds
    assert "checked" in shown.find("input", id="f-tender_planned")


def test_every_field_type_renders(forms_app) -> None:
    options = [
        {"value": "x", "label": {"en": "Ex", "zh": "叉"}},
        {"value": "y", "label": {"en": "Why", "zh": "歪"}},
    ]
    doc = form_doc(
        {"key": "intro", "type": "heading", "help": {"en": "Read me", "zh": "请阅读"}},
        {"key": "t", "type": "text", "placeholder": {"en": "Type here", "zh": "在此输入"}},
        {"key": "lt", "type": "long_text", "max_length": 300},
        {"key": "n", "type": "number", "min": 1, "max": 9, "decimals": 2},
        {"key": "m", "type": "money", "currency": "CNY"},
        {"key": "d", "type": "date"},
        {"key": "dt", "type": "datetime"},
        {"key": "s", "type": "select", "options": options},
        {"key": "ms", "type": "multi_select", "options": options},
        {"key": "b", "type": "boolean"},
        {"key": "p", "type": "phone"},
        {"key": "e", "type": "email"},
        {"key": "u", "type": "url"},
        {"key": "r", "type": "reference", "reference": {"target": "customer"}},
        {"key": "r2", "type": "reference", "reference": {"target": "user"}},
        {
            "key": "f",
            "type": "file",
            "file": {"max_size_mb": 5, "allowed_types": ["pdf", "png"], "max_files": 2},
        },
    )
    spec = compile_document(doc)
    attached = [{"id": "a" * 64, "name": "scan.pdf", "size": 2048, "type": "pdf"}]
    values = {
        "t": "hi",
        "lt": "<b>x</b>",
        "n": 2.5,
        "m": "10.00",
        "d": "2026-03-02",
        "dt": "2026-03-02T01:30:00Z",
        "s": "y",
        "ms": ["x"],
        "b": True,
        "r": 7,
        "f": attached,
    }
    page = render(forms_app, spec, values, choices={"r": [(7, "Ruijin Hospital"), (8, "Huashan")]})
    assert page.find("h3", **{"class": "field-heading-title"}) is not None
    assert page.find("input", id="f-t")["placeholder"] == "Type here"
    assert page.find("textarea", id="f-lt")["maxlength"] == "300"
    assert page.text_by_id["f-lt"] == "<b>x</b>"  # escaped in the markup, text when parsed
    n = page.find("input", id="f-n")
    assert (n["min"], n["max"], n["step"], n["value"]) == ("1", "9", "0.01", "2.5")
    assert page.find("input", id="f-m")["inputmode"] == "decimal"
    assert page.find("input", id="f-d")["value"] == "2026-03-02"
    assert page.find("input", id="f-dt")["value"] == "2026-03-02T01:30"
    assert "selected" in page.find("option", value="y")
    assert "checked" in page.find("input", id="f-ms-1") and "checked" not in page.find("input", id="f-ms-2")
    assert "checked" in page.find("input", id="f-b")
    assert page.find("input", id="f-p")["type"] == "tel"
    assert page.find("input", id="f-e")["type"] == "email"
    assert page.find("input", id="f-u")["type"] == "url"
    assert "selected" in page.find("option", value="7")
    assert page.find("input", id="f-r2")["inputmode"] == "numeric"
    file_input = page.find("input", id="f-f")
    assert file_input["accept"] == ".pdf,.png" and "multiple" in file_input
    assert page.find("input", name="f__remove")["value"] == "a" * 64


def test_macros_import_without_context_in_any_template(forms_app) -> None:
    spec = compile_document(form_doc({"key": "t", "type": "text", "required": True}))
    src = (
        '{% import "forms/fields.html" as forms %}{% for f in spec.fields %}'
        "{{ forms.field(f, none, [], spec.state({}), form_options()) }}{% endfor %}"
    )
    with forms_app.test_request_context("/", headers={"Accept-Language": "zh"}):
        html = render_template_string(src, spec=spec)
    assert 'id="f-t"' in html and "字段t" in html


def test_render_values_lists_removed_fields(forms_app) -> None:
    spec = compile_document(form_doc({"key": "hospital", "type": "text"}, {"key": "beds", "type": "number"}))
    entries = display_values(spec, {"hospital": "Ruijin", "beds": 1200, "wechat": "rj01"}, "zh")
    src = '{% import "forms/fields.html" as forms %}{{ forms.render_values(entries) }}'
    with forms_app.test_request_context("/", headers={"Accept-Language": "zh"}):
        html = render_template_string(src, entries=entries)
    page = Tags(html)
    assert page.find("div", data_key="wechat")["class"] == "form-value removed"
    assert "已删除的字段" in html and "1,200" in html and "Ruijin" in html


@pytest.mark.parametrize("asset", ["forms.js", "forms.css"])
def test_static_assets_are_served(forms_app, asset: str) -> None:
    response = forms_app.test_client().get(f"/static/{asset}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    response.close()
    if asset == "forms.js":
        for op in (
            '"var"',
            '"=="',
            '"!="',
            '"==="',
            '"!=="',
            '"in"',
            '"and"',
            '"or"',
            '"!"',
            '"!!"',
            '"<"',
            '"<="',
            '">"',
            '">="',
            '"missing"',
        ):
            assert f"case {op}" in body, op
        assert "data-visible-if" in body and "data-required-if" in body and "disabled" in body
