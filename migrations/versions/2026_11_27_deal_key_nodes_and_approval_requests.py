"""deal key nodes and approval requests

Revision ID: d03620e99661
Revises: 15868a24a877
Create Date: 2026-11-27 19:12:53.405883
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate writes bare Text() for JSON variants)
from sqlalchemy.dialects import postgresql

revision = "d03620e99661"
down_revision = "15868a24a877"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("approver_role", sa.String(length=16), nullable=False),
        sa.Column("approver_id", sa.Integer(), nullable=True),
        sa.Column("on_deadline", sa.String(length=16), nullable=False),
        sa.Column("deadline_at", sa.DateTime(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('skip_stage', 'transition', 'waive_criteria', 'custom_objection_response')",
            name=op.f("ck_approval_requests_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'escalated', 'approved', 'rejected', 'expired')",
            name=op.f("ck_approval_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["users.id"],
            name=op.f("fk_approval_requests_approver_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_approval_requests_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_approval_requests_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_approval_requests_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_approval_requests_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.create_index("ix_approval_requests_deal_status", ["deal_id", "status"], unique=False)
        batch_op.create_index(
            "ix_approval_requests_requester_status", ["requested_by_id", "status"], unique=False
        )
        batch_op.create_index("ix_approval_requests_team_status", ["team_id", "status"], unique=False)

    op.create_table(
        "deal_key_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("node_key", sa.String(length=64), nullable=False),
        sa.Column("stage_key", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("done_by_id", sa.Integer(), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_deal_key_nodes_activity_id_activities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_key_nodes_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["done_by_id"], ["users.id"], name=op.f("fk_deal_key_nodes_done_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_key_nodes")),
        sa.UniqueConstraint("deal_id", "node_key", name="uq_deal_key_nodes_deal_node"),
    )


def downgrade() -> None:
    op.drop_table("deal_key_nodes")
    with op.batch_alter_table("approval_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_approval_requests_team_status")
        batch_op.drop_index("ix_approval_requests_requester_status")
        batch_op.drop_index("ix_approval_requests_deal_status")
    op.drop_table("approval_requests")
