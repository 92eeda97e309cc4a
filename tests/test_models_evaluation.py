import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from churnrisk.errors import MetricError
from churnrisk.models import evaluation as ev

Y = [1, 0, 1, 0, 0]
S = [0.9, 0.8, 0.7, 0.2, 0.1]


def test_roc_auc_counts_ordered_pairs():
    # positives 0.9, 0.7 vs negatives 0.8, 0.2, 0.1: 5 of 6 pairs ordered
    assert ev.roc_auc(Y, S) == pytest.approx(5 / 6)
    assert ev.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)


def test_pr_auc_is_average_precision():
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2
    assert ev.pr_auc(Y, S) == pytest.approx((1 + 2 / 3) / 2)


def test_brier_and_ece_by_hand():
    assert ev.brier([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    # bins: 0.05,0.05 -> [0,0.1) rate 0.5 gap 0.45; 0.95 -> last bin rate 1 gap 0.05
    y, p = [0, 1, 1], [0.05, 0.05, 0.95]
    assert ev.ece(y, p) == pytest.approx(2 / 3 * 0.45 + 1 / 3 * 0.05)
    assert ev.ece([1], [1.0]) == pytest.approx(0.0)  # p = 1 falls in the last bin


def test_lift_and_top_k_by_hand():
    y = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]  # 12 rows, top decile = ceil(1.2) = 2 rows
    s = np.linspace(1, 0, 12)
    assert ev.lift_top_decile(y, s) == pytest.approx((1 / 2) / (2 / 12))
    assert ev.precision_at_k(Y, S, k=2) == pytest.approx(0.5)
    assert ev.recall_at_k(Y, S, k=3) == pytest.approx(1.0)
    assert ev.recall_at_k(Y, S, k=1) == pytest.approx(0.5)
    assert ev.precision_at_k(Y, S, k=100) == pytest.approx(0.4)  # K capped at n
    mrr = [100, 50, 300, 10, 10]
    assert ev.mrr_recall_at_k(Y, S, mrr, k=2) == pytest.approx(100 / 400)


def test_regression_metrics_by_hand():
    assert ev.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert ev.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))
    assert ev.spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda: ev.roc_auc([0, 0], [0.1, 0.2]), "one class only"),
        (lambda: ev.pr_auc([0, 0], [0.1, 0.2]), "without positives"),
        (lambda: ev.lift_top_decile([0, 0], [0.1, 0.2]), "without positives"),
        (lambda: ev.recall_at_k([0, 0], [0.1, 0.2], k=1), "without positives"),
        (lambda: ev.mrr_recall_at_k([0, 0], [0.1, 0.2], [5, 5], k=1), "no MRR churned"),
        (lambda: ev.roc_auc([], []), "no rows"),
        (lambda: ev.mae([], []), "no rows"),
        (lambda: ev.spearman([1, 1], [1, 2]), "constant"),
        (lambda: ev.ece([0, 1], [0.5, 1.5]), r"probabilities in \[0, 1\]"),
        (lambda: ev.brier([0, 2], [0.5, 0.5]), "0 or 1"),
        (lambda: ev.precision_at_k([0, 1], [0.5, 0.4], k=0), "K must be"),
        (lambda: ev.roc_auc([0, 1], [0.5, float("nan")]), "must not be missing"),
    ],
)
def test_degenerate_input_raises_never_a_made_up_value(fn, match):
    with pytest.raises(MetricError, match=match):
        fn()


def test_plots_return_figures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.6 + rng.random(200) * 0.4, 0, 1)
    assert isinstance(ev.calibration_figure(y, {"model": p}), Figure)
    assert isinstance(ev.gains_figure(y, {"model": p, "random": rng.random(200)}), Figure)
    imp = pd.Series({"a": 3.0, "b": 1.0}, name="gain")
    fig = ev.importance_figure(imp)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]
