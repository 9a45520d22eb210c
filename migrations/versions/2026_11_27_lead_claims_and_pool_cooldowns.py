"""Lead claims (one active claim per lead, by a partial unique index) and pool cooldowns.

Revision ID: ffc6ad9c0f66
Revises: 73789da380da
Create Date: 2026-11-27 19:11:52.628078
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ffc6ad9c0f66"
down_revision = "73789da380da"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("pool_key", sa.String(length=80), nullable=False),
        sa.Column("pool_version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("followup_due_at", sa.DateTime(), nullable=False),
        sa.Column("protected_until", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column("release_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'released', 'no_followup', 'protection_over', 'closed')",
            name=op.f("ck_lead_claims_status"),
        ),
        sa.ForeignKeyConstraint(
            ["ended_by_id"], ["users.id"], name=op.f("fk_lead_claims_ended_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_claims_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pool_version_id"],
            ["definition_versions.id"],
            name=op.f("fk_lead_claims_pool_version_id_definition_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_lead_claims_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_claims")),
    )
    with op.batch_alter_table("lead_claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lead_claims_user_pool_claimed", ["user_id", "pool_key", "claimed_at"], unique=False
        )
        batch_op.create_index(
            "ix_lead_claims_user_pool_status", ["user_id", "pool_key", "status"], unique=False
        )
        batch_op.create_index(
            "uq_lead_claims_active_lead",
            ["lead_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "pool_cooldowns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pool_key", sa.String(length=80), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["lead_claims.id"],
            name=op.f("fk_pool_cooldowns_claim_id_lead_claims"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_pool_cooldowns_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_pool_cooldowns_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_cooldowns")),
    )
    with op.batch_alter_table("pool_cooldowns", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pool_cooldowns_pool_user_until", ["pool_key", "user_id", "until"], unique=False
        )
        batch_op.create_index("ix_pool_cooldowns_user_until", ["user_id", "until"], unique=False)


def downgrade() -> None:
    op.drop_table("pool_cooldowns")
    op.drop_table("lead_claims")
