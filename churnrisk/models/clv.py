"""The customer-lifetime-value models.

:class:`ClvModel` predicts revenue over the next 12 months (the ``revenue_next_12m``
label). Revenue is zero-inflated and skewed (accounts that churn early bring little, a few
large accounts bring most), and most accounts simply keep paying their MRR. The default
objective therefore starts every account at its run rate, ``mrr x offset_months``, as
LightGBM's initial score and boosts absolute error from there: the trees learn the
departures (churn, expansion, contraction, one-off orders) and the prediction is a
median, which is what MAE rewards. Tweedie (mean, log link) and squared error remain
available.

:func:`lifetime_clv` turns the window's predicted revenue and the churn model's horizon
probability into a lifetime value with a margin and a discount rate, so that value and
risk tell one story: the lifetime value is never below the discounted margin of the
window's revenue, and falls as the churn probability rises. Where no revenue model could
be trained, :func:`survival_revenue` gives the window's revenue as MRR x expected months
retained.
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


def monthly_retention(p_churn_horizon: npt.ArrayLike, *, horizon_days: int) -> np.ndarray:
    """Return the monthly retention implied by a churn probability over the horizon.

    A constant hazard over months of 30 days: ``r = (1 - p) ** (30 / horizon_days)``.

    Raises
    ------
    ConfigError
        When ``horizon_days <= 0`` or a probability lies outside [0, 1].
    """
    if horizon_days <= 0:
        raise ConfigError(f"the churn horizon must be > 0 days; got {horizon_days}")
    p = np.asarray(p_churn_horizon, dtype="float64")
    if np.any((p < 0) | (p > 1)):
        raise ConfigError("churn probabilities must lie in [0, 1]")
    return np.asarray((1.0 - p) ** (30.0 / horizon_days), dtype="float64")


def expected_months_retained(
    p_churn_horizon: npt.ArrayLike, *, horizon_days: int, months: int
) -> np.ndarray:
    r"""Return the expected number of months an account pays within a window of ``months``.

    With the monthly retention ``r`` of :func:`monthly_retention` and the first month
    (t = 0) paid in full: :math:`E = \sum_{t=0}^{n-1} r^t`, between 1 (``p = 1``) and
    ``n`` (``p = 0``).

    Raises
    ------
    ConfigError
        When ``months < 1`` or as :func:`monthly_retention`.
    """
    if months < 1:
        raise ConfigError(f"the revenue window must be at least 1 month; got {months}")
    r = monthly_retention(p_churn_horizon, horizon_days=horizon_days)
    powers = r[..., np.newaxis] ** np.arange(months)
    return np.asarray(powers.sum(axis=-1), dtype="float64")


def survival_revenue(
    mrr: npt.ArrayLike, p_churn_horizon: npt.ArrayLike, *, horizon_days: int, months: int
) -> np.ndarray:
    """Return revenue over the next ``months`` as MRR x expected months retained.

    The survival view of the window's revenue, used when no revenue model could be
    trained (data too short for the revenue label): ``mrr * E`` with ``E`` from
    :func:`expected_months_retained`. Missing MRR counts as 0.
    """
    m = np.nan_to_num(np.asarray(mrr, dtype="float64"), nan=0.0)
    return m * expected_months_retained(p_churn_horizon, horizon_days=horizon_days, months=months)


def lifetime_clv(
    revenue_window: npt.ArrayLike,
    p_churn_horizon: npt.ArrayLike,
    *,
    horizon_days: int,
    revenue_months: int,
    margin: float,
    annual_discount_rate: float,
) -> np.ndarray:
    r"""Return the discounted lifetime value of each account, consistent with its revenue.

    One view of survival and revenue: the window's predicted revenue ``R`` (the revenue
    model's, or :func:`survival_revenue`), the churn probability ``p`` over the horizon
    and the margin ``m`` give the value in two parts, with the monthly discount factor
    ``v = (1 + annual_discount_rate) ** (-1 / 12)``, the monthly retention ``r``
    (:func:`monthly_retention`), the window of ``n = revenue_months`` months and the
    expected months retained in it ``E`` (:func:`expected_months_retained`):

    .. math::

        CLV = \underbrace{m \, R \, \bar a}_{\text{the window}}
            + \underbrace{m \, \frac{R}{E} \sum_{t=n}^{\infty} (r v)^t}_{\text{after it}},
        \qquad \bar a = \frac{1}{n} \sum_{t=0}^{n-1} v^t,
        \qquad \sum_{t=n}^{\infty} (r v)^t = \frac{(r v)^n}{1 - r v}.

    The window: ``R`` already prices in the chance of leaving within it, so it is not
    weighted by survival a second time; the model predicts a total, not a path, so it is
    spread evenly over the window's months and discounted month by month (first month at
    t = 0). After the window: a surviving account keeps paying its run rate ``R / E``
    (revenue per expected paying month; for the survival view ``R = MRR x E`` that is
    MRR itself), retained and discounted month by month as in Gupta and Lehmann
    ("Customers as assets", Journal of Interactive Marketing 17(1), 2003, margins
    received at the start of each period).

    Invariants (tested with hypothesis):

    * ``CLV >= m * R * ā``: lifetime value is never below the discounted margin of the
      window's predicted revenue (the tail is >= 0). CLV is a margin, revenue is gross:
      with ``m < 1`` an account likely to leave can still have CLV < R.
    * For a fixed ``R``, CLV is non-increasing in ``p``: ``ā`` does not depend on ``p``
      and the tail is ``m R v^n / ((1 - r v) \sum_{k=1}^{n} r^{-k})``, increasing in
      ``r``.

    Worked example: ``R = 300``, ``p = 0.5`` over 30 days (``r = 0.5``), ``n = 2``,
    ``v = 0.8``, ``m = 0.5``: ``ā = (1 + 0.8) / 2 = 0.9``, window ``0.5 * 300 * 0.9 =
    135``; ``E = 1.5``, run rate ``200``, tail ``0.5 * 200 * 0.4^2 / 0.6 = 80 / 3``;
    ``CLV = 485 / 3 ≈ 161.67``.

    Parameters
    ----------
    revenue_window
        Predicted revenue over the next ``revenue_months`` months (currency units).
    p_churn_horizon
        Probability of churn within ``horizon_days``, in [0, 1].
    horizon_days
        Length of the churn horizon in days.
    revenue_months
        Length of the revenue window in months of 30 days (``LabelConfig.revenue_months``).
    margin
        Gross margin, in (0, 1].
    annual_discount_rate
        Yearly discount rate, > 0 (so that the sum converges even when ``p = 0``).

    Returns
    -------
    numpy.ndarray
        Lifetime value per account, in the currency of ``revenue_window``.

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
    revenue = np.nan_to_num(np.asarray(revenue_window, dtype="float64"), nan=0.0)
    r = monthly_retention(p_churn_horizon, horizon_days=horizon_days)
    months = expected_months_retained(
        p_churn_horizon, horizon_days=horizon_days, months=revenue_months
    )
    v = (1.0 + annual_discount_rate) ** (-1.0 / 12.0)
    annuity = float(np.mean(v ** np.arange(revenue_months)))
    rv = r * v
    tail = (revenue / months) * rv**revenue_months / (1.0 - rv)
    return np.asarray(margin * (revenue * annuity + tail), dtype="float64")
