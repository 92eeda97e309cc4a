"""Scoring runs with the champion on DuckDB or on Spark, kept in the score store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from churnrisk.config import ScoringConfig
from churnrisk.errors import ConfigError
from churnrisk.jobs.alerting import AlertsSent, alerts_config, run_alerts
from churnrisk.jobs.progress import QUIET, Progress
from churnrisk.jobs.sources import load_data, load_spark_data, open_spark
from churnrisk.jobs.stores import open_store, open_tracker
from churnrisk.settings import Settings

if TYPE_CHECKING:
    from churnrisk.dataset import Dataset, TableSet
    from churnrisk.models.bundle import ChurnRiskModels
    from churnrisk.pipeline import Step
    from churnrisk.scoring import Scorer
    from churnrisk.spark import SparkDataset
    from churnrisk.store import RunRecord, ScoreStore
    from churnrisk.tracking import ModelVersions, Tracker


@dataclass(frozen=True)
class Champion:
    """The champion bundle and the registered versions it was loaded from."""

    models: ChurnRiskModels
    versions: ModelVersions


def load_champion(tracker: Tracker, *, missing: str | None = None) -> Champion:
    """Load the champion of ``tracker``: the very version its alias names now.

    Raises
    ------
    ConfigError
        When there is no champion (``missing`` says what to do; default: train first).
    """
    info = tracker.champion_info()
    if info is None:
        raise ConfigError(
            f"no champion model in {tracker.uri}: {missing or 'run `churnrisk train DATA` first'}"
        )
    # Load the very version the info names, so a promotion in between cannot mix them up.
    return Champion(tracker.load_champion(version=info.versions.churn), info.versions)


@dataclass(frozen=True)
class ScoreOutcome:
    """A scoring run as written to the score store.

    Attributes
    ----------
    run
        The run's record (its id, as-of date, versions, number of accounts).
    store_url
        The score store it is in (password masked).
    tiers
        ``(tier, accounts)`` of every tier of the run, highest risk first.
    mrr_at_risk
        The run's MRR at risk (sum of ``mrr_at_risk`` over its accounts).
    change, since
        When the run is the newest: its MRR at risk minus that of the run before, and
        that run's as-of date; otherwise ``None``.
    alerts
        The run's alerts and their deliveries, when the settings name an alerts file.
    activities
        CS activities newly imported from the data set's ``activities`` table (those
        that occurred before the as-of date); ``None`` when it has none.
    """

    run: RunRecord
    store_url: str
    tiers: tuple[tuple[str, int], ...]
    mrr_at_risk: float
    change: float | None = None
    since: date | None = None
    alerts: AlertsSent | None = None
    activities: int | None = None


def import_activities(ds: TableSet, store: ScoreStore, as_of: date) -> int:
    """Import the data set's activities that occurred before ``as_of``; return rows added.

    Point in time: an activity timed on or after midnight UTC of ``as_of`` is not known
    to a run as of that day, so a later run imports it. Importing is idempotent
    (:meth:`~churnrisk.store.activities.ActivityStore.import_frame`).
    """
    import ibis

    table = ds.table("activities")
    before = table.filter(table.occurred_at < ibis.literal(as_of, type="date").cast("timestamp"))
    return store.activities.import_frame(ds.backend.execute(before))


def score_dataset(
    ds: Dataset | SparkDataset,
    champion: Champion,
    settings: Settings,
    *,
    config: ScoringConfig,
    as_of: date | None = None,
    source: str,
    step: Step = QUIET.step,
    scorer: Scorer | None = None,
) -> ScoreOutcome:
    """Score ``ds`` into the score store of ``settings`` (:func:`churnrisk.scoring.run_scoring`).

    The store is migrated first; the outcome carries the run and its totals as read
    back from the store. ``ds`` is a :class:`~churnrisk.spark.SparkDataset` with the
    Spark engine's ``scorer``: the job then reads only its span and source from it.
    When the settings name an alerts file, the run's alerts are sent and logged once it
    is written; an endpoint that fails is logged, and never fails the run.
    """
    from churnrisk.scoring import run_scoring
    from churnrisk.store import StoreError

    alerting = alerts_config(settings)  # a bad file stops here, before any work

    with open_store(settings) as store:
        record = run_scoring(
            cast("Dataset", ds),
            champion.models,
            store,
            as_of=as_of,
            config=config,
            versions=champion.versions,
            source=source,
            step=step,
            scorer=scorer,
        )
        totals = store.totals(record.run_id)
        trend = store.trend(limit=2)
        url = store.url
        sent = None if alerting is None else run_alerts(store, record, config, alerting)
        imported = import_activities(ds, store, record.as_of) if ds.has("activities") else None
    if totals is None:  # pragma: no cover - the run was written just above
        raise StoreError(f"run {record.run_id} vanished from {url} right after its write")
    change = since = None
    if len(trend) == 2 and trend[1]["run"].run_id == record.run_id:
        change = trend[1]["mrr_at_risk"] - trend[0]["mrr_at_risk"]
        since = trend[0]["run"].as_of
    return ScoreOutcome(
        run=record,
        store_url=url,
        tiers=tuple((t["tier"], t["accounts"]) for t in totals["tiers"]),
        mrr_at_risk=totals["mrr_at_risk"],
        change=change,
        since=since,
        alerts=sent,
        activities=imported,
    )


def score(
    data: Path | str,
    settings: Settings,
    *,
    as_of: date | None = None,
    config: ScoringConfig | None = None,
    quarantine: Path | None = None,
    engine: Literal["duckdb", "spark"] = "duckdb",
    spark_master: str = "local[*]",
    progress: Progress = QUIET,
) -> ScoreOutcome:
    """Score every active account of ``data`` with the champion and keep the run.

    Parameters
    ----------
    data
        The data source: a folder of tables or a DuckDB file; with ``engine="spark"``
        also a lake URI or a Spark database prefix (as Spark reads it).
    settings
        Where the tracking store (the champion) and the score store are.
    as_of
        The as-of date (default: the day after the data ends).
    config
        Tiers and driver counts (default: the champion's training configuration).
    quarantine
        Where the rows that break a rule of the contract are written.
    engine
        ``duckdb`` in process, or ``spark``: features on Spark, scores through
        ``mlflow.pyfunc.spark_udf``, drivers on the executors; the same run either way.
    spark_master
        The Spark master URL with ``engine="spark"``.
    progress
        What is shown as the run goes.

    Raises
    ------
    ConfigError
        Without pyspark for ``engine="spark"`` or without a champion (both before any
        data is read or any store opened), or for an ``as_of`` after the data.
    """
    if engine == "spark":
        from churnrisk.scoring_spark import require_pyspark

        require_pyspark()
    alerts_config(settings)  # a bad alerts file stops the run before any work
    tracker = open_tracker(settings)
    champion = load_champion(tracker)
    scoring = config if config is not None else champion.models.config.scoring
    if engine == "spark":
        return _score_spark(
            str(data),
            settings,
            tracker,
            champion,
            scoring,
            as_of,
            spark_master,
            quarantine,
            progress,
        )
    path = Path(data)
    ds = load_data(path, quarantine=quarantine, progress=progress).dataset
    return score_dataset(
        ds,
        champion,
        settings,
        config=scoring,
        as_of=as_of,
        source=str(path.absolute()),
        step=progress.step,
    )


def _score_spark(
    source: str,
    settings: Settings,
    tracker: Tracker,
    champion: Champion,
    scoring: ScoringConfig,
    as_of: date | None,
    master: str,
    quarantine: Path | None,
    progress: Progress,
) -> ScoreOutcome:
    """Score ``source`` on Spark: the Spark engine's scorer, the same run and store."""
    from churnrisk.features import panel_features
    from churnrisk.scoring_spark import spark_scorer
    from churnrisk.spark import build_features_spark, renewal_mrr_spark

    session = open_spark(master)
    ds = load_spark_data(source, session, quarantine=quarantine, progress=progress)
    features = panel_features(champion.models.vocabulary)
    scorer = spark_scorer(
        session,
        champion.models,
        tracker=tracker,
        versions=champion.versions,
        config=scoring,
        features=lambda dates: build_features_spark(ds, dates, features=features),
        attributes=lambda: ds.dataframe("accounts"),
        renewals=lambda day: renewal_mrr_spark(ds, day),
        source=ds.source,
    )
    return score_dataset(
        ds,
        champion,
        settings,
        config=scoring,
        as_of=as_of,
        source=ds.source,
        step=progress.step,
        scorer=scorer,
    )
