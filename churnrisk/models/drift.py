"""Feature drift: the population stability index of each feature since training.

Training keeps, per numeric feature, the cut points of its training distribution and the
share of training rows in each bin (:class:`Bins`, stored in the model bundle), so drift
can be measured later from a scoring run alone, without the training panel.

``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over the bins, where ``e_i`` and ``a_i`` are
the shares of the training rows and of the new rows in bin ``i``. The customary reading
(N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8): below 0.1 stable, 0.1 to 0.25
worth watching, above 0.25 shifted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnrisk.errors import MetricError

PSI_BINS = 10
PSI_FLOOR = 1e-4
"""The share given to an empty bin, so that its log ratio stays finite."""

PSI_DRIFT = 0.25
"""PSI above which a feature counts as drifted (the "shifted" reading above)."""


@dataclass(frozen=True)
class Bins:
    """A feature's training distribution, as PSI needs it.

    ``edges`` cut the known values into ``len(edges) + 1`` bins (a value equal to an edge
    goes to the bin above it); ``shares`` holds the share of training rows in each of
    them, then the share of missing values.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the bins as plain JSON values."""
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bins:
        """Read :meth:`to_dict`'s output."""
        return cls(tuple(map(float, data["edges"])), tuple(map(float, data["shares"])))

    def shares_of(self, values: npt.ArrayLike) -> np.ndarray:
        """Return the share of ``values`` in each bin, missing last."""
        v = np.asarray(values, dtype="float64")
        if v.size == 0:
            raise MetricError("PSI needs at least one value")
        known = v[~np.isnan(v)]
        counts = np.bincount(
            np.searchsorted(np.asarray(self.edges), known, side="right"),
            minlength=len(self.edges) + 1,
        )
        return np.append(counts, v.size - known.size) / v.size


def bins_of(values: npt.ArrayLike, *, bins: int = PSI_BINS) -> Bins:
    """Return the :class:`Bins` of a training sample, cut at its ``bins``-quantiles.

    The cut points are values of the sample (the lower of the two values a quantile falls
    between), and repeated ones merge their bins, so a feature that is mostly 0 gets
    fewer, wider bins rather than empty ones.
    """
    v = np.asarray(values, dtype="float64")
    known = v[~np.isnan(v)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(known, inner, method="lower")) if known.size else np.array([])
    cut = Bins(tuple(float(e) for e in edges), ())
    return Bins(cut.edges, tuple(float(s) for s in cut.shares_of(v)))


def psi_against(reference: Bins, actual: npt.ArrayLike) -> float:
    """Return the PSI of ``actual`` against a training distribution ``reference``.

    Shares are floored at :data:`PSI_FLOOR` on both sides.
    """
    e = np.maximum(np.asarray(reference.shares), PSI_FLOOR)
    a = np.maximum(reference.shares_of(actual), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, *, bins: int = PSI_BINS) -> float:
    """Return the PSI of ``actual`` against the sample ``expected`` (see the module)."""
    if np.asarray(expected).size == 0:
        raise MetricError("PSI needs at least one expected value")
    return psi_against(bins_of(expected, bins=bins), actual)


def numeric_features(panel: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Return the features of ``panel`` that PSI bins: numbers and booleans, not categories."""
    return [
        name
        for name in features
        if name in panel.columns
        and (
            pd.api.types.is_bool_dtype(panel[name])
            or (
                pd.api.types.is_numeric_dtype(panel[name])
                and not isinstance(panel[name].dtype, pd.CategoricalDtype)
            )
        )
    ]


def reference_bins(panel: pd.DataFrame, features: Sequence[str]) -> dict[str, Bins]:
    """Return the :class:`Bins` of each numeric feature of the training ``panel``."""
    return {
        name: bins_of(panel[name].astype("float64")) for name in numeric_features(panel, features)
    }


def feature_drift(
    reference: Mapping[str, Bins], latest: pd.DataFrame, *, threshold: float = PSI_DRIFT
) -> pd.DataFrame:
    """Return the PSI of each referenced feature between training and ``latest``.

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``psi``, ``drifted`` (PSI above ``threshold``), from the largest PSI
        down; features ``latest`` lacks are left out.
    """
    rows = [
        (name, psi_against(bins, latest[name].astype("float64")))
        for name, bins in reference.items()
        if name in latest.columns
    ]
    frame = pd.DataFrame(rows, columns=["feature", "psi"])
    frame["drifted"] = frame["psi"] > threshold
    return frame.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
