"""The built-in action kinds of action-pack steps, registered like an outside plugin would be.

Each kind guards its effect with the step's ledger entry (`ActionContext.record_effect`), so a step run
again after a crash does nothing twice; everything happens in the step timer's transaction, and what
leaves the process (e-mail, webhooks) is written to the outbox under the step's idempotency key and sent
after commit by the outbox's delivery job.

- `remind`: an in-app notification to the owner (or team lead) and a `reminder` entry on the deal's
  timeline. It also runs many steps at once (`run_many`): the owners' reminders as one ledger statement,
  one INSERT of notifications and one batch of timeline entries (team-lead reminders go one by one).
- `task`: a task for the owner (or team lead), due `due_in_hours` after the step fired.
- `email`: a message to the owner, team lead or primary contact from a sandboxed template.
- `survey_link`: a tracked survey invitation (`salesmesh.workflows.surveys`) e-mailed to the primary
  contact with its link.
- `webhook`: a signed POST/PUT of the deal's chosen fields; the target must pass the SSRF check now and
  again when the outbox sends it.
- `escalate`: an in-app notification to the team lead or to every ops person.
- `set_field`: one field of the deal's data, validated against the deal's pinned form version.

Missing recipients, a missing e-mail address, an unusable template or value raise `ActionImpossible`
(the step fails at once and waits on the failed-actions page); anything else is retried with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from salesmesh.forms.binding import bind
from salesmesh.metamodel.kinds import inline_refs, load_schema
from salesmesh.platform.audit import record_event
from salesmesh.platform.egress import Allowlist, EgressRefused, check_target
from salesmesh.platform.i18n import N_, label
from salesmesh.platform.models import User
from salesmesh.platform.notifications import DELIVER_JOB, notification_kind, notify, notify_each
from salesmesh.platform.outbox import Message, enqueue_messages
from salesmesh.plugins.sandbox import compile_template, render_template
from salesmesh.plugins.spec import (
    ActionBatch,
    ActionConfigError,
    ActionContext,
    ActionImpossible,
    ActionItem,
    ActionKind,
    PluginRegistries,
)
from salesmesh.workflows.activities import DealEntry, create_task, log_activity, log_deal_entries
from salesmesh.workflows.models import Contact, Deal
from salesmesh.workflows.record_forms import deal_form_spec
from salesmesh.workflows.records import update_deal
from salesmesh.workflows.surveys import create_invitation, survey_url

REMINDER = notification_kind(
    "actions.reminder",
    title=N_("Reminder: %(step)s · %(deal)s"),
    body="%(message)s",
    path="/deals/{subject_id}",
)
ESCALATION = notification_kind(
    "actions.escalation",
    title=N_("Escalation: %(step)s · %(deal)s"),
    body="%(message)s",
    path="/deals/{subject_id}",
)
_PACK_SCHEMA = load_schema("action_pack.json")


def _fragment(name: str) -> dict[str, Any]:
    """Return the action_pack schema's params definition of a built-in kind, references inlined."""
    wrapper = {"$id": _PACK_SCHEMA["$id"], "$defs": _PACK_SCHEMA["$defs"], "$ref": f"#/$defs/{name}"}
    inlined = inline_refs(wrapper)
    return {k: v for k, v in inlined.items() if k not in ("$id", "$defs")}


# --- who and in which language -----------------------------------------------------------------------


def _locale(ctx: ActionContext | ActionBatch, user: User | None) -> str:
    chosen = user.locale if user is not None else None
    return chosen if chosen in ("en", "zh") else ctx.runtime.settings.default_locale


def _owner(ctx: ActionContext) -> User | None:
    owner = ctx.deal.owner
    return owner if owner is not None and owner.active else None


def _team_lead(ctx: ActionContext) -> User | None:
    deal = ctx.deal
    team = deal.team or (deal.owner.team if deal.owner is not None else None)
    lead = team.lead if team is not None else None
    return lead if lead is not None and lead.active else None


def _person(ctx: ActionContext, who: str) -> User:
    user = _team_lead(ctx) if who == "team_lead" else _owner(ctx)
    if user is None:
        if who == "team_lead":
            raise ActionImpossible(f"deal {ctx.deal.id}: its team has no active team lead")
        raise ActionImpossible(f"deal {ctx.deal.id} has no active owner")
    return user


def _contact(ctx: ActionContext) -> Contact:
    contact = ctx.deal.primary_contact
    if contact is None:
        raise ActionImpossible(f"deal {ctx.deal.id} has no primary contact")
    if not contact.email:
        raise ActionImpossible(
            f"contact {contact.id} ({contact.name}) of deal {ctx.deal.id} has no e-mail address"
        )
    return contact


def _step_ref(ctx: ActionContext | ActionItem) -> dict[str, Any]:
    return {"pack": ctx.step.pack_key, "step": ctx.step.step_key, "timer_id": ctx.timer_id}


def _template_context(ctx: ActionContext, contact: Contact | None, **extra: Any) -> dict[str, Any]:
    deal, owner = ctx.deal, ctx.deal.owner
    return {
        "deal": {
            "id": deal.id,
            "name": deal.name,
            "stage": deal.stage_key,
            "amount": str(deal.amount) if deal.amount is not None else None,
            "currency": deal.currency,
            "fields": dict(deal.data or {}),
        },
        "customer": {"name": deal.customer.name, "region": deal.customer.region} if deal.customer else {},
        "contact": (
            {
                "name": contact.name,
                "email": contact.email,
                "role": contact.role,
                "department": contact.department,
            }
            if contact is not None
            else {}
        ),
        "owner": {"name": owner.name, "email": owner.email} if owner is not None else {},
        **extra,
    }


def _prepare_templates(params: Mapping[str, Any], pointer: str) -> dict[str, Any]:
    """Compile the body template in both languages once per pack version."""
    body = params["body"]
    return {
        **params,
        "_body": {lang: compile_template(body[lang], f"{pointer}/body/{lang}") for lang in ("en", "zh")},
    }


def _queue_email(ctx: ActionContext, address: str, subject: str, text: str, suffix: str) -> None:
    enqueue_messages(
        ctx.session,
        [Message("email", address, {"subject": subject, "text": text}, ctx.idempotency_key(suffix))],
        now=ctx.now,
    )
    ctx.runtime.jobs.enqueue_after_commit(ctx.session, DELIVER_JOB)


# --- the kinds -----------------------------------------------------------------------------------------


def run_remind(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Notify the owner (or team lead) in the app and put a reminder on the deal's timeline."""
    user = _person(ctx, params.get("to", "owner"))
    if not ctx.record_effect("remind", "actions.remind", {"user_id": user.id}):
        return
    message = params["message"]
    notify(
        ctx.session,
        user_ids=[user.id],
        kind=REMINDER.name,
        now=ctx.now,
        subject=("deal", ctx.deal.id),
        params={"step": dict(ctx.step.label), "deal": ctx.deal.name, "message": dict(message)},
    )
    log_activity(
        ctx.session,
        None,
        kind="reminder",
        clock=ctx.clock,
        deal_id=ctx.deal.id,
        summary=label(message, _locale(ctx, user)),
        data={**_step_ref(ctx), "to": user.id, "message": dict(message)},
    )


def run_remind_many(batch: ActionBatch, items: Sequence[ActionItem]) -> list[ActionItem]:
    """Remind the owners of many steps at once (team-lead reminders, absent owners: `run_remind`)."""
    ready: list[tuple[ActionItem, User]] = []
    later: list[ActionItem] = []
    for item in items:
        owner = item.owner
        if item.prepared.get("to", "owner") != "owner" or owner is None or not owner.active:
            later.append(item)  # the team lead is loaded (and a missing owner reported) one by one
        else:
            ready.append((item, owner))
    new = batch.record_effects(
        [(item, "remind", "actions.remind", {"user_id": user.id}) for item, user in ready]
    )
    fired = [pair for pair, is_new in zip(ready, new, strict=True) if is_new]
    if not fired:
        return later
    notify_each(
        batch.session,
        kind=REMINDER.name,
        now=batch.now,
        notices=[
            (
                user.id,
                ("deal", item.deal.id),
                {
                    "step": dict(item.step.label),
                    "deal": item.deal.name,
                    "message": dict(item.prepared["message"]),
                },
            )
            for item, user in fired
        ],
    )
    log_deal_entries(
        batch.session,
        [
            DealEntry(
                item.deal,
                "reminder",
                summary=label(item.prepared["message"], _locale(batch, user)),
                data={**_step_ref(item), "to": user.id, "message": dict(item.prepared["message"])},
            )
            for item, user in fired
        ],
        clock=batch.clock,
    )
    return later


def run_task(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Create a task about the deal for the owner (or team lead)."""
    user = _person(ctx, params.get("assignee", "owner"))
    if not ctx.record_effect("task", "actions.task", {"user_id": user.id}):
        return
    hours = params.get("due_in_hours")
    data: dict[str, Any] = {**_step_ref(ctx), "title": dict(params["title"])}
    if params.get("description"):
        data["description"] = dict(params["description"])
    if params.get("activity_type"):
        data["activity_type"] = params["activity_type"]
    create_task(
        ctx.session,
        None,
        title=label(params["title"], _locale(ctx, user)),
        clock=ctx.clock,
        deal_id=ctx.deal.id,
        due_at=ctx.now + timedelta(hours=hours) if hours is not None else None,
        assignee_id=user.id,
        data=data,
    )


def run_email(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """E-mail the owner, team lead or primary contact from the step's template (through the outbox)."""
    contact: Contact | None = None
    if params["to"] == "primary_contact":
        contact = _contact(ctx)
        address, locale = contact.email, _locale(ctx, ctx.deal.owner)
    else:
        user = _person(ctx, params["to"])
        address, locale = user.email, _locale(ctx, user)
    text = render_template(params["_body"][locale], _template_context(ctx, contact), what="e-mail body")
    subject = label(params["subject"], locale)
    if not ctx.record_effect("email", "actions.email", {"to": address, "subject": subject}):
        return
    _queue_email(ctx, str(address), subject, text, "email")
    record_event(
        ctx.session,
        at=ctx.now,
        actor_id=None,
        action="actions.email",
        object_type="deals",
        object_id=ctx.deal.id,
        payload={**_step_ref(ctx), "to": address, "subject": subject},
    )


def run_survey_link(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Create a tracked survey invitation and e-mail its link to the primary contact."""
    contact = _contact(ctx)
    if not ctx.runtime.settings.base_url:
        raise ActionImpossible("SALESMESH_BASE_URL is not set: survey links need the address of the app")
    locale = _locale(ctx, ctx.deal.owner)
    if not ctx.record_effect("survey", "actions.survey_link", {"to": contact.email}):
        return
    hours = params.get("expires_after_hours")
    invitation = create_invitation(
        ctx.session,
        deal=ctx.deal,
        contact=contact,
        email=str(contact.email),
        survey=params["survey"],
        pack_key=ctx.step.pack_key,
        step_key=ctx.step.step_key,
        timer_id=ctx.timer_id,
        now=ctx.now,
        expires_after=timedelta(hours=hours) if hours is not None else None,
    )
    url = survey_url(ctx.runtime.settings, invitation.token)
    text = render_template(
        params["_body"][locale], _template_context(ctx, contact, survey_url=url), what="survey e-mail body"
    )
    subject = label(params["subject"], locale)
    _queue_email(ctx, str(contact.email), subject, text, "survey")
    record_event(
        ctx.session,
        at=ctx.now,
        actor_id=None,
        action="actions.survey_link",
        object_type="deals",
        object_id=ctx.deal.id,
        payload={
            **_step_ref(ctx),
            "to": contact.email,
            "survey": params["survey"],
            "invitation_id": invitation.id,
        },
    )


def _prepare_webhook(params: Mapping[str, Any], pointer: str) -> dict[str, Any]:
    parts = urlsplit(params["url"])
    if parts.username or parts.password:
        raise ActionConfigError(pointer + "/url", "credentials in the URL are not allowed (use secret_name)")
    return dict(params)


def run_webhook(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Queue a signed call of the webhook with the deal's chosen fields (SSRF-checked now and at send)."""
    settings = ctx.runtime.settings
    try:
        check_target(params["url"], Allowlist.parse(settings.webhook_allowlist))
    except (EgressRefused, ValueError) as exc:  # ValueError: a bad SALESMESH_WEBHOOK_ALLOWLIST entry
        raise ActionImpossible(f"webhook refused: {exc}") from None
    name = params.get("secret_name")
    if (settings.webhook_secrets.get(name) if name else settings.webhook_secret) is None:
        which = f"secret {name!r} (SALESMESH_WEBHOOK_SECRETS)" if name else "SALESMESH_WEBHOOK_SECRET"
        raise ActionImpossible(f"webhook: the signing {which} is not configured")
    deal = ctx.deal
    data = deal.data or {}
    body = {
        "event": "action_pack.step",
        **_step_ref(ctx),
        "fired_at": ctx.now.isoformat(),
        "deal": {
            "id": deal.id,
            "name": deal.name,
            "stage": deal.stage_key,
            "status": deal.status,
            "owner_id": deal.owner_id,
            "fields": {name: data.get(name) for name in params.get("include_fields") or ()},
        },
    }
    if not ctx.record_effect("webhook", "actions.webhook", {"url": params["url"]}):
        return
    message = {
        "event": "action_pack.step",
        "body": body,
        "method": params.get("method", "POST"),
        "secret_name": name,
        "guarded": True,
    }
    enqueue_messages(
        ctx.session, [Message("webhook", params["url"], message, ctx.idempotency_key("webhook"))], now=ctx.now
    )
    ctx.runtime.jobs.enqueue_after_commit(ctx.session, DELIVER_JOB)


def run_escalate(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Notify the deal's team lead (or every active ops person) in the app."""
    if params["to"] == "ops":
        users = list(ctx.session.scalars(select(User.id).where(User.role == "ops", User.active.is_(True))))
        if not users:
            raise ActionImpossible("escalate: there is no active ops person")
    else:
        users = [_person(ctx, "team_lead").id]
    if not ctx.record_effect("escalate", "actions.escalate", {"user_ids": users}):
        return
    message = params.get("message") or ctx.step.label
    notify(
        ctx.session,
        user_ids=users,
        kind=ESCALATION.name,
        now=ctx.now,
        subject=("deal", ctx.deal.id),
        params={"step": dict(ctx.step.label), "deal": ctx.deal.name, "message": dict(message)},
    )
    record_event(
        ctx.session,
        at=ctx.now,
        actor_id=None,
        action="actions.escalate",
        object_type="deals",
        object_id=ctx.deal.id,
        payload={**_step_ref(ctx), "to": params["to"], "user_ids": users},
    )


def run_set_field(ctx: ActionContext, params: Mapping[str, Any]) -> None:
    """Set one field of the deal's data, validated against the deal's pinned form version."""
    deal: Deal = ctx.deal
    ctx.session.refresh(deal, with_for_update=True)  # a person editing the deal right now must not lose it
    spec = deal_form_spec(ctx.session, deal)
    name, value = params["field"], params["value"]
    if spec is None:
        raise ActionImpossible(f"set_field: deal {deal.id} has no form, so field {name!r} cannot be checked")
    field = spec.by_key.get(name)
    if field is None or not field.takes_input or field.read_only:
        raise ActionImpossible(
            f"set_field: the deal's form (v{spec.version_number}) has no editable field {name!r}"
        )
    current = {k: v for k, v in (deal.data or {}).items() if k in spec.by_key and spec.by_key[k].takes_input}
    bound = bind(
        spec, {**current, name: value}, source="json", now=ctx.now, existing=current, apply_defaults=False
    )
    if name in bound.errors:
        problem = bound.errors[name][0]
        raise ActionImpossible(f"set_field: {name} = {value!r} is invalid: {problem['message']}")
    if name in bound.state.hidden:
        raise ActionImpossible(
            f"set_field: field {name!r} is hidden for this deal by its visible_if condition"
        )
    new = dict(deal.data or {})
    if bound.values.get(name) is None:
        new.pop(name, None)
    else:
        new[name] = bound.values[name]
    if not ctx.record_effect("set_field", "actions.set_field", {"field": name, "value": new.get(name)}):
        return
    update_deal(ctx.session, None, deal.id, clock=ctx.clock, data=new)


def register(registries: PluginRegistries) -> None:
    """Register the seven built-in action kinds."""
    kinds = (
        ActionKind(
            "remind",
            {"en": "Remind", "zh": "提醒"},
            _fragment("remind"),
            run_remind,
            run_many=run_remind_many,
        ),
        ActionKind("task", {"en": "Task", "zh": "任务"}, _fragment("task"), run_task),
        ActionKind(
            "email",
            {"en": "E-mail", "zh": "邮件"},
            _fragment("email"),
            run_email,
            _prepare_templates,
            external=True,
        ),
        ActionKind(
            "survey_link",
            {"en": "Survey link", "zh": "调查链接"},
            _fragment("survey_link"),
            run_survey_link,
            _prepare_templates,
            external=True,
        ),
        ActionKind(
            "webhook",
            {"en": "Webhook", "zh": "Webhook"},
            _fragment("webhook"),
            run_webhook,
            _prepare_webhook,
            external=True,
        ),
        ActionKind("escalate", {"en": "Escalate", "zh": "上报"}, _fragment("escalate"), run_escalate),
        ActionKind("set_field", {"en": "Set field", "zh": "设置字段"}, _fragment("set_field"), run_set_field),
    )
    for kind in kinds:
        registries.add_action_kind(kind, origin=__name__)
