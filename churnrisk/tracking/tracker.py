"""The tracker: one object for the CLI, the pipeline and the service, over four rooms.

:class:`Tracker` composes the store (:class:`~churnrisk.tracking.backend.TrackingBackend`),
the run logger (:class:`~churnrisk.tracking.runs.RunLogger`), the registry with the gate
(:class:`~churnrisk.tracking.registry.Registry`) and the loader
(:class:`~churnrisk.tracking.loading.ModelLoader`), and keeps the methods callers use.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnrisk.config import GateConfig, RunConfig
from churnrisk.tracking.backend import EXPERIMENT, TrackingBackend
from churnrisk.tracking.gate import GateDecision
from churnrisk.tracking.loading import ModelLoader
from churnrisk.tracking.registry import ChampionInfo, ModelVersions, Registry
from churnrisk.tracking.runs import RunLogger

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from churnrisk.models.bundle import ChurnRiskModels


class Tracker:
    """Record runs and models in one MLflow tracking store and registry.

    Parameters
    ----------
    uri
        Tracking URI: :func:`~churnrisk.tracking.tracking_uri` for the embedded store, or
        the value of ``MLFLOW_TRACKING_URI``. The model registry is the same store.
    experiment
        Experiment name; created on first use.
    artifact_location
        Where a newly created experiment keeps its artifacts. Default: for a SQLite store,
        ``mlartifacts`` beside the database file; otherwise the server decides.

    Attributes
    ----------
    backend : TrackingBackend
        The store, its client and the experiment.
    runs : RunLogger
        Logs training and backtest runs.
    registry : Registry
        Registered versions, the champion and the gate.
    loader : ModelLoader
        Loads the champion bundle or a Spark UDF.

    Notes
    -----
    Constructing a tracker imports mlflow (seconds), quiets its loggers to warnings and
    creates the SQLite store's folder; the store and experiment are created on first use.
    Only a training or backtest run points mlflow's process-wide tracking URI at this
    store, for its own duration (:meth:`active`); everything else goes through
    :attr:`client`.
    """

    def __init__(
        self, uri: str, experiment: str = EXPERIMENT, *, artifact_location: str | None = None
    ) -> None:
        self.backend = TrackingBackend(uri, experiment, artifact_location=artifact_location)
        self.registry = Registry(self.backend)
        self.runs = RunLogger(self.backend, self.registry)
        self.loader = ModelLoader(self.backend, self.registry)

    def __repr__(self) -> str:
        return f"Tracker(uri={self.uri!r}, experiment={self.experiment!r})"

    # ----------------------------------------------------------------- the store

    @property
    def uri(self) -> str:
        """The tracking (and registry) URI."""
        return self.backend.uri

    @property
    def experiment(self) -> str:
        """The experiment's name."""
        return self.backend.experiment

    @property
    def artifact_location(self) -> str | None:
        """Where a newly created experiment keeps its artifacts (None: the server decides)."""
        return self.backend.artifact_location

    @property
    def client(self) -> MlflowClient:
        """An :class:`mlflow.MlflowClient` on this tracker's store (tracking and registry)."""
        return self.backend.client

    def active(self) -> AbstractContextManager[None]:
        """Point mlflow's fluent API at this store for the duration, quietly.

        See :meth:`TrackingBackend.active`: the previous tracking URI and
        ``MLFLOW_TRACKING_URI`` are restored on exit, one thread at a time is inside. Use
        it to call mlflow directly, e.g.
        ``mlflow.pyfunc.load_model("models:/churnrisk-churn@champion")``.
        """
        return self.backend.active()

    def experiment_id(self) -> str:
        """Return the experiment's id, creating the experiment on first use."""
        return self.backend.experiment_id()

    # ----------------------------------------------------------------- runs

    def log_training(
        self,
        models: ChurnRiskModels,
        *,
        panel: pd.DataFrame,
        fingerprint: str,
        backtest: Mapping[str, Any] | None = None,
        figures: Mapping[str, Figure] | None = None,
        run_name: str | None = None,
    ) -> ModelVersions:
        """Record one training run and register its models (:meth:`RunLogger.log_training`)."""
        return self.runs.log_training(
            models,
            panel=panel,
            fingerprint=fingerprint,
            backtest=backtest,
            figures=figures,
            run_name=run_name,
        )

    def log_backtest(
        self,
        backtest: Mapping[str, Any],
        *,
        config: RunConfig,
        fingerprint: str,
        window: tuple[date, date],
        feature_names: list[str],
        figures: Mapping[str, Figure] | None = None,
        run_name: str | None = None,
    ) -> str:
        """Record a backtest run without models; return its id (:meth:`RunLogger.log_backtest`)."""
        return self.runs.log_backtest(
            backtest,
            config=config,
            fingerprint=fingerprint,
            window=window,
            feature_names=feature_names,
            figures=figures,
            run_name=run_name,
        )

    # ----------------------------------------------------------------- registry

    def champion_versions(self) -> tuple[str, str] | None:
        """Return the ``(churn, clv)`` versions holding ``champion``, cheaply, or ``None``."""
        return self.registry.champion_versions()

    def champion_info(self) -> ChampionInfo | None:
        """Return the champion's versions, configuration, fingerprint and metrics, or ``None``."""
        return self.registry.champion_info()

    def promote(
        self,
        new: ModelVersions,
        new_metrics: Mapping[str, Any],
        *,
        gate: GateConfig,
        force: bool = False,
        champion_metrics: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Give the new versions ``champion`` if not worse, else ``challenger`` (the gate).

        See :meth:`Registry.promote`.
        """
        return self.registry.promote(
            new, new_metrics, gate=gate, force=force, champion_metrics=champion_metrics
        )

    def model_info(self) -> dict[str, Any]:
        """Return what the service reports about the champion (:meth:`Registry.model_info`)."""
        return self.registry.model_info()

    # ----------------------------------------------------------------- loading

    def load_champion(self, *, version: str | None = None) -> ChurnRiskModels:
        """Load the champion bundle, or this churn version's (:meth:`ModelLoader.load_champion`)."""
        return self.loader.load_champion(version=version)

    def spark_udf(self, session: Any, *, kind: str = "churn", version: str) -> Any:
        """Return a Spark UDF serving one registered version (:meth:`ModelLoader.spark_udf`)."""
        return self.loader.spark_udf(session, kind=kind, version=version)


__all__ = ["Tracker"]
