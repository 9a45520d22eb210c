"""Routing decisions (pinned to the routing version, with their explanation) and round-robin cursors.

Revision ID: 5ffb0475d56e
Revises: 69dd879a5200
Create Date: 2026-11-27 17:33:51.755058
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate writes bare Text() for JSON variants)
from sqlalchemy.dialects import postgresql

revision = "5ffb0475d56e"
down_revision = "69dd879a5200"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "round_robin_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("routing_key", sa.String(length=80), nullable=False),
        sa.Column(
            "positions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_robin_cursors")),
        sa.UniqueConstraint("routing_key", name=op.f("uq_round_robin_cursors_routing_key")),
    )
    op.create_table(
        "routing_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("routing_version_id", sa.Integer(), nullable=False),
        sa.Column("routing_key", sa.String(length=80), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=True),
        sa.Column("used_fallback", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("pool_key", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("lead_age_seconds", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column(
            "explanation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_routing_decisions_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_routing_decisions_owner_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["routing_version_id"],
            ["definition_versions.id"],
            name=op.f("fk_routing_decisions_routing_version_id_definition_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_routing_decisions_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_decisions")),
    )
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_routing_decisions_lead_decided", ["lead_id", "decided_at"], unique=False)
        batch_op.create_index("ix_routing_decisions_owner_decided", ["owner_id", "decided_at"], unique=False)
        batch_op.create_index(
            "ix_routing_decisions_routing_decided", ["routing_key", "decided_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_decisions_routing_decided")
        batch_op.drop_index("ix_routing_decisions_owner_decided")
        batch_op.drop_index("ix_routing_decisions_lead_decided")

    op.drop_table("routing_decisions")
    op.drop_table("round_robin_cursors")
