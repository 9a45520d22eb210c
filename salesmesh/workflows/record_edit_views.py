"""Edit pages of customers and deals (`/customers/<id>/edit`, `/deals/<id>/edit`) on the records blueprint.

Like the lead's edit page: GET shows the standard fields and the record's form filled with its values;
POST validates everything on the server (`record_forms`) and saves and redirects to the record page, or
shows the form again with every error next to its field (status 422) in the request's language. Records
are fetched through the policy (a foreign id is a 404) and posts carry the CSRF token. Owner, team, stage
and status are not on these forms and are ignored when posted.
"""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, url_for
from sqlalchemy import select

from salesmesh.forms.compile import FormSpec
from salesmesh.forms.files import FileStore
from salesmesh.forms.web import form_input
from salesmesh.platform import policy
from salesmesh.platform.auth import login_required
from salesmesh.platform.web import _, current_locale, db, runtime
from salesmesh.workflows.lead_forms import default_lead_form
from salesmesh.workflows.models import Contact, Customer, Deal
from salesmesh.workflows.record_forms import (
    CUSTOMER_INPUTS,
    DEAL_INPUTS,
    RecordFormInvalid,
    customer_form_spec,
    customer_inputs,
    deal_form_spec,
    deal_inputs,
    update_customer_form,
    update_deal_form,
)
from salesmesh.workflows.record_ui import Errors, error_text, service_errors, work_timezone
from salesmesh.workflows.record_views import _times, bp

# Customer inputs offered as a list when the lead form defines options for them (codes customers share).
CODE_FIELDS = {
    "customer_grade": "institution_grade",
    "customer_region": "region",
    "customer_institution_type": "institution_type",
}
CUSTOMER_PATHS = {f"/{attr}": name for name, attr in CUSTOMER_INPUTS.items()}
DEAL_PATHS = {f"/{attr}": name for name, attr in DEAL_INPUTS.items()}


def _code_choices() -> dict[str, list[tuple[str, str]]]:
    """Return the (code, label) lists of the customer code inputs, from the published lead form."""
    spec = default_lead_form(db())
    lc = current_locale()
    out: dict[str, list[tuple[str, str]]] = {}
    for name, key in CODE_FIELDS.items():
        found = spec.field(key) if spec is not None else None
        if found is not None and found.options:
            out[name] = [(code, text.get(lc) or text.get("en") or code) for code, text in found.options]
    return out


def _render(
    subject: str,
    record: Any,
    spec: FormSpec | None,
    inputs: dict[str, Any],
    values: Any,
    errors: Errors,
    status: int = 200,
    **extra: Any,
) -> Any:
    times = _times()
    return render_template(
        f"records/{subject}_edit.html",
        record=record,
        spec=spec,
        inputs=inputs,
        values=values,
        errors=errors,
        times=times,
        err=lambda item: error_text(item, times.locale),
        **extra,
    ), status


def _errors(exc: RecordFormInvalid, paths: dict[str, str]) -> Errors:
    """Group errors by input: form fields by their key, standard fields by their input name."""
    grouped: Errors = {k: list(v) for k, v in exc.bound.errors.items()} if exc.bound is not None else {}
    known = set(paths.values())
    for name, items in service_errors(exc.fields, paths).items():
        grouped.setdefault(name if name in known else "", []).extend(items)
    return grouped


def _files(spec: FormSpec | None) -> FileStore | None:
    return FileStore.for_settings(runtime().settings) if spec is not None and spec.has_files else None


def _posted_inputs(form: Any, names: Any) -> dict[str, Any]:
    return {name: form.get(name, "") for name in names}


# --- customers ----------------------------------------------------------------------------------------


def _customer_page(
    customer: Customer, spec: FormSpec | None, inputs: Any, values: Any, errors: Errors, status: int = 200
) -> Any:
    return _render("customer", customer, spec, inputs, values, errors, status, choices=_code_choices())


@bp.get("/customers/<int:customer_id>/edit")
@login_required
def edit_customer(customer_id: int) -> Any:
    """Show the customer's standard fields and form filled with its values."""
    session = db()
    customer = policy.get_or_404(session, g.user, Customer, customer_id)
    spec = customer_form_spec(session, customer)
    return _customer_page(customer, spec, customer_inputs(customer), dict(customer.data or {}), {})


@bp.post("/customers/<int:customer_id>/edit")
@login_required
def save_customer(customer_id: int) -> Any:
    """Validate the customer edit on the server and save it, or show it again with the errors."""
    session = db()
    customer = policy.get_or_404(session, g.user, Customer, customer_id)
    spec = customer_form_spec(session, customer)
    raw = form_input()
    try:
        update_customer_form(
            session,
            g.user,
            customer.id,
            raw,
            clock=runtime().clock,
            tz=work_timezone(session),
            files=_files(spec),
        )
    except RecordFormInvalid as exc:
        values = exc.bound.redisplay if exc.bound is not None else dict(customer.data or {})
        inputs = _posted_inputs(raw, CUSTOMER_INPUTS)
        return _customer_page(customer, spec, inputs, values, _errors(exc, CUSTOMER_PATHS), 422)
    session.commit()
    flash(_("Customer saved."), "success")
    return redirect(url_for("records.customer", customer_id=customer.id))


# --- deals --------------------------------------------------------------------------------------------


def _deal_page(
    deal: Deal, spec: FormSpec | None, inputs: Any, values: Any, errors: Errors, status: int = 200
) -> Any:
    contacts = (
        db()
        .scalars(
            policy.scope(
                select(Contact).where(Contact.customer_id == deal.customer_id), g.user, Contact
            ).order_by(Contact.name, Contact.id)
        )
        .all()
    )
    return _render("deal", deal, spec, inputs, values, errors, status, contacts=contacts)


@bp.get("/deals/<int:deal_id>/edit")
@login_required
def edit_deal(deal_id: int) -> Any:
    """Show the deal's standard fields and its pinned form filled with its values."""
    session = db()
    deal = policy.get_or_404(session, g.user, Deal, deal_id)
    spec = deal_form_spec(session, deal)
    return _deal_page(deal, spec, deal_inputs(deal), dict(deal.data or {}), {})


@bp.post("/deals/<int:deal_id>/edit")
@login_required
def save_deal(deal_id: int) -> Any:
    """Validate the deal edit on the server and save it, or show it again with the errors."""
    session = db()
    deal = policy.get_or_404(session, g.user, Deal, deal_id)
    spec = deal_form_spec(session, deal)
    raw = form_input()
    try:
        update_deal_form(
            session,
            g.user,
            deal.id,
            raw,
            clock=runtime().clock,
            tz=work_timezone(session),
            files=_files(spec),
        )
    except RecordFormInvalid as exc:
        values = exc.bound.redisplay if exc.bound is not None else dict(deal.data or {})
        return _deal_page(deal, spec, _posted_inputs(raw, DEAL_INPUTS), values, _errors(exc, DEAL_PATHS), 422)
    session.commit()
    flash(_("Deal saved."), "success")
    return redirect(url_for("records.deal", deal_id=deal.id))
