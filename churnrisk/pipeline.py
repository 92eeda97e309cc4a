"""The modelling workflow end to end: panel, backtest, training, tracking and the gate.

The CLI and the notebook call these functions; neither defines a feature, a label, a
split or a parameter of its own. The other workflows (scoring runs, the demo, the store,
serving) are in :mod:`churnrisk.jobs`. Tracking is reached only through a
:class:`churnrisk.tracking.Tracker` passed in, so this module never imports mlflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.dataset import Dataset, observation_end, observation_start
from churnrisk.errors import ConfigError, DataError
from churnrisk.features import build_features, feature_names, learn_vocabulary, panel_features
from churnrisk.models.audit import check_leaks
from churnrisk.models.backtest import BacktestResult, backtest
from churnrisk.models.bundle import ChurnRiskModels, can_train_clv, train_models
from churnrisk.models.evaluation import calibration_figure, gains_figure, importance_figure
from churnrisk.models.explain import Driver, context, drivers
from churnrisk.models.plan import Grid, plan_grid

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from churnrisk.tracking import GateDecision, ModelVersions, Tracker

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    """Ignore a progress message."""


def training_grid(ds: Dataset, config: RunConfig) -> Grid:
    """Return the as-of grid of the training panel of ``ds``.

    Chosen from the span of observation and the label gap by
    :func:`~churnrisk.models.plan.plan_grid`: the grid and warm-up that allow the most
    backtest folds (monthly with a 90-day warm-up on a long history).

    Raises
    ------
    DataError
        When the data covers too little time for a single as-of date.
    """
    try:
        return plan_grid(observation_start(ds), observation_end(ds), config.labels, config.backtest)
    except DataError as err:
        raise DataError(f"{ds.source}: {err}") from err


def clv_shortfall(ds: Dataset, panel: pd.DataFrame, config: RunConfig) -> str | None:
    """Say in one line why no revenue model can be trained on ``panel``, or ``None``.

    The revenue label of an as-of date closes ``revenue_months`` months after it, and the
    revenue model needs ``valid_dates + 1`` such dates after the feature warm-up:
    ``ceil(warmup_days / month) + valid_dates + revenue_months`` months of history.
    """
    if can_train_clv(panel, config):
        return None
    month = 365 / 12
    n = config.labels.revenue_months
    need = math.ceil(config.backtest.warmup_days / month) + config.clv.valid_dates + n
    have = round((observation_end(ds) - observation_start(ds)).days / month)
    return (
        f"CLV model not trained: the {n}-month revenue label needs {need} months of"
        f" history, the data has {have}; revenue_12m is MRR x expected months retained"
    )


def training_panel(ds: Dataset, config: RunConfig, grid: Grid | None = None) -> pd.DataFrame:
    """Build the labelled feature panel of ``ds`` on its grid (default: :func:`training_grid`).

    Every date of the grid, up to the end of observation: later dates carry no label yet
    but feed nothing, as the backtest and training use labelled rows only.

    The panel carries the vocabulary features (:mod:`churnrisk.features.vocabulary`) of a
    vocabulary learned from the rows before the panel's first as-of date: every
    backtest fold, and every test date, comes on or after it, so no period the model is
    tested on chose the features. The vocabulary is left in ``panel.attrs["vocabulary"]``
    for :func:`~churnrisk.models.bundle.train_models` to store with the models.
    """
    dates = (grid or training_grid(ds, config)).dates
    vocabulary = learn_vocabulary(ds, before=min(dates))
    panel = build_features(ds, dates, labels=config.labels, features=panel_features(vocabulary))
    panel.attrs["vocabulary"] = vocabulary
    return panel


def backtest_figures(
    result: BacktestResult, models: ChurnRiskModels | None = None
) -> dict[str, Figure]:
    """Draw a backtest: calibration, cumulative gains and (with models) importance.

    Built from the pooled test rows, so every curve is out of time.
    """
    preds = result.predictions
    figures: dict[str, Figure] = {}
    labelled = preds.loc[preds["churned"].notna()]
    if len(labelled) and labelled["churned"].nunique() == 2:
        y = labelled["churned"].astype(int).to_numpy()
        figures["calibration"] = calibration_figure(
            y, {"calibrated": labelled["model"], "uncalibrated": labelled["model_raw"]}
        )
        figures["gains"] = gains_figure(
            y,
            {name: labelled[name] for name in ("model", "logistic", "usage_drop")},
        )
    if models is not None:
        figures["importance"] = importance_figure(models.churn.feature_importance())
    return figures


def audited_backtest(
    ds: Dataset,
    config: RunConfig,
    *,
    allow_leaks: Iterable[str],
    step: Step,
    building: str,
) -> tuple[Grid, pd.DataFrame, BacktestResult]:
    """Build the labelled panel on the plan's grid, audit it for leaks and backtest it.

    Steps 1 and 2 of :func:`train`, shared with :func:`backtest_run`; ``building`` is the
    first step's message. Returns the grid, the panel and the backtest.
    """
    step(building)
    grid = training_grid(ds, config)
    panel = training_panel(ds, config, grid)
    step("auditing the features for leaks")
    check_leaks(panel, allow=allow_leaks)
    step("backtesting the model and the baselines")
    return grid, panel, backtest(panel, config, grid=grid)


@dataclass(frozen=True)
class BacktestOutcome:
    """What ``churnrisk backtest`` did: the backtest and the MLflow run it is recorded in."""

    backtest: BacktestResult
    run_id: str


def backtest_run(
    ds: Dataset,
    config: RunConfig,
    *,
    tracker: Tracker,
    fingerprint: str,
    allow_leaks: Iterable[str] = (),
    step: Step = _quiet,
) -> BacktestOutcome:
    """Backtest one configuration on a data set beside the baselines, and record the run.

    The panel, leak audit and backtest of :func:`train` (steps 1 and 2), without
    training or registering a model.

    Parameters
    ----------
    ds
        The validated data set.
    config
        The resolved run configuration.
    tracker
        Where the run is recorded.
    fingerprint
        Fingerprint of the input data (:func:`churnrisk.tracking.fingerprint`).
    allow_leaks
        Features the leak audit lets through (the user checked them).
    step
        Called with a short message as each step starts (the CLI shows them).
    """
    _, panel, result = audited_backtest(
        ds, config, allow_leaks=allow_leaks, step=step, building="building the panel"
    )
    dates = sorted(pd.to_datetime(panel["as_of"]).dt.date.unique())
    run_id = tracker.log_backtest(
        result.to_dict(),
        config=config,
        fingerprint=fingerprint,
        window=(dates[0], dates[-1]),
        feature_names=list(feature_names()),
        figures=backtest_figures(result),
    )
    return BacktestOutcome(backtest=result, run_id=run_id)


@dataclass(frozen=True)
class TrainOutcome:
    """What ``churnrisk train`` did.

    Attributes
    ----------
    models
        The trained bundle.
    backtest
        The backtest of its configuration on the same panel.
    versions
        Its registered versions and run.
    decision
        The promotion gate's decision.
    panel_rows, panel_dates
        Size and first/last as-of date of the training panel.
    clv_note
        Why no CLV model was trained (:func:`clv_shortfall`), or ``None``.
    """

    models: ChurnRiskModels
    backtest: BacktestResult
    versions: ModelVersions
    decision: GateDecision
    panel_rows: int
    panel_dates: tuple[date, date]
    clv_note: str | None = None


def train(
    ds: Dataset,
    config: RunConfig,
    *,
    tracker: Tracker,
    fingerprint: str,
    force: bool = False,
    allow_leaks: Iterable[str] = (),
    step: Step = _quiet,
) -> TrainOutcome:
    """Backtest, train, record and gate one configuration on a data set.

    1. Build the labelled panel on the as-of grid the plan derives from the data
       (:func:`training_grid`), and audit it for leaks
       (:func:`~churnrisk.models.audit.check_leaks`): a feature that alone separates
       churners from stayers stops the run.
    2. Backtest the configuration on it (rolling origin, one label horizon of gap; the
       folds and fit slices from :mod:`churnrisk.models.plan`).
    3. Train the churn and CLV models on every labelled row. When the revenue label
       has closed on too few as-of dates, only the churn model is trained, revenue comes
       from the survival view and ``clv_note`` says why (:func:`clv_shortfall`).
    4. Record the run in MLflow and register the models.
    5. Gate: the new versions become ``champion`` only when they are not worse than the
       champion on the same backtest. When the champion was backtested on other data or
       with other backtest settings, its configuration is backtested again here, on
       this panel with these settings, so the two are compared like for like.

    Parameters
    ----------
    ds
        The validated data set.
    config
        The resolved run configuration.
    tracker
        Where runs and models are recorded.
    fingerprint
        Fingerprint of the input data (:func:`churnrisk.tracking.fingerprint`).
    force
        Promote whatever the gate says.
    allow_leaks
        Features the leak audit lets through (the user checked them).
    step
        Called with a short message as each step starts (the CLI shows them).
    """
    from churnrisk.tracking import backtest_key, flatten_metrics

    grid, panel, result = audited_backtest(
        ds, config, allow_leaks=allow_leaks, step=step, building="building the training panel"
    )
    note = clv_shortfall(ds, panel, config)
    step("training the churn model" if note else "training the churn and CLV models")
    models = train_models(
        panel, config, backtest=result.to_dict(), vocabulary=panel.attrs.get("vocabulary")
    )
    step("recording the run in MLflow")
    versions = tracker.log_training(
        models,
        panel=panel,
        fingerprint=fingerprint,
        backtest=result.to_dict(),
        figures=backtest_figures(result, models),
    )
    champion = tracker.champion_info()
    champion_metrics = None
    if champion is not None and (
        champion.fingerprint != fingerprint or champion.backtest_key != backtest_key(config)
    ):
        step(f"backtesting champion version {champion.versions.churn} on the same data")
        theirs = RunConfig.model_validate(champion.config).model_copy(
            update={"labels": config.labels, "backtest": config.backtest}
        )
        champion_metrics = flatten_metrics(backtest(panel, theirs, grid=grid).to_dict())
    decision = tracker.promote(
        versions,
        result.to_dict(),
        gate=config.gate,
        force=force,
        champion_metrics=champion_metrics,
    )
    dates = pd.to_datetime(panel["as_of"])
    return TrainOutcome(
        models=models,
        backtest=result,
        versions=versions,
        decision=decision,
        panel_rows=len(panel),
        panel_dates=(dates.min().date(), dates.max().date()),
        clv_note=note,
    )


def explain_account(
    models: ChurnRiskModels,
    ds: Dataset,
    account_id: str,
    *,
    as_of: date | None = None,
    top: int = 5,
) -> tuple[pd.Series, list[Driver], list[Driver]]:
    """Score one account as of a date; return its score, its drivers and its context.

    Parameters
    ----------
    models
        The bundle to explain (usually the champion).
    ds
        The validated data set.
    account_id
        The account.
    as_of
        The as-of date (default: the end of observation, i.e. "today" for this data).
    top
        How many drivers in each direction.

    Returns
    -------
    score, drivers, context
        The bundle's prediction row with ``renewal_date`` and ``days_to_renewal`` added
        (:func:`churnrisk.scoring.renewal_timing`); the top drivers among the actionable
        features, risers first (:func:`churnrisk.models.drivers`); and the context
        features apart, largest push first (:func:`churnrisk.models.explain.context`).

    Raises
    ------
    ConfigError
        When the account is not active on the day before ``as_of`` (no score).
    """
    from churnrisk.scoring import renewal_timing

    day = as_of or observation_end(ds)
    panel = build_features(ds, [day], features=panel_features(models.vocabulary))
    row = panel.loc[panel["account_id"] == account_id]
    if row.empty:
        raise ConfigError(
            f"account {account_id!r} has no score as of {day}: it is unknown, not yet "
            "created, or not paying on the day before; try another --as-of"
        )
    score = models.predict(row).iloc[0].copy()
    renewal_date, days = renewal_timing(row)
    score["renewal_date"], score["days_to_renewal"] = renewal_date[0], days[0]
    found = drivers(models.churn, row, top=top, direction="both")[0]
    return score, found, context(models.churn, row)[0]
