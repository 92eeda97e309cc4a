"""Candidate churn models: one interface, exact contributions, plain-text state, the choice."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from churnrisk.config import CandidatesConfig, ChurnModelConfig, RunConfig
from churnrisk.models import ChurnRiskModels, LogisticBaseline, train_models
from churnrisk.models.candidates import (
    CANDIDATE_KINDS,
    Candidate,
    LinearForm,
    auc_standard_error,
    candidate_from_state,
    capacity,
    choose_candidate,
    distinct_probabilities,
    fit_candidates,
    sample_accounts,
    search_config,
)
from churnrisk.models.explain import drivers, global_importance
from churnrisk.models.slices import time_slices

FAST = ChurnModelConfig(n_estimators=60, early_stopping_rounds=10)
SEARCH = CandidatesConfig(search_trials=3)


@pytest.fixture(scope="module")
def slices(planted_panel):
    return time_slices(planted_panel, 2)


@pytest.fixture(scope="module")
def fitted(slices):
    return fit_candidates(slices, config=FAST, candidates=SEARCH, random_state=3)


def test_capacity_follows_the_documented_formulas():
    small = capacity(1200, 60, ChurnModelConfig())
    # leaf: max(1200 / 200, 2 * 1200 / 60) = 40; leaves: round(60 / 40) = 2 -> 3;
    # trees: round(25 * sqrt(60)) = 194; patience: 194 // 10 = 19
    assert (small.min_child_samples, small.num_leaves) == (40, 3)
    assert (small.n_estimators, small.early_stopping_rounds) == (194, 19)
    big = capacity(100_000, 6_000, ChurnModelConfig())
    # every value reaches the configured bound
    assert (big.min_child_samples, big.num_leaves, big.n_estimators) == (200, 7, 500)
    assert big.early_stopping_rounds == 50
    tiny = capacity(40, 2, ChurnModelConfig())
    assert (tiny.min_child_samples, tiny.num_leaves, tiny.n_estimators) == (40, 3, 100)


def test_every_kind_is_a_candidate_with_contributions_summing_to_the_raw_score(
    fitted, planted_panel
):
    assert list(fitted) == list(CANDIDATE_KINDS)
    rows = planted_panel.head(300)
    for name, model in fitted.items():
        assert isinstance(model, Candidate), name
        contrib = model.contributions(rows)
        assert list(contrib.columns) == [*model.frame_.feature_names_, "bias"]
        np.testing.assert_allclose(contrib.sum(axis=1), model.predict_raw(rows), atol=1e-9)
        p = model.predict_proba(rows)
        assert ((p > 0) & (p < 1)).all(), name
        assert model.feature_importance().index[0] == "dau_mau_30d", name


def test_logistic_candidate_ranks_exactly_as_the_baseline(fitted, slices, planted_panel):
    base = LogisticBaseline(random_state=3).fit(slices.rows)
    rows = planted_panel.tail(400)
    ours = fitted["logistic"]
    np.testing.assert_allclose(
        ours.predict_raw(rows),
        base.pipeline_.decision_function(base._x(rows)),
        atol=1e-9,
    )
    # Platt's map is strictly increasing: calibration keeps the ranking
    np.testing.assert_array_equal(
        rankdata(ours.predict_proba(rows)), rankdata(base.predict_proba(rows))
    )
    assert ours.to_state()["meta"]["calibrator"]["method"] == "sigmoid"


def test_linear_form_reads_indicators_one_hots_and_dropped_features(planted_panel):
    rows = planted_panel.head(200).copy()
    rows.loc[rows.index[:20], "mrr"] = np.nan  # a missing-value indicator column
    rows["tickets_30d"] = np.nan  # no value in training: the imputer drops it
    rows["region"] = pd.Categorical([None] * len(rows), categories=["x"])  # dropped too
    with pytest.warns(UserWarning, match="Skipping features without any observed values"):
        base = LogisticBaseline().fit(rows)
    form = LinearForm.from_baseline(base)
    mrr = next(f for f in form.params["numeric"] if f["name"] == "mrr")
    assert set(mrr) == {"name", "median", "value", "missing"}
    # no value to impute: only its (constant) missing-value indicator is left
    tickets = next(f for f in form.params["numeric"] if f["name"] == "tickets_30d")
    assert set(tickets) == {"name", "median", "missing"}
    plan = next(f for f in form.params["categorical"] if f["name"] == "plan")
    assert sorted(plan["levels"]) == ["x", "y", "z"]
    assert "region" not in {f["name"] for f in form.params["categorical"]}
    terms = form.terms(base.frame_.transform(rows))
    assert (terms["tickets_30d"] == 0).all()
    assert (terms["region"] == 0).all()
    np.testing.assert_allclose(
        terms.sum(axis=1), base.pipeline_.decision_function(base._x(rows)), atol=1e-9
    )


def test_search_is_seeded_bounded_and_starts_from_the_sized_settings(slices):
    base = FAST.model_copy(update={"num_leaves": 5, "min_child_samples": 40})
    one = search_config(slices, base, trials=3, timeout_s=60, random_state=1)
    two = search_config(slices, base, trials=3, timeout_s=60, random_state=1)
    assert one.trials == 3
    assert one.config == two.config
    assert one.best_value == two.best_value
    assert 2 <= one.config.num_leaves <= 10
    assert 10 <= one.config.min_child_samples <= 160
    assert one.seconds > 0
    assert json.dumps(one.to_dict())


def test_sample_accounts_keeps_whole_accounts_up_to_the_cap():
    rows = pd.DataFrame({"account_id": ["a", "a", "b", "b", "c", "c", "d", "d"], "x": range(8)})
    assert sample_accounts(rows, 8, random_state=0) is rows
    half = sample_accounts(rows, 4, random_state=0)
    assert len(half) == 4
    assert half.groupby("account_id").size().tolist() == [2, 2]  # whole accounts
    assert half.equals(sample_accounts(rows, 4, random_state=0))  # seeded
    assert len(sample_accounts(rows, 3, random_state=0)) == 2  # 4 x 3 // 8 = 1 account


def test_search_on_a_sample_is_seeded_and_scales_leaf_sizes_back(slices):
    base = FAST.model_copy(update={"num_leaves": 5, "min_child_samples": 40})
    cap = len(slices.train) // 2
    one = search_config(slices, base, trials=3, timeout_s=60, random_state=1, max_rows=cap)
    two = search_config(slices, base, trials=3, timeout_s=60, random_state=1, max_rows=cap)
    assert one.config == two.config
    assert one.best_value == two.best_value
    # the chosen leaf size is in the full slice's units: within the full-scale space
    assert 10 <= one.config.min_child_samples <= 160


@pytest.mark.parametrize("kind", CANDIDATE_KINDS)
def test_bundle_round_trip_for_each_kind(kind, planted_panel, tmp_path):
    config = RunConfig(churn=FAST, candidates=CandidatesConfig(search_trials=2), seed=5)
    models = train_models(planted_panel, config, kind=kind)
    assert models.churn.kind == kind
    models.save(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert ("churn.txt" in names) == (kind != "logistic")
    meta = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert meta["churn"]["kind"] == kind
    back = ChurnRiskModels.load(tmp_path / "m")
    rows = planted_panel.head(200)
    pd.testing.assert_frame_equal(models.predict(rows), back.predict(rows))
    np.testing.assert_array_equal(
        models.churn.contributions(rows).to_numpy(), back.churn.contributions(rows).to_numpy()
    )
    ds = drivers(back.churn, rows, top=2, direction="both")
    low = int(np.argmin(rows["dau_mau_30d"].to_numpy()))
    assert ds[low][0].feature == "dau_mau_30d"
    assert global_importance(back.churn)["feature"].iloc[0] == "dau_mau_30d"


def test_state_without_kind_is_a_lightgbm_churn_model(fitted):
    state = fitted["lightgbm"].to_state()
    legacy = {"booster": state["booster"], "meta": state["meta"]}
    assert candidate_from_state(legacy).kind == "lightgbm"


def m(roc, pr):
    return {"roc_auc": roc, "pr_auc": pr}


@pytest.mark.parametrize(
    ("cands", "chosen", "eligible"),
    [
        # lightgbm is best on PR-AUC and at least the baseline on both
        ({"logistic": m(0.80, 0.30), "lightgbm": m(0.82, 0.33), "blend": m(0.83, 0.32)},
         "lightgbm", True),
        # lightgbm is best on PR-AUC but behind the baseline's ROC-AUC: out
        ({"logistic": m(0.80, 0.30), "lightgbm": m(0.79, 0.35), "blend": m(0.81, 0.31)},
         "blend", True),
        # a tie on PR-AUC goes to the simpler model
        ({"logistic": m(0.80, 0.30), "lightgbm": m(0.81, 0.30)}, "logistic", True),
        # the logistic candidate is eligible even a little below the baseline pooled
        ({"logistic": m(0.799, 0.298), "lightgbm": m(0.796, 0.299), "blend": m(0.78, 0.40)},
         "logistic", True),
        # no logistic candidate and none at least the baseline: the best on PR-AUC
        ({"lightgbm": m(0.70, 0.20), "blend": m(0.75, 0.25)}, "blend", False),
    ],
)  # fmt: skip
def test_choice_follows_the_stated_rule(cands, chosen, eligible):
    assert choose_candidate(cands, m(0.80, 0.30), metric="pr_auc") == (chosen, eligible)


def test_auc_standard_error_matches_hanley_and_mcneil():
    # Q1 = 0.8 / 1.2 = 0.6667, Q2 = 1.28 / 1.8 = 0.7111;
    # var = (0.16 + 49 * 0.02667 + 949 * 0.07111) / 47500 = 0.0014516, se = 0.0381
    assert auc_standard_error(0.8, 50, 950) == pytest.approx(0.0381, abs=1e-4)
    assert auc_standard_error(0.8, 0, 10) == float("inf")


def test_distinct_probabilities_ignore_float_noise():
    assert distinct_probabilities(np.array([0.1, 0.1 + 1e-12, 0.2, 0.2, 0.3])) == 3
