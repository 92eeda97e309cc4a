"""Point-in-time features and labels for every (account, as-of date) pair.

The registry (:mod:`churnrisk.features.registry`) declares every feature once; the
vocabulary (:mod:`churnrisk.features.vocabulary`) declares more from the data's own
event types and priorities; the engine (:mod:`churnrisk.features.engine`) computes them
all in one set-based Ibis query through the single point-in-time join of
:mod:`churnrisk.features.pit`; labels live in :mod:`churnrisk.features.labels`.
"""

from churnrisk.features.engine import build_features, build_features_expr, write_features
from churnrisk.features.labels import LABEL_COLUMNS, observation_end
from churnrisk.features.pit import as_of_dates, lookahead, lookback, spine, window_join
from churnrisk.features.registry import FEATURES, Feature, feature_names, get_feature
from churnrisk.features.vocabulary import Vocabulary, learn_vocabulary, panel_features

__all__ = [
    "FEATURES",
    "LABEL_COLUMNS",
    "Feature",
    "Vocabulary",
    "as_of_dates",
    "build_features",
    "build_features_expr",
    "feature_names",
    "get_feature",
    "learn_vocabulary",
    "lookahead",
    "lookback",
    "observation_end",
    "panel_features",
    "spine",
    "window_join",
    "write_features",
]
