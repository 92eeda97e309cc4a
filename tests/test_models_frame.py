import numpy as np
import pandas as pd
import pytest

from churnrisk.errors import NotFittedError, SchemaError
from churnrisk.features import feature_names
from churnrisk.models import FeatureFrame


def test_transform_gives_the_fitted_columns_in_order(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    shuffled = planted_panel[list(reversed(planted_panel.columns))]
    x = frame.transform(shuffled)
    assert list(x.columns) == feature_names()
    assert x["plan"].dtype == pd.CategoricalDtype(["x", "y", "z"])
    assert x["mrr"].dtype == "float64"


def test_missing_column_is_named(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    with pytest.raises(SchemaError, match="missing feature columns: dau_mau_30d"):
        frame.transform(planted_panel.drop(columns="dau_mau_30d"))


def test_unexpected_column_is_named(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    with pytest.raises(SchemaError, match="unexpected columns score"):
        frame.transform(planted_panel.assign(score=1.0))


def test_non_numeric_feature_is_refused(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    with pytest.raises(SchemaError, match="'mrr' must be numeric"):
        frame.transform(planted_panel.assign(mrr="lots"))


def test_unseen_category_becomes_missing(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    rows = planted_panel.head(3).copy()
    rows["plan"] = pd.Categorical(["x", "enterprise-plus", None])
    x = frame.transform(rows)
    assert x["plan"].tolist()[0] == "x"
    assert x["plan"].isna().tolist() == [False, True, True]
    codes = frame.codes(rows)
    assert codes[0, feature_names().index("plan")] == 0
    assert np.isnan(codes[1:, feature_names().index("plan")]).all()


def test_state_round_trips_and_unfitted_is_refused(planted_panel):
    frame = FeatureFrame().fit(planted_panel)
    again = FeatureFrame.from_dict(frame.to_dict())
    np.testing.assert_array_equal(frame.codes(planted_panel), again.codes(planted_panel))
    with pytest.raises(NotFittedError, match="not fitted"):
        FeatureFrame().transform(planted_panel)
    with pytest.raises(SchemaError, match="not in the registry: nope"):
        FeatureFrame(["nope"]).fit(planted_panel)
