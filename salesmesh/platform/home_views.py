"""The start page: a short overview scoped to the signed-in person (their leads, their team, or the
whole organisation for ops/admin). Richer screens ("My day", the team board) arrive with later work.
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from salesmesh.metamodel.models import Definition, DefinitionVersion, PackInstall
from salesmesh.platform import policy
from salesmesh.platform.i18n import N_
from salesmesh.platform.models import Team, User
from salesmesh.platform.web import db
from salesmesh.workflows.models import Lead

bp = Blueprint("home", __name__, template_folder="templates")

# Display names (English message ids, translated in the template) of stored codes.
CHANNEL_NAMES = {
    "web_form": N_("Web form"),
    "phone_system": N_("Phone system (400)"),
    "ad_platform": N_("Ad platform"),
    "import": N_("Import"),
    "manual": N_("Entered by hand"),
}
STATUS_NAMES = {
    "new": N_("New"),
    "contacted": N_("Contacted"),
    "qualified": N_("Qualified"),
    "converted": N_("Converted"),
    "disqualified": N_("Disqualified"),
    "pooled": N_("In the pool"),
}


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Show the overview, or send anonymous visitors to the login page."""
    if getattr(g, "user", None) is None:
        return redirect(url_for("auth.login"))
    session = db()
    actor = g.user
    lead_stmt = policy.scope(select(Lead.status, func.count()).group_by(Lead.status), actor, Lead)
    by_status = dict(session.execute(lead_stmt).all())
    recent = session.scalars(
        policy.scope(
            select(Lead).options(joinedload(Lead.owner)).order_by(Lead.received_at.desc()).limit(10),
            actor,
            Lead,
        )
    ).all()
    overview: dict[str, int] = {}
    packs: list[PackInstall] = []
    if actor.role in ("admin", "ops"):
        overview = {
            "users": session.scalar(select(func.count()).select_from(User).where(User.active.is_(True))) or 0,
            "teams": session.scalar(select(func.count()).select_from(Team)) or 0,
            "definitions": session.scalar(select(func.count()).select_from(Definition)) or 0,
            "published": session.scalar(
                select(func.count())
                .select_from(DefinitionVersion)
                .where(DefinitionVersion.status == "published")
            )
            or 0,
        }
        recent_installs = select(PackInstall).order_by(PackInstall.installed_at.desc()).limit(5)
        packs = list(session.scalars(policy.scope(recent_installs, actor, PackInstall)))  # admin only
    return render_template(
        "home/index.html",
        by_status=by_status,
        total=sum(by_status.values()),
        recent=recent,
        overview=overview,
        packs=packs,
        channel_names=CHANNEL_NAMES,
        status_names=STATUS_NAMES,
    )
