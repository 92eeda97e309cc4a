"""The customer-lifetime-value models.

:class:`ClvModel` predicts revenue over the next 12 months (the ``revenue_next_12m``
label). Revenue is zero-inflated and skewed (accounts that churn early bring little, a few
large accounts bring most), and most accounts simply keep paying their MRR. The default
objective therefore starts every account at its run rate, ``mrr x offset_months``, as
LightGBM's initial score and boosts absolute error from there: the trees learn the
departures (churn, expansion, contraction, one-off orders) and the prediction is a
median, which is what MAE rewards. Tweedie (mean, log link) and squared error remain
available.

:func:`lifetime_clv` turns MRR and the churn model's horizon probability into a lifetime
value with a margin and a discount rate.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churnrisk.config import ClvModelConfig
from churnrisk.errors import ConfigError, DataError, NotFittedError
from churnrisk.models.churn import lgb_params
from churnrisk.models.frame import FeatureFrame

TARGET = "revenue_next_12m"


def _target(panel: pd.DataFrame, what: str) -> np.ndarray:
    if TARGET not in panel.columns:
        raise DataError(f"{what} rows have no {TARGET!r} column; build them with labels")
    y = panel[TARGET]
    if y.isna().any():
        raise DataError(
            f"{what} rows include {int(y.isna().sum())} whose revenue window is open"
            f" ({TARGET} is NULL); keep only revenue-labelled rows"
        )
    return y.to_numpy(dtype="float64")


class ClvModel:
    """LightGBM regressor of revenue over the next 12 months.

    Parameters
    ----------
    config
        Objective and booster settings.
    random_state
        Seed of every random choice.
    offset_months
        With the ``mrr_offset_l1`` objective, the initial score is ``mrr`` times this
        (the revenue window in months, ``LabelConfig.revenue_months``).
    """

    def __init__(
        self,
        config: ClvModelConfig | None = None,
        *,
        random_state: int = 0,
        offset_months: int = 12,
    ) -> None:
        self.config = config
        self.random_state = random_state
        self.offset_months = offset_months

    def fit(self, train: pd.DataFrame, *, valid: pd.DataFrame) -> ClvModel:
        """Fit on ``train``, stopping early on the strictly later ``valid`` rows.

        Parameters
        ----------
        train, valid
            Revenue-labelled panel rows; every ``valid`` row is later in ``as_of`` than
            every ``train`` row.

        Returns
        -------
        ClvModel
            ``self``.

        Raises
        ------
        DataError
            When a label is missing, a slice is empty or the slices overlap in time.
        """
        cfg = self.config or ClvModelConfig()
        if len(train) == 0 or len(valid) == 0:
            raise DataError("the training and the validation slices must both hold rows")
        if valid["as_of"].min() <= train["as_of"].max():
            raise DataError(
                "the validation slice must be strictly later than the training rows: it"
                f" starts {valid['as_of'].min():%Y-%m-%d}, training ends"
                f" {train['as_of'].max():%Y-%m-%d}"
            )
        y, y_valid = _target(train, "training"), _target(valid, "validation")
        self.frame_ = FeatureFrame().fit(train)
        params = lgb_params(cfg, self.random_state)
        if cfg.objective == "mrr_offset_l1":
            params |= {"objective": "regression_l1", "metric": "l1"}
        elif cfg.objective == "tweedie":
            params |= {
                "objective": "tweedie",
                "tweedie_variance_power": cfg.tweedie_variance_power,
                "metric": "tweedie",
            }
        else:
            params |= {"objective": "regression", "metric": "l2"}
        cats = [self.frame_.feature_names_.index(c) for c in self.frame_.categorical_features]
        dtrain = lgb.Dataset(
            self.frame_.codes(train),
            label=y,
            init_score=self._offset(train),
            feature_name=self.frame_.feature_names_,
            categorical_feature=cats,
        )
        dvalid = lgb.Dataset(
            self.frame_.codes(valid),
            label=y_valid,
            init_score=self._offset(valid),
            reference=dtrain,
            categorical_feature=cats,
        )
        self.booster_ = lgb.train(
            params,
            dtrain,
            num_boost_round=cfg.n_estimators,
            valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or cfg.n_estimators)
        return self

    def predict(self, panel: pd.DataFrame) -> np.ndarray:
        """Return predicted revenue over the next 12 months (currency units, >= 0)."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("this ClvModel is not fitted yet; call fit first")
        out = self.booster_.predict(self.frame_.codes(panel), num_iteration=self.best_iteration_)
        offset = self._offset(panel)
        if offset is not None:
            out = np.asarray(out, dtype="float64") + offset
        return np.clip(np.asarray(out, dtype="float64"), 0.0, None)

    def _offset(self, panel: pd.DataFrame) -> np.ndarray | None:
        """Return the initial score of each row: ``mrr x offset_months`` (missing MRR: 0).

        ``None`` for objectives that start from LightGBM's own constant.
        """
        if (self.config or ClvModelConfig()).objective != "mrr_offset_l1":
            return None
        mrr = pd.to_numeric(panel["mrr"], errors="raise").fillna(0.0).to_numpy(dtype="float64")
        return mrr * float(self.offset_months)

    def to_state(self) -> dict[str, Any]:
        """Return the fitted state: the booster as text, the rest JSON-ready (no pickle)."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("this ClvModel is not fitted yet; call fit first")
        return {
            "booster": self.booster_.model_to_string(),
            "meta": {
                "config": (self.config or ClvModelConfig()).model_dump(),
                "random_state": self.random_state,
                "offset_months": self.offset_months,
                "frame": self.frame_.to_dict(),
                "best_iteration": self.best_iteration_,
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClvModel:
        """Rebuild a fitted model from :meth:`to_state` output."""
        meta = state["meta"]
        model = cls(
            ClvModelConfig(**meta["config"]),
            random_state=meta["random_state"],
            offset_months=int(meta.get("offset_months", 12)),
        )
        model.booster_ = lgb.Booster(model_str=state["booster"])
        model.frame_ = FeatureFrame.from_dict(meta["frame"])
        model.best_iteration_ = int(meta["best_iteration"])
        return model


def lifetime_clv(
    mrr: npt.ArrayLike,
    p_churn_horizon: npt.ArrayLike,
    *,
    horizon_days: int,
    margin: float,
    annual_discount_rate: float,
) -> np.ndarray:
    r"""Return the discounted lifetime value of each account.

    The churn probability over the horizon is turned into a monthly one (months of 30
    days), assuming a constant hazard: ``q = 1 - (1 - p) ** (30 / horizon_days)``, so the
    monthly retention is ``r = 1 - q``. With the monthly discount rate
    ``d = (1 + annual_discount_rate) ** (1 / 12) - 1`` and the margin ``m``, the value is
    the retention-weighted, discounted sum of monthly margins, the first month (t = 0)
    counted in full:

    .. math::

        CLV = \sum_{t=0}^{\infty} m \cdot MRR \cdot \frac{r^t}{(1 + d)^t}
            = m \cdot MRR \cdot \frac{1 + d}{1 + d - r}

    (Gupta and Lehmann, "Customers as assets", Journal of Interactive Marketing 17(1),
    2003, with margins received at the start of each period.)

    Parameters
    ----------
    mrr
        Monthly recurring revenue per account (currency units).
    p_churn_horizon
        Probability of churn within ``horizon_days``, in [0, 1].
    horizon_days
        Length of the churn horizon in days.
    margin
        Gross margin, in (0, 1].
    annual_discount_rate
        Yearly discount rate, > 0 (so that the sum converges even when ``p = 0``).

    Returns
    -------
    numpy.ndarray
        Lifetime value per account, in the currency of ``mrr``.

    Raises
    ------
    ConfigError
        When a setting or a probability is out of range.
    """
    if horizon_days <= 0 or not 0 < margin <= 1 or annual_discount_rate <= 0:
        raise ConfigError(
            "lifetime_clv needs horizon_days > 0, 0 < margin <= 1 and"
            f" annual_discount_rate > 0; got {horizon_days}, {margin}, {annual_discount_rate}"
        )
    p = np.asarray(p_churn_horizon, dtype="float64")
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("churn probabilities must lie in [0, 1]")
    m = np.asarray(mrr, dtype="float64")
    retention = (1.0 - p) ** (30.0 / horizon_days)
    d = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    return np.asarray(margin * m * (1.0 + d) / (1.0 + d - retention), dtype="float64")
