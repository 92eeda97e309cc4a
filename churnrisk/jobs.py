"""The workflows behind the commands: scoring runs, the demo, the store, API keys, serving.

Each workflow is one plain function that takes its settings and paths explicitly (a
:class:`~churnrisk.settings.Settings`, never the process environment) and returns a
result dataclass. The CLI parses its options, calls one of them and prints the summary;
the notebook and the Spark path call the same functions, so no module above the stages
sequences them by hand. The modelling workflow on a data set (panel, backtest, training,
gate) is :mod:`churnrisk.pipeline`; :func:`train`, :func:`backtest` and :func:`explain`
here run it on a data source with the stores of the settings.

Progress reaches the caller through a :class:`Progress` passed in (the CLI draws
spinners, bars and step lines from it); the default, :data:`QUIET`, shows nothing.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, cast

from churnrisk.config import RunConfig, ScoringConfig
from churnrisk.errors import ConfigError
from churnrisk.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from churnrisk.dataset import Dataset
    from churnrisk.generate import GenerateSummary
    from churnrisk.models.bundle import ChurnRiskModels
    from churnrisk.models.explain import Driver
    from churnrisk.pipeline import BacktestOutcome, Step, TrainOutcome
    from churnrisk.scoring import Scorer
    from churnrisk.spark import SparkDataset
    from churnrisk.store import ApiKey, RunRecord, ScoreStore
    from churnrisk.tracking import ModelVersions, Tracker
    from churnrisk.validate import LoadResult

Count = Callable[[int], None]
"""Called with how many more items of a counted step are done."""


class Progress(Protocol):
    """How a workflow says what it is doing; the CLI shows it on standard error."""

    def step(self, message: str) -> None:
        """One of several steps starts (the :data:`churnrisk.pipeline.Step` callback)."""

    def working(self, message: str) -> AbstractContextManager[object]:
        """Return a context that lasts while one long step runs."""

    def counting(self, message: str, total: int | None) -> AbstractContextManager[Count]:
        """Return a context that lasts while ``total`` items are done, counted as they go."""

    def loaded(self, report: Any, quarantine: Path | None, source: Path | None) -> None:
        """Report what a check of a data source set aside (``report``), once it is known.

        ``source`` is the path ``churnrisk validate`` can check again (``None`` for a
        Spark source).
        """


def _ignore(_: int) -> None:
    """Ignore a count."""


def _quiet(_: str) -> None:
    """Ignore a progress message."""


class Quiet:
    """Progress that shows nothing: the default of every workflow."""

    def step(self, message: str) -> None:
        """Ignore a step."""

    @contextmanager
    def working(self, message: str) -> Iterator[object]:
        """Run the step unseen."""
        yield None

    @contextmanager
    def counting(self, message: str, total: int | None) -> Iterator[Count]:
        """Count nothing."""
        yield _ignore

    def loaded(self, report: Any, quarantine: Path | None, source: Path | None) -> None:
        """Ignore the report."""


QUIET = Quiet()


# --------------------------------------------------------------------------- stores


def open_tracker(settings: Settings) -> Tracker:
    """Return the tracker of ``settings``: its MLflow URI, else the embedded store."""
    from churnrisk.tracking import Tracker, tracking_uri

    return Tracker(settings.mlflow_tracking_uri or tracking_uri(settings.data_dir))


@contextmanager
def open_store(settings: Settings) -> Iterator[ScoreStore]:
    """Open the score store of ``settings``, migrated to this version's schema; close it after.

    Raises
    ------
    StoreError
        When the store cannot be reached or migrated.
    """
    from churnrisk.store import ScoreStore

    store = ScoreStore(settings.store_url)
    try:
        store.upgrade()
        yield store
    finally:
        store.close()


@dataclass(frozen=True)
class StoreStatus:
    """A migrated score store: its URL (password masked) and schema revision."""

    url: str
    revision: str | None


def upgrade_store(settings: Settings) -> StoreStatus:
    """Create or migrate the score store of ``settings``; return where it is and its revision."""
    with open_store(settings) as store:
        return StoreStatus(url=store.url, revision=store.revision())


@dataclass(frozen=True)
class CreatedKey:
    """A new API key: its text (shown once; only its hash is stored) and its record."""

    key: str
    record: ApiKey
    store_url: str


def create_api_key(settings: Settings, name: str, scope: str = "read") -> CreatedKey:
    """Create an API key named ``name`` with ``scope`` in the score store of ``settings``."""
    with open_store(settings) as store:
        key, record = store.create_key(name, scope)
        return CreatedKey(key=key, record=record, store_url=store.url)


def list_api_keys(settings: Settings) -> list[ApiKey]:
    """Return the API keys of the score store of ``settings`` (never their text)."""
    with open_store(settings) as store:
        return store.list_keys()


def revoke_api_key(settings: Settings, key_id: str) -> bool:
    """Revoke the key ``key_id``; return whether an active key of that id was revoked."""
    with open_store(settings) as store:
        return store.revoke_key(key_id)


# --------------------------------------------------------------------------- data


def generate(
    out_dir: Path,
    *,
    shape: str = "default",
    accounts: int | None = None,
    months: int | None = None,
    start: date = date(2024, 11, 1),
    seed: int = 0,
    fmt: Literal["csv", "parquet"] = "parquet",
    progress: Progress = QUIET,
) -> GenerateSummary:
    """Write a synthetic world (:func:`churnrisk.generate.generate_world`), counting accounts."""
    from churnrisk.generate import SHAPES, generate_world

    total = accounts if accounts is not None else getattr(SHAPES.get(shape), "accounts", None)
    with progress.counting("generating accounts", total) as advance:
        return generate_world(
            out_dir,
            shape=shape,
            accounts=accounts,
            months=months,
            start=start,
            seed=seed,
            fmt=fmt,
            progress=advance,
        )


def load_data(
    data: Path, *, quarantine: Path | None = None, progress: Progress = QUIET
) -> LoadResult:
    """Validate ``data`` (:func:`churnrisk.validate.load`) and report what was set aside.

    The report reaches ``progress.loaded`` also when a required table was left without
    a valid row, before :class:`~churnrisk.validate.UnusableDataError` is raised.
    """
    from churnrisk.validate import UnusableDataError, load

    try:
        with progress.working(f"validating {data}"):
            result = load(data, quarantine_dir=quarantine)
    except UnusableDataError as exc:
        progress.loaded(exc.report, quarantine, data)
        raise
    progress.loaded(result.report, quarantine, data)
    return result


def open_spark(master: str) -> Any:
    """Open (or reuse) the Spark session of :func:`churnrisk.spark.spark_session`.

    Its Python workers (``spark_udf``, ``mapInPandas``) run this interpreter, where the
    churnrisk package is installed, rather than whatever ``python3`` is first on the
    PATH; a ``PYSPARK_PYTHON`` of the environment still wins.
    """
    from churnrisk.spark import spark_session

    session = spark_session(master=master)
    if "PYSPARK_PYTHON" not in os.environ:
        session.sparkContext.pythonExec = sys.executable
    return session


def load_spark_data(
    source: str, session: Any, *, quarantine: Path | None = None, progress: Progress = QUIET
) -> SparkDataset:
    """Validate ``source`` on Spark (:func:`churnrisk.spark.load_spark`), as :func:`load_data`."""
    from churnrisk.spark import load_spark
    from churnrisk.validate import UnusableDataError

    try:
        with progress.working(f"validating {source} on Spark"):
            ds = load_spark(source, session, quarantine_dir=quarantine)
    except UnusableDataError as exc:
        progress.loaded(exc.report, quarantine, None)
        raise
    progress.loaded(ds.report, quarantine, None)
    return ds


# --------------------------------------------------------------------------- modelling


@dataclass(frozen=True)
class Trained:
    """A training run (:func:`churnrisk.pipeline.train`) and the tracking store it is in."""

    outcome: TrainOutcome
    tracking_uri: str


def train(
    data: Path,
    settings: Settings,
    config: RunConfig,
    *,
    force: bool = False,
    allow_leaks: Iterable[str] = (),
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> Trained:
    """Validate ``data``, then backtest, train, record and gate (:func:`churnrisk.pipeline.train`).

    The run goes to the tracking store of ``settings``; ``force`` and ``allow_leaks``
    are those of :func:`~churnrisk.pipeline.train`.
    """
    from churnrisk.pipeline import train as train_models
    from churnrisk.tracking import fingerprint

    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    tracker = open_tracker(settings)
    outcome = train_models(
        ds,
        config,
        tracker=tracker,
        fingerprint=fingerprint(data),
        force=force,
        allow_leaks=allow_leaks,
        step=progress.step,
    )
    return Trained(outcome, tracker.uri)


@dataclass(frozen=True)
class Backtested:
    """A recorded backtest (:func:`churnrisk.pipeline.backtest_run`) and its tracking store."""

    outcome: BacktestOutcome
    tracking_uri: str


def backtest(
    data: Path,
    settings: Settings,
    config: RunConfig,
    *,
    allow_leaks: Iterable[str] = (),
    quarantine: Path | None = None,
    progress: Progress = QUIET,
) -> Backtested:
    """Validate ``data``, backtest ``config`` on it and record the run (no model is trained)."""
    from churnrisk.pipeline import backtest_run
    from churnrisk.tracking import fingerprint

    ds = load_data(data, quarantine=quarantine, progress=progress).dataset
    tracker = open_tracker(settings)
    outcome = backtest_run(
        ds,
        config,
        tracker=tracker,
        fingerprint=fingerprint(data),
        allow_leaks=allow_leaks,
        step=progress.step,
    )
    return Backtested(outcome, tracker.uri)


@dataclass(frozen=True)
class Explained:
    """One account's score by the champion and the drivers behind it.

    Attributes
    ----------
    score, drivers, context
        As :func:`churnrisk.pipeline.explain_account` returns them.
    overall
        The champion's global importance
        (:func:`churnrisk.models.explain.global_importance`), strongest first.
    """

    score: pd.Series[Any]
    drivers: list[Driver]
    context: list[Driver]
    overall: pd.DataFrame


def explain(
    data: Path,
    settings: Settings,
    account_id: str,
    *,
    as_of: date | None = None,
    top: int = 5,
    progress: Progress = QUIET,
) -> Explained:
    """Validate ``data`` and explain one account's score by the champion of ``settings``.

    Raises
    ------
    ConfigError
        Without a champion, or when the account has no score as of ``as_of``.
    """
    from churnrisk.models.explain import global_importance
    from churnrisk.pipeline import explain_account

    ds = load_data(data, progress=progress).dataset
    models = open_tracker(settings).load_champion()
    score, found, context = explain_account(models, ds, account_id, as_of=as_of, top=top)
    return Explained(score, found, context, global_importance(models.churn))


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Champion:
    """The champion bundle and the registered versions it was loaded from."""

    models: ChurnRiskModels
    versions: ModelVersions


def load_champion(tracker: Tracker, *, missing: str | None = None) -> Champion:
    """Load the champion of ``tracker``: the very version its alias names now.

    Raises
    ------
    ConfigError
        When there is no champion (``missing`` says what to do; default: train first).
    """
    info = tracker.champion_info()
    if info is None:
        raise ConfigError(
            f"no champion model in {tracker.uri}: {missing or 'run `churnrisk train DATA` first'}"
        )
    # Load the very version the info names, so a promotion in between cannot mix them up.
    return Champion(tracker.load_champion(version=info.versions.churn), info.versions)


@dataclass(frozen=True)
class ScoreOutcome:
    """A scoring run as written to the score store.

    Attributes
    ----------
    run
        The run's record (its id, as-of date, versions, number of accounts).
    store_url
        The score store it is in (password masked).
    tiers
        ``(tier, accounts)`` of every tier of the run, highest risk first.
    mrr_at_risk
        The run's MRR at risk (sum of ``mrr_at_risk`` over its accounts).
    change, since
        When the run is the newest: its MRR at risk minus that of the run before, and
        that run's as-of date; otherwise ``None``.
    """

    run: RunRecord
    store_url: str
    tiers: tuple[tuple[str, int], ...]
    mrr_at_risk: float
    change: float | None = None
    since: date | None = None


def score_dataset(
    ds: Dataset | SparkDataset,
    champion: Champion,
    settings: Settings,
    *,
    config: ScoringConfig,
    as_of: date | None = None,
    source: str,
    step: Step = _quiet,
    scorer: Scorer | None = None,
) -> ScoreOutcome:
    """Score ``ds`` into the score store of ``settings`` (:func:`churnrisk.scoring.run_scoring`).

    The store is migrated first; the outcome carries the run and its totals as read
    back from the store. ``ds`` is a :class:`~churnrisk.spark.SparkDataset` with the
    Spark engine's ``scorer``: the job then reads only its span and source from it.
    """
    from churnrisk.scoring import run_scoring
    from churnrisk.store import StoreError

    with open_store(settings) as store:
        record = run_scoring(
            cast("Dataset", ds),
            champion.models,
            store,
            as_of=as_of,
            config=config,
            versions=champion.versions,
            source=source,
            step=step,
            scorer=scorer,
        )
        totals = store.totals(record.run_id)
        trend = store.trend(limit=2)
        url = store.url
    if totals is None:  # pragma: no cover - the run was written just above
        raise StoreError(f"run {record.run_id} vanished from {url} right after its write")
    change = since = None
    if len(trend) == 2 and trend[1]["run"].run_id == record.run_id:
        change = trend[1]["mrr_at_risk"] - trend[0]["mrr_at_risk"]
        since = trend[0]["run"].as_of
    return ScoreOutcome(
        run=record,
        store_url=url,
        tiers=tuple((t["tier"], t["accounts"]) for t in totals["tiers"]),
        mrr_at_risk=totals["mrr_at_risk"],
        change=change,
        since=since,
    )


def score(
    data: Path | str,
    settings: Settings,
    *,
    as_of: date | None = None,
    config: ScoringConfig | None = None,
    quarantine: Path | None = None,
    engine: Literal["duckdb", "spark"] = "duckdb",
    spark_master: str = "local[*]",
    progress: Progress = QUIET,
) -> ScoreOutcome:
    """Score every active account of ``data`` with the champion and keep the run.

    Parameters
    ----------
    data
        The data source: a folder of tables or a DuckDB file; with ``engine="spark"``
        also a lake URI or a Spark database prefix (as Spark reads it).
    settings
        Where the tracking store (the champion) and the score store are.
    as_of
        The as-of date (default: the day after the data ends).
    config
        Tiers and driver counts (default: the champion's training configuration).
    quarantine
        Where the rows that break a rule of the contract are written.
    engine
        ``duckdb`` in process, or ``spark``: features on Spark, scores through
        ``mlflow.pyfunc.spark_udf``, drivers on the executors; the same run either way.
    spark_master
        The Spark master URL with ``engine="spark"``.
    progress
        What is shown as the run goes.

    Raises
    ------
    ConfigError
        Without pyspark for ``engine="spark"`` or without a champion (both before any
        data is read or any store opened), or for an ``as_of`` after the data.
    """
    if engine == "spark":
        from churnrisk.scoring_spark import require_pyspark

        require_pyspark()
    tracker = open_tracker(settings)
    champion = load_champion(tracker)
    scoring = config if config is not None else champion.models.config.scoring
    if engine == "spark":
        return _score_spark(
            str(data),
            settings,
            tracker,
            champion,
            scoring,
            as_of,
            spark_master,
            quarantine,
            progress,
        )
    path = Path(data)
    ds = load_data(path, quarantine=quarantine, progress=progress).dataset
    return score_dataset(
        ds,
        champion,
        settings,
        config=scoring,
        as_of=as_of,
        source=str(path.absolute()),
        step=progress.step,
    )


def _score_spark(
    source: str,
    settings: Settings,
    tracker: Tracker,
    champion: Champion,
    scoring: ScoringConfig,
    as_of: date | None,
    master: str,
    quarantine: Path | None,
    progress: Progress,
) -> ScoreOutcome:
    """Score ``source`` on Spark: the Spark engine's scorer, the same run and store."""
    from churnrisk.features import panel_features
    from churnrisk.scoring_spark import spark_scorer
    from churnrisk.spark import build_features_spark

    session = open_spark(master)
    ds = load_spark_data(source, session, quarantine=quarantine, progress=progress)
    features = panel_features(champion.models.vocabulary)
    scorer = spark_scorer(
        session,
        champion.models,
        tracker=tracker,
        versions=champion.versions,
        config=scoring,
        features=lambda dates: build_features_spark(ds, dates, features=features),
        attributes=lambda: ds.dataframe("accounts"),
        source=ds.source,
    )
    return score_dataset(
        ds,
        champion,
        settings,
        config=scoring,
        as_of=as_of,
        source=ds.source,
        step=progress.step,
        scorer=scorer,
    )


# --------------------------------------------------------------------------- serving


def check_port(host: str, port: int) -> None:
    """Raise a one-line :class:`ConfigError` when a server could not listen on ``host:port``.

    Binds, then closes, a socket at every address ``host`` resolves to, as the server
    will (asyncio's ``create_server``: an empty host is every interface, IPv4 and IPv6;
    ``SO_REUSEADDR`` on, IPv6 sockets IPv6-only), so a busy port is reported before
    anything starts rather than by uvicorn's ``[Errno 98]`` after the start-up lines.
    """
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on --host {host}: {exc.strerror}; pass an address of this"
            " machine (127.0.0.1, or 0.0.0.0 for all)"
        ) from exc
    for family, kind, proto, _, address in dict.fromkeys(found):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (no IPv6): the server skips it too
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(_bind_problem(host or "all addresses", port, exc)) from exc


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    """Say in one line why ``host``:``port`` cannot be listened on, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use: pass --port with a free port"
    if exc.errno == errno.EACCES and port < 1024:
        return (
            f"port {port} on {host} is privileged (below 1024) and this user may not listen"
            " there: pass --port 1024 or higher"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}: it is not an address of this machine; pass --host"
            " with one of its addresses (127.0.0.1, or 0.0.0.0 for all)"
        )
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc}"


def _shown_host(host: str) -> str:
    """Return an address a browser on this machine can open for ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Service:
    """A service about to start.

    Attributes
    ----------
    base
        The address a browser on this machine opens (``http://127.0.0.1:8000``).
    workers
        Worker processes.
    store_url
        The score store it serves (migrated; password masked).
    data
        The data source of ``/v1/metrics``, or ``None`` for the data of the current run.
    key
        An API key for the dashboard address's ``#key=`` fragment, or ``None``.
    """

    base: str
    workers: int
    store_url: str
    data: Path | None
    key: str | None = None


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = True,
    key: str | None = None,
    announce: Callable[[Service], None] = lambda _: None,
) -> Service:
    """Migrate the score store and run the API and dashboard with uvicorn until stopped.

    A port that cannot be listened on ends it first, with one line (:func:`check_port`);
    ``announce`` is called with the :class:`Service` just before uvicorn starts.

    One worker serves an app built from ``settings`` in this process. Several workers
    are processes of their own that build their app from the environment
    (:func:`churnrisk.api.app.app_from_env`): ``settings`` are handed on to them as
    environment variables (:meth:`~churnrisk.settings.Settings.environment`), set in
    this process, which only serves from then on.

    Raises
    ------
    ConfigError
        When the port cannot be listened on.
    """
    import uvicorn

    check_port(host, port)
    store_url = upgrade_store(settings).url
    service = Service(
        base=f"http://{_shown_host(host)}:{port}",
        workers=workers,
        store_url=store_url,
        data=settings.data,
        key=key,
    )
    announce(service)
    app: Any
    if workers == 1:
        from functools import partial

        from churnrisk.api.app import create_app

        app = partial(create_app, settings)
    else:
        os.environ.update(settings.environment())
        app = "churnrisk.api.app:app_from_env"
    uvicorn.run(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        server_header=False,
    )
    return service


# --------------------------------------------------------------------------- demo

DEMO_ACCOUNTS = 5000
DEMO_MONTHS = 36
DEMO_END = date(2026, 10, 31)
"""The last day of the demo's history."""


def demo_start(months: int) -> date:
    """Return the first day of a history of ``months`` whole months ending on :data:`DEMO_END`."""
    return months_before(date(DEMO_END.year, DEMO_END.month, 1), months - 1)


def months_before(day: date, months: int) -> date:
    """Return the first day of the month ``months`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Validated:
    """The demo's data was checked; the JSON report is in ``path``."""

    report: Any
    path: Path


@dataclass(frozen=True)
class PanelWritten:
    """The demo's feature panel: ``rows`` rows on monthly as-of dates ``first`` to ``last``."""

    rows: int
    first: date
    last: date
    path: Path


@dataclass(frozen=True)
class MetricsWritten:
    """The metrics of the demo's last complete month ``period``, also written to ``path``."""

    values: dict[str, Any]
    period: str
    path: Path


@dataclass(frozen=True)
class Backfilled:
    """The demo's scoring runs: monthly runs as of ``dates``, then the current run."""

    dates: tuple[date, ...]
    runs: tuple[ScoreOutcome, ...]

    @property
    def current(self) -> ScoreOutcome:
        """The last run: the current one."""
        return self.runs[-1]


@dataclass(frozen=True)
class DemoOutcome:
    """Everything the demo made; every file is under ``out_dir``.

    ``settings`` are those the demo ran with: the caller's, with the data dir (the
    MLflow and score stores, unless the caller's settings point elsewhere) in
    ``out_dir`` and ``data`` set to the generated world.
    """

    out_dir: Path
    settings: Settings
    world: GenerateSummary
    validated: Validated
    panel: PanelWritten
    metrics: MetricsWritten
    trained: Trained
    scored: Backfilled
    key: CreatedKey


DemoStage: TypeAlias = (
    "GenerateSummary | Validated | PanelWritten | MetricsWritten | Trained | Backfilled"
    " | CreatedKey | DemoOutcome | Service"
)
"""What the demo has just done: each stage's result, then the outcome, then the service."""


def demo(
    out_dir: Path,
    settings: Settings,
    *,
    accounts: int = DEMO_ACCOUNTS,
    months: int = DEMO_MONTHS,
    seed: int = 0,
    config: RunConfig | None = None,
    listen: tuple[str, int] | None = None,
    progress: Progress = QUIET,
    done: Callable[[DemoStage], None] = lambda _: None,
) -> DemoOutcome:
    """Run the whole job on a generated world: validate, features, metrics, train, score, serve.

    Everything lands in ``out_dir``: the data, the reports and, unless ``settings``
    point tracking or the score store elsewhere, the MLflow store and the score store.
    ``settings`` are not changed, nor is the process environment: the demo runs with a
    copy whose data dir is ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for everything the demo writes.
    settings
        The caller's settings (a tracking URI or database URL in them is kept).
    accounts, months, seed
        The generated world: ``months`` of history ending on :data:`DEMO_END`.
    config
        The run configuration (default: :class:`~churnrisk.config.RunConfig`).
    listen
        ``(host, port)`` to serve the dashboard at the end, checked before any work;
        ``None`` does not serve.
    progress
        What is shown as each stage goes.
    done
        Called with each stage's result as it completes (:data:`DemoStage`), then with
        the :class:`DemoOutcome`, then with the :class:`Service` before it starts.
    """
    if listen is not None:  # find out now, not after a minute of work
        check_port(*listen)
    run = config if config is not None else RunConfig()
    out_dir = out_dir.absolute()
    data_dir = out_dir / "data"
    here = settings.model_copy(update={"data_dir": out_dir, "data": data_dir})
    world = generate(
        data_dir,
        accounts=accounts,
        months=months,
        start=demo_start(months),
        seed=seed,
        progress=progress,
    )
    done(world)
    result = load_data(data_dir, quarantine=out_dir / "quarantine", progress=progress)
    validated = _write_report(result.report, out_dir / "validation.json")
    done(validated)
    ds = result.dataset
    panel = _demo_panel(ds, run, out_dir / "features.parquet", progress)
    done(panel)
    metrics = _demo_metrics(ds, out_dir / "metrics.json", progress)
    done(metrics)
    trained, champion = _demo_train(ds, run, here, data_dir, progress)
    done(trained)
    scored = _demo_scores(ds, champion, here, run.scoring, str(data_dir), progress)
    done(scored)
    key = create_api_key(here, "demo", "read")
    done(key)
    outcome = DemoOutcome(out_dir, here, world, validated, panel, metrics, trained, scored, key)
    done(outcome)
    if listen is not None:
        serve(here, host=listen[0], port=listen[1], key=key.key, announce=done)
    return outcome


def _write_report(report: Any, path: Path) -> Validated:
    path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return Validated(report, path)


def _demo_panel(ds: Dataset, run: RunConfig, path: Path, progress: Progress) -> PanelWritten:
    """Write the labelled panel of the last year's monthly as-of dates."""
    from churnrisk.features import as_of_dates, write_features
    from churnrisk.metrics import last_complete_month

    span = last_complete_month(ds)
    dates = as_of_dates(date(span.start.year - 1, span.start.month, 1), span.start, "monthly")
    with progress.working(f"building features for {len(dates)} monthly as-of dates"):
        rows = write_features(ds, dates, path, labels=run.labels)
    return PanelWritten(rows=rows, first=dates[0], last=dates[-1], path=path)


def _demo_metrics(ds: Dataset, path: Path, progress: Progress) -> MetricsWritten:
    """Compute and write the metrics of the last complete month."""
    from churnrisk.metrics import last_complete_month, period_metrics

    label = last_complete_month(ds).label
    with progress.working(f"computing metrics for {label}"):
        values = period_metrics(ds, label)
    path.write_text(json.dumps(values, indent=2, default=str), encoding="utf-8")
    return MetricsWritten(values=values, period=label, path=path)


def _demo_train(
    ds: Dataset, run: RunConfig, settings: Settings, data_dir: Path, progress: Progress
) -> tuple[Trained, Champion]:
    """Train and gate; return the run and the champion to score with (new models if promoted)."""
    from churnrisk.pipeline import train
    from churnrisk.tracking import fingerprint

    tracker = open_tracker(settings)
    outcome = train(ds, run, tracker=tracker, fingerprint=fingerprint(data_dir), step=progress.step)
    if outcome.decision.promoted:
        champion = Champion(outcome.models, outcome.versions)
    else:
        champion = load_champion(tracker, missing="after training")
    return Trained(outcome, tracker.uri), champion


def _demo_scores(
    ds: Dataset,
    champion: Champion,
    settings: Settings,
    config: ScoringConfig,
    source: str,
    progress: Progress,
) -> Backfilled:
    """Score three earlier months first, so the dashboard has trends and changes, then today."""
    from churnrisk.dataset import observation_end

    end = observation_end(ds)
    dates = tuple(months_before(end, n) for n in (3, 2, 1))
    runs = tuple(
        score_dataset(
            ds, champion, settings, config=config, as_of=day, source=source, step=progress.step
        )
        for day in (*dates, None)
    )
    return Backfilled(dates=dates, runs=runs)
