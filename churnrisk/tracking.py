"""MLflow tracking, the model registry and the champion gate.

This is the only module that imports :mod:`mlflow`, and it does so inside functions:
importing mlflow takes seconds, and importing this module reads no environment variable,
touches no disk and sets no tracking URI (the entry point decides where tracking goes and
passes the URI in).

Where things go
    :func:`tracking_uri` gives the embedded default, a SQLite store
    ``<data_dir>/mlflow.db`` whose artifacts live in ``<data_dir>/mlartifacts``; a team
    passes ``MLFLOW_TRACKING_URI`` (read by the entry point) instead.
Runs
    :meth:`Tracker.log_training` records one run per trained bundle: the flattened resolved
    :class:`~churnrisk.config.RunConfig` as parameters and ``config.json``, the data window
    and fingerprint, the feature list, the backtest metrics (``churn.model.pr_auc``,
    ``churn.baselines.logistic.roc_auc``, ``clv.model.mae``, ...; per fold as
    ``folds.<same key>`` with the fold number as step), the plots as PNG images, and both
    models as MLflow pyfunc models registered as ``churnrisk-churn`` and ``churnrisk-clv``.
    :meth:`Tracker.log_backtest` records a backtest without models.
Models without pickles
    Each pyfunc model is a "model from code": a three-line script that builds a stateless
    :class:`mlflow.pyfunc.PythonModel` wrapper, plus the bundle folder written by
    ``ChurnRiskModels.save`` (JSON and LightGBM text files) as its ``bundle`` artifact.
    ``load_context`` calls ``ChurnRiskModels.load`` on that folder. Nothing of ours is
    pickled.
The champion gate
    :meth:`Tracker.promote` moves the ``champion`` alias of both registered models to the
    new versions only when the new backtest is not worse than the champion's on the same
    backtest (same data fingerprint and backtest configuration) within the gate's
    tolerance; otherwise the new versions get ``challenger``. Aliases only, never the
    deprecated stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import pandas as pd

from churnrisk.config import GateConfig, RunConfig
from churnrisk.errors import ConfigError, NotFittedError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from churnrisk.models.bundle import ChurnRiskModels

EXPERIMENT = "churnrisk"
"""Default MLflow experiment name."""

CHURN_MODEL = "churnrisk-churn"
"""Registered model of the churn classifier (its pyfunc returns churn probabilities)."""

CLV_MODEL = "churnrisk-clv"
"""Registered model of the CLV regressor (its pyfunc returns the CLV frame)."""

CHAMPION = "champion"
CHALLENGER = "challenger"

Direction = Literal["higher", "lower"]

METRIC_DIRECTION: dict[str, Direction] = {
    "roc_auc": "higher",
    "pr_auc": "higher",
    "lift_top_decile": "higher",
    "recall_at_k": "higher",
    "precision_at_k": "higher",
    "mrr_recall_at_k": "higher",
    "spearman": "higher",
    "brier": "lower",
    "ece": "lower",
    "mae": "lower",
    "rmse": "lower",
}
"""Whether a larger value of a backtest metric is better, by metric name."""

PYFUNC_OUTPUTS: dict[str, tuple[str, ...]] = {
    "churn": ("account_id", "as_of", "churn_probability"),
    "clv": ("account_id", "as_of", "revenue_12m", "lifetime_clv", "mrr"),
}
"""Columns each pyfunc model returns, keyed ``(account_id, as_of)``."""

_REGISTERED = {"churn": CHURN_MODEL, "clv": CLV_MODEL}
_DESCRIPTIONS = {
    CHURN_MODEL: "churnrisk calibrated churn probability within the label horizon,"
    " keyed (account_id, as_of)",
    CLV_MODEL: "churnrisk 12-month revenue and lifetime CLV, keyed (account_id, as_of)",
}

_TAG_KIND = "churnrisk.kind"
_TAG_FINGERPRINT = "churnrisk.fingerprint"
_TAG_BACKTEST = "churnrisk.backtest_config"
_TAG_GATE = "churnrisk.gate"

_CODE_TEMPLATE = '''"""churnrisk {kind} model, logged as an MLflow model from code (no pickle).

The bundle it serves is the ``bundle`` artifact, loaded by ``ChurnRiskModels.load``.
"""

import mlflow

from churnrisk.tracking import pyfunc_model

mlflow.models.set_model(pyfunc_model({kind!r}))
'''

_CHUNK = 1 << 20
_ACTIVE = threading.RLock()
"""Held while a :class:`Tracker` points mlflow's process-wide tracking URI at its store:
two threads pointing it at two stores (a service following its registry while another
app starts, in one process) would otherwise read each other's models."""
_EPS = 1e-12  # a value exactly at the tolerance passes despite float rounding


# --------------------------------------------------------------------------- helpers


def tracking_uri(data_dir: Path) -> str:
    """Return the embedded tracking URI: a SQLite store in ``data_dir``.

    Parameters
    ----------
    data_dir
        The churnrisk data directory; the store is ``<data_dir>/mlflow.db`` and a
        :class:`Tracker` on it keeps artifacts in ``<data_dir>/mlartifacts``.

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


def fingerprint(path: Path) -> str:
    """Return a deterministic SHA-256 fingerprint of a data file or folder.

    Files are visited in sorted order of their relative paths; each contributes its
    relative path, its size and its contents (read in 1 MiB chunks), so renaming,
    adding, removing or editing a file changes the fingerprint while modification times
    do not.

    Parameters
    ----------
    path
        A data folder (every regular file below it counts) or a single file.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    ConfigError
        When ``path`` does not exist or cannot be read.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
        root = path.parent
    elif path.is_dir():
        root = path
        files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.as_posix())
    else:
        raise ConfigError(f"cannot fingerprint {path}: no such file or folder")
    digest = hashlib.sha256()
    try:
        for file in files:
            rel = file.relative_to(root).as_posix().encode("utf-8")
            digest.update(len(rel).to_bytes(8, "big") + rel)
            digest.update(file.stat().st_size.to_bytes(8, "big"))
            with file.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
    except OSError as err:
        raise ConfigError(f"cannot fingerprint {path}: {err}") from err
    return digest.hexdigest()


def flatten_params(config: RunConfig) -> dict[str, str]:
    """Return the resolved configuration as flat MLflow parameters (``churn.learning_rate``)."""
    return {k: _text(v) for k, v in _flatten(config.model_dump(mode="json")).items()}


def flatten_metrics(backtest: Mapping[str, Any]) -> dict[str, float]:
    """Return the overall backtest metrics as flat names such as ``churn.model.pr_auc``.

    Parameters
    ----------
    backtest
        The JSON shape of a backtest (``BacktestResult.to_dict()``), or metrics already
        flat. The ``folds`` list and the ``plan`` (dates and counts, not metrics) are left
        out; missing (``None``) and non-finite values are dropped.
    """
    flat = _flatten({k: v for k, v in backtest.items() if k not in ("folds", "plan")})
    return {k: float(v) for k, v in flat.items() if _is_number(v)}


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def backtest_key(config: RunConfig) -> str:
    """Return what makes two backtests comparable: the label and backtest settings.

    Two backtests on the same data fingerprint with the same key test the same rows
    against the same labels, so their metrics can be compared.
    """
    payload = {
        "labels": config.labels.model_dump(mode="json"),
        "backtest": config.backtest.model_dump(mode="json"),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _differences(champion_key: str, new_key: str) -> str:
    """Name the settings where two :func:`backtest_key` values differ."""
    try:
        old, new = _flatten(json.loads(champion_key)), _flatten(json.loads(new_key))
    except ValueError:
        return "unrecorded"
    diff = [
        f"{k} {old.get(k)} vs {new.get(k)}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]
    return ", ".join(diff) or "unrecorded"


def _fold_metrics(backtest: Mapping[str, Any]) -> list[dict[str, float]]:
    out = []
    for fold in backtest.get("folds") or []:
        flat = _flatten({k: v for k, v in fold.items() if k in ("churn", "clv")})
        for k in ("n_train", "n_test"):
            flat[k] = fold.get(k)
        out.append({f"folds.{k}": float(v) for k, v in flat.items() if _is_number(v)})
    return out


def pip_requirements() -> list[str]:
    """Return churnrisk's runtime dependencies pinned to the installed versions.

    Logged with each model so that MLflow does not infer an environment (slow, and it
    may reach the network). churnrisk itself is not listed: it is not on a public index,
    and a loading environment must have it installed.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("churnrisk") or []
    except metadata.PackageNotFoundError:
        declared = []
    pins = []
    for text in declared:
        req = Requirement(text)
        if req.marker is not None:
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        try:
            pins.append(f"{req.name}{extras}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            pins.append(str(req))
    return pins


def _wire(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` as MLflow schemas accept it: categories as plain strings."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            col = out[name].astype("string").astype(object)
            out[name] = col.where(col.notna(), None)
    return out


# --------------------------------------------------------------------------- pyfunc


@cache
def _pyfunc_class() -> type:
    from mlflow.pyfunc import PythonModel

    class ChurnRiskPyfunc(PythonModel):
        """A stateless wrapper until ``load_context`` loads the bundle artifact."""

        def __init__(self, kind: str) -> None:
            self.kind = kind
            self.bundle: ChurnRiskModels | None = None

        def load_context(self, context: Any) -> None:
            from churnrisk.models.bundle import ChurnRiskModels

            self.bundle = ChurnRiskModels.load(Path(context.artifacts["bundle"]))

        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            if self.bundle is None:
                raise NotFittedError("the churnrisk pyfunc model has no bundle; load it first")
            scores = self.bundle.predict(model_input)
            return scores.loc[:, list(PYFUNC_OUTPUTS[self.kind])]

    return ChurnRiskPyfunc


def pyfunc_model(kind: str) -> Any:
    """Return the MLflow pyfunc wrapper of one model of a bundle (``"churn"`` or ``"clv"``).

    The wrapper holds no model state: ``load_context`` loads the bundle from the
    ``bundle`` artifact. Called by the logged model-from-code script.
    """
    if kind not in PYFUNC_OUTPUTS:
        raise ConfigError(f"unknown model kind {kind!r}; use 'churn' or 'clv'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = _pyfunc_class()
    return cls(kind)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelVersions:
    """The registered versions of one trained bundle and the run that logged them."""

    churn: str
    clv: str
    run_id: str


@dataclass(frozen=True)
class GateDecision:
    """What the promotion gate decided and why.

    Attributes
    ----------
    promoted
        Whether the new versions now hold the ``champion`` alias.
    reason
        One line naming the deciding metric and both values, ``"forced"``, ``"the first
        model: no earlier champion to compare with"``, or why the backtests are not
        comparable. It reads after "version N is champion" / "is challenger".
    champion_before
        The churn model version that held ``champion`` before, or ``None``.
    comparable
        ``False`` when the champion's recorded backtest used other data or another
        backtest configuration: no alias moved; re-run the champion's configuration on
        this data (:meth:`Tracker.champion_info`) and pass ``champion_metrics``.
    """

    promoted: bool
    reason: str
    champion_before: str | None
    comparable: bool = True


@dataclass(frozen=True)
class ChampionInfo:
    """The current champion and what its run recorded.

    Attributes
    ----------
    versions
        Its churn and CLV versions and the run that logged them.
    config
        Its resolved run configuration (``RunConfig.model_validate(info.config)``).
    fingerprint
        Fingerprint of the data it was trained and backtested on.
    backtest_key
        The label and backtest settings of its backtest (:func:`backtest_key`).
    metrics
        Its overall backtest metrics, flat (``churn.model.pr_auc``); empty when it was
        trained without a backtest.
    trained_as_of
        First and last as-of dates of its training panel.
    """

    versions: ModelVersions
    config: dict[str, Any]
    fingerprint: str
    backtest_key: str
    metrics: dict[str, float] = field(default_factory=dict)
    trained_as_of: tuple[date, date] | None = None


def _gate_key(name: str) -> str:
    return name if "." in name else f"churn.model.{name}"


def gate_verdict(
    new: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    metrics: Sequence[str],
    tolerance: float,
) -> tuple[bool, str]:
    """Decide whether a new backtest is not worse than the champion's.

    A metric passes when ``new >= champion - tolerance`` if higher is better and
    ``new <= champion + tolerance`` if lower is better (:data:`METRIC_DIRECTION`).

    Parameters
    ----------
    new, champion
        Flat overall backtest metrics of the same backtest (:func:`flatten_metrics`).
    metrics
        Gated metrics: churn model metric names (``"pr_auc"``) or flat keys
        (``"clv.model.mae"``), in the order the reason lists them.
    tolerance
        How far the new model may fall behind on each metric.

    Returns
    -------
    tuple of (bool, str)
        Whether every metric passes, and the reason: the failing comparisons (e.g.
        ``"pr_auc 0.412 < champion 0.430 - 0.005"``) or, when all pass, all of them,
        joined by ``"; "``.
    """
    failures: list[str] = []
    passes: list[str] = []
    for name in metrics:
        key = _gate_key(name)
        new_v, old_v = float(new[key]), float(champion[key])
        if METRIC_DIRECTION.get(key.rsplit(".", 1)[-1], "higher") == "higher":
            ok = new_v >= old_v - tolerance - _EPS
            text = f"{name} {new_v:.3f} {'>=' if ok else '<'} champion {old_v:.3f} - {tolerance:g}"
        else:
            ok = new_v <= old_v + tolerance + _EPS
            text = f"{name} {new_v:.3f} {'<=' if ok else '>'} champion {old_v:.3f} + {tolerance:g}"
        (passes if ok else failures).append(text)
    return (False, "; ".join(failures)) if failures else (True, "; ".join(passes))


def degenerate_reason(backtest: Mapping[str, Any], *, min_distinct: int) -> str | None:
    """Say why a backtested churn model is degenerate, or return ``None``.

    Degenerate: the chosen candidate (``churn.chosen``) gave fewer than ``min_distinct``
    distinct probabilities on the backtest's pooled test rows
    (``churn.candidates.<chosen>.distinct_probabilities``): a one-leaf booster, a
    constant, or a handful of scores that cannot rank accounts. A backtest without that
    record (flat metrics, or one run before candidates existed) is not judged here.
    """
    churn = backtest.get("churn")
    if not isinstance(churn, Mapping) or "chosen" not in churn:
        return None
    chosen = str(churn["chosen"])
    distinct = churn.get("candidates", {}).get(chosen, {}).get("distinct_probabilities")
    if distinct is None or int(distinct) >= min_distinct:
        return None
    return (
        f"degenerate: the {chosen} model gave {int(distinct)} distinct probabilities on the"
        f" backtest's test rows, fewer than gate.min_distinct {min_distinct}; it is never"
        " promoted, not even with --force: give it more accounts or history, or a smaller"
        " churn.min_child_samples"
    )


def behind_baseline(
    new: Mapping[str, float], *, metrics: Sequence[str], tolerance: float
) -> str | None:
    """Say where a model's backtest is behind the logistic baseline's, or return ``None``.

    A gated metric fails when ``churn.model.<m> < churn.baselines.logistic.<m> -
    tolerance``; a metric missing on either side is not compared.
    """
    failures = []
    for name in metrics:
        ours = new.get(f"churn.model.{name}")
        theirs = new.get(f"churn.baselines.logistic.{name}")
        if ours is None or theirs is None:
            continue
        if ours < theirs - tolerance - _EPS:
            failures.append(f"{name} {ours:.3f} < logistic baseline {theirs:.3f} - {tolerance:g}")
    return f"behind the baseline: {'; '.join(failures)}" if failures else None


# --------------------------------------------------------------------------- tracker


class Tracker:
    """Record runs and models in one MLflow tracking store and registry.

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
    Constructing a tracker imports mlflow (seconds), quiets its loggers to warnings and
    creates the SQLite store's folder; the store and experiment are created on first use.
    The methods point mlflow at this store only for their own duration (:meth:`active`).
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
        return f"Tracker(uri={self.uri!r}, experiment={self.experiment!r})"

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> MlflowClient:
        """An :class:`mlflow.MlflowClient` on this tracker's store."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point mlflow's fluent API at this store for the duration, quietly.

        The previous tracking URI (and ``MLFLOW_TRACKING_URI`` in the environment, which
        mlflow sets) is restored on exit; mlflow's warnings are silenced inside. The URI
        is process-wide, so one thread at a time is inside (others wait). Use it to
        call mlflow directly, e.g. ``mlflow.pyfunc.load_model("models:/churnrisk-churn@champion")``.
        """
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _ACTIVE, _use_tracking_uri(self.uri), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield

    def experiment_id(self) -> str:
        """Return the experiment's id, creating the experiment on first use."""
        if self._experiment_id is None:
            with self.active():
                client = self.client
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

    @contextmanager
    def _run(self, kind: str, run_name: str | None) -> Iterator[str]:
        import mlflow

        experiment_id = self.experiment_id()
        with (
            self.active(),
            mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run,
        ):
            mlflow.set_tag(_TAG_KIND, kind)
            yield str(run.info.run_id)

    def _log_common(
        self,
        *,
        config: RunConfig,
        fingerprint: str,
        window: tuple[date, date],
        feature_names: list[str],
        backtest: Mapping[str, Any] | None,
        figures: Mapping[str, Figure] | None,
    ) -> dict[str, float]:
        import mlflow

        params = flatten_params(config)
        params.update(
            {
                "data.first_as_of": window[0].isoformat(),
                "data.last_as_of": window[1].isoformat(),
                "data.fingerprint": fingerprint,
                "features.count": str(len(feature_names)),
            }
        )
        mlflow.log_params(params)
        mlflow.set_tags({_TAG_FINGERPRINT: fingerprint, _TAG_BACKTEST: backtest_key(config)})
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        mlflow.log_text("\n".join(feature_names) + "\n", "features.txt")
        metrics: dict[str, float] = {}
        if backtest is not None:
            metrics = flatten_metrics(backtest)
            mlflow.log_metrics(metrics)
            for step, fold in enumerate(_fold_metrics(backtest), start=1):
                mlflow.log_metrics(fold, step=step)
            mlflow.log_dict(dict(backtest), "backtest.json")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        return metrics

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
            :meth:`promote`) and the run id. A bundle without a revenue model (data too
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
                _TAG_FINGERPRINT: fingerprint,
                _TAG_BACKTEST: backtest_key(models.config),
                **{k: f"{v:.6g}" for k, v in metrics.items() if ".model." in k},
            }
            with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
                bundle_dir = Path(tmp) / "bundle"
                models.save(bundle_dir)
                for kind, registered in _REGISTERED.items():
                    if kind == "clv" and models.clv is None:
                        versions[kind] = ""
                        continue
                    code = Path(tmp) / f"churnrisk_{kind}_model.py"
                    code.write_text(_CODE_TEMPLATE.format(kind=kind), encoding="utf-8")
                    out = scores.loc[:, list(PYFUNC_OUTPUTS[kind])]
                    info = mlflow.pyfunc.log_model(
                        name=f"{kind}_model",
                        python_model=str(code),
                        artifacts={"bundle": str(bundle_dir)},
                        signature=infer_signature(example, out),
                        input_example=example,
                        pip_requirements=requirements,
                    )
                    version = self._register(registered, info, run_id, tags)
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
                config=config,
                fingerprint=fingerprint,
                window=window,
                feature_names=feature_names,
                backtest=backtest,
                figures=figures,
            )
        return run_id

    # ----------------------------------------------------------------- registry

    def _register(self, registered: str, info: Any, run_id: str, tags: dict[str, str]) -> str:
        """Create a version of ``registered`` (and the model itself on first use)."""
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.get_registered_model(registered)
        except MlflowException:
            client.create_registered_model(registered, description=_DESCRIPTIONS[registered])
        version = client.create_model_version(
            registered, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
        )
        return str(version.version)

    def _alias_version(self, registered: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(registered, alias).version)
        except MlflowException:
            return None

    def champion_versions(self) -> tuple[str, str] | None:
        """Return the ``(churn, clv)`` versions holding the ``champion`` alias, cheaply.

        Two registry lookups and nothing else, so a service can poll it. ``None`` when
        no version holds the alias; ``clv`` is ``""`` when only the churn model has it.
        """
        with self.active():
            churn = self._alias_version(CHURN_MODEL, CHAMPION)
            if churn is None:
                return None
            return churn, self._alias_version(CLV_MODEL, CHAMPION) or ""

    def champion_info(self) -> ChampionInfo | None:
        """Return the champion's versions, resolved configuration, fingerprint and metrics.

        Returns
        -------
        ChampionInfo or None
            ``None`` when no version holds the ``champion`` alias.
        """
        with self.active():
            churn = self._alias_version(CHURN_MODEL, CHAMPION)
            if churn is None:
                return None
            clv = self._alias_version(CLV_MODEL, CHAMPION)
            client = self.client
            run_id = str(client.get_model_version(CHURN_MODEL, churn).run_id)
            run = client.get_run(run_id)
            config = self._load_dict(run_id, "config.json")
        data = run.data
        first, last = data.params.get("data.first_as_of"), data.params.get("data.last_as_of")
        return ChampionInfo(
            versions=ModelVersions(churn=churn, clv=clv or "", run_id=run_id),
            config=config,
            fingerprint=data.tags.get(_TAG_FINGERPRINT, ""),
            backtest_key=data.tags.get(_TAG_BACKTEST, ""),
            metrics={k: float(v) for k, v in data.metrics.items() if not k.startswith("folds.")},
            trained_as_of=(
                (date.fromisoformat(first), date.fromisoformat(last)) if first and last else None
            ),
        )

    def _load_dict(self, run_id: str, name: str) -> dict[str, Any]:
        import mlflow

        with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=name, dst_path=tmp, tracking_uri=self.uri
            )
            loaded: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
        return loaded

    def promote(
        self,
        new: ModelVersions,
        new_metrics: Mapping[str, Any],
        *,
        gate: GateConfig,
        force: bool = False,
        champion_metrics: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Give the new versions ``champion`` if they are not worse, else ``challenger``.

        In order: a degenerate model (:func:`degenerate_reason`) is never promoted, not
        even forced: a constant score ranks nobody, so no one should act on it. Then
        ``force`` promotes. Then a model behind the logistic baseline on a gated metric
        (:func:`behind_baseline`) is not promoted (the logistic candidate is the
        baseline itself, so it never is). Then each gated metric
        (``gate.metric``, then ROC-AUC) of the churn model is compared with the
        champion's: the new model passes when ``new >= champion - tolerance`` for a higher-is-better
        metric (``new <= champion + tolerance`` for a lower-is-better one, see
        :data:`METRIC_DIRECTION`).

        Parameters
        ----------
        new
            The versions :meth:`log_training` returned.
        new_metrics
            The new model's backtest (``BacktestResult.to_dict()`` or flat metrics).
        gate
            Gated metric and tolerance.
        force
            Promote whatever the metrics say (reason ``"forced"``), unless the model is
            degenerate.
        champion_metrics
            The champion's backtest on the same data and backtest settings as the new
            one, when the caller re-ran it (see ``comparable`` in :class:`GateDecision`).
            Default: the champion's recorded metrics, used only when its recorded
            fingerprint and backtest settings match the new run's.

        Returns
        -------
        GateDecision
            Promoted or not, why, and the champion version before.

        Raises
        ------
        ConfigError
            When the new metrics lack a gated metric.
        """
        names = list(dict.fromkeys((gate.metric, "roc_auc")))
        new_flat = flatten_metrics(new_metrics)
        info = self.champion_info()
        before = info.versions.churn if info is not None else None
        degenerate = degenerate_reason(new_metrics, min_distinct=gate.min_distinct)
        if degenerate is not None:
            return self._decide(new, False, degenerate, before)
        if force:
            return self._decide(new, True, "forced", before)
        behind = behind_baseline(new_flat, metrics=names, tolerance=gate.tolerance)
        if behind is not None:
            return self._decide(new, False, behind, before)
        if info is None:
            return self._decide(
                new, True, "the first model: no earlier champion to compare with", before
            )
        missing = [k for k in map(_gate_key, names) if k not in new_flat]
        if missing:
            raise ConfigError(
                f"the new backtest has no {', '.join(missing)}; the gate needs it (was the"
                " backtest run on enough data?)"
            )
        if champion_metrics is not None:
            champ_flat = flatten_metrics(champion_metrics)
        else:
            why = self._not_comparable(new, info)
            if why is not None:
                reason = (
                    f"not comparable: {why}; re-run the champion's configuration on this"
                    " data and pass its metrics"
                )
                return GateDecision(False, reason, before, comparable=False)
            champ_flat = info.metrics
        lacking = [k for k in map(_gate_key, names) if k not in champ_flat]
        if lacking:
            reason = f"not comparable: the champion's backtest has no {', '.join(lacking)}"
            return GateDecision(False, reason, before, comparable=False)
        ok, reason = gate_verdict(new_flat, champ_flat, metrics=names, tolerance=gate.tolerance)
        return self._decide(new, ok, reason, before)

    def _not_comparable(self, new: ModelVersions, info: ChampionInfo) -> str | None:
        with self.active():
            tags = self.client.get_run(new.run_id).data.tags
        new_fp, new_key = tags.get(_TAG_FINGERPRINT, ""), tags.get(_TAG_BACKTEST, "")
        if new_fp != info.fingerprint:
            return (
                f"the champion (version {info.versions.churn}) was backtested on other data"
                f" (fingerprint {info.fingerprint[:12]}, this run {new_fp[:12]})"
            )
        if new_key != info.backtest_key:
            return (
                f"the champion (version {info.versions.churn}) was backtested with other"
                f" settings ({_differences(info.backtest_key, new_key)})"
            )
        if not info.metrics:
            return f"the champion (version {info.versions.churn}) has no recorded backtest"
        return None

    def _decide(
        self, new: ModelVersions, promoted: bool, reason: str, before: str | None
    ) -> GateDecision:
        with self.active():
            client = self.client
            for kind, registered in _REGISTERED.items():
                version = getattr(new, kind)
                if not version:
                    # no model of this kind was trained: the alias the new versions take
                    # must not pair them with an older run's model of this kind
                    alias = CHAMPION if promoted else CHALLENGER
                    if self._alias_version(registered, alias) is not None:
                        client.delete_registered_model_alias(registered, alias)
                    continue
                if promoted:
                    client.set_registered_model_alias(registered, CHAMPION, version)
                    if self._alias_version(registered, CHALLENGER) == version:
                        client.delete_registered_model_alias(registered, CHALLENGER)
                else:
                    client.set_registered_model_alias(registered, CHALLENGER, version)
                client.set_model_version_tag(registered, version, _TAG_GATE, reason)
        return GateDecision(promoted, reason, before)

    # ----------------------------------------------------------------- loading

    def load_champion(self, *, version: str | None = None) -> ChurnRiskModels:
        """Load the bundle behind ``models:/churnrisk-churn@champion``.

        Parameters
        ----------
        version
            Load this registered version of ``churnrisk-churn`` instead of whichever
            holds the alias now: callers that read :meth:`champion_info` first pass its
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
        with self.active():
            if version is None and self._alias_version(CHURN_MODEL, CHAMPION) is None:
                raise ConfigError(
                    f"no champion model in {self.uri}: run `churnrisk train DATA` first"
                )
            with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
                model = mlflow.pyfunc.load_model(uri, suppress_warnings=True, dst_path=tmp)
                bundle = getattr(model.unwrap_python_model(), "bundle", None)
        if not isinstance(bundle, ChurnRiskModels):
            raise ConfigError(
                f"{uri} is not a churnrisk bundle; retrain with `churnrisk train DATA`"
            )
        return bundle

    def spark_udf(self, session: Any, *, kind: str = "churn", version: str) -> Any:
        """Return a Spark UDF serving one registered model version.

        The UDF is :func:`mlflow.pyfunc.spark_udf` on ``models:/<name>/<version>`` with
        the ``local`` environment manager: executors use the Python environment they run
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
            The registered version (e.g. :meth:`champion_info`'s), never an alias, so a
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
        uri = f"models:/{_REGISTERED[kind]}/{version}"
        with self.active():
            return mlflow.pyfunc.spark_udf(
                session, uri, result_type=result_type, env_manager="local"
            )

    def model_info(self) -> dict[str, Any]:
        """Return what the service reports about the champion.

        Returns
        -------
        dict
            ``{"churn_version", "clv_version", "run_id", "trained_as_of": [first, last],
            "fingerprint", "metrics": {flat overall backtest metrics}}``.

        Raises
        ------
        ConfigError
            When no version holds the ``champion`` alias yet.
        """
        info = self.champion_info()
        if info is None:
            raise ConfigError(f"no champion model in {self.uri}: run `churnrisk train DATA` first")
        return {
            "churn_version": info.versions.churn,
            "clv_version": info.versions.clv,
            "run_id": info.versions.run_id,
            "trained_as_of": (
                [d.isoformat() for d in info.trained_as_of] if info.trained_as_of else None
            ),
            "fingerprint": info.fingerprint,
            "metrics": dict(sorted(info.metrics.items())),
        }
