"""Per-account drivers of the churn score, worded from the feature registry.

Drivers are the churn model's per-feature contributions to its uncalibrated log-odds
(:meth:`~churnrisk.models.candidates.Candidate.contributions`): LightGBM's own
``pred_contrib`` (TreeSHAP), the logistic regression's exact linear terms, or their
weighted sum for the blend. Calibration is monotone, so a feature that raises the
log-odds raises the calibrated probability too.

Drivers are ranked among the features customer success can act on (usage, engagement,
tickets, NPS, billing changes: :attr:`~churnrisk.features.Feature.actionable`). Context
(who the account is and where it stands in its contract: size, plan, tenure, segment,
renewal timing) moves the score as much as the model says, but is reported apart
(:func:`context`) and never as a driver: "the renewal is near" is not something to act on.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnrisk.errors import ConfigError
from churnrisk.features import get_feature
from churnrisk.models.candidates import Candidate

Direction = Literal["raises", "lowers"]


@dataclass(frozen=True)
class Driver:
    """One feature's contribution to one account's churn score.

    Attributes
    ----------
    feature
        Registered feature name.
    value
        The account's value rounded for people (:func:`round_value`: a number, a
        category, or ``None`` when missing), as the API gives it.
    contribution
        Contribution to the log-odds of churn (uncalibrated model).
    direction
        ``"raises"`` (contribution > 0) or ``"lowers"`` risk.
    text
        A sentence for people, e.g. ``"DAU/MAU, last 30 days = 0.08, raises risk"``.
    """

    feature: str
    value: Any
    contribution: float
    direction: Direction
    text: str


FeatureValue = str | int | float | None
"""A feature value as people are shown it: rounded, JSON-safe (see :func:`round_value`)."""


def round_value(value: Any, dtype: str) -> FeatureValue:
    """Return a feature value rounded for people, as plain JSON data.

    The one rounding of a driver's value: the API and the dashboard give it as the
    item's ``value``, and :func:`format_value` writes exactly its digits (``churnrisk
    explain`` and the items' ``display`` and ``text``).

    Missing (``None``, NaN, ``pd.NA``) and non-finite numbers give ``None``; categories
    their text; ``"int"`` features an ``int``; other numbers keep 4 decimals, or 4
    significant digits when their magnitude is below 1 (so small ratios stay readable).
    """
    if value is None or value is pd.NA:
        return None
    if dtype == "category":
        if isinstance(value, float) and math.isnan(value):
            return None
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return None
    if dtype == "int":
        return round(v)
    if abs(v) >= 1 or v == 0:
        return round(v, 4)
    return float(f"{v:.4g}")


def words(value: FeatureValue) -> str:
    """Write a rounded value (:func:`round_value`) for people: its digits, no more, no fewer.

    ``None`` reads "missing", a category its text, a number its digits with thousands
    grouped and no exponent: ``1096`` is "1,096", ``0.0001235`` is "0.0001235".
    """
    if value is None:
        return "missing"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or value == 0:
        return f"{int(value):,}"
    whole, dot, fraction = np.format_float_positional(value, trim="-").partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{fraction}"


def format_value(value: Any, dtype: str) -> str:
    """Format a feature value for people: the words of its :func:`round_value`."""
    return words(round_value(value, dtype))


def _driver(feature: str, value: Any, contribution: float) -> Driver:
    decl = get_feature(feature)
    direction: Direction = "raises" if contribution > 0 else "lowers"
    shown = round_value(value.item() if isinstance(value, np.generic) else value, decl.dtype)
    text = f"{decl.meaning} = {words(shown)}, {direction} risk"
    return Driver(feature, shown, float(contribution), direction, text)


def top_contributions(
    values: np.ndarray,
    *,
    top: int,
    direction: Literal["raises", "lowers", "both"] = "raises",
) -> np.ndarray:
    """Return the column positions of each row's strongest contributions, all rows at once.

    Parameters
    ----------
    values
        Contributions, one row per account and one column per feature (no bias).
    top
        Positions per row (per direction with ``"both"``).
    direction
        ``"raises"``: the largest positive values, largest first; ``"lowers"``: the most
        negative ones, most negative first; ``"both"``: the ``top`` risers then the
        ``top`` lowerers. Ties keep column order.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(rows, top)`` (``(rows, 2 * top)`` with ``"both"``);
        ``-1`` marks a slot with no contribution of that sign (zero counts as neither).
    """
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    k = min(top, values.shape[1])
    parts = []
    if direction in ("raises", "both"):
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        keep = np.take_along_axis(values, order, axis=1) > 0
        parts.append(np.where(keep, order, -1))
    if direction in ("lowers", "both"):
        order = np.argsort(values, axis=1, kind="stable")[:, :k]
        keep = np.take_along_axis(values, order, axis=1) < 0
        parts.append(np.where(keep, order, -1))
    return np.concatenate(parts, axis=1) if parts else np.empty((len(values), 0), dtype=int)


def actionable_mask(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return which of the features ``names`` are actionable (a boolean array)."""
    return np.array([get_feature(n).actionable for n in names], dtype=bool)


def rank_actionable(values: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return ``values`` with the context features' columns set to 0 (never picked)."""
    return np.where(actionable_mask(names)[None, :], values, 0.0)


def context_order(values: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Return each row's context features, largest absolute contribution first.

    Parameters
    ----------
    values
        Contributions, one row per account and one column per feature in ``names``.
    names
        Feature name of each column.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(rows, number of context features)``: column positions,
        ties in column order; ``-1`` marks a context feature contributing exactly 0 (it
        neither raises nor lowers risk), placed last.
    """
    context = np.flatnonzero(~actionable_mask(names))
    sub = values[:, context]
    order = np.argsort(-np.abs(sub), axis=1, kind="stable")
    keep = np.take_along_axis(sub, order, axis=1) != 0
    return np.where(keep, context[order], -1)


def _rows_of(
    panel: pd.DataFrame, picked: np.ndarray, values: np.ndarray, names: list[str]
) -> list[list[Driver]]:
    """Build the :class:`Driver` of every picked cell (``-1`` skipped), row by row."""
    rows, slots = np.nonzero(picked >= 0)
    cols = picked[rows, slots]
    # one Driver per picked cell, built in row-major order, then cut into rows
    column_values = {j: panel[names[j]].to_numpy(dtype=object) for j in np.unique(cols).tolist()}
    made = [
        _driver(names[j], column_values[j][i], values[i, j])
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(panel)))]).tolist()
    return [made[a:b] for a, b in itertools.pairwise(bounds)]


def context(model: Candidate, panel: pd.DataFrame) -> list[list[Driver]]:
    """Return each row's context features and how they move its score, apart from drivers.

    Parameters
    ----------
    model
        A fitted churn model.
    panel
        Feature panel rows to explain.

    Returns
    -------
    list of list of Driver
        One list per row of ``panel``, in row order: every context feature of the model
        (not :attr:`~churnrisk.features.Feature.actionable`) with a non-zero
        contribution, largest absolute contribution first.
    """
    contrib = model.contributions(panel).drop(columns="bias")
    names = list(contrib.columns)
    values = contrib.to_numpy()
    return _rows_of(panel, context_order(values, names), values, names)


def drivers(
    model: Candidate,
    panel: pd.DataFrame,
    *,
    top: int = 3,
    direction: Literal["raises", "lowers", "both"] = "raises",
) -> list[list[Driver]]:
    """Return the top drivers of each row's churn score, among the actionable features.

    Parameters
    ----------
    model
        A fitted churn model.
    panel
        Feature panel rows to explain.
    top
        Drivers per row (per direction with ``"both"``).
    direction
        ``"raises"``: the largest positive contributions (what raises the risk);
        ``"lowers"``: the most negative ones; ``"both"``: the ``top`` of each, risers
        first.

    Returns
    -------
    list of list of Driver
        One list per row of ``panel``, in row order; a row may have fewer than ``top``
        drivers when fewer actionable features push its score that way. Context features
        are never drivers (see :func:`context`).
    """
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    contrib = model.contributions(panel).drop(columns="bias")
    names = list(contrib.columns)
    values = contrib.to_numpy()
    picked = top_contributions(rank_actionable(values, names), top=top, direction=direction)
    return _rows_of(panel, picked, values, names)


def drivers_frame(
    model: Candidate,
    panel: pd.DataFrame,
    *,
    top: int = 3,
    direction: Literal["raises", "lowers", "both"] = "raises",
) -> pd.DataFrame:
    """Return :func:`drivers` as a long frame.

    Columns: ``account_id``, ``as_of``, ``rank`` (1 = strongest), ``feature``, ``value``,
    ``contribution``, ``direction``, ``text``.
    """
    rows = []
    for (acc, as_of), ds in zip(
        panel[["account_id", "as_of"]].itertuples(index=False, name=None),
        drivers(model, panel, top=top, direction=direction),
        strict=True,
    ):
        for rank, d in enumerate(ds, start=1):
            rows.append((acc, as_of, rank, d.feature, d.value, d.contribution, d.direction, d.text))
    cols = ["account_id", "as_of", "rank", "feature", "value", "contribution", "direction", "text"]
    return pd.DataFrame(rows, columns=cols)


def global_importance(model: Candidate) -> pd.DataFrame:
    """Return every feature's importance and share of it, highest first, with meanings.

    The ``gain`` column is the candidate's :meth:`feature_importance`: LightGBM's total
    gain, or the mean absolute contribution for the logistic regression and the blend.
    """
    gain = model.feature_importance()
    total = float(gain.sum())
    return pd.DataFrame(
        {
            "feature": gain.index,
            "meaning": [get_feature(f).meaning for f in gain.index],
            "gain": gain.to_numpy(),
            "share": gain.to_numpy() / total if total > 0 else np.nan,
        }
    )
