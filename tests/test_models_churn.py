import json

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
from churnrisk.models.slices import FitSlices, time_slices

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


def _fit(model: ChurnModel, train: pd.DataFrame, cal: pd.DataFrame) -> ChurnModel:
    """Fit with the earlier half of ``cal``'s dates stopping, the later half calibrating."""
    s = time_slices(pd.concat([train, cal]), cal["as_of"].nunique())
    return model.fit(s.train, stop=s.stop, calibration=s.calibrate)


@pytest.fixture(scope="module")
def fitted(model_panel):
    train, cal, held = _slices(model_panel)
    return _fit(ChurnModel(FAST, random_state=0), train, cal), held


def test_calibration_improves_ece_on_held_out_rows(fitted):
    model, held = fitted
    y = held["churned"].to_numpy(dtype="float64")
    raw = model.predict_uncalibrated(held)
    cal = model.predict_proba(held)
    assert model.scale_pos_weight_ > 5  # imbalance weighting inflates the raw scores
    # one calibration date of a 600-account fixture: a clear gain, not a perfect map
    assert ev.ece(y, cal) < 0.75 * ev.ece(y, raw)
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


def test_interpolated_isotonic_runs_between_block_centres():
    """Blocks (0, 1), (2, 3), (4, 5) at 0.5/3, 0.5, 2.5/3 sit at their centres 0.5, 2.5, 4.5."""
    raw, y = np.arange(6.0), np.array([0, 0, 1, 0, 1, 1])
    cal = Calibrator("interpolated").fit(raw, y)
    assert cal.x_ == [0.5, 2.5, 4.5]
    assert cal.y_ == pytest.approx([1 / 6, 0.5, 5 / 6], abs=1e-15)
    np.testing.assert_allclose(
        cal.transform(np.array([0.5, 1.5, 2.5, 3.5, 4.5])), [1 / 6, 1 / 3, 0.5, 2 / 3, 5 / 6]
    )
    # beyond the end centres the log-odds go on at Platt's slope on the same rows
    slope = Calibrator("sigmoid").fit(raw, y).x_[0]
    assert cal.params_["tail_slope"] == pytest.approx(slope)
    logit = np.log(
        cal.transform(np.array([5.0, -1.0])) / (1 - cal.transform(np.array([5.0, -1.0])))
    )
    np.testing.assert_allclose(logit, [np.log(5) + 0.5 * slope, -np.log(5) - 1.5 * slope])
    # the step map ties 4.5 and 9.0; the interpolated one does not
    step = Calibrator("isotonic").fit(raw, y)
    assert step.transform(np.array([4.5]))[0] == step.transform(np.array([9.0]))[0]
    assert cal.transform(np.array([4.5]))[0] < cal.transform(np.array([9.0]))[0] < 1


def test_interpolated_isotonic_merges_blocks_softened_to_one_level():
    """49 ones and a zero pool at 0.98; the last churner's block is softened to 0.98 too."""
    raw = np.arange(51.0)
    cal = Calibrator("interpolated").fit(raw, np.r_[np.ones(49), 0.0, 1.0])
    assert cal.y_ == [0.98]
    assert cal.x_ == [25.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.booleans()), min_size=1, max_size=40))
def test_interpolated_calibration_is_strictly_increasing_and_inside_0_1(rows):
    raw = np.array([r for r, _ in rows])
    y = np.array([float(c) for _, c in rows])
    cal = Calibrator("interpolated").fit(raw, y)
    assert (np.diff(cal.x_) > 0).all()
    assert (np.diff(cal.y_) > 0).all()
    p = cal.transform(np.linspace(-6, 6, 50))
    assert (np.diff(p) >= 0).all()
    assert ((p >= 0) & (p <= 1)).all()
    # strictly increasing wherever float64 tells probabilities apart (a separable toy
    # set gives Platt's tails a slope that saturates them)
    shown = (p > 1e-12) & (p < 1 - 1e-12)
    assert (np.diff(p[shown]) > 0).all()
    assert ((np.asarray(cal.y_) > 0) & (np.asarray(cal.y_) < 1)).all()


def test_beta_calibration_is_monotone_with_non_negative_shape(model_panel):
    train, cal, held = _slices(model_panel)
    model = _fit(ChurnModel(FAST.model_copy(update={"calibration": "beta"})), train, cal)
    state = model.calibrator_.to_dict()
    assert state["method"] == "beta"
    assert min(state["a"], state["b"]) >= 0
    grid = np.linspace(-8, 8, 200)
    assert (np.diff(model.calibrator_.transform(grid)) > 0).all()
    y = held["churned"].to_numpy(dtype="float64")
    assert ev.ece(y, model.predict_proba(held)) < ev.ece(y, model.predict_uncalibrated(held))


@pytest.mark.parametrize("method", ["isotonic", "interpolated", "sigmoid", "beta"])
def test_calibrators_round_trip_as_plain_numbers(method):
    raw = np.linspace(-3, 3, 40)
    y = (np.sin(raw * 7) + raw > 0).astype("float64")
    cal = Calibrator(method).fit(raw, y)
    data = json.loads(json.dumps(cal.to_dict()))
    again = Calibrator.from_dict(data)
    grid = np.linspace(-5, 5, 31)
    np.testing.assert_array_equal(again.transform(grid), cal.transform(grid))


def test_unknown_calibration_method_is_refused():
    with pytest.raises(ConfigError, match="unknown calibration method 'spline'"):
        Calibrator("spline").fit(np.arange(3.0), np.array([0.0, 1.0, 1.0]))  # type: ignore[arg-type]


def test_sigmoid_calibration_also_maps_to_rates(model_panel):
    train, cal, held = _slices(model_panel)
    cfg = FAST.model_copy(update={"calibration": "sigmoid"})
    model = _fit(ChurnModel(cfg), train, cal)
    y = held["churned"].to_numpy(dtype="float64")
    assert ev.ece(y, model.predict_proba(held)) < ev.ece(y, model.predict_uncalibrated(held))


def test_fit_slices_are_disjoint_and_closed(model_panel):
    train, cal, _ = _slices(model_panel)
    with pytest.raises(DataError, match="share 20 \\(account, as-of\\) rows"):
        FitSlices(train, cal, cal.head(20).pipe(lambda r: pd.concat([r, train.head(0)])))
    with pytest.raises(DataError, match="the stop slice holds no row"):
        FitSlices(train, cal.head(0), cal)
    with pytest.raises(DataError, match="hold out at least 2"):
        time_slices(cal, 1)
    with pytest.raises(DataError, match="need more than 2 as-of dates"):
        time_slices(cal, 2)
    open_rows = cal.assign(churned=pd.array([None] * len(cal), "Int8"))
    with pytest.raises(DataError, match="open label window"):
        _fit(ChurnModel(FAST), train, open_rows)


def test_time_slices_hold_out_the_latest_dates(model_panel):
    closed = model_panel.loc[model_panel["churned"].notna()]
    dates = sorted(closed["as_of"].unique())
    s = time_slices(closed, 4)
    assert s.how == "time"
    assert sorted(s.train["as_of"].unique()) == dates[:-4]
    assert sorted(s.stop["as_of"].unique()) == dates[-4:-2]
    assert sorted(s.calibrate["as_of"].unique()) == dates[-2:]
    assert len(s.rows) == len(closed)


def test_same_seed_same_probabilities(model_panel, fitted):
    train, cal, held = _slices(model_panel)
    again = _fit(ChurnModel(FAST, random_state=0), train, cal)
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
    model = _fit(ChurnModel(FAST), train, cal)
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


def test_context_is_never_a_driver_and_is_reported_apart(planted_panel):
    from churnrisk.features.registry import CONTEXT
    from churnrisk.models.explain import context

    dates = sorted(planted_panel["as_of"].unique())
    train = planted_panel.loc[planted_panel["as_of"] <= dates[-4]]
    cal = planted_panel.loc[planted_panel["as_of"].isin(dates[-3:-1])]
    rows = planted_panel.loc[planted_panel["as_of"] == dates[-1]].head(30)
    model = _fit(ChurnModel(FAST), train, cal)
    contrib = model.contributions(rows)
    every = drivers(model, rows, top=len(contrib.columns), direction="both")
    assert all(d.feature not in CONTEXT for row in every for d in row)
    assert any(context(model, rows))  # the trees did split on some context feature
    # every actionable feature with a push is a driver; every context one is context
    for i, (row, ctx) in enumerate(zip(every, context(model, rows), strict=True)):
        pushes = contrib.iloc[i].drop("bias")
        moved = set(pushes.index[pushes != 0])
        assert {d.feature for d in row} == moved - CONTEXT
        assert [d.feature for d in ctx] == sorted(
            moved & CONTEXT, key=lambda f: (-abs(pushes[f]), list(pushes.index).index(f))
        )
        assert [d.contribution for d in ctx] == [pushes[d.feature] for d in ctx]


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


@pytest.mark.parametrize(
    ("value", "dtype", "text"),
    [
        (0.0812, "float", "0.0812"),
        (12.0, "int", "12"),
        (1096.0, "int", "1,096"),
        # the digits of the rounded value the API gives (4 decimals at 1 and above),
        # where the CLI used to write "12,487" for an API value of 12487.35
        (12487.35, "float", "12,487.35"),
        (0.081234, "float", "0.08123"),
        (0.000123456, "float", "0.0001235"),
        (-1234.5, "float", "-1,234.5"),
        (0.0, "float", "0"),
        (float("nan"), "float", "missing"),
        (None, "category", "missing"),
        ("enterprise", "category", "enterprise"),
        (-0.5, "float", "-0.5"),
    ],
)
def test_driver_values_are_formatted_for_people(value, dtype, text):
    from churnrisk.models.explain import format_value

    assert format_value(value, dtype) == text


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.sampled_from(["float", "int"]),
)
def test_the_words_of_a_value_are_the_digits_the_api_gives(value: float, dtype: str) -> None:
    from churnrisk.models.explain import format_value, round_value, words

    rounded = round_value(value, dtype)
    text = format_value(value, dtype)
    assert text == words(rounded)
    assert "e" not in text
    assert float(text.replace(",", "")) == rounded
