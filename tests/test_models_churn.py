import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnrisk.config import ChurnModelConfig, ClvModelConfig
from churnrisk.errors import ConfigError, DataError, NotFittedError
from churnrisk.features import FEATURES
from churnrisk.models import (
    Calibrator,
    ChurnModel,
    ClvModel,
    drivers,
    drivers_frame,
    global_importance,
)
from churnrisk.models import evaluation as ev
from churnrisk.models.clv import lifetime_clv

# Trees sized for the 600-account fixture: the defaults' 200-row leaves suit real panels.
FAST = ChurnModelConfig(
    n_estimators=200, early_stopping_rounds=20, num_leaves=31, min_child_samples=50, num_threads=1
)


def _slices(panel: pd.DataFrame):
    closed = panel.loc[panel["churned"].notna()]
    dates = sorted(closed["as_of"].unique())
    train = closed.loc[closed["as_of"] <= dates[-5]]
    cal = closed.loc[closed["as_of"].isin(dates[-4:-2])]
    held = closed.loc[closed["as_of"].isin(dates[-2:])]
    return train, cal, held


@pytest.fixture(scope="module")
def fitted(model_panel):
    train, cal, held = _slices(model_panel)
    return ChurnModel(FAST, random_state=0).fit(train, calibration=cal), held


def test_calibration_improves_ece_on_held_out_rows(fitted):
    model, held = fitted
    y = held["churned"].to_numpy(dtype="float64")
    raw = model.predict_uncalibrated(held)
    cal = model.predict_proba(held)
    assert model.scale_pos_weight_ > 5  # imbalance weighting inflates the raw scores
    assert ev.ece(y, cal) < ev.ece(y, raw) / 2
    assert ev.ece(y, cal) < 0.05
    # calibration is monotone: it keeps the booster's ranking
    assert ev.roc_auc(y, cal) == pytest.approx(ev.roc_auc(y, raw), abs=0.02)


def test_isotonic_end_blocks_are_never_certain():
    """Blocks (0, 0), (1, 0), (1, 1): rates 0, 0.5, 1 become 0.5/3, 0.5, 2.5/3."""
    cal = Calibrator().fit(np.arange(6.0), np.array([0, 0, 1, 0, 1, 1]))
    assert cal.x_ == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert cal.y_ == [0.5 / 3, 0.5 / 3, 0.5, 0.5, 2.5 / 3, 2.5 / 3]
    np.testing.assert_allclose(
        cal.transform(np.array([-1.0, 2.5, 3.5, 9.0])), [0.5 / 3, 0.5, 2 / 3, 2.5 / 3]
    )
    # every row churned / none did: the Jeffreys posterior mean of 4 of 4 and 0 of 4
    assert Calibrator().fit(np.arange(4.0), np.ones(4)).y_ == [0.9, 0.9]
    assert Calibrator().fit(np.arange(4.0), np.zeros(4)).y_ == [0.1, 0.1]
    # a small end block never falls below its neighbour: 49 ones and a zero pool into a
    # block at 0.98, then a block of one churner would be 1.5 / 2 = 0.75, so it stays 0.98
    levels = Calibrator().fit(np.arange(51.0), np.r_[np.ones(49), 0.0, 1.0]).y_
    assert levels[-2:] == [0.98, 0.98]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.booleans()), min_size=1, max_size=40))
def test_isotonic_calibration_is_monotone_and_inside_0_1(rows):
    raw = np.array([r for r, _ in rows])
    y = np.array([float(c) for _, c in rows])
    cal = Calibrator().fit(raw, y)
    levels = np.asarray(cal.y_)
    assert (np.diff(levels) >= 0).all()
    assert ((levels > 0) & (levels < 1)).all()
    grid = np.linspace(-6, 6, 50)
    assert (np.diff(cal.transform(grid)) >= 0).all()


def test_sigmoid_calibration_also_maps_to_rates(model_panel):
    train, cal, held = _slices(model_panel)
    cfg = FAST.model_copy(update={"calibration": "sigmoid"})
    model = ChurnModel(cfg).fit(train, calibration=cal)
    y = held["churned"].to_numpy(dtype="float64")
    assert ev.ece(y, model.predict_proba(held)) < ev.ece(y, model.predict_uncalibrated(held))


def test_calibration_slice_must_be_later(model_panel):
    train, cal, _ = _slices(model_panel)
    with pytest.raises(DataError, match="strictly later than the training rows"):
        ChurnModel(FAST).fit(cal, calibration=train)
    with pytest.raises(DataError, match="at least 2 as-of dates"):
        ChurnModel(FAST).fit(train, calibration=cal.loc[cal["as_of"] == cal["as_of"].max()])
    open_rows = cal.assign(churned=pd.array([None] * len(cal), "Int8"))
    with pytest.raises(DataError, match="open label window"):
        ChurnModel(FAST).fit(train, calibration=open_rows)


def test_same_seed_same_probabilities(model_panel, fitted):
    train, cal, held = _slices(model_panel)
    again = ChurnModel(FAST, random_state=0).fit(train, calibration=cal)
    np.testing.assert_array_equal(fitted[0].predict_proba(held), again.predict_proba(held))


def test_contributions_sum_to_the_raw_score(fitted):
    model, held = fitted
    contrib = model.contributions(held.head(20))
    assert list(contrib.columns)[-1] == "bias"
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_raw(held.head(20)), atol=1e-9)
    imp = model.feature_importance()
    assert imp.is_monotonic_decreasing
    assert len(imp) == len(FEATURES)


def test_unfitted_model_is_refused(model_panel):
    with pytest.raises(NotFittedError, match="not fitted"):
        ChurnModel().predict_proba(model_panel)


def test_planted_signal_is_recovered(planted_panel):
    dates = sorted(planted_panel["as_of"].unique())
    train = planted_panel.loc[planted_panel["as_of"] <= dates[-4]]
    cal = planted_panel.loc[planted_panel["as_of"].isin(dates[-3:-1])]
    test = planted_panel.loc[planted_panel["as_of"] == dates[-1]]
    model = ChurnModel(FAST).fit(train, calibration=cal)
    y = test["churned"].to_numpy(dtype="float64")
    assert ev.roc_auc(y, model.predict_proba(test)) > 0.95
    churners = test.loc[test["churned"] == 1]
    tops = drivers(model, churners, top=1)
    assert all(d[0].feature == "dau_mau_30d" for d in tops)
    first = tops[0][0]
    assert first.direction == "raises"
    assert first.text.startswith("DAU/MAU, last 30 days = 0.0")
    assert first.text.endswith(", raises risk")
    assert global_importance(model)["feature"].iloc[0] == "dau_mau_30d"
    both = drivers(model, test.head(5), top=2, direction="both")
    assert all({d.direction for d in row} <= {"raises", "lowers"} for row in both)
    long = drivers_frame(model, churners.head(4), top=2)
    assert list(long.columns[:4]) == ["account_id", "as_of", "rank", "feature"]
    with pytest.raises(ConfigError, match="top must be >= 1"):
        drivers(model, test, top=0)


def test_clv_model_predicts_non_negative_revenue(model_panel):
    rev = model_panel.loc[model_panel["revenue_next_12m"].notna()]
    dates = sorted(rev["as_of"].unique())
    train = rev.loc[rev["as_of"] < dates[-2]]
    valid = rev.loc[rev["as_of"] == dates[-2]]
    test = rev.loc[rev["as_of"] == dates[-1]]
    cfg = ClvModelConfig(n_estimators=200, early_stopping_rounds=20, num_threads=1)
    model = ClvModel(cfg).fit(train, valid=valid)
    pred = model.predict(test)
    assert (pred >= 0).all()
    y = test["revenue_next_12m"].to_numpy()
    assert ev.spearman(y, pred) > 0.8
    with pytest.raises(DataError, match="strictly later"):
        ClvModel(cfg).fit(valid, valid=train)


def test_lifetime_clv_by_hand():
    # horizon 30 days: monthly churn = p = 0.1, retention 0.9; monthly discount 1%
    annual = 1.01**12 - 1
    out = lifetime_clv(
        [100.0, 0.0], [0.1, 0.5], horizon_days=30, margin=0.8, annual_discount_rate=annual
    )
    # sum_t 80 * 0.9^t / 1.01^t = 80 * 1.01 / (1.01 - 0.9)
    assert out[0] == pytest.approx(80 * 1.01 / 0.11)
    assert out[1] == 0.0
    # a 90-day probability of 1 - 0.9^3 is the same monthly retention of 0.9
    same = lifetime_clv(
        [100.0], [1 - 0.9**3], horizon_days=90, margin=0.8, annual_discount_rate=annual
    )
    assert same[0] == pytest.approx(out[0])
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        lifetime_clv([1.0], [1.5], horizon_days=90, margin=0.8, annual_discount_rate=0.1)
    with pytest.raises(ConfigError, match="annual_discount_rate > 0"):
        lifetime_clv([1.0], [0.5], horizon_days=90, margin=0.8, annual_discount_rate=0.0)


@pytest.mark.parametrize(
    ("value", "dtype", "text"),
    [
        (0.0812, "float", "0.0812"),
        (12.0, "int", "12"),
        (1096.0, "int", "1,096"),
        (12487.35, "float", "12,487"),
        (float("nan"), "float", "missing"),
        (None, "category", "missing"),
        ("enterprise", "category", "enterprise"),
        (-0.5, "float", "-0.5"),
    ],
)
def test_driver_values_are_formatted_for_people(value, dtype, text):
    from churnrisk.models.explain import format_value

    assert format_value(value, dtype) == text
