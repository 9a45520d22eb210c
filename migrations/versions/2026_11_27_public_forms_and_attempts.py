"""public forms and attempts

Revision ID: 73789da380da
Revises: b481ccc81860
Create Date: 2026-11-27 19:10:44.992991
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate writes bare Text() for JSON variants)
from sqlalchemy.dialects import postgresql

revision = "73789da380da"
down_revision = "b481ccc81860"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "public_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_key", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column(
            "presets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "frame_ancestors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("per_ip_per_hour", sa.Integer(), nullable=False),
        sa.Column("per_form_per_hour", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_forms")),
        sa.UniqueConstraint("form_key", name=op.f("uq_public_forms_form_key")),
    )
    op.create_table(
        "public_form_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_key", sa.String(length=80), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_public_form_attempts_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_form_attempts")),
        sa.UniqueConstraint("nonce", name=op.f("uq_public_form_attempts_nonce")),
    )
    with op.batch_alter_table("public_form_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_public_form_attempts_form_key_at", ["form_key", "at"], unique=False)
        batch_op.create_index("ix_public_form_attempts_ip_at", ["ip", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("public_form_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_public_form_attempts_ip_at")
        batch_op.drop_index("ix_public_form_attempts_form_key_at")
    op.drop_table("public_form_attempts")
    op.drop_table("public_forms")
