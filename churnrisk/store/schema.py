"""The score store's tables, as SQLAlchemy Core :class:`~sqlalchemy.MetaData`.

The migrations under ``migrations/versions`` create these tables; this module is what the
queries in :mod:`churnrisk.store.queries` and :mod:`churnrisk.store.reads` are written
against. Keep the two in step: a change here needs a new migration. The ``scores``
columns are the score row's fields as :mod:`churnrisk.scorerow` declares them; a declared
field gets its column from a migration that calls :func:`add_score_columns` (see that
module's notes).

Tables
    ``score_runs``
        One row per scoring run. A run's position is ``(as_of, scored_at)``; the current
        run is the greatest.
    ``scores``
        One row per account per run (primary key ``(run_id, account_id)``), deleted with
        its run. The composite indexes serve the at-risk list's filters and its four sort
        orders (value descending, ties by ``account_id`` ascending) and the account
        history.
        Revision 0003 added each account's renewal timing (``renewal_date``,
        ``days_to_renewal``) and its context features (``context``, apart from the
        drivers); rows of earlier runs have NULL timing and an empty context.
    ``run_totals``
        Per run and tier: accounts, MRR and MRR at risk, written with the run (revision
        0002). The book's risk trend reads a few rows per run instead of every score.
    ``api_keys``
        API keys, stored as the SHA-256 of the key text, never the text itself.
    ``activities``
        What customer success did about an account (revision 0004): calls, meetings,
        e-mails, offers, notes, with an optional outcome and snooze date; recorded
        through the API or imported from a CRM's history.
    ``alert_deliveries``
        The delivery log of alerts (revision 0004): one row per webhook POST or e-mail,
        with its status, attempts and the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from churnrisk.errors import ConfigError
from churnrisk.scorerow import FIELDS_BY_NAME, SCORE_FIELDS, ScoreField, fields_of

#: Alembic's version table of the score store. Not ``alembic_version``: the store may
#: share a database (or schema) with another Alembic-managed application such as MLflow.
VERSION_TABLE = "churnrisk_store_version"

#: The Alembic revision the code in this package expects.
HEAD_REVISION = "0005"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC text (which also keeps its text ordering chronological). Naive datetimes
    passed in are taken to be UTC; values read back are always aware, in UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert ``value`` to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return ``value`` as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

score_runs = sa.Table(
    "score_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("scored_at", UTCDateTime, nullable=False),
    sa.Column("churn_version", sa.String, nullable=False),
    sa.Column("clv_version", sa.String, nullable=False),
    sa.Column("model_run_id", sa.String, nullable=False),
    sa.Column("accounts", sa.Integer, nullable=False),
    sa.Column("tiers", sa.JSON, nullable=False),
    sa.Column("low_tier", sa.String, nullable=False),
    sa.Column("previous_run_id", sa.String, nullable=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Index("ix_score_runs_position", "as_of", "scored_at"),
)

run_totals = sa.Table(
    "run_totals",
    metadata,
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("score_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("risk_tier", sa.String(32), primary_key=True),
    sa.Column("accounts", sa.Integer, nullable=False),
    sa.Column("mrr", sa.Float, nullable=False),
    sa.Column("mrr_at_risk", sa.Float, nullable=False),
)


def score_column(field: ScoreField) -> sa.Column[Any]:
    """Return the ``scores`` column of a declared score field (:mod:`churnrisk.scorerow`).

    ``text`` is ``VARCHAR`` (of the field's length), ``number`` and ``whole`` ``FLOAT``
    (whole numbers are held as floats so that missing is NaN, stored as NULL), ``date``
    ``DATE`` and the driver lists ``JSON``; the account id is part of the primary key.
    """
    kind: Any = {
        "text": sa.String(field.length),
        "number": sa.Float,
        "whole": sa.Float,
        "date": sa.Date,
        "drivers": sa.JSON,
        "change_drivers": sa.JSON,
    }[field.kind]
    if field.source == "key":
        return sa.Column(field.name, kind, primary_key=True)
    return sa.Column(field.name, kind, nullable=field.nullable)


scores = sa.Table(
    "scores",
    metadata,
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("score_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    *(score_column(f) for f in SCORE_FIELDS),
)

# The at-risk list sorts descending by a value with ties by account_id ascending; the
# indexes are declared in that order so a forward index scan delivers the rows in order
# (no sort of the whole run). The change sort puts NULLs last: SQLite's DESC does that
# already (and rejects NULLS LAST in an index), PostgreSQL's DESC puts them first, so the
# migration creates that index ``DESC NULLS LAST`` on PostgreSQL and ``DESC`` on SQLite.
# Declared here as PostgreSQL has it; the tables are only ever created by the migrations.
FILTER_COLUMNS = ("churn_probability", "mrr", "risk_tier", "segment", "plan", "owner")
"""The at-risk list's filter columns. Each sort index carries them after its key, so a
filtered walk in sort order is decided from the index and reads a table row only for the
accounts of the page instead of every account that passes the filter (bench/RESULTS.md
has the timings)."""


def _filters_but(index: str) -> list[sa.Column[Any]]:
    """Return the filter columns of a sort index (its own sort column left out)."""
    own = "churn_probability" if index == "ix_scores_run_probability" else None
    return [scores.c[c] for c in FILTER_COLUMNS if c != own]


sa.Index(
    "ix_scores_run_probability",
    scores.c.run_id,
    scores.c.churn_probability.desc(),
    scores.c.account_id,
    *_filters_but("ix_scores_run_probability"),
)
sa.Index(
    "ix_scores_run_mrr_at_risk",
    scores.c.run_id,
    scores.c.mrr_at_risk.desc(),
    scores.c.account_id,
    *_filters_but("ix_scores_run_mrr_at_risk"),
)
sa.Index(
    "ix_scores_run_clv",
    scores.c.run_id,
    scores.c.lifetime_clv.desc(),
    scores.c.account_id,
    *_filters_but("ix_scores_run_clv"),
)
sa.Index(
    "ix_scores_run_change",
    scores.c.run_id,
    scores.c.probability_change.desc().nulls_last(),
    scores.c.account_id,
    *_filters_but("ix_scores_run_change"),
)
# The renewal sort is ascending (soonest first) with accounts without a renewal last:
# PostgreSQL's ASC puts NULLs last, SQLite's first, so the page query walks the known
# renewals and then the NULL range as two seeks (:func:`churnrisk.store.queries.at_risk_select`).
sa.Index(
    "ix_scores_run_renewal",
    scores.c.run_id,
    scores.c.days_to_renewal,
    scores.c.account_id,
    *_filters_but("ix_scores_run_renewal"),
)
sa.Index(
    "ix_scores_run_tier",
    scores.c.run_id,
    scores.c.risk_tier,
    scores.c.churn_probability.desc(),
    scores.c.account_id,
)
# Covers the filtered counts of the at-risk list and the summary's grouped pass.
sa.Index(
    "ix_scores_run_filters",
    scores.c.run_id,
    scores.c.risk_tier,
    scores.c.segment,
    scores.c.plan,
    scores.c.owner,
    scores.c.churn_probability,
    scores.c.mrr,
    scores.c.mrr_at_risk,
)
sa.Index("ix_scores_account", scores.c.account_id)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("scope", sa.String, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

#: The ``scores`` columns a scoring run provides, in declaration order (all but ``run_id``).
SCORE_COLUMNS: list[str] = [c.name for c in scores.columns if c.name != "run_id"]

#: Nullable float columns of ``scores``: NaN is written as NULL.
NULLABLE_FLOATS: tuple[str, ...] = tuple(
    f.name for f in SCORE_FIELDS if f.kind in ("number", "whole") and f.nullable
)

#: Nullable text columns of ``scores``.
NULLABLE_TEXTS: tuple[str, ...] = tuple(
    f.name for f in SCORE_FIELDS if f.kind == "text" and f.nullable
)

#: JSON columns of ``scores``: lists of driver items.
JSON_COLUMNS: tuple[str, ...] = fields_of(kind="drivers") + fields_of(kind="change_drivers")

#: Nullable date columns of ``scores``.
NULLABLE_DATES: tuple[str, ...] = fields_of(kind="date")


# ---------------------------------------------------------------------------------------
# migrations of declared fields
# ---------------------------------------------------------------------------------------


def _new_column(name: str) -> sa.Column[Any]:
    """Return the column a migration adds for the declared field ``name``.

    Rows stored before the migration have no value for it: a driver list gets an empty
    list (as revision 0003 gave ``context``), any other field must be nullable.
    """
    field = FIELDS_BY_NAME.get(name)
    if field is None:
        raise ConfigError(
            f"{name!r} is not a declared score field; declare it in churnrisk.scorerow"
            " before its migration adds it"
        )
    column = score_column(field)
    if field.kind in ("drivers", "change_drivers"):
        column.server_default = sa.DefaultClause(sa.text("'[]'"))
    elif not field.nullable:
        raise ConfigError(
            f"score field {name!r} is not nullable, but the rows already stored have no"
            " value for it: declare it nullable (earlier runs show it as null)"
        )
    return column


def add_score_columns(*names: str) -> None:
    """Add the ``scores`` columns of declared score fields, in a migration's ``upgrade``.

    The type and nullability come from :data:`churnrisk.scorerow.SCORE_FIELDS`, so the
    migration of a new field is two lines::

        def upgrade() -> None:
            add_score_columns("seats")


        def downgrade() -> None:
            drop_score_columns("seats")

    A column the table has already is left as it is, so the call is safe on a database
    whose table was made with the column. Plain ``ALTER TABLE`` on both backends (no
    batch copy, which would rebuild the sort indexes without their ``DESC`` order).

    Raises
    ------
    ConfigError
        A name that is not declared, or a declared field that is not nullable (stored rows
        would have no value for it).
    """
    from alembic import op

    columns = [_new_column(n) for n in names]
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("scores")}
    for column in columns:
        if column.name not in present:
            op.add_column("scores", column)


def drop_score_columns(*names: str) -> None:
    """Drop ``scores`` columns, in the ``downgrade`` of the migration that added them."""
    from alembic import op

    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("scores")}
    for name in names:
        if name in present:
            op.drop_column("scores", name)


# revision 0004: what customer success did about a score, and where alerts went
activities = sa.Table(
    "activities",
    metadata,
    sa.Column("activity_id", sa.String(32), primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("author", sa.String, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("snooze_until", sa.Date, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_activities_account_time", "account_id", "occurred_at"),
    # revision 0005: the snoozing activities alone (few), for the list's snooze filter
    sa.Index(
        "ix_activities_snoozes",
        "account_id",
        "occurred_at",
        "recorded_at",
        "snooze_until",
        sqlite_where=sa.text("snooze_until IS NOT NULL"),
        postgresql_where=sa.text("snooze_until IS NOT NULL"),
    ),
)

# revision 0005: one row whose version every activity write raises in its own
# transaction, so a reader sees the new version exactly when it sees the new activities
# (the API's cache keys hold it: see churnrisk.api.routes.accounts)
activity_stamp = sa.Table(
    "activity_stamp",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("detail", sa.String, nullable=False),
    sa.Column("alerts", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_alert_deliveries_at", "at"),
)
