"""The contract where a feature panel enters a model.

A :class:`FeatureFrame` is fitted on the training rows. It records the feature names, their
order and, for each categorical feature, the categories seen in training; afterwards
:meth:`FeatureFrame.transform` returns exactly those columns in that order, numeric ones as
float64 and categorical ones with the fitted categories (a category unseen in training
becomes missing). A panel that lacks a feature, or carries a column the frame does not
know, is refused with a :class:`~churnrisk.errors.SchemaError` naming the columns, the way
scikit-learn refuses feature names that differ from those seen in ``fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnrisk.errors import NotFittedError, SchemaError, UnknownFeatureError
from churnrisk.features import LABEL_COLUMNS, get_feature

KEY_COLUMNS: tuple[str, str] = ("account_id", "as_of")
"""Columns that identify a panel row."""

PASSTHROUGH: frozenset[str] = frozenset((*KEY_COLUMNS, *LABEL_COLUMNS))
"""Panel columns that are neither features nor unexpected."""


class FeatureFrame:
    """Feature names, order and categories, fitted on training rows.

    Parameters
    ----------
    features
        Feature names to use, in order; default every feature column of the training
        panel (the registered features and any vocabulary features it was built with),
        in panel order. Their dtypes (numeric or categorical) come from their
        declarations (:func:`~churnrisk.features.get_feature`).
    """

    def __init__(self, features: Sequence[str] | None = None) -> None:
        self.features = features

    def fit(self, panel: pd.DataFrame) -> FeatureFrame:
        """Record the feature columns and the categories of each categorical one.

        Parameters
        ----------
        panel
            Training rows of a feature panel.

        Returns
        -------
        FeatureFrame
            ``self``.

        Raises
        ------
        SchemaError
            When a feature column is missing.
        """
        if self.features is not None:
            names = list(self.features)
        else:
            names = [str(c) for c in panel.columns if c not in PASSTHROUGH]
        dtypes: dict[str, str | None] = {}
        for name in names:
            try:
                dtypes[name] = get_feature(name).dtype
            except UnknownFeatureError:
                dtypes[name] = None
        unknown = [n for n, d in dtypes.items() if d is None]
        if unknown:
            raise SchemaError(f"features not in the registry: {', '.join(unknown)}")
        _require(panel, names)
        self.feature_names_: list[str] = names
        self.categories_: dict[str, list[str]] = {}
        for name in names:
            if dtypes[name] == "category":
                values = panel[name].astype("string").dropna().unique()
                self.categories_[name] = sorted(str(v) for v in values)
        return self

    @property
    def categorical_features(self) -> list[str]:
        """Names of the categorical features, in feature order."""
        self._check_fitted()
        return [n for n in self.feature_names_ if n in self.categories_]

    def transform(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return the model matrix of ``panel``.

        Parameters
        ----------
        panel
            A feature panel (keys and label columns may be present; they are dropped).

        Returns
        -------
        pandas.DataFrame
            Exactly the fitted feature columns in the fitted order, on ``panel``'s index:
            float64 for numeric features, ``category`` with the fitted categories for
            categorical ones (unseen values become missing).

        Raises
        ------
        SchemaError
            When a feature is missing, a column is not known, or a numeric feature does
            not hold numbers.
        """
        self._check_fitted()
        _require(panel, self.feature_names_)
        extra = [c for c in panel.columns if c not in self.feature_names_ and c not in PASSTHROUGH]
        if extra:
            raise SchemaError(
                f"unexpected columns {', '.join(map(str, extra))}: the model was fitted on"
                f" {len(self.feature_names_)} features; drop them or refit"
            )
        out: dict[str, pd.Series[Any]] = {}
        for name in self.feature_names_:
            col = panel[name]
            if name in self.categories_:
                dtype = pd.CategoricalDtype(self.categories_[name])
                out[name] = col.astype("string").astype(object).astype(dtype)
            else:
                try:
                    out[name] = pd.to_numeric(col, errors="raise").astype("float64")
                except (TypeError, ValueError) as err:
                    raise SchemaError(f"feature {name!r} must be numeric, got {col.dtype}") from err
        return pd.DataFrame(out, index=panel.index)

    def codes(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the model matrix as float64, categoricals as their category codes.

        Missing and unseen categories are NaN, as LightGBM expects.
        """
        x = self.transform(panel)
        cols = []
        for name in self.feature_names_:
            if name in self.categories_:
                codes = x[name].cat.codes.to_numpy().astype("float64")
                codes[codes < 0] = np.nan
                cols.append(codes)
            else:
                cols.append(x[name].to_numpy(dtype="float64", na_value=np.nan))
        return np.column_stack(cols) if cols else np.empty((len(panel), 0))

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready data."""
        self._check_fitted()
        return {"feature_names": self.feature_names_, "categories": self.categories_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureFrame:
        """Rebuild a fitted frame from :meth:`to_dict` output."""
        frame = cls(list(data["feature_names"]))
        frame.feature_names_ = list(data["feature_names"])
        frame.categories_ = {k: list(v) for k, v in data["categories"].items()}
        return frame

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("this FeatureFrame is not fitted yet; call fit first")


def _require(panel: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in panel.columns]
    if missing:
        raise SchemaError(
            f"missing feature columns: {', '.join(missing)}; build the panel with"
            " churnrisk.features.build_features"
        )
