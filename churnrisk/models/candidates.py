"""Candidate churn models: one interface, fitted on the same fit slices, chosen on the backtest.

Every candidate is fitted on a :class:`~churnrisk.models.slices.FitSlices` (``train``,
``stop``, ``calibrate``) and offers the same methods: :meth:`~Candidate.predict_proba`
(calibrated probability of churn within the horizon), :meth:`~Candidate.predict_raw`
(uncalibrated log-odds), :meth:`~Candidate.contributions` (one column per feature plus
``bias``, each row summing to the raw score, which the drivers read),
:meth:`~Candidate.feature_importance`, and :meth:`~Candidate.to_state` /
:func:`candidate_from_state` (plain JSON and text, no pickle).

``logistic`` (:class:`LogisticCandidate`)
    The logistic baseline's regression (:class:`~churnrisk.models.baselines.
    LogisticBaseline`: the same preprocessing, L2 penalty ``C = 1`` and class weights),
    fitted on every fit-slice row, so its ranking is exactly the baseline's when the
    baseline is fitted on the same rows (the backtest does). Its calibration map is
    Platt's sigmoid, strictly increasing, so calibration keeps that ranking; the map is
    fitted on out-of-sample scores of every fit row, cross-fitted in 5 folds by account
    (scikit-learn's ``CalibratedClassifierCV(ensemble=False)`` scheme, grouped): a
    regression needs no early stopping, and one calibration date holds too few churners
    for a map that stays put from one backtest fold to the next. Contributions are
    exact: coefficient x standardised value, the missing-value indicator and one-hot
    columns summed into their feature.
``lightgbm`` (:class:`LightGBMCandidate`)
    :class:`~churnrisk.models.churn.ChurnModel` with its capacity sized to the data
    (:func:`sized_config`) and then a small seeded Optuna search (:func:`search_config`)
    on the fit slices: boosters trained on ``train``, compared on ``stop``.
``blend`` (:class:`BlendCandidate`)
    The mean of the LightGBM and logistic raw log-odds, each divided by its standard
    deviation on the ``stop`` rows, recalibrated on ``calibrate`` (its logistic part is
    fitted on ``train`` and ``stop`` only, so no calibration row was learned from).
    Contributions are the same weighted sum of the two models' contributions.

The backtest fits every candidate on each fold and chooses one
(:func:`choose_candidate`); :func:`fit_candidate` fits a candidate by name.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.base import clone  # type: ignore[import-untyped]
from sklearn.model_selection import GroupKFold, cross_val_predict  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from churnrisk.config import CandidatesConfig, ChurnModelConfig
from churnrisk.errors import ConfigError, DataError, NotFittedError
from churnrisk.models.baselines import LogisticBaseline
from churnrisk.models.churn import TARGET, Calibrator, ChurnModel
from churnrisk.models.frame import FeatureFrame
from churnrisk.models.slices import FitSlices

CANDIDATE_KINDS: tuple[str, ...] = ("logistic", "lightgbm", "blend")
"""Candidate names, simplest first: ties in the selection go to the earlier one."""


@runtime_checkable
class Candidate(Protocol):
    """What every fitted candidate churn model offers (see the module docstring)."""

    kind: ClassVar[str]
    frame_: FeatureFrame

    def predict_proba(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the calibrated probability of churn within the horizon, per row."""
        ...

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the uncalibrated score in log-odds, per row."""
        ...

    def contributions(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return per-feature contributions plus ``bias``, each summing to the raw score."""
        ...

    def feature_importance(self) -> pd.Series:
        """Return the importance per feature, highest first."""
        ...

    def to_state(self) -> dict[str, Any]:
        """``{"kind": ..., "booster": text or "", "meta": JSON-ready data}``."""
        ...


def _y(rows: pd.DataFrame) -> np.ndarray:
    return rows[TARGET].to_numpy(dtype="float64")


# --------------------------------------------------------------------------- LightGBM


@dataclass(frozen=True)
class Capacity:
    """The LightGBM capacity :func:`sized_config` derives, and the counts it read."""

    rows: int
    churners: int
    num_leaves: int
    min_child_samples: int
    n_estimators: int
    early_stopping_rounds: int


def capacity(rows: int, churners: int, config: ChurnModelConfig) -> Capacity:
    """Size LightGBM to ``rows`` training rows holding ``churners`` churners.

    The formulas (``n`` rows, ``k`` churners, ``config``'s values as upper bounds):

    * ``min_child_samples = clip(max(n / 200, 2 n / k), 5, config.min_child_samples)``:
      a leaf holds at least two churners at the base rate, and no more than 200 leaves'
      worth of rows are ever needed; never above the configured size, so a 1,200-row
      fold gets leaves of about 40 rows instead of a single leaf.
    * ``num_leaves = clip(round(k / 40), 3, config.num_leaves)``: about 40 churners per
      leaf before a tree may grow another.
    * ``n_estimators = clip(round(25 sqrt(k)), 100, config.n_estimators)`` and
      ``early_stopping_rounds = clip(n_estimators / 10, 10, config.early_stopping_rounds)``:
      few churners stop early and patiently enough; many keep the configured rounds.

    Raises
    ------
    DataError
        When there is no churner or no stayer.
    """
    if churners <= 0 or churners >= rows:
        raise DataError(
            f"the training rows hold {churners} churners out of {rows}; need churners and not"
        )
    leaf = round(max(rows / 200, 2 * rows / churners))
    leaf = int(min(max(leaf, 5), config.min_child_samples))
    leaves = int(min(max(round(churners / 40), 3), config.num_leaves))
    trees = int(min(max(round(25 * math.sqrt(churners)), 100), config.n_estimators))
    patience = int(min(max(trees // 10, 10), config.early_stopping_rounds))
    return Capacity(rows, churners, leaves, leaf, trees, patience)


def sized_config(slices: FitSlices, config: ChurnModelConfig) -> ChurnModelConfig:
    """Return ``config`` with its capacity sized to ``slices.train`` (:func:`capacity`)."""
    y = _y(slices.train)
    c = capacity(len(y), int(y.sum()), config)
    return config.model_copy(
        update={
            "num_leaves": c.num_leaves,
            "min_child_samples": c.min_child_samples,
            "n_estimators": c.n_estimators,
            "early_stopping_rounds": c.early_stopping_rounds,
        }
    )


@dataclass(frozen=True)
class SearchResult:
    """What one LightGBM search tried and chose.

    ``best_value`` is the stopping metric on the ``stop`` rows; ``seconds`` the wall time.
    """

    config: ChurnModelConfig
    trials: int
    best_value: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return the search as JSON-ready data."""
        return {
            "trials": self.trials,
            "best_value": self.best_value,
            "seconds": round(self.seconds, 3),
            "chosen": {
                k: getattr(self.config, k)
                for k in ("num_leaves", "min_child_samples", "lambda_l2", "feature_fraction")
            },
        }


def sample_accounts(rows: pd.DataFrame, max_rows: int, *, random_state: int) -> pd.DataFrame:
    """Return the rows of a seeded random subset of accounts, at most ``max_rows`` rows.

    All of an account's rows or none, so the sample keeps every account's history; the
    rows themselves when they are ``max_rows`` or fewer.
    """
    if len(rows) <= max_rows:
        return rows
    accounts = np.sort(rows["account_id"].astype(str).unique())
    order = np.random.default_rng(random_state).permutation(len(accounts))
    keep = accounts[order[: max(1, len(accounts) * max_rows // len(rows))]]
    return rows.loc[rows["account_id"].astype(str).isin(keep)]


def search_config(
    slices: FitSlices,
    base: ChurnModelConfig,
    *,
    trials: int,
    timeout_s: float,
    random_state: int,
    max_rows: int | None = None,
) -> SearchResult:
    """Search LightGBM's capacity and regularisation around ``base`` on the fit slices.

    Each trial trains a booster on ``slices.train``, early-stops it on ``slices.stop``
    and is scored by the stopping metric there (``base.stopping_metric``, ROC-AUC by
    default); ``slices.calibrate`` is never looked at. The first trial is ``base``
    itself, and the best trial replaces it only when it beats it by more than one
    standard error of the ROC-AUC on ``stop`` (:func:`auc_standard_error`): one stop
    date holds few churners, and a search that chases their noise does worse on the
    test dates (bench/RESULTS.md has the comparison).
    Optuna's TPE sampler is seeded with ``random_state`` and trials run one at a time,
    so the same slices give the same search (unless ``timeout_s`` cuts it short).

    Space: ``num_leaves`` in [2, max(3, 2 x base)], ``min_child_samples`` in
    [max(2, base / 4), 4 x base] (log scale), ``lambda_l2`` in [0.01, 100] (log scale),
    ``feature_fraction`` in [0.5, 1].

    With ``max_rows``, trials train on a seeded sample of the training accounts of at
    most that many rows (:func:`sample_accounts`), so the search's cost stops growing
    with the book; a trial's leaf size is its share of the full slice scaled to the
    sample (``min_child_samples x sample rows / train rows``), so the size it picks
    means the same on the full slice the final booster trains on.
    """
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    start = time.perf_counter()
    hi_leaves = max(3, 2 * base.num_leaves)
    lo_child, hi_child = max(2, base.min_child_samples // 4), max(4, 4 * base.min_child_samples)

    def suggest(trial: optuna.Trial | optuna.trial.FixedTrial) -> ChurnModelConfig:
        return base.model_copy(
            update={
                "num_leaves": trial.suggest_int("num_leaves", 2, hi_leaves),
                "min_child_samples": trial.suggest_int(
                    "min_child_samples", lo_child, hi_child, log=True
                ),
                "lambda_l2": trial.suggest_float("lambda_l2", 0.01, 100.0, log=True),
                "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            }
        )

    train = slices.train
    if max_rows is not None:
        train = sample_accounts(train, max_rows, random_state=random_state)
    share = len(train) / len(slices.train)

    def objective(trial: optuna.Trial) -> float:
        cfg = suggest(trial)
        scaled = max(1, round(cfg.min_child_samples * share))
        model = ChurnModel(
            cfg.model_copy(update={"min_child_samples": scaled}), random_state=random_state
        )
        return model.fit_booster(train, stop=slices.stop)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=random_state)
    )
    study.enqueue_trial(
        {
            "num_leaves": min(max(base.num_leaves, 2), hi_leaves),
            "min_child_samples": min(max(base.min_child_samples, lo_child), hi_child),
            "lambda_l2": min(max(base.lambda_l2, 0.01), 100.0),
            "feature_fraction": min(max(base.feature_fraction, 0.5), 1.0),
        }
    )
    study.optimize(objective, n_trials=trials, timeout=timeout_s, n_jobs=1)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    first = float(done[0].value) if done and done[0].value is not None else -math.inf
    y_stop = _y(slices.stop)
    margin = auc_standard_error(first, int(y_stop.sum()), int(len(y_stop) - y_stop.sum()))
    if float(study.best_value) > first + margin:
        best, value = suggest(optuna.trial.FixedTrial(study.best_params)), float(study.best_value)
    else:
        best, value = base, first
    return SearchResult(best, len(done), value, time.perf_counter() - start)


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Return the standard error of a ROC-AUC (Hanley and McNeil, 1982).

    ``se^2 = (A (1 - A) + (n1 - 1)(Q1 - A^2) + (n0 - 1)(Q2 - A^2)) / (n1 n0)`` with
    ``Q1 = A / (2 - A)``, ``Q2 = 2 A^2 / (1 + A)``, ``n1`` positives and ``n0``
    negatives. Worked example: A = 0.8, 50 and 950 rows: se = 0.0381.
    """
    if positives < 1 or negatives < 1 or not math.isfinite(auc):
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


class LightGBMCandidate:
    """Calibrated LightGBM, sized to the data and searched (see the module docstring).

    Parameters
    ----------
    config
        The booster settings; with ``candidates.size_to_data`` their capacity values are
        upper bounds (:func:`capacity`).
    candidates
        Sizing and search settings.
    random_state
        Seed of the booster and the search.
    """

    kind: ClassVar[str] = "lightgbm"

    def __init__(
        self,
        config: ChurnModelConfig | None = None,
        candidates: CandidatesConfig | None = None,
        *,
        random_state: int = 0,
    ) -> None:
        self.config = config
        self.candidates = candidates
        self.random_state = random_state

    def fit(self, slices: FitSlices) -> LightGBMCandidate:
        """Size, search and fit the booster; calibrate it on ``slices.calibrate``."""
        cfg = self.config or ChurnModelConfig()
        opts = self.candidates or CandidatesConfig()
        if opts.size_to_data:
            cfg = sized_config(slices, cfg)
        self.search_: SearchResult | None = None
        if opts.search_trials > 0:
            self.search_ = search_config(
                slices,
                cfg,
                trials=opts.search_trials,
                timeout_s=opts.search_timeout_s,
                random_state=self.random_state,
                max_rows=opts.search_max_rows,
            )
            cfg = self.search_.config
        self.model_ = ChurnModel(cfg, random_state=self.random_state).fit(
            slices.train, stop=slices.stop, calibration=slices.calibrate
        )
        self.frame_ = self.model_.frame_
        return self

    def _check(self) -> ChurnModel:
        if not hasattr(self, "model_"):
            raise NotFittedError("this LightGBMCandidate is not fitted yet; call fit first")
        return self.model_

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the booster's log-odds (imbalance-weighted, uncalibrated)."""
        return self._check().predict_raw(panel)

    def predict_proba(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the calibrated probability of churn, per row."""
        return self._check().predict_proba(panel)

    def contributions(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return TreeSHAP contributions plus ``bias``, summing to :meth:`predict_raw`."""
        return self._check().contributions(panel)

    def feature_importance(self) -> pd.Series:
        """Return total gain per feature, highest first."""
        return self._check().feature_importance()

    def to_state(self) -> dict[str, Any]:
        """Return the booster text and JSON metadata (the search included)."""
        state = self._check().to_state()
        search = self.search_.to_dict() if self.search_ is not None else None
        return {
            "kind": self.kind,
            "booster": state["booster"],
            "meta": {**state["meta"], "search": search},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LightGBMCandidate:
        """Rebuild a fitted candidate from :meth:`to_state` output."""
        model = ChurnModel.from_state(state)
        out = cls(model.config, random_state=model.random_state)
        out.model_, out.frame_, out.search_ = model, model.frame_, None
        return out


# --------------------------------------------------------------------------- logistic


class LinearForm:
    """A fitted :class:`LogisticBaseline`'s decision function as plain numbers.

    ``raw = intercept + sum over features of their terms``: a numeric feature ``f``
    contributes ``w_f (x_f - m_f) / s_f`` (``x_f`` imputed by the training median ``mu_f``
    when missing) plus ``w'_f (1[x_f missing] - m'_f) / s'_f`` when training rows had it
    missing; a categorical feature contributes the coefficient of its one-hot column
    (``"missing"`` for no value; a category unseen in training, none).
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    @classmethod
    def from_baseline(cls, base: LogisticBaseline) -> LinearForm:
        """Read the numbers out of a fitted baseline's scikit-learn pipeline."""
        prep = base.pipeline_.named_steps["prep"]
        logit = base.pipeline_.named_steps["logit"]
        coef = logit.coef_[0].astype("float64")
        cats = base.frame_.categorical_features
        nums = [n for n in base.frame_.feature_names_ if n not in cats]
        numeric: list[dict[str, Any]] = []
        pos = 0
        if nums:
            # columns out of the imputer: the features it kept (one with no value in
            # training is dropped), then a missing-value indicator per feature that had gaps
            num_pipe = prep.named_transformers_["num"]
            stats = np.asarray(num_pipe.named_steps["impute"].statistics_, dtype="float64")
            scale = num_pipe.named_steps["scale"]
            cols = [str(c) for c in num_pipe.named_steps["impute"].get_feature_names_out(nums)]
            by_feature: dict[str, dict[str, Any]] = {}
            for col, mean, sd in zip(cols, scale.mean_, scale.scale_, strict=True):
                name = col.removeprefix("missingindicator_")
                entry = by_feature.setdefault(name, {"name": name, "median": None})
                if col == name:
                    entry["median"] = float(stats[nums.index(name)])
                    entry["value"] = [float(coef[pos]), float(mean), float(sd)]
                else:
                    entry["missing"] = [float(coef[pos]), float(mean), float(sd)]
                pos += 1
            numeric = [by_feature[n] for n in nums if n in by_feature]
        categorical: list[dict[str, Any]] = []
        if cats:
            cat_pipe = prep.named_transformers_["cat"]
            kept = [str(c) for c in cat_pipe.named_steps["impute"].get_feature_names_out(cats)]
            onehot = cat_pipe.named_steps["onehot"]
            for name, levels in zip(kept, onehot.categories_, strict=True):
                weights = coef[pos : pos + len(levels)]
                pos += len(levels)
                categorical.append(
                    {
                        "name": name,
                        "levels": {str(v): float(w) for v, w in zip(levels, weights, strict=True)},
                    }
                )
        if pos != len(coef):
            raise DataError(
                f"the logistic regression has {len(coef)} coefficients, {pos} were read;"
                " its preprocessing changed: update LinearForm"
            )
        return cls(
            {
                "intercept": float(logit.intercept_[0]),
                "numeric": numeric,
                "categorical": categorical,
                "features": list(base.frame_.feature_names_),
            }
        )

    def terms(self, x: pd.DataFrame) -> pd.DataFrame:
        """Return each feature's term plus ``bias`` for a model matrix ``x``."""
        out = pd.DataFrame(0.0, index=x.index, columns=[*self.params["features"], "bias"])
        for f in self.params["numeric"]:
            v = x[f["name"]].to_numpy(dtype="float64", na_value=np.nan)
            miss = np.isnan(v)
            term = np.zeros(len(v))
            if "value" in f:
                w, m, s = f["value"]
                term += w * (np.where(miss, f["median"], v) - m) / s
            if "missing" in f:
                w, m, s = f["missing"]
                term += w * (miss.astype("float64") - m) / s
            out[f["name"]] = term
        for f in self.params["categorical"]:
            values = x[f["name"]].astype(object).where(x[f["name"]].notna(), "missing")
            out[f["name"]] = values.map(f["levels"]).fillna(0.0).astype("float64").to_numpy()
        out["bias"] = self.params["intercept"]
        return out


class _CalibratedScore:
    """The shared part of the logistic and blended candidates.

    A calibration map over their raw score, and an importance measured on the fit rows
    (mean absolute contribution).
    """

    calibrator_: Calibrator
    importance_: pd.Series

    def _check(self) -> None:
        raise NotImplementedError

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the raw score (log-odds before calibration)."""
        raise NotImplementedError

    def predict_proba(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the calibrated probability of churn, per row."""
        self._check()
        return self.calibrator_.transform(self.predict_raw(panel))

    def feature_importance(self) -> pd.Series:
        """Return the mean absolute contribution per feature on the fit rows, highest first."""
        self._check()
        return self.importance_


class LogisticCandidate(_CalibratedScore):
    """Regularised logistic regression, Platt-calibrated (see the module docstring).

    Parameters
    ----------
    random_state
        Seed of the solver (lbfgs is deterministic).
    """

    kind: ClassVar[str] = "logistic"

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, slices: FitSlices) -> LogisticCandidate:
        """Fit the regression on every slice row; calibrate on out-of-sample scores."""
        rows = slices.rows
        base = LogisticBaseline(random_state=self.random_state).fit(rows)
        self.frame_ = base.frame_
        self.form_ = LinearForm.from_baseline(base)
        # out-of-sample scores of every row, 5 folds by account (no account's rows score
        # one another): many more churners than one calibration date holds, so the map
        # is stable from one backtest fold to the next
        x = base._x(rows)
        y = rows[TARGET].to_numpy(dtype="int64")
        groups = rows["account_id"].astype(str).to_numpy()
        splits = min(5, len(np.unique(groups)))
        with threadpool_limits(limits=1, user_api="blas"):  # see LogisticBaseline.fit
            raw_oos = cross_val_predict(
                clone(base.pipeline_),
                x,
                y,
                groups=groups,
                cv=GroupKFold(n_splits=splits),
                method="decision_function",
            )
        self.calibrator_ = Calibrator("sigmoid").fit(np.asarray(raw_oos, dtype="float64"), y)
        self.importance_ = _mean_abs(self.contributions(rows))
        return self

    def _check(self) -> None:
        if not hasattr(self, "form_"):
            raise NotFittedError("this LogisticCandidate is not fitted yet; call fit first")

    def contributions(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return exact linear terms per feature plus ``bias``, summing to the raw score."""
        self._check()
        return self.form_.terms(self.frame_.transform(panel))

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the regression's log-odds (class-weighted, uncalibrated)."""
        return np.asarray(self.contributions(panel).sum(axis=1).to_numpy(), dtype="float64")

    def to_state(self) -> dict[str, Any]:
        """Return the coefficients, frame and calibration as JSON-ready data."""
        self._check()
        return {
            "kind": self.kind,
            "booster": "",
            "meta": {
                "random_state": self.random_state,
                "frame": self.frame_.to_dict(),
                "linear": self.form_.params,
                "calibrator": self.calibrator_.to_dict(),
                "importance": self.importance_.to_dict(),
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogisticCandidate:
        """Rebuild a fitted candidate from :meth:`to_state` output."""
        meta = state["meta"]
        out = cls(random_state=int(meta["random_state"]))
        out.frame_ = FeatureFrame.from_dict(meta["frame"])
        out.form_ = LinearForm(meta["linear"])
        out.calibrator_ = Calibrator.from_dict(meta["calibrator"])
        out.importance_ = pd.Series(meta["importance"], dtype="float64", name="importance")
        return out


def _mean_abs(contrib: pd.DataFrame) -> pd.Series:
    s = contrib.drop(columns="bias").abs().mean().astype("float64").rename("importance")
    return s.sort_values(ascending=False, kind="stable")


# --------------------------------------------------------------------------- blend


class BlendCandidate(_CalibratedScore):
    """Mean of the standardised LightGBM and logistic log-odds, recalibrated.

    ``raw = (raw_lgb / s_lgb + raw_log / s_log) / 2`` with ``s`` each score's standard
    deviation on the ``stop`` rows; contributions are the same combination of the two
    models' contributions, so they sum to ``raw``.

    Parameters
    ----------
    lightgbm
        A fitted LightGBM candidate (trained on ``train``, stopped on ``stop``).
    config
        Its ``calibration`` method calibrates the blend.
    random_state
        Seed of the logistic part.
    """

    kind: ClassVar[str] = "blend"

    def __init__(
        self,
        lightgbm: LightGBMCandidate,
        config: ChurnModelConfig | None = None,
        *,
        random_state: int = 0,
    ) -> None:
        self.lightgbm = lightgbm
        self.config = config
        self.random_state = random_state

    def fit(self, slices: FitSlices) -> BlendCandidate:
        """Fit the logistic part on ``train`` and ``stop``; weigh on ``stop``; calibrate."""
        held = pd.concat([slices.train, slices.stop])
        base = LogisticBaseline(random_state=self.random_state).fit(held)
        self.form_ = LinearForm.from_baseline(base)
        self.logit_frame_ = base.frame_
        self.frame_ = self.lightgbm.frame_
        sd_l = float(np.std(self.lightgbm.predict_raw(slices.stop)))
        sd_g = float(np.std(self._logit_raw(slices.stop)))
        if sd_l <= 0 or sd_g <= 0:
            raise DataError("a blended model scores every early-stopping row the same")
        self.weights_ = (0.5 / sd_l, 0.5 / sd_g)
        y_cal = _y(slices.calibrate)
        method = (self.config or ChurnModelConfig()).calibration
        self.calibrator_ = Calibrator(method).fit(self.predict_raw(slices.calibrate), y_cal)
        self.importance_ = _mean_abs(self.contributions(slices.rows))
        return self

    def _logit_raw(self, panel: pd.DataFrame) -> np.ndarray:
        terms = self.form_.terms(self.logit_frame_.transform(panel))
        return np.asarray(terms.sum(axis=1).to_numpy(), dtype="float64")

    def _check(self) -> None:
        if not hasattr(self, "weights_"):
            raise NotFittedError("this BlendCandidate is not fitted yet; call fit first")

    def contributions(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Return the weighted sum of both models' contributions (``bias`` included)."""
        self._check()
        a, b = self.weights_
        lgb_c = self.lightgbm.contributions(panel)
        log_c = self.form_.terms(self.logit_frame_.transform(panel))
        return (a * lgb_c + b * log_c.reindex(columns=lgb_c.columns, fill_value=0.0))[
            list(lgb_c.columns)
        ]

    def predict_raw(self, panel: pd.DataFrame) -> np.ndarray:
        """Return the blended log-odds."""
        self._check()
        a, b = self.weights_
        return a * self.lightgbm.predict_raw(panel) + b * self._logit_raw(panel)

    def to_state(self) -> dict[str, Any]:
        """Return the LightGBM text and the rest as JSON-ready data."""
        self._check()
        inner = self.lightgbm.to_state()
        return {
            "kind": self.kind,
            "booster": inner["booster"],
            "meta": {
                "lightgbm": inner["meta"],
                "random_state": self.random_state,
                "logit_frame": self.logit_frame_.to_dict(),
                "linear": self.form_.params,
                "weights": list(self.weights_),
                "calibrator": self.calibrator_.to_dict(),
                "importance": self.importance_.to_dict(),
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlendCandidate:
        """Rebuild a fitted blend from :meth:`to_state` output."""
        meta = state["meta"]
        lgb_part = LightGBMCandidate.from_state(
            {"booster": state["booster"], "meta": meta["lightgbm"]}
        )
        out = cls(lgb_part, lgb_part.model_.config, random_state=int(meta["random_state"]))
        out.frame_ = lgb_part.frame_
        out.logit_frame_ = FeatureFrame.from_dict(meta["logit_frame"])
        out.form_ = LinearForm(meta["linear"])
        a, b = meta["weights"]
        out.weights_ = (float(a), float(b))
        out.calibrator_ = Calibrator.from_dict(meta["calibrator"])
        out.importance_ = pd.Series(meta["importance"], dtype="float64", name="importance")
        return out


# --------------------------------------------------------------------------- fitting, choice


def fit_candidates(
    slices: FitSlices,
    *,
    config: ChurnModelConfig,
    candidates: CandidatesConfig,
    random_state: int,
    kinds: tuple[str, ...] | None = None,
) -> dict[str, Candidate]:
    """Fit the candidates named in ``kinds`` (default ``candidates.kinds``) on ``slices``.

    Returns them by name, in :data:`CANDIDATE_KINDS` order; the blend reuses the fitted
    LightGBM (fitting it when it is not itself a candidate).

    Raises
    ------
    ConfigError
        When no candidate is named.
    """
    names = [k for k in CANDIDATE_KINDS if k in (kinds or candidates.kinds)]
    if not names:
        raise ConfigError("no candidate churn model to fit; name one in candidates.kinds")
    out: dict[str, Candidate] = {}
    lgb_model: LightGBMCandidate | None = None
    if "lightgbm" in names or "blend" in names:
        lgb_model = LightGBMCandidate(config, candidates, random_state=random_state).fit(slices)
    for name in names:
        if name == "logistic":
            out[name] = LogisticCandidate(random_state=random_state).fit(slices)
        elif name == "lightgbm" and lgb_model is not None:
            out[name] = lgb_model
        elif name == "blend" and lgb_model is not None:
            out[name] = BlendCandidate(lgb_model, config, random_state=random_state).fit(slices)
    return out


def candidate_from_state(state: dict[str, Any]) -> Candidate:
    """Rebuild any fitted candidate from its :meth:`~Candidate.to_state` output.

    A state without ``kind`` is a LightGBM :class:`~churnrisk.models.churn.ChurnModel`'s
    (bundles written before candidates existed).
    """
    kind = state.get("kind", "lightgbm")
    if kind == "lightgbm":
        return LightGBMCandidate.from_state(state)
    if kind == "logistic":
        return LogisticCandidate.from_state(state)
    if kind == "blend":
        return BlendCandidate.from_state(state)
    raise DataError(f"unknown churn model kind {kind!r} in a saved bundle; retrain")


def distinct_probabilities(p: np.ndarray) -> int:
    """Return how many distinct probabilities ``p`` holds (to 9 decimals)."""
    return int(np.unique(np.round(np.asarray(p, dtype="float64"), 9)).size)


SELECTION_RULE = (
    "among the candidates whose pooled ROC-AUC and PR-AUC are both at least the logistic"
    " baseline's (the logistic candidate is the baseline, so it always is), the best on"
    " the gate metric; ties (within 1e-9) go to the simpler: logistic, then lightgbm, then"
    " blend; without a logistic candidate and none at least the baseline, the best of all"
    " (the gate will refuse it)"
)


def choose_candidate(
    metrics: dict[str, dict[str, float]], baseline: dict[str, float], *, metric: str
) -> tuple[str, bool]:
    """Choose a candidate from its pooled backtest metrics (:data:`SELECTION_RULE`).

    The logistic candidate is always eligible: the backtest's logistic baseline is this
    very model (:mod:`churnrisk.models.backtest`), so its metrics are the baseline's.

    Parameters
    ----------
    metrics
        Pooled metrics per candidate, in :data:`CANDIDATE_KINDS` order.
    baseline
        The logistic baseline's pooled metrics.
    metric
        The gate metric (``"pr_auc"`` or ``"roc_auc"``).

    Returns
    -------
    tuple of (str, bool)
        The chosen name, and whether it was eligible (``False``: the best of all).
    """

    def value(m: dict[str, float], key: str) -> float:
        v = m.get(key, float("nan"))
        return -math.inf if v is None or math.isnan(v) else float(v)

    def eligible(name: str) -> bool:
        m = metrics[name]
        return name == "logistic" or all(
            value(m, k) >= value(baseline, k) - 1e-12 for k in ("roc_auc", "pr_auc")
        )

    pool = [n for n in metrics if eligible(n)]
    best: str | None = None
    for name in pool or list(metrics):
        if best is None or value(metrics[name], metric) > value(metrics[best], metric) + 1e-9:
            best = name
    if best is None:
        raise ConfigError("no candidate churn model was backtested")
    return best, bool(pool)
