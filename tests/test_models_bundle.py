import json

import numpy as np
import pandas as pd
import pytest

from churnrisk.config import ChurnModelConfig, ClvModelConfig, RunConfig
from churnrisk.errors import DataError
from churnrisk.features import feature_names
from churnrisk.models import PREDICTION_COLUMNS, ChurnRiskModels, train_models

CONFIG = RunConfig(
    churn=ChurnModelConfig(n_estimators=150, early_stopping_rounds=20),
    clv=ClvModelConfig(n_estimators=150, early_stopping_rounds=20),
    seed=7,
)


@pytest.fixture(scope="module")
def models(model_panel):
    return train_models(model_panel, CONFIG)


def test_predict_scores_every_row(models, model_panel):
    out = models.predict(model_panel)
    assert tuple(out.columns) == PREDICTION_COLUMNS
    assert len(out) == len(model_panel)
    assert out["churn_probability"].between(0, 1).all()
    assert (out["revenue_12m"] >= 0).all()
    assert (out["lifetime_clv"] >= 0).all()
    assert models.feature_names == feature_names()
    assert models.trained_as_of[0].isoformat() == "2024-11-01"


def test_training_is_deterministic(models, model_panel):
    again = train_models(model_panel, CONFIG)
    pd.testing.assert_frame_equal(models.predict(model_panel), again.predict(model_panel))


def test_save_load_round_trip_without_pickle(models, model_panel, tmp_path):
    models.backtest = {"churn": {"model": {"roc_auc": 0.8}}}
    models.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "bundle.json",
        "churn.txt",
        "clv.txt",
    ]
    meta = json.loads((tmp_path / "m" / "bundle.json").read_text())
    assert meta["churn"]["calibrator"]["method"] == "beta"
    back = ChurnRiskModels.load(tmp_path / "m")
    pd.testing.assert_frame_equal(models.predict(model_panel), back.predict(model_panel))
    np.testing.assert_array_equal(
        models.churn.contributions(model_panel.head(50)).to_numpy(),
        back.churn.contributions(model_panel.head(50)).to_numpy(),
    )
    assert back.config == CONFIG
    assert back.backtest == models.backtest
    assert back.trained_as_of == models.trained_as_of
    assert back.drift == models.drift


def test_the_bundle_keeps_the_training_distribution_of_each_numeric_feature(models, model_panel):
    closed = model_panel.loc[model_panel["churned"].notna()]
    numeric = [f for f in models.feature_names if pd.api.types.is_numeric_dtype(closed[f])]
    assert sorted(models.drift) == sorted(numeric)
    bins = models.drift["mrr"]
    assert sum(bins.shares) == pytest.approx(1.0)
    assert bins.shares[-1] == closed["mrr"].isna().mean()
    assert len(bins.shares) == len(bins.edges) + 2


def test_load_refuses_a_missing_or_foreign_bundle(models, tmp_path):
    with pytest.raises(DataError, match="cannot read a model bundle"):
        ChurnRiskModels.load(tmp_path / "nothing")
    models.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "bundle.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="bundle format 99"):
        ChurnRiskModels.load(tmp_path / "m")


def test_input_example_is_keys_and_features(models, model_panel):
    ex = models.input_example(model_panel, n=3)
    assert list(ex.columns) == ["account_id", "as_of", *feature_names()]
    assert len(ex) == 3


def test_training_needs_labels(model_panel):
    with pytest.raises(DataError, match="needs a labelled panel"):
        train_models(model_panel.drop(columns="churned"), CONFIG)


def test_value_never_contradicts_risk(models, model_panel):
    out = models.predict(model_panel)
    clv = CONFIG.clv
    v = (1 + clv.annual_discount_rate) ** (-1 / 12)
    floor = clv.margin * out["revenue_12m"] * np.mean(v ** np.arange(12))
    assert (out["lifetime_clv"] >= floor * (1 - 1e-12)).all()


def test_without_a_revenue_label_the_bundle_has_no_clv_model(model_panel, tmp_path):
    panel = model_panel.assign(revenue_next_12m=np.nan)
    models = train_models(panel, CONFIG)
    assert models.clv is None
    out = models.predict(panel)
    p = out["churn_probability"].to_numpy()
    # horizon 90 days: monthly retention (1 - p) ** (1 / 3); 12 months, the first paid
    r = (1 - p) ** (1 / 3)
    months = sum(r**t for t in range(12))
    np.testing.assert_allclose(out["revenue_12m"], out["mrr"] * months, rtol=1e-12)
    assert models.trained_as_of[0].isoformat() == "2024-11-01"
    models.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["bundle.json", "churn.txt"]
    back = ChurnRiskModels.load(tmp_path / "m")
    assert back.clv is None
    pd.testing.assert_frame_equal(out, back.predict(panel))
