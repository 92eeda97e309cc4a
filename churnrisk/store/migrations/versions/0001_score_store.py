"""The score store: score_runs, scores (with the at-risk indexes) and api_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


FILTER_COLUMNS = ("churn_probability", "mrr", "risk_tier", "segment", "plan", "owner")
"""The at-risk list's filter columns, appended to each sort index."""


def upgrade() -> None:
    """Create the three tables and their indexes."""
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "score_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("churn_version", sa.String, nullable=False),
        sa.Column("clv_version", sa.String, nullable=False),
        sa.Column("model_run_id", sa.String, nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False),
        sa.Column("tiers", sa.JSON, nullable=False),
        sa.Column("low_tier", sa.String, nullable=False),
        sa.Column("previous_run_id", sa.String, nullable=True),
        sa.Column("source", sa.String, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_score_runs"),
    )
    op.create_index("ix_score_runs_position", "score_runs", ["as_of", "scored_at"])
    op.create_table(
        "scores",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=True),
        sa.Column("segment", sa.String, nullable=True),
        sa.Column("plan", sa.String, nullable=True),
        sa.Column("owner", sa.String, nullable=True),
        sa.Column("churn_probability", sa.Float, nullable=False),
        sa.Column("risk_tier", sa.String(32), nullable=False),
        sa.Column("mrr", sa.Float, nullable=False),
        sa.Column("mrr_at_risk", sa.Float, nullable=False),
        sa.Column("revenue_12m", sa.Float, nullable=False),
        sa.Column("lifetime_clv", sa.Float, nullable=False),
        sa.Column("previous_probability", sa.Float, nullable=True),
        sa.Column("probability_change", sa.Float, nullable=True),
        sa.Column("drivers", sa.JSON, nullable=False),
        sa.Column("change_drivers", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id", name="pk_scores"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["score_runs.run_id"],
            name="fk_scores_run_id_score_runs",
            ondelete="CASCADE",
        ),
    )
    # Descending value, ascending account_id: the at-risk list's order, so a forward index
    # scan serves it. NULL changes sort last (SQLite's DESC default; explicit on PostgreSQL).
    change = "probability_change DESC NULLS LAST" if postgres else "probability_change DESC"
    for name, value in (
        ("ix_scores_run_probability", "churn_probability DESC"),
        ("ix_scores_run_mrr_at_risk", "mrr_at_risk DESC"),
        ("ix_scores_run_clv", "lifetime_clv DESC"),
        ("ix_scores_run_change", change),
    ):
        # The filter columns ride along, so a filtered walk in sort order reads the index
        # alone and visits a table row only for the accounts on the page.
        filters = [c for c in FILTER_COLUMNS if c != value.split()[0]]
        op.create_index(name, "scores", ["run_id", sa.text(value), "account_id", *filters])
    op.create_index(
        "ix_scores_run_tier",
        "scores",
        ["run_id", "risk_tier", sa.text("churn_probability DESC"), "account_id"],
    )
    # Covers the filtered counts (total) of the at-risk list and the summary's one
    # grouped pass, so neither reads the wide rows (drivers are JSON).
    op.create_index(
        "ix_scores_run_filters",
        "scores",
        [
            "run_id",
            "risk_tier",
            "segment",
            "plan",
            "owner",
            "churn_probability",
            "mrr",
            "mrr_at_risk",
        ],
    )
    op.create_index("ix_scores_account", "scores", ["account_id"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("scope", sa.String, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("api_keys")
    op.drop_table("scores")
    op.drop_table("score_runs")
