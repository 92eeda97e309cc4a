"""The CS review's look back: how right past scores were, and who could be won back.

Stages over a data set, a score store and the champion, without I/O of their own:
:func:`scorecard_of` grades the kept runs (:mod:`churnrisk.scorecard`) and measures the
features' drift since training (:mod:`churnrisk.models.drift`); :func:`win_back_of`
lists the accounts that churned lately (:mod:`churnrisk.winback`) with what the store
last said of them. ``churnrisk scorecard`` / ``winback`` (:mod:`churnrisk.jobs.review`),
the service's ``/v1/scorecard`` and ``/v1/winback``, and the demo all read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnrisk.config import BacktestConfig, LabelConfig
from churnrisk.errors import ConfigError

if TYPE_CHECKING:
    from churnrisk.dataset import Dataset
    from churnrisk.models.bundle import ChurnRiskModels
    from churnrisk.scorecard import Scorecard
    from churnrisk.store import RunRecord, ScoreStore

GRADED_COLUMNS: tuple[str, ...] = ("account_id", "churn_probability", "risk_tier", "mrr")
"""The score columns the scorecard grades."""


@dataclass(frozen=True)
class Reviewed:
    """The scorecard of the kept runs and the drift of the features since training.

    Attributes
    ----------
    card
        The grades (:class:`churnrisk.scorecard.Scorecard`).
    drift
        ``feature``, ``psi``, ``drifted`` between the champion's training rows and the
        features as of the latest run (:func:`churnrisk.models.drift.feature_drift`);
        ``None`` without a champion that kept its training distribution.
    latest
        The latest run (its as-of date is where the drift is measured).
    store_url
        Where the runs were read.
    """

    card: Scorecard
    drift: pd.DataFrame | None
    latest: RunRecord
    store_url: str

    def to_dict(self) -> dict[str, Any]:
        """Return the scorecard as JSON values, as ``GET /v1/scorecard`` answers it.

        :meth:`Scorecard.to_dict <churnrisk.scorecard.Scorecard.to_dict>` plus ``as_of``
        (the latest run's), ``drift`` (records, or ``None``), ``drift_threshold`` and
        ``warnings`` (:func:`drift_warnings`).
        """
        from churnrisk.models.drift import PSI_DRIFT

        drift = self.drift
        return {
            "as_of": self.latest.as_of.isoformat(),
            **self.card.to_dict(),
            "drift": None if drift is None else drift.to_dict("records"),
            "drift_threshold": PSI_DRIFT,
            "warnings": drift_warnings(drift, self.latest.as_of),
        }


def past_scores(store: ScoreStore, *, runs: int) -> tuple[pd.DataFrame, list[RunRecord]]:
    """Return the score rows of the latest ``runs`` as-of dates (each date's newest run).

    The frame has ``as_of``, ``account_id``, ``probability``, ``tier`` and ``mrr``; the
    runs come newest first.
    """
    points = store.trend(limit=runs)
    records = [p["run"] for p in reversed(points)]
    frames = []
    for record in records:
        rows = store.run_scores(record.run_id, columns=GRADED_COLUMNS)
        frames.append(
            rows.rename(columns={"churn_probability": "probability", "risk_tier": "tier"}).assign(
                as_of=record.as_of
            )
        )
    if not frames:
        raise ConfigError(f"{store.url} holds no scoring run: run `churnrisk score DATA` first")
    return pd.concat(frames, ignore_index=True), records


def grade_runs(
    ds: Dataset,
    store: ScoreStore,
    *,
    labels: LabelConfig,
    k: int,
    runs: int = 104,
) -> tuple[Scorecard, RunRecord]:
    """Grade the kept runs against what happened in ``ds``; return the card and latest run.

    The tier table lists the latest run's tiers first; each run's high tier is its own
    riskiest one.
    """
    from churnrisk.scorecard import grade, outcomes

    scores, records = past_scores(store, runs=runs)
    latest = records[0]
    graded = outcomes(ds, scores, labels)
    high = {r.as_of: r.tier_names[0] for r in records}
    card = grade(graded, k=k, high_tier=high, tiers=latest.tier_names)
    return card, latest


def drift_since_training(ds: Dataset, models: ChurnRiskModels, as_of: date) -> pd.DataFrame:
    """Return the PSI of each feature the champion kept, as of ``as_of`` against training."""
    from churnrisk.features import build_features, panel_features
    from churnrisk.models.drift import feature_drift

    features = [f for f in panel_features(models.vocabulary) if f.name in models.drift]
    panel = build_features(ds, [as_of], features=features)
    return feature_drift(models.drift, panel)


def capacity_k(models: ChurnRiskModels | None) -> int:
    """Return the scorecard's default list size: the accounts CS can contact per run.

    One definition of it: the backtest's ``capacity_k``
    (:class:`~churnrisk.config.BacktestConfig`) of the champion's configuration, else
    the default configuration's.
    """
    backtest = models.config.backtest if models is not None else BacktestConfig()
    return backtest.capacity_k


def drift_warnings(drift: pd.DataFrame | None, as_of: date) -> list[str]:
    """Return one warning per feature that drifted beyond the threshold, largest PSI first."""
    if drift is None:
        return []
    return [
        f"feature {row.feature} drifted since training (PSI {row.psi:.2f} as of {as_of});"
        " retrain when the book has changed"
        for row in drift.loc[drift["drifted"]].itertuples(index=False)
    ]


def scorecard_of(
    ds: Dataset,
    store: ScoreStore,
    models: ChurnRiskModels | None,
    *,
    k: int | None = None,
    runs: int = 104,
) -> Reviewed:
    """Grade the runs kept in ``store`` against ``ds`` and measure drift as of the latest.

    The label (horizon and grace) and the default ``k`` (:func:`capacity_k`) are the
    champion's; without a champion, the defaults, and no drift. The drift needs a
    champion that kept its training distribution.
    """
    labels = models.config.labels if models is not None else LabelConfig()
    size = capacity_k(models) if k is None else k
    card, latest = grade_runs(ds, store, labels=labels, k=size, runs=runs)
    drift = None
    if models is not None and models.drift:
        drift = drift_since_training(ds, models, latest.as_of)
    return Reviewed(card=card, drift=drift, latest=latest, store_url=store.url)


@dataclass(frozen=True)
class WinBack:
    """Recently churned accounts with what the store last said about them.

    ``accounts`` is :func:`churnrisk.winback.winback` plus, from each account's latest
    score row before its churn, ``last_probability``, ``lifetime_clv`` and
    ``last_drivers`` (the risers' texts), missing for accounts never scored.
    """

    accounts: pd.DataFrame
    as_of: date


def last_scores(store: ScoreStore, accounts: pd.DataFrame, *, runs: int = 104) -> pd.DataFrame:
    """Return each account's latest score row on or before its ``churn_day``.

    Columns ``account_id``, ``last_probability``, ``lifetime_clv`` and ``last_drivers``
    (the texts of the drivers that raised its risk); accounts never scored are absent.
    """
    until = dict(zip(accounts["account_id"], accounts["churn_day"], strict=True))
    rows = store.last_before(until, ["churn_probability", "lifetime_clv", "drivers"], runs=runs)
    risers = [
        [d["text"] for d in drivers if d.get("direction") == "raises"]
        for drivers in rows["drivers"]
    ]
    return pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "last_probability": rows["churn_probability"],
            "lifetime_clv": rows["lifetime_clv"],
            "last_drivers": risers,
        }
    )


def win_back_of(
    ds: Dataset, store: ScoreStore, as_of: date, *, days: int = 90, recent_days: int = 14
) -> WinBack:
    """Return :func:`churnrisk.winback.winback` with what ``store`` last said of each account."""
    from churnrisk.winback import winback

    churned = winback(ds, as_of, days=days, recent_days=recent_days)
    if store.current_run() is not None:
        churned = churned.merge(last_scores(store, churned), on="account_id", how="left")
    return WinBack(accounts=churned, as_of=as_of)
