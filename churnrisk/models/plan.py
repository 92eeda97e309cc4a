"""The backtest and training plan: as-of grid, folds and fit slices, derived from the data.

Three choices, each made from the data's own span and counts, never from a world we
generated:

1. **The as-of grid** (:func:`plan_grid`), from the span of observation and the label
   gap (``horizon_days + grace_days``). Candidates: every warm-up from
   ``backtest.warmup_days`` down to ``backtest.min_warmup_days`` in steps of 30 days,
   each with a monthly, semi-monthly (1st and 16th) and weekly (Mondays) grid (only the
   configured one unless ``backtest.grid = "auto"``). The chosen one allows the most
   folds by dates alone (:func:`date_folds`); ties go to the longest warm-up (full
   feature windows), then to the coarsest grid (fewer, less correlated rows); when no
   candidate allows a fold, the shortest warm-up's coarsest grid. A warm-up
   shorter than the longest feature window (90 days) is honest, as every feature still
   sees only data before its as-of date, but windows that reach back before the start of
   observation are truncated on the first as-of dates: the plan says so.
2. **The folds** (:func:`plan_churn_folds`). Test blocks are calendar months of
   label-closed as-of dates (``backtest.test_months`` each), walking back from the
   latest: one date a block on a monthly grid, two on a semi-monthly one, four or five
   on a weekly one. A fold whose first test date is ``T`` may train only on rows with
   ``as_of + horizon_days + grace_days <= T`` (the gap stays, whatever it costs). Folds
   are kept from the latest backward while each has ``backtest.min_train_dates`` such
   dates, a test block holding churners and stayers, and a training pool that
   :func:`fit_slices` can cut, up to ``backtest.folds``.
3. **The fit slices** (:func:`fit_slices`) of a fold's pool and of the final model's
   rows: by time (:func:`~churnrisk.models.slices.time_slices`, the latest
   ``churn.holdout_dates`` dates held out, or more, up to half the dates, the first
   that gives enough churners) when each slice then holds at least
   ``backtest.min_slice_churners`` distinct churned accounts; otherwise by account
   (:func:`account_slices`: a seeded hash sends a fifth of the churned accounts, or
   ``min_slice_churners`` if more, and the same share of the others to stop, as many to
   calibrate, the rest to train, on the same dates) when the pool holds at least three
   times ``min_slice_churners`` churned accounts; otherwise the pool cannot train an
   honest model.

When not even one fold is possible, :class:`NoBacktestError` (a
:class:`~churnrisk.errors.DataError`, exit 2) says why and what data would make it
possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnrisk.config import BacktestConfig, LabelConfig, RunConfig
from churnrisk.errors import DataError
from churnrisk.features import as_of_dates
from churnrisk.models.slices import FitSlices, time_slices

Freq = Literal["monthly", "semimonthly", "weekly"]
GRIDS: tuple[Freq, ...] = ("monthly", "semimonthly", "weekly")
"""The as-of grids, coarsest first."""
WARMUP_STEP_DAYS = 30
"""How much each shrink of the warm-up takes off."""
ACCOUNT_SHARE = 0.2
"""Share of the accounts an account cut sends to each of stop and calibrate."""
DAYS_PER_MONTH = 30.44


class NoBacktestError(DataError):
    """The data cannot hold one honest backtest fold (too short, or too few churners)."""


def gap_days(labels: LabelConfig) -> int:
    """Return the label gap: a row's label is known ``horizon_days + grace_days`` later."""
    return labels.horizon_days + labels.grace_days


@dataclass(frozen=True)
class Grid:
    """The as-of dates of a training panel and why they were chosen.

    Attributes
    ----------
    freq
        ``"monthly"``, ``"semimonthly"`` or ``"weekly"``.
    warmup_days
        Days from the start of observation to the first possible as-of date.
    full_warmup_days
        The configured warm-up (``backtest.warmup_days``); more than ``warmup_days``
        when the plan shrank it.
    start, end
        First day and exclusive end of observation.
    dates
        The as-of dates, ascending (label-closed or not).
    folds
        Folds the dates alone allow (:func:`date_folds`); 0 when no backtest fits.
    """

    freq: Freq
    warmup_days: int
    full_warmup_days: int
    start: date
    end: date
    dates: list[date]
    folds: int

    def describe(self) -> str:
        """Return the grid in a few words, saying when the warm-up was shrunk."""
        text = f"{self.freq} grid from {self.dates[0]}"
        if self.warmup_days < self.full_warmup_days:
            full = self.start + timedelta(days=self.full_warmup_days)
            text += (
                f" (warm-up {self.warmup_days} days, not {self.full_warmup_days}:"
                f" windows longer than {self.warmup_days} days are truncated before {full})"
            )
        return text


def grid_name(dates: list[date]) -> str:
    """Name the grid of ascending as-of dates from their median spacing.

    ``"weekly"`` (7 days), ``"semimonthly"`` (13 to 16), ``"monthly"`` (28 to 31),
    ``"single date"`` for one date, else ``"every ~N days"``.
    """
    if len(dates) < 2:
        return "single date"
    step = float(np.median(np.diff(np.array(dates, dtype="datetime64[D]")).astype(int)))
    for name, low, high in (("weekly", 7, 7), ("semimonthly", 13, 16), ("monthly", 28, 31)):
        if low <= step <= high:
            return name
    return f"every ~{step:.0f} days"


def _months_back(day: date, months: int) -> date:
    return (pd.Timestamp(day) - pd.DateOffset(months=months)).date()


def fold_blocks(labelled: list[date], test_months: int, folds: int) -> list[list[date]]:
    """Return up to ``folds`` test blocks of label-closed dates, latest block first.

    Block ``k`` (from 1) holds the dates in ``(last - k m, last - (k - 1) m]`` where
    ``last`` is the latest label-closed date and ``m`` is ``test_months`` calendar months.
    The walk stops at the first empty block.
    """
    if not labelled:
        return []
    last = labelled[-1]
    blocks = []
    for k in range(1, folds + 1):
        low, high = _months_back(last, k * test_months), _months_back(last, (k - 1) * test_months)
        block = [d for d in labelled if low < d <= high]
        if not block:
            break
        blocks.append(block)
    return blocks


def _training_dates(labelled: list[date], gap: timedelta, first_test: date) -> list[date]:
    return [d for d in labelled if d + gap <= first_test]


def date_folds(dates: list[date], end: date, labels: LabelConfig, bt: BacktestConfig) -> int:
    """Return how many folds the as-of dates allow, counting dates only.

    The label-closed dates (``as_of + gap <= end``) are cut into test blocks
    (:func:`fold_blocks`); fold after fold from the latest, a block counts while at
    least ``bt.min_train_dates`` label-closed dates lie one gap before its first date.
    """
    gap = timedelta(days=gap_days(labels))
    labelled = [d for d in dates if d + gap <= end]
    n = 0
    for block in fold_blocks(labelled, bt.test_months, bt.folds):
        if len(_training_dates(labelled, gap, block[0])) < bt.min_train_dates:
            break
        n += 1
    return n


def _warmups(bt: BacktestConfig) -> list[int]:
    low = min(bt.min_warmup_days, bt.warmup_days)
    return list(range(bt.warmup_days, low - 1, -WARMUP_STEP_DAYS))


def plan_grid(start: date, end: date, labels: LabelConfig, bt: BacktestConfig) -> Grid:
    """Choose the as-of grid of a training panel (see the module docstring).

    Parameters
    ----------
    start, end
        First day and exclusive end of observation.
    labels, bt
        The label gap and the backtest settings.

    Raises
    ------
    DataError
        When observation is too short for a single as-of date even with the shortest
        warm-up.
    """
    freqs = GRIDS if bt.grid == "auto" else (bt.grid,)
    best: Grid | None = None
    for warmup in _warmups(bt):
        first = start + timedelta(days=warmup)
        for freq in freqs:
            dates = as_of_dates(first, end, freq) if first <= end else []
            if not dates:
                continue
            folds = date_folds(dates, end, labels, bt)
            if best is None or folds > best.folds:
                best = Grid(freq, warmup, bt.warmup_days, start, end, dates, folds)
    if best is not None and best.folds == 0:
        # no fold anyway: the shortest warm-up's coarsest grid is the nearest to one
        # (the refusal then counts the months it lacks from there)
        shortest = _warmups(bt)[-1]
        first = start + timedelta(days=shortest)
        for freq in freqs:
            dates = as_of_dates(first, end, freq) if first <= end else []
            if dates:
                best = Grid(freq, shortest, bt.warmup_days, start, end, dates, 0)
                break
    if best is None:
        raise DataError(
            f"observation runs {start} to {end}, too short for a training panel; it needs"
            f" at least {min(_warmups(bt))} days plus a month"
        )
    return best


def months_short(dates: list[date], end: date, labels: LabelConfig, bt: BacktestConfig) -> int:
    """Return the months of history missing for one fold on these as-of dates.

    One fold needs ``min_train_dates`` as-of dates, then the label gap to its first test
    date (the next date of the grid), then the gap again for that test date's label to
    close by the end of observation.
    """
    gap = timedelta(days=gap_days(labels))
    spacing = np.diff(np.array(dates, dtype="datetime64[D]")).astype(int)
    step = 7 if len(dates) < 2 else int(np.median(spacing))
    n = bt.min_train_dates
    last_train = dates[n - 1] if len(dates) >= n else dates[0] + timedelta(days=(n - 1) * step)
    name = grid_name(dates)
    after = last_train + gap
    grid = as_of_dates(after, after + timedelta(days=40), name) if name in GRIDS else []
    first_test = grid[0] if grid else after + timedelta(days=step)
    return max(1, math.ceil((first_test + gap - end).days / DAYS_PER_MONTH))


def churned_accounts(rows: pd.DataFrame) -> int:
    """Return the distinct accounts with a churn label of 1 among ``rows``."""
    return int(rows.loc[rows["churned"] == 1, "account_id"].nunique())


def account_slices(rows: pd.DataFrame, *, random_state: int, least: int = 0) -> FitSlices:
    """Cut rows by account, stratified by churn: each account's rows go to one slice.

    The accounts are split in two strata, those with a churn label of 1 among ``rows``
    (``C`` of them) and the others; within each, a seeded hash of ``account_id`` orders
    them. Stop and calibrate each take ``k = max(floor(ACCOUNT_SHARE * C), least)``
    churned accounts, the first ``k`` and the next ``k``, and the same share ``k / C``
    of the other accounts; train takes the rest. The three slices share the as-of
    dates, never an account.

    Parameters
    ----------
    rows
        Label-closed panel rows.
    random_state
        Seeds the hash.
    least
        Fewest churned accounts for stop and calibrate (``min_slice_churners``).
    """
    key = f"churnrisk{random_state:07d}"[-16:]
    accounts = pd.Series(rows["account_id"].astype(str).unique())
    churned = set(rows.loc[rows["churned"] == 1, "account_id"].astype(str))
    n_churned = len(churned)
    k = max(math.floor(ACCOUNT_SHARE * n_churned), least)
    share = k / n_churned if n_churned else ACCOUNT_SHARE
    order = pd.DataFrame(
        {
            "account_id": accounts,
            "churned": accounts.isin(churned),
            "hash": pd.util.hash_pandas_object(accounts, index=False, hash_key=key).to_numpy(),
        }
    ).sort_values(["churned", "hash"], kind="stable")
    position = order.groupby("churned").cumcount().to_numpy()
    size = order.groupby("churned")["hash"].transform("size").to_numpy()
    n_held = np.where(order["churned"].to_numpy(), k, np.floor(share * size + 1e-9))
    slice_of = pd.Series(
        np.where(position < n_held, "stop", np.where(position < 2 * n_held, "calibrate", "train")),
        index=order["account_id"].to_numpy(),
    )
    where = rows["account_id"].astype(str).map(slice_of).to_numpy()
    return FitSlices(
        train=rows.loc[where == "train"],
        stop=rows.loc[where == "stop"],
        calibrate=rows.loc[where == "calibrate"],
        how="accounts",
    )


def _enough(s: FitSlices, least: int) -> bool:
    return min(churned_accounts(x) for x in (s.train, s.stop, s.calibrate)) >= least


def fit_slices(rows: pd.DataFrame, config: RunConfig) -> FitSlices:
    """Cut label-closed rows into the train, stop and calibrate slices of a churn model.

    By time (the latest ``churn.holdout_dates`` as-of dates held out, or more, up to half
    the dates, when those hold too few churners) when the rows have more dates than that
    and each slice holds at least ``backtest.min_slice_churners`` distinct churned
    accounts; else by account (:func:`account_slices`) when the rows
    hold at least three times that many churned accounts.

    Raises
    ------
    NoBacktestError
        When neither cut gives every slice enough churned accounts.
    """
    least = config.backtest.min_slice_churners
    holdout = config.churn.holdout_dates
    n_dates = rows["as_of"].nunique()
    wider = range(holdout + 1, n_dates // 2 + 1)
    for held in [holdout, *wider] if n_dates > holdout else []:
        by_time = time_slices(rows, held)
        if _enough(by_time, least):
            return by_time
    found = churned_accounts(rows)
    need = 3 * least
    if found >= need:
        by_account = account_slices(rows, random_state=config.seed, least=least)
        if _enough(by_account, least):
            return by_account
    last = pd.Timestamp(rows["as_of"].max()).date()
    raise NoBacktestError(
        f"the {len(rows):,} label-closed rows up to {last} hold {found} churned accounts;"
        f" training, early stopping and calibration need {least} each"
        f" (backtest.min_slice_churners): it takes at least {need} churned accounts on"
        f" as-of dates up to {last}"
    )


@dataclass(frozen=True)
class ChurnFold:
    """The dates and counts of one churn fold.

    Attributes
    ----------
    test_as_of
        The fold's test block.
    train_as_of
        Label-closed dates one gap or more before the block (training, stopping and
        calibration rows).
    rows, churn_labels, churned
        Training rows, churn labels of 1 among them, distinct churned accounts.
    slices
        How :func:`fit_slices` cuts the training rows: ``"time"`` or ``"accounts"``.
    """

    test_as_of: list[date]
    train_as_of: list[date]
    rows: int
    churn_labels: int
    churned: int
    slices: Literal["time", "accounts"]


@dataclass(frozen=True)
class Plan:
    """The whole plan: grid, folds (oldest first) and the final model's slices.

    Attributes
    ----------
    grid
        The grid's name (:func:`grid_name`, or :attr:`Grid.freq` when known).
    grid_text
        The grid in a few words (warm-up included when known).
    warmup_days
        The warm-up, when the panel was built from a :class:`Grid`.
    gap_days
        The label gap between a fold's training rows and its first test date.
    max_folds
        ``backtest.folds``.
    folds
        The folds kept.
    final
        The final model's training rows (every label-closed row) as a fold without test.
    """

    grid: str
    grid_text: str
    warmup_days: int | None
    gap_days: int
    max_folds: int
    folds: list[ChurnFold]
    final: ChurnFold

    def line(self) -> str:
        """Return the plan as one line: grid, folds, dates, rows, churns and slices."""
        parts = [
            f"{len(self.folds)} of at most {self.max_folds} folds on a {self.grid_text},"
            f" {self.gap_days}-day label gap"
        ]
        for i, f in enumerate(self.folds, start=1):
            parts.append(
                f"fold {i} trains on {len(f.train_as_of)} dates to {f.train_as_of[-1]}"
                f" ({f.rows:,} rows, {f.churn_labels:,} churn labels, {f.churned:,} churned"
                f" accounts, slices by {_by(f.slices)}), tests {len(f.test_as_of)} from"
                f" {f.test_as_of[0]}"
            )
        f = self.final
        parts.append(
            f"final model on {len(f.train_as_of)} dates to {f.train_as_of[-1]} ({f.rows:,}"
            f" rows, {f.churn_labels:,} churn labels, slices by {_by(f.slices)})"
        )
        return "plan: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of the plan (dates as ISO strings)."""

        def fold(f: ChurnFold) -> dict[str, Any]:
            return {
                "train_as_of": [f.train_as_of[0].isoformat(), f.train_as_of[-1].isoformat()],
                "train_dates": len(f.train_as_of),
                "test_as_of": [d.isoformat() for d in f.test_as_of],
                "rows": f.rows,
                "churn_labels": f.churn_labels,
                "churned_accounts": f.churned,
                "slices": f.slices,
            }

        return {
            "grid": self.grid,
            "warmup_days": self.warmup_days,
            "gap_days": self.gap_days,
            "max_folds": self.max_folds,
            "folds": [fold(f) for f in self.folds],
            "final": fold(self.final),
            "line": self.line(),
        }


def _by(how: str) -> str:
    return "account" if how == "accounts" else how


def _dates(values: pd.Series) -> list[date]:
    return sorted({pd.Timestamp(v).date() for v in values.unique()})


def _rows(panel: pd.DataFrame, dates: list[date]) -> pd.DataFrame:
    return panel.loc[panel["as_of"].isin(pd.to_datetime(dates))]


def _fold(
    closed: pd.DataFrame, train: list[date], test: list[date], config: RunConfig
) -> ChurnFold:
    pool = _rows(closed, train)
    return ChurnFold(
        test_as_of=test,
        train_as_of=train,
        rows=len(pool),
        churn_labels=int((pool["churned"] == 1).sum()),
        churned=churned_accounts(pool),
        slices=fit_slices(pool, config).how,
    )


def plan_churn_folds(panel: pd.DataFrame, config: RunConfig, grid: Grid | None = None) -> Plan:
    """Plan the churn folds of a labelled panel (see the module docstring).

    Parameters
    ----------
    panel
        A labelled feature panel (``churned`` NULL where the label has not closed).
    config
        Labels (the gap), backtest settings, churn ``holdout_dates`` and seed.
    grid
        The grid the panel was built on, when known (it names the warm-up and the end
        of observation in the plan and in a refusal).

    Raises
    ------
    NoBacktestError
        When not one fold fits: too few as-of dates one gap before the latest test
        block (the message says how many more months of history it takes), a test
        block without churners or without stayers, or too few churned accounts to cut
        the fit slices (the message says how many it takes, by which date).
    """
    bt, lab = config.backtest, config.labels
    gap = timedelta(days=gap_days(lab))
    closed = panel.loc[panel["churned"].notna()]
    labelled = _dates(closed["as_of"])
    every = _dates(panel["as_of"])
    end = grid.end if grid is not None else (labelled[-1] + gap if labelled else every[-1])
    folds: list[ChurnFold] = []
    why = ""
    for block in fold_blocks(labelled, bt.test_months, bt.folds):
        train = _training_dates(labelled, gap, block[0])
        if len(train) < bt.min_train_dates:
            why = (
                f"the test block from {block[0]} has {len(train)} label-closed as-of dates"
                f" {gap.days} days (the label horizon and grace) before it, a fold needs"
                f" {bt.min_train_dates} (backtest.min_train_dates): it takes about"
                f" {months_short(every, end, lab, bt)} more months of history"
            )
            break
        test = _rows(closed, block)["churned"]
        if test.nunique() < 2:
            kind = "churner" if (test == 0).all() else "stayer"
            why = (
                f"the test block {block[0]} to {block[-1]} holds no {kind}, so no ranking"
                f" metric is defined there: it takes label-closed as-of dates holding"
                " both churners and stayers"
            )
            break
        try:
            folds.append(_fold(closed, train, block, config))
        except NoBacktestError as err:
            why = f"fold testing from {block[0]}: {err}"
            break
    if not folds:
        if not why:
            why = (
                f"the panel has {len(labelled)} label-closed as-of dates: it takes about"
                f" {months_short(every, end, lab, bt)} more months of history"
            )
        raise NoBacktestError(f"no honest backtest is possible: {why}")
    folds.reverse()
    final = _fold(closed, labelled, [], config)
    name = grid.freq if grid is not None else grid_name(every)
    return Plan(
        grid=name,
        grid_text=grid.describe() if grid is not None else f"{name} grid from {every[0]}",
        warmup_days=grid.warmup_days if grid is not None else None,
        gap_days=gap.days,
        max_folds=bt.folds,
        folds=folds,
        final=final,
    )
