"""The backtest and training plan: grid, folds and fit slices on hand-worked fixtures."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnrisk.config import BacktestConfig, ChurnModelConfig, LabelConfig, RunConfig
from churnrisk.errors import DataError
from churnrisk.features import as_of_dates
from churnrisk.models.plan import (
    NoBacktestError,
    account_slices,
    fit_slices,
    fold_blocks,
    grid_name,
    plan_churn_folds,
    plan_grid,
)

GAP = timedelta(days=120)  # the default 90-day horizon and 30-day grace


def month(m: int, year: int = 2025) -> date:
    return date(year, m, 1)


def make_panel(
    dates: list[date], end: date, churners: dict[date, list[str]], accounts: int
) -> pd.DataFrame:
    """``accounts`` accounts on every date; a label is NULL unless ``as_of + 120 <= end``."""
    rows = []
    for d in dates:
        for k in range(accounts):
            a = f"a{k:02d}"
            label = float(a in churners.get(d, [])) if d + GAP <= end else np.nan
            rows.append((a, pd.Timestamp(d), label))
    return pd.DataFrame(rows, columns=["account_id", "as_of", "churned"])


def config(**backtest: object) -> RunConfig:
    return RunConfig(backtest=BacktestConfig(**backtest))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ grid


def test_semimonthly_dates_are_the_1st_and_the_16th():
    got = as_of_dates(date(2024, 12, 5), date(2025, 2, 16), "semimonthly")
    assert got == [date(2024, 12, 16), month(1), date(2025, 1, 16), month(2), date(2025, 2, 16)]


def test_a_long_history_keeps_the_monthly_grid_and_the_full_warm_up():
    grid = plan_grid(month(1), month(1, 2027), LabelConfig(), BacktestConfig())
    assert (grid.freq, grid.warmup_days, grid.folds, grid.dates[0]) == ("monthly", 90, 3, month(4))
    assert grid.describe() == "monthly grid from 2025-04-01"


def test_a_short_history_shrinks_the_warm_up_and_refines_the_grid_for_more_folds():
    # Observation 2025-01-01 to 2026-03-01. With the 90-day warm-up every grid allows 2
    # folds: label-closed dates run to 2025-11-01 (+120 days = 2026-03-01), and monthly
    # the third block (2025-09-01) has only 2025-04-01 and 2025-05-01 120 days before it.
    # A 60-day warm-up (first date >= 2025-03-02) on the semi-monthly grid: blocks
    # {10-16, 11-01}, {09-16, 10-01}, {08-16, 09-01}; 2025-08-16 - 120 days = 04-18, so
    # 03-16, 04-01, 04-16: 3 dates, a third fold. Monthly needs the 30-day warm-up for
    # it: the tie goes to the longer warm-up.
    grid = plan_grid(month(1), month(3, 2026), LabelConfig(), BacktestConfig())
    assert (grid.freq, grid.warmup_days, grid.folds) == ("semimonthly", 60, 3)
    assert grid.dates[:3] == [date(2025, 3, 16), month(4), date(2025, 4, 16)]
    assert grid.describe() == (
        "semimonthly grid from 2025-03-16 (warm-up 60 days, not 90: windows longer than"
        " 60 days are truncated before 2025-04-01)"
    )
    # with the warm-up held at 90 days, 2 folds whichever the grid: the coarsest wins
    held = plan_grid(month(1), month(3, 2026), LabelConfig(), BacktestConfig(min_warmup_days=90))
    assert (held.freq, held.warmup_days, held.folds) == ("monthly", 90, 2)


def test_a_weekly_grid_tests_blocks_of_a_calendar_month_of_mondays():
    bt = BacktestConfig(grid="weekly", min_warmup_days=90)
    grid = plan_grid(month(1), month(3, 2026), LabelConfig(), bt)
    assert grid.dates[0] == date(2025, 4, 7)  # the first Monday after 2025-04-01
    assert grid_name(grid.dates) == "weekly"
    labelled = [d for d in grid.dates if d + GAP <= grid.end]
    assert labelled[-1] == date(2025, 10, 27)  # 2025-11-03 + 120 days is after 2026-03-01
    blocks = fold_blocks(labelled, 1, 3)
    assert blocks[0] == [date(2025, 9, 29), *(date(2025, 10, d) for d in (6, 13, 20, 27))]
    assert blocks[1] == [date(2025, 9, d) for d in (1, 8, 15, 22)]
    # 2025-09-01 - 120 days = 2025-05-04: 04-07, 04-14, 04-21, 04-28 train the second
    # fold; 2025-07-28 - 120 days = 2025-03-30, before the first date: no third fold
    assert grid.folds == 2


def test_weekly_folds_train_on_the_mondays_one_gap_before_their_block():
    bt = BacktestConfig(grid="weekly", min_warmup_days=90, min_slice_churners=2)
    grid = plan_grid(month(1), month(3, 2026), LabelConfig(), bt)
    churners = {d: [f"a{(3 * i + j) % 20:02d}" for j in range(3)] for i, d in enumerate(grid.dates)}
    panel = make_panel(grid.dates, grid.end, churners, accounts=20)
    plan = plan_churn_folds(panel, RunConfig(backtest=bt), grid)
    mondays = [date(2025, 4, 7) + timedelta(weeks=k) for k in range(8)]
    # 2025-09-01 - 120 days = 05-04: 04-07 to 04-28; 09-29 - 120 days = 06-01: to 05-26
    assert [(f.train_as_of, f.test_as_of[0], len(f.test_as_of)) for f in plan.folds] == [
        (mondays[:4], date(2025, 9, 1), 4),
        (mondays, date(2025, 9, 29), 5),
    ]
    assert [(f.rows, f.churn_labels, f.slices) for f in plan.folds] == [
        (80, 12, "time"),
        (160, 24, "time"),
    ]
    assert plan.line().startswith(
        "plan: 2 of at most 3 folds on a weekly grid from 2025-04-07, 120-day label gap;"
        " fold 1 trains on 4 dates to 2025-04-28 (80 rows, 12 churn labels, 12 churned"
    )


def test_too_short_for_any_as_of_date_is_a_data_error():
    with pytest.raises(DataError, match=r"too short for a training panel; it needs at least 30"):
        plan_grid(month(1), date(2025, 1, 20), LabelConfig(), BacktestConfig())


# ------------------------------------------------------------------------------ folds

# 20 accounts on monthly dates 2025-01 to 2025-12, labels closed up to 2025-08-01; on the
# i-th date (from 0) accounts 3i, 3i+1 and 3i+2 (mod 20) churn
MONTHS = [month(m) for m in range(1, 13)]
ROTATING = {d: [f"a{(3 * i + j) % 20:02d}" for j in range(3)] for i, d in enumerate(MONTHS)}


def test_monthly_folds_keep_the_gap_and_cut_slices_by_time():
    panel = make_panel(MONTHS, month(8) + GAP, ROTATING, accounts=20)
    plan = plan_churn_folds(panel, config(folds=3, min_slice_churners=2))
    # blocks 08-01, 07-01, 06-01; 06-01 - 120 days = 02-01: 2 dates < 3, so 2 folds
    assert [f.test_as_of for f in plan.folds] == [[month(7)], [month(8)]]
    assert [f.train_as_of for f in plan.folds] == [MONTHS[:3], MONTHS[:4]]
    assert [(f.rows, f.churn_labels, f.churned, f.slices) for f in plan.folds] == [
        (60, 9, 9, "time"),
        (80, 12, 12, "time"),
    ]
    assert (plan.final.rows, plan.final.churn_labels, plan.final.churned) == (160, 24, 20)
    assert plan.line() == (
        "plan: 2 of at most 3 folds on a monthly grid from 2025-01-01, 120-day label gap;"
        " fold 1 trains on 3 dates to 2025-03-01 (60 rows, 9 churn labels, 9 churned"
        " accounts, slices by time), tests 1 from 2025-07-01; fold 2 trains on 4 dates to"
        " 2025-04-01 (80 rows, 12 churn labels, 12 churned accounts, slices by time), tests"
        " 1 from 2025-08-01; final model on 8 dates to 2025-08-01 (160 rows, 24 churn"
        " labels, slices by time)"
    )
    out = plan.to_dict()
    assert out["folds"][0] == {
        "train_as_of": ["2025-01-01", "2025-03-01"],
        "train_dates": 3,
        "test_as_of": ["2025-07-01"],
        "rows": 60,
        "churn_labels": 9,
        "churned_accounts": 9,
        "slices": "time",
    }
    assert (out["grid"], out["warmup_days"], out["gap_days"], out["max_folds"]) == (
        "monthly",
        None,
        120,
        3,
    )


def test_time_slices_of_a_fold_hold_out_its_latest_dates():
    panel = make_panel(MONTHS, month(8) + GAP, ROTATING, accounts=20)
    pool = panel.loc[panel["as_of"] <= pd.Timestamp(month(4))]
    s = fit_slices(pool, config(min_slice_churners=2))
    assert s.how == "time"
    assert sorted(s.train["as_of"].unique()) == [pd.Timestamp(month(1)), pd.Timestamp(month(2))]
    assert list(s.stop["as_of"].unique()) == [pd.Timestamp(month(3))]
    assert list(s.calibrate["as_of"].unique()) == [pd.Timestamp(month(4))]


def test_time_slices_hold_out_more_dates_when_the_latest_hold_too_few_churners():
    # the latest date (08-01) has one churner: 2 held-out dates leave calibrate short;
    # 3 (up to half of the 8) stop on 06-01 and calibrate on 07-01 and 08-01
    sparse = {**ROTATING, month(8): ["a01"]}
    panel = make_panel(MONTHS, month(8) + GAP, sparse, accounts=20)
    pool = panel.loc[panel["as_of"] <= pd.Timestamp(month(8))]
    s = fit_slices(pool, config(min_slice_churners=2))
    assert s.how == "time"
    assert list(s.stop["as_of"].unique()) == [pd.Timestamp(month(6))]
    assert sorted(s.calibrate["as_of"].unique()) == [pd.Timestamp(month(7)), pd.Timestamp(month(8))]
    assert s.train["as_of"].max() == pd.Timestamp(month(5))


# 50 accounts, monthly 2025-01 to 2025-06, all labels closed: a00-a09 churn on every date
STEADY = {d: [f"a{k:02d}" for k in range(10)] for d in MONTHS[:6]}


def test_two_training_dates_are_cut_by_account_stratified_by_churn():
    panel = make_panel(MONTHS[:6], month(6) + GAP, STEADY, accounts=50)
    cfg = config(folds=3, min_train_dates=1, min_slice_churners=2)
    plan = plan_churn_folds(panel, cfg)
    # blocks 06-01 (trains on 01-01 and 02-01), 05-01 (01-01), 04-01 (none)
    assert [(f.test_as_of, f.train_as_of, f.slices) for f in plan.folds] == [
        ([month(5)], [month(1)], "accounts"),
        ([month(6)], [month(1), month(2)], "accounts"),
    ]
    pool = panel.loc[panel["as_of"] <= pd.Timestamp(month(2))]
    s = fit_slices(pool, cfg)
    assert s.how == "accounts"
    # a fifth of the 10 churned and of the 40 others to stop, as many to calibrate
    for part, (churned, others) in ((s.stop, (2, 8)), (s.calibrate, (2, 8)), (s.train, (6, 24))):
        ids = set(part["account_id"])
        assert (len(ids & set(STEADY[month(1)])), len(ids - set(STEADY[month(1)]))) == (
            churned,
            others,
        )
        assert set(part["as_of"]) == {pd.Timestamp(month(1)), pd.Timestamp(month(2))}
    # seeded: the same seed cuts the same accounts, another seed others
    again = account_slices(pool, random_state=0)
    assert set(again.stop["account_id"]) == set(s.stop["account_id"])
    other = account_slices(pool, random_state=1)
    assert set(other.stop["account_id"]) != set(s.stop["account_id"])


def test_few_churners_raise_the_account_share_to_the_least_a_slice_needs():
    # 7 churned accounts: a fifth is 1, below the 2 a slice needs, so stop and
    # calibrate take 2 each (share 2/7) and 12 of the 43 others each (floor(43 x 2/7))
    few = {d: [f"a{k:02d}" for k in range(7)] for d in MONTHS[:2]}
    pool = make_panel(MONTHS[:2], month(2) + GAP, few, accounts=50)
    s = account_slices(pool, random_state=0, least=2)
    churned = set(few[month(1)])
    for part, counts in ((s.stop, (2, 12)), (s.calibrate, (2, 12)), (s.train, (3, 19))):
        ids = set(part["account_id"])
        assert (len(ids & churned), len(ids - churned)) == counts
    assert fit_slices(pool, config(min_slice_churners=2)).how == "accounts"
    with pytest.raises(NoBacktestError, match=r"hold 7 churned accounts.* at least 9 churned"):
        fit_slices(pool, config(min_slice_churners=3))


def test_churn_on_a_single_date_refuses_with_the_churners_it_takes():
    only_last = {month(6): ["a00", "a01"]}
    panel = make_panel(MONTHS[:6], month(6) + GAP, only_last, accounts=50)
    with pytest.raises(NoBacktestError, match=r"^no honest backtest is possible") as err:
        plan_churn_folds(panel, config(min_train_dates=1, min_slice_churners=2))
    assert str(err.value) == (
        "no honest backtest is possible: fold testing from 2025-06-01: the 100 label-closed"
        " rows up to 2025-02-01 hold 0 churned accounts; training, early stopping and"
        " calibration need 2 each (backtest.min_slice_churners): it takes at least 6"
        " churned accounts on as-of dates up to 2025-02-01"
    )


def test_a_test_block_without_churners_refuses():
    only_first = {month(1): [f"a{k:02d}" for k in range(10)]}
    panel = make_panel(MONTHS[:6], month(6) + GAP, only_first, accounts=50)
    with pytest.raises(NoBacktestError, match=r"the test block 2025-06-01 to 2025-06-01 holds no"):
        plan_churn_folds(panel, config(min_train_dates=1, min_slice_churners=2))


def test_a_too_short_panel_refuses_with_the_months_it_takes():
    panel = make_panel(MONTHS[:6], month(4) + GAP, ROTATING, accounts=20)
    # labels closed 01-01 to 04-01 (end 2025-07-30): no date lies 120 days before the
    # block 04-01. 3 training dates (to 03-01), a test date 120 days later (07-01), its
    # label closed 120 days after that: 2025-10-29, 91 days after the end, ~3 months
    with pytest.raises(
        NoBacktestError,
        match=r"^no honest backtest is possible: the test block from 2025-04-01 has 0"
        r" label-closed as-of dates 120 days .* needs 3 .*: it takes about 3 more months"
        r" of history$",
    ):
        plan_churn_folds(panel, config())


# ------------------------------------------------------------------- the gap, always


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2026, 12, 31)),
    days=st.integers(min_value=60, max_value=900),
    horizon=st.integers(min_value=7, max_value=180),
    grace=st.integers(min_value=0, max_value=60),
    grid=st.sampled_from(["auto", "monthly", "semimonthly", "weekly"]),
    test_months=st.integers(min_value=1, max_value=2),
    folds=st.integers(min_value=1, max_value=4),
)
def test_every_training_row_is_label_closed_before_its_first_test_date(
    start, days, horizon, grace, grid, test_months, folds
):
    labels = LabelConfig(horizon_days=horizon, grace_days=grace)
    bt = BacktestConfig(
        grid=grid, test_months=test_months, folds=folds, min_train_dates=1, min_slice_churners=1
    )
    cfg = RunConfig(labels=labels, backtest=bt, churn=ChurnModelConfig())
    end = start + timedelta(days=days)
    g = plan_grid(start, end, labels, bt)
    gap = timedelta(days=horizon + grace)
    rows = [
        (f"a{k:02d}", pd.Timestamp(d), float((k + i) % 4 == 0) if d + gap <= end else np.nan)
        for i, d in enumerate(g.dates)
        for k in range(24)
    ]
    panel = pd.DataFrame(rows, columns=["account_id", "as_of", "churned"])
    try:
        plan = plan_churn_folds(panel, cfg, g)
    except NoBacktestError:
        return
    assert 1 <= len(plan.folds) <= g.folds
    for f in plan.folds:
        assert all(d + gap <= f.test_as_of[0] for d in f.train_as_of)
        assert all(d + gap <= end for d in f.test_as_of)
        pool = panel.loc[panel["as_of"].isin(pd.to_datetime(f.train_as_of))]
        s = fit_slices(pool, cfg)
        assert (s.rows["as_of"] + gap <= pd.Timestamp(f.test_as_of[0])).all()
