"""`churnrisk scorecard`, `winback` and `alerts test` on a small world with kept runs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from cli_invoke import invoke
from quick_config import QUICK_TOML as QUICK
from webhook_receiver import SECRET, receiver_fixture  # noqa: F401


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_review")
    args = ["generate", "--out", root / "world", "--accounts", 300, "--months", 20]
    assert invoke([*args, "--seed", 3, "--start", "2025-01-01"]) == 0
    (root / "quick.toml").write_text(QUICK)
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private CHURNRISK_DATA_DIR, and no alerts file unless a test sets one."""
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "home"))
    for name in ("MLFLOW_TRACKING_URI", "CHURNRISK_DATABASE_URL", "CHURNRISK_ALERTS"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.mark.slow
def test_scorecard_and_winback_over_kept_runs(world, home, tmp_path, capsys):
    data = world / "world"
    assert invoke(["train", data, "--config", world / "quick.toml"]) == 0
    capsys.readouterr()
    history = pd.read_parquet(data / "activities.parquet")["occurred_at"]
    since = pd.Timestamp.min.tz_localize("UTC")
    for day in ("2026-01-01", "2026-03-01", "2026-06-01"):
        assert invoke(["score", data, "--as-of", day]) == 0
        # each run imports the CS history of before its as-of date; what is stored stays
        until = pd.Timestamp(day, tz="UTC")
        new = int(((history >= since) & (history < until)).sum())
        assert f"; {new} CS activities imported from before {day}" in capsys.readouterr().out
        since = until

    plot = tmp_path / "card.png"
    assert invoke(["scorecard", data, "--k", 20, "--plot", plot]) == 0
    shown = capsys.readouterr()
    last = shown.out.strip().splitlines()[-1]
    m = re.fullmatch(
        rf"graded (\d) run\(s\) \((\d) still open\) from sqlite:///{home}/scores\.db;"
        rf" plot in {plot}",
        last,
    )
    assert m, shown.out
    assert int(m[1]) + int(m[2]) == 3
    assert "precision@20" in shown.out
    assert re.search(r"flagged early: [\d,]+ of [\d,]+ churns were high risk first", shown.out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert invoke(["scorecard", data, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["k"] == 20  # the champion's backtest capacity_k (quick.toml)
    assert doc["graded_runs"] + doc["open_runs"] == 3
    assert {"feature", "psi", "drifted"} <= set(doc["drift"][0])

    assert invoke(["winback", data, "--as-of", "2026-06-01", "--days", 120]) == 0
    listed = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"[\d,]+ account\(s\) churned in the 120 days before 2026-06-01; [\d,]+ still use the"
        r" product",
        listed,
    ), listed


def test_alerts_test_says_where_the_sample_went(home, tmp_path, receiver, monkeypatch, capsys):
    from churnrisk.settings import get_settings

    endpoint = receiver([])
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        f"[[webhook]]\nurl = '{endpoint.url}'\nsecret_env = 'HOOK_SECRET'\n", encoding="utf-8"
    )
    monkeypatch.setenv("CHURNRISK_ALERTS", str(alerts))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    get_settings.cache_clear()
    assert invoke(["alerts", "test"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"alerts: 1 account(s); webhook {endpoint.url} delivered"
    )
    monkeypatch.delenv("HOOK_SECRET")
    assert invoke(["alerts", "test"]) == 1
    assert capsys.readouterr().out.strip() == (
        f"alerts: 1 account(s); webhook {endpoint.url} failed"
        " (secret variable HOOK_SECRET is not set; nothing sent)"
    )
    monkeypatch.delenv("CHURNRISK_ALERTS")
    get_settings.cache_clear()
    assert invoke(["alerts", "test"]) == 1
    assert "no alerts file configured: set CHURNRISK_ALERTS" in capsys.readouterr().err
