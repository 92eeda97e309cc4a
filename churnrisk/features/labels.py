"""Training labels: churn within the horizon and revenue over the next months.

Labels look forward from the as-of date ``a`` through
:func:`~churnrisk.features.pit.lookahead`, the forward twin of the feature join, and are
NULL when their window is not closed by the end of observation: a label that the data
cannot settle yet must not be read as "did not churn".
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from churnrisk.config import LabelConfig
from churnrisk.dataset import TableSet, observation_end
from churnrisk.features.pit import KEY, attach, is_set, lookahead, shift, window_join

LABEL_COLUMNS: tuple[str, str] = ("churned", "revenue_next_12m")
"""Label columns, in output order."""


def revenue_window_days(cfg: LabelConfig) -> int:
    """Length in days of the revenue window: ``revenue_months * 365 // 12`` (12 → 365)."""
    return cfg.revenue_months * 365 // 12


def churn_days(subs: ir.Table, grace_days: int) -> ir.Table:
    """Return every day an account churned.

    Day ``c`` is a churn day of an account when its MRR on ``c - 1`` is > 0, its MRR on
    ``c`` is 0 and stays 0 on every day of ``[c, c + grace_days)`` (with ``grace_days = 0``
    only day ``c`` itself must be 0). Only rows with ``mrr > 0`` count as paying, so
    ``c`` is the ``end_date`` of some paying row and no paying row overlaps
    ``[c, c + max(grace_days, 1))``.

    Returns
    -------
    ibis.expr.types.Table
        ``account_id``, ``churn_day`` (DATE); one row per churn.
    """
    paying = subs.filter(subs.mrr > 0)
    ends = (
        paying.filter(is_set(paying.end_date))
        .select("account_id", churn_day=paying.end_date)
        .distinct()
    )
    blockers = paying.select(
        _b_account=paying.account_id, _b_start=paying.start_date, _b_end=paying.end_date
    )
    quiet_until = shift(ends.churn_day, max(grace_days, 1))
    return ends.anti_join(
        blockers,
        [
            ends.account_id == blockers._b_account,
            blockers._b_start < quiet_until,
            blockers._b_end.isnull() | (blockers._b_end > ends.churn_day),
        ],
    )


def label_table(
    ds: TableSet, spine: ir.Table, cfg: LabelConfig, *, observed_end: date | None = None
) -> ir.Table:
    """Return the labels of every spine row.

    ``churned``
        1 when the account has a churn day (see :func:`churn_days`) in
        ``[a, a + horizon_days)``, else 0; NULL unless
        ``a + horizon_days + grace_days <= observed_end``.
    ``revenue_next_12m``
        Revenue in the window ``[a, a + R)`` with ``R = revenue_months * 365 // 12`` days:
        ``sum over subscription rows of mrr * overlap_days * 12 / 365`` (``overlap_days``
        is the number of days the row covers inside the window) plus the ``amount`` of
        orders with ``ordered_at`` in the window (0 when ``orders`` is absent); NULL
        unless ``a + R <= observed_end``.

    Parameters
    ----------
    ds
        The data set.
    spine
        ``account_id``, ``as_of`` pairs (see :func:`churnrisk.features.pit.spine`).
    cfg
        Horizon, grace period and revenue months.
    observed_end
        Exclusive end of observation; default :func:`observation_end`.

    Returns
    -------
    ibis.expr.types.Table
        ``account_id``, ``as_of``, ``churned`` (int8), ``revenue_next_12m`` (float64).
    """
    end = ibis.literal(observed_end or observation_end(ds), type="date")
    subs = ds.table("subscriptions")
    horizon = cfg.horizon_days
    r_days = revenue_window_days(cfg)

    jc = lookahead(spine, churn_days(subs, cfg.grace_days), "churn_day", horizon)
    churned = jc.group_by(list(KEY)).aggregate(_n_churn=jc.count())

    # rows signed before a + R: those running at a and those starting inside the window
    js = window_join(spine, subs, "start_date", start_days=None, end_days=r_days)
    w_end = shift(js.as_of, r_days)
    first = ibis.greatest(js.start_date, js.as_of)
    last = ibis.least(js.end_date.fill_null(w_end), w_end)
    overlap = ibis.greatest(last.delta(first, unit="day"), 0).cast("float64")
    sub_rev = js.group_by(list(KEY)).aggregate(_sub_rev=(js.mrr * overlap * 12.0 / 365.0).sum())

    parts = [churned, sub_rev]
    if ds.has("orders"):
        jo = lookahead(spine, ds.table("orders"), "ordered_at", r_days, ["ordered_at", "amount"])
        parts.append(jo.group_by(list(KEY)).aggregate(_orders=jo.amount.sum()))
    t = attach(spine, *parts)
    orders = t._orders.fill_null(0.0) if ds.has("orders") else ibis.literal(0.0)

    churn_closed = shift(t.as_of, horizon + cfg.grace_days) <= end
    revenue_closed = shift(t.as_of, r_days) <= end
    return t.select(
        *KEY,
        churned=ibis.ifelse(
            churn_closed,
            ibis.ifelse(t._n_churn.fill_null(0) > 0, 1, 0).cast("int8"),
            ibis.null().cast("int8"),
        ),
        revenue_next_12m=ibis.ifelse(
            revenue_closed,
            t._sub_rev.fill_null(0.0) + orders,
            ibis.null().cast("float64"),
        ),
    )
