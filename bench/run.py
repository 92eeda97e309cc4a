"""Feature-build benchmark: churnrisk's engine beside a bare DuckDB scan and a pandas reference.

For each benchmark world (generated once into ``bench/output/``, reused while its
parameters are unchanged) every measurement runs in a fresh Python process, so its peak
resident memory (``ru_maxrss``) is its own. Figures are compared as ratios measured in
the same run; this machine is shared and noisy.

Usage: ``python bench/run.py [--quick]`` (``make bench``). ``--quick`` uses small worlds
to check that the harness works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"

# (label, accounts, months): the 20k-account world of the issue, and one near 10M events.
WORLDS = [("20k accounts x 24 months", 20_000, 24), ("~10M events", 5_300, 24)]
QUICK_WORLDS = [("quick", 300, 12)]
AS_OF_COUNT = 12

CHILD = r"""
import json, resource, sys, time
from datetime import date
from pathlib import Path
kind, data = sys.argv[1], Path(sys.argv[2])
as_of = [date.fromisoformat(d) for d in sys.argv[3].split(",")]
t0 = time.perf_counter()
rows = 0
t_load = 0.0
if kind == "scan":
    import duckdb
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT count(*) FROM (SELECT account_id, count(*), count(DISTINCT user_id)"
        f" FROM read_parquet('{data / 'events.parquet'}') GROUP BY account_id)"
    ).fetchall()[0][0]
elif kind == "churnrisk":
    import tempfile
    from churnrisk.features import write_features
    from churnrisk.validate import load
    ds = load(data).dataset
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_features(ds, as_of, Path(tmp) / "features.parquet")
elif kind == "pandas":
    sys.path.insert(0, sys.argv[4])
    from pandas_reference import build_features_pandas
    rows = len(build_features_pandas(data, as_of))
seconds = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": rows, "load_seconds": t_load}))
"""


def measure(kind: str, data: Path, as_of: list[date]) -> dict[str, float]:
    """Run one measurement in a fresh process and return its seconds, peak MB and rows."""
    dates = ",".join(d.isoformat() for d in as_of)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(data), dates, str(HERE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} on {data} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_world(accounts: int, months: int) -> tuple[Path, int, float | None]:
    """Generate the world once; return its folder, its event count and generation time."""
    import pyarrow.parquet as pq

    from churnrisk.generate import generate_world

    folder = OUTPUT / f"world-{accounts}x{months}"
    marker = folder / ".complete"
    took = None
    if not marker.exists():
        t0 = time.perf_counter()
        generate_world(folder, accounts=accounts, months=months, seed=1, fmt="parquet")
        took = time.perf_counter() - t0
        marker.touch()
    events = pq.ParquetFile(folder / "events.parquet").metadata.num_rows
    return folder, events, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small worlds, to test the harness")
    parser.add_argument("--skip-pandas", action="store_true", help="leave out the pandas reference")
    args = parser.parse_args()
    from churnrisk.features import as_of_dates

    lines = [
        f"## Feature build, {date.today()} ({AS_OF_COUNT} monthly as-of dates)",
        "",
        "| world | events | engine | seconds | events/s | peak MB | x bare scan | rows | load s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, accounts, months in QUICK_WORLDS if args.quick else WORLDS:
        folder, events, took = ensure_world(accounts, months)
        if took is not None:
            print(f"generated {label}: {events:,} events in {took:.1f} s", flush=True)
        # the last 12 month starts of the world, the default start being 2024-11-01
        last = date(2024 + (10 + months) // 12, (10 + months) % 12 + 1, 1)
        first = date(last.year - 1, last.month, 1)
        as_of = as_of_dates(first, last, "monthly")[-AS_OF_COUNT:]
        results = {}
        for kind in ("scan", "churnrisk", "pandas"):
            if kind == "pandas" and args.skip_pandas:
                continue
            results[kind] = r = measure(kind, folder, as_of)
            print(f"{label:28} {kind:10} {r['seconds']:8.2f} s {r['peak_mb']:8.0f} MB", flush=True)
        scan = results["scan"]["seconds"]
        for kind, r in results.items():
            lines.append(
                f"| {label} | {events:,} | {kind} | {r['seconds']:.2f} | "
                f"{events / r['seconds']:,.0f} | {r['peak_mb']:.0f} | "
                f"{r['seconds'] / scan:.1f} | {r['rows']:,} | "
                f"{r['load_seconds']:.2f} |"
            )
        if "pandas" in results:
            speedup = results["pandas"]["seconds"] / results["churnrisk"]["seconds"]
            lines.append(f"| {label} | | churnrisk vs pandas | {speedup:.1f}x faster | | | | | |")
    text = "\n".join(lines) + "\n"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "latest.md").write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"bench done: table above, also in {OUTPUT / 'latest.md'}")


if __name__ == "__main__":
    main()
