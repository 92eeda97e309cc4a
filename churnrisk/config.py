"""Run configuration: frozen pydantic models with defaults in code and a TOML override.

Only entry points (the CLI, the API lifespan) read files or the environment; stage
functions receive these objects as arguments.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnrisk.errors import ConfigError


class LabelConfig(BaseModel):
    """How churn and revenue labels are defined.

    Attributes
    ----------
    horizon_days
        Length of the label window ``[as_of, as_of + horizon_days)`` in days.
    grace_days
        An account churns on the day its MRR falls to zero and stays zero for at least
        this many days; a return within the grace period is not churn.
    revenue_months
        Length of the revenue (CLV target) window in months of 30 days.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: int = Field(default=90, ge=1, le=730)
    grace_days: int = Field(default=30, ge=0, le=365)
    revenue_months: int = Field(default=12, ge=1, le=60)


CalibrationMethod = Literal["isotonic", "interpolated", "sigmoid", "beta"]
"""The maps from raw scores to probabilities (:class:`churnrisk.models.Calibrator`)."""


Rate = Annotated[float, Field(gt=0, le=1)]
"""A learning rate or a sampling fraction: in (0, 1]."""
Leaves = Annotated[int, Field(ge=2, le=4096)]
"""LightGBM's ``num_leaves``."""
AtLeastOne = Annotated[int, Field(ge=1)]


class BoosterConfig(BaseModel):
    """The LightGBM settings both models share; each model sets its own defaults.

    Attributes
    ----------
    learning_rate, num_leaves, min_child_samples, n_estimators, early_stopping_rounds
        LightGBM parameters (``n_estimators`` is the most boosting rounds; early stopping
        on a later slice picks the number used).
    feature_fraction, bagging_fraction, bagging_freq, lambda_l2
        LightGBM column and row subsampling and L2 regularisation.
    num_threads
        LightGBM threads; fixed, because results are reproducible only for a fixed count.
        Default 1: on a busy machine more threads than idle cores make LightGBM's
        OpenMP loops spin and run many times slower (bench/RESULTS.md); raise it where
        cores are idle.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: Rate = 0.05
    num_leaves: Leaves = 31
    min_child_samples: AtLeastOne = 20
    n_estimators: AtLeastOne = 500
    early_stopping_rounds: AtLeastOne = 50
    feature_fraction: Rate = 0.8
    bagging_fraction: Rate = 0.8
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    num_threads: AtLeastOne = 1


class ChurnModelConfig(BoosterConfig):
    """LightGBM churn classifier and its calibration (shared settings: BoosterConfig).

    Attributes
    ----------
    learning_rate, num_leaves, min_child_samples
        Small trees by default (7 leaves, at least 200 rows a leaf; with
        ``candidates.size_to_data`` these are upper bounds): churn signals are mostly
        additive trends, which shallow trees capture without fitting noise
        (bench/RESULTS.md, Models, compares them with larger trees).
    imbalance
        ``"balanced"`` sets ``scale_pos_weight = negatives / positives`` of the training
        rows so that the rare churners weigh as much as the rest; ``"none"`` leaves the
        rows unweighted. Either way the calibration step maps scores back to rates.
    calibration
        The map from raw scores to probabilities, fitted on the calibration slice, never
        on training rows (:class:`churnrisk.models.Calibrator`):
        ``"beta"`` (beta calibration, the default), ``"sigmoid"`` (Platt scaling on the
        log-odds), ``"interpolated"`` (isotonic regression interpolated between its
        block centres) or ``"isotonic"`` (isotonic step map). The first three are
        strictly increasing, so they keep every difference the booster ranks; the step
        map gives each of its blocks one probability, which ties most accounts. Beta
        calibration holds Platt scaling as a special case and also fits a curved
        relation between log-odds and churn rate, which data nobody here wrote may have
        (bench/RESULTS.md, "Calibration maps", has the measurement behind the default).
    stopping_metric
        What early stopping watches on the stop slice: ``"auc"`` (default) or
        ``"average_precision"`` rank, so they are not misled by the imbalance weighting;
        ``"binary_logloss"`` suits ``imbalance="none"`` only (with weighting, the inflated
        raw probabilities make log loss worsen from the first tree on).
    holdout_dates
        How many of the latest label-closed as-of dates a time cut holds out of
        training at the least: the earlier half of them for early stopping, the later
        half for calibration (at least 2).
    """

    learning_rate: Rate = 0.05
    num_leaves: Leaves = 7
    min_child_samples: AtLeastOne = 200
    imbalance: Literal["balanced", "none"] = "balanced"
    calibration: CalibrationMethod = "beta"
    stopping_metric: Literal["auc", "average_precision", "binary_logloss"] = "auc"
    holdout_dates: int = Field(default=2, ge=2)


class CandidatesConfig(BaseModel):
    """Which churn models compete on the backtest, and the LightGBM search.

    Attributes
    ----------
    kinds
        The candidates fitted on every fold (:mod:`churnrisk.models.candidates`):
        ``"logistic"`` (regularised logistic regression, Platt-calibrated),
        ``"lightgbm"`` (LightGBM sized to the data, then searched) and ``"blend"`` (both
        scores averaged, recalibrated). The backtest chooses one of them.
    size_to_data
        Size LightGBM's leaves, leaf count and rounds from the training rows and churners
        (:func:`~churnrisk.models.candidates.sized_config`) instead of taking
        ``[churn]``'s values as they are.
    search_trials
        Optuna trials of the LightGBM search on the fit slices (0: no search).
    search_timeout_s
        Wall-clock bound of one search, in seconds: a safety net (a search cut short by
        it depends on the machine's speed, so keep it well above the trials' time).
    search_max_rows
        The search's trials train on a seeded sample of the training accounts of at most
        this many rows (leaf sizes scaled to it), so its cost stops growing with the
        book; the chosen settings then train on every row.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: tuple[Literal["logistic", "lightgbm", "blend"], ...] = ("logistic", "lightgbm", "blend")
    size_to_data: bool = True
    search_trials: int = Field(default=8, ge=0, le=200)
    search_timeout_s: float = Field(default=120.0, gt=0)
    search_max_rows: int = Field(default=40_000, ge=1_000)


class ClvModelConfig(BoosterConfig):
    """LightGBM revenue regressor and the lifetime-value settings (shared: BoosterConfig).

    Attributes
    ----------
    objective
        ``"mrr_offset_l1"`` (default): absolute error, boosted from the "MRR x months"
        baseline as the initial score, so the trees learn how an account's revenue will
        depart from its current run rate; it predicts the median, which is what MAE
        rewards. ``"tweedie"`` (a point mass at zero plus a skewed positive part; it
        predicts the mean) or ``"regression"`` (squared error). bench/RESULTS.md
        (Models) compares the three on the CLV folds.
    tweedie_variance_power
        Tweedie power in (1, 2): near 1 Poisson-like, near 2 gamma-like.
    learning_rate, num_leaves, min_child_samples
        15 leaves at rate 0.1 by default: as accurate on the CLV folds as 31 leaves at
        0.05, which ran into the tree cap and made CLV the slower half of batch scoring.
    valid_dates
        How many of the latest revenue-labelled as-of dates a final model holds out for
        early stopping.
    margin
        Gross margin applied to revenue in lifetime CLV (0-1).
    annual_discount_rate
        Yearly discount rate of lifetime CLV (> 0, so that the sum is finite).
    """

    objective: Literal["mrr_offset_l1", "tweedie", "regression"] = "mrr_offset_l1"
    tweedie_variance_power: float = Field(default=1.5, gt=1, lt=2)
    learning_rate: Rate = 0.1
    num_leaves: Leaves = 15
    min_child_samples: AtLeastOne = 50
    valid_dates: int = Field(default=1, ge=1)
    margin: float = Field(default=0.8, gt=0, le=1)
    annual_discount_rate: float = Field(default=0.10, gt=0, le=1)


class BacktestConfig(BaseModel):
    """Rolling-origin backtest and the training plan (:mod:`churnrisk.models.plan`).

    Attributes
    ----------
    folds
        Most folds: the plan keeps as many as the data supports, up to this many; their
        test blocks are the latest label-closed as-of dates.
    test_months
        Months of as-of dates tested in each fold (one date on a monthly grid, about
        four on a weekly one).
    capacity_k
        Accounts customer success can contact per as-of date: the K of the top-K metrics.
    min_train_dates
        Fewest label-closed as-of dates a fold must have before its first test date
        (training plus the early-stopping and calibration slices).
    grid
        The as-of grid of the training panel: ``"auto"`` picks, from the span of the
        data and the label gap, the grid and warm-up that give the most folds (ties: the
        longest warm-up, then the coarsest grid); or ``"monthly"``, ``"semimonthly"``,
        ``"weekly"``.
    warmup_days
        Days from the start of observation to the first as-of date, so that the
        features' windows are full (90 days covers every window of the registry).
    min_warmup_days
        How far ``"auto"`` may shrink the warm-up on a short history, in steps of 30
        days; features with longer windows are then truncated on the first as-of dates.
    min_slice_churners
        Fewest distinct churned accounts in each fit slice (train, stop, calibrate):
        with fewer, one churner moves the slice's ROC-AUC, which early stopping
        watches, by more than a tenth, and the calibration map has fewer steps than that.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    folds: int = Field(default=3, ge=1)
    test_months: int = Field(default=1, ge=1)
    capacity_k: int = Field(default=100, ge=1)
    min_train_dates: int = Field(default=3, ge=1)
    grid: Literal["auto", "monthly", "semimonthly", "weekly"] = "auto"
    warmup_days: int = Field(default=90, ge=0, le=365)
    min_warmup_days: int = Field(default=30, ge=0, le=365)
    min_slice_churners: int = Field(default=10, ge=1)


class GateConfig(BaseModel):
    """Promotion gate: a challenger takes the ``champion`` alias only when not worse.

    Attributes
    ----------
    metric
        The backtest churn metric compared first (higher is better).
    tolerance
        How far below the champion, and below the logistic baseline, the challenger may
        fall on ``metric`` and on ROC-AUC.
    min_distinct
        A model with fewer distinct probabilities than this on the backtest's pooled test
        rows is degenerate (one leaf, a constant or a handful of scores): it is never
        promoted, not even with ``--force``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Literal["pr_auc", "roc_auc"] = "pr_auc"
    tolerance: float = Field(default=0.005, ge=0, le=1)
    min_distinct: int = Field(default=10, ge=2)


class ScoringConfig(BaseModel):
    """How the scoring job labels and explains each account's score.

    Attributes
    ----------
    tiers
        Risk tiers as ``{name: lowest churn probability}``: an account takes the first
        tier, from the highest threshold down, whose threshold its probability reaches;
        below every threshold it is ``low_tier``. The defaults put an account in
        ``high`` at 25% or more (about four times the 90-day churn rate of the
        generated worlds) and in ``medium`` from 10%.
    low_tier
        The name of the tier below every threshold.
    top_drivers
        Drivers kept per account in each direction (raising and lowering risk).
    change_drivers
        Features kept per account that moved its score most since its previous run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: dict[str, float] = Field(default_factory=lambda: {"high": 0.25, "medium": 0.10})
    low_tier: str = "low"
    top_drivers: int = Field(default=3, ge=1, le=20)
    change_drivers: int = Field(default=3, ge=1, le=20)

    @field_validator("tiers")
    @classmethod
    def _check_tiers(cls, tiers: dict[str, float]) -> dict[str, float]:
        if not tiers:
            raise ValueError("give at least one tier threshold")
        for name, threshold in tiers.items():
            if not 0 < threshold <= 1:
                raise ValueError(f"tier {name!r}: threshold {threshold} is not in (0, 1]")
        if len(set(tiers.values())) != len(tiers):
            raise ValueError("two tiers share a threshold")
        return dict(sorted(tiers.items(), key=lambda kv: -kv[1]))

    def tier_of(self, probability: float) -> str:
        """Return the tier of one churn probability."""
        for name, threshold in self.tiers.items():
            if probability >= threshold:
                return name
        return self.low_tier

    @property
    def tier_names(self) -> list[str]:
        """Every tier name, riskiest first."""
        return [*self.tiers, self.low_tier]


class RunConfig(BaseModel):
    """The whole resolved configuration of a run; logged with every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: LabelConfig = LabelConfig()
    churn: ChurnModelConfig = ChurnModelConfig()
    candidates: CandidatesConfig = CandidatesConfig()
    clv: ClvModelConfig = ClvModelConfig()
    backtest: BacktestConfig = BacktestConfig()
    gate: GateConfig = GateConfig()
    scoring: ScoringConfig = ScoringConfig()
    seed: int = Field(default=0, ge=0)


def load_run_config(path: Path | None) -> RunConfig:
    """Read a run configuration from a TOML file, or return the defaults.

    Parameters
    ----------
    path
        A TOML file whose tables (``[labels]``, ``[churn]``, ``[clv]``, ``[backtest]``,
        ``[gate]``, ``[scoring]``) and ``seed`` override the defaults,
        or ``None`` for the defaults.

    Raises
    ------
    ConfigError
        When the file cannot be read or holds an unknown key or a value out of range.
    """
    if path is None:
        return RunConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read configuration {path}: {err}") from err
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"configuration {path}: {where}: {first['msg']}"
            " (see the README's configuration section)"
        ) from err
