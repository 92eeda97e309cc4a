"""Loading a registered model: the champion bundle in this process, or a Spark UDF.

A registered version is downloaded through :func:`mlflow.artifacts.download_artifacts`
with this store as tracking and registry URI, then loaded from the local folder, so no
load reads mlflow's process-wide tracking URI.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from churnrisk.errors import ConfigError
from churnrisk.tracking.backend import TrackingBackend
from churnrisk.tracking.registry import (
    _REGISTERED,
    CHAMPION,
    CHURN_MODEL,
    PYFUNC_OUTPUTS,
    Registry,
)

if TYPE_CHECKING:
    from churnrisk.models.bundle import ChurnRiskModels


def pyfunc_model(kind: str) -> Any:
    """Return the MLflow pyfunc wrapper of one model of a bundle (``"churn"`` or ``"clv"``).

    The wrapper holds no model state: ``load_context`` loads the bundle from the
    ``bundle`` artifact. Models logged today run ``churnrisk/tracking/churn_model.py``
    or ``clv_model.py``; models logged before those files existed run a script that
    calls this function, so it stays for them.
    """
    if kind not in PYFUNC_OUTPUTS:
        raise ConfigError(f"unknown model kind {kind!r}; use 'churn' or 'clv'")
    from churnrisk.tracking.pyfunc import ChurnRiskPyfunc  # imports mlflow

    return ChurnRiskPyfunc(kind)


class ModelLoader:
    """Loads registered churnrisk models from one store.

    Parameters
    ----------
    backend
        The tracking store.
    registry
        Its registry (to check the champion alias).
    """

    def __init__(self, backend: TrackingBackend, registry: Registry) -> None:
        self._backend = backend
        self._registry = registry

    def _download(self, registered: str, version: str, dst: str) -> str:
        """Download one registered version's model folder into ``dst``; return its path.

        Through the client: MLflow resolves a ``models:/`` URI with the process-wide
        registry URI whatever URI it is given, so the version's storage location is
        asked of this store's registry and downloaded as a plain artifact URI.
        """
        import mlflow.artifacts

        backend = self._backend
        source = backend.client.get_model_version_download_uri(registered, version)
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=dst, tracking_uri=backend.uri
            )
        )

    def load_champion(self, *, version: str | None = None) -> ChurnRiskModels:
        """Load the bundle behind ``models:/churnrisk-churn@champion``.

        Parameters
        ----------
        version
            Load this registered version of ``churnrisk-churn`` instead of whichever
            holds the alias now: callers that read :meth:`Tracker.champion_info` first pass its
            version, so a promotion in between cannot pair one version's record with
            another's models.

        Returns
        -------
        ChurnRiskModels
            The champion bundle (churn and CLV models, configuration, feature names).

        Raises
        ------
        ConfigError
            When no version holds the ``champion`` alias yet.
        """
        import mlflow.pyfunc

        from churnrisk.models.bundle import ChurnRiskModels

        uri = (
            f"models:/{CHURN_MODEL}@{CHAMPION}"
            if version is None
            else (f"models:/{CHURN_MODEL}/{version}")
        )
        with self._backend.quiet():
            if version is None:
                version = self._registry.alias_version(CHURN_MODEL, CHAMPION)
            if version is None:
                raise ConfigError(
                    f"no champion model in {self._backend.uri}: run `churnrisk train DATA` first"
                )
            with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
                local = self._download(CHURN_MODEL, version, tmp)
                model = mlflow.pyfunc.load_model(local, suppress_warnings=True)
                bundle = getattr(model.unwrap_python_model(), "bundle", None)
        if not isinstance(bundle, ChurnRiskModels):
            raise ConfigError(
                f"{uri} is not a churnrisk bundle; retrain with `churnrisk train DATA`"
            )
        return bundle

    def spark_udf(self, session: Any, *, kind: str = "churn", version: str) -> Any:
        """Return a Spark UDF serving one registered model version.

        The UDF is :func:`mlflow.pyfunc.spark_udf` on the model of
        ``models:/<name>/<version>``, downloaded from this store, with the ``local``
        environment manager: executors use the Python environment they run
        in (which must have churnrisk installed); nothing is downloaded or built. MLflow
        copies the model to the executors once (local mode reads it from the driver's
        disk).

        Parameters
        ----------
        session
            The active :class:`pyspark.sql.SparkSession`.
        kind
            ``"churn"`` (``churnrisk-churn``) or ``"clv"`` (``churnrisk-clv``).
        version
            The registered version (e.g. :meth:`Tracker.champion_info`'s), never an alias, so a
            promotion during the job cannot change the model under it.

        Returns
        -------
        pyspark.sql.Column factory
            Call it with the model's input columns, named, in signature order
            (``account_id``, ``as_of`` as a timestamp, then the bundle's features); it
            returns a struct of the numeric outputs of :data:`PYFUNC_OUTPUTS` (keys left
            out).

        Raises
        ------
        ConfigError
            When ``kind`` is unknown.
        """
        import mlflow.pyfunc

        if kind not in _REGISTERED:
            raise ConfigError(f"unknown model kind {kind!r}; use 'churn' or 'clv'")
        outputs = [c for c in PYFUNC_OUTPUTS[kind] if c not in ("account_id", "as_of")]
        result_type = ", ".join(f"{name} double" for name in outputs)
        with self._backend.quiet(), tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
            # spark_udf copies the model from this folder to its own before it returns
            return mlflow.pyfunc.spark_udf(
                session,
                self._download(_REGISTERED[kind], version, tmp),
                result_type=result_type,
                env_manager="local",
            )
