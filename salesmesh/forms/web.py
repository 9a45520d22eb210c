"""Wiring the form runtime into the web app: the template folder with the field macros, and the request
input a form binds.

`init_app(app)` appends `salesmesh/forms/templates` to the app's template loader so any blueprint can
`{% import "forms/fields.html" as forms %}` (and `static/forms.js` / `forms.css` do the browser side).
The macros translate with `_`, `label` and `locale`; the app's context processor supplies those to
rendered templates, and they are registered as Jinja globals here too (the same helpers) because an
imported macro module does not see the context. `form_input()` is what a view passes to `bind` for an
HTML form: the posted fields and the uploaded files together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any

from flask import Flask, request
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader
from werkzeug.datastructures import CombinedMultiDict

from salesmesh.platform import web
from salesmesh.platform.i18n import label

TEMPLATES = Path(__file__).parent / "templates"


def init_app(app: Flask) -> None:
    """Make the form macros importable from every template of `app`."""
    ours = FileSystemLoader(str(TEMPLATES))
    current: BaseLoader | None = app.jinja_loader
    if current is None:
        app.jinja_loader = ours  # type: ignore[method-assign]
    elif not (isinstance(current, ChoiceLoader) and any(_is_ours(x) for x in current.loaders)):
        app.jinja_loader = ChoiceLoader([current, ours])  # type: ignore[method-assign]
    globals_ = app.jinja_env.globals
    globals_.setdefault("_", web._)
    globals_.setdefault("locale", web.current_locale)
    globals_.setdefault("label", lambda value: label(value, web.current_locale()))
    globals_["form_options"] = form_options


def form_options(tz: tzinfo | None = None, choices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the render options the field macros take (`o`): locale, time zone, reference choices."""
    lc = web.current_locale()
    return {"lc": lc, "zh": lc == "zh", "tz": tz, "choices": choices or {}, "choose": web._("Choose…")}


def _is_ours(loader: BaseLoader) -> bool:
    return isinstance(loader, FileSystemLoader) and str(TEMPLATES) in loader.searchpath


def form_input() -> Any:
    """Return the current request's form fields and uploaded files as one multi-dict for `bind`."""
    return CombinedMultiDict([request.form, request.files])
