"""Service benchmark: the scoring job at 100,000 accounts, then the API under load.

1. **Scoring job.** Models trained on the 20,000-account, 24-month world of
   ``bench/run.py`` (seed 1, default configuration); a second world of 126,000 accounts
   and 13 months (seed 2, ending 2026-10-31; about 100,000 of them are paying at the end,
   and only paying accounts are scored) scored twice with
   :func:`churnrisk.scoring.run_scoring` into a fresh SQLite score store: as of
   2026-10-01 (no previous run) and as of 2026-11-01 (with the change against the
   first run). Each step's seconds come from the job's own progress callback.
2. **API.** ``churnrisk serve`` over that store (about 100,000 scored accounts in the
   current run), 1 and then 2 uvicorn workers, loaded by ``wrk`` on loopback at 32 connections:
   the at-risk list (a rotation of eight filters, sorts and page sizes of a CS manager's
   screen, served from the per-run cache after the first request of each), the at-risk
   list with a query that is new almost every time (a random sort and minimum
   probability: each request reads the store), and the account detail (a random account
   each request, so nearly every request reads the store). ``wrk`` runs one
   thread on the same two cores as the server, so it takes part of the machine the
   figures describe.

Usage: ``python bench/service.py [--quick] [--api-only]``; writes
``bench/output/service.md``. ``--api-only`` loads the API over the store of the last
full run.
``--quick`` uses small worlds and short loads to check the harness.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
sys.path.insert(0, str(HERE))

from models import ensure_world  # noqa: E402  (bench/ is not a package)


@dataclass(frozen=True)
class Sizes:
    training: tuple[int, int, date, int]  # accounts, months, start, seed
    scoring: tuple[int, int, date, int]
    seconds: int  # each wrk run


FULL = Sizes((20_000, 24, date(2024, 11, 1), 1), (126_000, 13, date(2025, 10, 1), 2), 15)
QUICK = Sizes((1_000, 24, date(2024, 11, 1), 1), (2_000, 13, date(2025, 10, 1), 2), 3)

AT_RISK_QUERIES = [
    "/v1/accounts/at-risk",
    "/v1/accounts/at-risk?tier=high",
    "/v1/accounts/at-risk?sort=mrr_at_risk",
    "/v1/accounts/at-risk?tier=high&tier=medium&sort=change",
    "/v1/accounts/at-risk?segment=Enterprise&sort=clv",
    "/v1/accounts/at-risk?min_probability=0.3&limit=100",
    "/v1/accounts/at-risk?plan=growth&min_mrr=500",
    "/v1/accounts/at-risk?sort=mrr_at_risk&limit=25",
]

LUA_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.0f %.0f %.0f %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.timeout))
end
"""


def lua_rotation(paths: list[str]) -> str:
    """A wrk script that requests ``paths`` in turn, each thread from its own offset."""
    items = ",".join(f'"{p}"' for p in paths)
    return (
        f"local paths = {{{items}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\nend\n" + LUA_DONE
    )


def lua_random_queries() -> str:
    """A wrk script of at-risk queries that are almost never the same twice (cache misses).

    A random sort and a random ``min_probability`` (four decimals, up to 0.5) each time:
    every request reads the store for its page and for the count of matching accounts.
    """
    return (
        "math.randomseed(7)\n"
        'local sorts = {"probability", "mrr_at_risk", "clv", "change"}\n'
        "request = function()\n"
        "  local path = string.format('/v1/accounts/at-risk?sort=%s&min_probability=%.4f',\n"
        "    sorts[math.random(#sorts)], math.random() * 0.5)\n"
        "  return wrk.format('GET', path)\nend\n" + LUA_DONE
    )


def lua_random_accounts(ids_file: Path) -> str:
    """A wrk script that requests a random account's detail each time (fixed seed)."""
    return (
        "math.randomseed(42)\nlocal ids = {}\n"
        f'for line in io.lines("{ids_file}") do ids[#ids + 1] = line end\n'
        "request = function()\n"
        "  return wrk.format('GET', '/v1/accounts/' .. ids[math.random(#ids)])\nend\n" + LUA_DONE
    )


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_bundle(sizes: Sizes, lines: list[str]) -> object:
    """Train the default models on the training world; return the bundle."""
    from churnrisk.config import RunConfig
    from churnrisk.models import train_models
    from churnrisk.pipeline import training_panel
    from churnrisk.validate import load

    folder, events = ensure_world(*sizes.training)
    config = RunConfig()
    t0 = time.perf_counter()
    panel = training_panel(load(folder).dataset, config)
    t1 = time.perf_counter()
    bundle = train_models(panel, config)
    t2 = time.perf_counter()
    lines.append(
        f"Models trained on {sizes.training[0]:,} accounts x {sizes.training[1]} months"
        f" ({events:,} events): panel {t1 - t0:.1f} s, {len(panel):,} rows; training"
        f" {t2 - t1:.1f} s."
    )
    return bundle


def score_job(sizes: Sizes, bundle: object, store_file: Path, lines: list[str]) -> list[str]:
    """Score the scoring world twice into a fresh store; return the scored account ids."""
    from churnrisk.config import ScoringConfig
    from churnrisk.scoring import run_scoring
    from churnrisk.store import ScoreStore
    from churnrisk.tracking import ModelVersions
    from churnrisk.validate import load

    folder, events = ensure_world(*sizes.scoring)
    store_file.unlink(missing_ok=True)
    store = ScoreStore(f"sqlite:///{store_file}")
    store.upgrade()
    t0 = time.perf_counter()
    ds = load(folder).dataset
    lines += [
        "",
        f"Scoring world: {sizes.scoring[0]:,} accounts x {sizes.scoring[1]} months"
        f" ({events:,} events); validation and load {time.perf_counter() - t0:.1f} s.",
        "",
        "| run | accounts scored | step | seconds |",
        "|---|---:|---|---:|",
    ]
    versions = ModelVersions(churn="bench", clv="bench", run_id="bench")
    for as_of in (date(2026, 10, 1), date(2026, 11, 1)):
        marks: list[tuple[str, float]] = []
        start = time.perf_counter()

        def step(message: str, marks: list[tuple[str, float]] = marks) -> None:
            marks.append((message, time.perf_counter()))

        run = run_scoring(
            ds,
            bundle,  # type: ignore[arg-type]
            store,
            as_of=as_of,
            config=ScoringConfig(),
            versions=versions,
            source=str(folder),
            step=step,
        )
        end = time.perf_counter()
        edges = [*marks, ("end", end)]
        for (message, t_a), (_, t_b) in itertools.pairwise(edges):
            lines.append(f"| {as_of} | {run.accounts:,} | {message} | {t_b - t_a:.1f} |")
        lines.append(f"| {as_of} | {run.accounts:,} | **whole job** | **{end - start:.1f}** |")
    ids = list(store.run_scores(run.run_id, columns=["account_id"])["account_id"])
    store.close()
    return ids


def scored_ids(store_file: Path) -> list[str]:
    """Return the account ids of the current run of an existing benchmark store."""
    from churnrisk.store import ScoreStore

    if not store_file.exists():
        sys.exit(f"{store_file} does not exist: run without --api-only first")
    store = ScoreStore(f"sqlite:///{store_file}")
    try:
        run = store.current_run()
        if run is None:
            sys.exit(f"{store_file} holds no scoring run: run without --api-only first")
        return list(store.run_scores(run.run_id, columns=["account_id"])["account_id"])
    finally:
        store.close()


def wait_ready(base: str, timeout: float = 60.0) -> None:
    """Wait until the service answers ``/healthz``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the service at {base} did not start within {timeout:.0f} s")


def wrk(base: str, key: str, script: Path, seconds: int) -> dict[str, float]:
    """Run wrk (1 thread, 32 connections) with ``script``; return its figures."""
    cmd = [
        "wrk",
        "-t1",
        "-c32",
        f"-d{seconds}s",
        "-H",
        f"Authorization: Bearer {key}",
        "-s",
        str(script),
        base,
    ]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", text, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{text}")
    n, micros, p50, p99, worst, errors = (int(g) for g in found.groups())
    return {
        "rps": n / (micros / 1e6),
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "max": worst / 1000,
        "errors": errors,
        "requests": n,
    }


def load_api(sizes: Sizes, store_file: Path, ids: list[str], lines: list[str]) -> None:
    """Serve the store with 1 and 2 workers and load both routes with wrk."""
    from churnrisk.store import ScoreStore

    store = ScoreStore(f"sqlite:///{store_file}")
    key, _ = store.create_key("bench", "read")
    store.close()
    work = OUTPUT / "service"
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    at_risk = work / "at_risk.lua"
    at_risk.write_text(lua_rotation(AT_RISK_QUERIES), encoding="utf-8")
    detail = work / "detail.lua"
    detail.write_text(lua_random_accounts(ids_file), encoding="utf-8")
    misses = work / "at_risk_misses.lua"
    misses.write_text(lua_random_queries(), encoding="utf-8")
    lines += [
        "",
        f"API over {len(ids):,} scored accounts (SQLite store), wrk 1 thread x 32 connections,"
        f" {sizes.seconds} s a run after a {max(2, sizes.seconds // 5)} s warm-up:",
        "",
        "| workers | route | requests/s | p50 ms | p99 ms | max ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for workers in (1, 2):
        with served(f"sqlite:///{store_file}", workers=workers) as base:
            routes = (
                ("at-risk list", at_risk),
                ("at-risk list, distinct queries", misses),
                ("account detail", detail),
            )
            for route, script in routes:
                wrk(base, key, script, max(2, sizes.seconds // 5))
                r = wrk(base, key, script, sizes.seconds)
                lines.append(
                    f"| {workers} | {route} | {r['rps']:,.0f} | {r['p50']:.1f} |"
                    f" {r['p99']:.1f} | {r['max']:.1f} | {r['errors']:,} |"
                )


@contextmanager
def served(url: str, *, workers: int, log: Path | None = None) -> Iterator[str]:
    """Run ``churnrisk serve`` over the store at ``url`` on a free port; yield its base URL.

    The server's output goes to ``log`` (default: nowhere); no metrics source, no models.
    """
    work = OUTPUT / "service"
    env = {
        **os.environ,
        "CHURNRISK_DATABASE_URL": url,
        "CHURNRISK_DATA_DIR": str(work),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    env.pop("CHURNRISK_DATA", None)
    churnrisk = str(Path(sys.executable).with_name("churnrisk"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log or os.devnull, "w", encoding="utf-8") as out:
        server = subprocess.Popen(
            [churnrisk, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(base)
            yield base
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def main() -> None:
    """Run the benchmark and write ``bench/output/service.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small worlds, short loads")
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="load the API over the store the last run scored (no training or scoring)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make sysdeps` (Debian package wrk)")
    sizes = QUICK if args.quick else FULL
    work = OUTPUT / "service"
    work.mkdir(parents=True, exist_ok=True)
    lines = ["# Service benchmark", ""]
    store_file = work / "scores.db"
    if args.api_only:
        ids = scored_ids(store_file)
    else:
        bundle = train_bundle(sizes, lines)
        ids = score_job(sizes, bundle, store_file, lines)
    load_api(sizes, store_file, ids, lines)
    text = "\n".join(lines) + "\n"
    (OUTPUT / "service.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
