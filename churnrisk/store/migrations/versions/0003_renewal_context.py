"""Renewal timing and context on every score row (renewal_date, days_to_renewal, context).

Rows of runs scored before this revision get NULL renewal timing and an empty context
list: what they were scored with is not known any more, and nothing is made up.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


# Plain ALTER TABLE on both backends, not a batch (copy-and-move) operation: SQLite adds
# and drops columns in place, and a copy would rebuild the sort indexes without their
# DESC order.


def upgrade() -> None:
    """Add the three columns; existing rows get NULL timing and an empty context."""
    op.add_column("scores", sa.Column("renewal_date", sa.Date, nullable=True))
    op.add_column("scores", sa.Column("days_to_renewal", sa.Float, nullable=True))
    op.add_column(
        "scores", sa.Column("context", sa.JSON, nullable=False, server_default=sa.text("'[]'"))
    )


def downgrade() -> None:
    """Drop the three columns."""
    for column in ("context", "days_to_renewal", "renewal_date"):
        op.drop_column("scores", column)
