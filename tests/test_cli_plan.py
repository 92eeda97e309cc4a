"""backtest and train with DEFAULT settings on a 12-month history and a 300-account book."""

import json

import pytest
from cli_invoke import invoke

from churnrisk.settings import get_settings


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """The smallest worlds that still take the short paths, each a few seconds to write."""
    root = tmp_path_factory.mktemp("cli_plan")
    made = {
        # 12 months: only the 30-day warm-up leaves 3 dates 120 days before a test month
        "short": ["--shape", "short-history", "--accounts", 400],
        # 300 accounts: too few churners on the latest dates, the slices are cut by account
        "small": ["--shape", "small-book", "--months", 18],
        # 6 months: no fold at all
        "tiny": ["--shape", "short-history", "--accounts", 100, "--months", 6],
    }
    for name, args in made.items():
        assert invoke(["generate", "--out", root / name, "--seed", 1, *args]) == 0
    return root


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "store"
    get_settings.cache_clear()


def test_backtest_runs_on_12_months_with_default_settings(worlds, store, capsys):
    capsys.readouterr()
    assert invoke(["backtest", worlds / "short", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert (plan["grid"], plan["warmup_days"], plan["gap_days"], plan["max_folds"]) == (
        "monthly",
        30,
        120,
        3,
    )
    assert [f["test_as_of"] for f in plan["folds"]] == [["2025-06-01"], ["2025-07-01"]]
    assert [f["train_as_of"] for f in plan["folds"]] == [
        ["2024-12-01", "2025-02-01"],
        ["2024-12-01", "2025-03-01"],
    ]
    assert plan["line"].startswith(
        "plan: 2 of at most 3 folds on a monthly grid from 2024-12-01 (warm-up 30 days,"
        " not 90: windows longer than 30 days are truncated before 2025-01-30), 120-day"
        " label gap; fold 1 trains on 3 dates to 2025-02-01 ("
    )


def test_train_runs_on_12_months_with_default_settings(worlds, store, capsys):
    capsys.readouterr()
    assert invoke(["train", worlds / "short"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("plan: ")]
    assert line.startswith("plan: 2 of at most 3 folds on a monthly grid from 2024-12-01")
    assert line.endswith(
        "final model on 8 dates to 2025-07-01 (2,337 rows, 188 churn labels, slices by time)"
    )
    assert "gate: version 1 is champion" in out
    # the 12-month revenue label never closes in 12 months: the churn model alone
    assert (
        "CLV model not trained: the 12-month revenue label needs 16 months of history,"
        " the data has 12; revenue_12m is MRR x expected months retained"
    ) in out
    assert "models churnrisk-churn v1, no CLV model" in out


def test_train_runs_on_300_accounts_with_default_settings(worlds, store, capsys):
    capsys.readouterr()
    assert invoke(["train", worlds / "small"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("plan: ")]
    assert line.startswith("plan: 2 of at most 3 folds on a monthly grid from 2025-02-01,")
    # both folds' two latest dates hold fewer than 10 churned accounts each: by account;
    # the final model's rows reach them on the 3 latest dates (1 to stop, 2 to calibrate)
    assert line.count("slices by account") == 2
    assert line.endswith("slices by time)")
    assert "gate: version 1 is champion" in out


def test_no_fold_on_6_months_exits_2_saying_how_much_more_history(worlds, store, capsys):
    capsys.readouterr()
    assert invoke(["backtest", worlds / "tiny"]) == 2
    (err,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    # 2024-11-01 to 2025-05-01; the 30-day warm-up's monthly grid, 2024-12-01 on, closes
    # the labels of 12-01 and 01-01 only. A fold needs 3 dates (to 2025-02-01), a test
    # date 120 days later (06-01) closing 120 days after it (09-29): 151 days after the end
    assert err == (
        "error: no honest backtest is possible: the test block from 2025-01-01 has 0"
        " label-closed as-of dates 120 days (the label horizon and grace) before it, a fold"
        " needs 3 (backtest.min_train_dates): it takes about 5 more months of history"
    )
