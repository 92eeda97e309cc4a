"""Feature build on Spark local mode beside DuckDB, on the same data and machine.

The 20,000-account, 24-month world of ``bench/run.py`` (generated once into
``bench/output/``), its last 12 monthly as-of dates, every feature: DuckDB (the default
engine, all cores of the machine) and Spark ``local[2]`` each run in a fresh Python
process, load and validate the Parquet files and write the feature panel as Parquet.
The report gives seconds, the Spark/DuckDB ratio, events per second per core, and the
arithmetic of the cluster size that would build features for 5 billion events within
an hour. Writes ``bench/output/spark.md``.

Usage: ``python bench/spark.py [--quick]`` (``--quick``: the 1,000-account world).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
AS_OF_COUNT = 12
SPARK_CORES = 2
TARGET_EVENTS = 5_000_000_000
TARGET_SECONDS = 3600
NODE_CORES = 16

CHILD = r"""
import json, os, sys, tempfile, time
from datetime import date
from pathlib import Path
engine, data, cores = sys.argv[1], Path(sys.argv[2]), int(sys.argv[4])
as_of = [date.fromisoformat(d) for d in sys.argv[3].split(",")]
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    if engine == "duckdb":
        from churnrisk.features import write_features
        from churnrisk.validate import load
        ds = load(data).dataset
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows = write_features(ds, as_of, Path(tmp) / "features.parquet")
    else:
        from churnrisk.spark import load_spark, spark_session, write_features_spark
        session = spark_session(
            f"local[{cores}]", shuffle_partitions=4 * cores, driver_memory="6g",
            conf={"spark.ui.enabled": "false", "spark.buffer.pageSize": "4m"},
        )
        session.sparkContext.setLogLevel("ERROR")
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_spark(str(data), session)
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows = write_features_spark(ds, as_of, Path(tmp) / "features")
threads = cores
if engine == "duckdb":
    threads = int(ds.con.execute("SELECT current_setting('threads')").fetchall()[0][0])
print(json.dumps({"load": t_load, "build": time.perf_counter() - t1, "rows": rows,
                  "cores": threads}))
"""


def measure(engine: str, data: Path, as_of: list[date]) -> dict[str, float]:
    """Run one engine in a fresh process; return load and build seconds, rows, cores."""
    dates = ",".join(d.isoformat() for d in as_of)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(data), dates, str(SPARK_CORES)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{engine} on {data} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 1,000-account world")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from churnrisk.features import as_of_dates
    from models import ensure_world

    accounts, months = (1_000, 24) if args.quick else (20_000, 24)
    folder, events = ensure_world(accounts, months, date(2024, 11, 1), 1)
    last = date(2024 + (10 + months) // 12, (10 + months) % 12 + 1, 1)
    as_of = as_of_dates(date(last.year - 1, last.month, 1), last, "monthly")[-AS_OF_COUNT:]
    results = {}
    for engine in ("duckdb", "spark"):
        results[engine] = r = measure(engine, folder, as_of)
        print(
            f"{engine:7} load {r['load']:7.1f} s  build {r['build']:7.1f} s  "
            f"rows {r['rows']:,}  cores {r['cores']}",
            flush=True,
        )
    duck, spark = results["duckdb"], results["spark"]
    assert duck["rows"] == spark["rows"], "the engines wrote different row counts"

    def per_core(r: dict[str, float]) -> float:
        return events / (r["load"] + r["build"]) / r["cores"]

    spark_rate = per_core(spark)
    cores = TARGET_EVENTS / (spark_rate * TARGET_SECONDS)
    nodes = math.ceil(cores / NODE_CORES)
    lines = [
        f"## Feature build on Spark, {date.today()}",
        "",
        f"World: {accounts:,} accounts x {months} months, {events:,} events; "
        f"{AS_OF_COUNT} monthly as-of dates ({as_of[0]} to {as_of[-1]}); every feature, "
        "validated Parquet in, Parquet panel out. Each engine in a fresh process on this "
        "machine (shared and noisy: compare ratios within one run).",
        "",
        "| engine | cores | load + validate s | build s | total s | events/s/core | rows |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("DuckDB", duck), (f"Spark local[{SPARK_CORES}]", spark)):
        total = r["load"] + r["build"]
        lines.append(
            f"| {name} | {r['cores']} | {r['load']:.1f} | {r['build']:.1f} | {total:.1f} | "
            f"{per_core(r):,.0f} | {r['rows']:,} |"
        )
    ratio = (spark["load"] + spark["build"]) / (duck["load"] + duck["build"])
    per_core_ratio = per_core(duck) / spark_rate
    lines += [
        "",
        f"Spark / DuckDB wall time: **{ratio:.1f}x**; per core DuckDB does "
        f"{per_core_ratio:.1f}x the events of Spark.",
        "",
        "### Cluster size for 5 billion events within an hour",
        "",
        "Assuming Spark scales linearly with cores at the per-core rate measured here "
        "(same 12 as-of dates, same event density per account):",
        "",
        f"    needed rate  = 5,000,000,000 events / 3,600 s = "
        f"{TARGET_EVENTS / TARGET_SECONDS:,.0f} events/s",
        f"    cores        = {TARGET_EVENTS / TARGET_SECONDS:,.0f} / {spark_rate:,.0f} "
        f"events/s/core = {cores:,.1f} cores",
        f"    nodes        = ceil({cores:,.1f} / {NODE_CORES} cores per node) = {nodes} "
        f"node(s) of {NODE_CORES} cores",
        "",
        "Local mode pays no network shuffle; on a cluster the shuffles of the window joins "
        "cross the network, so plan with headroom (about 2x: "
        f"{2 * nodes} such node(s)), and size shuffle partitions to 2-3x the total cores.",
    ]
    text = "\n".join(lines) + "\n"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "spark.md").write_text(text, encoding="utf-8")
    print()
    print(text)


if __name__ == "__main__":
    main()
