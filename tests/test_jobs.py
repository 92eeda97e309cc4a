"""The workflows of churnrisk.jobs called directly: settings in, result dataclasses out."""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import date
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from quick_config import QUICK
from spark_fixtures import spark_fixture  # noqa: F401
from webhook_receiver import SECRET, receiver_fixture  # noqa: F401

from churnrisk import jobs
from churnrisk.config import RunConfig
from churnrisk.errors import ConfigError
from churnrisk.features import build_features
from churnrisk.generate import GenerateSummary
from churnrisk.settings import Settings
from churnrisk.store import ScoreStore


@pytest.fixture(autouse=True)
def no_outside_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the tests alone: no tracking server or database of the machine."""
    for name in ("MLFLOW_TRACKING_URI", "CHURNRISK_DATABASE_URL", "CHURNRISK_DATA"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-account, 18-month world and a QUICK champion registered under ``home``."""
    from churnrisk.features import as_of_dates
    from churnrisk.generate import generate_world
    from churnrisk.models.bundle import train_models
    from churnrisk.tracking import Tracker, tracking_uri
    from churnrisk.validate import load

    root = tmp_path_factory.mktemp("jobs")
    summary = generate_world(root / "world", accounts=300, months=18, seed=5)
    config = RunConfig.model_validate(QUICK)
    ds = load(root / "world").dataset
    panel = build_features(ds, as_of_dates(summary.start, summary.end), labels=config.labels)
    tracker = Tracker(tracking_uri(root / "home"))
    versions = tracker.log_training(train_models(panel, config), panel=panel, fingerprint="t")
    tracker.promote(versions, {}, gate=config.gate, force=True)
    return root


def test_a_scoring_run_returns_what_the_store_holds(trained: Path, tmp_path: Path) -> None:
    from churnrisk.validate import load

    settings = Settings(data_dir=trained / "home", database_url=f"sqlite:///{tmp_path / 's.db'}")
    steps: list[str] = []

    class Recorded(jobs.Quiet):
        def step(self, message: str) -> None:
            steps.append(message)

    first = jobs.score(trained / "world", settings, as_of=date(2026, 3, 1), progress=Recorded())
    second = jobs.score(trained / "world", settings, as_of=date(2026, 5, 1))
    ds = load(trained / "world").dataset
    for outcome, day in ((first, date(2026, 3, 1)), (second, date(2026, 5, 1))):
        # one row per account paying on the day before: as many as the feature panel has
        assert outcome.run.accounts == len(build_features(ds, [day]))
        assert outcome.run.as_of == day
        assert outcome.store_url == settings.store_url
    assert steps[0] == "building features as of 2026-03-01"
    assert steps[-1] == f"writing {first.run.accounts:,} scores to the score store"
    with ScoreStore(settings.store_url) as store:
        current = store.current_run()
        assert current is not None
        assert current.run_id == second.run.run_id
        assert current.previous_run_id == first.run.run_id
        for outcome in (first, second):
            rows = store.run_scores(outcome.run.run_id)
            assert len(rows) == outcome.run.accounts
            counts = rows["risk_tier"].value_counts()
            assert outcome.tiers == (
                ("high", counts.get("high", 0)),
                ("medium", counts.get("medium", 0)),
                ("low", counts.get("low", 0)),
            )
            assert sum(n for _, n in outcome.tiers) == outcome.run.accounts
            assert outcome.mrr_at_risk == pytest.approx(rows["mrr_at_risk"].sum(), abs=1e-6)
    assert (first.change, first.since) == (None, None)  # nothing before it
    assert second.since == date(2026, 3, 1)
    assert second.change == pytest.approx(second.mrr_at_risk - first.mrr_at_risk, abs=1e-6)


def test_explain_gives_the_score_of_the_scoring_run(trained: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=trained / "home", database_url=f"sqlite:///{tmp_path / 's.db'}")
    day = date(2026, 3, 1)
    run = jobs.score(trained / "world", settings, as_of=day)
    with ScoreStore(settings.store_url) as store:
        rows = store.run_scores(run.run.run_id).set_index("account_id")
    account = str(rows.index[0])
    explained = jobs.explain(trained / "world", settings, account, as_of=day, top=3)
    assert explained.score["churn_probability"] == pytest.approx(
        rows.loc[account, "churn_probability"], abs=1e-12
    )
    assert 0 < len(explained.drivers) <= 6  # up to 3 in each direction
    assert explained.overall["share"].sum() == pytest.approx(1.0)
    assert list(explained.overall["gain"]) == sorted(explained.overall["gain"], reverse=True)


def test_scoring_without_a_champion_opens_no_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "home")
    with pytest.raises(ConfigError, match=r"no champion model in sqlite:///.*train DATA` first"):
        jobs.score(tmp_path / "no-data-either", settings)
    assert not (tmp_path / "home" / "scores.db").exists()


def test_demo_leaves_the_environment_and_the_settings_as_they_were(tmp_path: Path) -> None:
    # scikit-learn sets KMP_* variables for OpenMP when first imported: import it first
    import churnrisk.pipeline
    import churnrisk.scoring
    import churnrisk.tracking  # noqa: F401

    settings = Settings(data_dir=tmp_path / "elsewhere")
    before = dict(os.environ)
    stages: list[object] = []
    out = tmp_path / "demo"
    outcome = jobs.demo(
        out,
        settings,
        accounts=300,
        months=18,
        seed=2,
        config=RunConfig.model_validate(QUICK),
        done=stages.append,
    )
    assert dict(os.environ) == before
    assert settings.data_dir == tmp_path / "elsewhere"
    assert not (tmp_path / "elsewhere").exists()
    assert [type(s) for s in stages] == [
        GenerateSummary,
        jobs.Validated,
        jobs.PanelWritten,
        jobs.MetricsWritten,
        jobs.Trained,
        jobs.Backfilled,
        jobs.ScorecardWritten,
        jobs.CreatedKey,
        jobs.DemoOutcome,
    ]
    assert stages[-1] is outcome
    # the demo's own settings: its stores and its data in the out folder
    assert (outcome.settings.data_dir, outcome.settings.data) == (out, out / "data")
    assert outcome.world.start == date(2025, 5, 1)  # 18 months ending 2026-10-31
    assert outcome.trained.tracking_uri == f"sqlite:///{out / 'mlflow.db'}"
    assert outcome.scored.dates == tuple(date(2026, m, 1) for m in range(5, 11))
    for name in ("validation.json", "features.parquet", "metrics.json", "mlflow.db", "scores.db"):
        assert (out / name).exists()
    # the scorecard grades the backfilled runs whose label window (90 + 30 days) closed
    card = json.loads((out / "scorecard.json").read_text(encoding="utf-8"))
    assert (card["graded_runs"], card["open_runs"]) == (3, 4)
    assert [r["as_of"] for r in card["runs"]] == ["2026-05-01", "2026-06-01", "2026-07-01"]
    assert card["k"] == QUICK["backtest"]["capacity_k"]
    assert card == json.loads(json.dumps(outcome.scorecard.reviewed.to_dict(), default=str))
    assert (out / "scorecard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with ScoreStore(f"sqlite:///{out / 'scores.db'}") as store:
        current = store.current_run()
        assert current is not None
        assert current.run_id == outcome.scored.current.run.run_id
        assert current.as_of == date(2026, 11, 1)
        assert [run.run.as_of for run in outcome.scored.runs[:-1]] == list(outcome.scored.dates)
        verified = store.verify_key(outcome.key.key)
        assert verified is not None
        assert (verified.name, verified.scope) == ("demo", "write")
        # the world's CS history: every activity before the current run is in the store
        history = pd.read_parquet(out / "data" / "activities.parquet")
        known = history[history["occurred_at"] < pd.Timestamp(current.as_of, tz="UTC")]
        assert len(known) > 0
        stored = {a for a in known["account_id"] if store.activities.for_account(a)}
        assert stored == set(known["account_id"])
        assert sum(r.activities or 0 for r in outcome.scored.runs) == len(known)


@pytest.mark.parametrize(
    ("months", "start"),
    [
        (36, date(2023, 11, 1)),
        (26, date(2024, 9, 1)),
        (12, date(2025, 11, 1)),
        (1, date(2026, 10, 1)),
    ],
)
def test_the_demo_history_ends_on_31_october_2026(months: int, start: date) -> None:
    assert jobs.demo_start(months) == start


def test_months_before_counts_calendar_months_across_years() -> None:
    assert jobs.months_before(date(2026, 11, 1), 3) == date(2026, 8, 1)
    assert jobs.months_before(date(2026, 1, 15), 1) == date(2025, 12, 1)
    assert jobs.months_before(date(2026, 3, 31), 15) == date(2024, 12, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_one_worker_serves_the_given_settings_without_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churnrisk.api.app import create_app

    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    settings = Settings(data_dir=tmp_path / "home", data=tmp_path)
    announced: list[jobs.Service] = []
    before = dict(os.environ)
    port = free_port()
    service = jobs.serve(settings, port=port, key="crk_x", announce=announced.append)
    assert dict(os.environ) == before
    assert announced == [service]
    assert service == jobs.Service(
        base=f"http://127.0.0.1:{port}",
        workers=1,
        store_url=f"sqlite:///{tmp_path / 'home' / 'scores.db'}",
        data=tmp_path,
        key="crk_x",
    )
    with ScoreStore(service.store_url) as store:
        assert store.revision() == store.head_revision()  # migrated before serving
    ((app, options),) = calls
    assert isinstance(app, partial)
    assert (app.func, app.args) == (create_app, (settings,))
    assert options["factory"] is True
    assert options["workers"] == 1


def test_settings_hand_on_only_what_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, data=tmp_path / "world")
    assert settings.environment() == {
        "CHURNRISK_DATA": str(tmp_path / "world"),
        "CHURNRISK_DATA_DIR": str(tmp_path),
    }
    remote = settings.model_copy(
        update={"mlflow_tracking_uri": "http://mlflow:5000", "model_check_seconds": 0.0}
    )
    assert remote.environment() == {
        "CHURNRISK_DATA": str(tmp_path / "world"),
        "CHURNRISK_DATA_DIR": str(tmp_path),
        "CHURNRISK_MODEL_CHECK_SECONDS": "0.0",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }
    # a worker reading them from its environment gets the same settings
    for name, value in remote.environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == remote


def test_spark_workers_run_this_interpreter(spark, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyspark")
    context = spark.sparkContext
    saved = context.pythonExec
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    before = dict(os.environ)
    context.pythonExec = "python3"
    try:
        assert jobs.open_spark("local[2]") is spark  # the running session, reused
        assert context.pythonExec == sys.executable
        assert dict(os.environ) == before
        monkeypatch.setenv("PYSPARK_PYTHON", "/opt/python/bin/python3")
        context.pythonExec = "/opt/python/bin/python3"
        jobs.open_spark("local[2]")
        assert context.pythonExec == "/opt/python/bin/python3"  # the environment's wins
    finally:
        context.pythonExec = saved


def _scored(trained: Path, tmp_path: Path, days: list[date], **extra: object) -> Settings:
    settings = Settings(
        data_dir=trained / "home", database_url=f"sqlite:///{tmp_path / 's.db'}", **extra
    )
    for day in days:
        jobs.score(trained / "world", settings, as_of=day)
    return settings


def test_review_grades_the_runs_with_the_training_label(trained: Path, tmp_path: Path) -> None:
    from churnrisk.validate import load

    days = [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    settings = _scored(trained, tmp_path, days)
    done = jobs.review(trained / "world", settings, k=10)
    card = done.card
    assert done.latest.as_of == date(2026, 2, 1)
    assert card.graded_runs + card.open_runs == 3
    assert card.graded_runs >= 1
    # the tiers' outcomes are the training panel's labels of the stored accounts
    ds = load(trained / "world").dataset
    labels = build_features(ds, days, labels=RunConfig.model_validate(QUICK).labels)
    labels["as_of"] = pd.to_datetime(labels["as_of"]).dt.date
    with ScoreStore(settings.store_url) as store:
        rows = []
        for point in store.trend():
            scored = store.run_scores(point["run"].run_id, columns=["account_id", "risk_tier"])
            rows.append(scored.assign(as_of=point["run"].as_of))
    joined = pd.concat(rows).merge(labels, on=["account_id", "as_of"])
    joined = joined[joined["churned"].notna()]
    expected = {
        tier: (len(group), int(group["churned"].sum()))
        for tier, group in joined.groupby("risk_tier")
    }
    assert {t.tier: (t.accounts, t.churned) for t in card.tiers if t.accounts} == expected
    assert [r.accounts for r in card.runs] == [
        int((joined["as_of"] == r.as_of).sum()) for r in card.runs
    ]
    assert done.drift is not None
    assert set(done.drift.columns) == {"feature", "psi", "drifted"}
    assert (done.drift["psi"] >= 0).all()
    assert "mrr" in set(done.drift["feature"])


def test_win_back_carries_each_account_s_last_score(trained: Path, tmp_path: Path) -> None:
    settings = _scored(trained, tmp_path, [date(2026, 1, 1), date(2026, 3, 1)])
    found = jobs.win_back(trained / "world", settings, as_of=date(2026, 5, 1), days=120)
    rows = found.accounts
    assert found.as_of == date(2026, 5, 1)
    assert len(rows) > 0
    assert (rows["churn_day"] < date(2026, 5, 1)).all()
    scored = rows[rows["last_probability"].notna()]
    assert len(scored) > 0
    with ScoreStore(settings.store_url) as store:
        runs = {p["run"].as_of: p["run"].run_id for p in store.trend()}
        for row in scored.to_dict("records"):
            # the latest run on or before its churn day holds that probability
            day = max(d for d in runs if d <= row["churn_day"])
            stored = store.run_scores(runs[day]).set_index("account_id")
            assert row["last_probability"] == stored.loc[row["account_id"], "churn_probability"]


def test_alerts_are_sent_and_logged_after_a_run_and_a_dead_endpoint_fails_nothing(
    trained: Path, tmp_path: Path, receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = receiver([503])
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        f"[rules]\nrise_points = 5\n"
        f"[[webhook]]\nurl = '{endpoint.url}'\nsecret_env = 'HOOK_SECRET'\nbackoff_s = 0\n"
        f"[[webhook]]\nurl = 'http://127.0.0.1:{free_port()}/down'\nsecret_env = 'HOOK_SECRET'\n"
        "retries = 1\nbackoff_s = 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    before = _scored(trained, tmp_path, [date(2026, 1, 1)])
    settings = before.model_copy(update={"alerts": alerts})
    outcome = jobs.score(trained / "world", settings, as_of=date(2026, 3, 1))
    sent = outcome.alerts
    assert sent is not None
    assert [(d.status, d.attempts) for d in sent.deliveries] == [("delivered", 2), ("failed", 2)]
    body = json.loads(endpoint.received[-1]["body"])
    assert body["run"]["run_id"] == outcome.run.run_id
    assert len(body["alerts"]) == sent.alerts > 0
    assert all(r["signed"] for r in endpoint.received)
    with ScoreStore(settings.store_url) as store:
        assert store.current_run() == outcome.run  # the run landed whole
        logged = store.deliveries.recent()
    assert [(d.run_id, d.status) for d in logged[:2]] == [
        (outcome.run.run_id, "failed"),
        (outcome.run.run_id, "delivered"),
    ]
    assert sent.summary().startswith(f"alerts: {sent.alerts} account(s); webhook ")


def test_a_bad_alerts_file_stops_the_run_before_any_work(trained: Path, tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.toml"
    alerts.write_text("[[webhook]]\nurl = 'ftp://nowhere'\nsecret_env = 'S'\n", encoding="utf-8")
    settings = Settings(
        data_dir=trained / "home", database_url=f"sqlite:///{tmp_path / 's.db'}", alerts=alerts
    )
    with pytest.raises(ConfigError, match=r"webhook\.0\.url"):
        jobs.score(trained / "world", settings, as_of=date(2026, 3, 1))
    assert not (tmp_path / "s.db").exists()


def test_send_sample_reaches_every_endpoint(
    tmp_path: Path, receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = receiver([])
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        f"[[webhook]]\nurl = '{endpoint.url}'\nsecret_env = 'HOOK_SECRET'\n", encoding="utf-8"
    )
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    settings = Settings(data_dir=tmp_path / "home", alerts=alerts)
    sent = jobs.send_sample(settings)
    assert [d.status for d in sent.deliveries] == ["delivered"]
    assert json.loads(endpoint.received[0]["body"])["alerts"][0]["account_id"] == "SAMPLE-1"
    with pytest.raises(ConfigError, match="no alerts file configured"):
        jobs.send_sample(Settings(data_dir=tmp_path / "home"))
