"""The CS review's jobs: ``churnrisk scorecard`` and ``churnrisk winback``.

They load the data, the champion and the score store, then run the stages of
:mod:`churnrisk.review`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from churnrisk.jobs.progress import QUIET, Progress
from churnrisk.jobs.scoring import load_champion
from churnrisk.jobs.sources import load_data
from churnrisk.jobs.stores import open_store, open_tracker
from churnrisk.review import Reviewed, WinBack, scorecard_of, win_back_of
from churnrisk.settings import Settings

__all__ = ["review", "win_back"]


def review(
    data: Path,
    settings: Settings,
    *,
    k: int | None = None,
    runs: int = 104,
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> Reviewed:
    """Grade the runs kept in the score store against ``data``, and measure feature drift.

    As :func:`scorecard_of`, with the champion of the tracking store of ``settings``.
    """
    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    tracker = open_tracker(settings)
    models = None
    if tracker.champion_info() is not None:
        with progress.working("loading the champion"):
            models = load_champion(tracker).models
    with (
        open_store(settings) as store,
        progress.working("grading the kept runs against what happened; measuring drift"),
    ):
        return scorecard_of(ds, store, models, k=k, runs=runs)


def win_back(
    data: Path,
    settings: Settings,
    *,
    as_of: date | None = None,
    days: int = 90,
    recent_days: int = 14,
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> WinBack:
    """List the accounts that churned in the last ``days`` (default as of the data's end)."""
    from churnrisk.dataset import observation_end

    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    day = as_of or observation_end(ds)
    with (
        progress.working(f"finding the accounts that churned in the {days} days before {day}"),
        open_store(settings) as store,
    ):
        return win_back_of(ds, store, day, days=days, recent_days=recent_days)
