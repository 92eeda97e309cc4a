"""The scoring job on Apache Spark: the DuckDB job's rows, computed on the executors.

:func:`score_features_spark` takes the feature panel as a Spark DataFrame (the current
as-of date, plus the previous run's date when there is one) and returns the very rows
:func:`churnrisk.scoring.score_accounts` returns:

1. Probabilities, 12-month revenue, lifetime CLV and MRR come from the registered pyfunc
   models through :func:`mlflow.pyfunc.spark_udf` (:meth:`Tracker.spark_udf
   <churnrisk.tracking.Tracker.spark_udf>`, local environment manager).
2. Each account's row is joined with its features as of the previous run, its previous
   probability and its name and owner, so that a row holds everything its score needs.
3. ``mapInPandas`` runs :func:`churnrisk.scoring.score_panel` on each Arrow batch, on
   the executors, with those predictions: the same TreeSHAP drivers, change drivers and
   JSON items as the DuckDB job, by the same code. The bundle the executors explain
   with is the registered version's own bundle artifact (its JSON and LightGBM text
   files, shipped with the task; nothing is pickled).
4. Only the final score rows reach the driver (drivers as JSON text on the way), where
   :func:`churnrisk.scoring.run_scoring` writes them to the score store as the DuckDB
   job does.

pyspark is optional: this module imports it inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnrisk.config import ScoringConfig
from churnrisk.errors import ConfigError
from churnrisk.features import FEATURES, LABEL_COLUMNS
from churnrisk.models.bundle import ChurnRiskModels
from churnrisk.scorerow import SCORE_COLUMNS, fields_of
from churnrisk.scoring import PreviousScores, Scorer, Step, score_panel

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from churnrisk.tracking import ModelVersions, Tracker

PYSPARK_MISSING = "the Spark engine needs pyspark: pip install churnrisk[spark]"

_TEXT = fields_of(kind="text")
_JSON = fields_of(kind="drivers") + fields_of(kind="change_drivers")
_DATES = fields_of(kind="date")
_ATTRIBUTES = fields_of(source="attribute")
"""The score fields read from the accounts table, joined as ``_<name>`` columns."""
_PREDICTED = ("churn_probability", "revenue_12m", "lifetime_clv", "mrr")
_PREV = "_prev_"
_RENEWAL = "_renewal_mrr"
_BUNDLE_FILES = ("bundle.json", "churn.txt", "clv.txt")
"""The files of a saved bundle (``clv.txt`` only when it has a revenue model)."""


def _quiet(_: str) -> None:
    """Ignore a progress message."""


def require_pyspark() -> None:
    """Raise :class:`ConfigError` naming the install command when pyspark is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as err:
        raise ConfigError(PYSPARK_MISSING) from err


# ---------------------------------------------------------------------------------------
# the bundle on the executors
# ---------------------------------------------------------------------------------------


def bundle_files(models: ChurnRiskModels) -> dict[str, str]:
    """Return the saved form of a bundle (its JSON and LightGBM text files) by file name."""
    with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
        folder = models.save(Path(tmp) / "bundle")
        return {
            name: (folder / name).read_text(encoding="utf-8")
            for name in _BUNDLE_FILES
            if (folder / name).exists()
        }


_LOADED: dict[str, ChurnRiskModels] = {}


def _bundle(files: dict[str, str]) -> ChurnRiskModels:
    """Load a bundle from :func:`bundle_files` output, once per Python worker."""
    digest = hashlib.sha256()
    for name in _BUNDLE_FILES:
        digest.update(files.get(name, "").encode("utf-8"))
    key = digest.hexdigest()
    if key not in _LOADED:
        with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
            folder = Path(tmp)
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")
            _LOADED.clear()  # one bundle per worker at a time
            _LOADED[key] = ChurnRiskModels.load(folder)
    return _LOADED[key]


# ---------------------------------------------------------------------------------------
# one batch, on an executor
# ---------------------------------------------------------------------------------------


def _as_panel(frame: pd.DataFrame, features: Sequence[str], day: date) -> pd.DataFrame:
    """Return a batch's feature columns typed as :func:`build_features` types them."""
    dtypes = {f.name: f.dtype for f in FEATURES}
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"].astype("string").to_numpy(),
            "as_of": np.full(len(frame), np.datetime64(day, "ns")),
        }
    )
    for name in features:
        col = frame[name]
        if dtypes.get(name) == "category":
            out[name] = pd.Series(col.astype(object).to_numpy(), dtype="category")
        else:
            out[name] = pd.to_numeric(col).astype("float64").to_numpy()
    return out


def _text(values: pd.Series[Any]) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def explain_batch(
    batch: pd.DataFrame,
    models: ChurnRiskModels,
    *,
    features: Sequence[str],
    as_of: date,
    previous_as_of: date | None,
    config: ScoringConfig,
) -> pd.DataFrame:
    """Return the score rows of one batch of joined rows (see :func:`score_features_spark`).

    Parameters
    ----------
    batch
        Per account: ``account_id``, the features as of ``as_of``, the predictions
        (``_pred_`` and ``churn_probability``, ``revenue_12m``, ``lifetime_clv``,
        ``mrr``; only ``_pred_churn_probability`` when the bundle has no revenue
        model: the rest then come from :meth:`ChurnRiskModels.value
        <churnrisk.models.bundle.ChurnRiskModels.value>`), ``_name``
        and ``_owner``, ``_renewal_mrr`` (the MRR up for renewal, NULL when not known),
        and, when there is a previous run, ``_prev_probability``,
        ``_prev_row`` (true when the account is on the previous panel) and the features
        as of ``previous_as_of`` prefixed ``_prev_``.
    models
        The bundle the predictions came from.
    features
        The panel's feature columns.
    as_of, previous_as_of
        The run's as-of date and the previous run's (``None`` without one).
    config
        Tiers and driver counts.

    Returns
    -------
    pandas.DataFrame
        :data:`churnrisk.store.SCORE_COLUMNS` as :func:`churnrisk.scoring.score_panel`
        gives them, in batch order, with ``drivers`` and ``change_drivers`` as JSON text.
    """
    batch = batch.reset_index(drop=True)
    panel = _as_panel(batch, features, as_of)
    ids = panel["account_id"].to_numpy(dtype=object)
    predicted = {
        name: batch[f"_pred_{name}"].to_numpy(dtype="float64", na_value=np.nan)
        for name in _PREDICTED
        if f"_pred_{name}" in batch.columns
    }
    if models.clv is None:
        predicted |= models.value(panel, predicted["churn_probability"])
    predictions = pd.DataFrame({name: predicted[name] for name in _PREDICTED})
    attributes = pd.DataFrame(
        {name: _text(batch[f"_{name}"]) for name in _ATTRIBUTES},
        index=pd.Index(ids, dtype="string", name="account_id"),
    )
    renewal = pd.Series(
        pd.to_numeric(batch[_RENEWAL]).to_numpy(dtype="float64", na_value=np.nan),
        index=pd.Index(ids, dtype="string", name="account_id"),
    )
    previous = previous_panel = None
    if previous_as_of is not None:
        p = batch["_prev_probability"].to_numpy(dtype="float64", na_value=np.nan)
        known = ~np.isnan(p)
        previous = PreviousScores(
            as_of=previous_as_of,
            probabilities=pd.Series(p[known], index=pd.Index(ids[known], dtype="string")),
        )
        on_panel = batch["_prev_row"].fillna(False).to_numpy(dtype=bool)
        before = batch.loc[on_panel, ["account_id", *(_PREV + f for f in features)]]
        before = before.rename(columns={_PREV + f: f for f in features})
        previous_panel = _as_panel(before, features, previous_as_of)
    scores = score_panel(
        panel,
        models,
        config=config,
        attributes=attributes,
        predictions=predictions,
        previous=previous,
        previous_panel=previous_panel,
        renewal=renewal,
    )
    out = scores.copy()
    for name in _JSON:
        out[name] = [json.dumps(items, ensure_ascii=False) for items in scores[name]]
    return out


def _output_schema() -> Any:
    from pyspark.sql.types import DateType, DoubleType, StringType, StructField, StructType

    text = set(_TEXT) | set(_JSON)

    def kind(column: str) -> Any:
        if column in text:
            return StringType()
        return DateType() if column in _DATES else DoubleType()

    return StructType([StructField(c, kind(c), True) for c in SCORE_COLUMNS])


# ---------------------------------------------------------------------------------------
# the Spark plan
# ---------------------------------------------------------------------------------------


def feature_columns(features: DataFrame) -> list[str]:
    """Return the panel's feature columns: every column but the keys and labels."""
    skip = {"account_id", "as_of", *LABEL_COLUMNS}
    return [c for c in features.columns if c not in skip]


def score_features_spark(
    features: DataFrame,
    models: ChurnRiskModels,
    *,
    as_of: date,
    config: ScoringConfig,
    churn_udf: Callable[..., Column],
    clv_udf: Callable[..., Column] | None,
    attributes: DataFrame | None = None,
    renewals: DataFrame | None = None,
    previous: PreviousScores | None = None,
    step: Step = _quiet,
) -> pd.DataFrame:
    """Score, explain and compare with the previous run on Spark; return the score rows.

    Parameters
    ----------
    features
        The feature panel as a Spark DataFrame (``build_features_spark``, or any frame
        with ``account_id``, ``as_of`` and the features): the rows as of ``as_of`` are
        scored; with ``previous``, the rows as of ``previous.as_of`` explain the changes.
    models
        The bundle behind both UDFs (the registered version's bundle).
    as_of
        The run's as-of date.
    config
        Tiers and driver counts.
    churn_udf, clv_udf
        :meth:`Tracker.spark_udf <churnrisk.tracking.Tracker.spark_udf>` of the
        registered ``churn`` and ``clv`` versions; ``clv_udf`` is ``None`` when the
        bundle has no revenue model (revenue and value then come from the survival
        view, on the executors).
    attributes
        ``account_id``, ``name``, ``owner`` (the accounts table); missing gives NULL.
    renewals
        ``account_id``, ``renewal_mrr`` as of ``as_of``
        (:func:`churnrisk.spark.renewal_mrr_spark`); missing gives NULL.
    previous
        The previous run's as-of date and probabilities (read on the driver).
    step
        Called with a short message as each stage starts.

    Returns
    -------
    pandas.DataFrame
        Exactly what :func:`churnrisk.scoring.score_accounts` returns for the same panel
        and models: :data:`churnrisk.store.SCORE_COLUMNS`, ordered by ``account_id``,
        driver columns as lists of dicts; empty when no account is on the panel.
    """
    from pyspark.sql import functions as F  # noqa: N812

    session = features.sparkSession
    names = feature_columns(features)
    day = F.to_date(F.col("as_of"))
    dates = [as_of] if previous is None else [as_of, previous.as_of]
    # Build the panel once and cut its lineage: the feature plan is large, and every
    # later step would analyse it again (and the previous date's rows would rebuild it).
    features = (
        features.where(day.isin([F.lit(d) for d in dates]))
        .select("account_id", day.alias("as_of"), *names)
        .localCheckpoint(eager=True)
    )
    now = features.where(F.col("as_of") == F.lit(as_of)).select("account_id", *names)
    inputs = F.struct(
        F.col("account_id").cast("string").alias("account_id"),
        F.lit(as_of).cast("timestamp").alias("as_of"),
        *(F.col(n) for n in models.feature_names),
    )
    scored = now.withColumn("_churn", churn_udf(inputs))
    value = ("revenue_12m", "lifetime_clv", "mrr")
    if clv_udf is not None:
        scored = scored.withColumn("_clv", clv_udf(inputs))
    rows = scored.select(
        "account_id",
        *names,
        F.col("_churn.churn_probability").alias("_pred_churn_probability"),
        *(F.col(f"_clv.{c}").alias(f"_pred_{c}") for c in value if clv_udf is not None),
    )
    if attributes is not None:
        attrs = attributes.select(
            F.col("account_id").cast("string").alias("account_id"),
            *(F.col(n).cast("string").alias(f"_{n}") for n in _ATTRIBUTES),
        ).dropDuplicates(["account_id"])
        rows = rows.join(attrs, "account_id", "left")
    else:
        for n in _ATTRIBUTES:
            rows = rows.withColumn(f"_{n}", F.lit(None).cast("string"))
    if renewals is not None:
        amounts = renewals.select(
            F.col("account_id").cast("string").alias("account_id"),
            F.col("renewal_mrr").cast("double").alias(_RENEWAL),
        )
        rows = rows.join(amounts, "account_id", "left")
    else:
        rows = rows.withColumn(_RENEWAL, F.lit(None).cast("double"))
    if previous is not None:
        before = features.where(F.col("as_of") == F.lit(previous.as_of)).select(
            "account_id",
            F.lit(True).alias("_prev_row"),
            *(F.col(n).alias(_PREV + n) for n in names),
        )
        probs = previous.probabilities.astype("float64")
        known = pd.DataFrame(
            {
                "account_id": probs.index.astype(str).to_numpy(dtype=object),
                "_prev_probability": probs.to_numpy(dtype="float64"),
            }
        )
        prev_p = session.createDataFrame(
            known, schema="account_id string, _prev_probability double"
        )
        rows = rows.join(before, "account_id", "left").join(prev_p, "account_id", "left")

    files = bundle_files(models)
    settings = config.model_dump(mode="json")
    prev_day = previous.as_of if previous is not None else None

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle = _bundle(files)
        cfg = ScoringConfig.model_validate(settings)
        for batch in batches:
            if len(batch):
                yield explain_batch(
                    batch, bundle, features=names, as_of=as_of, previous_as_of=prev_day, config=cfg
                )

    step("scoring with the registered models (spark_udf) and explaining on the executors")
    try:
        out = rows.mapInPandas(explain, _output_schema()).toPandas()
    finally:
        features.unpersist()
    step(f"collected {len(out):,} score rows")
    return _from_spark(out)


def _from_spark(frame: pd.DataFrame) -> pd.DataFrame:
    """Return collected score rows as the DuckDB job holds them (lists, ``None``, float64)."""
    out = frame.sort_values("account_id", kind="stable").reset_index(drop=True)
    data: dict[str, Any] = {}
    for name in SCORE_COLUMNS:
        if name in _JSON:
            column = np.empty(len(out), dtype=object)
            for i, text in enumerate(out[name].tolist()):
                column[i] = json.loads(text) if isinstance(text, str) else []
            data[name] = column
        elif name in _TEXT:
            data[name] = np.array(_text(out[name]), dtype=object)
        elif name in _DATES:
            data[name] = np.array(
                [None if pd.isna(v) else pd.Timestamp(v).date() for v in out[name]], dtype=object
            )
        else:
            data[name] = out[name].to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(data, columns=list(SCORE_COLUMNS))


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------


def spark_scorer(
    session: SparkSession,
    models: ChurnRiskModels,
    *,
    tracker: Tracker,
    versions: ModelVersions,
    config: ScoringConfig,
    features: Callable[[list[date]], DataFrame],
    attributes: Callable[[], DataFrame | None] = lambda: None,
    renewals: Callable[[date], DataFrame | None] = lambda day: None,
    source: str = "<spark>",
) -> Scorer:
    """Return the :data:`~churnrisk.scoring.Scorer` of the Spark engine for :func:`run_scoring`.

    Parameters
    ----------
    session
        The Spark session.
    models
        The bundle of ``versions`` (``tracker.load_champion(version=...)``).
    tracker
        Where the registered models live; the UDFs load ``versions.churn`` and
        ``versions.clv`` (none for ``clv`` when it is ``""``: no revenue model).
    versions
        The registered versions to score with.
    config
        Tiers and driver counts.
    features
        Builds the panel of the given as-of dates as a Spark DataFrame (e.g.
        ``lambda dates: build_features_spark(ds, dates)``).
    attributes
        Returns ``account_id``, ``name``, ``owner`` as a Spark DataFrame, or ``None``.
    renewals
        Returns ``account_id``, ``renewal_mrr`` as of a date as a Spark DataFrame (e.g.
        ``lambda day: renewal_mrr_spark(ds, day)``), or ``None``.
    source
        What is scored, for messages.
    """
    require_pyspark()

    def scorer(day: date, previous: PreviousScores | None, step: Step) -> pd.DataFrame:
        dates = sorted({day} if previous is None else {day, previous.as_of})
        also = f" and {previous.as_of} (the previous run)" if previous and len(dates) > 1 else ""
        step(f"building features as of {day}{also} on Spark")
        panel = features(dates)
        churn_udf = tracker.spark_udf(session, kind="churn", version=versions.churn)
        clv_udf = (
            tracker.spark_udf(session, kind="clv", version=versions.clv) if versions.clv else None
        )
        scores = score_features_spark(
            panel,
            models,
            as_of=day,
            config=config,
            churn_udf=churn_udf,
            clv_udf=clv_udf,
            attributes=attributes(),
            renewals=renewals(day),
            previous=previous,
            step=step,
        )
        if scores.empty:
            raise ConfigError(
                f"{source}: no account is active on {day - timedelta(days=1)}, the day"
                f" before the as-of date {day}; pick an as-of date inside the data"
            )
        return scores

    return scorer
