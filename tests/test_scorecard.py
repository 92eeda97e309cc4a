"""The scorecard of past runs, on a hand-worked book of four accounts and three runs.

Horizon 30 days, no grace, observation up to 2024-04-15 (exclusive):

- A pays from 2024-01-01 and stops on 2024-03-10; C stops on 2024-02-20; B and D stay.
- Run 2024-02-01 (window to 03-02): C churns in it; A's churn is after it.
- Run 2024-03-01 (window to 03-31): A churns in it. C, gone, is not scored.
- Run 2024-04-01: its window ends 05-01, after the data, so it is open, not graded.
"""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from churnrisk.config import LabelConfig
from churnrisk.dataset import Dataset
from churnrisk.errors import MetricError
from churnrisk.models.drift import Bins, bins_of, feature_drift, psi, reference_bins
from churnrisk.models.evaluation import ece, reliability
from churnrisk.scorecard import grade, lead_time, outcomes

CFG = LabelConfig(horizon_days=30, grace_days=0)
END = date(2024, 4, 15)
TIERS = ("high", "medium", "low")


@pytest.fixture(scope="module")
def ds() -> Dataset:
    start = pd.Timestamp("2024-01-01")
    accounts = pd.DataFrame({"account_id": list("ABCD"), "created_at": [start] * 4})
    subscriptions = pd.DataFrame(
        {
            "account_id": list("ABCD"),
            "start_date": [start.date()] * 4,
            "end_date": [date(2024, 3, 10), None, date(2024, 2, 20), None],
            "mrr": [100.0, 200.0, 50.0, 10.0],
        }
    )
    return Dataset.from_frames({"accounts": accounts, "subscriptions": subscriptions})


def _runs() -> pd.DataFrame:
    rows = [
        ("2024-02-01", "A", 0.30, "high", 100.0),
        ("2024-02-01", "B", 0.05, "low", 200.0),
        ("2024-02-01", "C", 0.20, "medium", 50.0),
        ("2024-02-01", "D", 0.40, "high", 10.0),
        ("2024-03-01", "A", 0.50, "high", 100.0),
        ("2024-03-01", "B", 0.02, "low", 200.0),
        ("2024-03-01", "D", 0.15, "medium", 10.0),
        ("2024-04-01", "B", 0.03, "low", 200.0),
        ("2024-04-01", "D", 0.10, "medium", 10.0),
    ]
    frame = pd.DataFrame(rows, columns=["as_of", "account_id", "probability", "tier", "mrr"])
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame


def test_outcomes_grade_each_row_with_the_training_label(ds: Dataset) -> None:
    got = outcomes(ds, _runs(), CFG, observed_end=END)
    assert got["churned"].tolist() == [0, 0, 1, 0, 1, 0, 0, pd.NA, pd.NA]
    assert got["churn_day"].tolist() == [
        None,
        None,
        date(2024, 2, 20),
        None,
        date(2024, 3, 10),
        None,
        None,
        None,
        None,
    ]
    assert got["probability"].tolist() == _runs()["probability"].tolist()


def test_grade_hand_worked(ds: Dataset) -> None:
    card = grade(outcomes(ds, _runs(), CFG, observed_end=END), k=2, high_tier="high", tiers=TIERS)
    assert (card.graded_runs, card.open_runs, card.k) == (2, 1, 2)
    tiers = {t.tier: (t.accounts, t.churned, t.rate) for t in card.tiers}
    assert tiers == {"high": (3, 1, 1 / 3), "medium": (2, 1, 0.5), "low": (2, 0, 0.0)}
    first, second = card.runs
    # 02-01: the top two are D (0.40) and A (0.30); only C (0.20, MRR 50) churned
    assert (first.as_of, first.accounts, first.churned) == (date(2024, 2, 1), 4, 1)
    assert (first.precision_at_k, first.recall_at_k, first.mrr_caught) == (0.0, 0.0, 0.0)
    # 03-01: A (0.50) and D (0.15) on top; A churned with all the churned MRR
    assert (second.accounts, second.churned) == (3, 1)
    assert (second.precision_at_k, second.recall_at_k, second.mrr_caught) == (0.5, 1.0, 1.0)
    # C was never high; A was high from 02-01, 38 days before its churn on 03-10
    assert (card.lead.churns, card.lead.flagged, card.lead.median_days) == (2, 1, 38.0)
    curve = card.reliability
    assert curve["rows"].tolist() == [2, 1, 1, 1, 1, 1]
    assert curve["lower"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert curve["predicted"].tolist() == pytest.approx([0.035, 0.15, 0.2, 0.3, 0.4, 0.5])
    assert curve["observed"].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    as_json = card.to_dict()
    assert as_json["runs"][1]["as_of"] == "2024-03-01"
    assert as_json["lead"] == {"churns": 2, "flagged": 1, "median_days": 38.0}
    assert as_json["tiers"][1] == {"tier": "medium", "accounts": 2, "churned": 1, "rate": 0.5}
    json.dumps(as_json)  # plain JSON values only
    left, right = card.figure().axes
    assert [p.get_height() for p in right.patches] == [1 / 3, 0.5, 0.0]
    assert list(left.lines[1].get_ydata()) == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_a_run_with_no_churner_has_no_recall_or_mrr_share() -> None:
    scored = _runs().iloc[:2].assign(churned=[0, 0], churn_day=[None, None])
    (run,) = grade(scored, k=5, high_tier="high", tiers=TIERS).runs
    assert (run.precision_at_k, run.recall_at_k, run.mrr_caught) == (0.0, None, None)


def test_lead_time_restarts_after_a_churn() -> None:
    # X churns on 03-10, comes back, and churns again on 06-10; its high flag of 02-01
    # belongs to the first churn only, the one of 05-01 to the second.
    scored = pd.DataFrame(
        {
            "account_id": ["X"] * 4,
            "as_of": [date(2024, 2, 1), date(2024, 3, 1), date(2024, 5, 1), date(2024, 6, 1)],
            "tier": ["high", "medium", "high", "high"],
            "churned": [0, 1, 0, 1],
            "churn_day": [None, date(2024, 3, 10), None, date(2024, 6, 10)],
        }
    )
    lead = lead_time(scored, high_tier="high")
    assert (lead.churns, lead.flagged, lead.median_days) == (2, 2, (38 + 40) / 2)


def test_runs_scored_with_other_tiers_keep_their_rows_and_their_high_tier() -> None:
    # The 02-01 run named its tiers critical/watch; the 03-01 run high/medium/low. Y was
    # critical (that run's riskiest) on 02-01 and churned on 03-20: 48 days of warning.
    scored = pd.DataFrame(
        {
            "account_id": ["Y", "Z", "Y", "Z"],
            "as_of": [date(2024, 2, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 3, 1)],
            "probability": [0.7, 0.05, 0.8, 0.02],
            "tier": ["critical", "watch", "high", "low"],
            "mrr": [100.0, 50.0, 100.0, 50.0],
            "churned": [1, 0, 1, 0],
            "churn_day": [date(2024, 3, 20), None, date(2024, 3, 20), None],
        }
    )
    high = {date(2024, 2, 1): "critical", date(2024, 3, 1): "high"}
    card = grade(scored, k=1, high_tier=high, tiers=TIERS)
    tiers = [(t.tier, t.accounts, t.churned) for t in card.tiers]
    assert tiers == [
        ("high", 1, 1),
        ("medium", 0, 0),
        ("low", 1, 0),
        ("critical", 1, 1),  # the unlisted tiers follow, riskiest first
        ("watch", 1, 0),
    ]
    assert (card.lead.churns, card.lead.flagged, card.lead.median_days) == (1, 1, 48.0)
    # one name for every run sees only the 03-01 flag
    assert lead_time(scored, high_tier="high").median_days == 19.0


def test_grade_refuses_a_bad_list_size_and_missing_columns() -> None:
    with pytest.raises(MetricError, match="k must be >= 1"):
        grade(_runs(), k=0, high_tier="high", tiers=TIERS)
    with pytest.raises(MetricError, match="churned, churn_day"):
        grade(_runs(), k=1, high_tier="high", tiers=TIERS)


def test_psi_hand_worked() -> None:
    # Two bins cut at the lower median 2 of the expected sample (2 goes above), plus
    # the missing bin; empty shares count as 1e-4.
    got = psi([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, np.nan], bins=2)
    e, a = (0.25, 0.75, 1e-4), (0.75, 1e-4, 0.25)
    assert got == pytest.approx(sum((x - y) * math.log(x / y) for x, y in zip(a, e, strict=True)))
    assert psi([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]) == 0.0


def test_feature_drift_flags_the_shifted_feature() -> None:
    rng = np.random.default_rng(0)
    training = pd.DataFrame(
        {
            "steady": rng.normal(size=2000),
            "moved": rng.normal(size=2000),
            "plan": pd.Categorical(["a", "b"] * 1000),
        }
    )
    latest = pd.DataFrame({"steady": rng.normal(size=2000), "moved": rng.normal(2, 1, 2000)})
    reference = reference_bins(training, ["steady", "moved", "plan", "absent"])
    assert set(reference) == {"steady", "moved"}
    assert Bins.from_dict(reference["moved"].to_dict()) == reference["moved"]
    drift = feature_drift(reference, latest)
    assert drift["feature"].tolist() == ["moved", "steady"]
    assert drift["drifted"].tolist() == [True, False]
    assert drift["psi"].iloc[1] < 0.1


def test_bins_merge_repeated_quantiles() -> None:
    cut = bins_of([0.0] * 8 + [1.0, 2.0, np.nan, np.nan])
    assert cut.edges == (0.0, 1.0)
    assert cut.shares == (0.0, 8 / 12, 2 / 12, 2 / 12)


def test_ece_is_the_weighted_gap_of_the_reliability_table() -> None:
    y, p = [0, 1, 1, 0, 1], [0.05, 0.15, 0.95, 1.0, 0.5]
    table = reliability(y, p)
    gaps = (table["observed"] - table["predicted"]).abs() * table["rows"] / 5
    assert ece(y, p) == pytest.approx(gaps.sum())
    assert table["upper"].iloc[-1] == 1.0
    assert table["rows"].sum() == 5
