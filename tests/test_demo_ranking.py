"""The demo's ranking: as many distinct probabilities as the model ranks, context apart.

Trains and scores the world ``churnrisk demo`` makes, at its default size; the ECE of
the calibration maps on the same world is measured in bench/calibration.py (quality
aims live in the benchmark, bench/RESULTS.md).
"""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from churnrisk import cli
from churnrisk.config import RunConfig
from churnrisk.dataset import observation_end
from churnrisk.features import build_features, panel_features
from churnrisk.features.registry import CONTEXT
from churnrisk.generate import generate_world
from churnrisk.models import Calibrator, train_models
from churnrisk.models.plan import fit_slices
from churnrisk.pipeline import training_panel
from churnrisk.scoring import score_accounts
from churnrisk.validate import load


def demo_world(out: Path) -> Path:
    """Generate the world of ``churnrisk demo`` with its default options."""
    params = inspect.signature(cli.demo).parameters
    accounts, months, seed = (params[k].default for k in ("accounts", "months", "seed"))
    # the demo's history ends 2026-10-31, as `churnrisk demo` computes its start
    start = date(2026 - (months + 1) // 12, (10 - months) % 12 + 1, 1)
    generate_world(out, accounts=accounts, months=months, start=start, seed=seed)
    return out


@pytest.mark.slow
def test_the_demo_has_at_least_1000_distinct_probabilities(tmp_path: Path) -> None:
    ds = load(demo_world(tmp_path / "demo")).dataset
    config = RunConfig()
    panel = training_panel(ds, config)
    models = train_models(panel, config)
    as_of = observation_end(ds)
    scores = score_accounts(ds, models, as_of=as_of, config=config.scoring)
    p = scores["churn_probability"].to_numpy()
    assert len(p) > 3000
    assert len(np.unique(p)) >= 1000
    # the calibration map keeps the booster's ranking: equal raw scores only tie
    scored = build_features(ds, [as_of], features=panel_features(models.vocabulary))
    raw = models.churn.predict_raw(scored)
    assert len(np.unique(p)) == len(np.unique(raw))
    # the isotonic step map, fitted on the same rows, ties them into a few dozen values
    rows = fit_slices(panel.loc[panel["churned"].notna()], config).calibrate
    step = Calibrator("isotonic").fit(
        models.churn.predict_raw(rows), rows["churned"].to_numpy(dtype="float64")
    )
    assert len(np.unique(step.transform(raw))) < 100
    # renewal timing is context: never a driver, always beside the score
    assert not any(d["feature"] in CONTEXT for row in scores["drivers"] for d in row)
    assert any(d["feature"] == "days_to_renewal" for row in scores["context"] for d in row)
    known = scores["days_to_renewal"].notna()
    assert known.any()
    got = scores.loc[known, "renewal_date"].map(lambda d: (d - as_of).days)
    assert (got == scores.loc[known, "days_to_renewal"]).all()
