"""Record pages: a lead, a customer or a deal with its header, its form, its next-step plan, related
records and its whole interaction timeline; and the posts made from them (log an activity, add or finish
a task, edit a lead through its form, convert a lead).

Every record is fetched through the policy, so an id the person may not see is a 404, and every post
carries the CSRF token. Posts redirect back (to `next` when it is a local path, else the record page);
a post with errors renders the page again with the errors next to their fields (status 422) in the
request's language. A page costs a fixed number of SQL statements whatever the length of its history:
the timeline is one page of entries (`?before=` reads older ones), filterable with `?kind=` (repeatable).
The lead form is the lead's pinned form version (`lead_forms`); a customer or deal is edited on its own
page (`record_edit_views`, services in `record_forms`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from salesmesh.forms.binding import display_values
from salesmesh.forms.compile import FormSpec, spec_for_version_id
from salesmesh.forms.files import FileStore
from salesmesh.forms.web import form_input
from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform import policy
from salesmesh.platform.auth import login_required, safe_next
from salesmesh.platform.home_views import CHANNEL_NAMES, STATUS_NAMES
from salesmesh.platform.i18n import N_
from salesmesh.platform.web import ApiError, _, current_locale, db, runtime
from salesmesh.workflows.activities import complete_task, create_task, log_activity
from salesmesh.workflows.agenda import open_tasks
from salesmesh.workflows.conversion import convert_lead
from salesmesh.workflows.lead_forms import (
    LeadFormInvalid,
    default_lead_form,
    lead_form_spec,
    lead_form_values,
    update_lead_form,
)
from salesmesh.workflows.models import (
    ACTIVITY_KIND_NAMES,
    DEAL_STATUS_NAMES,
    LIGHT_NAMES,
    Contact,
    Customer,
    Deal,
    Lead,
)
from salesmesh.workflows.pipeline_panel import deal_panel
from salesmesh.workflows.record_ui import (
    OUTCOME_NAMES,
    QUICK_KINDS,
    Errors,
    Times,
    error_text,
    read_activity,
    read_task,
    service_errors,
    work_timezone,
)
from salesmesh.workflows.record_values import RecordError
from salesmesh.workflows.records import find_duplicate_customer
from salesmesh.workflows.routing_decide import OUTCOME_NAMES as ROUTING_OUTCOME_NAMES
from salesmesh.workflows.routing_history import lead_routing
from salesmesh.workflows.sla import SLA_OUTCOME_NAMES
from salesmesh.workflows.timeline import AUDIT, TIMELINE_KINDS, Timeline, timeline

bp = Blueprint("records", __name__, template_folder="templates")

TIMELINE_PAGE = 50
SUBJECTS = {"leads": "lead", "customers": "customer", "deals": "deal"}
# The kinds offered as timeline filters ("audit" = changes to the record and the rows around it).
FILTER_KINDS = ("call", "visit", "message", "email", "meeting", "objection", "note", "stage_change", AUDIT)
AUDIT_NAMES = {
    "lead.update": N_("Lead details changed"),
    "lead.convert": N_("Converted into a customer and a deal"),
    "lead.route": N_("Lead routed"),
    "lead.intake": N_("Lead received and routed"),
    "lead.claim": N_("Lead claimed from the pool"),
    "lead.release": N_("Lead released to the pool"),
    "lead.no_followup": N_("Lead returned to the pool: no follow-up in time"),
    "lead.protection_over": N_("Lead returned to the pool: protection period over"),
    "lead.sla_breach": N_("First-response deadline missed"),
    "customer.create": N_("Customer created"),
    "customer.update": N_("Customer details changed"),
    "contact.create": N_("Contact added"),
    "contact.update": N_("Contact details changed"),
    "deal.create": N_("Deal opened"),
    "deal.update": N_("Deal details changed"),
    "deal.move_requested": N_("Stage move sent for approval"),
    "deal.key_node": N_("Key node done"),
    "task.create": N_("Task created"),
    "task.complete": N_("Task completed"),
    "action_pack.schedule": N_("Action-pack steps scheduled"),
    "action_pack.unusable": N_("An action pack could not run"),
    "action_step.skip": N_("Action-pack step skipped"),
    "action_step.retry": N_("Failed action-pack step run again"),
    "actions.email": N_("E-mail sent by an action pack"),
    "actions.survey_link": N_("Survey link sent"),
    "actions.escalate": N_("Escalated by an action pack"),
    "survey.answer": N_("Survey answered"),
}
CONTACT_ROLE_NAMES = {
    "clinician": N_("Clinician"),
    "department_head": N_("Head of department"),
    "equipment_officer": N_("Equipment officer"),
    "procurement": N_("Procurement"),
    "administrator": N_("Administrator"),
    "hospital_leadership": N_("Hospital leadership"),
    "engineer": N_("Engineer"),
}
# Outcomes shown on timeline entries: what people log, and the routing engine's decisions.
ENTRY_OUTCOME_NAMES = {**ROUTING_OUTCOME_NAMES, **OUTCOME_NAMES, **SLA_OUTCOME_NAMES}
CONVERT_FIELDS = {"/customer_id": "customer_name", "/contact_id": "contact_name", "/status": ""}


# --- shared page parts --------------------------------------------------------------------------------


def _times() -> Times:
    return Times(work_timezone(db()), runtime().clock.now(), current_locale())


def _kinds_arg() -> list[str]:
    kinds = [k for k in request.args.getlist("kind") if k]
    unknown = [k for k in kinds if k not in TIMELINE_KINDS]
    if unknown:
        message = _("Unknown entry kinds: %(kinds)s.", kinds=", ".join(unknown))
        raise ApiError(400, "invalid_query", message, [{"path": "/kind", "message": message}])
    return kinds


def _before_arg() -> datetime | None:
    raw = request.args.get("before")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        message = _("Enter a date and time.")
        raise ApiError(400, "invalid_query", message, [{"path": "/before", "message": message}])
    return value


def _history(subject: str, ident: int) -> tuple[Timeline, list[str]]:
    kinds = _kinds_arg()
    history = timeline(
        db(),
        g.user,
        **{f"{subject}_id": ident},
        kinds=kinds or None,
        limit=TIMELINE_PAGE,
        before=_before_arg(),
    )
    return history, kinds


def _pinned_spec(version_id: int | None) -> FormSpec | None:
    if version_id is None:
        return None
    try:
        return spec_for_version_id(db(), version_id)
    except LookupError:
        return None


def _option(spec: FormSpec | None, key: str, value: Any) -> str:
    """Show a stored code through the options of a form field (the code itself when unknown)."""
    if value in (None, ""):
        return ""
    found = spec.field(key) if spec is not None else None
    text = found.option_label(value) if found is not None else None
    if not text:
        return str(value)
    return text.get(current_locale()) or text.get("en") or str(value)


def _common(subject: str, record: Any, times: Times, **extra: Any) -> dict[str, Any]:
    """Template values every record page has: history, tasks, the quick forms and display names."""
    history, kinds = _history(subject, record.id)
    page_url = url_for(f"records.{subject}", **{f"{subject}_id": record.id})
    older_url = None
    if history.next_before is not None:
        query = urlencode([("before", history.next_before.isoformat()), *(("kind", k) for k in kinds)])
        older_url = f"{page_url}?{query}"
    return {
        "page_url": page_url,
        "older_url": older_url,
        "subject": subject,
        "record": record,
        "times": times,
        "history": history,
        "kinds": kinds,
        "filter_kinds": FILTER_KINDS,
        "tasks": open_tasks(db(), g.user, subject_type=subject, subject_id=record.id),
        "log_values": extra.pop("log_values", None) or {},
        "log_errors": extra.pop("log_errors", None) or {},
        "task_values": extra.pop("task_values", None) or {},
        "task_errors": extra.pop("task_errors", None) or {},
        "quick_kinds": QUICK_KINDS,
        "kind_names": ACTIVITY_KIND_NAMES,
        "outcome_names": OUTCOME_NAMES,
        "entry_outcome_names": ENTRY_OUTCOME_NAMES,
        "audit_names": AUDIT_NAMES,
        "light_names": LIGHT_NAMES,
        "err": lambda item: error_text(item, times.locale),
        **extra,
    }


# --- record pages -------------------------------------------------------------------------------------


def _lead_page(lead_id: int, status: int = 200, **extra: Any) -> Any:
    session = db()
    lead = policy.get_or_404(session, g.user, Lead, lead_id)
    times = _times()
    spec = lead_form_spec(session, lead)
    entries = (
        display_values(spec, lead_form_values(lead, spec), times.locale, tz=times.tz, now=times.now)
        if spec is not None
        else []
    )
    page = _common(
        "lead",
        lead,
        times,
        spec=spec,
        entries=entries,
        option=lambda key, value: _option(spec, key, value),
        status_names=STATUS_NAMES,
        channel_names=CHANNEL_NAMES,
        can_convert=lead.status not in ("converted", "disqualified")
        and policy.can(g.user, "lead.convert", lead),
        routing=lead_routing(session, lead),
        **extra,
    )
    return render_template("records/lead.html", **page), status


def _customer_page(customer_id: int, status: int = 200, **extra: Any) -> Any:
    session = db()
    actor = g.user
    customer = policy.get_or_404(session, actor, Customer, customer_id)
    times = _times()
    spec = _pinned_spec(customer.form_version_id)
    lead_spec = default_lead_form(session)  # labels of the grade/region/type codes customers inherit
    contacts = session.scalars(
        policy.scope(select(Contact).where(Contact.customer_id == customer.id), actor, Contact).order_by(
            Contact.name, Contact.id
        )
    ).all()
    deals = (
        session.scalars(
            policy.scope(
                select(Deal).options(joinedload(Deal.owner)).where(Deal.customer_id == customer.id),
                actor,
                Deal,
            ).order_by(Deal.status != "open", Deal.created_at.desc(), Deal.id.desc())
        )
        .unique()
        .all()
    )
    leads = session.scalars(
        policy.scope(select(Lead).where(Lead.converted_customer_id == customer.id), actor, Lead).order_by(
            Lead.converted_at.desc(), Lead.id.desc()
        )
    ).all()
    page = _common(
        "customer",
        customer,
        times,
        spec=spec,
        entries=display_values(spec, customer.data or {}, times.locale, tz=times.tz) if spec else [],
        option=lambda key, value: _option(lead_spec, key, value),
        contacts=contacts,
        deals=deals,
        stages=_stage_labels(d.pipeline_version_id for d in deals),
        leads=leads,
        role_names=CONTACT_ROLE_NAMES,
        deal_status_names=DEAL_STATUS_NAMES,
        status_names=STATUS_NAMES,
        can_edit=policy.can(actor, "customer.edit", customer),
        **extra,
    )
    return render_template("records/customer.html", **page), status


def _stage_labels(version_ids: Any) -> dict[tuple[int, str], Any]:
    """Return the stage labels of pipeline versions, by (version id, stage key): one query."""
    ids = set(version_ids)
    if not ids:
        return {}
    documents = db().execute(
        select(DefinitionVersion.id, DefinitionVersion.document).where(DefinitionVersion.id.in_(ids))
    )
    return {
        (vid, stage["key"]): stage.get("label") or stage["key"]
        for vid, document in documents
        for stage in (document or {}).get("stages", [])
    }


def _deal_page(deal_id: int, status: int = 200, **extra: Any) -> Any:
    session = db()
    actor = g.user
    deal = policy.get_or_404(session, actor, Deal, deal_id)
    times = _times()
    spec = _pinned_spec(deal.form_version_id)
    leads = session.scalars(
        policy.scope(select(Lead).where(Lead.converted_deal_id == deal.id), actor, Lead).order_by(Lead.id)
    ).all()
    pipeline = deal_panel(session, actor, deal, times, **extra.pop("pipeline_extra", None) or {})
    page = _common(
        "deal",
        deal,
        times,
        spec=spec,
        entries=display_values(spec, deal.data or {}, times.locale, tz=times.tz, now=times.now)
        if spec
        else [],
        stage=pipeline["overview"].stage.label
        if pipeline
        else _stage_labels([deal.pipeline_version_id]).get((deal.pipeline_version_id, deal.stage_key)),
        leads=leads,
        customer_visible=policy.is_visible(actor, deal.customer),
        deal_status_names=DEAL_STATUS_NAMES,
        can_edit=policy.can(actor, "deal.edit", deal),
        pipeline=pipeline,
        **extra,
    )
    return render_template("records/deal.html", **page), status


PAGES = {"lead": _lead_page, "customer": _customer_page, "deal": _deal_page}


@bp.get("/leads/<int:lead_id>")
@login_required
def lead(lead_id: int) -> Any:
    """Show a lead: header, form values, next steps, timeline and the quick log form."""
    return _lead_page(lead_id)


@bp.get("/customers/<int:customer_id>")
@login_required
def customer(customer_id: int) -> Any:
    """Show a customer with its contacts, deals, converted leads and timeline."""
    return _customer_page(customer_id)


@bp.get("/deals/<int:deal_id>")
@login_required
def deal(deal_id: int) -> Any:
    """Show a deal: stage, light, form values, next steps and timeline."""
    return _deal_page(deal_id)


# --- posts from a record page -------------------------------------------------------------------------


def _back(subject: str, ident: int, anchor: str = "") -> str:
    fallback = url_for(f"records.{subject}", **{f"{subject}_id": ident}) + anchor
    return safe_next(request.form.get("next"), fallback)


@bp.post("/<any(leads, customers, deals):plural>/<int:record_id>/activities")
@login_required
def log(plural: str, record_id: int) -> Any:
    """Log a call, visit, message ... on a record, with its outcome and next step."""
    subject = SUBJECTS[plural]
    times = _times()
    values, errors = read_activity(request.form, times)
    if not errors:
        try:
            log_activity(db(), g.user, clock=runtime().clock, **{f"{subject}_id": record_id}, **values)
        except RecordError as exc:
            errors = service_errors(exc.errors)
        else:
            db().commit()
            flash(_("%(kind)s logged.", kind=_(ACTIVITY_KIND_NAMES[values["kind"]])), "success")
            return redirect(_back(subject, record_id, "#timeline"))
    return PAGES[subject](record_id, 422, log_values=request.form, log_errors=errors)


@bp.post("/<any(leads, customers, deals):plural>/<int:record_id>/tasks")
@login_required
def add_task(plural: str, record_id: int) -> Any:
    """Add a to-do about a record for the signed-in person."""
    subject = SUBJECTS[plural]
    values, errors = read_task(request.form, _times())
    if not errors:
        try:
            create_task(db(), g.user, clock=runtime().clock, **{f"{subject}_id": record_id}, **values)
        except RecordError as exc:
            errors = service_errors(exc.errors)
        else:
            db().commit()
            flash(_("Task added."), "success")
            return redirect(_back(subject, record_id, "#plan"))
    return PAGES[subject](record_id, 422, task_values=request.form, task_errors=errors)


@bp.post("/tasks/<int:task_id>/complete")
@login_required
def finish_task(task_id: int) -> Any:
    """Mark a task done and go back to where it was ticked off."""
    try:
        task = complete_task(db(), g.user, task_id, clock=runtime().clock)
    except RecordError as exc:
        flash(error_text(exc.errors[0], current_locale()), "error")
        return redirect(safe_next(request.form.get("next"), url_for("myday.index")))
    db().commit()
    flash(_("Task done: %(title)s", title=task.title), "success")
    ident = {"lead": task.lead_id, "customer": task.customer_id, "deal": task.deal_id}[task.subject_type]
    return redirect(_back(task.subject_type, ident, "#plan"))


# --- editing a lead through its form ------------------------------------------------------------------


def _edit_page(lead: Lead, spec: FormSpec | None, values: Any, errors: Any, status: int = 200) -> Any:
    times = _times()
    return render_template(
        "records/lead_edit.html",
        record=lead,
        spec=spec,
        values=values,
        errors=errors,
        times=times,
        status_names=STATUS_NAMES,
        err=lambda item: error_text(item, times.locale),
    ), status


@bp.get("/leads/<int:lead_id>/edit")
@login_required
def edit_lead(lead_id: int) -> Any:
    """Show the lead's form filled with its values."""
    session = db()
    lead = policy.get_or_404(session, g.user, Lead, lead_id)
    spec = lead_form_spec(session, lead)
    return _edit_page(lead, spec, lead_form_values(lead, spec) if spec else {}, {})


@bp.post("/leads/<int:lead_id>/edit")
@login_required
def save_lead(lead_id: int) -> Any:
    """Validate the lead form on the server and save it, or show it again with the errors."""
    session = db()
    lead = policy.get_or_404(session, g.user, Lead, lead_id)
    spec = lead_form_spec(session, lead)
    files = FileStore.for_settings(runtime().settings) if spec is not None and spec.has_files else None
    try:
        update_lead_form(
            session,
            g.user,
            lead.id,
            form_input(),
            clock=runtime().clock,
            tz=work_timezone(session),
            files=files,
        )
    except LeadFormInvalid as exc:
        return _edit_page(lead, exc.bound.spec, exc.bound.redisplay, exc.bound.errors, 422)
    except RecordError as exc:
        return _edit_page(lead, spec, {}, {"": exc.errors}, 422)
    session.commit()
    flash(_("Lead saved."), "success")
    return redirect(url_for("records.lead", lead_id=lead.id))


# --- converting a lead --------------------------------------------------------------------------------


def _pipelines() -> list[tuple[str, Any]]:
    """Return the published pipelines as (key, label), by key."""
    rows = db().execute(
        select(Definition.key, DefinitionVersion.document)
        .join(DefinitionVersion, DefinitionVersion.definition_id == Definition.id)
        .where(Definition.kind == "pipeline", DefinitionVersion.status == "published")
        .order_by(Definition.key)
    )
    return [(key, (document or {}).get("label") or key) for key, document in rows]


def _convert_defaults(lead: Lead) -> dict[str, Any]:
    data = lead.data or {}
    return {
        "customer_choice": "new",
        "customer_name": lead.institution or data.get("institution_name") or "",
        "customer_region": lead.region or "",
        "customer_grade": lead.institution_grade or "",
        "contact_name": data.get("contact_name") or lead.name,
        "contact_role": data.get("contact_role") or "",
        "contact_phone": lead.phone or "",
        "contact_email": lead.email or "",
        "deal_name": lead.institution or lead.name,
        "deal_amount": "",
        "deal_expected_close": "",
    }


def _convert_page(lead: Lead, values: dict[str, Any], errors: Errors, status: int = 200) -> Any:
    session = db()
    pipelines = _pipelines()
    values.setdefault("deal_pipeline_key", pipelines[0][0] if pipelines else "")
    duplicate = None
    if lead.institution:
        found = find_duplicate_customer(session, lead.institution, lead.region)
        if found is not None and policy.is_visible(g.user, found):
            duplicate = found
            if status == 200:
                values["customer_choice"] = "existing"
    times = _times()
    return render_template(
        "records/convert.html",
        record=lead,
        values=values,
        errors=errors,
        pipelines=pipelines,
        duplicate=duplicate,
        role_names=CONTACT_ROLE_NAMES,
        status_names=STATUS_NAMES,
        times=times,
        err=lambda item: error_text(item, times.locale),
    ), status


@bp.get("/leads/<int:lead_id>/convert")
@login_required
def convert(lead_id: int) -> Any:
    """Show the conversion form, filled from the lead."""
    lead = policy.get_or_404(db(), g.user, Lead, lead_id)
    if lead.status == "converted" and lead.converted_deal_id is not None:
        return redirect(url_for("records.deal", deal_id=lead.converted_deal_id))
    return _convert_page(lead, _convert_defaults(lead), {})


def _posted_id(raw: Any) -> int:
    """Read a posted record id (ASCII digits that fit a database integer); 0, which names no row, else."""
    text = raw.strip() if isinstance(raw, str) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0


def _blank(value: Any) -> Any:
    return value.strip() if isinstance(value, str) and value.strip() else None


@bp.post("/leads/<int:lead_id>/convert")
@login_required
def do_convert(lead_id: int) -> Any:
    """Convert the lead into a customer, a contact and a deal; land on the new deal."""
    session = db()
    lead = policy.get_or_404(session, g.user, Lead, lead_id)
    form = request.form
    existing = form.get("customer_choice") == "existing" and bool(form.get("customer_id"))
    deal_fields = {
        "pipeline_key": _blank(form.get("deal_pipeline_key")),
        "name": _blank(form.get("deal_name")),
        "amount": _blank(form.get("deal_amount")),
        "expected_close": _blank(form.get("deal_expected_close")),
    }
    contact = {
        "name": form.get("contact_name", ""),
        "role": _blank(form.get("contact_role")),
        "phone": _blank(form.get("contact_phone")),
        "email": _blank(form.get("contact_email")),
    }
    customer = {
        "name": form.get("customer_name", ""),
        "region": _blank(form.get("customer_region")),
        "grade": _blank(form.get("customer_grade")),
    }
    try:
        result = convert_lead(
            session,
            g.user,
            lead.id,
            deal={k: v for k, v in deal_fields.items() if v is not None or k == "pipeline_key"},
            clock=runtime().clock,
            customer_id=_posted_id(form.get("customer_id")) if existing else None,
            customer=None if existing else customer,
            contact=contact,
        )
    except RecordError as exc:
        return _convert_page(lead, dict(form.items()), service_errors(exc.errors, CONVERT_FIELDS), 422)
    session.commit()
    flash(_("Lead converted: deal %(name)s opened.", name=result.deal.name), "success")
    return redirect(url_for("records.deal", deal_id=result.deal.id))


# The customer and deal edit pages live in their own module on this blueprint.
from salesmesh.workflows import record_edit_views  # noqa: E402, F401
