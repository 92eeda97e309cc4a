"""`churnrisk score` on a small world: two runs, the second compared with the first."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from cli_invoke import invoke
from quick_config import QUICK_TOML as QUICK

TIERS = """
[scoring]
tiers = { critical = 0.4, watch = 0.1 }
low_tier = "fine"
top_drivers = 2
change_drivers = 4
"""

LINE = re.compile(
    r"^scored (?P<n>[\d,]+) accounts as of (?P<as_of>\d{4}-\d\d-\d\d) \((?P<tiers>[^;]+);"
    r" MRR at risk (?P<mrr>[\d,]+)(?:, (?P<change>[+-][\d,]+) since (?P<since>[\d-]+))?\)"
    r" with churnrisk-churn v(?P<v>\d+);"
    r" run (?P<run>[0-9a-f]{32}) in (?P<url>\S+?)"
    r"(?:; (?P<imported>[\d,]+) CS activities imported from before (?P<before>[\d-]+))?$"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_score")
    args = ["generate", "--out", root / "world", "--accounts", 400, "--months", 26]
    assert invoke([*args, "--seed", 11, "--start", "2024-09-01"]) == 0
    (root / "quick.toml").write_text(QUICK)
    (root / "tiers.toml").write_text(TIERS)
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private CHURNRISK_DATA_DIR: MLflow store and scores.db."""
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CHURNRISK_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.mark.slow
def test_score_twice_and_explain_the_change(world, home, capsys):
    from churnrisk.store import ScoreStore

    data = world / "world"
    assert invoke(["train", data, "--config", world / "quick.toml"]) == 0
    capsys.readouterr()

    assert invoke(["score", data, "--as-of", "2026-10-01"]) == 0
    first = capsys.readouterr()
    m1 = LINE.match(first.out.strip())
    assert m1, first.out
    assert m1["as_of"] == "2026-10-01"
    assert m1["change"] is None  # the first run: nothing to compare with
    assert m1["v"] == "1"
    assert m1["url"] == f"sqlite:///{home / 'scores.db'}"
    assert re.fullmatch(r"[\d,]+ high, [\d,]+ medium, [\d,]+ low", m1["tiers"])
    assert "… building features as of 2026-10-01" in first.err
    assert "… writing" in first.err

    assert invoke(["score", data]) == 0  # default: the day after the data ends
    second = capsys.readouterr()
    m2 = LINE.match(second.out.strip())
    assert m2, second.out
    assert m2["as_of"] == "2026-11-01"
    assert "… reading the previous run " + m1["run"] in second.err
    # the world's CS history enters the store point in time: each run what came before it
    history = pd.read_parquet(data / "activities.parquet")["occurred_at"]
    before = int((history < pd.Timestamp("2026-10-01", tz="UTC")).sum())
    assert (m1["imported"], m1["before"]) == (str(before), "2026-10-01")
    assert (m2["imported"], m2["before"]) == (str(len(history) - before), "2026-11-01")
    assert "… building features as of 2026-11-01 and 2026-10-01 (the previous run)" in second.err

    store = ScoreStore(f"sqlite:///{home / 'scores.db'}")
    try:
        current = store.current_run()
        assert current.run_id == m2["run"]
        assert current.previous_run_id == m1["run"]
        assert current.accounts == int(m2["n"].replace(",", ""))
        was = store.run_scores(m1["run"]).set_index("account_id")
        now = store.run_scores(m2["run"]).set_index("account_id")
    finally:
        store.close()
    counts = now["risk_tier"].value_counts()
    assert m2["tiers"] == ", ".join(f"{counts.get(t, 0):,} {t}" for t in ("high", "medium", "low"))
    assert m2["mrr"] == f"{now['mrr_at_risk'].sum():,.0f}"
    change = now["mrr_at_risk"].sum() - was["mrr_at_risk"].sum()
    assert (m2["change"], m2["since"]) == (f"{change:+,.0f}", "2026-10-01")
    common = now.index.intersection(was.index)
    assert len(common) > 200
    np.testing.assert_array_equal(
        now.loc[common, "previous_probability"], was.loc[common, "churn_probability"]
    )
    np.testing.assert_allclose(
        now.loc[common, "probability_change"],
        now.loc[common, "churn_probability"] - was.loc[common, "churn_probability"],
    )
    assert now.loc[now.index.difference(was.index), "probability_change"].isna().all()
    moved = now.loc[common, "change_drivers"]
    assert (moved.map(len) > 0).mean() > 0.9
    item = next(items[0] for items in moved if items)
    assert set(item) == {
        "feature",
        "meaning",
        "before",
        "after",
        "before_display",
        "after_display",
        "contribution_change",
        "direction",
        "text",
    }
    assert item["direction"] in ("raised", "lowered")
    assert " risk" in item["text"]
    assert (now["drivers"].map(len) > 0).all()

    # tiers and driver counts from a configuration's [scoring] table
    assert invoke(["score", data, "--config", world / "tiers.toml"]) == 0
    third = LINE.match(capsys.readouterr().out.strip())
    assert third
    assert re.fullmatch(r"[\d,]+ critical, [\d,]+ watch, [\d,]+ fine", third["tiers"])
    store = ScoreStore(f"sqlite:///{home / 'scores.db'}")
    try:
        run = store.current_run()
        rows = store.run_scores(third["run"])
    finally:
        store.close()
    assert run.tiers == {"critical": 0.4, "watch": 0.1}
    # 1 Nov scored again: it replaces the date's scores and still compares with 1 Oct,
    # not with the first run of 1 Nov (which would show no change at all)
    assert run.previous_run_id == m1["run"]
    assert third["since"] == "2026-10-01"
    np.testing.assert_array_equal(
        rows.set_index("account_id").loc[common, "probability_change"],
        now.loc[common, "probability_change"],
    )
    assert (rows["change_drivers"].map(len) > 0).mean() > 0.9
    assert rows["drivers"].map(len).max() <= 4
    assert rows["change_drivers"].map(len).max() <= 4


def test_score_without_a_champion_says_to_train_first(world, home, capsys):
    assert invoke(["score", world / "world"]) == 1
    assert "run `churnrisk train DATA` first" in capsys.readouterr().err
    assert not (home / "scores.db").exists()


@pytest.mark.slow
def test_score_refuses_a_date_after_the_data_or_not_a_date(world, home, capsys):
    data = world / "world"
    assert invoke(["train", data, "--config", world / "quick.toml"]) == 0
    capsys.readouterr()
    assert invoke(["score", data, "--as-of", "2027-01-01"]) == 1
    message = capsys.readouterr().err
    assert "--as-of 2027-01-01 is after the end of the data" in message
    assert "score as of 2026-11-01 or earlier" in message
    assert invoke(["score", data, "--as-of", "01/10/2026"]) == 1
    assert "--as-of '01/10/2026' is not a date; write it as YYYY-MM-DD" in capsys.readouterr().err
