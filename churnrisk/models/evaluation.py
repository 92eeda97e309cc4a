"""Evaluation metrics and plots of the churn and CLV models.

Every metric raises :class:`~churnrisk.errors.MetricError` when it is undefined on its
input (no rows, one class only, constant values), never a made-up 0 or 1; callers that
tabulate many metrics (the backtest) turn that into NaN plus a note. Ranking metrics sort
by score, highest first, with ties kept in input order (a stable sort).

The plot helpers return :class:`matplotlib.figure.Figure` objects drawn on the Agg canvas,
without touching pyplot's global state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import spearmanr  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    roc_auc_score,
)

from churnrisk.errors import MetricError

ECE_BINS = 10


def _arrays(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, binary: bool
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype="float64")
    s = np.asarray(y_score, dtype="float64")
    if y.shape != s.shape or y.ndim != 1:
        raise MetricError(f"labels and scores must be 1-d of one length, got {y.shape}, {s.shape}")
    if len(y) == 0:
        raise MetricError("no rows to evaluate")
    if np.isnan(y).any() or np.isnan(s).any():
        raise MetricError("labels and scores must not be missing")
    if binary and not np.isin(y, (0.0, 1.0)).all():
        raise MetricError("labels must be 0 or 1")
    return y, s


def _both_classes(y: np.ndarray, name: str) -> None:
    if y.min() == y.max():
        raise MetricError(f"{name} is undefined with one class only ({int(y[0])})")


def _order(s: np.ndarray) -> np.ndarray:
    return np.argsort(-s, kind="stable")


def roc_auc(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random churner > score of a random stayer).

    Ties count one half. Undefined with one class only.
    """
    y, s = _arrays(y_true, y_score, binary=True)
    _both_classes(y, "ROC-AUC")
    return float(roc_auc_score(y, s))


def pr_auc(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` over score thresholds.

    ``P_n``, ``R_n`` are precision and recall at the n-th threshold (scikit-learn's
    ``average_precision_score``, no interpolation). Undefined without churners.
    """
    y, s = _arrays(y_true, y_score, binary=True)
    if y.sum() == 0:
        raise MetricError("PR-AUC is undefined without positives")
    return float(average_precision_score(y, s))


def brier(y_true: npt.ArrayLike, y_prob: npt.ArrayLike) -> float:
    """Brier score ``mean((p - y)^2)``; probabilities must lie in [0, 1]."""
    y, p = _arrays(y_true, y_prob, binary=True)
    if p.min() < 0 or p.max() > 1:
        raise MetricError("the Brier score needs probabilities in [0, 1]")
    return float(np.mean((p - y) ** 2))


def _bin_of(p: np.ndarray, bins: int) -> np.ndarray:
    """Index of each probability's equal-width bin; 1 falls in the last bin."""
    return np.minimum((np.clip(p, 0, 1) * bins).astype(int), bins - 1)


def reliability(
    y_true: npt.ArrayLike, y_prob: npt.ArrayLike, *, bins: int = ECE_BINS
) -> pd.DataFrame:
    """Return the reliability table: per equal-width bin, its rows, mean probability and rate.

    The bins are those of :func:`ece`; empty bins are left out.

    Returns
    -------
    pandas.DataFrame
        ``lower``, ``upper`` (the bin's edges), ``rows``, ``predicted`` (mean
        probability) and ``observed`` (churn rate), one row per non-empty bin in order.
    """
    y, p = _arrays(y_true, y_prob, binary=True)
    if p.min() < 0 or p.max() > 1:
        raise MetricError("a reliability table needs probabilities in [0, 1]")
    idx = _bin_of(p, bins)
    grouped = pd.DataFrame({"b": idx, "p": p, "y": y}).groupby("b")
    table = grouped.agg(rows=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    edges = table.index.to_numpy()
    return pd.DataFrame(
        {
            "lower": edges / bins,
            "upper": (edges + 1) / bins,
            "rows": table["rows"].to_numpy(),
            "predicted": table["predicted"].to_numpy(),
            "observed": table["observed"].to_numpy(),
        }
    )


def ece(y_true: npt.ArrayLike, y_prob: npt.ArrayLike, *, bins: int = ECE_BINS) -> float:
    """Return the expected calibration error over equal-width probability bins.

    ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over the bins of
    :func:`reliability`: ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]`` (the last one
    closed); empty bins add nothing. Probabilities must lie in [0, 1].
    """
    y, p = _arrays(y_true, y_prob, binary=True)
    if p.min() < 0 or p.max() > 1:
        raise MetricError("ECE needs probabilities in [0, 1]")
    table = reliability(y, p, bins=bins)
    gaps = (table["observed"] - table["predicted"]).abs()
    return float((table["rows"] / len(y) * gaps).sum())


def lift_top_decile(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Churn rate among the top ``ceil(n / 10)`` scores divided by the overall churn rate.

    Undefined without churners.
    """
    y, s = _arrays(y_true, y_score, binary=True)
    if y.sum() == 0:
        raise MetricError("lift is undefined without positives")
    top = math.ceil(len(y) / 10)
    return float(y[_order(s)[:top]].mean() / y.mean())


def _top_k(y: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise MetricError(f"K must be >= 1, got {k}")
    return _order(s)[: min(k, len(y))]


def precision_at_k(y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int) -> float:
    """Share of churners among the ``min(k, n)`` highest scores."""
    y, s = _arrays(y_true, y_score, binary=True)
    return float(y[_top_k(y, s, k)].mean())


def recall_at_k(y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, k: int) -> float:
    """Share of all churners found among the ``min(k, n)`` highest scores."""
    y, s = _arrays(y_true, y_score, binary=True)
    if y.sum() == 0:
        raise MetricError("recall is undefined without positives")
    return float(y[_top_k(y, s, k)].sum() / y.sum())


def mrr_recall_at_k(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, mrr: npt.ArrayLike, *, k: int
) -> float:
    """Share of churned MRR caught in the top ``min(k, n)`` scores.

    ``sum(mrr * y over the top k) / sum(mrr * y)``; undefined when no MRR churned.
    """
    y, s = _arrays(y_true, y_score, binary=True)
    m = np.asarray(mrr, dtype="float64")
    if m.shape != y.shape or np.isnan(m).any() or (m < 0).any():
        raise MetricError("MRR must be non-negative, present and as long as the labels")
    lost = float((m * y).sum())
    if lost == 0:
        raise MetricError("MRR recall is undefined when no MRR churned")
    top = _top_k(y, s, k)
    return float((m[top] * y[top]).sum() / lost)


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute error ``mean(|y - yhat|)``."""
    y, p = _arrays(y_true, y_pred, binary=False)
    return float(np.mean(np.abs(y - p)))


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((y - yhat)^2))``."""
    y, p = _arrays(y_true, y_pred, binary=False)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def spearman(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks).

    Undefined for fewer than 2 rows or a constant side.
    """
    y, p = _arrays(y_true, y_pred, binary=False)
    if len(y) < 2 or y.min() == y.max() or p.min() == p.max():
        raise MetricError("Spearman correlation is undefined for a constant or single value")
    return float(spearmanr(y, p).statistic)


# -- plots -----------------------------------------------------------------------------------


def _figure(width: float = 5.5, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def calibration_figure(
    y_true: npt.ArrayLike, probs: Mapping[str, npt.ArrayLike], *, bins: int = ECE_BINS
) -> Figure:
    """Reliability diagram: observed churn rate against mean predicted probability per bin.

    Parameters
    ----------
    y_true
        0/1 outcomes.
    probs
        Probabilities per model name, e.g. ``{"calibrated": p, "raw": q}``.
    bins
        Equal-width bins, as in :func:`ece`.
    """
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for name, p_like in probs.items():
        y, p = _arrays(y_true, p_like, binary=True)
        p = np.clip(p, 0, 1)
        frame = reliability(y, p, bins=bins)
        ax.plot(
            frame["predicted"], frame["observed"], marker="o", label=f"{name} (ECE {ece(y, p):.3f})"
        )
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate")
    ax.set_title("Calibration")
    ax.legend(loc="upper left")
    return fig


def gains_figure(y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]) -> Figure:
    """Cumulative gains: share of churners caught against share of accounts contacted."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    for name, s_like in scores.items():
        y, s = _arrays(y_true, s_like, binary=True)
        if y.sum() == 0:
            raise MetricError("cumulative gains are undefined without positives")
        caught = np.concatenate([[0.0], np.cumsum(y[_order(s)]) / y.sum()])
        share = np.arange(len(y) + 1) / len(y)
        ax.plot(share, caught, label=f"{name} (top-decile lift {lift_top_decile(y, s):.1f})")
    ax.set(xlabel="share of accounts, highest score first", ylabel="share of churners caught")
    ax.set_title("Cumulative gains")
    ax.legend(loc="lower right")
    return fig


def importance_figure(importance: pd.Series, *, top: int = 20) -> Figure:
    """Horizontal bar chart of the ``top`` largest importances (e.g. LightGBM gain)."""
    s = importance.sort_values(ascending=False, kind="stable").head(top)[::-1]
    fig = _figure(6.0, max(2.5, 0.3 * len(s) + 1.0))
    ax = fig.add_subplot()
    ax.barh([str(i) for i in s.index], s.to_numpy())
    ax.set(xlabel=str(importance.name or "importance"))
    ax.set_title("Feature importance")
    return fig
