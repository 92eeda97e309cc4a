"""Calibration benchmark: calibration error, Brier score and ties of each calibration map.

For each world (the demo's: default shape, 5,000 accounts x 36 months from 2023-11-01,
seed 0, as ``churnrisk demo`` generates it; and the renewal-pricing shape at its default
size, where churn happens at renewal), generated once into ``bench/output/`` and reused:

1. **Backtest.** The default backtest (:func:`churnrisk.models.backtest.backtest`) once
   per calibration method (the boosters are the same for a seed; only the map from raw
   scores to probabilities differs). On the pooled test rows: ECE, Brier score, ROC-AUC
   and the number of distinct probabilities.
2. **Scored accounts.** The final churn model as ``train`` fits it (as in
   :func:`churnrisk.models.train_models`, default configuration), its calibrator refitted
   with each method on the rows the default one was fitted on, and the accounts the
   scoring job scores at the end of observation (as ``churnrisk demo`` does): distinct
   probabilities among all of them and among those in the top tier.

Usage: ``python bench/calibration.py [--quick]``; writes ``bench/output/calibration.md``.
``--quick`` uses worlds of 800 accounts to check the harness.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path
from typing import Any, get_args

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"

WORLDS: list[tuple[str, int | None, int | None, date]] = [
    ("default", 5_000, 36, date(2023, 11, 1)),
    ("renewal-pricing", None, None, date(2024, 11, 1)),
]


def ensure_world(shape: str, accounts: int | None, months: int | None, start: date) -> Path:
    """Generate a world once (Parquet, seed 0); return its folder."""
    from churnrisk.generate import generate_world

    folder = OUTPUT / f"calibration-{shape}-{accounts or 'default'}x{months or 'default'}"
    marker = folder / ".complete"
    if not marker.exists():
        t0 = time.perf_counter()
        generate_world(folder, shape=shape, accounts=accounts, months=months, start=start)
        marker.touch()
        print(f"generated {folder.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def backtest_rows(panel: Any, method: str) -> dict[str, float]:
    """Pooled backtest figures of one calibration method."""
    from churnrisk.config import RunConfig
    from churnrisk.models import evaluation as ev
    from churnrisk.models.backtest import backtest

    base = RunConfig()
    config = base.model_copy(
        update={"churn": base.churn.model_copy(update={"calibration": method})}
    )
    pred = backtest(panel, config).predictions
    y = pred["churned"].to_numpy(dtype="float64")
    p = pred["model"].to_numpy(dtype="float64")
    return {
        "rows": len(p),
        "ece": ev.ece(y, p),
        "brier": ev.brier(y, p),
        "roc_auc": ev.roc_auc(y, p),
        "distinct": len(np.unique(p)),
    }


def scored_rows(ds: Any, panel: Any) -> dict[str, dict[str, float]]:
    """Distinct probabilities of each method among the accounts scored at the end."""
    from churnrisk.config import CalibrationMethod, RunConfig
    from churnrisk.dataset import observation_end
    from churnrisk.features import build_features
    from churnrisk.models import Calibrator, ChurnModel
    from churnrisk.models.churn import split_later

    config = RunConfig()
    closed = panel.loc[panel["churned"].notna()]
    train, later = split_later(closed, config.churn.holdout_dates)
    churn = ChurnModel(config.churn, random_state=config.seed).fit(train, calibration=later)
    first, last = churn.calibration_as_of_
    fit_rows = closed.loc[closed["as_of"].between(first, last)]
    y = fit_rows["churned"].to_numpy(dtype="float64")
    raw_fit = churn.predict_raw(fit_rows)
    scored = build_features(ds, [observation_end(ds)])
    raw = churn.predict_raw(scored)
    high = max(config.scoring.tiers.values())
    out: dict[str, dict[str, float]] = {}
    for method in get_args(CalibrationMethod):
        p = Calibrator(method).fit(raw_fit, y).transform(raw)
        top = p[p >= high]
        out[method] = {
            "accounts": len(p),
            "distinct": len(np.unique(p)),
            "high": len(top),
            "high_distinct": len(np.unique(top)),
            "largest_tie": int(np.unique(p, return_counts=True)[1].max()),
        }
    return out


def main() -> None:
    """Run the benchmark and write ``bench/output/calibration.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small worlds, harness check")
    args = parser.parse_args()

    from churnrisk.config import CalibrationMethod, RunConfig
    from churnrisk.pipeline import training_panel
    from churnrisk.validate import load

    lines = ["# Calibration maps", ""]
    for shape, accounts, months, start in WORLDS:
        if args.quick:
            accounts = 800
        folder = ensure_world(shape, accounts, months, start)
        ds = load(folder).dataset
        panel = training_panel(ds, RunConfig())
        lines += [f"## {shape} ({folder.name})", "", "### Backtest, pooled test rows", ""]
        lines += [
            "| method | rows | ECE | Brier | ROC-AUC | distinct p |",
            "|---|---|---|---|---|---|",
        ]
        for method in get_args(CalibrationMethod):
            t0 = time.perf_counter()
            r = backtest_rows(panel, method)
            print(f"{shape} {method}: {r} ({time.perf_counter() - t0:.0f} s)", flush=True)
            lines.append(
                f"| {method} | {r['rows']:,} | {r['ece']:.4f} | {r['brier']:.4f}"
                f" | {r['roc_auc']:.4f} | {r['distinct']:,} |"
            )
        lines += ["", "### Accounts scored at the end of observation", ""]
        lines += [
            "| method | accounts | distinct p | largest tie | high tier | distinct in high |",
            "|---|---|---|---|---|---|",
        ]
        for method, s in scored_rows(ds, panel).items():
            print(f"{shape} {method} scored: {s}", flush=True)
            lines.append(
                f"| {method} | {s['accounts']:,} | {s['distinct']:,} | {s['largest_tie']:,}"
                f" | {s['high']:,} | {s['high_distinct']:,} |"
            )
        lines.append("")
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "calibration.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
