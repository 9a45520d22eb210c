"""Business records: leads, customers (institutions), contacts, deals, activities and tasks.

Standard fields are typed columns the runtime queries on (owner, team, stage, status, due times,
timestamps); fields an ops-defined form adds live in `data`, written under the form version pinned in
`form_version_id`. Every record carries `owner_id` and `team_id` so the one policy
(`salesmesh.platform.policy`) scopes it the same way; a task's owner is its assignee. Activities point at
their lead, customer and deal directly (not through a polymorphic id) so a record's timeline is an indexed
range scan; a converted lead's activities keep their `lead_id` and gain the deal and customer, so the
history follows the lead. Services live in `salesmesh.workflows.records`, `conversion` and `timeline`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from salesmesh.platform.db import Base, JSONType, UTCDateTime
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import Team, User

LEAD_STATUSES = ("new", "contacted", "qualified", "converted", "disqualified", "pooled")
# First-response SLA: running, met (first contact in time), breached (handled once by the sweep).
SLA_STATES = ("pending", "met", "breached")
DEAL_STATUSES = ("open", "won", "lost")
LIGHTS = ("green", "yellow", "red")
TASK_STATUSES = ("open", "done", "cancelled")
SUBJECT_TYPES = ("lead", "customer", "deal")
# What a person logs by hand (the `activity_type` enum of the metadata schemas) ...
LOGGED_KINDS = (
    "call",
    "visit",
    "email",
    "message",
    "meeting",
    "material_sent",
    "document_opened",
    "objection",
    "note",
)
# ... and what the runtime writes onto the same timeline (stage moves, routing, reminders).
SYSTEM_KINDS = ("stage_change", "routing_decision", "reminder")
ACTIVITY_KINDS = LOGGED_KINDS + SYSTEM_KINDS
# Kinds that reach the person: the first one marks a lead contacted (first-response SLA).
CONTACT_KINDS = ("call", "visit", "email", "message", "meeting")

# Display names (English message ids, translated where shown) of the stored codes above.
ACTIVITY_KIND_NAMES = {
    "call": N_("Call"),
    "visit": N_("Visit"),
    "email": N_("E-mail"),
    "message": N_("Message"),
    "meeting": N_("Meeting"),
    "material_sent": N_("Material sent"),
    "document_opened": N_("Document opened"),
    "objection": N_("Objection"),
    "note": N_("Note"),
    "stage_change": N_("Stage change"),
    "routing_decision": N_("Routing decision"),
    "reminder": N_("Reminder"),
}
DEAL_STATUS_NAMES = {"open": N_("Open"), "won": N_("Won"), "lost": N_("Lost")}
TASK_STATUS_NAMES = {"open": N_("To do"), "done": N_("Done"), "cancelled": N_("Cancelled")}
LIGHT_NAMES = {"green": N_("On track"), "yellow": N_("Needs attention"), "red": N_("At risk")}


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_owner_status", "owner_id", "status"),
        Index("ix_leads_team_status", "team_id", "status"),
        # The pool page lists one pool's open leads; cooldown/claim checks look leads up per pool.
        Index("ix_leads_pool_status", "pool_key", "status"),
        # The first-response SLA sweep reads pending deadlines in due order.
        Index("ix_leads_sla_state_due", "sla_state", "sla_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    institution: Mapped[str | None] = mapped_column(String(200))
    institution_grade: Mapped[str | None] = mapped_column(String(40))
    region: Mapped[str | None] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default="new")
    source_channel: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(120))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    # The form definition version the data was written under (pinned; see ARCHITECTURE.md).
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The pool the lead sits in (status "pooled") or was last claimed from; None for routed leads.
    pool_key: Mapped[str | None] = mapped_column(String(80))
    # First-response SLA: the deadline (working-calendar aware) and its state, one of SLA_STATES.
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_state: Mapped[str | None] = mapped_column(String(16))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_step: Mapped[str | None] = mapped_column(String(500))
    next_step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Conversion links: the lead stays (with its activities) and points at what it became.
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    converted_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    converted_deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    team: Mapped[Team | None] = relationship(foreign_keys=[team_id])
    converted_customer: Mapped[Customer | None] = relationship(foreign_keys=[converted_customer_id])
    converted_deal: Mapped[Deal | None] = relationship(foreign_keys=[converted_deal_id])


class Customer(Base):
    """An institution (hospital, clinic, company). `name_key` + `region_key` make duplicates impossible."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("region_key", "name_key", name="uq_customers_region_name"),
        Index("ix_customers_owner_id", "owner_id"),
        Index("ix_customers_team_id", "team_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Normalised name and region (NFKC, case-folded, letters and digits only; region "" when unknown).
    name_key: Mapped[str] = mapped_column(String(200), index=True)
    region: Mapped[str | None] = mapped_column(String(80))
    region_key: Mapped[str] = mapped_column(String(80), default="")
    grade: Mapped[str | None] = mapped_column(String(40))  # e.g. tertiary_a, secondary, primary
    institution_type: Mapped[str | None] = mapped_column(String(40))  # e.g. hospital, private_clinic
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    team: Mapped[Team | None] = relationship(foreign_keys=[team_id])


class Contact(Base):
    """A person at a customer, with a role such as clinician, procurement, administrator or engineer."""

    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_owner_id", "owner_id"), Index("ix_contacts_team_id", "team_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship()
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])


class Deal(Base):
    """An opportunity at a customer, moving through the stages of the pipeline version it pinned."""

    __tablename__ = "deals"
    __table_args__ = (
        CheckConstraint(f"status IN {DEAL_STATUSES!r}", name="status"),
        CheckConstraint("light IS NULL OR light IN ('green', 'yellow', 'red')", name="light"),
        Index("ix_deals_owner_status", "owner_id", "status"),
        Index("ix_deals_team_status", "team_id", "status"),
        Index("ix_deals_pipeline_stage", "pipeline_key", "stage_key", "status"),
        # Lights (salesmesh.workflows.lights): the sweep's due order, and the board's risk order per team.
        Index("ix_deals_light_changes_at", "light_changes_at"),
        Index("ix_deals_team_risk", "team_id", "status", "light", "overdue_since"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    primary_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    pipeline_version_id: Mapped[int] = mapped_column(ForeignKey("definition_versions.id"))
    pipeline_key: Mapped[str] = mapped_column(String(80))
    stage_key: Mapped[str] = mapped_column(String(64))
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8), default="open")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    light: Mapped[str | None] = mapped_column(String(8))
    # Kept with the light: when the deal became due (its lateness counts from there) and when the light
    # would change next if nothing happened (None: red or closed). Written only by workflows.lights.
    overdue_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    light_changes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    expected_close: Mapped[date | None] = mapped_column(Date)
    next_step: Mapped[str | None] = mapped_column(String(500))
    next_step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship()
    primary_contact: Mapped[Contact | None] = relationship()
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    team: Mapped[Team | None] = relationship(foreign_keys=[team_id])


class Activity(Base):
    """One entry of a record's interaction history: a call, a visit, a stage change, a reminder ...

    `subject_type` names the record it was logged on; `lead_id`, `customer_id` and `deal_id` are filled
    for every record it belongs to (a deal's activity also belongs to its customer). `actor_id` is who
    did it (None for the system); `owner_id`/`team_id` are copied from the subject for scoping.
    """

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_lead_occurred", "lead_id", "occurred_at"),
        Index("ix_activities_customer_occurred", "customer_id", "occurred_at"),
        Index("ix_activities_deal_occurred", "deal_id", "occurred_at"),
        Index("ix_activities_owner_occurred", "owner_id", "occurred_at"),
        Index("ix_activities_team_occurred", "team_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    outcome: Mapped[str | None] = mapped_column(String(80))
    summary: Mapped[str | None] = mapped_column(Text)
    next_step: Mapped[str | None] = mapped_column(String(500))
    next_step_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("definition_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    contact: Mapped[Contact | None] = relationship()

    @property
    def subject_id(self) -> int | None:
        """Return the id of the record the activity was logged on."""
        return {"lead": self.lead_id, "customer": self.customer_id, "deal": self.deal_id}.get(
            self.subject_type
        )


class Task(Base):
    """A to-do for one person about a lead, customer or deal; `owner_id` is the assignee (for policy)."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES!r}", name="status"),
        Index("ix_tasks_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_tasks_team_status_due", "team_id", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    subject_type: Mapped[str] = mapped_column(String(16))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # The policy's owner rules read `owner_id`; for a task that is the assignee.
    owner_id = synonym("assignee_id")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class SavedView(Base):
    """A person's named set of list parameters (filters, sort, search) on one list view.

    `params` holds the accepted URL parameters as {name: [values]}; they are checked again against the
    view whenever the saved view is opened, so a view edited since then answers with a clear error rather
    than a wrong list. `shared_with_team` lets the owner's teammates (and their team lead) open it too.
    Services live in `salesmesh.workflows.saved_views`.
    """

    __tablename__ = "saved_views"
    __table_args__ = (
        UniqueConstraint("user_id", "record_type", "name", name="uq_saved_views_user_type_name"),
        Index("ix_saved_views_type_user", "record_type", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    record_type: Mapped[str] = mapped_column(String(16))
    view_key: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    shared_with_team: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
