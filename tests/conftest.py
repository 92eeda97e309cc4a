"""Shared fixtures: one small generated world's labelled panel, built once per session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnrisk.config import LabelConfig
from churnrisk.features import as_of_dates, build_features
from churnrisk.generate import generate_world
from churnrisk.validate import load


@pytest.fixture(scope="session")
def model_panel(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Labelled monthly panel of a 600-account, 18-month world (seed 3)."""
    out = tmp_path_factory.mktemp("model_world")
    summary = generate_world(out, accounts=600, months=18, seed=3)
    ds = load(out).dataset
    return build_features(ds, as_of_dates(summary.start, summary.end), labels=LabelConfig())


def make_planted_panel(n_accounts: int = 400, n_dates: int = 6, seed: int = 0) -> pd.DataFrame:
    """A hand-built labelled panel where only ``dau_mau_30d`` decides churn.

    Every registered feature is present with random values; an account churns exactly when
    its DAU/MAU is below 0.05.
    """
    from churnrisk.features import FEATURES

    rng = np.random.default_rng(seed)
    n = n_accounts * n_dates
    dates = pd.date_range("2025-01-01", periods=n_dates, freq="MS")
    cols: dict[str, object] = {
        "account_id": pd.array([f"a{i:04d}" for i in range(n_accounts)] * n_dates, "string"),
        "as_of": np.repeat(dates.to_numpy(), n_accounts),
    }
    for f in FEATURES:
        if f.dtype == "category":
            cols[f.name] = pd.Categorical(rng.choice(["x", "y", "z"], n))
        else:
            cols[f.name] = rng.random(n) * 100
    cols["dau_mau_30d"] = rng.random(n) * 0.5
    frame = pd.DataFrame(cols)
    frame["churned"] = pd.array((frame["dau_mau_30d"] < 0.05).astype("int8"), "Int8")
    frame["revenue_next_12m"] = frame["mrr"] * 12 * (1 - frame["churned"].astype("float64"))
    return frame


@pytest.fixture(scope="session")
def planted_panel() -> pd.DataFrame:
    return make_planted_panel()
