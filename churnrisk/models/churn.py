"""The churn model: a calibrated LightGBM classifier of churn within the label horizon.

Scheme (the slices are cut by the plan, :mod:`churnrisk.models.slices`):

* The booster is trained on the ``train`` rows. Churners are rare, so with the default
  ``imbalance="balanced"`` they are up-weighted by ``scale_pos_weight = negatives /
  positives`` (of the training rows), which helps the trees split on the minority class
  but inflates the raw probabilities.
* The ``stop`` rows stop the boosting early (the number of trees that ranks best there,
  ROC-AUC by default: log loss would be misled by the weighting); the ``calibration``
  rows fit the calibration map from raw scores (log-odds) to churn rates: isotonic
  regression by default, or Platt's sigmoid. The three slices are disjoint
  (:class:`~churnrisk.models.slices.FitSlices`), so no calibration is ever fitted on rows
  the booster learned from, and the rows that chose the number of trees do not fit the
  calibration map either.
"""

from __future__ import annotations

from typing import Any, get_args

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from churnrisk.config import BoosterConfig, CalibrationMethod, ChurnModelConfig
from churnrisk.errors import ConfigError, DataError, NotFittedError
from churnrisk.models.frame import FeatureFrame

TARGET = "churned"


class Calibrator:
    """A monotone map from raw scores (log-odds) to probabilities, stored as plain numbers.

    Parameters
    ----------
    method
        ``"interpolated"``: isotonic regression, then a line between the centres of its
        blocks (the mean raw score of each block's rows, at the block's churn rate), and
        beyond the end centres the log-odds go on at the slope of Platt scaling fitted on
        the same rows: strictly increasing, so it keeps every difference the model ranks.
        ``"isotonic"``: piecewise-linear interpolation between the thresholds of an
        isotonic regression, clipped at the ends (a step map: each block's rows share
        one probability). ``"sigmoid"``: ``1 / (1 + exp(-(a s + b)))`` (Platt scaling).
        ``"beta"``: beta calibration of the booster's probability ``q = sigmoid(s)``,
        ``logit p = a ln q - b ln(1 - q) + c`` with ``a, b >= 0`` (Kull et al., 2017).
        ``Calibrator()`` alone is the step map, as it always was; the churn model uses
        :attr:`ChurnModelConfig.calibration <churnrisk.config.ChurnModelConfig>`, whose
        default (beta) bench/calibration.py chose.

    Notes
    -----
    Isotonic regression gives its highest block the block's churn rate, which is exactly
    1 when every one of its rows churned, however few they are: 12 calibration rows would
    make the service tell a CS manager that an account will churn for certain (and 0 at
    the bottom, that one never will). An end block at exactly 0 or 1 therefore gets the
    posterior mean of its rate under the Jeffreys prior Beta(1/2, 1/2) instead,
    ``(k + 1/2) / (n + 1)`` for ``k`` churners in ``n`` rows, and no more extreme than the
    next block (which keeps the map monotone). Worked example: scores 0..5 with outcomes
    0 0 1 0 1 1 pool into blocks (0, 0), (1, 0), (1, 1) with rates 0, 0.5, 1, which
    become 0.5/3, 0.5, 2.5/3; the interpolated map puts them at the centres 0.5, 2.5 and
    4.5. Blocks that the softening leaves at one level are merged (their centre is the
    mean of all their rows), so the interpolated map's levels are strictly increasing.
    """

    def __init__(self, method: CalibrationMethod = "isotonic") -> None:
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        """Fit the map on raw scores ``raw`` and 0/1 outcomes ``y``; return ``self``."""
        raw = np.asarray(raw, dtype="float64")
        y = np.asarray(y, dtype="float64")
        self.params_: dict[str, float] = {}
        if self.method in ("isotonic", "interpolated"):
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            fitted = iso.fit(raw, y).predict(raw)
            self.x_: list[float] = [float(v) for v in iso.X_thresholds_]
            self.y_: list[float] = _soften_end_blocks(
                np.asarray(iso.y_thresholds_, dtype="float64"), fitted
            )
            if self.method == "interpolated":
                self.x_, self.y_ = _block_centres(raw, fitted, self.y_, iso.y_thresholds_)
                # one class only: no slope to learn, the tails rise at the floor
                slope = _platt(raw, y)[0] if y.min() < y.max() else _MIN_SLOPE
                self.params_ = {"tail_slope": max(slope, _MIN_SLOPE)}
        elif self.method == "sigmoid":
            a, b = _platt(raw, y)
            self.x_, self.y_ = [a], [b]
        elif self.method == "beta":
            self.x_, self.y_ = [], []
            self.params_ = _beta(raw, y)
        else:
            raise ConfigError(
                f"unknown calibration method {self.method!r}; use one of"
                f" {', '.join(get_args(CalibrationMethod))}"
            )
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Map raw scores to calibrated probabilities."""
        if not hasattr(self, "x_"):
            raise NotFittedError("the calibrator is not fitted")
        s = np.asarray(raw, dtype="float64")
        if self.method == "isotonic":
            return np.interp(s, np.asarray(self.x_), np.asarray(self.y_))
        if self.method == "interpolated":
            return _interpolate(s, np.asarray(self.x_), np.asarray(self.y_), self.params_)
        if self.method == "sigmoid":
            return _sigmoid(self.x_[0] * s + self.y_[0])
        p = self.params_
        # ln q = -softplus(-s) and -ln(1 - q) = softplus(s), for q = sigmoid(s)
        return _sigmoid(-p["a"] * np.logaddexp(0.0, -s) + p["b"] * np.logaddexp(0.0, s) + p["c"])

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted state as JSON-ready data (plain numbers only)."""
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self.x_, "y": self.y_}
        if self.method == "sigmoid":
            return {"method": "sigmoid", "a": self.x_[0], "b": self.y_[0]}
        if self.method == "interpolated":
            return {"method": self.method, "x": self.x_, "y": self.y_, **self.params_}
        return {"method": self.method, **self.params_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        cal = cls(data["method"])
        cal.params_ = {}
        if data["method"] in ("isotonic", "interpolated"):
            cal.x_, cal.y_ = [float(v) for v in data["x"]], [float(v) for v in data["y"]]
            if data["method"] == "interpolated":
                cal.params_ = {"tail_slope": float(data["tail_slope"])}
        elif data["method"] == "sigmoid":
            cal.x_, cal.y_ = [float(data["a"])], [float(data["b"])]
        else:
            cal.x_, cal.y_ = [], []
            cal.params_ = {k: float(data[k]) for k in ("a", "b", "c")}
        return cal


_MIN_SLOPE = 1e-3
"""The interpolated map's tails rise at least this much in log-odds per unit of raw score,
so they stay strictly increasing when Platt's slope is zero or negative, or cannot be fitted
(one class only): no signal to follow."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype="float64")


def _platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return Platt's ``(a, b)``: unpenalised logistic regression of ``y`` on ``raw``."""
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _beta(raw: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Fit beta calibration; a negative coefficient is dropped and the fit redone.

    The features are ``ln q`` and ``-ln(1 - q)`` of ``q = sigmoid(raw)``; with both
    coefficients non-negative the map increases with ``raw`` (Kull et al., 2017).
    """
    feats = np.column_stack([-np.logaddexp(0.0, -raw), np.logaddexp(0.0, raw)])
    keep = [0, 1]
    coef = np.zeros(2)
    while True:
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(feats[:, keep], y)
        coef = np.zeros(2)
        coef[keep] = lr.coef_[0]
        negative = [j for j in keep if coef[j] < 0]
        if not negative or len(keep) == 1:
            break
        keep = [j for j in keep if j not in negative[:1]]
    coef = np.maximum(coef, 0.0)
    return {"a": float(coef[0]), "b": float(coef[1]), "c": float(lr.intercept_[0])}


def _block_centres(
    raw: np.ndarray, fitted: np.ndarray, softened: list[float], levels: np.ndarray
) -> tuple[list[float], list[float]]:
    """Return the centre (mean raw score) and softened level of each isotonic block.

    ``levels`` are the isotonic thresholds' raw values and ``softened`` the same after
    :func:`_soften_end_blocks`; each calibration row belongs to the block of its
    ``fitted`` value. Blocks that share a softened level are merged.
    """
    keys, first = np.unique(np.asarray(levels, dtype="float64"), return_index=True)
    nearest = np.abs(fitted[:, None] - keys[None, :]).argmin(axis=1)
    row_level = np.asarray(softened, dtype="float64")[first][nearest]
    uniq, inverse = np.unique(row_level, return_inverse=True)
    centres = np.bincount(inverse, weights=raw) / np.bincount(inverse)
    return [float(v) for v in centres], [float(v) for v in uniq]


def _interpolate(
    s: np.ndarray, centres: np.ndarray, levels: np.ndarray, params: dict[str, float]
) -> np.ndarray:
    """Apply the interpolated map: linear between centres, Platt-sloped log-odds beyond."""
    out = np.interp(s, centres, levels)
    slope = params["tail_slope"]
    for end, side in ((0, s < centres[0]), (-1, s > centres[-1])):
        logit = np.log(levels[end] / (1.0 - levels[end]))
        out[side] = _sigmoid(logit + slope * (s[side] - centres[end]))
    return out


def _soften_end_blocks(levels: np.ndarray, fitted: np.ndarray) -> list[float]:
    """Replace an end level of exactly 0 or 1 by its Jeffreys posterior mean.

    ``levels`` are the isotonic thresholds' values (non-decreasing), ``fitted`` the
    isotonic fit of every calibration row, whose rows at a level are that block's ``n``
    (its ``k`` follows from the level: 0 or ``n``). See :class:`Calibrator`.
    """
    out = levels.copy()
    if out.size and out[-1] == 1.0:
        n = int(np.count_nonzero(fitted == 1.0))
        below = out[out < 1.0]
        top = (n + 0.5) / (n + 1.0)
        out[out == 1.0] = max(top, float(below.max())) if below.size else top
    if out.size and out[0] == 0.0:
        n = int(np.count_nonzero(fitted == 0.0))
        above = out[out > 0.0]
        bottom = 0.5 / (n + 1.0)
        out[out == 0.0] = min(bottom, float(above.min())) if above.size else bottom
    return [float(v) for v in out]


def split_later(panel: pd.DataFrame, n_dates: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a panel into rows before and rows on its last ``n_dates`` as-of dates.

    Raises
    ------
    DataError
        When the panel has ``n_dates`` as-of dates or fewer (nothing would be left).
    """
    dates = np.sort(panel["as_of"].unique())
    if len(dates) <= n_dates:
        raise DataError(
            f"need more than {n_dates} as-of dates to hold out the last {n_dates},"
            f" the panel has {len(dates)}"
        )
    later = panel["as_of"] >= dates[-n_dates]
    return panel.loc[~later], panel.loc[later]


def lgb_params(cfg: BoosterConfig, random_state: int) -> dict[str, Any]:
    """LightGBM parameters shared by both models: deterministic for a seed."""
    return {
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_child_samples": cfg.min_child_samples,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": cfg.bagging_freq,
        "lambda_l2": cfg.lambda_l2,
        "seed": random_state,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": cfg.num_threads,
        "verbosity": -1,
    }


def _labels(panel: pd.DataFrame, what: str) -> np.ndarray:
    if TARGET not in panel.columns:
        raise DataError(f"{what} rows have no {TARGET!r} column; build them with labels")
    y = panel[TARGET]
    if y.isna().any():
        raise DataError(
            f"{what} rows include {int(y.isna().sum())} with an open label window"
            " (churned is NULL); keep only label-closed rows"
        )
    return y.to_numpy(dtype="float64")


class ChurnModel:
    """Calibrated LightGBM probability of churn within the label horizon.

    Parameters
    ----------
    config
        Booster, imbalance and calibration settings.
    random_state
        Seed of every random choice (bagging, feature subsampling).
    """

    def __init__(self, config: ChurnModelConfig | None = None, *, random_state: int = 0) -> None:
        self.config = config
        self.random_state = random_state

    def fit(
        self, train: pd.DataFrame, *, stop: pd.DataFrame, calibration: pd.DataFrame
    ) -> ChurnModel:
        """Fit the booster on ``train``, stop it early on ``stop``, calibrate on ``calibration``.

        Parameters
        ----------
        train
            Label-closed panel rows the booster learns from.
        stop
            Label-closed rows that choose the number of boosting rounds.
        calibration
            Label-closed rows that fit the calibration map. The three slices are
            disjoint; :class:`~churnrisk.models.slices.FitSlices` cuts them.

        Returns
        -------
        ChurnModel
            ``self``.

        Raises
        ------
        DataError
            When a label is missing or a slice holds one class only.
        """
        cfg = self.config or ChurnModelConfig()
        if len(calibration) == 0:
            raise DataError("the training, early-stopping and calibration slices must hold rows")
        fit_cal = calibration
        y_cal = _labels(fit_cal, "calibration")
        if y_cal.min() == y_cal.max():
            raise DataError("the calibration rows hold one class only; need churners and not")
        self.fit_booster(train, stop=stop)
        self.calibrator_ = Calibrator(cfg.calibration).fit(self.predict_raw(fit_cal), y_cal)
        self.train_as_of_ = (train["as_of"].min(), train["as_of"].max())
        self.calibration_as_of_ = (fit_cal["as_of"].min(), fit_cal["as_of"].max())
        return self

    def fit_booster(self, train: pd.DataFrame, *, stop: pd.DataFrame) -> float:
        """Train the booster on ``train``, early-stopped on ``stop``; no calibration.

        The first half of :meth:`fit`, also used alone by the candidates' search to
        compare settings.

        Returns
        -------
        float
            The stopping metric on ``stop`` at the chosen number of rounds.

        Raises
        ------
        DataError
            When a label is missing or a slice holds one class only.
        """
        cfg = self.config or ChurnModelConfig()
        if len(train) == 0 or len(stop) == 0:
            raise DataError("the training, early-stopping and calibration slices must hold rows")
        y = _labels(train, "training")
        y_stop = _labels(stop, "early-stopping")
        for what, arr in (("training", y), ("early-stopping", y_stop)):
            if arr.min() == arr.max():
                raise DataError(f"the {what} rows hold one class only; need churners and not")
        self.frame_ = FeatureFrame().fit(train)
        params = {**lgb_params(cfg, self.random_state), "objective": "binary"}
        params["metric"] = cfg.stopping_metric
        n_pos = float(y.sum())
        self.scale_pos_weight_ = (len(y) - n_pos) / n_pos if cfg.imbalance == "balanced" else 1.0
        params["scale_pos_weight"] = self.scale_pos_weight_
        cats = [self.frame_.feature_names_.index(c) for c in self.frame_.categorical_features]
        names = self.frame_.feature_names_
        dtrain = lgb.Dataset(
            self.frame_.codes(train),
            label=y,
            feature_name=names,
            categorical_feature=cats,
            free_raw_data=True,
        )
        dstop = lgb.Dataset(
            self.frame_.codes(stop), label=y_stop, reference=dtrain, categorical_feature=cats
        )
        self.booster_ = lgb.train(
            params,
            dtrain,
            num_boost_round=cfg.n_estimators,
            valid_sets=[dstop],
            valid_names=["stop"],
            callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or cfg.n_estimators)
        return float(self.booster_.best_score["stop"][params["metric"]])

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the uncalibrated scores in log-odds (imbalance-weighted booster)."""
        self._check_fitted()
        out = self.booster_.predict(
            self.frame_.codes(panel), num_iteration=self.best_iteration_, raw_score=True
        )
        return np.asarray(out, dtype="float64")

    def predict_uncalibrated(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the booster's own probabilities, before calibration."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.predict_raw(panel))), dtype="float64")

    def predict_proba(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the calibrated probability of churn within the horizon, per row."""
        self._check_fitted()
        return self.calibrator_.transform(self.predict_raw(panel))

    def contributions(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return per-row feature contributions (``pred_contrib``) in log-odds.

        Returns
        -------
        pandas.DataFrame
            One column per feature plus ``bias``, on ``panel``'s index; each row sums to
            :meth:`predict_raw` (the uncalibrated model's log-odds).
        """
        self._check_fitted()
        contrib = self.booster_.predict(
            self.frame_.codes(panel), num_iteration=self.best_iteration_, pred_contrib=True
        )
        cols = [*self.frame_.feature_names_, "bias"]
        return pd.DataFrame(np.asarray(contrib), columns=cols, index=panel.index)

    def feature_importance(self) -> pd.Series:
        """Return total gain per feature, highest first."""
        self._check_fitted()
        gain = self.booster_.feature_importance(
            importance_type="gain", iteration=self.best_iteration_
        )
        s = pd.Series(gain, index=self.frame_.feature_names_, name="gain", dtype="float64")
        return s.sort_values(ascending=False, kind="stable")

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this ChurnModel is not fitted yet; call fit first")

    def to_state(self) -> dict[str, Any]:
        """Return the fitted state as text and JSON-ready data (no pickle).

        The booster is LightGBM's own text format (``model_to_string``).
        """
        self._check_fitted()
        return {
            "booster": self.booster_.model_to_string(),
            "meta": {
                "config": (self.config or ChurnModelConfig()).model_dump(),
                "random_state": self.random_state,
                "frame": self.frame_.to_dict(),
                "calibrator": self.calibrator_.to_dict(),
                "best_iteration": self.best_iteration_,
                "scale_pos_weight": self.scale_pos_weight_,
                "train_as_of": [str(d.date()) for d in self.train_as_of_],
                "calibration_as_of": [str(d.date()) for d in self.calibration_as_of_],
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ChurnModel:
        """Rebuild a fitted model from :meth:`to_state` output."""
        meta = state["meta"]
        model = cls(ChurnModelConfig(**meta["config"]), random_state=meta["random_state"])
        model.booster_ = lgb.Booster(model_str=state["booster"])
        model.frame_ = FeatureFrame.from_dict(meta["frame"])
        model.calibrator_ = Calibrator.from_dict(meta["calibrator"])
        model.best_iteration_ = int(meta["best_iteration"])
        model.scale_pos_weight_ = float(meta["scale_pos_weight"])
        first, last = (pd.Timestamp(d) for d in meta["train_as_of"])
        model.train_as_of_ = (first, last)
        first, last = (pd.Timestamp(d) for d in meta["calibration_as_of"])
        model.calibration_as_of_ = (first, last)
        return model
