"""A bounded load test: the API under a mixed load while a new scoring run lands.

Over the store ``bench/service.py`` scored (about 100,000 accounts in the current run),
``churnrisk serve --workers 2`` is loaded on loopback for a fixed window (60 s) by three
``wrk`` processes at once, one thread each:

- **at-risk list** (16 connections): four screens sorted by probability (all accounts,
  high tier, one segment, a minimum probability) and, every other request, the next page
  after the last ``next_cursor`` received, so the load pages through the list;
- **account detail** (16 connections): a random scored account each request;
- **export** (1 connection): the whole current run as CSV, over and over (a CRM sync in
  a loop: far more often than a nightly pull).

A quarter of the way in (t = 15 s), the bench process starts writing a new run into the
same store with :meth:`ScoreStore.write_run`, the scoring job's last step (one
transaction, then the planner statistics): the current run's rows as a new run scored
now, which is what a re-run of the job over unchanged data writes. The write takes 4-5 s
on a quiet machine and several times that on a busy one, so it starts early enough to
land inside the window. The feature build and the models (the job's first 40 s of CPU)
run before, not in the window. A control window with the same load and no write runs
first. A thread polls ``/v1/summary`` every 0.1 s to see when the
service first serves the new run.

Counted per route: requests, latency percentiles (wrk's), 2xx, 409 (a cursor made before
the new run: stale by design, counted apart), other non-2xx, and socket errors
(connect, read, write, timeout); and per second, around the write, requests and answers
by status. SQLite (the store file of ``bench/service.py``) always; PostgreSQL too when
``--postgres URL`` answers (the runs are copied into a throwaway schema first).

Usage: ``python bench/load.py [--quick] [--seconds N] [--postgres URL | --no-postgres]``;
writes ``bench/output/load.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from service import OUTPUT, scored_ids, served  # noqa: E402  (bench/ is not a package)

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

LUA_COUNTED = """
counts = {}
threads = {}
setup = function(thread) table.insert(threads, thread) end
count = function(status)
  local key = os.time() .. ":" .. status
  counts[key] = (counts[key] or 0) + 1
end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    for key, n in pairs(t:get("counts")) do io.write(string.format("COUNT %s %d\\n", key, n)) end
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.0f %.0f %.0f %.0f %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.timeout))
end
"""

LUA_AT_RISK = """
local screens = {"/v1/accounts/at-risk?limit=50", "/v1/accounts/at-risk?tier=high",
  "/v1/accounts/at-risk?segment=Enterprise", "/v1/accounts/at-risk?min_probability=0.3&limit=100"}
local i = 0
local cursor = nil
request = function()
  i = i + 1
  if cursor ~= nil and i % 2 == 0 then
    return wrk.format("GET", "/v1/accounts/at-risk?limit=50&cursor=" .. cursor)
  end
  return wrk.format("GET", screens[i % #screens + 1])
end
response = function(status, headers, body)
  count(status)
  if status == 200 then
    cursor = string.match(body, '"next_cursor":"([^"]+)"')
  elseif status == 409 then
    cursor = nil
  end
end
"""

LUA_DETAIL = """
math.randomseed(42)
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
request = function()
  return wrk.format("GET", "/v1/accounts/" .. ids[math.random(#ids)])
end
response = function(status, headers, body) count(status) end
"""

LUA_EXPORT = """
request = function() return wrk.format("GET", "/v1/export/scores") end
response = function(status, headers, body) count(status) end
"""


@dataclass(frozen=True)
class Route:
    """One wrk process of the mix."""

    name: str
    lua: str
    connections: int
    timeout_s: int


@dataclass
class Outcome:
    """What one wrk process measured."""

    route: str
    requests: int
    seconds: float
    p50: float
    p99: float
    p999: float
    worst: float
    socket: dict[str, int]
    by_second: dict[int, Counter[int]] = field(default_factory=dict)

    @property
    def statuses(self) -> Counter[int]:
        """Answers by status over the window."""
        total: Counter[int] = Counter()
        for counter in self.by_second.values():
            total.update(counter)
        return total


def routes(ids_file: Path) -> list[Route]:
    """The mix: at-risk list paging, random account detail, whole export."""
    return [
        Route("at-risk list (screens and next pages)", LUA_AT_RISK, 16, 10),
        Route("account detail (random account)", LUA_DETAIL % ids_file, 16, 10),
        Route("export, whole run as CSV", LUA_EXPORT, 1, 60),
    ]


def start_wrk(base: str, key: str, route: Route, script: Path, seconds: int) -> subprocess.Popen:
    """Start one wrk process (1 thread) for ``route``."""
    script.write_text(route.lua + LUA_COUNTED, encoding="utf-8")
    cmd = ["wrk", "-t1", f"-c{route.connections}", f"-d{seconds}s"]
    cmd += [f"--timeout={route.timeout_s}s", "-H", f"Authorization: Bearer {key}"]
    cmd += ["-s", str(script), base]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def parse_wrk(route: str, text: str) -> Outcome:
    """Read the RESULT and COUNT lines the Lua ``done`` printed."""
    found = re.search(r"^RESULT ((?:\d+ ){9}\d+)$", text, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no RESULT line for {route}:\n{text}")
    n, micros, p50, p99, p999, worst, connect, read, write, timeout = map(
        int, found.group(1).split()
    )
    by_second: dict[int, Counter[int]] = {}
    for second, status, count in re.findall(r"^COUNT (\d+):(\d+) (\d+)$", text, re.M):
        by_second.setdefault(int(second), Counter())[int(status)] += int(count)
    socket = {"connect": connect, "read": read, "write": write, "timeout": timeout}
    return Outcome(
        route,
        n,
        micros / 1e6,
        p50 / 1000,
        p99 / 1000,
        p999 / 1000,
        worst / 1000,
        socket,
        by_second,
    )


class RunWatcher(threading.Thread):
    """Polls ``/v1/summary`` and notes when each run id is first served (wall clock)."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key = base, key
        self.first_seen: dict[str, float] = {}
        self.failures: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        """Poll every 0.1 s until stopped."""
        request = urllib.request.Request(
            f"{self.base}/v1/summary", headers={"Authorization": f"Bearer {self.key}"}
        )
        while not self.stop.wait(0.1):
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    found = re.search(rb'"run_id":"(\w+)"', answer.read(2000))
            except OSError as exc:
                self.failures[type(exc).__name__] += 1
                continue
            if found is not None:
                self.first_seen.setdefault(found.group(1).decode(), time.time())


@dataclass
class Write:
    """The new run's write: when it started and ended (wall clock), or how it failed."""

    run_id: str
    accounts: int
    started: float = 0.0
    ended: float = 0.0
    error: str | None = None


def new_run_writer(url: str) -> tuple[Write, Callable[[float], threading.Thread]]:
    """Read the current run's rows now; return the write's record and its starter.

    ``starter(at)`` starts a thread that sleeps until the wall-clock time ``at``, then
    writes the rows as a new run scored then, with :meth:`ScoreStore.write_run`.
    """
    from churnrisk.store import ScoreStore

    store = ScoreStore(url)
    current = store.current_run()
    if current is None:
        raise RuntimeError(f"{store.url} holds no run: run bench/service.py first")
    rows = store.run_scores(current.run_id)
    run = replace(current, run_id=uuid.uuid4().hex)  # a re-score: same as-of, same previous
    write = Write(run.run_id, len(rows))

    def go(at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        write.started = time.time()
        try:
            store.write_run(replace(run, scored_at=datetime.now(UTC)), rows)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what went wrong
            write.error = f"{type(exc).__name__}: {exc}"
        write.ended = time.time()
        store.close()

    def starter(at: float) -> threading.Thread:
        thread = threading.Thread(target=go, args=(at,), daemon=True)
        thread.start()
        return thread

    return write, starter


@dataclass
class Window:
    """One measured window: the outcomes per route, and the write if there was one."""

    label: str
    started: float
    seconds: int
    outcomes: list[Outcome]
    write: Write | None
    first_seen: dict[str, float]
    watch_failures: Counter[str]


def load_window(
    base: str, key: str, ids_file: Path, seconds: int, *, write_url: str | None, label: str
) -> Window:
    """Run the mix for ``seconds``; with ``write_url``, a new run is written from a quarter."""
    work = OUTPUT / "load"
    write, starter = new_run_writer(write_url) if write_url is not None else (None, None)
    watcher = RunWatcher(base, key)
    watcher.start()
    started = time.time()
    procs = [
        (r.name, start_wrk(base, key, r, work / f"mix{i}.lua", seconds))
        for i, r in enumerate(routes(ids_file))
    ]
    writer = starter(started + seconds / 4) if starter is not None else None
    outcomes = [parse_wrk(name, proc.communicate()[0]) for name, proc in procs]
    if writer is not None:
        writer.join()
    watcher.stop.set()
    watcher.join()
    return Window(label, started, seconds, outcomes, write, watcher.first_seen, watcher.failures)


# --------------------------------------------------------------------------- report


def _errors(o: Outcome) -> int:
    """Answers that are neither 2xx nor a stale cursor's 409, plus socket errors."""
    other = sum(n for status, n in o.statuses.items() if status // 100 != 2 and status != 409)
    return other + sum(o.socket.values())


def window_rows(w: Window) -> list[str]:
    """One table row per route of a window."""
    rows = []
    for o in w.outcomes:
        st = o.statuses
        ok = sum(n for status, n in st.items() if status // 100 == 2)
        sockets = ", ".join(f"{k} {v}" for k, v in o.socket.items() if v) or "0"
        rows.append(
            f"| {w.label} | {o.route} | {o.requests:,} | {o.requests / o.seconds:,.0f} |"
            f" {o.p50:.1f} | {o.p99:.1f} | {o.p999:.1f} | {o.worst:.1f} | {ok:,} |"
            f" {st.get(409, 0):,} | {_errors(o) - sum(o.socket.values()):,} | {sockets} |"
        )
    return rows


def write_lines(w: Window) -> list[str]:
    """What happened to the write and when the service first served the new run."""
    write = w.write
    if write is None:
        return []
    if write.error is not None:
        return [f"The write failed: {write.error}"]
    lines = [
        f"{w.label}: the new run ({write.accounts:,} rows) was written from t = "
        f"{write.started - w.started:.1f} s to t = {write.ended - w.started:.1f} s"
        f" ({write.ended - write.started:.1f} s: one transaction, then the planner"
        " statistics)"
    ]
    seen = w.first_seen.get(write.run_id)
    if seen is not None:
        lines[-1] += f"; `/v1/summary` first served it at t = {seen - w.started:.1f} s."
    else:
        lines[-1] += "; `/v1/summary` never served it within the window."
    if w.watch_failures:
        lines.append(f"The summary poll failed: {dict(w.watch_failures)}.")
    return lines


def timeline(w: Window) -> list[str]:
    """Answers per second by route and status, around the write."""
    if w.write is None or w.write.error is not None:
        return []
    seen = w.first_seen.get(w.write.run_id, w.write.ended)
    zero = int(w.started)
    first = int(w.write.started) - 3
    last = min(int(max(seen, w.write.ended)) + 3, zero + w.seconds - 1)
    names = [o.route.split(" (")[0].split(",")[0] for o in w.outcomes]
    head = "| t (s) | " + " | ".join(f"{n} 2xx | {n} 409" for n in names) + " | errors |"
    lines = ["", head, "|" + "---:|" * (2 * len(names) + 2)]
    for second in range(first, last + 1):
        cells, errors = [], 0
        for o in w.outcomes:
            c = o.by_second.get(second, Counter())
            cells += [
                f"{sum(n for s, n in c.items() if s // 100 == 2):,}",
                f"{c.get(409, 0):,}",
            ]
            errors += sum(n for s, n in c.items() if s // 100 != 2 and s != 409)
        lines.append(f"| {second - zero} | " + " | ".join(cells) + f" | {errors} |")
    return lines


# --------------------------------------------------------------------------- backends


def copy_runs(sqlite_url: str, pg_url: str) -> str:
    """Copy every run of the SQLite store into a new schema at ``pg_url``; return its URL."""
    import sqlalchemy as sa

    from churnrisk.store import ScoreStore

    schema = f"churnrisk_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    source, target = ScoreStore(sqlite_url), ScoreStore(url)
    target.upgrade()
    for run in reversed(source.runs()):
        target.write_run(run, source.run_scores(run.run_id))
    source.close()
    target.close()
    return url


def drop_schema(url: str) -> None:
    """Drop the schema :func:`copy_runs` made."""
    import sqlalchemy as sa

    schema = url.rsplit("%3D", 1)[1]
    engine = sa.create_engine(url.split("?", 1)[0])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    engine.dispose()


def postgres_answers(url: str) -> bool:
    """Whether a PostgreSQL server answers at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
    return True


def measure(label: str, url: str, ids_file: Path, seconds: int) -> list[Window]:
    """Serve the store at ``url`` (2 workers); a control window, then one with a write."""
    from churnrisk.store import ScoreStore

    store = ScoreStore(url)
    key, _ = store.create_key("load", "read")
    store.close()
    log = OUTPUT / "load" / f"server-{label.lower()}.log"
    with served(url, workers=2, log=log) as base:
        warm = min(5, seconds // 4)
        load_window(base, key, ids_file, warm, write_url=None, label="warm-up")
        control = load_window(base, key, ids_file, seconds, write_url=None, label=label)
        landed = load_window(
            base, key, ids_file, seconds, write_url=url, label=f"{label}, new run written"
        )
    return [control, landed]


def report(windows: list[Window], seconds: int) -> list[str]:
    """The markdown report of all windows."""
    lines = [
        f"# Load with a new run landing ({datetime.now(UTC):%Y-%m-%d}, `bench/load.py`)",
        "",
        f"`churnrisk serve --workers 2`, three wrk processes at once for {seconds} s a"
        " window: at-risk list (16 connections), account detail (16), whole export (1)."
        f" Load average at the end: {os.getloadavg()[0]:.1f} (2 cores).",
        "",
        "| window | route | requests | requests/s | p50 ms | p99 ms | p99.9 ms | max ms |"
        " 2xx | 409 stale cursor | other non-2xx | socket errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in windows:
        lines += window_rows(w)
    for w in windows:
        if w.write is not None:
            lines += ["", *write_lines(w), *timeline(w)]
    return lines


def main() -> None:
    """Run the windows on SQLite (and PostgreSQL) and write ``bench/output/load.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10-second windows")
    parser.add_argument("--seconds", type=int, default=60, help="seconds a window (60)")
    parser.add_argument("--postgres", default=PG_DEFAULT, help="PostgreSQL server to try too")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make sysdeps` (Debian package wrk)")
    seconds = 10 if args.quick else args.seconds
    work = OUTPUT / "load"
    work.mkdir(parents=True, exist_ok=True)
    store_file = OUTPUT / "service" / "scores.db"
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(scored_ids(store_file)) + "\n", encoding="utf-8")
    sqlite = f"sqlite:///{store_file}"
    windows = measure("SQLite", sqlite, ids_file, seconds)
    if not args.no_postgres and postgres_answers(args.postgres):
        url = copy_runs(sqlite, args.postgres)
        try:
            windows += measure("PostgreSQL", url, ids_file, seconds)
        finally:
            drop_schema(url)
    elif not args.no_postgres:
        print(f"no PostgreSQL answers at {args.postgres}: SQLite only", flush=True)
    text = "\n".join(report(windows, seconds)) + "\n"
    (OUTPUT / "load.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
