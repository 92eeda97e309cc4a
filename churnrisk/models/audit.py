"""The leak audit: a feature that alone separates churners from stayers is a leak.

No honest signal of churn within a quarter separates the two almost perfectly on its
own; a feature that does is reading the outcome, as ``days_to_renewal`` did when a
cancellation-dated export's ``end_date`` (written only for customers who left) was taken
for a renewal date known at signing. :func:`leak_audit` measures each feature's own
ROC-AUC against the label on a labelled panel and :func:`check_leaks` stops a run that
has one at or above :data:`LEAK_AUC`, naming it.

Each feature is scored as it would be by a model that sees only it, in the direction
that separates best (``max(auc, 1 - auc)``):

- a number by its value, its missing values placed below every value and then above
  every value (a tree can send them either way: the better of the two counts), so a
  feature that exists only for churners is caught by its missingness alone;
- a category by the churn rate of its level in the panel (each level, missing included,
  is one group), which is what a one-feature tree learns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from churnrisk.errors import DataError
from churnrisk.models.frame import PASSTHROUGH

LEAK_AUC = 0.95
"""A feature whose own ROC-AUC reaches this stops the run."""

TARGET = "churned"


class LeakError(DataError):
    """A feature separates the labels on its own: it reads the outcome."""


@dataclass(frozen=True)
class FeatureSeparation:
    """How well one feature alone separates churners from stayers.

    Attributes
    ----------
    feature
        The feature's column.
    auc
        Its own ROC-AUC in its best direction, 0.5 to 1.
    by_missing
        Whether whether-it-is-missing alone reaches ``auc`` (the value adds nothing).
    """

    feature: str
    auc: float
    by_missing: bool


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _numeric(y: np.ndarray, values: np.ndarray) -> tuple[float, bool]:
    missing = np.isnan(values)
    if missing.all():
        return 0.5, False
    by_missing = _auc(y, missing.astype("float64")) if missing.any() else 0.5
    if not missing.any():
        return _auc(y, values), False
    low, high = np.nanmin(values), np.nanmax(values)
    best = max(
        _auc(y, np.where(missing, low - 1.0, values)),
        _auc(y, np.where(missing, high + 1.0, values)),
    )
    return best, by_missing >= best


def _categorical(y: np.ndarray, values: pd.Series) -> float:
    levels = values.astype(object).where(values.notna(), "\0missing")
    rate = pd.Series(y, index=values.index).groupby(levels.to_numpy()).transform("mean")
    return _auc(y, rate.to_numpy(dtype="float64"))


def leak_audit(panel: pd.DataFrame) -> list[FeatureSeparation]:
    """Return every feature's own ROC-AUC on the label-closed rows, highest first.

    Parameters
    ----------
    panel
        A labelled feature panel: every column but the keys and the labels is a feature.

    Returns
    -------
    list of FeatureSeparation
        Empty when the label-closed rows hold one class only.
    """
    if TARGET not in panel.columns:
        raise DataError(f"the leak audit needs a labelled panel (a {TARGET!r} column)")
    rows = panel.loc[panel[TARGET].notna()]
    y = rows[TARGET].to_numpy(dtype="float64")
    if len(y) == 0 or y.min() == y.max():
        return []
    out = []
    for name in (c for c in rows.columns if c not in PASSTHROUGH):
        column = rows[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            out.append(FeatureSeparation(name, _categorical(y, column), False))
            continue
        auc, by_missing = _numeric(y, column.to_numpy(dtype="float64", na_value=np.nan))
        out.append(FeatureSeparation(name, auc, by_missing))
    return sorted(out, key=lambda s: (-s.auc, s.feature))


def check_leaks(
    panel: pd.DataFrame, *, allow: Iterable[str] = (), threshold: float = LEAK_AUC
) -> list[FeatureSeparation]:
    """Stop when a feature alone separates the labels; return the audit.

    Parameters
    ----------
    panel
        A labelled feature panel.
    allow
        Features the user has checked and keeps anyway (``--allow-leak``).
    threshold
        The ROC-AUC at which a feature stops the run.

    Raises
    ------
    LeakError
        Naming the features at or above ``threshold`` that ``allow`` does not list, with
        their ROC-AUC and what to do.
    """
    audit = leak_audit(panel)
    allowed = set(allow)
    leaks = [s for s in audit if s.auc >= threshold and s.feature not in allowed]
    if leaks:
        shown = ", ".join(
            f"{s.feature} (ROC-AUC {s.auc:.2f}{', by being missing' if s.by_missing else ''})"
            for s in leaks
        )
        raise LeakError(
            f"the feature(s) {shown} alone separate churners from stayers: they read the"
            " outcome (is an end date a cancellation date rather than a term end known at"
            " signing? give that one as term_end); fix the source, or pass --allow-leak"
            f" {leaks[0].feature} if you have checked it is known in advance"
        )
    return audit
