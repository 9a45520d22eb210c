"""deal light upkeep: when a deal became due and when its light changes next

Revision ID: 1544b62c5d1f
Revises: 259729e4b5ce
Create Date: 2026-11-27 19:20:36.604841
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1544b62c5d1f"
down_revision = "259729e4b5ce"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overdue_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("light_changes_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_deals_light_changes_at", ["light_changes_at"], unique=False)
        batch_op.create_index(
            "ix_deals_team_risk", ["team_id", "status", "light", "overdue_since"], unique=False
        )
    # Existing open deals are due for the light sweep at once: its first run colours them.
    op.execute("UPDATE deals SET light_changes_at = '2000-01-01 00:00:00' WHERE status = 'open'")


def downgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index("ix_deals_team_risk")
        batch_op.drop_index("ix_deals_light_changes_at")
        batch_op.drop_column("light_changes_at")
        batch_op.drop_column("overdue_since")
