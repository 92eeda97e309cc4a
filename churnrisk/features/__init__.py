"""Point-in-time features and labels for every (account, as-of date) pair.

The registry (:mod:`churnrisk.features.registry`) declares every feature once; the
engine (:mod:`churnrisk.features.engine`) computes them all in one set-based Ibis query
through the single point-in-time join of :mod:`churnrisk.features.pit`; labels live in
:mod:`churnrisk.features.labels`.
"""

from churnrisk.features.engine import build_features, build_features_expr, write_features
from churnrisk.features.labels import LABEL_COLUMNS, observation_end
from churnrisk.features.pit import as_of_dates, lookahead, lookback, spine, window_join
from churnrisk.features.registry import FEATURES, Feature, feature_names, get_feature

__all__ = [
    "FEATURES",
    "LABEL_COLUMNS",
    "Feature",
    "as_of_dates",
    "build_features",
    "build_features_expr",
    "feature_names",
    "get_feature",
    "lookahead",
    "lookback",
    "observation_end",
    "spine",
    "window_join",
    "write_features",
]
