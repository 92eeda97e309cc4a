"""CS activities and the alert delivery log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``activities`` and ``alert_deliveries``."""
    op.create_table(
        "activities",
        sa.Column("activity_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.String, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("snooze_until", sa.Date, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name="pk_activities"),
    )
    op.create_index("ix_activities_account_time", "activities", ["account_id", "occurred_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("detail", sa.String, nullable=False),
        sa.Column("alerts", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_alert_deliveries"),
    )
    op.create_index("ix_alert_deliveries_at", "alert_deliveries", ["at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("alert_deliveries")
    op.drop_table("activities")
