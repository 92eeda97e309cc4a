import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import make_planted_panel
from scipy.stats import rankdata

from churnrisk.config import (
    BacktestConfig,
    ChurnModelConfig,
    ClvModelConfig,
    LabelConfig,
    RunConfig,
)
from churnrisk.errors import ConfigError, SchemaError
from churnrisk.features.labels import revenue_window_days
from churnrisk.models import backtest, mrr_run_rate, plan_folds
from churnrisk.models.backtest import CHURN_METRICS, CLV_METRICS, clv_months_needed
from churnrisk.models.plan import NoBacktestError

CONFIG = RunConfig(
    churn=ChurnModelConfig(n_estimators=150, early_stopping_rounds=20),
    clv=ClvModelConfig(n_estimators=150, early_stopping_rounds=20),
    backtest=BacktestConfig(folds=2, capacity_k=50),
)


@pytest.fixture(scope="module")
def result(model_panel):
    return backtest(model_panel, CONFIG)


def censored_planted_panel(months: int, config: RunConfig = CONFIG) -> pd.DataFrame:
    """The planted panel over ``months`` of history from 2025-01-01, labels censored.

    Monthly as-of dates from 2025-01-01 up to the month before the end of observation
    (2025-01-01 plus ``months`` months); a label is NULL unless its window closed by then.
    """
    panel = make_planted_panel(n_accounts=300, n_dates=months)
    end = pd.Timestamp("2025-01-01") + pd.DateOffset(months=months)
    lab = config.labels
    churn_open = panel["as_of"] + pd.Timedelta(days=lab.horizon_days + lab.grace_days) > end
    panel.loc[churn_open, "churned"] = pd.NA
    rev_open = panel["as_of"] + pd.Timedelta(days=revenue_window_days(lab)) > end
    panel.loc[rev_open, "revenue_next_12m"] = np.nan
    return panel


@pytest.fixture(scope="module")
def long_panel():
    # exactly the history a 2-fold CLV backtest needs (27 months, see clv_months_needed)
    return censored_planted_panel(clv_months_needed(CONFIG))


@pytest.fixture(scope="module")
def long_result(long_panel):
    return backtest(long_panel, CONFIG)


def test_no_training_label_window_reaches_the_test_dates(model_panel):
    lab = CONFIG.labels
    gap = timedelta(days=lab.horizon_days + lab.grace_days)
    plans = plan_folds(model_panel, CONFIG)
    assert len(plans) == 2
    for plan in plans:
        assert max(plan.churn_train_as_of) + gap <= min(plan.churn_test_as_of)
    # the folds move forward and test on the latest labelled dates
    assert plans[0].churn_test_as_of[0] < plans[1].churn_test_as_of[0]
    labelled = model_panel.loc[model_panel["churned"].notna(), "as_of"].max().date()
    assert plans[-1].churn_test_as_of[-1] == labelled


def test_clv_folds_test_the_latest_revenue_dates_one_revenue_window_after_training(
    long_panel, long_result
):
    r_gap = timedelta(days=revenue_window_days(CONFIG.labels))
    plans = plan_folds(long_panel, CONFIG)
    revenue = sorted(
        {d.date() for d in long_panel.loc[long_panel["revenue_next_12m"].notna(), "as_of"]}
    )
    assert [d for p in plans for d in p.clv_test_as_of] == revenue[-2:]
    for plan in plans:
        assert len(plan.clv_test_as_of) == CONFIG.backtest.test_months
        assert len(plan.clv_train_as_of) >= CONFIG.backtest.min_train_dates
        # every training row's revenue window (early-stopping slice included) closed
        assert max(plan.clv_train_as_of) + r_gap <= min(plan.clv_test_as_of)
        # the churn test dates are later: their revenue is still open
        assert min(plan.churn_test_as_of) > max(plan.clv_test_as_of)
    # the fitted folds used exactly those rows, as the JSON says
    for fold in long_result.to_dict()["folds"]:
        clv = fold["clv"]
        last_train = date.fromisoformat(clv["train_as_of"][1])
        assert last_train + r_gap <= date.fromisoformat(clv["test_as_of"][0])
        rows = long_result.clv_predictions.loc[long_result.clv_predictions["fold"] == fold["fold"]]
        assert len(rows) == clv["n_test"] > 0
        assert {d.date().isoformat() for d in rows["as_of"]} == set(clv["test_as_of"])
        assert rows["revenue_next_12m"].notna().all()


def test_clv_metrics_are_numbers_with_enough_history(long_result):
    out = long_result.to_dict()
    for block in [out["clv"], *(f["clv"] for f in out["folds"])]:
        for metrics in (block["model"], block["baselines"]["mrr_x12"]):
            assert all(isinstance(metrics[m], float) for m in CLV_METRICS), metrics
    assert not any("CLV metrics are null" in n for n in long_result.notes)


def test_the_run_rate_is_mrr_times_the_window_in_months():
    panel = pd.DataFrame({"mrr": [100.0, np.nan, 0.0]})
    assert mrr_run_rate(panel, months=6).tolist() == [600.0, 0.0, 0.0]
    with pytest.raises(SchemaError, match="needs the mrr column"):
        mrr_run_rate(panel.rename(columns={"mrr": "x"}), months=12)
    with pytest.raises(ConfigError, match="at least 1 month"):
        mrr_run_rate(panel, months=0)


def test_the_clv_baseline_is_the_run_rate_over_the_clv_target_window():
    # a 6-month revenue target is compared with MRR x 6, not MRR x 12
    config = CONFIG.model_copy(update={"labels": LabelConfig(revenue_months=6)})
    panel = censored_planted_panel(clv_months_needed(config), config)
    result = backtest(panel, config)
    preds = result.clv_predictions
    assert len(preds) > 0
    np.testing.assert_array_equal(preds["mrr_x12"], 6 * preds["mrr"].fillna(0.0))
    assert isinstance(result.to_dict()["clv"]["baselines"]["mrr_x12"]["mae"], float)


def test_short_panel_gives_null_clv_with_the_months_needed(long_panel):
    # one month short of clv_months_needed: the churn backtest runs, CLV is null
    short = censored_planted_panel(clv_months_needed(CONFIG) - 1)
    result = backtest(short, CONFIG)
    out = result.to_dict()
    assert out["churn"]["model"]["roc_auc"] > 0.9  # the planted signal
    assert all(v is None for v in out["clv"]["model"].values())
    assert all(v is None for v in out["clv"]["baselines"]["mrr_x12"].values())
    for fold in out["folds"]:
        assert fold["clv"]["test_as_of"] == []
        assert fold["clv"]["train_as_of"] == []
        assert fold["clv"]["n_train"] == fold["clv"]["n_test"] == 0
        assert fold["churn"]["n_test"] > 0
    assert len(result.clv_predictions) == 0
    (note,) = [n for n in result.notes if "CLV metrics are null" in n]
    assert "needs 27 months of monthly history" in note
    assert "CLV fold 1 (testing from 2026-02-01) has 2 as-of dates" in note


def test_clv_months_needed_counts_the_two_revenue_windows():
    assert clv_months_needed(RunConfig()) == 3 + 3 + 24 - 2  # the defaults: 28 months


def test_fold_train_rows_obey_the_gap(result):
    lab = CONFIG.labels
    for fold in result.to_dict()["folds"]:
        last_train = np.datetime64(fold["churn"]["train_as_of"][1])
        first_test = np.datetime64(fold["churn"]["test_as_of"][0])
        assert last_train + np.timedelta64(lab.horizon_days + lab.grace_days, "D") <= first_test


@pytest.mark.parametrize("which", ["result", "long_result"])
def test_to_dict_has_exactly_the_issue_shape(which, request):
    res = request.getfixturevalue(which)
    out = json.loads(json.dumps(res.to_dict(), allow_nan=False))  # plain JSON, NaN as null
    assert list(out) == ["churn", "clv", "folds", "plan"]
    assert len(out["plan"]["folds"]) == len(out["folds"])
    assert out["plan"]["line"].startswith("plan: 2 of at most 2 folds on a monthly grid")
    for block in [out, *out["folds"]]:
        assert set(block["churn"]) >= {"model", "baselines"}
        assert set(block["churn"]["baselines"]) == {"logistic", "usage_drop"}
        for metrics in [block["churn"]["model"], *block["churn"]["baselines"].values()]:
            assert list(metrics) == list(CHURN_METRICS)
        assert set(block["clv"]) >= {"model", "baselines"}
        assert set(block["clv"]["baselines"]) == {"mrr_x12"}
        assert list(block["clv"]["model"]) == list(CLV_METRICS)
        assert list(block["clv"]["baselines"]["mrr_x12"]) == list(CLV_METRICS)
    # overall blocks hold metrics, and for churn every candidate and the chosen one
    assert list(out["churn"]) == [
        "model",
        "baselines",
        "candidates",
        "chosen",
        "fit_seconds",
        "search_seconds",
    ]
    assert list(out["churn"]["candidates"]) == ["logistic", "lightgbm", "blend"]
    for metrics in out["churn"]["candidates"].values():
        assert list(metrics) == [*CHURN_METRICS, "distinct_probabilities"]
    chosen = out["churn"]["candidates"][out["churn"]["chosen"]]
    assert out["churn"]["model"] == {k: chosen[k] for k in CHURN_METRICS}
    assert list(out["clv"]) == ["model", "baselines"]
    # each fold: one block per task with its own dates and row counts
    per_task = ["test_as_of", "train_as_of", "n_train", "n_test", "model", "baselines"]
    assert [f["fold"] for f in out["folds"]] == [1, 2]
    for fold in out["folds"]:
        assert list(fold) == ["fold", "churn", "clv"]
        assert list(fold["churn"]) == per_task
        assert list(fold["clv"]) == per_task
        assert len(fold["churn"]["test_as_of"]) == CONFIG.backtest.test_months
        assert len(fold["churn"]["train_as_of"]) == 2
        assert fold["churn"]["n_test"] > 0
        assert fold["churn"]["n_train"] > fold["churn"]["n_test"]
    model = out["churn"]["model"]
    assert 0.5 < model["roc_auc"] <= 1
    assert model["ece"] is not None
    # not a probability: null with a note, never a made-up number
    assert out["churn"]["baselines"]["usage_drop"]["brier"] is None
    assert any("usage_drop: brier is null" in n for n in res.notes)


def test_clv_is_null_with_a_note_on_the_short_generated_world(result):
    # 18 months of data: no revenue label closes a year before a revenue-labelled date
    out = result.to_dict()
    assert out["clv"]["model"]["mae"] is None
    assert out["clv"]["baselines"]["mrr_x12"]["mae"] is None
    (note,) = [n for n in result.notes if "CLV metrics are null" in n]
    assert f"needs {clv_months_needed(CONFIG)} months" in note
    assert "7 revenue-labelled as-of dates (2024-11-01 to 2025-05-01)" in note


def test_pooled_predictions_cover_every_test_row(result, long_result):
    for res in (result, long_result):
        pred = res.predictions
        assert len(pred) == sum(f.n_test for f in res.folds)
        assert pred["model"].between(0, 1).all()
        assert set(pred["fold"]) == {1, 2}
        assert len(res.clv_predictions) == sum(f.clv_n_test for f in res.folds)
    assert (long_result.clv_predictions["clv_model"] >= 0).all()


def test_folds_are_a_maximum_and_too_few_dates_say_how_many_months_are_needed(model_panel):
    # 15 labelled monthly dates, 2024-11 to 2026-01: a fold testing from 2025-05-01 has
    # 2024-11, 2024-12 and 2025-01 at least 120 days before it; one testing from
    # 2025-04-01 has only two such dates, so 9 folds of the 13 asked for
    cfg = CONFIG.model_copy(update={"backtest": BacktestConfig(folds=13)})
    plans = plan_folds(model_panel, cfg)
    assert [p.churn_test_as_of for p in plans] == [[date(2025, m, 1)] for m in range(5, 13)] + [
        [date(2026, 1, 1)]
    ]
    assert plans[0].churn_train_as_of == [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1)]
    # 16 training dates: the 16th as-of date (2026-02-01), 120 days to its test date,
    # 120 more for that label to close: 2026-09-29, ~5 months after the end (2026-05-01)
    cfg = CONFIG.model_copy(update={"backtest": BacktestConfig(folds=2, min_train_dates=16)})
    with pytest.raises(
        NoBacktestError,
        match=r"^no honest backtest is possible: the test block from 2026-01-01 has 11 label-closed"
        r" as-of dates 120 days .* needs 16 .*: it takes about 5 more months of history$",
    ):
        backtest(model_panel, cfg)


def test_the_chosen_candidate_is_the_model_and_never_behind_the_baseline(result, long_result):
    for res in (result, long_result):
        churn = res.to_dict()["churn"]
        cands, base = churn["candidates"], churn["baselines"]["logistic"]
        pred = res.predictions
        # within a fold the logistic candidate ranks exactly as the baseline fitted on the
        # same rows (pooled over folds, calibration moves one fold's scores against another's)
        for _, fold in pred.groupby("fold"):
            np.testing.assert_array_equal(
                rankdata(fold["candidate_logistic"]), rankdata(fold["logistic"])
            )
        chosen = cands[churn["chosen"]]
        if churn["chosen"] != "logistic":
            assert chosen["roc_auc"] >= base["roc_auc"]
            assert chosen["pr_auc"] >= base["pr_auc"]
        assert chosen["pr_auc"] >= cands["logistic"]["pr_auc"]
        np.testing.assert_array_equal(pred["model"], pred[f"candidate_{churn['chosen']}"])
        assert churn["search_seconds"] > 0
        assert churn["fit_seconds"] >= churn["search_seconds"]
