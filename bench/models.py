"""Model benchmark: backtest quality against the issue's aims, training and scoring times.

Three parts, each on a generated world kept in ``bench/output/`` (generated once, reused
while its folder holds a ``.complete`` marker):

1. **Quality.** The default-style world at 5,000 accounts and 36 months (start
   2023-11-01, seed 0: it ends where the default 24-month world ends, and is long enough
   for CLV folds), the training panel of :func:`churnrisk.pipeline.training_panel` and
   the default backtest: pooled churn metrics of the model beside the logistic and
   usage-drop baselines, CLV beside MRR x 12, each aim of the issue passed or failed.
2. **Training.** The 20,000-account, 24-month world of ``bench/run.py`` (seed 1): panel
   build and :func:`churnrisk.models.train_models`, default configuration.
3. **Batch scoring.** 100,000 rows sampled with replacement from that panel's latest
   as-of date (account ids made unique): :meth:`ChurnRiskModels.predict` and, apart, the
   drivers (:func:`churnrisk.models.drivers_frame`), each split into the LightGBM call
   and the pandas/Python work around it, LightGBM at 1 and 2 threads.

Times are the median of ``--repeat`` runs in one process (min beside it); the machine is
shared, so compare figures measured in the same run.

Usage: ``python bench/models.py [--quick]``; writes ``bench/output/models.md``.
``--quick`` uses small worlds and 10,000 rows to check the harness.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"


@dataclass(frozen=True)
class Sizes:
    quality: tuple[int, int, date, int]  # accounts, months, start, seed
    training: tuple[int, int, date, int]
    score_rows: int


FULL = Sizes((5_000, 36, date(2023, 11, 1), 0), (20_000, 24, date(2024, 11, 1), 1), 100_000)
QUICK = Sizes((800, 36, date(2023, 11, 1), 0), (1_000, 24, date(2024, 11, 1), 1), 10_000)


def ensure_world(accounts: int, months: int, start: date, seed: int) -> tuple[Path, int]:
    """Generate a world once (Parquet); return its folder and event count.

    The folder name matches ``bench/run.py`` for its seed-1 worlds of the default start,
    so the 20,000 x 24 world is shared with the feature benchmark.
    """
    import pyarrow.parquet as pq

    from churnrisk.generate import generate_world

    name = f"world-{accounts}x{months}"
    if (seed, start) != (1, date(2024, 11, 1)):
        name += f"-{start:%Y%m}-s{seed}"
    folder = OUTPUT / name
    marker = folder / ".complete"
    if not marker.exists():
        t0 = time.perf_counter()
        generate_world(folder, accounts=accounts, months=months, start=start, seed=seed)
        marker.touch()
        print(f"generated {name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder, pq.ParquetFile(folder / "events.parquet").metadata.num_rows


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Run ``fn`` ``repeat`` times; return the median and min seconds and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "null"
    if isinstance(v, float):
        return f"{v:,.{digits}f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def quality(sizes: Sizes, lines: list[str]) -> None:
    from churnrisk.config import RunConfig
    from churnrisk.models import backtest
    from churnrisk.models.backtest import CHURN_METRICS, CLV_METRICS
    from churnrisk.pipeline import training_panel
    from churnrisk.validate import load

    accounts, months, start, seed = sizes.quality
    folder, events = ensure_world(accounts, months, start, seed)
    config = RunConfig()
    t0 = time.perf_counter()
    panel = training_panel(load(folder).dataset, config)
    t_panel = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = backtest(panel, config)
    t_bt = time.perf_counter() - t0
    out = result.to_dict()
    churn, clv = out["churn"], out["clv"]
    f0, f1 = out["folds"][0], out["folds"][-1]
    print(f"quality: panel {t_panel:.1f} s, backtest {t_bt:.1f} s", flush=True)

    bt = config.backtest
    lines += [
        f"### Quality: {accounts:,} accounts x {months} months (start {start}, seed {seed})",
        "",
        f"{events:,} events; training panel {len(panel):,} rows over"
        f" {panel['as_of'].nunique()} monthly as-of dates (built in {t_panel:.1f} s);"
        f" default backtest ({bt.folds} folds x {bt.test_months} month, K ="
        f" {bt.capacity_k}) in {t_bt:.1f} s. Pooled test rows of all folds. Churn tests"
        f" {f0['churn']['test_as_of'][0]} to {f1['churn']['test_as_of'][-1]}"
        f" ({len(result.predictions):,} rows); CLV tests {_first(f0)} to {_last(f1)}"
        f" ({len(result.clv_predictions):,} rows).",
        "",
        "| churn metric | model | logistic | usage_drop |",
        "|---|---:|---:|---:|",
    ]
    base = churn["baselines"]
    for m in CHURN_METRICS:
        row = [churn["model"][m], base["logistic"][m], base["usage_drop"][m]]
        lines.append(f"| {m} | " + " | ".join(fmt(v) for v in row) + " |")
    lines += ["", "| CLV metric (12-month revenue) | model | mrr_x12 |", "|---|---:|---:|"]
    for m in CLV_METRICS:
        row = [clv["model"][m], clv["baselines"]["mrr_x12"][m]]
        lines.append(
            f"| {m} | " + " | ".join(fmt(v, 3 if m == "spearman" else 1) for v in row) + " |"
        )
    model, logit = churn["model"], base["logistic"]
    cmae, bmae = clv["model"]["mae"], clv["baselines"]["mrr_x12"]["mae"]

    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")

    def beats(a: float | None, b: float | None, higher: bool = True) -> bool | None:
        if a is None or b is None:
            return None
        return a > b if higher else a < b

    aims = [
        (
            "model beats logistic on ROC-AUC",
            f"{fmt(model['roc_auc'])} vs {fmt(logit['roc_auc'])}",
            beats(model["roc_auc"], logit["roc_auc"]),
        ),
        (
            "model beats logistic on PR-AUC",
            f"{fmt(model['pr_auc'])} vs {fmt(logit['pr_auc'])}",
            beats(model["pr_auc"], logit["pr_auc"]),
        ),
        (
            "ECE <= 0.03",
            fmt(model["ece"], 4),
            None if model["ece"] is None else model["ece"] <= 0.03,
        ),
        (
            "top-decile lift >= 3",
            fmt(model["lift_top_decile"], 2),
            None if model["lift_top_decile"] is None else model["lift_top_decile"] >= 3,
        ),
        (
            "CLV beats MRR x 12 on MAE",
            f"{fmt(cmae, 1)} vs {fmt(bmae, 1)}",
            beats(cmae, bmae, higher=False),
        ),
    ]
    lines += ["", "| aim (issue 4) | measured | result |", "|---|---:|---|"]
    lines += [f"| {a} | {v} | {check(ok)} |" for a, v, ok in aims]
    per_fold = ", ".join(
        f"fold {f['fold']}: ROC-AUC {fmt(f['churn']['model']['roc_auc'])},"
        f" ECE {fmt(f['churn']['model']['ece'], 4)}, CLV MAE {fmt(f['clv']['model']['mae'], 1)}"
        f" vs {fmt(f['clv']['baselines']['mrr_x12']['mae'], 1)}"
        for f in out["folds"]
    )
    lines += ["", f"Per fold: {per_fold}.", ""]
    for note in result.notes:
        if "usage_drop: brier" not in note and "usage_drop: ece" not in note:
            lines.append(f"- note: {note}")
    lines.append("")


def _first(fold: dict[str, Any]) -> str:
    dates = fold["clv"]["test_as_of"]
    return str(dates[0]) if dates else "none"


def _last(fold: dict[str, Any]) -> str:
    dates = fold["clv"]["test_as_of"]
    return str(dates[-1]) if dates else "none"


def tree_shape(model: Any) -> str:
    """Return "N trees, mean depth D" of a fitted churn or CLV model's used trees."""

    def depth(node: dict[str, Any]) -> int:
        if "leaf_index" in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    info = model.booster_.dump_model(num_iteration=model.best_iteration_)["tree_info"]
    depths = [depth(t["tree_structure"]) for t in info]
    return f"{len(depths)} trees, mean depth {np.mean(depths):.1f}, max {max(depths)}"


def training_and_scoring(sizes: Sizes, repeat: int, lines: list[str]) -> None:
    from churnrisk.config import RunConfig
    from churnrisk.models import drivers_frame, train_models
    from churnrisk.pipeline import training_panel
    from churnrisk.validate import load

    accounts, months, start, seed = sizes.training
    folder, events = ensure_world(accounts, months, start, seed)
    config = RunConfig()
    t0 = time.perf_counter()
    ds = load(folder).dataset
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    panel = training_panel(ds, config)
    t_panel = time.perf_counter() - t0
    t0 = time.perf_counter()
    models = train_models(panel, config)
    t_train = time.perf_counter() - t0
    n_churn = int(panel["churned"].notna().sum())
    n_rev = int(panel["revenue_next_12m"].notna().sum())
    print(
        f"training: load {t_load:.1f} s, panel {t_panel:.1f} s, train {t_train:.1f} s", flush=True
    )
    lines += [
        f"### Training: {accounts:,} accounts x {months} months (seed {seed})",
        "",
        f"{events:,} events. Default configuration, LightGBM on"
        f" {config.churn.num_threads} thread(s).",
        "",
        "| step | rows | seconds |",
        "|---|---:|---:|",
        f"| load and validate the data set | | {t_load:.1f} |",
        f"| feature panel with labels ({panel['as_of'].nunique()} monthly as-of dates)"
        f" | {len(panel):,} | {t_panel:.1f} |",
        f"| `train_models` (churn on {n_churn:,} label-closed rows, best iteration"
        f" {models.churn.best_iteration_}; CLV on {n_rev:,} revenue-labelled rows, best"
        f" iteration {models.clv.best_iteration_}) | {n_churn + n_rev:,} | {t_train:.1f} |",
        "",
    ]

    # ---- batch scoring: sample the latest as-of rows up to score_rows
    latest = panel.loc[panel["as_of"] == panel["as_of"].max()]
    rng = np.random.default_rng(0)
    n = sizes.score_rows
    frame = latest.iloc[rng.integers(0, len(latest), n)].reset_index(drop=True)
    frame["account_id"] = pd.array([f"s{i:06d}" for i in range(n)], dtype="string")
    frame = frame.drop(columns=["churned", "revenue_next_12m"])
    churn, clv = models.churn, models.clv

    def lgb(model: Any, x: np.ndarray, threads: int, **kw: Any) -> Any:
        return model.booster_.predict(
            x, num_iteration=model.best_iteration_, num_threads=threads, **kw
        )

    timed(lambda: models.predict(frame), 1)  # warm up
    rows: list[tuple[str, float, float]] = []

    def measure(label: str, fn: Callable[[], Any]) -> Any:
        med, low, out = timed(fn, repeat)
        rows.append((label, med, low))
        print(f"  {label}: {med:.3f} s (min {low:.3f})", flush=True)
        return out

    measure(
        "`ChurnRiskModels.predict` (total, as shipped: 1 thread)", lambda: models.predict(frame)
    )
    x_churn = measure(
        "churn `FeatureFrame.codes` (pandas to float matrix)", lambda: churn.frame_.codes(frame)
    )
    x_clv = clv.frame_.codes(frame)
    for threads in (1, 2):
        measure(
            f"churn booster predict, raw ({churn.best_iteration_} trees, {threads} thread(s))",
            lambda t=threads: lgb(churn, x_churn, t, raw_score=True),
        )
    raw = lgb(churn, x_churn, 1, raw_score=True)
    measure("isotonic calibration (`np.interp`)", lambda: churn.calibrator_.transform(raw))
    for threads in (1, 2):
        measure(
            f"CLV booster predict ({clv.best_iteration_} trees, {threads} thread(s))",
            lambda t=threads: lgb(clv, x_clv, t),
        )
    n_pred = len(rows)
    # pred_contrib costs ~1000x a prediction: one run over all rows, thread counts on a slice
    t0 = time.perf_counter()
    contrib = churn.contributions(frame)
    t_contrib = time.perf_counter() - t0
    rows.append(
        (
            "`ChurnModel.contributions`: codes + `pred_contrib` (1 thread, 1 run)",
            t_contrib,
            t_contrib,
        )
    )
    print(f"  contributions: {t_contrib:.1f} s", flush=True)
    cached = churn.contributions
    churn.contributions = lambda panel: contrib.loc[panel.index]  # type: ignore[method-assign]
    try:
        med, low, drv = timed(lambda: drivers_frame(churn, frame), repeat)
    finally:
        churn.contributions = cached  # type: ignore[method-assign]
    rows.append(("`drivers_frame` without `pred_contrib` (ranking, wording, frame)", med, low))
    rows.append(
        (
            "**`drivers_frame`, top 3 risers, all rows (sum of the two above)**",
            t_contrib + med,
            t_contrib + low,
        )
    )
    print(f"  drivers_frame minus contributions: {med:.2f} s; {len(drv):,} rows", flush=True)
    part = x_churn[: max(1, n // 20)]
    for threads in (1, 2):
        p_med, p_low, _ = timed(lambda t=threads: lgb(churn, part, t, pred_contrib=True), 1)
        scale = n / len(part)
        rows.append(
            (
                f"booster `pred_contrib` on {len(part):,} rows x {scale:.0f}"
                f" ({threads} thread(s), scaled to all rows)",
                p_med * scale,
                p_low * scale,
            )
        )
        print(f"  pred_contrib {threads} threads on {len(part)}: {p_med:.2f} s", flush=True)

    lines += [
        f"### Batch scoring: {n:,} rows",
        "",
        f"Sampled with replacement from the {len(latest):,} accounts of the panel's latest"
        f" as-of date ({pd.Timestamp(latest['as_of'].iloc[0]).date()}), account ids made"
        f" unique. Median of {repeat} runs (min in brackets); thread counts are LightGBM's"
        " `num_threads` passed to `Booster.predict`. Churn model:"
        f" {tree_shape(churn)}; CLV model: {tree_shape(clv)}.",
        "",
        "| step | seconds | rows/s |",
        "|---|---:|---:|",
    ]
    for i, (label, med, low) in enumerate(rows):
        if i == n_pred:
            lines.append("| **drivers** | | |")
        lines.append(f"| {label} | {med:.3f} ({low:.3f}) | {n / med:,.0f} |")
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small worlds, to test the harness")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--skip-quality", action="store_true", help="training and scoring only")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    lines = [f"## Models, {date.today()}{' (quick)' if args.quick else ''}", ""]
    if not args.skip_quality:
        quality(sizes, lines)
    training_and_scoring(sizes, args.repeat, lines)
    text = "\n".join(lines) + "\n"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out = OUTPUT / ("models-quick.md" if args.quick else "models.md")
    out.write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"bench done: table above, also in {out}")


if __name__ == "__main__":
    main()
