"""An account's usage month by month: events, active users, tickets and NPS.

What the account page shows beside the risk trend: for each calendar month before an
as-of date ``a``, the product events, the distinct users behind them, the support
tickets opened and the mean NPS answer. Point in time like every feature: only rows
timed before ``a`` count, so the month holding ``a - 1 day`` is month-to-date and
marked ``partial`` (unless ``a`` is the first of a month, when every month shown is
whole). Months without rows are listed with zeros (and a null NPS), so a month of
silence shows as one.

One Ibis expression (:func:`monthly_usage_table`), so DuckDB and Spark give the same
months.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnrisk.dataset import TableSet
from churnrisk.errors import ConfigError

USAGE_COLUMNS: tuple[str, ...] = ("month", "events", "active_users", "tickets", "nps", "partial")
"""The columns of :func:`monthly_usage_table`, in order."""

MAX_MONTHS = 60
"""The most months one answer covers."""


def month_starts(as_of: date, months: int) -> list[date]:
    """Return the first days of the ``months`` calendar months ending with ``as_of - 1 day``.

    Raises
    ------
    ConfigError
        When ``months`` is not in ``1..MAX_MONTHS``.
    """
    if not 1 <= months <= MAX_MONTHS:
        raise ConfigError(f"months must be between 1 and {MAX_MONTHS}, got {months}")
    last = as_of - timedelta(days=1)
    index = last.year * 12 + last.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def _per_month(
    ds: TableSet, name: str, when: str, account_id: str, start: date, as_of: date
) -> ir.Table:
    """Rows of table ``name`` of one account timed in ``[start, as_of)``, with their month."""
    t = ds.table(name)
    lo = ibis.literal(start, type="date").cast("timestamp")
    hi = ibis.literal(as_of, type="date").cast("timestamp")
    rows = t.filter(t.account_id == account_id, t[when] >= lo, t[when] < hi)
    return rows.mutate(_month=rows[when].truncate("M").cast("date"))


def monthly_usage_table(
    ds: TableSet, account_id: str, as_of: date, *, months: int = 12
) -> ir.Table:
    """Return one account's usage per calendar month before ``as_of``, oldest month first.

    Parameters
    ----------
    ds
        The data set (DuckDB or Spark); optional tables it lacks count as empty.
    account_id
        The account.
    as_of
        Exclusive end: rows timed on or after midnight UTC of this day do not count.
    months
        How many calendar months, the last one holding ``as_of - 1 day``.

    Returns
    -------
    ibis.expr.types.Table
        :data:`USAGE_COLUMNS`: ``month`` (its first day); ``events``, the rows of
        ``events`` timed in the month; ``active_users``, their distinct ``user_id``;
        ``tickets``, the tickets ``created_at`` in the month; ``nps``, the mean
        ``score`` of the answers ``responded_at`` in the month (NULL without any);
        ``partial``, whether the month is cut short by ``as_of``.
    """
    starts = month_starts(as_of, months)
    partial = as_of.day != 1
    spine = ibis.memtable(
        {"month": starts, "partial": [False] * (months - 1) + [partial]},
        schema={"month": "date", "partial": "boolean"},
    )
    events = _per_month(ds, "events", "timestamp", account_id, starts[0], as_of)
    used = events.group_by(_me="_month").aggregate(
        _events=events.count(), _users=events.user_id.nunique()
    )
    tickets = _per_month(ds, "tickets", "created_at", account_id, starts[0], as_of)
    opened = tickets.group_by(_mt="_month").aggregate(_tickets=tickets.count())
    nps = _per_month(ds, "nps", "responded_at", account_id, starts[0], as_of)
    answered = nps.group_by(_mn="_month").aggregate(_nps=nps.score.mean())
    t = spine.left_join(used, spine.month == used._me)
    t = t.left_join(opened, t.month == opened._mt)
    t = t.left_join(answered, t.month == answered._mn)
    out = t.select(
        month=t.month,
        events=t._events.fill_null(0).cast("int64"),
        active_users=t._users.fill_null(0).cast("int64"),
        tickets=t._tickets.fill_null(0).cast("int64"),
        nps=t._nps.cast("float64"),
        partial=t.partial,
    )
    return out.order_by(out.month).select(*USAGE_COLUMNS)


def monthly_usage(
    ds: TableSet, account_id: str, as_of: date, *, months: int = 12
) -> list[dict[str, Any]]:
    """Return :func:`monthly_usage_table` as JSON values, each ``month`` as ``YYYY-MM``."""
    frame = ds.backend.execute(monthly_usage_table(ds, account_id, as_of, months=months))
    return [
        {
            "month": pd.Timestamp(row["month"]).strftime("%Y-%m"),
            "events": int(row["events"]),
            "active_users": int(row["active_users"]),
            "tickets": int(row["tickets"]),
            "nps": None if pd.isna(row["nps"]) else float(row["nps"]),
            "partial": bool(row["partial"]),
        }
        for row in frame.to_dict("records")
    ]
