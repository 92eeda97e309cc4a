"""MLflow tracking, the model registry and the champion gate.

This is the only package that imports :mod:`mlflow`, and it does so inside functions (or
in :mod:`~churnrisk.tracking.pyfunc`, which only a loading model imports): importing
mlflow takes seconds, and importing this package reads no environment variable, touches
no disk and sets no tracking URI (the entry point decides where tracking goes and passes
the URI in).

Where things go (:mod:`~churnrisk.tracking.backend`)
    :func:`tracking_uri` gives the embedded default, a SQLite store
    ``<data_dir>/mlflow.db`` whose artifacts live in ``<data_dir>/mlartifacts``; a team
    passes ``MLFLOW_TRACKING_URI`` (read by the entry point) instead. Every call goes
    through an ``MlflowClient`` on that store, except the fluent run that logs models.
Runs (:mod:`~churnrisk.tracking.runs`, :mod:`~churnrisk.tracking.records`)
    :meth:`Tracker.log_training` records one run per trained bundle (parameters, the
    configuration, the data window and fingerprint, the features, the backtest metrics
    overall and per fold, the plots) and registers both models as ``churnrisk-churn``
    and ``churnrisk-clv``; :meth:`Tracker.log_backtest` records a backtest without
    models.
Models without pickles (:mod:`~churnrisk.tracking.pyfunc`)
    Each pyfunc model is a "model from code": the package file ``churn_model.py`` or
    ``clv_model.py``, which sets a stateless :class:`mlflow.pyfunc.PythonModel`
    wrapper, plus the bundle folder written by ``ChurnRiskModels.save``
    (JSON and LightGBM text files) as its ``bundle`` artifact. ``load_context`` calls
    ``ChurnRiskModels.load`` on that folder. Nothing of ours is pickled.
The champion gate (:mod:`~churnrisk.tracking.registry`, :mod:`~churnrisk.tracking.gate`)
    :meth:`Tracker.promote` moves the ``champion`` alias of both registered models to the
    new versions only when the new backtest is not worse than the champion's on the same
    backtest (same data fingerprint and backtest configuration) within the gate's
    tolerance; otherwise the new versions get ``challenger``. Aliases only, never the
    deprecated stages.
Loading (:mod:`~churnrisk.tracking.loading`)
    :meth:`Tracker.load_champion` and :meth:`Tracker.spark_udf` download a registered
    version from the store and load it from the local folder.
"""

from churnrisk.tracking.backend import EXPERIMENT, TrackingBackend, tracking_uri
from churnrisk.tracking.gate import (
    METRIC_DIRECTION,
    Direction,
    GateDecision,
    behind_baseline,
    degenerate_reason,
    gate_verdict,
)
from churnrisk.tracking.loading import ModelLoader, pyfunc_model
from churnrisk.tracking.records import (
    backtest_key,
    fingerprint,
    flatten_metrics,
    flatten_params,
    pip_requirements,
)
from churnrisk.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    CHURN_MODEL,
    CLV_MODEL,
    PYFUNC_OUTPUTS,
    ChampionInfo,
    ModelVersions,
    Registry,
)
from churnrisk.tracking.runs import RunLogger
from churnrisk.tracking.tracker import Tracker

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CHURN_MODEL",
    "CLV_MODEL",
    "EXPERIMENT",
    "METRIC_DIRECTION",
    "PYFUNC_OUTPUTS",
    "ChampionInfo",
    "Direction",
    "GateDecision",
    "ModelLoader",
    "ModelVersions",
    "Registry",
    "RunLogger",
    "Tracker",
    "TrackingBackend",
    "backtest_key",
    "behind_baseline",
    "degenerate_reason",
    "fingerprint",
    "flatten_metrics",
    "flatten_params",
    "gate_verdict",
    "pip_requirements",
    "pyfunc_model",
    "tracking_uri",
]
