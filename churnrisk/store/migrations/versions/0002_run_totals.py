"""Per-run totals by tier (run_totals), backfilled from the runs already stored.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create run_totals and fill it for every stored run."""
    op.create_table(
        "run_totals",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("risk_tier", sa.String(32), nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False),
        sa.Column("mrr", sa.Float, nullable=False),
        sa.Column("mrr_at_risk", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "risk_tier", name="pk_run_totals"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["score_runs.run_id"],
            name="fk_run_totals_run_id_score_runs",
            ondelete="CASCADE",
        ),
    )
    op.execute(
        "INSERT INTO run_totals (run_id, risk_tier, accounts, mrr, mrr_at_risk) "
        "SELECT run_id, risk_tier, count(*), sum(mrr), sum(mrr_at_risk) "
        "FROM scores GROUP BY run_id, risk_tier"
    )


def downgrade() -> None:
    """Drop run_totals."""
    op.drop_table("run_totals")
