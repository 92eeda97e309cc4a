"""`churnrisk score --engine spark` gives the DuckDB engine's run: same accounts,
probabilities, tiers, drivers and change drivers, through mlflow.pyfunc.spark_udf."""

from __future__ import annotations

import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from cli_invoke import invoke
from quick_config import QUICK
from spark_fixtures import spark_fixture  # noqa: F401

from churnrisk.config import RunConfig

FIRST, SECOND = "2026-03-01", "2026-05-01"


@pytest.fixture
def cli_spark(spark):
    """The shared session, its runtime settings restored after a CLI run changed them."""
    keys = ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone")
    saved = {k: spark.conf.get(k) for k in keys}
    yield spark
    for key, value in saved.items():
        spark.conf.set(key, value)


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A 300-account world and a QUICK champion registered in a private MLflow store."""
    from churnrisk.features import as_of_dates, build_features
    from churnrisk.generate import generate_world
    from churnrisk.models.bundle import train_models
    from churnrisk.tracking import Tracker, tracking_uri
    from churnrisk.validate import load

    root = tmp_path_factory.mktemp("spark_scoring")
    summary = generate_world(root / "world", accounts=300, months=18, seed=5)
    config = RunConfig.model_validate(QUICK)
    ds = load(root / "world").dataset
    panel = build_features(ds, as_of_dates(summary.start, summary.end), labels=config.labels)
    models = train_models(panel, config)
    tracker = Tracker(tracking_uri(root / "home"))
    versions = tracker.log_training(models, panel=panel, fingerprint="test")
    tracker.promote(versions, {}, gate=config.gate, force=True)
    return root


@pytest.fixture
def home(champion, monkeypatch):
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(champion / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield champion
    get_settings.cache_clear()


def score(root, monkeypatch, capsys, store: str, day: str, engine: str) -> None:
    """Run `churnrisk score` into the store file ``store`` under ``root``."""
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATABASE_URL", f"sqlite:///{root / store}")
    get_settings.cache_clear()
    args = ["--as-of", day, "--engine", engine, "--spark-master", "local[1]"]
    assert invoke(["score", root / "world", *args]) == 0
    messages = capsys.readouterr()
    assert messages.out.startswith("scored "), messages
    assert ("on Spark" in messages.err) is (engine == "spark"), messages.err


def current_run(root, store: str) -> tuple[object, pd.DataFrame]:
    from churnrisk.store import ScoreStore

    db = ScoreStore(f"sqlite:///{root / store}")
    try:
        run = db.current_run()
        return run, db.run_scores(run.run_id)
    finally:
        db.close()


def duckdb_panel_on_spark(spark, ds):
    """Build features with DuckDB and hand them to Spark (isolates the scoring part)."""
    from churnrisk.features import build_features

    def features(dates):
        panel = build_features(ds, dates)
        for name in panel.columns:
            if isinstance(panel[name].dtype, pd.CategoricalDtype):
                panel[name] = panel[name].astype(object).where(panel[name].notna(), None)
        panel["account_id"] = panel["account_id"].astype(object)
        return spark.createDataFrame(panel)

    return features


def test_spark_scorer_writes_the_duckdb_run(home, spark):
    """A first run (no previous one) through the Spark scorer: the DuckDB rows.

    The panel is DuckDB's, handed to Spark, so that this checks the scoring alone.
    """
    from churnrisk.scoring import account_attributes, run_scoring
    from churnrisk.scoring_spark import spark_scorer
    from churnrisk.spark import load_spark, renewal_mrr_spark
    from churnrisk.store import ScoreStore
    from churnrisk.tracking import Tracker, tracking_uri
    from churnrisk.validate import load

    ds = load(home / "world").dataset
    tracker = Tracker(tracking_uri(home / "home"))
    info = tracker.champion_info()
    models = tracker.load_champion(version=info.versions.churn)
    config = models.config.scoring
    attributes = account_attributes(ds).reset_index()
    scorer = spark_scorer(
        spark,
        models,
        tracker=tracker,
        versions=info.versions,
        config=config,
        features=duckdb_panel_on_spark(spark, ds),
        attributes=lambda: spark.createDataFrame(attributes.astype(object)),
        renewals=lambda day: renewal_mrr_spark(load_spark(str(home / "world"), spark), day),
    )
    out = {}
    for engine, using in (("duck", None), ("spark", scorer)):
        db = ScoreStore(f"sqlite:///{home / f'{engine}-api.db'}")
        db.upgrade()
        try:
            run = run_scoring(
                ds,
                models,
                db,
                as_of=date.fromisoformat(FIRST),
                config=config,
                versions=info.versions,
                source="test",
                scorer=using,
            )
            out[engine] = db.run_scores(run.run_id)
        finally:
            db.close()
    assert_same_rows(out["duck"], out["spark"])
    assert out["spark"]["change_drivers"].map(len).eq(0).all()


def test_spark_scorer_without_a_revenue_model_gives_the_duckdb_run(champion, spark, tmp_path):
    """A champion trained without a revenue model: its value comes from the survival view,
    computed on the executors, and equals the DuckDB engine's."""
    import dataclasses

    from churnrisk.features import build_features
    from churnrisk.scoring import account_attributes, run_scoring
    from churnrisk.scoring_spark import spark_scorer
    from churnrisk.spark import load_spark, renewal_mrr_spark
    from churnrisk.store import ScoreStore
    from churnrisk.tracking import Tracker, tracking_uri
    from churnrisk.validate import load

    ds = load(champion / "world").dataset
    models = dataclasses.replace(Tracker(tracking_uri(champion / "home")).load_champion(), clv=None)
    tracker = Tracker(tracking_uri(tmp_path))
    panel = build_features(ds, [date.fromisoformat(FIRST)])
    versions = tracker.log_training(models, panel=panel, fingerprint="test")
    tracker.promote(versions, {}, gate=models.config.gate, force=True)
    assert versions.clv == ""
    config = models.config.scoring
    attributes = account_attributes(ds).reset_index()
    scorer = spark_scorer(
        spark,
        models,
        tracker=tracker,
        versions=versions,
        config=config,
        features=duckdb_panel_on_spark(spark, ds),
        attributes=lambda: spark.createDataFrame(attributes.astype(object)),
        renewals=lambda day: renewal_mrr_spark(load_spark(str(champion / "world"), spark), day),
    )
    out = {}
    for engine, using in (("duck", None), ("spark", scorer)):
        db = ScoreStore(f"sqlite:///{tmp_path / f'{engine}.db'}")
        db.upgrade()
        try:
            run = run_scoring(
                ds,
                models,
                db,
                as_of=date.fromisoformat(FIRST),
                config=config,
                versions=versions,
                source="test",
                scorer=using,
            )
            out[engine] = db.run_scores(run.run_id)
        finally:
            db.close()
    assert_same_rows(out["duck"], out["spark"])
    assert (out["spark"]["revenue_12m"] >= out["spark"]["mrr"] - 1e-9).all()


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) > 100
    assert a["account_id"].tolist() == b["account_id"].tolist()
    np.testing.assert_allclose(b["churn_probability"], a["churn_probability"], rtol=0, atol=1e-9)
    for col in ("mrr", "mrr_at_risk", "revenue_12m", "lifetime_clv"):
        np.testing.assert_allclose(b[col], a[col], rtol=1e-12, atol=1e-9)
    assert a["risk_tier"].tolist() == b["risk_tier"].tolist()
    for col in ("name", "segment", "plan", "owner"):
        assert a[col].tolist() == b[col].tolist(), col
    assert a["drivers"].map(features_of).tolist() == b["drivers"].map(features_of).tolist()
    assert a["drivers"].tolist() == b["drivers"].tolist()
    np.testing.assert_allclose(
        b["previous_probability"], a["previous_probability"], rtol=0, atol=1e-9
    )
    assert a["change_drivers"].tolist() == b["change_drivers"].tolist()
    # the MRR up for renewal: one Ibis expression, run by DuckDB and by Spark
    assert a["renewal_mrr"].notna().sum() > 100
    np.testing.assert_allclose(b["renewal_mrr"], a["renewal_mrr"], rtol=1e-12, atol=1e-9)
    assert (a["renewal_mrr"].isna() == a["days_to_renewal"].isna()).all()
    assert (a["renewal_mrr"].dropna() <= a["mrr"][a["renewal_mrr"].notna()] + 1e-9).all()


def features_of(items) -> list[str]:
    return [item["feature"] for item in items]


def test_score_engine_spark_writes_the_duckdb_run(home, cli_spark, monkeypatch, capsys):
    """`churnrisk score --engine spark` against a previous run: the DuckDB engine's run.

    Both stores hold the same first run (DuckDB's; a Spark first run is compared with it
    in the test above); the second run, with its changes, is scored by each engine, end
    to end from the data folder.
    """
    score(home, monkeypatch, capsys, "duck.db", FIRST, "duckdb")
    shutil.copyfile(home / "duck.db", home / "spark.db")
    score(home, monkeypatch, capsys, "duck.db", SECOND, "duckdb")
    score(home, monkeypatch, capsys, "spark.db", SECOND, "spark")
    (duck_run, duck), (spark_run, sparked) = (
        current_run(home, "duck.db"),
        current_run(home, "spark.db"),
    )
    fields = ("as_of", "churn_version", "clv_version", "model_run_id", "accounts", "tiers")
    for name in (*fields, "low_tier", "previous_run_id", "source"):
        assert getattr(spark_run, name) == getattr(duck_run, name), name
    assert_same_rows(duck, sparked)
    assert (sparked["change_drivers"].map(len) > 0).mean() > 0.5


def test_score_engine_spark_without_pyspark_says_how_to_install(tmp_path, monkeypatch, capsys):
    import sys

    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "home"))
    get_settings.cache_clear()
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` raises ImportError
    try:
        assert invoke(["score", tmp_path, "--engine", "spark"]) == 1
    finally:
        get_settings.cache_clear()
    assert not (tmp_path / "home").exists()  # refused before any store was opened
    assert "the Spark engine needs pyspark: pip install churnrisk[spark]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("s3a://lake/churn", "s3a://lake/churn"),
        ("hdfs://nn:8020/lake/churn", "hdfs://nn:8020/lake/churn"),
        ("file:///data/world", "file:///data/world"),
        ("lake.", "lake."),
    ],
)
def test_spark_source_keeps_uris_and_prefixes(given, read):
    from pathlib import Path

    from churnrisk.cli import spark_source

    assert spark_source(Path(given)) == read
