"""train, backtest and explain from the command line, on a small world and a quick config."""

import json
import os
from datetime import date

import pandas as pd
import pytest
from cli_invoke import invoke
from quick_config import QUICK_TOML as QUICK

from churnrisk.settings import get_settings
from churnrisk.store import ScoreStore

# LightGBM alone, 5 trees of 2 leaves: a model that cannot beat the first one, yet
# not degenerate (Platt's map keeps its few dozen distinct scores apart)
WORSE = QUICK.replace(
    "n_estimators = 40\nearly_stopping_rounds = 10",
    'n_estimators = 5\nearly_stopping_rounds = 5\nnum_leaves = 2\ncalibration = "sigmoid"',
    1,
).replace("[candidates]\n", '[candidates]\nkinds = ["lightgbm"]\n')
# LightGBM alone, unsized, with leaves larger than the book: one leaf, one probability
DEGENERATE = QUICK.replace("min_child_samples = 20", "min_child_samples = 1000000", 1).replace(
    "[candidates]\nsearch_trials = 2\n",
    '[candidates]\nkinds = ["lightgbm"]\nsize_to_data = false\nsearch_trials = 0\n',
)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A generated world, two configurations and a private MLflow store."""
    root = tmp_path_factory.mktemp("cli_models")
    world = root / "world"
    args = ["generate", "--out", world, "--accounts", 400, "--months", 26, "--seed", 11]
    assert invoke([*args, "--start", "2024-09-01"]) == 0
    (root / "quick.toml").write_text(QUICK)
    (root / "worse.toml").write_text(WORSE)
    (root / "degenerate.toml").write_text(DEGENERATE)
    return root


@pytest.fixture
def store(setting, monkeypatch):
    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(setting / "store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield setting / "store"
    get_settings.cache_clear()


def test_train_registers_a_champion_then_refuses_a_worse_model(setting, store, capsys):
    world, quick, worse = setting / "world", setting / "quick.toml", setting / "worse.toml"
    assert invoke(["train", world, "--config", quick]) == 0
    first = capsys.readouterr().out
    assert (
        "gate: version 1 is champion (the first model: no earlier champion to compare with)"
        in first
    )
    assert "churnrisk-churn v1, churnrisk-clv v1" in first
    assert (store / "mlflow.db").exists()

    assert invoke(["train", world, "--config", worse]) == 0
    second = capsys.readouterr().out
    assert "gate: version 2 is challenger (" in second
    assert "pr_auc" in second.split("gate: version 2")[1]
    assert "`churnrisk train --force` overrides" in second

    assert invoke(["train", world, "--config", worse, "--force"]) == 0
    assert "gate: version 3 is champion (forced)" in capsys.readouterr().out


def test_train_never_promotes_a_degenerate_model_not_even_forced(setting, store, capsys):
    assert invoke(["train", setting / "world", "--config", setting / "degenerate.toml"]) == 0
    assert (
        invoke(["train", setting / "world", "--config", setting / "degenerate.toml", "--force"])
        == 0
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("gate: ")]
    assert len(lines) == 2
    for line in lines:
        # one leaf in each of the two folds: two probabilities in all
        assert (
            " is challenger (degenerate: the lightgbm model gave 2 distinct probabilities" in line
        )
        assert (
            "fewer than gate.min_distinct 10; it is never promoted, not even with --force" in line
        )
        assert "overrides" not in line


def test_backtest_json_has_the_issue_shape(setting, store, capsys):
    code = invoke(
        ["backtest", setting / "world", "--config", setting / "quick.toml", "--format", "json"]
    )
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) == {"churn", "clv", "folds", "plan"}
    assert set(body["churn"]) == {
        "model",
        "baselines",
        "candidates",
        "chosen",
        "fit_seconds",
        "search_seconds",
    }
    assert set(body["churn"]["candidates"]) == {"logistic", "lightgbm", "blend"}
    chosen = body["churn"]["candidates"][body["churn"]["chosen"]]
    assert body["churn"]["model"]["pr_auc"] == chosen["pr_auc"]
    assert set(body["churn"]["baselines"]) == {"logistic", "usage_drop"}
    assert set(body["churn"]["model"]) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "lift_top_decile",
        "recall_at_k",
        "precision_at_k",
        "mrr_recall_at_k",
    }
    assert set(body["clv"]["model"]) == {"mae", "rmse", "spearman"}
    assert set(body["clv"]["baselines"]) == {"mrr_x12"}
    assert len(body["folds"]) == 2


def test_explain_prints_the_score_and_worded_drivers(setting, store, capsys, tmp_path):
    world = setting / "world"
    assert invoke(["train", world, "--config", setting / "quick.toml", "--force"]) == 0
    capsys.readouterr()
    today = tmp_path / "today.parquet"
    assert invoke(["features", "build", world, "--as-of", "2026-10-01", "--out", today]) == 0
    account = pd.read_parquet(today)["account_id"].iloc[0]
    capsys.readouterr()
    assert invoke(["explain", world, account, "--as-of", "2026-10-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{account} as of 2026-10-01: churn probability ")
    assert " risk" in out
    # drivers and context, each labelled; the renewal date beside the score
    assert "drivers: what CS can act on" in out
    assert "context: who the account is and where its contract stands (not a driver)" in out
    assert "renews 20" in out or "no known renewal date" in out
    assert "the model's strongest drivers overall (share of gain): " in out


def test_explain_an_unknown_account_exits_1(setting, store, capsys):
    assert invoke(["train", setting / "world", "--config", setting / "quick.toml"]) == 0
    capsys.readouterr()
    assert invoke(["explain", setting / "world", "NOPE"]) == 1
    assert "account 'NOPE' has no score" in capsys.readouterr().err


def test_explain_without_a_champion_says_to_train_first(setting, tmp_path, monkeypatch, capsys):
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    try:
        assert invoke(["explain", setting / "world", "A001"]) == 1
    finally:
        get_settings.cache_clear()
    assert "run `churnrisk train DATA` first" in capsys.readouterr().err


def test_demo_runs_everything_and_says_where_it_went(setting, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CHURNRISK_DATABASE_URL", raising=False)
    # the demo keeps its stores in its folder whatever CHURNRISK_DATA_DIR says, and
    # leaves the variable as it was
    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "elsewhere"))
    out_dir = tmp_path / "demo"
    args = ["demo", "--out", out_dir, "--accounts", 300, "--months", 26, "--no-serve"]
    try:
        assert invoke([*args, "--config", setting / "quick.toml"]) == 0
    finally:
        get_settings.cache_clear()
    assert os.environ["CHURNRISK_DATA_DIR"] == str(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()
    for name in ("validation.json", "features.parquet", "metrics.json", "mlflow.db", "scores.db"):
        assert (out_dir / name).exists()
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(
        line.startswith(
            "5/8 trained and backtested; churnrisk-churn v1 is champion"
            " (the first model: no earlier champion to compare with); run "
        )
        for line in lines
    )
    scored = next(line for line in lines if line.startswith("6/8 backfilled monthly runs "))
    assert "with churnrisk-churn v1; run " in scored
    assert f"in sqlite:///{out_dir / 'scores.db'}" in scored
    assert "CS activities imported from before" in scored
    card_line = next(line for line in lines if line.startswith("7/8 graded 3 run(s) (4 still"))
    assert card_line.endswith(
        f"scorecard in {out_dir / 'scorecard.json'}, plot in {out_dir / 'scorecard.png'}"
    )
    key_line = next(line for line in lines if line.startswith("8/8 created write key "))
    key = key_line.rsplit(" ", 1)[-1]
    store = ScoreStore(f"sqlite:///{out_dir / 'scores.db'}")
    try:
        assert store.verify_key(key) is not None
        current = store.current_run()
        assert current is not None
        assert current.churn_version == "1"
        # six backfilled monthly runs before the current one, for trends and a scorecard
        assert [r.as_of for r in store.runs()][1:] == [date(2026, m, 1) for m in range(10, 4, -1)]
    finally:
        store.close()
    assert lines[-1] == f"demo done: everything is in {out_dir}"


def test_train_without_a_closed_revenue_label_trains_the_churn_model_and_says_why(
    tmp_path, monkeypatch, capsys
):
    # 18 months of history and a 36-month revenue window: no revenue label ever closes
    world = tmp_path / "world"
    args = ["generate", "--out", world, "--accounts", 300, "--months", 18, "--seed", 5]
    assert invoke([*args, "--start", "2025-01-01"]) == 0
    config = tmp_path / "long_revenue.toml"
    config.write_text(QUICK + "\n[labels]\nrevenue_months = 36\n")
    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        capsys.readouterr()
        assert invoke(["train", world, "--config", config]) == 0
        out = capsys.readouterr().out
        assert "models churnrisk-churn v1, no CLV model" in out
        assert (
            "CLV model not trained: the 36-month revenue label needs 40 months of history,"
            " the data has 18; revenue_12m is MRR x expected months retained"
        ) in out
        assert invoke(["score", world]) == 0
    finally:
        get_settings.cache_clear()
    store = ScoreStore(f"sqlite:///{tmp_path / 'store' / 'scores.db'}")
    try:
        run = store.current_run()
        assert run.clv_version == ""
        scores = store.run_scores(run.run_id)
    finally:
        store.close()
    assert len(scores) > 0
    assert (scores["revenue_12m"] >= scores["mrr"] - 1e-9).all()
    assert (scores["lifetime_clv"] > 0).sum() > 0
