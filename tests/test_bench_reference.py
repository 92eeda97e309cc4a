"""The pandas reference of the benchmark computes exactly the engine's features.

Exactly the registered ones: the vocabulary features (one per event type or priority of
the data, :mod:`churnrisk.features.vocabulary`) are left out of this comparison on
purpose, since the pandas reference has no vocabulary; hand-worked fixtures check them
(``tests/test_vocabulary.py``) and so do the boundary and point-in-time tests of
``tests/test_features.py``.
"""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from churnrisk.features import build_features
from churnrisk.features.registry import FEATURES
from churnrisk.generate import generate_world
from churnrisk.validate import load

BENCH = Path(__file__).resolve().parents[1] / "bench" / "pandas_reference.py"


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pandas_reference", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    generate_world(folder, accounts=120, months=10, seed=5)
    return folder


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["as_of", "account_id"], ignore_index=True)


def test_pandas_reference_equals_engine(world: Path) -> None:
    # every month start of the world (2024-11-01 .. 2025-08-01) and one mid-month date
    as_of = [date(2024 + (10 + k) // 12, (10 + k) % 12 + 1, 1) for k in range(10)]
    as_of.append(date(2025, 6, 17))
    engine = _sorted(build_features(load(world).dataset, as_of))
    pandas = _sorted(_reference().build_features_pandas(world, as_of))

    assert list(pandas.columns) == list(engine.columns)
    assert len(pandas) == len(engine) > 0
    assert pandas["account_id"].astype(str).tolist() == engine["account_id"].astype(str).tolist()
    assert (pandas["as_of"].to_numpy() == engine["as_of"].to_numpy()).all()
    for f in FEATURES:
        ours, theirs = pandas[f.name], engine[f.name]
        assert ours.isna().tolist() == theirs.isna().tolist(), f.name
        if f.dtype == "category":
            assert ours.astype(str).tolist() == theirs.astype(str).tolist(), f.name
        elif f.dtype == "int":
            assert ours.fillna(-1).tolist() == theirs.fillna(-1).tolist(), f.name
        else:
            np.testing.assert_allclose(
                ours.fillna(0).to_numpy(),
                theirs.fillna(0).to_numpy(),
                rtol=1e-9,
                atol=1e-9,
                err_msg=f.name,
            )
    # the features are not trivially empty: nulls and zeros alike would compare equal
    assert pandas["events_30d"].gt(0).any()
    assert pandas["nps_last_score"].notna().any()
    assert pandas["expansions_365d"].gt(0).any() or pandas["contractions_365d"].gt(0).any()
