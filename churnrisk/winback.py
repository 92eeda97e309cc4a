"""Win-back: the accounts that churned lately, and which of them still use the product.

An account churned on day ``c`` (:func:`churnrisk.features.labels.churn_days`, with no
grace: the list is about who stopped paying, not about the label's waiting period) and
has not paid since. Those still logging in after their subscription ended are the
warmest win-back leads: they want the product, not the price or the contract.

Point in time like every feature: as of ``a``, only subscription rows that started
before ``a`` are known, an ``end_date`` on or after ``a`` has not happened yet (the row
still pays), and only events before ``a`` count. Everything is one Ibis expression, so
the same list comes out of DuckDB and Spark.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnrisk.dataset import TableSet
from churnrisk.errors import ConfigError
from churnrisk.features.labels import churn_days
from churnrisk.features.pit import covers, is_set, shift

WINBACK_COLUMNS: tuple[str, ...] = (
    "account_id",
    "name",
    "segment",
    "owner",
    "churn_day",
    "days_since_churn",
    "last_mrr",
    "events_after_end",
    "active_days_after_end",
    "users_after_end",
    "last_used",
    "still_using",
)
"""The columns of :func:`winback_table`, in order."""


def winback_table(ds: TableSet, as_of: date, *, days: int = 90, recent_days: int = 14) -> ir.Table:
    """Return the accounts that churned in ``[as_of - days, as_of)`` and pay nothing now.

    Columns (:data:`WINBACK_COLUMNS`): the account's ``name``, ``segment`` and
    ``owner``; its latest ``churn_day`` in the window and ``days_since_churn``;
    ``last_mrr``, the MRR it paid on the day before it churned; its usage since
    (``events_after_end``, ``active_days_after_end``, ``users_after_end``, the
    ``last_used`` date; 0 and NULL without events); ``still_using``, whether it used the
    product in the last ``recent_days`` before ``as_of``. Ordered by ``still_using``
    first, then by ``last_mrr`` from the largest.

    Raises
    ------
    ConfigError
        When ``days`` or ``recent_days`` is below 1.
    """
    if days < 1 or recent_days < 1:
        raise ConfigError(f"the win-back window needs days >= 1, got {days} and {recent_days}")
    a = ibis.literal(as_of, type="date")
    subs = ds.table("subscriptions")
    known = subs.filter(subs.start_date < a).mutate(
        end_date=ibis.ifelse(subs.end_date < a, subs.end_date, ibis.null().cast("date"))
    )
    paying = known.filter(known.mrr > 0)
    churns = churn_days(known, 0)
    churns = churns.filter((churns.churn_day >= shift(a, -days)) & (churns.churn_day < a))
    latest = churns.group_by("account_id").aggregate(churn_day=churns.churn_day.max())
    now = paying.filter(covers(paying, shift(a, -1))).select(_now=paying.account_id).distinct()
    gone = latest.anti_join(now, latest.account_id == now._now)

    before = paying.select(
        _b=paying.account_id, _start=paying.start_date, _end=paying.end_date, _mrr=paying.mrr
    )
    last_day = shift(gone.churn_day, -1)
    paid = gone.join(
        before,
        [
            gone.account_id == before._b,
            before._start <= last_day,
            ~is_set(before._end) | (before._end > last_day),
        ],
    )
    mrr = paid.group_by("account_id").aggregate(last_mrr=paid._mrr.sum())

    m = mrr.rename(_m="account_id")
    joined = gone.left_join(m, gone.account_id == m._m)
    with_mrr = joined.select(
        account_id=joined.account_id,
        churn_day=joined.churn_day,
        last_mrr=joined.last_mrr.fill_null(0.0),
    )
    used = _usage(ds, with_mrr, a) if ds.has("events") else None
    accounts = ds.table("accounts")
    people = accounts.select(
        _acc=accounts.account_id, name=accounts.name, segment=accounts.segment, owner=accounts.owner
    )
    t = with_mrr.left_join(people, with_mrr.account_id == people._acc)
    if used is not None:
        t = t.left_join(used, t.account_id == used._u)
        events = t._events.fill_null(0)
        active = t._days.fill_null(0)
        users = t._users.fill_null(0)
        last_used = t._last
    else:
        events = active = users = ibis.literal(0)
        last_used = ibis.null().cast("date")
    recent = shift(a, -recent_days)
    out = t.select(
        "account_id",
        "name",
        "segment",
        "owner",
        "churn_day",
        days_since_churn=a.delta(t.churn_day, unit="day"),
        last_mrr=t.last_mrr,
        events_after_end=events.cast("int64"),
        active_days_after_end=active.cast("int64"),
        users_after_end=users.cast("int64"),
        last_used=last_used,
        still_using=is_set(last_used) & (last_used >= recent),
    )
    return out.order_by([out.still_using.desc(), out.last_mrr.desc(), out.account_id]).select(
        *WINBACK_COLUMNS
    )


def _usage(ds: TableSet, churned: ir.Table, a: ir.DateValue) -> ir.Table:
    """Usage of each churned account from its churn day up to ``a`` (exclusive)."""
    events = ds.table("events")
    seen = events.filter(events.timestamp < a.cast("timestamp")).select(
        _acc=events.account_id, _ts=events.timestamp, _user=events.user_id
    )
    j = churned.join(
        seen,
        [churned.account_id == seen._acc, seen._ts >= churned.churn_day.cast("timestamp")],
    )
    day = j._ts.cast("date")
    return j.group_by(_u=j.account_id).aggregate(
        _events=j.count(),
        _days=day.nunique(),
        _users=j._user.nunique(),
        _last=day.max(),
    )


def winback(ds: TableSet, as_of: date, *, days: int = 90, recent_days: int = 14) -> pd.DataFrame:
    """Return :func:`winback_table` as a pandas frame (dates as ``datetime.date``)."""
    frame = ds.backend.execute(winback_table(ds, as_of, days=days, recent_days=recent_days))
    for column in ("churn_day", "last_used"):
        frame[column] = [
            None if pd.isna(value) else pd.Timestamp(value).date() for value in frame[column]
        ]
    frame["still_using"] = frame["still_using"].astype(bool)
    return frame.reset_index(drop=True)
