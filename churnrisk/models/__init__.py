"""Churn and CLV models, their backtest, baselines, explanations and saved bundle.

Pure modelling: frames in, frames and arrays out. Only :mod:`churnrisk.models.bundle`
reads and writes files (the saved models), and nothing here imports mlflow.
"""

from churnrisk.models.backtest import BacktestResult, FoldPlan, backtest, plan_folds
from churnrisk.models.baselines import LogisticBaseline, mrr_run_rate, usage_drop_score
from churnrisk.models.bundle import PREDICTION_COLUMNS, ChurnRiskModels, train_models
from churnrisk.models.churn import Calibrator, ChurnModel
from churnrisk.models.clv import ClvModel, lifetime_clv
from churnrisk.models.explain import Driver, drivers, drivers_frame, global_importance
from churnrisk.models.frame import FeatureFrame

__all__ = [
    "PREDICTION_COLUMNS",
    "BacktestResult",
    "Calibrator",
    "ChurnModel",
    "ChurnRiskModels",
    "ClvModel",
    "Driver",
    "FeatureFrame",
    "FoldPlan",
    "LogisticBaseline",
    "backtest",
    "drivers",
    "drivers_frame",
    "global_importance",
    "lifetime_clv",
    "mrr_run_rate",
    "plan_folds",
    "train_models",
    "usage_drop_score",
]
