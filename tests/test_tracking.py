"""MLflow tracking, registry and champion gate, on a throwaway SQLite store per test.

The bundle is real (a small generated world, trained with few boosting rounds); the
metrics passed to the gate are hand-written where a test needs exact reason text.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from matplotlib.figure import Figure

from churnrisk.config import GateConfig, LabelConfig, RunConfig
from churnrisk.errors import ConfigError
from churnrisk.features import as_of_dates, build_features
from churnrisk.generate import generate_world
from churnrisk.models import backtest, train_models
from churnrisk.tracking import (
    CHALLENGER,
    CHAMPION,
    CHURN_MODEL,
    CLV_MODEL,
    Tracker,
    behind_baseline,
    degenerate_reason,
    fingerprint,
    flatten_metrics,
    gate_verdict,
    tracking_uri,
)
from churnrisk.validate import load

FAST = {
    "churn": {"n_estimators": 20, "early_stopping_rounds": 5},
    "clv": {"n_estimators": 20, "early_stopping_rounds": 5},
    "backtest": {"folds": 2},
}


def metrics(pr_auc, roc_auc):
    """A backtest in the JSON shape, with only the gated churn metrics."""
    return {"churn": {"model": {"pr_auc": pr_auc, "roc_auc": roc_auc}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    summary = generate_world(root / "data", accounts=300, months=15, seed=2)
    ds = load(root / "data").dataset
    panel = build_features(ds, as_of_dates(summary.start, summary.end), labels=LabelConfig())
    config = RunConfig.model_validate(FAST)
    result = backtest(panel, config).to_dict()
    models = train_models(panel, config, backtest=result)
    return {"panel": panel, "models": models, "fp": fingerprint(root / "data"), "data": root}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 40-account book and LightGBM alone, unsized: leaves bigger than the book."""
    root = tmp_path_factory.mktemp("tiny")
    summary = generate_world(root / "data", accounts=40, months=15, seed=2)
    ds = load(root / "data").dataset
    panel = build_features(ds, as_of_dates(summary.start, summary.end), labels=LabelConfig())
    config = RunConfig.model_validate(
        {
            **FAST,
            # so few churners that the plan's slices are allowed 2 each: the point here
            # is the model, not the plan
            "backtest": {"folds": 2, "min_slice_churners": 2},
            "candidates": {"kinds": ["lightgbm"], "size_to_data": False, "search_trials": 0},
        }
    )
    return panel, config


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A migrated, empty MLflow database, made once (migrations take seconds)."""
    folder = tmp_path_factory.mktemp("template")
    with warnings.catch_warnings():  # SQLAlchemy deprecations inside MLflow's migrations
        warnings.simplefilter("ignore")
        Tracker(tracking_uri(folder)).client.search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def tracker(empty_store, tmp_path):
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return Tracker(tracking_uri(tmp_path))


def figure():
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    return fig


def aliases(tracker, name):
    return {a: str(v) for a, v in tracker.client.get_registered_model(name).aliases.items()}


# --------------------------------------------------------------------------- plumbing


def test_import_touches_no_disk_env_or_mlflow(tmp_path):
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import churnrisk.tracking\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
        "assert dict(os.environ) == before, 'environment changed'\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_tracker_leaves_global_tracking_uri_alone(tracker, world):
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    tracker.log_backtest(
        metrics(0.4, 0.8),
        config=world["models"].config,
        fingerprint="x",
        window=(date(2025, 1, 1), date(2025, 6, 1)),
        feature_names=["mrr"],
    )
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before


def test_tracking_uri_is_sqlite_in_data_dir_with_artifacts_beside(tmp_path):
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(tracking_uri(tmp_path / "store"))
    assert tracker.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert Tracker("http://mlflow.example:5000").artifact_location is None


def test_fingerprint_hashes_names_and_contents_not_mtimes(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("y\n2\n")
    first = fingerprint(tmp_path)
    assert len(first) == 64
    os.utime(tmp_path / "a.csv", (0, 0))
    assert fingerprint(tmp_path) == first
    (tmp_path / "a.csv").write_text("x\n2\n")
    assert fingerprint(tmp_path) != first
    (tmp_path / "a.csv").write_text("x\n1\n")
    assert fingerprint(tmp_path) == first
    (tmp_path / "sub" / "b.csv").rename(tmp_path / "sub" / "c.csv")
    assert fingerprint(tmp_path) != first
    with pytest.raises(ConfigError, match=r"cannot fingerprint .*no such file or folder"):
        fingerprint(tmp_path / "missing")


def test_flatten_metrics_names_and_drops_missing():
    nested = {
        "churn": {"model": {"roc_auc": 0.8, "ece": None}, "baselines": {"logistic": {"pr_auc": 1}}},
        "clv": {"model": {"mae": 12.5}},
        "folds": [{"churn": {"model": {"roc_auc": 0.7}}}],
        "plan": {"gap_days": 120, "final": {"rows": 160}},
    }
    assert flatten_metrics(nested) == {
        "churn.model.roc_auc": 0.8,
        "churn.baselines.logistic.pr_auc": 1.0,
        "clv.model.mae": 12.5,
    }


# --------------------------------------------------------------------------- runs


def test_log_training_records_run_and_registers_both_models(tracker, world, tmp_path):
    models = world["models"]
    versions = tracker.log_training(
        models, panel=world["panel"], fingerprint=world["fp"], figures={"calibration": figure()}
    )
    client = tracker.client
    run = client.get_run(versions.run_id)
    params = run.data.params
    assert params["labels.horizon_days"] == "90"
    assert params["churn.n_estimators"] == "20"
    assert params["backtest.folds"] == "2"
    assert params["data.fingerprint"] == world["fp"]
    assert params["data.first_as_of"] == models.trained_as_of[0].isoformat()
    assert params["data.last_as_of"] == models.trained_as_of[1].isoformat()
    assert params["features.count"] == str(len(models.feature_names))
    assert run.data.tags["churnrisk.kind"] == "train"

    bt = models.backtest
    got = run.data.metrics
    overall = {k: v for k, v in got.items() if not k.startswith("folds.")}
    assert overall == pytest.approx(flatten_metrics(bt))
    assert got["churn.baselines.logistic.pr_auc"] == pytest.approx(
        bt["churn"]["baselines"]["logistic"]["pr_auc"]
    )
    assert bt["clv"]["model"]["mae"] is None  # 15 months: no closed 12-month revenue label
    assert "clv.model.mae" not in got
    history = client.get_metric_history(versions.run_id, "folds.churn.model.roc_auc")
    assert [m.step for m in history] == [1, 2]

    names = {a.path for a in client.list_artifacts(versions.run_id)}
    assert {"config.json", "features.txt", "backtest.json", "plots"} <= names
    local = tmp_path / "artifacts"
    local.mkdir()
    mlflow.artifacts.download_artifacts(
        run_id=versions.run_id, dst_path=str(local), tracking_uri=tracker.uri
    )
    assert json.loads((local / "config.json").read_text()) == models.config.model_dump(mode="json")
    assert (local / "features.txt").read_text().split() == models.feature_names
    assert (local / "plots" / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for name, version in ((CHURN_MODEL, versions.churn), (CLV_MODEL, versions.clv)):
        mv = client.get_model_version(name, version)
        assert mv.run_id == versions.run_id
        assert mv.tags["churnrisk.fingerprint"] == world["fp"]
        assert float(mv.tags["churn.model.roc_auc"]) == pytest.approx(
            bt["churn"]["model"]["roc_auc"], abs=1e-5
        )
        assert aliases(tracker, name) == {}
    # artifacts land beside the database, and nothing of ours is pickled
    stored = list((tmp_path / "mlartifacts").rglob("*"))
    assert any(p.name == "MLmodel" for p in stored)
    assert not [p for p in stored if p.suffix in (".pkl", ".pickle")]
    assert any(p.name == "bundle.json" for p in stored)


def test_log_backtest_records_run_without_models(tracker, world):
    models = world["models"]
    run_id = tracker.log_backtest(
        models.backtest,
        config=models.config,
        fingerprint=world["fp"],
        window=models.trained_as_of,
        feature_names=models.feature_names,
        figures={"lift": figure()},
    )
    run = tracker.client.get_run(run_id)
    assert run.data.tags["churnrisk.kind"] == "backtest"
    assert run.data.params["data.fingerprint"] == world["fp"]
    assert run.data.metrics["churn.model.pr_auc"] == pytest.approx(
        models.backtest["churn"]["model"]["pr_auc"]
    )
    assert "plots/lift.png" in {a.path for a in tracker.client.list_artifacts(run_id, "plots")}
    assert tracker.client.search_registered_models() == []


# --------------------------------------------------------------------------- gate


@pytest.mark.parametrize(
    ("name", "new", "ok", "reason"),
    [
        ("pr_auc", 0.425, True, "pr_auc 0.425 >= champion 0.430 - 0.005"),
        ("pr_auc", 0.424, False, "pr_auc 0.424 < champion 0.430 - 0.005"),
        ("ece", 0.435, True, "ece 0.435 <= champion 0.430 + 0.005"),
        ("ece", 0.436, False, "ece 0.436 > champion 0.430 + 0.005"),
        ("clv.model.mae", 0.436, False, "clv.model.mae 0.436 > champion 0.430 + 0.005"),
    ],
)
def test_gate_verdict_within_tolerance_both_directions(name, new, ok, reason):
    key = name if "." in name else f"churn.model.{name}"
    got = gate_verdict({key: new}, {key: 0.430}, metrics=[name], tolerance=0.005)
    assert got == (ok, reason)


def test_gate_promotes_first_refuses_worse_and_force_overrides(tracker, world):
    gate = GateConfig(metric="pr_auc", tolerance=0.005)
    log = tracker.log_training
    kw = {"panel": world["panel"], "fingerprint": world["fp"]}

    v1 = log(world["models"], backtest=metrics(0.430, 0.800), **kw)
    first = tracker.promote(v1, metrics(0.430, 0.800), gate=gate)
    assert (first.promoted, first.reason, first.champion_before) == (
        True,
        "the first model: no earlier champion to compare with",
        None,
    )
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v1.churn}
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v1.clv}

    v2 = log(world["models"], backtest=metrics(0.412, 0.810), **kw)
    worse = tracker.promote(v2, metrics(0.412, 0.810), gate=gate)
    assert not worse.promoted
    assert worse.reason == "pr_auc 0.412 < champion 0.430 - 0.005"
    assert worse.champion_before == v1.churn
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v1.churn, CHALLENGER: v2.churn}
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v1.clv, CHALLENGER: v2.clv}
    assert tracker.load_champion().trained_as_of == world["models"].trained_as_of

    within = tracker.promote(v2, metrics(0.426, 0.796), gate=gate)
    assert within.promoted
    assert within.reason == (
        "pr_auc 0.426 >= champion 0.430 - 0.005; roc_auc 0.796 >= champion 0.800 - 0.005"
    )
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v2.churn}

    v3 = log(world["models"], backtest=metrics(0.300, 0.700), **kw)
    roc = tracker.promote(v3, metrics(0.500, 0.700), gate=gate)
    assert (roc.promoted, roc.reason) == (False, "roc_auc 0.700 < champion 0.810 - 0.005")
    forced = tracker.promote(v3, metrics(0.300, 0.700), gate=gate, force=True)
    assert (forced.promoted, forced.reason, forced.champion_before) == (True, "forced", v2.churn)
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v3.churn}
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v3.clv}
    tags = tracker.client.get_model_version(CHURN_MODEL, v3.churn).tags
    assert tags["churnrisk.gate"] == "forced"


def with_baseline(pr_auc, roc_auc, base_pr, base_roc):
    out = metrics(pr_auc, roc_auc)
    out["churn"]["baselines"] = {"logistic": {"pr_auc": base_pr, "roc_auc": base_roc}}
    return out


def test_behind_baseline_names_each_metric_beyond_the_tolerance():
    flat = flatten_metrics(with_baseline(0.300, 0.797, 0.320, 0.800))
    assert behind_baseline(flat, metrics=["pr_auc", "roc_auc"], tolerance=0.005) == (
        "behind the baseline: pr_auc 0.300 < logistic baseline 0.320 - 0.005"
    )
    flat = flatten_metrics(with_baseline(0.316, 0.797, 0.320, 0.800))
    assert behind_baseline(flat, metrics=["pr_auc", "roc_auc"], tolerance=0.005) is None
    assert (
        behind_baseline(flatten_metrics(metrics(0.1, 0.5)), metrics=["pr_auc"], tolerance=0) is None
    )


def test_degenerate_reads_the_chosen_candidates_distinct_probabilities():
    backtest = {"churn": {"chosen": "lightgbm", "candidates": {"lightgbm": {}}}}
    backtest["churn"]["candidates"]["lightgbm"]["distinct_probabilities"] = 3
    reason = degenerate_reason(backtest, min_distinct=10)
    assert reason is not None
    assert reason.startswith(
        "degenerate: the lightgbm model gave 3 distinct probabilities on the backtest's test"
        " rows, fewer than gate.min_distinct 10; it is never promoted, not even with --force"
    )
    backtest["churn"]["candidates"]["lightgbm"]["distinct_probabilities"] = 10
    assert degenerate_reason(backtest, min_distinct=10) is None
    assert degenerate_reason(metrics(0.1, 0.5), min_distinct=10) is None


def test_gate_refuses_a_model_behind_the_baseline_even_the_first(tracker, world):
    gate = GateConfig(metric="pr_auc", tolerance=0.005)
    kw = {"panel": world["panel"], "fingerprint": world["fp"]}
    behind = with_baseline(0.300, 0.800, 0.320, 0.790)
    v1 = tracker.log_training(world["models"], backtest=behind, **kw)
    first = tracker.promote(v1, behind, gate=gate)
    assert (first.promoted, first.reason) == (
        False,
        "behind the baseline: pr_auc 0.300 < logistic baseline 0.320 - 0.005",
    )
    assert aliases(tracker, CHURN_MODEL) == {CHALLENGER: v1.churn}
    forced = tracker.promote(v1, behind, gate=gate, force=True)
    assert (forced.promoted, forced.reason) == (True, "forced")


def test_a_degenerate_model_is_never_promoted_not_even_forced(tracker, tiny):
    panel, config = tiny
    result = backtest(panel, config).to_dict()
    chosen = result["churn"]["chosen"]
    assert chosen == "lightgbm"
    # one leaf per fold: one probability per fold
    assert result["churn"]["candidates"][chosen]["distinct_probabilities"] <= 2
    models = train_models(panel, config, backtest=result)
    v1 = tracker.log_training(models, panel=panel, fingerprint="tiny")
    for force in (False, True):
        decision = tracker.promote(v1, result, gate=config.gate, force=force)
        assert not decision.promoted
        assert decision.reason.startswith("degenerate: the lightgbm model gave")
        assert "never promoted, not even with --force" in decision.reason
    assert aliases(tracker, CHURN_MODEL) == {CHALLENGER: v1.churn}


def test_gate_needs_the_same_backtest(tracker, world):
    gate = GateConfig()
    kw = {"panel": world["panel"], "backtest": metrics(0.430, 0.800)}
    v1 = tracker.log_training(world["models"], fingerprint=world["fp"], **kw)
    tracker.promote(v1, metrics(0.430, 0.800), gate=gate)

    v2 = tracker.log_training(world["models"], fingerprint="f" * 64, **kw)
    decision = tracker.promote(v2, metrics(0.900, 0.900), gate=gate)
    assert not decision.promoted
    assert not decision.comparable
    assert decision.reason.startswith(
        f"not comparable: the champion (version {v1.churn}) was backtested on other data"
        f" (fingerprint {world['fp'][:12]}, this run ffffffffffff)"
    )
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v1.churn}

    info = tracker.champion_info()
    assert info is not None
    assert info.versions == v1
    assert RunConfig.model_validate(info.config) == world["models"].config
    assert info.fingerprint == world["fp"]
    assert info.metrics == {"churn.model.pr_auc": 0.430, "churn.model.roc_auc": 0.800}

    other = dataclasses.replace(
        world["models"], config=RunConfig.model_validate({**FAST, "backtest": {"folds": 3}})
    )
    v3 = tracker.log_training(other, fingerprint=world["fp"], **kw)
    settings = tracker.promote(v3, metrics(0.900, 0.900), gate=gate)
    assert (settings.promoted, settings.comparable) == (False, False)
    assert f"(version {v1.churn}) was backtested with other settings (backtest.folds 2 vs 3)" in (
        settings.reason
    )

    # the caller re-ran the champion's configuration on the new data
    rerun = tracker.promote(
        v2, metrics(0.900, 0.900), gate=gate, champion_metrics=metrics(0.9, 0.9)
    )
    assert rerun.promoted
    assert rerun.reason.startswith("pr_auc 0.900 >= champion 0.900 - 0.005")


def test_gate_requires_the_gated_metric(tracker, world):
    v1 = tracker.log_training(world["models"], panel=world["panel"], fingerprint=world["fp"])
    tracker.promote(v1, {}, gate=GateConfig())
    with pytest.raises(ConfigError, match=r"new backtest has no churn\.model\.pr_auc"):
        tracker.promote(v1, {"churn": {"model": {"roc_auc": 0.8}}}, gate=GateConfig())


# --------------------------------------------------------------------------- loading


def test_load_champion_round_trips_the_bundle(tracker, world):
    models, panel = world["models"], world["panel"]
    versions = tracker.log_training(models, panel=panel, fingerprint=world["fp"])
    tracker.promote(versions, models.backtest, gate=GateConfig())

    loaded = tracker.load_champion()
    pd.testing.assert_frame_equal(loaded.predict(panel), models.predict(panel))
    assert loaded.config == models.config
    assert loaded.feature_names == models.feature_names

    info = tracker.model_info()
    assert (info["churn_version"], info["clv_version"]) == (versions.churn, versions.clv)
    assert info["trained_as_of"] == [d.isoformat() for d in models.trained_as_of]
    assert info["metrics"]["churn.model.roc_auc"] == pytest.approx(
        models.backtest["churn"]["model"]["roc_auc"]
    )

    # the registered pyfunc models serve the same numbers from the same keys
    example = models.input_example(panel, n=5)
    with tracker.active():
        churn = mlflow.pyfunc.load_model(f"models:/{CHURN_MODEL}@{CHAMPION}")
        clv = mlflow.pyfunc.load_model(f"models:/{CLV_MODEL}@{CHAMPION}")
    cats = [c for c in example.columns if isinstance(example[c].dtype, pd.CategoricalDtype)]
    wire = example.astype(dict.fromkeys(cats, object))  # MLflow schemas know strings
    expected = models.predict(example)
    got = churn.predict(wire)
    assert list(got.columns) == ["account_id", "as_of", "churn_probability"]
    assert got["churn_probability"].tolist() == pytest.approx(
        expected["churn_probability"].tolist()
    )
    got_clv = clv.predict(wire)
    assert list(got_clv.columns) == ["account_id", "as_of", "revenue_12m", "lifetime_clv", "mrr"]
    assert got_clv["lifetime_clv"].tolist() == pytest.approx(expected["lifetime_clv"].tolist())
    assert churn.metadata.signature.inputs.input_names()[:2] == ["account_id", "as_of"]


def test_no_champion_is_a_clear_error(tracker):
    assert tracker.champion_info() is None
    with pytest.raises(ConfigError, match=r"no champion model in .*run `churnrisk train DATA`"):
        tracker.load_champion()
    with pytest.raises(ConfigError, match="no champion model"):
        tracker.model_info()


def test_a_bundle_without_a_revenue_model_registers_the_churn_model_only(tracker, world):
    models, panel = world["models"], world["panel"]
    kw = {"panel": panel, "fingerprint": world["fp"]}
    v1 = tracker.log_training(models, **kw)
    tracker.promote(v1, models.backtest, gate=GateConfig())
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v1.clv}

    gate, champ = GateConfig(), metrics(0.5, 0.9)
    worse = tracker.log_training(models, **kw)
    assert not tracker.promote(worse, metrics(0.1, 0.5), gate=gate, champion_metrics=champ).promoted
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v1.clv, CHALLENGER: worse.clv}

    short = dataclasses.replace(models, clv=None)
    v2 = tracker.log_training(short, **kw)
    assert v2.clv == ""
    assert len(tracker.client.search_model_versions(f"name='{CLV_MODEL}'")) == 2
    assert not tracker.promote(v2, metrics(0.1, 0.5), gate=gate, champion_metrics=champ).promoted
    # the new challenger has no CLV model: the older one is not its pair
    assert aliases(tracker, CLV_MODEL) == {CHAMPION: v1.clv}
    decision = tracker.promote(v2, models.backtest, gate=gate, force=True)
    assert decision.promoted
    # the new champion has no CLV model: it is not paired with the old one
    assert aliases(tracker, CHURN_MODEL) == {CHAMPION: v2.churn}
    assert aliases(tracker, CLV_MODEL) == {}
    assert tracker.champion_versions() == (v2.churn, "")
    assert tracker.model_info()["clv_version"] == ""
    loaded = tracker.load_champion()
    assert loaded.clv is None
    pd.testing.assert_frame_equal(loaded.predict(panel), short.predict(panel))


# --------------------------------------------------------------------------- no global state


def test_active_puts_an_unset_tracking_uri_back_unset(tracker, tmp_path):
    code = (
        "import os, sys, mlflow\n"
        "from mlflow.tracking import is_tracking_uri_set\n"
        "from churnrisk.tracking import Tracker\n"
        f"tracker = Tracker({tracker.uri!r})\n"
        "with tracker.active():\n"
        f"    assert mlflow.get_tracking_uri() == {tracker.uri!r}, mlflow.get_tracking_uri()\n"
        f"    assert os.environ['MLFLOW_TRACKING_URI'] == {tracker.uri!r}\n"
        "assert not is_tracking_uri_set(), mlflow.get_tracking_uri()\n"
        "assert 'MLFLOW_TRACKING_URI' not in os.environ\n"
        "mlflow.set_tracking_uri('sqlite:///elsewhere.db')\n"
        "with tracker.active():\n"
        "    pass\n"
        "assert mlflow.get_tracking_uri() == 'sqlite:///elsewhere.db'\n"
        "assert os.environ['MLFLOW_TRACKING_URI'] == 'sqlite:///elsewhere.db'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_model_is_a_package_file_and_loads_in_a_fresh_process(tracker, world, tmp_path):
    import churnrisk.tracking

    models, panel = world["models"], world["panel"]
    versions = tracker.log_training(models, panel=panel, fingerprint=world["fp"])
    tracker.promote(versions, models.backtest, gate=GateConfig())
    package = Path(churnrisk.tracking.__file__).parent
    for kind in ("churn", "clv"):
        logged = list((tmp_path / "mlartifacts").rglob(f"{kind}_model.py"))
        assert len(logged) == 1
        assert logged[0].read_text() == (package / f"{kind}_model.py").read_text()

    # another process, whose mlflow points at nowhere of ours: every read takes the
    # tracker's URI, and nothing lands in the working directory (mlflow's default store)
    example = models.input_example(panel, n=5)
    expected = models.predict(example)["churn_probability"].tolist()
    example.to_pickle(tmp_path / "example.pkl")
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import json, os, sys\n"
        "import pandas as pd\n"
        "from mlflow.tracking import is_tracking_uri_set\n"
        "from churnrisk.tracking import Tracker\n"
        f"tracker = Tracker({tracker.uri!r})\n"
        "info = tracker.champion_info()\n"
        "bundle = tracker.load_champion(version=info.versions.churn)\n"
        f"example = pd.read_pickle({str(tmp_path / 'example.pkl')!r})\n"
        "probabilities = bundle.predict(example)['churn_probability'].tolist()\n"
        "assert not is_tracking_uri_set()\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
        "print(json.dumps([info.versions.churn, probabilities]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    version, probabilities = json.loads(done.stdout.strip().splitlines()[-1])
    assert version == versions.churn
    assert probabilities == pytest.approx(expected)


def test_pyfunc_model_serves_each_kind_and_refuses_others():
    from churnrisk.tracking import pyfunc_model

    assert (pyfunc_model("churn").kind, pyfunc_model("clv").kind) == ("churn", "clv")
    assert pyfunc_model("churn").bundle is None
    with pytest.raises(ConfigError, match=r"unknown model kind 'value'; use 'churn' or 'clv'"):
        pyfunc_model("value")
