"""The MRR up for renewal on every score row, and the renewal sort's index.

Rows of runs scored before this revision get NULL ``renewal_mrr`` (nothing is made up).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from churnrisk.store.schema import FILTER_COLUMNS, add_score_columns, drop_score_columns

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``renewal_mrr`` and ``ix_scores_run_renewal`` (ascending, as both backends read it)."""
    add_score_columns("renewal_mrr")
    op.create_index(
        "ix_scores_run_renewal",
        "scores",
        ["run_id", "days_to_renewal", "account_id", *FILTER_COLUMNS],
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_scores_run_renewal", table_name="scores")
    drop_score_columns("renewal_mrr")
