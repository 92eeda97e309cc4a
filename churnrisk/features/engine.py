"""The feature engine: every registered feature for every (account, as-of) pair at once.

Each table's features are one Ibis expression over the spine, built from
:func:`~churnrisk.features.pit.lookback` (the single point-in-time join) and conditional
aggregates; the engine left-joins them onto the spine and orders the columns as the
registry does. All pairs are computed in one set-based query: nothing loops over
accounts or dates in Python.

Conventions (the reference implementation in ``tests/reference.py`` follows them too):

* A day is a UTC calendar day; an event at ``ts`` belongs to day ``ts.date()``. Because
  windows start at midnight, ``ts`` is in ``[a - w days, a)`` exactly when its day is.
* Counts over a present table are 0 when nothing falls in the window; ratios, means,
  medians and "days since" are NULL when undefined. Every feature of an absent optional
  table is NULL.
* Divisions are cast to float64 and guarded with ``nullif`` so they behave the same on
  Spark (no rounded DECIMALs, no errors on division by zero).
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnrisk.config import LabelConfig
from churnrisk.contract import TABLES
from churnrisk.dataset import Dataset, TableSet
from churnrisk.errors import ChurnRiskError, ConfigError
from churnrisk.features.labels import LABEL_COLUMNS, label_table, observation_end
from churnrisk.features.pit import (
    KEY,
    as_of_table,
    attach,
    covers,
    is_set,
    lookback,
    prune,
    shift,
    spine,
)
from churnrisk.features.registry import FEATURES, Feature, check_declarations, get_feature

MRR_EPSILON = 1e-6
"""MRR changes smaller than this (currency units per month) are float noise, not moves."""

_F64 = "float64"
_EXACT = "decimal(38, 18)"


def _days_between(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    """Whole days from ``earlier`` to ``later`` (both dates)."""
    return later.delta(earlier, unit="day")


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """``num / den`` in float64, NULL when ``den`` is 0 or NULL (safe on Spark)."""
    return num.cast(_F64) / den.cast(_F64).nullif(0.0)


# ---------------------------------------------------------------------------------------
# windowed aggregates read from the registry's declarations
# ---------------------------------------------------------------------------------------

_Op = Literal["sum", "count", "any", "mean", "median", "max"]


@dataclass(frozen=True)
class _Part:
    """One conditional aggregate of a source's rows whose time is in ``[a - lo, a - hi)``."""

    source: str
    op: _Op
    measure: str | None
    where: tuple[str, ...]
    match: tuple[str, str] | None
    lo: int
    hi: int = 0

    @property
    def name(self) -> str:
        """A column name that depends only on what the part computes."""
        return "_p" + hashlib.sha1(repr(self).encode()).hexdigest()[:12]


def _parts(f: Feature) -> dict[str, _Part]:
    """Return the aggregates a windowed feature needs, by role (``v``, ``prev``, ``num``...)."""
    a, w = f.agg, f.window_days
    if a is None or w is None or a.how in ("ratio", "change"):
        return {}
    where = () if a.where is None else (a.where,)

    def part(
        op: _Op, measure: str | None, lo: int, hi: int = 0, extra: tuple[str, ...] = ()
    ) -> _Part:
        return _Part(a.source, op, measure, where + extra, a.match, lo, hi)

    how = a.how
    if how in ("sum", "mean", "median"):
        return {"v": part(how, a.measure, w)}
    if how in ("count", "per_day"):
        return {"v": part("count", None, w)}
    if how == "nunique":
        return {"v": part("any", a.measure, w)}
    if how == "days_since":
        return {"v": part("max", a.measure, w)}
    if how == "share":
        hit = (str(a.measure),)
        return {"num": part("count", None, w, extra=hit), "den": part("count", None, w)}
    op: _Op = "any" if how == "trend_nunique" else ("sum" if a.measure else "count")
    return {"v": part(op, a.measure, w // 2), "prev": part(op, a.measure, w, w // 2)}


def _since(col: ir.Column, as_of: ir.DateValue, days: int) -> ir.Value:
    """Midnight of ``as_of - days`` in the type of ``col`` (DATE or TIMESTAMP)."""
    day = shift(as_of, -days)
    return day.cast("timestamp") if col.type().is_timestamp() else day


def _condition(
    j: ir.Table, on: str, reach: int | None, p: _Part, preds: Mapping[str, ir.BooleanValue]
) -> ir.BooleanValue | None:
    """Rows of the window join ``j`` (``on`` in ``[a - reach, a)``) that ``p`` counts."""
    conds: list[ir.BooleanValue] = []
    if reach is None or p.lo < reach:
        conds.append(j[on] >= _since(j[on], j.as_of, p.lo))
    if p.hi > 0:
        conds.append(j[on] < _since(j[on], j.as_of, p.hi))
    conds += [preds[w] for w in p.where]
    if p.match is not None:
        conds.append(j[p.match[0]] == p.match[1])
    return functools.reduce(operator.and_, conds) if conds else None


def _unique_parts(feats: Sequence[Feature]) -> list[_Part]:
    """Return the distinct parts of ``feats``, in first-use order."""
    return list(dict.fromkeys(p for f in feats for p in _parts(f).values()))


def _part_columns(
    j: ir.Table,
    on: str,
    reach: int | None,
    parts: Sequence[_Part],
    preds: Mapping[str, ir.BooleanValue] | None = None,
    entity: str | None = None,
) -> dict[str, ir.Scalar]:
    """Return the aggregates of ``parts`` over a window join, one column per part.

    Raises
    ------
    ConfigError
        When a part counts distinct values of anything but the source's ``entity``.
    """
    out: dict[str, ir.Scalar] = {}
    for p in parts:
        if p.op == "any" and p.measure != entity:
            raise ConfigError(
                f"distinct {p.measure!r} cannot be counted over {p.source!r}; its roll-up"
                f" counts distinct {entity or 'nothing'}"
            )
        c = _condition(j, on, reach, p, preds or {})
        if p.op == "count":
            out[p.name] = j.count(where=c)
        elif p.op == "any":
            out[p.name] = (j.count() > 0) if c is None else c.any()
        elif p.op == "median":
            # masked, not ``median(where=...)``: Ibis gives Spark a non-constant percentage
            m = j[p.measure]
            out[p.name] = (m if c is None else ibis.ifelse(c, m, ibis.null().cast(_F64))).median()
        elif p.op == "mean":
            out[p.name] = j[p.measure].cast(_F64).mean(where=c)
        elif p.op == "max":
            out[p.name] = j[p.measure].max(where=c)
        else:
            out[p.name] = j[p.measure].sum(where=c)
    return out


def _reach(feats: Sequence[Feature]) -> int:
    return max(f.window_days or 0 for f in feats)


def _aggregate(
    sp: ir.Table,
    table: ir.Table,
    on: str,
    feats: Sequence[Feature],
    *,
    preds: Callable[[ir.Table], Mapping[str, ir.BooleanValue]] | None = None,
    entity: str | None = None,
    columns: Sequence[str] | None = None,
) -> ir.Table:
    """Window-join ``table`` over the longest declared window of ``feats`` and aggregate.

    With an ``entity`` (a user, an event type), the rows are first aggregated per
    (account, as-of, entity) and then summed: distinct entities are counted as the
    number whose flag is set, without ``COUNT(DISTINCT)``; a part that matches one
    value of the entity (one event type) is taken apart only at the second level, so
    the first level computes each window once for every value.
    """
    reach = _reach(feats)
    j = lookback(sp, table, on, reach, columns=columns)
    parts = _unique_parts(feats)
    if entity is None:
        cols = _part_columns(j, on, reach, parts, preds(j) if preds else None)
        return j.group_by(list(KEY)).aggregate(**cols)

    def shared(p: _Part) -> _Part:
        return replace(p, match=None) if p.match is not None and p.match[0] == entity else p

    first = list(dict.fromkeys(shared(p) for p in parts))
    cols = _part_columns(j, on, reach, first, preds(j) if preds else None, entity)
    level = j.group_by([*KEY, entity]).aggregate(
        **{k: v.cast("int64") if v.type().is_boolean() else v for k, v in cols.items()}
    )
    second: dict[str, ir.Scalar] = {}
    for p in parts:
        base = shared(p)
        hit = None if base == p or p.match is None else level[entity] == p.match[1]
        second[p.name] = level[base.name].sum(where=hit)
    return level.group_by(list(KEY)).aggregate(**second)


def _finish(t: ir.Table, feats: Sequence[Feature]) -> dict[str, ir.Value]:
    """Return the windowed features of ``feats`` from the aggregates of :func:`_parts`."""
    out: dict[str, ir.Value] = {}
    for f in feats:
        a, parts = f.agg, _parts(f)
        if a is None or not parts:
            continue
        how = a.how
        if how in ("mean", "median"):
            out[f.name] = t[parts["v"].name]
        elif how == "days_since":
            last = t[parts["v"].name]
            out[f.name] = _days_between(
                t.as_of, last.date() if last.type().is_timestamp() else last
            )
        elif how == "share":
            out[f.name] = _ratio(t[parts["num"].name], t[parts["den"].name])
        elif how in ("trend", "trend_nunique"):
            now, prev = t[parts["v"].name].fill_null(0), t[parts["prev"].name].fill_null(0)
            out[f.name] = _ratio(now - prev, prev)
        elif how == "per_day":
            assert f.window_days is not None
            out[f.name] = t[parts["v"].name].fill_null(0).cast(_F64) / float(f.window_days)
        else:  # sum, count, nunique: 0 over a present table
            out[f.name] = t[parts["v"].name].fill_null(0)
    return out


def _of(feats: Sequence[Feature], *sources: str) -> list[Feature]:
    return [f for f in feats if f.agg is not None and f.agg.source in sources]


# ---------------------------------------------------------------------------------------
# events: usage and engagement
# ---------------------------------------------------------------------------------------


def _events(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """Usage and engagement features from ``events``.

    This shape is about three times faster than joining raw events to the spine and
    counting distinct values (bench/RESULTS.md, Feature build):

    * events outside every window, ``[min(as_of) - reach, max(as_of))``, are dropped
      first (:func:`~churnrisk.features.pit.prune`, a pure optimisation);
    * events are rolled up to (account, user, day) and (account, day) — exact, since
      every window is made of whole UTC days — and only then window-joined, so each
      event is repeated per as-of window as one small rolled-up row, not as itself;
    * one join of the (account, day) rows over the longest declared window feeds every
      day-level feature with conditional aggregates, one join of the (account, user,
      day) rows feeds the user-level ones with a two-level aggregate (per user, then per
      account) instead of ``COUNT(DISTINCT)``;
    * event types come from a second pruned scan rolled up to (account, event type,
      day): sharing the first scan would make DuckDB hold the raw events in memory,
      raising the peak for no time saved.
    """
    ev = ds.table("events")
    by_day, by_user = _of(feats, "events"), _of(feats, "event_users")
    by_type = _of(feats, "event_types")
    pieces = []
    if by_day or by_user:
        recent = prune(sp, ev, "timestamp", -_reach(by_day + by_user))
        # event values are summed as exact decimals: a float sum depends on the order
        # the engine's threads add them in, and the same data must give the same panel
        exact = recent.value.cast(_EXACT).sum()
        sums = {"value": exact} if any(_measures(by_day, "value")) else {}
        user_days = recent.group_by("account_id", "user_id", day=recent.timestamp.date()).aggregate(
            n=recent.count(), **sums
        )
        if by_day:
            days = user_days.group_by("account_id", "day").aggregate(
                n=user_days.n.sum(), **{k: user_days[k].sum() for k in sums}
            )
            pieces.append(_aggregate(sp, days, "day", by_day))
        if by_user:
            pieces.append(_aggregate(sp, user_days, "day", by_user, entity="user_id"))
    if by_type:
        typed = prune(sp, ev.filter(is_set(ev.event_type)), "timestamp", -_reach(by_type))
        types = typed.group_by("account_id", "event_type", day=typed.timestamp.date()).aggregate(
            n=typed.count()
        )
        pieces.append(_aggregate(sp, types, "day", by_type, entity="event_type"))
    t = attach(sp, *pieces)
    return t.select(*KEY, **_finish(t, by_day + by_user + by_type))


def _measures(feats: Sequence[Feature], name: str) -> list[Feature]:
    return [f for f in feats if f.agg is not None and f.agg.measure == name]


# ---------------------------------------------------------------------------------------
# tickets
# ---------------------------------------------------------------------------------------


def _tickets(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """Support features from ``tickets``.

    A ticket is known from ``created_at``; its resolution, contacts and CSAT only from
    ``resolved_at``. So a ticket created before ``a`` but resolved on or after ``a`` is
    open at ``a``, and only tickets resolved before ``a`` feed resolution time, first
    contact resolution and CSAT. Priorities are compared lower-cased.
    """
    tk = ds.table("tickets")
    tk = tk.mutate(
        priority=tk.priority.lower(),
        hours=tk.resolved_at.delta(tk.created_at, unit="microsecond").cast(_F64) / 3.6e9,
    )
    j = lookback(sp, tk, "created_at", None)
    resolved = is_set(j.resolved_at) & (j.resolved_at < j.as_of.cast("timestamp"))
    is_open = ~resolved
    preds = {
        "resolved": resolved,
        "resolved_with_contacts": resolved & is_set(j.contacts),
        "first_contact": j.contacts == 1,
    }
    created = _of(feats, "tickets")
    agg = j.group_by(list(KEY)).aggregate(
        tickets_open=j.count(where=is_open),
        urgent_open=j.count(where=is_open & (j.priority == "urgent")),
        **_part_columns(j, "created_at", None, _unique_parts(created), preds),
    )
    pieces = [agg]
    rated = _of(feats, "tickets_resolved")
    if rated:
        pieces.append(
            _aggregate(
                sp,
                tk.filter(is_set(tk.resolved_at)),
                "resolved_at",
                rated,
                preds=lambda jr: {"low_csat": jr.csat <= 2},
            )
        )
    t = attach(sp, *pieces)
    return t.select(
        *KEY,
        tickets_open=t.tickets_open.fill_null(0),
        urgent_open=t.urgent_open.fill_null(0),
        **_finish(t, created + rated),
    )


# ---------------------------------------------------------------------------------------
# nps
# ---------------------------------------------------------------------------------------


def _nps(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """Survey features from ``nps``.

    The latest answer is the one with the latest ``responded_at`` before ``a``; answers
    at the very same instant are resolved to the lowest score (the cautious reading).
    """
    j = lookback(sp, ds.table("nps"), "responded_at", None, columns=["responded_at", "score"])
    windowed = _of(feats, "nps")
    agg = j.group_by(list(KEY)).aggregate(
        _last_ts=j.responded_at.max(),
        **_part_columns(j, "responded_at", None, _unique_parts(windowed)),
    )
    r = agg.select(_l_account=agg.account_id, _l_as_of=agg.as_of, _l_ts=agg._last_ts)
    at_last = j.join(
        r, [j.account_id == r._l_account, j.as_of == r._l_as_of, j.responded_at == r._l_ts]
    )
    last = at_last.group_by(list(KEY)).aggregate(
        nps_last_score=at_last.score.min(), _last_ts=at_last.responded_at.max()
    )
    t = attach(sp, agg.drop("_last_ts"), last)
    return t.select(
        *KEY,
        nps_last_score=t.nps_last_score,
        nps_detractor=(t.nps_last_score <= 6).cast("int64"),
        days_since_nps=_days_between(t.as_of, t._last_ts.date()),
        **_finish(t, windowed),
    )


# ---------------------------------------------------------------------------------------
# subscriptions: billing state and movements
# ---------------------------------------------------------------------------------------


def mrr_moves(subs: ir.Table) -> ir.Table:
    """Return the days an account's MRR moved, with the MRR just before and on that day.

    A move can only happen on a subscription boundary (a ``start_date`` or an
    ``end_date``). For each boundary day ``d`` of an account this gives
    ``mrr_before = MRR(d - 1)`` and ``mrr_after = MRR(d)``, where ``MRR(x)`` sums the rows
    covering ``x``. Only rows with ``start_date <= d`` enter either sum, so a move dated
    before an as-of date depends only on rows signed before it: windowing this table by
    ``day`` with :func:`~churnrisk.features.pit.lookback` is point-in-time.

    Returns
    -------
    ibis.expr.types.Table
        ``account_id``, ``day`` (DATE), ``mrr_before``, ``mrr_after``, and the lowest and
        highest plan name of the rows covering each side (``plan_lo_before``,
        ``plan_hi_before``, ``plan_lo_after``, ``plan_hi_after``; NULL when no covering
        row has a plan); one row per account and boundary day.
    """
    starts = subs.select("account_id", day=subs.start_date)
    ends = subs.filter(is_set(subs.end_date)).select("account_id", day=subs.end_date)
    bounds = starts.union(ends, distinct=True).rename(_b_account="account_id", _b_day="day")
    j = bounds.join(subs, bounds._b_account == subs.account_id)
    before = shift(j._b_day, -1)
    was, now = covers(j, before), covers(j, j._b_day)
    moves = j.group_by(account_id=j._b_account, day=j._b_day).aggregate(
        mrr_before=j.mrr.sum(where=was),
        mrr_after=j.mrr.sum(where=now),
        plan_lo_before=j.plan.min(where=was),
        plan_hi_before=j.plan.max(where=was),
        plan_lo_after=j.plan.min(where=now),
        plan_hi_after=j.plan.max(where=now),
    )
    return moves.mutate(
        mrr_before=moves.mrr_before.fill_null(0.0), mrr_after=moves.mrr_after.fill_null(0.0)
    )


def _change(now: ir.NumericValue, then: ir.NumericValue) -> ir.NumericValue:
    """``now - then``, a missing side as 0; NULL when both are (nothing ever measured)."""
    diff = now.fill_null(0) - then.fill_null(0)
    return ibis.ifelse(~is_set(now) & ~is_set(then), ibis.null(diff.type()), diff)


def _up_for_renewal(j: ir.Table) -> ir.BooleanValue:
    """Whether a looked-back subscription row can be the one up for renewal at ``as_of``.

    It covers the day before ``as_of`` and its term (``term_end``, known at signing) ends
    on or after ``as_of``. The nearest such ``term_end`` is the renewal date
    (``days_to_renewal``); the rows ending on it are what is up for renewal
    (:func:`renewal_mrr_expr`).
    """
    return covers(j, shift(j.as_of, -1)) & (j.term_end >= j.as_of)


def renewal_mrr_expr(ds: TableSet, as_of: Sequence[date] | ir.Table) -> ir.Table:
    """Return the MRR up for renewal of every spine pair, as an Ibis expression.

    ``renewal_mrr`` sums the MRR of the subscription rows signed before ``as_of``
    (``start_date < as_of``, the point-in-time look-back ``days_to_renewal`` uses) that
    cover the day before it and whose ``term_end`` is the renewal date (the nearest term
    end on or after ``as_of``). NULL without a known term end, as ``days_to_renewal`` is.
    Not a feature: scoring reports it, no model learns from it. DuckDB and Spark run
    this one expression.

    Returns
    -------
    ibis.expr.types.Table
        ``account_id``, ``as_of`` (DATE), ``renewal_mrr`` (float64), one row per spine pair.
    """
    dates = as_of if isinstance(as_of, ir.Table) else as_of_table(as_of)
    sp = spine(ds, dates)
    if not ds.has("subscriptions"):
        return sp.select(*KEY, renewal_mrr=ibis.null().cast(_F64))
    j = lookback(sp, ds.table("subscriptions"), "start_date", None)
    up = _up_for_renewal(j)
    nearest = j.group_by(list(KEY)).aggregate(_r_day=j.term_end.min(where=up))
    n = nearest.select(_r_account=nearest.account_id, _r_as_of=nearest.as_of, _r_day=nearest._r_day)
    m = j.join(n, [j.account_id == n._r_account, j.as_of == n._r_as_of, j.term_end == n._r_day])
    m = m.filter(_up_for_renewal(m))
    amount = m.group_by(list(KEY)).aggregate(renewal_mrr=m.mrr.sum())
    t = attach(sp, amount)
    return t.select(*KEY, renewal_mrr=t.renewal_mrr.cast(_F64))


def renewal_mrr(ds: Dataset, as_of: date) -> pd.Series[float]:
    """Return the MRR up for renewal as of ``as_of`` by ``account_id`` (:func:`renewal_mrr_expr`).

    NaN where no term end is known; accounts off the spine are absent.
    """
    dates = ibis.table({"as_of": "date"}, name=_AS_OF_RELATION)
    sql = str(ibis.to_sql(renewal_mrr_expr(ds, dates), dialect="duckdb"))
    try:
        frame = _run(ds, [as_of], sql).df()
    finally:
        ds.con.unregister(_AS_OF_RELATION)
    return pd.Series(
        frame["renewal_mrr"].astype("float64").to_numpy(),
        index=pd.Index(frame["account_id"].astype("string"), name="account_id"),
        name="renewal_mrr",
    )


def _subscriptions(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """Billing features from ``subscriptions`` (with ``accounts`` as the fallback).

    Uses the rows signed before ``a`` (``start_date < a``). The state is read on the day
    before ``a``: a row covers that day unless it stopped by then, which is known at
    ``a`` whatever the export writes in ``end_date`` later. ``end_date`` itself is never
    read as a value (in a cancellation-dated export it exists only for rows that
    stopped); the renewal date comes from ``term_end``, the term end known at signing:
    the nearest one on or after ``a`` among the covering rows, NULL without one; the
    term length is ``term_end - start_date`` (known at signing too), the longest among
    the covering rows. A ``"change"`` over ``w`` days compares the sum over the rows
    covering ``a - 1`` with the sum over those covering ``a - w - 1``, the day before its
    window.
    """
    subs = ds.table("subscriptions")
    j = lookback(sp, subs, "start_date", None)
    day_before = shift(j.as_of, -1)
    cov = covers(j, day_before)
    with_plan = cov & is_set(j.plan)
    changes = _of(feats, "subscriptions")
    agg = j.group_by(list(KEY)).aggregate(
        mrr=j.mrr.sum(where=cov),
        _seats=j.seats.sum(where=cov),
        _renewal=j.term_end.min(where=_up_for_renewal(j)),
        _top_mrr=j.mrr.max(where=with_plan),
        term_length_days=_days_between(j.term_end, j.start_date).max(where=cov),
        discount=j.discount.max(where=cov),
        **{
            f"_now_{f.name}": j[str(f.agg.measure)].sum(where=cov)
            for f in changes
            if f.agg is not None
        },
        **{
            f"_then_{f.name}": j[str(f.agg.measure)].sum(
                where=covers(j, shift(j.as_of, -(f.window_days or 0) - 1))
            )
            for f in changes
            if f.agg is not None
        },
    )
    r = agg.select(_t_account=agg.account_id, _t_as_of=agg.as_of, _t_mrr=agg._top_mrr)
    top = j.join(r, [j.account_id == r._t_account, j.as_of == r._t_as_of, j.mrr == r._t_mrr])
    top = top.filter(covers(top, shift(top.as_of, -1)) & is_set(top.plan))
    plan = top.group_by(list(KEY)).aggregate(_sub_plan=top.plan.min())
    pieces = [agg, plan]

    moved = _of(feats, "mrr_moves")
    if moved:

        def direction(jm: ir.Table) -> dict[str, ir.BooleanValue]:
            return {
                "expansion": (jm.mrr_before > 0) & (jm.mrr_after > jm.mrr_before + MRR_EPSILON),
                "contraction": (jm.mrr_after > 0) & (jm.mrr_after < jm.mrr_before - MRR_EPSILON),
                "plan_change": is_set(jm.plan_lo_before)
                & is_set(jm.plan_lo_after)
                & (
                    (jm.plan_lo_before != jm.plan_lo_after)
                    | (jm.plan_hi_before != jm.plan_hi_after)
                ),
            }

        pieces.append(_aggregate(sp, mrr_moves(subs), "day", moved, preds=direction))

    acc = ds.table("accounts")
    acc = acc.select(
        _a_account=acc.account_id, _acc_plan=acc.plan, _acc_seats=acc.seats.cast("int64")
    )
    t = attach(sp, *pieces)
    t = t.left_join(acc, t.account_id == acc._a_account)
    mrr = t.mrr.fill_null(0.0)
    return t.select(
        *KEY,
        mrr=mrr,
        plan=t._sub_plan.fill_null(t._acc_plan),
        seats=t._seats.fill_null(t._acc_seats),
        days_to_renewal=_days_between(t._renewal, t.as_of),
        term_length_days=t.term_length_days,
        discount=t.discount,
        **{f.name: _change(t[f"_now_{f.name}"], t[f"_then_{f.name}"]) for f in changes},
        **_finish(t, moved),
    )


# ---------------------------------------------------------------------------------------
# orders, accounts
# ---------------------------------------------------------------------------------------


def _orders(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """One-off order amounts, on ``ordered_at``."""
    windowed = _of(feats, "orders")
    if not windowed:
        return sp
    agg = _aggregate(
        sp, ds.table("orders"), "ordered_at", windowed, columns=["ordered_at", "amount"]
    )
    t = attach(sp, agg)
    return t.select(*KEY, **_finish(t, windowed))


def _accounts(ds: TableSet, sp: ir.Table, feats: Sequence[Feature]) -> ir.Table:
    """Return static account attributes and tenure (whole days from creation day to ``a``)."""
    acc = ds.table("accounts")
    acc = acc.select(
        _a_account=acc.account_id,
        _created=acc.created_at,
        _segment=acc.segment,
        _industry=acc.industry,
        _region=acc.region,
    )
    t = sp.left_join(acc, sp.account_id == acc._a_account)
    return t.select(
        *KEY,
        tenure_days=_days_between(t.as_of, t._created.date()),
        segment=t._segment,
        industry=t._industry,
        region=t._region,
    )


_Builder = Callable[[TableSet, ir.Table, Sequence[Feature]], ir.Table]

_BUILDERS: dict[str, _Builder] = {
    "events": _events,
    "tickets": _tickets,
    "nps": _nps,
    "subscriptions": _subscriptions,
    "orders": _orders,
    "accounts": _accounts,
}
"""One builder per table; each returns the features whose ``Feature.table`` it is."""


def _ibis_type(feature: Feature) -> str:
    return "string" if feature.dtype == "category" else _F64


def _with_inputs(features: Sequence[Feature]) -> list[Feature]:
    """``features`` plus the registered inputs of their ratios that they lack."""
    have = {f.name for f in features}
    extra = [
        get_feature(n)
        for f in features
        if f.agg is not None and f.agg.how == "ratio"
        for n in f.agg.of or ()
        if n not in have
    ]
    return [*features, *dict.fromkeys(extra)]


def _panel_expr(
    ds: TableSet,
    dates: ir.Table,
    labels: LabelConfig | None,
    observed_end: date | None,
    known_spine: ir.Table | None = None,
    features: Sequence[Feature] = FEATURES,
) -> ir.Table:
    check_declarations(_with_inputs(features))
    sp = spine(ds, dates) if known_spine is None else known_spine
    needed = _with_inputs(features)
    t = attach(sp, *(build(ds, sp, needed) for table, build in _BUILDERS.items() if ds.has(table)))
    cols: dict[str, ir.Value] = {}
    for f in features:
        if not ds.has(f.table):
            cols[f.name] = ibis.null().cast(_ibis_type(f))
        elif f.agg is not None and f.agg.how == "ratio" and f.agg.of is not None:
            cols[f.name] = _ratio(t[f.agg.of[0]], t[f.agg.of[1]])
        elif f.name in t.columns:
            cols[f.name] = t[f.name].cast(_ibis_type(f))
        else:
            raise ChurnRiskError(f"feature {f.name!r} is registered but no builder computes it")
    out = t.select(*KEY, **cols)
    if labels is not None:
        out = attach(out, label_table(ds, sp, labels, observed_end=observed_end))
    return out.order_by(["as_of", "account_id"])


def build_features_expr(
    ds: TableSet,
    as_of: Sequence[date] | ir.Table,
    *,
    labels: LabelConfig | None = None,
    observed_end: date | None = None,
    known_spine: ir.Table | None = None,
    features: Sequence[Feature] = FEATURES,
) -> ir.Table:
    """Return the Ibis expression of the feature panel (see :func:`build_features`).

    This is what a distributed engine runs. Numeric features are float64 and categorical
    ones strings; the columns are ``account_id``, ``as_of`` (DATE), the registered
    features in registry order, then the label columns when ``labels`` is given. Rows
    are ordered by ``as_of, account_id``.

    ``as_of`` may also be a table of the backend of ``ds`` with one DATE column
    ``as_of`` (distinct dates), which keeps the expression free of in-memory tables.
    ``known_spine``, when given, must be :func:`~churnrisk.features.pit.spine` of
    these dates already computed (for example cached by Spark, which would otherwise
    recompute it for each of the many places that read it); it is used as is.
    """
    dates = as_of if isinstance(as_of, ir.Table) else as_of_table(as_of)
    return _panel_expr(ds, dates, labels, observed_end, known_spine, tuple(features))


_AS_OF_RELATION = "_churnrisk_as_of"
"""Name under which the as-of dates are registered while a compiled panel query runs."""

_SQL_CACHE: dict[Hashable, str] = {}
_SQL_CACHE_SIZE = 32


def _panel_sql(
    ds: Dataset,
    labels: LabelConfig | None,
    observed_end: date | None,
    features: tuple[Feature, ...] = FEATURES,
) -> str:
    """Return the DuckDB SQL of the panel, reading the as-of dates from a named relation.

    Building and compiling the Ibis expression takes about two seconds whatever the data
    size, so the SQL is cached per process, keyed by everything it depends on: the
    table schemas, the absent tables, the label configuration and the observation end.
    The as-of dates are not part of it: they are read from :data:`_AS_OF_RELATION`.
    """
    schemas = tuple((name, tuple(ds.table(name).schema().items())) for name in TABLES)
    key = (schemas, ds.absent, labels, observed_end, features)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        dates = ibis.table({"as_of": "date"}, name=_AS_OF_RELATION)
        expr = _panel_expr(ds, dates, labels, observed_end, features=features)
        sql = str(ibis.to_sql(expr, dialect="duckdb"))
        if len(_SQL_CACHE) >= _SQL_CACHE_SIZE:
            _SQL_CACHE.pop(next(iter(_SQL_CACHE)))
        _SQL_CACHE[key] = sql
    return sql


def _run(ds: Dataset, as_of: Sequence[date], sql: str) -> duckdb.DuckDBPyRelation:
    """Register the as-of dates and return the DuckDB relation of ``sql``."""
    days = sorted(set(as_of))
    if not days:
        raise ConfigError("no as-of dates given; pass at least one date")
    ds.con.register(_AS_OF_RELATION, pa.table({"as_of": pa.array(days, pa.date32())}))
    return ds.con.sql(sql)


def _to_frame(
    raw: pd.DataFrame, with_labels: bool, features: Sequence[Feature] = FEATURES
) -> pd.DataFrame:
    out = raw.copy()
    out["account_id"] = out["account_id"].astype("string")
    out["as_of"] = pd.to_datetime(out["as_of"]).astype("datetime64[ns]")
    for f in features:
        if f.dtype == "category":
            out[f.name] = out[f.name].astype("category")
        else:
            out[f.name] = out[f.name].astype("float64")
    if with_labels:
        out["churned"] = out["churned"].astype("Int8")
        out["revenue_next_12m"] = out["revenue_next_12m"].astype("float64")
    return out.reset_index(drop=True)


def build_features(
    ds: Dataset,
    as_of: Sequence[date],
    *,
    labels: LabelConfig | None = None,
    observed_end: date | None = None,
    features: Sequence[Feature] = FEATURES,
) -> pd.DataFrame:
    """Build the point-in-time feature panel for every spine account at every as-of date.

    Parameters
    ----------
    ds
        The validated data set.
    as_of
        As-of dates (midnight UTC); each sees only data strictly before it. Duplicates
        are ignored.
    labels
        When given, add the labels of :func:`churnrisk.features.labels.label_table`.
    observed_end
        Exclusive end of observation for the labels (default
        :func:`churnrisk.features.labels.observation_end`); ignored without ``labels``.
    features
        The declarations to compute, in output order (default the registry; a model
        adds the vocabulary features it was trained with, see
        :mod:`churnrisk.features.vocabulary`).

    Returns
    -------
    pandas.DataFrame
        One row per spine pair (accounts created before ``a`` with MRR > 0 on ``a - 1``),
        sorted by ``as_of, account_id``. Columns: ``account_id`` (string), ``as_of``
        (``datetime64[ns]``, midnight), then every registered feature in registry order —
        float64 for numeric ones, counts included, so NULL is NaN; pandas ``category``
        for categorical ones — then ``churned`` (``Int8``, NULL when the window is not
        closed) and ``revenue_next_12m`` (float64) when ``labels`` is given.
    """
    if labels is not None and observed_end is None:
        observed_end = observation_end(ds)
    sql = _panel_sql(ds, labels, observed_end, tuple(features))
    try:
        raw = _run(ds, as_of, sql).df()
    finally:
        ds.con.unregister(_AS_OF_RELATION)
    return _to_frame(raw, labels is not None, features)


def write_features(
    ds: Dataset,
    as_of: Sequence[date],
    out: Path,
    *,
    labels: LabelConfig | None = None,
    observed_end: date | None = None,
    features: Sequence[Feature] = FEATURES,
) -> int:
    """Write the feature panel of :func:`build_features_expr` to a Parquet file.

    DuckDB streams the result to ``out`` without a pandas round trip, so large panels fit
    in memory. Numeric features are DOUBLE, categorical ones VARCHAR, ``as_of`` DATE.

    Returns
    -------
    int
        The number of rows written to ``out``, one per (account, as-of) pair.
    """
    if labels is not None and observed_end is None:
        observed_end = observation_end(ds)
    sql = _panel_sql(ds, labels, observed_end, tuple(features))
    out.parent.mkdir(parents=True, exist_ok=True)
    target = "'" + str(out).replace("'", "''") + "'"
    try:
        _run(ds, as_of, f"COPY ({sql}) TO {target} (FORMAT parquet)")
    finally:
        ds.con.unregister(_AS_OF_RELATION)
    return int(pq.ParquetFile(out).metadata.num_rows)


__all__ = [
    "LABEL_COLUMNS",
    "MRR_EPSILON",
    "build_features",
    "build_features_expr",
    "mrr_moves",
    "write_features",
]
