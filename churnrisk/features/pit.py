"""Point-in-time building blocks: as-of dates, the spine and the one window join.

Time is the key. An as-of date ``a`` is midnight UTC at the start of that day and sees
only data strictly before it. Every feature and label row is keyed
``(account_id, as_of)``, and every feature or label reaches a table through
:func:`window_join` (or its two thin wrappers :func:`lookback` and :func:`lookahead`):
leakage can only enter there, and that is what the tests hammer.

Everything here is an Ibis expression, so the same definitions run on DuckDB (the
default) and on Spark: range joins rather than ``ASOF JOIN``, dates shifted by day
intervals, no engine-specific functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from churnrisk.dataset import TableSet
from churnrisk.errors import ConfigError

KEY: tuple[str, str] = ("account_id", "as_of")
"""The key of every feature and label row."""


def as_of_dates(
    start: date, end: date, freq: Literal["monthly", "semimonthly", "weekly"] = "monthly"
) -> list[date]:
    """Return the as-of dates of a training panel.

    Parameters
    ----------
    start, end
        The inclusive range ``[start, end]`` the dates are drawn from.
    freq
        ``"monthly"``: the first day of every month in the range; ``"semimonthly"``:
        the 1st and the 16th of every month; ``"weekly"``: every Monday in the range.

    Returns
    -------
    list of date
        Ascending; empty when the range holds no such day.

    Raises
    ------
    ConfigError
        When ``end`` is before ``start`` or ``freq`` is unknown.
    """
    if end < start:
        raise ConfigError(f"as-of range ends ({end}) before it starts ({start})")
    if freq == "monthly":
        out: list[date] = []
        y, m = start.year, start.month
        if start.day != 1:
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        while (d := date(y, m, 1)) <= end:
            out.append(d)
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out
    if freq == "semimonthly":
        months = as_of_dates(date(start.year, start.month, 1), end, "monthly")
        days = (d for m in months for d in (m, m.replace(day=16)))
        return [d for d in days if start <= d <= end]
    if freq == "weekly":
        first = start + timedelta(days=(7 - start.weekday()) % 7)
        return [first + timedelta(weeks=k) for k in range((end - first).days // 7 + 1)]
    raise ConfigError(f"unknown as-of frequency {freq!r}; use 'monthly', 'semimonthly' or 'weekly'")


def shift(day: ir.DateValue, days: int) -> ir.DateValue:
    """Return ``day`` moved by a whole number of ``days`` (negative: earlier)."""
    if days >= 0:
        return day + ibis.interval(days=days)
    return day - ibis.interval(days=-days)


def _bound(as_of: ir.DateValue, days: int, like: ir.Column) -> ir.Value:
    """Midnight of ``as_of + days`` in the type of ``like`` (DATE or TIMESTAMP)."""
    moved = shift(as_of, days)
    return moved.cast("timestamp") if like.type().is_timestamp() else moved


def window_join(
    spine: ir.Table,
    table: ir.Table,
    on: str,
    *,
    start_days: int | None,
    end_days: int,
    columns: Sequence[str] | None = None,
) -> ir.Table:
    """Join each spine row to the rows of ``table`` inside its time window.

    This is the single point-in-time join of churnrisk. For every spine row
    ``(account_id, as_of)`` it returns the rows ``r`` of ``table`` with
    ``r.account_id == account_id`` and
    ``as_of + start_days <= r[on] < as_of + end_days`` (days counted from midnight UTC
    of the as-of date), as a range join that any SQL engine can run.

    Parameters
    ----------
    spine
        A table with at least ``account_id`` (string) and ``as_of`` (date).
    table
        A table with ``account_id`` and a DATE or TIMESTAMP column ``on``.
    on
        The time column the window applies to.
    start_days
        Lower bound of the half-open window in days relative to ``as_of`` (e.g. ``-30``);
        ``None`` for an open-ended look-back (every row before the upper bound).
    end_days
        Upper (exclusive) bound in days relative to ``as_of``: ``0`` for features, which
        see only data strictly before the as-of date.
    columns
        Columns of ``table`` to carry (default: all but ``account_id``).

    Returns
    -------
    ibis.expr.types.Table
        ``account_id``, ``as_of`` and the carried columns; one row per (spine row,
        matching table row). Spine rows without a match do not appear.
    """
    col = table[on]
    carried = [c for c in (columns or table.columns) if c not in KEY]
    if on not in carried:
        carried.append(on)
    left = spine.select(
        _pit_account=spine.account_id,
        _pit_as_of=spine.as_of,
        _pit_hi=_bound(spine.as_of, end_days, col),
        **({} if start_days is None else {"_pit_lo": _bound(spine.as_of, start_days, col)}),
    )
    preds: list[Any] = [left._pit_account == table.account_id, col < left._pit_hi]
    if start_days is not None:
        preds.append(col >= left._pit_lo)
    joined = left.join(table, preds)
    return joined.select(
        account_id=joined._pit_account,
        as_of=joined._pit_as_of,
        **{c: joined[c] for c in carried},
    )


def prune(spine: ir.Table, table: ir.Table, on: str, start_days: int) -> ir.Table:
    """Drop rows of ``table`` that no window ``[as_of + start_days, as_of)`` can hold.

    Keeps ``min(as_of) + start_days <= on < max(as_of)``: a pure optimisation, applied
    before rolling a big table up so that rows outside every window are not even
    grouped. It cannot let anything in that :func:`window_join` would keep out.
    """
    col = table[on]
    lo = _bound(spine.as_of.min().as_scalar(), start_days, col)
    hi = _bound(spine.as_of.max().as_scalar(), 0, col)
    return table.filter(col >= lo, col < hi)


def lookback(
    spine: ir.Table,
    table: ir.Table,
    on: str,
    days: int | None,
    columns: Sequence[str] | None = None,
) -> ir.Table:
    """Rows of ``table`` with ``on`` in ``[as_of - days, as_of)`` (``days=None``: all before).

    A thin wrapper of :func:`window_join` for feature windows.
    """
    return window_join(
        spine, table, on, start_days=None if days is None else -days, end_days=0, columns=columns
    )


def lookahead(
    spine: ir.Table,
    table: ir.Table,
    on: str,
    days: int,
    columns: Sequence[str] | None = None,
) -> ir.Table:
    """Rows of ``table`` with ``on`` in ``[as_of, as_of + days)``: the label windows.

    A thin wrapper of :func:`window_join`, the forward twin of :func:`lookback`.
    """
    return window_join(spine, table, on, start_days=0, end_days=days, columns=columns)


def as_of_table(as_of: Sequence[date]) -> ir.Table:
    """Return the distinct as-of dates as a one-column Ibis table ``as_of`` (DATE).

    Raises
    ------
    ConfigError
        When no as-of date is given.
    """
    days = sorted(set(as_of))
    if not days:
        raise ConfigError("no as-of dates given; pass at least one date")
    return ibis.memtable({"as_of": days}, schema={"as_of": "date"})


def attach(base: ir.Table, *parts: ir.Table) -> ir.Table:
    """Left-join ``parts`` (each keyed by ``account_id, as_of``) onto ``base``.

    Keys are equalities on both columns, so this never crosses time: it only lines up
    results that :func:`window_join` already computed per spine row. The joins form one
    chain, which keeps the Ibis expression (and its compile time) small.
    """
    extras: list[str] = []
    joined: Any = base
    for i, part in enumerate(parts):
        extra = [c for c in part.columns if c not in KEY]
        acc, day = f"_k{i}_account", f"_k{i}_as_of"
        right = part.select(*extra, **{acc: part.account_id, day: part.as_of})
        joined = joined.left_join(right, [base.account_id == right[acc], base.as_of == right[day]])
        extras += extra
    if not parts:
        return base
    return joined.select(*[base[c] for c in base.columns], *extras)


def is_set(value: ir.Value) -> ir.BooleanValue:
    """Whether ``value`` is not NULL (Ibis ``notnull``, named apart from pandas' ``notna``)."""
    return value.notnull()


def covers(sub: ir.Table, day: ir.DateValue) -> ir.BooleanValue:
    """Whether subscription rows cover ``day``: ``start_date <= day < end_date`` (open end)."""
    return (sub.start_date <= day) & (sub.end_date.isnull() | (sub.end_date > day))


def spine(ds: TableSet, as_of: Sequence[date] | ir.Table) -> ir.Table:
    """Return the spine: the accounts to describe at each as-of date.

    An account is on the spine at as-of date ``a`` when it was created before ``a``
    (``created_at < a``) and was active on the day before (its MRR on ``a - 1`` day,
    summed over the subscription rows covering that day, is > 0). Only subscription rows
    known before ``a`` (``start_date < a``) are used.

    Parameters
    ----------
    ds
        The data set.
    as_of
        The as-of dates, or a table of them with one DATE column ``as_of``.

    Returns
    -------
    ibis.expr.types.Table
        Columns ``account_id``, ``as_of`` (DATE); one row per pair.
    """
    accounts = ds.table("accounts")
    dates = as_of if isinstance(as_of, ir.Table) else as_of_table(as_of)
    candidates = accounts.cross_join(dates)
    candidates = candidates.filter(
        candidates.created_at < candidates.as_of.cast("timestamp")
    ).select(*KEY)
    subs = lookback(candidates, ds.table("subscriptions"), "start_date", None)
    day_before = shift(subs.as_of, -1)
    covering = subs.filter(covers(subs, day_before))
    active = covering.group_by(list(KEY)).aggregate(_mrr=covering.mrr.sum())
    active = active.filter(active._mrr > 0)
    return active.select(*KEY)
