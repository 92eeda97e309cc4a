"""Renewal MRR and its sort index; the activities' stamp and snooze index.

Rows of runs scored before this revision get NULL ``renewal_mrr`` (nothing is made up).
``activity_stamp`` holds one row whose version each activity write raises (the API's
cache keys read it); ``ix_activities_snoozes`` indexes the snoozing activities only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from churnrisk.store.schema import FILTER_COLUMNS, add_score_columns, drop_score_columns

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``renewal_mrr``, ``ix_scores_run_renewal``, ``activity_stamp`` and the snooze index."""
    add_score_columns("renewal_mrr")
    op.create_index(
        "ix_scores_run_renewal",
        "scores",
        ["run_id", "days_to_renewal", "account_id", *FILTER_COLUMNS],
    )
    stamp = op.create_table(
        "activity_stamp",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activity_stamp"),
    )
    op.bulk_insert(stamp, [{"id": 1, "version": 0}])
    op.create_index(
        "ix_activities_snoozes",
        "activities",
        ["account_id", "occurred_at", "recorded_at", "snooze_until"],
        sqlite_where=sa.text("snooze_until IS NOT NULL"),
        postgresql_where=sa.text("snooze_until IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop what the upgrade made."""
    op.drop_index("ix_activities_snoozes", table_name="activities")
    op.drop_table("activity_stamp")
    op.drop_index("ix_scores_run_renewal", table_name="scores")
    drop_score_columns("renewal_mrr")
