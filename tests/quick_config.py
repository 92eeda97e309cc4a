"""A run configuration small enough for tests: few trees, small leaves, two folds."""

import tomllib

QUICK_TOML = """
[churn]
n_estimators = 40
early_stopping_rounds = 10
min_child_samples = 20

[clv]
n_estimators = 40
early_stopping_rounds = 10
min_child_samples = 20

[candidates]
search_trials = 2

[backtest]
folds = 2
capacity_k = 20
"""

QUICK = tomllib.loads(QUICK_TOML)
"""The same configuration as a mapping, for ``RunConfig.model_validate``."""
