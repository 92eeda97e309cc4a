"""Rolling-origin backtest of the churn and CLV models beside their baselines.

Churn folds. :mod:`churnrisk.models.plan` derives them from the panel: test blocks of
``test_months`` calendar months of label-closed as-of dates (those whose churn label
window, plus the grace period, has closed), the latest last, as many folds as the data
supports up to ``folds``. A fold whose first churn test date is ``T`` trains only on rows
with ``as_of + horizon_days + grace_days <= T``: the label was known at ``T``, a gap of
one label horizon. Its train, early-stopping and calibration slices are cut from those
rows only (:func:`churnrisk.models.plan.fit_slices`: by time or by account), so they obey
the same guard.

CLV folds. The 12-month revenue label closes much later than the churn label, so the churn
test dates carry no revenue label yet. CLV therefore has folds of its own, built the same
way on the revenue-labelled as-of dates: ``folds`` folds of ``test_months`` dates, the
latest revenue-labelled dates as test dates (the latest of them pair with the churn
folds), and training rows with ``as_of + revenue window <= T`` (``revenue_window_days``:
one revenue horizon of gap). The latest
``valid_dates`` of them stop the booster early and obey the same guard. Each fold needs
``max(min_train_dates, valid_dates + 1)`` such training dates. When the panel covers too
little time for that (a 24-month world does), the CLV metrics are null and a note says
how many months of history the CLV backtest needs; the churn backtest still runs.

Candidates. Every churn candidate (:mod:`churnrisk.models.candidates`: logistic
regression, LightGBM sized and searched, their blend) is fitted on each fold's fit slices
and scored on its test rows. One is chosen on the pooled test rows by
:data:`~churnrisk.models.candidates.SELECTION_RULE`: among the candidates whose pooled
ROC-AUC and PR-AUC are both at least the logistic baseline's, the best on the gate metric
(ties to the simpler). The chosen candidate is reported as ``model``; every candidate's
metrics (and its number of distinct probabilities) under ``candidates``.

The logistic baseline is the logistic regression fitted as a candidate is: on the fold's
fit rows, its scores calibrated out of sample. Pooled over folds, uncalibrated scores
would compare each fold's scale with the others' (the regression's class weighting
inflates them by a different amount per fold), and the baseline's pooled metrics would
then measure that scale rather than its ranking. So the logistic candidate and the
baseline are one model, and the chosen candidate is never behind the baseline on the
backtest: the logistic candidate is always eligible, with exactly its metrics.

Baselines are fitted on the same rows as the model (the logistic regression on all of
them, as it needs no early stopping) and scored on the same test rows; the run rate "MRR
x revenue_months" (:func:`~churnrisk.models.baselines.mrr_run_rate`, the CLV target's own
window) on the CLV test rows. It keeps the name ``mrr_x12`` in the results, the JSON and
MLflow (``clv.baselines.mrr_x12.mae``) so that their shape and earlier runs stay
comparable; with the default 12-month window it is exactly MRR x 12.

Metrics. ROC-AUC, PR-AUC, Brier, ECE and top-decile lift over the test rows; precision,
recall and MRR recall in the top K (K = ``capacity_k``, the accounts customer success can
contact per scoring run) computed per test as-of date and averaged over the dates. Brier
and ECE are not defined for the usage-drop rule, whose score is not a probability: they
are NaN (null in JSON) with a note, as is every metric its input cannot define. CLV: MAE,
RMSE and Spearman over the CLV test rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.errors import DataError, MetricError
from churnrisk.features.labels import revenue_window_days
from churnrisk.models import evaluation as ev
from churnrisk.models.baselines import mrr_run_rate, usage_drop_score
from churnrisk.models.candidates import (
    LogisticCandidate,
    choose_candidate,
    distinct_probabilities,
    fit_candidates,
)
from churnrisk.models.churn import split_later
from churnrisk.models.clv import ClvModel
from churnrisk.models.plan import Grid, Plan, fit_slices, plan_churn_folds

CHURN_METRICS: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "lift_top_decile",
    "recall_at_k",
    "precision_at_k",
    "mrr_recall_at_k",
)
CLV_METRICS: tuple[str, ...] = ("mae", "rmse", "spearman")
CHURN_BASELINES: tuple[str, ...] = ("logistic", "usage_drop")
CLV_BASELINES: tuple[str, ...] = ("mrr_x12",)
"""The CLV baselines by result name: ``mrr_x12`` is MRR x ``revenue_months``."""


@dataclass(frozen=True)
class FoldPlan:
    """Dates of one fold.

    Attributes
    ----------
    churn_test_as_of
        The fold's churn test as-of dates (label-closed).
    churn_train_as_of
        Label-closed as-of dates available to the churn model (training, early stopping
        and calibration), each ``+ horizon + grace <= min(churn_test_as_of)``.
    clv_test_as_of
        The fold's CLV test as-of dates (revenue-labelled); empty when the panel is too
        short for a CLV backtest.
    clv_train_as_of
        Revenue-labelled as-of dates available to the CLV model (training and early
        stopping), each ``+ revenue window <= min(clv_test_as_of)``; empty when the panel
        is too short.
    """

    churn_test_as_of: list[date]
    churn_train_as_of: list[date]
    clv_test_as_of: list[date]
    clv_train_as_of: list[date]


@dataclass
class FoldResult:
    """Metrics of one fold (see :meth:`BacktestResult.to_dict` for the layout).

    ``n_train``/``n_test`` count the churn model's rows, ``clv_n_train``/``clv_n_test``
    the CLV model's (0 when there is no CLV fold).
    """

    plan: FoldPlan
    n_train: int
    n_test: int
    clv_n_train: int
    clv_n_test: int
    churn: dict[str, Any]
    clv: dict[str, Any]


@dataclass
class BacktestResult:
    """Backtest metrics overall (pooled test rows) and per fold, plus test predictions.

    Attributes
    ----------
    churn, clv
        Overall metrics: ``{"model": {...}, "baselines": {name: {...}}}``; ``churn`` also
        holds ``candidates`` (``{name: {metric: ..., "distinct_probabilities": n}}``),
        ``chosen`` (the candidate reported as ``model``), ``fit_seconds`` (fitting every
        candidate, all folds) and ``search_seconds`` (the LightGBM search's share).
    folds
        Per-fold results, oldest first.
    predictions
        Pooled churn test rows: ``account_id``, ``as_of``, ``fold``, ``churned``,
        ``revenue_next_12m``, ``mrr``, ``model`` (the chosen candidate's calibrated
        probability), ``model_raw`` (its uncalibrated probability, the logistic of its raw
        score), ``logistic``, ``usage_drop``, then ``candidate_<name>`` and
        ``candidate_<name>_raw`` (probability and raw log-odds) for every candidate.
    clv_predictions
        Pooled CLV test rows (empty without CLV folds): ``account_id``, ``as_of``,
        ``fold``, ``revenue_next_12m``, ``mrr``, ``clv_model`` (predicted 12-month
        revenue), ``mrr_x12`` (MRR x ``revenue_months``).
    notes
        Why any metric is NaN.
    """

    churn: dict[str, Any]
    clv: dict[str, Any]
    folds: list[FoldResult]
    predictions: pd.DataFrame
    clv_predictions: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of the backtest (NaN becomes ``None``).

        ``{"churn": {"model": {...}, "baselines": {"logistic": {...}, "usage_drop":
        {...}}, "candidates": {"logistic": {...}, "lightgbm": {...}, "blend": {...}},
        "chosen": "lightgbm", "fit_seconds": ..., "search_seconds": ...}, "clv":
        {"model": {...}, "baselines": {"mrr_x12": {...}}}, "folds": [...]}``. Churn and
        CLV folds test different as-of dates (the revenue label closes
        later), so each fold entry holds one block per task, each with its own dates::

            {"fold": 1,
             "churn": {"test_as_of": [...], "train_as_of": [first, last],
                       "n_train": ..., "n_test": ...,
                       "model": {...}, "baselines": {"logistic": ..., "usage_drop": ...}},
             "clv": {"test_as_of": [...], "train_as_of": [first, last],
                     "n_train": ..., "n_test": ...,
                     "model": {...}, "baselines": {"mrr_x12": ...}}}

        ``train_as_of`` spans the task's training rows (early-stopping and calibration
        dates included). Without CLV folds (too short a panel) the CLV block has empty
        ``test_as_of`` and ``train_as_of``, zero counts and null metrics.
        """
        folds = []
        for i, f in enumerate(self.folds, start=1):
            p = f.plan
            folds.append(
                {
                    "fold": i,
                    "churn": {
                        "test_as_of": _iso(p.churn_test_as_of),
                        "train_as_of": _span(p.churn_train_as_of),
                        "n_train": f.n_train,
                        "n_test": f.n_test,
                        **_clean(f.churn),
                    },
                    "clv": {
                        "test_as_of": _iso(p.clv_test_as_of),
                        "train_as_of": _span(p.clv_train_as_of),
                        "n_train": f.clv_n_train,
                        "n_test": f.clv_n_test,
                        **_clean(f.clv),
                    },
                }
            )
        out = {"churn": _clean(self.churn), "clv": _clean(self.clv), "folds": folds}
        if self.plan is not None:
            out["plan"] = self.plan.to_dict()
        return out


def _iso(dates: list[date]) -> list[str]:
    return [d.isoformat() for d in dates]


def _span(dates: list[date]) -> list[str]:
    return [dates[0].isoformat(), dates[-1].isoformat()] if dates else []


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _dates(values: pd.Series) -> list[date]:
    return sorted({pd.Timestamp(v).date() for v in values.unique()})


def clv_months_needed(config: RunConfig) -> int:
    """Return the months of monthly history a CLV backtest needs.

    From the first as-of date to the end of observation: ``need`` training dates
    (``max(min_train_dates, valid_dates + 1)``), one revenue window of gap after the last
    of them (``revenue_months`` months always span ``revenue_window_days``), the
    ``folds * test_months`` test dates, and one revenue window after the last test date
    for its label to close: ``need + n_test + 2 * revenue_months - 2``. A panel built
    with a warm-up (:func:`churnrisk.pipeline.panel_dates`) needs the warm-up on top.
    """
    bt = config.backtest
    need = max(bt.min_train_dates, config.clv.valid_dates + 1)
    return need + bt.folds * bt.test_months + 2 * config.labels.revenue_months - 2


def _plan_clv(
    revenue: list[date], config: RunConfig
) -> tuple[list[tuple[list[date], list[date]]], str | None]:
    """Return each fold's CLV (test, train) dates, or no folds and why."""
    bt = config.backtest
    r_gap = timedelta(days=revenue_window_days(config.labels))
    need = max(bt.min_train_dates, config.clv.valid_dates + 1)
    n_test = bt.folds * bt.test_months
    tests = revenue[len(revenue) - n_test :] if len(revenue) >= n_test else []
    plans = []
    for k in range(bt.folds):
        test = tests[k * bt.test_months : (k + 1) * bt.test_months]
        train = [d for d in revenue if test and d + r_gap <= test[0]]
        if len(train) < need:
            span = f" ({revenue[0]} to {revenue[-1]})" if revenue else ""
            short = (
                f"CLV fold {k + 1} (testing from {test[0]}) has {len(train)} as-of dates"
                f" whose revenue closed before it, needs {need}"
                if test
                else f"too few for its {n_test} test dates alone"
            )
            return [], (
                "CLV metrics are null: a CLV backtest needs"
                f" {clv_months_needed(config)} months of monthly history from the first"
                f" as-of date to the end of observation ({need} training dates, the"
                f" {r_gap.days}-day revenue window between them and the first test date,"
                f" {n_test} test dates ({bt.folds} folds x {bt.test_months}), then"
                f" {r_gap.days} days for the last test date's revenue to close); the panel"
                f" has {len(revenue)} revenue-labelled as-of dates{span}, {short}: build it"
                " over a longer period or lower backtest.folds"
            )
        plans.append((test, train))
    return plans, None


def plan_backtest(
    panel: pd.DataFrame,
    config: RunConfig,
    notes: list[str] | None = None,
    grid: Grid | None = None,
) -> tuple[Plan, list[FoldPlan]]:
    """Return the plan of a backtest of ``panel`` and each fold's dates.

    The churn folds come from :func:`churnrisk.models.plan.plan_churn_folds`; the CLV
    folds are the latest ones that :func:`_plan_clv` finds, one per churn fold.

    Parameters
    ----------
    panel
        A labelled feature panel.
    config
        Labels (for the gaps) and backtest settings.
    notes
        When given, receives a note when the panel is too short for CLV folds (their
        dates are then empty).
    grid
        The grid the panel was built on, when known.

    Raises
    ------
    NoBacktestError
        When not one honest churn fold fits the panel (too few revenue-labelled dates
        only leave the CLV folds empty).
    """
    plan = plan_churn_folds(panel, config, grid)
    revenue = _dates(panel.loc[panel["revenue_next_12m"].notna(), "as_of"])
    clv_plans, why = _plan_clv(revenue, config)
    if why is not None and notes is not None:
        notes.append(why)
    clv_plans = clv_plans[len(clv_plans) - len(plan.folds) :] if clv_plans else []
    folds = []
    for k, fold in enumerate(plan.folds):
        clv_test, clv_train = clv_plans[k] if clv_plans else ([], [])
        folds.append(FoldPlan(fold.test_as_of, fold.train_as_of, clv_test, clv_train))
    return plan, folds


def plan_folds(
    panel: pd.DataFrame, config: RunConfig, notes: list[str] | None = None
) -> list[FoldPlan]:
    """Return the folds of a backtest of ``panel`` (see :func:`plan_backtest`)."""
    return plan_backtest(panel, config, notes)[1]


def _safe(fn: Callable[[], float], notes: list[str], where: str, metric: str) -> float:
    try:
        return fn()
    except MetricError as err:
        notes.append(f"{where}: {metric} is null: {err}")
        return float("nan")


def _churn_metrics(
    test: pd.DataFrame,
    score: np.ndarray,
    *,
    k: int,
    probability: bool,
    notes: list[str],
    where: str,
) -> dict[str, float]:
    y = test["churned"].to_numpy(dtype="float64")
    mrr = test["mrr"].astype("float64").fillna(0.0).to_numpy()
    dates = test["as_of"].to_numpy()
    out: dict[str, float] = {
        "roc_auc": _safe(lambda: ev.roc_auc(y, score), notes, where, "roc_auc"),
        "pr_auc": _safe(lambda: ev.pr_auc(y, score), notes, where, "pr_auc"),
    }
    if probability:
        out["brier"] = _safe(lambda: ev.brier(y, score), notes, where, "brier")
        out["ece"] = _safe(lambda: ev.ece(y, score), notes, where, "ece")
    else:
        for name in ("brier", "ece"):
            notes.append(f"{where}: {name} is null: the score is not a probability")
            out[name] = float("nan")
    out["lift_top_decile"] = _safe(
        lambda: ev.lift_top_decile(y, score), notes, where, "lift_top_decile"
    )

    def per_date(fn: Callable[[np.ndarray], float]) -> float:
        return float(np.mean([fn(dates == d) for d in np.unique(dates)]))

    out["recall_at_k"] = _safe(
        lambda: per_date(lambda m: ev.recall_at_k(y[m], score[m], k=k)),
        notes,
        where,
        "recall_at_k",
    )
    out["precision_at_k"] = _safe(
        lambda: per_date(lambda m: ev.precision_at_k(y[m], score[m], k=k)),
        notes,
        where,
        "precision_at_k",
    )
    out["mrr_recall_at_k"] = _safe(
        lambda: per_date(lambda m: ev.mrr_recall_at_k(y[m], score[m], mrr[m], k=k)),
        notes,
        where,
        "mrr_recall_at_k",
    )
    return out


def _clv_metrics(y: np.ndarray, pred: np.ndarray, notes: list[str], where: str) -> dict[str, float]:
    if len(y) == 0:
        return dict.fromkeys(CLV_METRICS, float("nan"))
    return {
        "mae": _safe(lambda: ev.mae(y, pred), notes, where, "mae"),
        "rmse": _safe(lambda: ev.rmse(y, pred), notes, where, "rmse"),
        "spearman": _safe(lambda: ev.spearman(y, pred), notes, where, "spearman"),
    }


def _churn_summary(pred: pd.DataFrame, k: int, notes: list[str], where: str) -> dict[str, Any]:
    def metrics(column: str, probability: bool, at: str) -> dict[str, float]:
        return _churn_metrics(
            pred, pred[column].to_numpy(), k=k, probability=probability, notes=notes, where=at
        )

    return {
        "model": metrics("model", True, where),
        "baselines": {
            "logistic": metrics("logistic", True, f"{where} logistic"),
            "usage_drop": metrics("usage_drop", False, f"{where} usage_drop"),
        },
    }


def _clv_summary(pred: pd.DataFrame, notes: list[str], where: str) -> dict[str, Any]:
    y = pred["revenue_next_12m"].to_numpy(dtype="float64")
    return {
        "model": _clv_metrics(y, pred["clv_model"].to_numpy(), notes, f"{where} clv"),
        "baselines": {
            "mrr_x12": _clv_metrics(y, pred["mrr_x12"].to_numpy(), notes, f"{where} mrr_x12")
        },
    }


def _rows(panel: pd.DataFrame, dates: list[date], label: str) -> pd.DataFrame:
    rows = panel.loc[panel["as_of"].isin(pd.to_datetime(dates))]
    return rows.loc[rows[label].notna()]


CHURN_PREDICTION_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "fold",
    "churned",
    "revenue_next_12m",
    "mrr",
    "model",
    "model_raw",
    "logistic",
    "usage_drop",
)
CLV_PREDICTION_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "fold",
    "revenue_next_12m",
    "mrr",
    "clv_model",
    "mrr_x12",
)


def _is_candidate(column: str) -> bool:
    return column.startswith("candidate_") and not column.endswith("_raw")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})


def backtest(panel: pd.DataFrame, config: RunConfig, *, grid: Grid | None = None) -> BacktestResult:
    """Run the rolling-origin backtest of the churn and CLV models and the baselines.

    Parameters
    ----------
    panel
        A labelled feature panel (:func:`churnrisk.features.build_features` with labels).
    config
        Labels (for the gaps), model, backtest settings and seed.
    grid
        The grid the panel was built on (:func:`churnrisk.models.plan.plan_grid`), when
        known: the plan then names its warm-up.

    Returns
    -------
    BacktestResult
        Overall and per-fold metrics, the pooled test predictions and notes. When the
        panel is too short for CLV folds, the CLV metrics are NaN and a note says how
        many months of history they need.

    Raises
    ------
    NoBacktestError
        When not one honest churn fold fits the panel (a :class:`DataError`).
    DataError
        When the panel carries no labels.
    """
    if "churned" not in panel.columns or "revenue_next_12m" not in panel.columns:
        raise DataError("the backtest needs a labelled panel (build_features with labels)")
    notes: list[str] = []
    k = config.backtest.capacity_k
    folds: list[FoldResult] = []
    preds: list[pd.DataFrame] = []
    clv_preds: list[pd.DataFrame] = []
    fit_seconds: dict[int, float] = {}
    search_seconds: dict[int, float] = {}
    the_plan, plans = plan_backtest(panel, config, notes, grid)
    for i, plan in enumerate(plans, start=1):
        where = f"fold {i}"
        pool = _rows(panel, plan.churn_train_as_of, "churned")
        test = _rows(panel, plan.churn_test_as_of, "churned")
        s = fit_slices(pool, config)
        started = time.perf_counter()
        fitted = fit_candidates(
            s, config=config.churn, candidates=config.candidates, random_state=config.seed
        )
        fit_seconds[i] = time.perf_counter() - started
        search = getattr(fitted.get("lightgbm"), "search_", None)
        search_seconds[i] = search.seconds if search is not None else 0.0
        logistic = fitted.get("logistic") or LogisticCandidate(random_state=config.seed).fit(s)
        pred = test[["account_id", "as_of", "churned", "revenue_next_12m", "mrr"]].assign(
            fold=i,
            logistic=logistic.predict_proba(test),
            usage_drop=usage_drop_score(test),
            **{f"candidate_{n}": m.predict_proba(test) for n, m in fitted.items()},
            **{f"candidate_{n}_raw": m.predict_raw(test) for n, m in fitted.items()},
        )
        preds.append(pred)

        clv_pool = _rows(panel, plan.clv_train_as_of, "revenue_next_12m")
        clv_test = _rows(panel, plan.clv_test_as_of, "revenue_next_12m")
        if len(clv_test):
            c_train, c_valid = split_later(clv_pool, config.clv.valid_dates)
            clv = ClvModel(
                config.clv, random_state=config.seed, offset_months=config.labels.revenue_months
            ).fit(c_train, valid=c_valid)
            clv_pred = clv_test[["account_id", "as_of", "revenue_next_12m", "mrr"]].assign(
                fold=i,
                clv_model=clv.predict(clv_test),
                mrr_x12=mrr_run_rate(clv_test, months=config.labels.revenue_months),
            )[list(CLV_PREDICTION_COLUMNS)]
        else:
            clv_pred = _empty(CLV_PREDICTION_COLUMNS)
        clv_preds.append(clv_pred)
        folds.append(
            FoldResult(
                plan,
                n_train=len(pool),
                n_test=len(test),
                clv_n_train=len(clv_pool),
                clv_n_test=len(clv_test),
                churn={},
                clv=_clv_summary(clv_pred, notes, where),
            )
        )
    pooled = pd.concat(preds, ignore_index=True)
    names = [c.removeprefix("candidate_") for c in pooled.columns if _is_candidate(c)]
    candidates = {
        n: _churn_metrics(
            pooled,
            pooled[f"candidate_{n}"].to_numpy(),
            k=k,
            probability=True,
            notes=notes,
            where=f"overall candidate {n}",
        )
        for n in names
    }
    baseline = _churn_metrics(
        pooled, pooled["logistic"].to_numpy(), k=k, probability=True, notes=[], where=""
    )
    chosen, eligible = choose_candidate(candidates, baseline, metric=config.gate.metric)
    if not eligible:
        notes.append(
            f"overall: no candidate reached the logistic baseline's pooled ROC-AUC and PR-AUC;"
            f" {chosen} is the best of them on {config.gate.metric}"
        )
    raw = pooled[f"candidate_{chosen}_raw"].to_numpy(dtype="float64")
    pooled["model"] = pooled[f"candidate_{chosen}"]
    pooled["model_raw"] = 1.0 / (1.0 + np.exp(-raw))
    pooled = pooled[[*CHURN_PREDICTION_COLUMNS, *(c for c in pooled.columns if _is_candidate(c))]]
    for i, fold in enumerate(folds, start=1):
        fold.churn = _churn_summary(pooled.loc[pooled["fold"] == i], k, notes, f"fold {i}")
    for n in names:
        candidates[n]["distinct_probabilities"] = distinct_probabilities(
            pooled[f"candidate_{n}"].to_numpy()
        )
    churn = {
        **_churn_summary(pooled, k, notes, "overall"),
        "candidates": candidates,
        "chosen": chosen,
        "fit_seconds": round(sum(fit_seconds.values()), 3),
        "search_seconds": round(sum(search_seconds.values()), 3),
    }
    clv_pooled = (
        pd.concat([p for p in clv_preds if len(p)], ignore_index=True)
        if any(len(p) for p in clv_preds)
        else _empty(CLV_PREDICTION_COLUMNS)
    )
    return BacktestResult(
        churn,
        _clv_summary(clv_pooled, notes, "overall"),
        folds,
        pooled,
        clv_pooled,
        notes,
        the_plan,
    )
