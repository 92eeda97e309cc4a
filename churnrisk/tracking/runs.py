"""Logging runs: a training run (parameters, metrics, plots and both models) or a backtest.

:meth:`RunLogger.log_training` records one run per trained bundle: the flattened resolved
:class:`~churnrisk.config.RunConfig` as parameters and ``config.json``, the data window
and fingerprint, the feature list, the backtest metrics (``churn.model.pr_auc``,
``churn.baselines.logistic.roc_auc``, ``clv.model.mae``, ...; per fold as
``folds.<same key>`` with the fold number as step), the plots as PNG images, and both
models as MLflow pyfunc models registered as ``churnrisk-churn`` and ``churnrisk-clv``.
:meth:`RunLogger.log_backtest` records a backtest without models.

Parameters, metrics, tags and artifacts go through the backend's client, by run id. The
run itself is started with ``mlflow.start_run`` inside :meth:`TrackingBackend.active`:
``mlflow.pyfunc.log_model`` logs into the active run of the process-wide tracking URI
and takes neither a URI nor a client.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.tracking.backend import TrackingBackend
from churnrisk.tracking.records import (
    TAG_BACKTEST,
    TAG_FINGERPRINT,
    TAG_KIND,
    _fold_metrics,
    _wire,
    backtest_key,
    flatten_metrics,
    flatten_params,
    pip_requirements,
)
from churnrisk.tracking.registry import _REGISTERED, PYFUNC_OUTPUTS, ModelVersions, Registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from churnrisk.models.bundle import ChurnRiskModels

MODEL_CODE: dict[str, Path] = {
    kind: Path(__file__).resolve().with_name(f"{kind}_model.py") for kind in PYFUNC_OUTPUTS
}
"""The model-from-code file each kind of pyfunc model is logged with (package files)."""


class RunLogger:
    """Records training and backtest runs in one store's experiment.

    Parameters
    ----------
    backend
        The tracking store and experiment.
    registry
        Its registry, where a training run's models are registered.
    """

    def __init__(self, backend: TrackingBackend, registry: Registry) -> None:
        self._backend = backend
        self._registry = registry

    @contextmanager
    def _run(self, kind: str, run_name: str | None) -> Iterator[str]:
        """Start a run of ``kind`` in the experiment and yield its id, with mlflow pointed here.

        ``mlflow.start_run`` (rather than the client's ``create_run``) because the models
        are logged into the active run, and it records what the client does not: the
        run's source, user and status (``FAILED`` when the block raises).
        """
        import mlflow

        experiment_id = self._backend.experiment_id()
        with (
            self._backend.active(),
            mlflow.start_run(
                experiment_id=experiment_id, run_name=run_name, tags={TAG_KIND: kind}
            ) as run,
        ):
            yield str(run.info.run_id)

    def _log_common(
        self,
        run_id: str,
        *,
        config: RunConfig,
        fingerprint: str,
        window: tuple[date, date],
        feature_names: list[str],
        backtest: Mapping[str, Any] | None,
        figures: Mapping[str, Figure] | None,
    ) -> dict[str, float]:
        """Log what every run records (through the client); return the flat metrics."""
        from mlflow.entities import Metric, Param, RunTag

        client = self._backend.client
        params = flatten_params(config)
        params.update(
            {
                "data.first_as_of": window[0].isoformat(),
                "data.last_as_of": window[1].isoformat(),
                "data.fingerprint": fingerprint,
                "features.count": str(len(feature_names)),
            }
        )
        tags = {TAG_FINGERPRINT: fingerprint, TAG_BACKTEST: backtest_key(config)}
        metrics: dict[str, float] = {}
        logged: list[Metric] = []
        if backtest is not None:
            now = int(time.time() * 1000)
            metrics = flatten_metrics(backtest)
            logged = [Metric(k, v, now, 0) for k, v in metrics.items()]
            for step, fold in enumerate(_fold_metrics(backtest), start=1):
                logged.extend(Metric(k, v, now, step) for k, v in fold.items())
        client.log_batch(
            run_id,
            metrics=logged,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_dict(run_id, config.model_dump(mode="json"), "config.json")
        client.log_text(run_id, "\n".join(feature_names) + "\n", "features.txt")
        if backtest is not None:
            client.log_dict(run_id, dict(backtest), "backtest.json")
        for name, fig in (figures or {}).items():
            client.log_figure(run_id, fig, f"plots/{name}.png")
        return metrics

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
        """Record one training run and register its models.

        Parameters
        ----------
        models
            The trained bundle; its ``config``, ``feature_names`` and ``trained_as_of``
            are recorded.
        panel
            Rows the bundle can score (a training panel will do): the first five give
            the models' input examples and signatures.
        fingerprint
            Fingerprint of the input data (:func:`fingerprint`).
        backtest
            The backtest of ``models.config`` on the same data
            (``BacktestResult.to_dict()``); default ``models.backtest``. Its overall
            metrics become run metrics and version tags, which the gate compares.
        figures
            Plots to record as ``plots/<name>.png`` (e.g. ``{"calibration": fig}``).
        run_name
            MLflow run name (default: MLflow's).

        Returns
        -------
        ModelVersions
            The new ``churnrisk-churn`` and ``churnrisk-clv`` versions (no alias yet; see
            :meth:`Tracker.promote`) and the run id. A bundle without a revenue model (data too
            short for its label) registers no ``churnrisk-clv`` version: ``clv`` is
            ``""``, and the churn model's bundle serves the survival view of revenue.
        """
        import mlflow
        from mlflow.models import infer_signature

        if backtest is None:
            backtest = models.backtest
        example = _wire(models.input_example(panel, n=5))
        scores = models.predict(example)
        with self._run("train", run_name) as run_id:
            metrics = self._log_common(
                run_id,
                config=models.config,
                fingerprint=fingerprint,
                window=models.trained_as_of,
                feature_names=list(models.feature_names),
                backtest=backtest,
                figures=figures,
            )
            requirements = pip_requirements()
            versions: dict[str, str] = {}
            tags = {
                TAG_FINGERPRINT: fingerprint,
                TAG_BACKTEST: backtest_key(models.config),
                **{k: f"{v:.6g}" for k, v in metrics.items() if ".model." in k},
            }
            with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
                bundle_dir = Path(tmp) / "bundle"
                models.save(bundle_dir)
                for kind, registered in _REGISTERED.items():
                    if kind == "clv" and models.clv is None:
                        versions[kind] = ""
                        continue
                    out = scores.loc[:, list(PYFUNC_OUTPUTS[kind])]
                    info = mlflow.pyfunc.log_model(
                        name=f"{kind}_model",
                        python_model=str(MODEL_CODE[kind]),
                        artifacts={"bundle": str(bundle_dir)},
                        signature=infer_signature(example, out),
                        input_example=example,
                        pip_requirements=requirements,
                    )
                    version = self._registry.register(registered, info, run_id, tags)
                    versions[kind] = str(version)
        return ModelVersions(churn=versions["churn"], clv=versions["clv"], run_id=run_id)

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
        """Record a backtest run (no model): the same parameters, metrics and plots.

        Parameters
        ----------
        backtest
            ``BacktestResult.to_dict()``.
        config
            The resolved run configuration the backtest ran with.
        fingerprint
            Fingerprint of the input data (:func:`fingerprint`).
        window
            First and last as-of dates of the panel.
        feature_names
            The features the models used.
        figures, run_name
            As for :meth:`log_training`.

        Returns
        -------
        str
            The run id.
        """
        with self._run("backtest", run_name) as run_id:
            self._log_common(
                run_id,
                config=config,
                fingerprint=fingerprint,
                window=window,
                feature_names=feature_names,
                backtest=backtest,
                figures=figures,
            )
        return run_id
