"""Training, backtesting and explaining on a data source, with the stores of the settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnrisk.config import RunConfig
from churnrisk.jobs.progress import QUIET, Progress
from churnrisk.jobs.sources import load_data
from churnrisk.jobs.stores import open_tracker
from churnrisk.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from churnrisk.dataset import Dataset
    from churnrisk.models.explain import Driver
    from churnrisk.pipeline import BacktestOutcome, Step, TrainOutcome


@dataclass(frozen=True)
class Trained:
    """A training run (:func:`churnrisk.pipeline.train`) and the tracking store it is in."""

    outcome: TrainOutcome
    tracking_uri: str


def train(
    data: Path,
    settings: Settings,
    config: RunConfig,
    *,
    force: bool = False,
    allow_leaks: Iterable[str] = (),
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> Trained:
    """Validate ``data``, then backtest, train, record and gate (:func:`churnrisk.pipeline.train`).

    The run goes to the tracking store of ``settings``; ``force`` and ``allow_leaks``
    are those of :func:`~churnrisk.pipeline.train`.
    """
    from churnrisk.tracking import fingerprint

    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    return train_dataset(
        ds,
        settings,
        config,
        fingerprint=fingerprint(data),
        force=force,
        allow_leaks=allow_leaks,
        step=progress.step,
    )


def train_dataset(
    ds: Dataset,
    settings: Settings,
    config: RunConfig,
    *,
    fingerprint: str,
    force: bool = False,
    allow_leaks: Iterable[str] = (),
    step: Step = QUIET.step,
) -> Trained:
    """Run :func:`churnrisk.pipeline.train` on a validated data set, recording in ``settings``."""
    from churnrisk.pipeline import train as train_models

    tracker = open_tracker(settings)
    outcome = train_models(
        ds,
        config,
        tracker=tracker,
        fingerprint=fingerprint,
        force=force,
        allow_leaks=allow_leaks,
        step=step,
    )
    return Trained(outcome, tracker.uri)


@dataclass(frozen=True)
class Backtested:
    """A recorded backtest (:func:`churnrisk.pipeline.backtest_run`) and its tracking store."""

    outcome: BacktestOutcome
    tracking_uri: str


def backtest(
    data: Path,
    settings: Settings,
    config: RunConfig,
    *,
    allow_leaks: Iterable[str] = (),
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> Backtested:
    """Validate ``data``, backtest ``config`` on it and record the run (no model is trained)."""
    from churnrisk.pipeline import backtest_run
    from churnrisk.tracking import fingerprint

    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    tracker = open_tracker(settings)
    outcome = backtest_run(
        ds,
        config,
        tracker=tracker,
        fingerprint=fingerprint(data),
        allow_leaks=allow_leaks,
        step=progress.step,
    )
    return Backtested(outcome, tracker.uri)


@dataclass(frozen=True)
class Explained:
    """One account's score by the champion and the drivers behind it.

    Attributes
    ----------
    score, drivers, context
        As :func:`churnrisk.pipeline.explain_account` returns them.
    overall
        The champion's global importance
        (:func:`churnrisk.models.explain.global_importance`), strongest first.
    """

    score: pd.Series[Any]
    drivers: list[Driver]
    context: list[Driver]
    overall: pd.DataFrame


def explain(
    data: Path,
    settings: Settings,
    account_id: str,
    *,
    as_of: date | None = None,
    top: int = 5,
    progress: Progress = QUIET,
) -> Explained:
    """Validate ``data`` and explain one account's score by the champion of ``settings``.

    Raises
    ------
    ConfigError
        Without a champion, or when the account has no score as of ``as_of``.
    """
    from churnrisk.models.explain import global_importance
    from churnrisk.pipeline import explain_account

    ds = load_data(data, progress=progress).dataset
    models = open_tracker(settings).load_champion()
    score, found, context = explain_account(models, ds, account_id, as_of=as_of, top=top)
    return Explained(score, found, context, global_importance(models.churn))
