"""What the service holds while it runs: the store, the models, the caches.

One :class:`ServiceState` per app, made by the lifespan and reached by the routes through
the dependencies of :mod:`churnrisk.api.deps`. Everything here is thread-safe: plain
``def`` routes run in a thread pool.

Caches
    The answers of the at-risk list, the account detail and the summary only change
    when a new run lands, so they are cached as serialised bytes keyed by the store's
    *marker* (the current run id) and the normalised request. The marker is re-read at
    most once a second (:class:`RunWatch`); when it changes the cache is emptied. A
    backfill (an older as-of scored later) adds a point to account histories without
    changing the current run, so an account's detail is also keyed by the minute
    (:data:`DETAIL_TTL`): a backfill shows within a minute. Verified API keys are cached
    for :data:`KEY_TTL` seconds (:class:`KeyCache`), so revoking a key takes effect
    within that time on every worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import orjson
from cachetools import LRUCache, TTLCache

from churnrisk.errors import ChurnRiskError, ConfigError
from churnrisk.playbooks import Playbook, load_playbook
from churnrisk.store import hash_key, mask_password

if TYPE_CHECKING:
    from churnrisk.dataset import Dataset
    from churnrisk.models.bundle import ChurnRiskModels
    from churnrisk.store import ApiKey, RunRecord, ScoreStore, StoreError

_log = logging.getLogger("churnrisk.api")

RUN_TTL = 1.0
"""Seconds between two reads of the store's current run."""

KEY_TTL = 5.0
"""Seconds a verified (or rejected) API key stays cached: revocation takes this long."""

DETAIL_TTL = 60.0
"""Seconds an account's detail may be served from the cache (backfills show after it)."""

STORE_RETRY = 1.0
"""Seconds between two checks of a store that is not usable (a ping and a schema read)."""

MAX_KEY_TEXT = 200
"""Longer credentials are rejected without a look-up."""


def dumps(obj: Any) -> bytes:
    """Serialise an answer with orjson (dates as ISO 8601, NaN as null)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


# --------------------------------------------------------------------------- models

NO_CHAMPION = "no champion model yet: run `churnrisk train DATA`"
MODELS_FAILED = "the champion models did not load; the server log says why"
"""Public reasons of :attr:`LoadedModels.reason`."""


@dataclass(frozen=True)
class LoadedModels:
    """The champion as the service loaded it at start-up.

    Attributes
    ----------
    info
        ``Tracker.model_info()`` of the champion, or ``None``.
    bundle
        The champion bundle, or ``None``.
    error
        Why there is no champion (``None`` when both are loaded), naming the tracking
        store: for the server log and admins.
    reason
        Why there is no champion in words that name no URL or path: for anyone.
    """

    info: dict[str, Any] | None = None
    bundle: ChurnRiskModels | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def loaded(self) -> bool:
        """Whether the champion's information and bundle are loaded."""
        return self.info is not None and self.bundle is not None

    @property
    def status(self) -> str:
        """``loaded``, or why not (the words of ``/readyz``)."""
        return "loaded" if self.loaded else self.reason or "not loaded"

    @classmethod
    def unavailable(cls, reason: str) -> LoadedModels:
        """Return the state of a service without models, saying why (in public words)."""
        return cls(error=reason, reason=reason)

    @property
    def versions(self) -> tuple[str, str] | None:
        """The ``(churn, clv)`` versions loaded, as :meth:`Tracker.champion_versions`."""
        if self.info is None:
            return None
        return str(self.info.get("churn_version")), str(self.info.get("clv_version") or "")

    @classmethod
    def from_tracker(cls, uri: str) -> LoadedModels:
        """Load the champion's information and bundle from the tracking store at ``uri``.

        The bundle is the very version the information names, so a promotion between
        the two reads cannot pair one version's record with another's models. Never
        raises: a missing champion or an unreachable tracking server gives a state with
        :attr:`error` and :attr:`reason` set, which ``/v1/status`` and ``/readyz`` report.
        """
        from churnrisk.tracking import Tracker

        try:
            tracker = Tracker(uri)
            try:
                info = tracker.model_info()
            except ConfigError as exc:  # no version holds the champion alias yet
                return cls(error=str(exc), reason=NO_CHAMPION)
            bundle = tracker.load_champion(version=str(info["churn_version"]))
        except ChurnRiskError as exc:
            _log.warning("cannot load the champion models: %s", exc)
            return cls(error=str(exc), reason=MODELS_FAILED)
        except Exception as exc:  # noqa: BLE001 - e.g. an MLflow server down: /readyz says why
            _log.exception("cannot load the champion models from %s", mask_password(uri))
            return cls(
                error=f"cannot load the champion models from {mask_password(uri)}: {exc}",
                reason=MODELS_FAILED,
            )
        return cls(info=info, bundle=bundle)


class ChampionWatch:
    """Follows the registry's ``champion`` alias, so a promotion needs no restart.

    :meth:`check` (run by the app every ``CHURNRISK_MODEL_CHECK_SECONDS``, in a worker
    thread) asks the registry which versions hold the alias, two cheap look-ups, and
    loads the champion only when they differ from the loaded ones. The new state
    replaces the old in one assignment, so a request sees one or the other, never a
    mix. A check that fails (the tracking server is down) or a load that fails keeps
    the loaded champion serving; a service that started before any model was trained
    becomes ready as soon as one is.

    Parameters
    ----------
    uri
        The tracking store to follow.
    models
        The champion loaded at start-up.
    """

    def __init__(self, uri: str, models: LoadedModels) -> None:
        self.uri = uri
        self.models = models
        self._lock = threading.Lock()

    def check(self) -> bool:
        """Reload the champion if the alias moved; return whether the models changed."""
        from churnrisk.tracking import Tracker

        if not self._lock.acquire(blocking=False):
            return False  # a check is already running
        try:
            current = self.models
            try:
                versions = Tracker(self.uri).champion_versions()
            except Exception:  # noqa: BLE001 - keep serving what is loaded
                shown = mask_password(self.uri)
                _log.warning("cannot reach the model registry at %s", shown, exc_info=True)
                return False
            if versions is None or versions == current.versions:
                return False
            fresh = LoadedModels.from_tracker(self.uri)
            if not fresh.loaded and current.loaded:
                _log.warning("champion %s/%s did not load: %s", *versions, fresh.error)
                return False
            self.models = fresh
            _log.info("champion is now churn v%s, clv v%s", *(fresh.versions or versions))
            return True
        finally:
            self._lock.release()


# --------------------------------------------------------------------------- caches


class ResponseCache:
    """A least-recently-used cache of serialised answers, bounded in bytes.

    A thread-safe face on :class:`cachetools.LRUCache` sized by ``len`` of the bodies.

    Parameters
    ----------
    max_bytes
        Total size of the cached bodies; the least recently used go first.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: LRUCache[Hashable, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """Return the cached body of ``key``, or ``None``."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Hashable, body: bytes) -> None:
        """Cache ``body`` under ``key`` (a body larger than the whole cache is not kept)."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            self._items[key] = body

    def clear(self) -> None:
        """Forget every cached body."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Marker:
    """What the cached answers depend on: the store's current run."""

    current: RunRecord | None

    @property
    def key(self) -> str | None:
        """The current run's id (``None`` without runs), used in cache keys."""
        return self.current.run_id if self.current else None


class RunWatch:
    """The store's current run, re-read at most every :data:`RUN_TTL` seconds.

    When the current run changes, ``on_change`` is called, which empties the response
    cache.
    """

    def __init__(
        self, read: Callable[[], Marker], *, on_change: Callable[[], None], ttl: float = RUN_TTL
    ) -> None:
        self._read = read
        self._on_change = on_change
        self.ttl = ttl
        self._marker: Marker | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def cached(self) -> Marker | None:
        """Return the marker if it was read less than :attr:`ttl` seconds ago."""
        if time.monotonic() - self._checked < self.ttl:
            return self._marker
        return None

    def get(self) -> Marker:
        """Return the marker, reading the store when the cached one is too old."""
        marker = self.cached()
        if marker is not None:
            return marker
        with self._lock:
            marker = self.cached()
            if marker is not None:
                return marker
            marker = self._read()
            if self._marker is not None and marker.key != self._marker.key:
                self._on_change()
            self._marker = marker
            self._checked = time.monotonic()
            return marker

    def invalidate(self) -> None:
        """Make the next :meth:`get` read the store."""
        self._checked = -float("inf")


_MISSING = object()


class KeyCache:
    """Verified API keys by the SHA-256 of their text, for :data:`KEY_TTL` seconds.

    Rejections are cached too (so a client retrying a wrong key costs no look-up), in
    a bounded table: a thread-safe face on :class:`cachetools.TTLCache`.
    """

    def __init__(self, ttl: float = KEY_TTL, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: TTLCache[str, ApiKey | None] = TTLCache(
            maxsize=max_entries, ttl=ttl, timer=time.monotonic
        )
        self._lock = threading.Lock()

    @staticmethod
    def digest(key: str) -> str:
        """Return the cache's name of a key: the store's hash of it (the text is never kept)."""
        return hash_key(key)

    def lookup(self, digest: str) -> ApiKey | object | None:
        """Return the cached verdict on a key, or ``_MISSING``."""
        with self._lock:
            return self._items.get(digest, _MISSING)

    def store(self, digest: str, api_key: ApiKey | None) -> None:
        """Cache the verdict on a key."""
        with self._lock:
            self._items[digest] = api_key

    def forget(self, key_id: str) -> None:
        """Drop the cached verdicts of one key id (after this process revoked it)."""
        with self._lock:
            for digest in [d for d, k in self._items.items() if k and k.key_id == key_id]:
                del self._items[digest]

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._items.clear()


MISSING = _MISSING
"""Returned by :meth:`KeyCache.lookup` when the key has no cached verdict."""


class SingleFlight:
    """Run a blocking call once for concurrent callers asking for the same key.

    When a new run lands, every client misses the cache at the same moment; without
    this, each would run the same query. The first caller runs the call in a worker
    thread; the others wait for its result (or its exception). Used from the event loop
    only, so it needs no lock.

    The calls use at most ``threads`` threads at once; more callers wait in the event
    loop, first come first served. Dozens of threads contending for the GIL and the
    database's connection pool make some requests wait far longer than others; a few
    threads keep the slowest close to the median.
    """

    def __init__(self, threads: int = 2) -> None:
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The threads the calls may use at once (made on first use, in the event loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter

    async def run(
        self, key: Hashable, fn: Callable[..., Any], *args: Any, inline: bool = False
    ) -> Any:
        """Return ``fn(*args)``, sharing one call among concurrent callers of ``key``.

        With ``inline``, ``fn`` runs right here in the event loop: for calls of a fraction
        of a millisecond of CPU (one indexed SQLite read), where the hop to a thread and
        the GIL's hand-over between the loop and the thread cost more than the call and
        make the tail (bench/RESULTS.md compares the two on the account detail).
        """
        if inline:
            return fn(*args)
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # the caller running it was cancelled: run it here instead
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]


# --------------------------------------------------------------------------- metrics


class MetricsUnavailableError(ChurnRiskError):
    """The service has no data source to compute metrics from (or cannot read it)."""


class MetricsSource:
    """The data source of ``/v1/metrics``: loaded on first use, computed one at a time.

    The source is the one the service was started with (``serve --data`` /
    ``CHURNRISK_DATA``), else the data the current scoring run was scored from (the run
    records it), when that is a folder or file this server can read. So a service
    started without ``--data`` answers metrics as soon as a run exists.

    DuckDB connections are not thread-safe, so loading and every computation hold one
    lock. Results (the metrics per ``(period, segment)``, and the review's answers: the
    scorecard, an account's monthly usage, the win-back list) are kept in a small LRU of
    serialised answers; the data set is re-read (and the results forgotten) when a new
    scoring run lands, since new scores usually mean new data.

    What callers without an admin key are told never holds a server path: the reasons
    are generic and the detail (:attr:`last_error`) goes to the log and to admins.

    Parameters
    ----------
    path
        A folder of tables or a DuckDB file, as the CLI takes it; ``None``: the current
        run's source.
    max_entries
        Results kept.
    """

    def __init__(self, path: Path | None, max_entries: int = 128) -> None:
        self.path = path
        self.max_entries = max_entries
        self.last_error: str | None = None
        """Why the last load failed, with the path: for the log and admins only."""
        self._lock = threading.Lock()
        self._dataset: Dataset | None = None
        self._loaded_for: Hashable = None
        self._results: LRUCache[Hashable, bytes] = LRUCache(max_entries)

    def source_for(self, run: RunRecord | None) -> Path | None:
        """Return the data source metrics are computed from while ``run`` is current.

        The configured path when there is one, else the run's recorded source when it
        is an absolute path that exists here (a lake URI or a Spark table prefix is
        not something this service reads); None when there is neither.
        """
        if self.path is not None:
            return self.path
        if run is None or not run.source:
            return None
        candidate = Path(run.source)
        return candidate if candidate.is_absolute() and candidate.exists() else None

    def availability(self, run: RunRecord | None) -> str:
        """Say whether ``/v1/metrics`` can answer, in words without a server path."""
        try:
            self._source(run)
        except MetricsUnavailableError as exc:
            return f"unavailable: {exc}"
        if self.last_error is not None:
            return "unavailable: the data source could not be read (the server log says why)"
        return "available"

    def _source(self, run: RunRecord | None) -> Path:
        path = self.source_for(run)
        if path is not None:
            if not path.exists():
                raise MetricsUnavailableError(
                    "the data source the service was started with (--data) does not exist"
                )
            return path
        if run is None:
            raise MetricsUnavailableError(
                "no data source: start the service with `churnrisk serve --data PATH`, or"
                " score a run, whose data source is then used"
            )
        raise MetricsUnavailableError(
            "the current run's data source cannot be read on this server: start the"
            " service with `churnrisk serve --data PATH`"
        )

    def _data(self, path: Path, run: RunRecord | None) -> Dataset:
        marker = (path, run.run_id if run is not None else None)
        if self._dataset is None or self._loaded_for != marker:
            from churnrisk.validate import load

            self._results.clear()
            self._dataset = None
            try:
                self._dataset = load(path).dataset
            except ChurnRiskError as exc:
                self.last_error = f"cannot read the metrics data source {path}: {exc}"
                _log.warning("%s", self.last_error)
                raise MetricsUnavailableError(
                    "the data source could not be read (the server log says why)"
                ) from exc
            self.last_error = None
            self._loaded_for = marker
        return self._dataset

    def compute(self, period: str | None, segment: str | None, run: RunRecord | None) -> bytes:
        """Return the serialised metrics of ``period`` (default: last complete month).

        Parameters
        ----------
        period, segment
            As :func:`churnrisk.metrics.period_metrics` takes them.
        run
            The current scoring run (its data source is the default, and a new run
            makes the data be read again), or None.

        Raises
        ------
        MetricsUnavailableError
            When there is no data source or it cannot be read.
        ConfigError
            When ``period`` is not a month or quarter.
        PeriodNotCoveredError
            When the data does not cover ``period``.
        """
        from churnrisk.metrics import period_metrics

        return self.answer(
            ("metrics", period, segment),
            lambda ds: period_metrics(ds, period, segment=segment),
            run,
        )

    def answer(
        self, key: Hashable, build: Callable[[Dataset], Any], run: RunRecord | None
    ) -> bytes:
        """Return the serialised ``build(data set)``, cached under ``key`` for this run.

        Every answer computed from the data source goes through here: the data set is
        read once per current run (and the answers forgotten when a new run lands), and
        computations take turns on its one DuckDB connection.

        Raises
        ------
        MetricsUnavailableError
            When there is no data source or it cannot be read.
        """
        path = self._source(run)
        with self._lock:
            ds = self._data(path, run)
            body = self._results.get(key)
            if body is None:
                body = dumps(build(ds))
                self._results[key] = body
            return body


# --------------------------------------------------------------------------- the state


@dataclass
class StoreHolder:
    """The score store and whether it is usable (reachable, schema at head).

    While :attr:`problem` is set (at start-up, by ``/readyz``, or by a request whose
    database connection failed), the routes answer 503 at once instead of trying the
    database; :meth:`usable` checks again at most every :data:`STORE_RETRY` seconds, one
    request at a time (the others do not wait for it), so the service recovers by itself
    soon after the database is back. The full reason is logged when the store becomes
    unusable (or unusable for another reason) and when it is usable again: once per
    outage, not once per request.
    """

    store: ScoreStore | None
    owned: bool
    problem: StoreError | None = None
    checked: float = field(default=-float("inf"))
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held by the one request that checks a store that is not usable."""
    _changing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def reason(self) -> str | None:
        """Why the store is not usable, in words fit for anyone (``None``: it is)."""
        return self.problem.reason if self.problem is not None else None

    @property
    def status(self) -> str:
        """``ok``, or why the store is not usable (the words of ``/readyz``)."""
        return self.reason or "ok"

    def check(self) -> StoreError | None:
        """Ping the store and check its schema; return the problem, or ``None``."""
        from churnrisk.store import StoreError

        if self.store is None:
            return self.problem
        try:
            self.store.ping()
            self.store.check_schema()
        except StoreError as exc:
            return exc
        return None

    def record(self, problem: StoreError | None) -> None:
        """Set the store's state after a check, logging when it changes."""
        with self._changing:
            before, self.problem = self.problem, problem
            self.checked = time.monotonic()
        if problem is not None and (before is None or before.reason != problem.reason):
            _log.warning("the score store is not usable: %s", problem)
        elif problem is None and before is not None:
            _log.warning("the score store is usable again")

    def refresh(self) -> StoreError | None:
        """Check the store now, record and return the outcome (``/readyz``)."""
        problem = self.check()
        self.record(problem)
        return problem

    def failed(self, exc: StoreError) -> None:
        """Take note of a request's failure: an unreachable database makes the store unusable."""
        from churnrisk.store import StoreUnreachableError

        if isinstance(exc, StoreUnreachableError):
            self.record(exc)
        else:
            _log.warning("score store error: %s", exc)

    def usable(self) -> ScoreStore | None:
        """Return the store, or ``None`` while it is not usable (re-checked every second)."""
        if self.problem is None:
            return self.store
        if time.monotonic() - self.checked >= STORE_RETRY and self.lock.acquire(blocking=False):
            try:
                if time.monotonic() - self.checked >= STORE_RETRY:
                    self.refresh()
            finally:
                self.lock.release()
        return self.store if self.problem is None else None


@dataclass
class ServiceState:
    """Everything one running app holds."""

    holder: StoreHolder
    champion: ChampionWatch | LoadedModels
    """The models, followed in the registry (a :class:`ChampionWatch`) or fixed."""
    metrics: MetricsSource
    cache: ResponseCache = field(default_factory=ResponseCache)
    keys: KeyCache = field(default_factory=KeyCache)
    flights: SingleFlight = field(default_factory=SingleFlight)
    inline_reads: bool = False
    """Whether single-row reads run in the event loop (SQLite: in-process, no waiting)."""
    playbook: Playbook = field(default_factory=load_playbook)
    """The plays matched to each account (``CHURNRISK_PLAYBOOK``, else the default)."""
    runs: RunWatch = field(init=False)

    @property
    def models(self) -> LoadedModels:
        """The champion models as loaded now."""
        watch = self.champion
        return watch.models if isinstance(watch, ChampionWatch) else watch

    @classmethod
    def open(
        cls,
        holder: StoreHolder,
        models: ChampionWatch | LoadedModels,
        metrics: MetricsSource,
        playbook: Playbook | None = None,
    ) -> ServiceState:
        """Return the state of an app, with as many store threads as suit the database.

        SQLite reads are CPU work in this process: two threads keep the GIL least
        contended. A database server's reads are partly waiting, so four threads overlap
        the waits; more add no throughput, only a longer tail (bench/RESULTS.md).
        """
        sqlite = holder.store is None or holder.store.url.startswith("sqlite")
        return cls(
            holder,
            models,
            metrics,
            flights=SingleFlight(2 if sqlite else 4),
            inline_reads=sqlite,
            playbook=playbook if playbook is not None else load_playbook(),
        )

    def __post_init__(self) -> None:
        self.runs = RunWatch(self._read_marker, on_change=self.cache.clear)

    def _read_marker(self) -> Marker:
        store = self.holder.usable()
        return Marker(store.current_run() if store is not None else None)
