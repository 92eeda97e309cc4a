"""Baselines the models must beat, evaluated on the same backtest folds.

* :class:`LogisticBaseline`: logistic regression on the same registered features.
* :func:`usage_drop_score`: a transparent rule with no fitting.
* :func:`mrr_run_rate`: "revenue over the next ``months`` months is ``months`` times this
  month's MRR", the run rate over the CLV target's own window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer  # type: ignore[import-untyped]
from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from churnrisk.errors import ConfigError, DataError, NotFittedError, SchemaError
from churnrisk.models.frame import FeatureFrame


class LogisticBaseline:
    """Logistic regression on the registered features, as a scikit-learn pipeline.

    Numeric features: median imputation with missing-value indicators, then
    standardisation; categorical features: one-hot, categories unseen in training
    ignored. ``LogisticRegression(class_weight="balanced", max_iter=1000)``; its
    probabilities are therefore weighted towards churners and not calibrated. Rows are
    sorted by ``(as_of, account_id)`` before fitting, so the same rows in any order give
    the same model (lbfgs's result moves with the order of its sums).

    Parameters
    ----------
    random_state
        Seed of the solver (the default lbfgs solver is deterministic).
    """

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, train: pd.DataFrame) -> LogisticBaseline:
        """Fit on label-closed panel rows; return ``self``."""
        if "churned" not in train.columns or train["churned"].isna().any():
            raise DataError("the logistic baseline needs label-closed rows (churned set)")
        # the solver's result depends on row order: the same rows give the same model
        train = train.sort_values(["as_of", "account_id"], kind="stable")
        self.frame_ = FeatureFrame().fit(train)
        cats = self.frame_.categorical_features
        nums = [n for n in self.frame_.feature_names_ if n not in cats]
        numeric = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                ("scale", StandardScaler()),
            ]
        )
        prep = ColumnTransformer(
            [
                ("num", numeric, nums),
                (
                    "cat",
                    Pipeline(
                        [
                            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore")),
                        ]
                    ),
                    cats,
                ),
            ]
        )
        self.pipeline_ = Pipeline(
            [
                ("prep", prep),
                (
                    "logit",
                    LogisticRegression(
                        class_weight="balanced", max_iter=1000, random_state=self.random_state
                    ),
                ),
            ]
        )
        # one BLAS thread: on a busy machine more threads than idle cores make lbfgs many
        # times slower (their spinning threads wait on one another)
        with threadpool_limits(limits=1, user_api="blas"):
            self.pipeline_.fit(self._x(train), train["churned"].to_numpy(dtype="int64"))
        return self

    def predict_proba(self, panel: pd.DataFrame) -> np.ndarray:
        """Return P(churn) per row (class-weighted, so not calibrated)."""
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("this LogisticBaseline is not fitted yet; call fit first")
        return np.asarray(self.pipeline_.predict_proba(self._x(panel))[:, 1], dtype="float64")

    def _x(self, panel: pd.DataFrame) -> pd.DataFrame:
        x = self.frame_.transform(panel)
        for c in self.frame_.categorical_features:
            x[c] = x[c].astype(object)
        # SimpleImputer needs a NaN it can see in object columns
        return x.replace({pd.NA: np.nan})


def usage_drop_score(panel: pd.DataFrame) -> np.ndarray:
    """Score accounts by how much their usage fell; higher means riskier.

    ``score = -usage_trend_30d - 0.01 * dau_mau_30d``, where ``usage_trend_30d`` is the
    relative change in events (last 30 days vs the 30 before, so -1 = usage stopped) and
    ``dau_mau_30d`` only breaks near-ties (lower stickiness, riskier). Missing values:
    a trend is missing when there were no events in the earlier 30 days, read as no
    change (0); a missing DAU/MAU means no active users, read as 0 (least sticky).

    Raises
    ------
    SchemaError
        When ``usage_trend_30d`` or ``dau_mau_30d`` is absent.
    """
    missing = [c for c in ("usage_trend_30d", "dau_mau_30d") if c not in panel.columns]
    if missing:
        raise SchemaError(f"usage_drop_score needs columns {', '.join(missing)}")
    trend = panel["usage_trend_30d"].astype("float64").fillna(0.0).to_numpy()
    stick = panel["dau_mau_30d"].astype("float64").fillna(0.0).to_numpy()
    return np.asarray(-trend - 0.01 * stick, dtype="float64")


def mrr_run_rate(panel: pd.DataFrame, *, months: int) -> np.ndarray:
    """Revenue over the next ``months`` months predicted as ``months * mrr`` (currency units).

    The run-rate baseline of the revenue model, over the same window as its target
    (``LabelConfig.revenue_months``); missing MRR counts as 0.

    Raises
    ------
    SchemaError
        When ``mrr`` is absent.
    ConfigError
        When ``months < 1``.
    """
    if "mrr" not in panel.columns:
        raise SchemaError("mrr_run_rate needs the mrr column")
    if months < 1:
        raise ConfigError(f"the run rate needs a window of at least 1 month; got {months}")
    return np.asarray(float(months) * panel["mrr"].astype("float64").fillna(0.0).to_numpy())
