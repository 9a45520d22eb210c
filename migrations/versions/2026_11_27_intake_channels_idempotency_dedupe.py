"""Intake channels (HMAC secrets), idempotency records, lead de-duplication keys and duplicates.

Revision ID: 962eab03e7d5
Revises: 5ffb0475d56e
Create Date: 2026-11-27 18:04:16.165861
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate writes bare Text() for JSON variants)
from sqlalchemy.dialects import postgresql

revision = "962eab03e7d5"
down_revision = "5ffb0475d56e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column("form_key", sa.String(length=80), nullable=True),
        sa.Column(
            "defaults",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_channels")),
        sa.UniqueConstraint("key", name=op.f("uq_intake_channels_key")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["intake_channels.id"],
            name=op.f("fk_idempotency_records_channel_id_intake_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("channel_id", "key", name="uq_idempotency_records_channel_key"),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False)

    op.create_table(
        "lead_dedupe_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_dedupe_keys_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_dedupe_keys")),
        sa.UniqueConstraint("kind", "value", name="uq_lead_dedupe_keys_kind_value"),
    )
    with op.batch_alter_table("lead_dedupe_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_dedupe_keys_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "lead_duplicates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=False),
        sa.Column("matched_on", sa.String(length=16), nullable=False),
        sa.Column("source_channel", sa.String(length=40), nullable=False),
        sa.Column("campaign", sa.String(length=120), nullable=True),
        sa.Column("form_version_id", sa.Integer(), nullable=True),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["leads.id"],
            name=op.f("fk_lead_duplicates_duplicate_of_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["form_version_id"],
            ["definition_versions.id"],
            name=op.f("fk_lead_duplicates_form_version_id_definition_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_duplicates")),
    )
    with op.batch_alter_table("lead_duplicates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_duplicates_duplicate_of_id"), ["duplicate_of_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lead_duplicates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_duplicates_duplicate_of_id"))

    op.drop_table("lead_duplicates")
    with op.batch_alter_table("lead_dedupe_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_dedupe_keys_lead_id"))

    op.drop_table("lead_dedupe_keys")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))

    op.drop_table("idempotency_records")
    op.drop_table("intake_channels")
