"""Where tracking goes: one MLflow tracking store and registry, reached through its client.

Every registry and run read goes through an :class:`mlflow.MlflowClient` built with this
store's URI as both its tracking and registry URI, so nothing process-wide is touched.
Only the fluent functions that take no URI (``mlflow.start_run`` and
``mlflow.pyfunc.log_model`` inside it) need the process-wide tracking URI;
:meth:`TrackingBackend.active` points it here for their duration and puts it back.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = "churnrisk"
"""Default MLflow experiment name."""

_ACTIVE = threading.RLock()
"""Held while a tracker points mlflow's process-wide tracking URI at its store (or silences
mlflow's warnings, which are process-wide too): two threads pointing it at two stores (a
service following its registry while another app starts, in one process) would otherwise
read each other's models."""

_URI_VARIABLE = "MLFLOW_TRACKING_URI"


def tracking_uri(data_dir: Path) -> str:
    """Return the embedded tracking URI: a SQLite store in ``data_dir``.

    Parameters
    ----------
    data_dir
        The churnrisk data directory; the store is ``<data_dir>/mlflow.db`` and a
        :class:`~churnrisk.tracking.Tracker` on it keeps artifacts in
        ``<data_dir>/mlartifacts``.

    Returns
    -------
    str
        ``sqlite:///<absolute data_dir>/mlflow.db``. Nothing is created.
    """
    return f"sqlite:///{(Path(data_dir).absolute() / 'mlflow.db').as_posix()}"


def _sqlite_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI, or ``None`` for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    rest = unquote(uri[len(prefix) :].split("?", 1)[0])
    if rest in ("", ":memory:"):
        return None
    return Path(rest).absolute()


class TrackingBackend:
    """One MLflow tracking store (and its registry, the same store) and an experiment in it.

    Parameters
    ----------
    uri
        Tracking URI: :func:`tracking_uri` for the embedded store, or the value of
        ``MLFLOW_TRACKING_URI``. The model registry is the same store.
    experiment
        Experiment name; created on first use.
    artifact_location
        Where a newly created experiment keeps its artifacts. Default: for a SQLite store,
        ``mlartifacts`` beside the database file; otherwise the server decides.

    Notes
    -----
    Constructing one imports mlflow (seconds), quiets its loggers to warnings and creates
    the SQLite store's folder; the store and experiment are created on first use.
    """

    def __init__(
        self, uri: str, experiment: str = EXPERIMENT, *, artifact_location: str | None = None
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        db = _sqlite_path(uri)
        if artifact_location is None and db is not None:
            artifact_location = (db.parent / "mlartifacts").as_uri()
        self.artifact_location = artifact_location
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        import mlflow  # noqa: F401  (mlflow sets its loggers' levels on import)

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"TrackingBackend(uri={self.uri!r}, experiment={self.experiment!r})"

    @property
    def client(self) -> MlflowClient:
        """An :class:`mlflow.MlflowClient` on this store, as tracking and registry URI."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Silence mlflow's warnings for the duration (one thread at a time).

        Warning filters are process-wide, so this holds the same lock as :meth:`active`.
        """
        with _ACTIVE, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point mlflow's fluent API at this store for the duration, quietly.

        The fluent functions (``mlflow.start_run``, ``mlflow.pyfunc.log_model`` in a run,
        a ``models:/`` URI given to ``mlflow.pyfunc.load_model``) take no tracking URI:
        they read the process-wide one, and :func:`mlflow.set_tracking_uri` is MLflow's
        public way to set it (it also sets ``MLFLOW_TRACKING_URI`` in the environment, so
        that subprocesses follow). So, under a process-wide lock (one thread at a time is
        inside; others wait), the URI that was set (:func:`mlflow.tracking.is_tracking_uri_set`,
        :func:`mlflow.get_tracking_uri`) and the environment variable are remembered, this
        store's URI is set, and both are put back on exit. When no URI was set before,
        ``set_tracking_uri(None)`` unsets it again, as MLflow does to undo its own, so
        mlflow goes back to resolving its default. mlflow's warnings are silenced inside.

        Everything that can take a URI (the registry, run reads, artifact and model
        downloads) goes through :attr:`client` or an explicit ``tracking_uri`` instead.
        """
        import mlflow
        from mlflow.tracking import is_tracking_uri_set

        with self.quiet():
            environment = os.environ.get(_URI_VARIABLE)
            previous = mlflow.get_tracking_uri() if is_tracking_uri_set() else None
            mlflow.set_tracking_uri(self.uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]
                if environment is None:
                    os.environ.pop(_URI_VARIABLE, None)
                else:
                    os.environ[_URI_VARIABLE] = environment

    def experiment_id(self) -> str:
        """Return the experiment's id, creating the experiment on first use."""
        if self._experiment_id is None:
            client = self.client
            with self.quiet():
                found = client.get_experiment_by_name(self.experiment)
                if found is not None:
                    self._experiment_id = str(found.experiment_id)
                else:
                    self._experiment_id = str(
                        client.create_experiment(
                            self.experiment, artifact_location=self.artifact_location
                        )
                    )
        return self._experiment_id
