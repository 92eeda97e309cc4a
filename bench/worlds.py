"""World-shape benchmark: the default backtest on every shape the generator makes.

For each shape of :data:`churnrisk.generate.SHAPES`, at its default size, plus a
1,000-or-more-account variant of any shape whose default book is smaller (so every
churn mechanism is measured at the size the issue's aim speaks of) and a 24-month
control of any shape whose default history is shorter (so its mechanism is measured
apart from the length of its history), it

1. generates the world once into ``bench/output/worlds/`` (reused while its folder
   holds a ``.complete`` marker; seed 0, default start);
2. runs what ``churnrisk backtest`` runs, default settings: load and validate, the
   plan's grid and the training panel (:func:`churnrisk.pipeline.training_panel`), the
   leak audit
   (:func:`churnrisk.models.audit.check_leaks`) and the backtest
   (:func:`churnrisk.models.backtest.backtest`);
3. records the world (accounts, months, rows of every table, churn events), the plan,
   the pooled churn ROC-AUC and PR-AUC of the chosen model, of every candidate and of
   the logistic baseline, the strongest
   single feature of the leak audit, and the wall time of step 2. When a step refuses
   the data, its one-line message is recorded instead of the figures.

The issue's aim, checked per world: on every world with at least 1,000 accounts, the
model's ROC-AUC and PR-AUC are at least the logistic baseline's, with default settings.

Usage: ``python bench/worlds.py [--quick]`` (``make bench``); writes
``bench/output/worlds.md``. ``--quick`` divides every size by 5 to check the harness.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
AIM_ACCOUNTS = 1_000
CONTROL_MONTHS = 24
SEED = 0


@dataclass(frozen=True)
class Case:
    shape: str
    accounts: int
    months: int

    @property
    def label(self) -> str:
        return f"{self.shape} {self.accounts:,} x {self.months}"


@dataclass
class Outcome:
    case: Case
    rows: dict[str, int] = field(default_factory=dict)
    churns: int | None = None
    panel_rows: int | None = None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    strongest: tuple[str, float] | None = None
    refusal: str | None = None
    chosen: str | None = None
    plan: str | None = None
    seconds: float = 0.0
    generate_seconds: float | None = None


def cases(quick: bool) -> list[Case]:
    """Every shape at its default size; bigger books and longer histories of small ones."""
    from churnrisk.generate import SHAPES

    out = []
    for spec in SHAPES.values():
        out.append(Case(spec.name, spec.accounts, spec.months))
        if spec.accounts < AIM_ACCOUNTS:
            out.append(Case(spec.name, 5 * spec.accounts, spec.months))
        if spec.months < CONTROL_MONTHS:
            out.append(Case(spec.name, spec.accounts, CONTROL_MONTHS))
    if quick:
        out = [Case(c.shape, max(60, c.accounts // 5), c.months) for c in out]
    return out


def ensure_world(case: Case) -> tuple[Path, float | None]:
    """Generate a case's world once; return its folder and the generation time (if new)."""
    from churnrisk.generate import generate_world

    folder = OUTPUT / "worlds" / f"{case.shape}-{case.accounts}x{case.months}-s{SEED}"
    marker = folder / ".complete"
    if marker.exists():
        return folder, None
    t0 = time.perf_counter()
    generate_world(folder, shape=case.shape, accounts=case.accounts, months=case.months, seed=SEED)
    marker.touch()
    seconds = time.perf_counter() - t0
    print(f"generated {case.label} in {seconds:.1f} s", flush=True)
    return folder, seconds


def run_case(case: Case) -> Outcome:
    """Backtest one world with default settings, as ``churnrisk backtest`` does."""
    from churnrisk.config import RunConfig
    from churnrisk.errors import ChurnRiskError
    from churnrisk.features.labels import churn_days
    from churnrisk.models.audit import check_leaks, leak_audit
    from churnrisk.models.backtest import backtest
    from churnrisk.pipeline import training_grid, training_panel
    from churnrisk.validate import load

    folder, gen_s = ensure_world(case)
    result = Outcome(case, generate_seconds=gen_s)
    config = RunConfig()
    t0 = time.perf_counter()
    try:
        loaded = load(folder)
        ds = loaded.dataset
        result.rows = {name: t.rows for name, t in loaded.report.tables.items()}
        subs = ds.table("subscriptions")
        result.churns = int(churn_days(subs, config.labels.grace_days).count().execute())
        grid = training_grid(ds, config)
        panel = training_panel(ds, config, grid)
        result.panel_rows = len(panel)
        audit = leak_audit(panel)
        if audit:
            result.strongest = (audit[0].feature, audit[0].auc)
        check_leaks(panel)
        full = backtest(panel, config, grid=grid).to_dict()
        out = full["churn"]
        result.metrics = {
            "model": out["model"],
            "logistic": out["baselines"]["logistic"],
            **{f"candidate {n}": m for n, m in out["candidates"].items()},
        }
        result.chosen = out["chosen"]
        result.plan = full["plan"]["line"]
    except ChurnRiskError as exc:
        result.refusal = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    result.seconds = time.perf_counter() - t0
    return result


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "null"
    return f"{v:.{digits}f}"


def blank(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def pair(m: dict[str, float | None] | None) -> str:
    return "" if not m else f"{fmt(m.get('roc_auc'))} / {fmt(m.get('pr_auc'))}"


def verdict(o: Outcome) -> str:
    """The issue's aim for this world: pass, FAIL, or why it does not apply."""
    if o.case.accounts < AIM_ACCOUNTS:
        return "n/a (< 1,000 accounts)"
    if o.refusal is not None:
        return "**FAIL** (refused)"
    m, b = o.metrics["model"], o.metrics["logistic"]
    ok = all(m[k] is not None and b[k] is not None and m[k] >= b[k] for k in ("roc_auc", "pr_auc"))
    return "pass" if ok else "**FAIL**"


def table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| world (shape, accounts x months) | rows | churn events | panel rows"
        " | model ROC-AUC | logistic ROC-AUC | model PR-AUC | logistic PR-AUC"
        " | chosen | LightGBM ROC / PR | blend ROC / PR"
        " | strongest single feature | seconds | model >= logistic on both |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---|",
    ]
    for o in outcomes:
        m, b = o.metrics.get("model", {}), o.metrics.get("logistic", {})
        cells = [
            o.case.label,
            f"{sum(o.rows.values()):,}",
            blank(o.churns),
            blank(o.panel_rows),
            fmt(m.get("roc_auc")),
            fmt(b.get("roc_auc")),
            fmt(m.get("pr_auc")),
            fmt(b.get("pr_auc")),
            o.chosen or "",
            pair(o.metrics.get("candidate lightgbm")),
            pair(o.metrics.get("candidate blend")),
            f"{o.strongest[0]} {o.strongest[1]:.3f}" if o.strongest else "",
            f"{o.seconds:.1f}",
            verdict(o),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Plans:", ""]
    lines += [f"- {o.case.label}: `{o.plan}`" for o in outcomes if o.plan]
    refused = [o for o in outcomes if o.refusal]
    if refused:
        lines += ["", "Refused:", ""]
        lines += [f"- {o.case.label}: `{o.refusal}`" for o in refused]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small worlds, to test the harness")
    parser.add_argument("--shape", action="append", help="only these shapes (repeatable)")
    args = parser.parse_args()
    # scikit-learn says so for every all-null feature of a shape's export: known, not news
    warnings.filterwarnings("ignore", message="Skipping features without any observed values")
    todo = [c for c in cases(args.quick) if not args.shape or c.shape in args.shape]
    outcomes = []
    for case in todo:
        o = run_case(case)
        print(
            f"{case.label}: {o.seconds:.1f} s, "
            + (o.refusal or f"model {o.metrics['model']} logistic {o.metrics['logistic']}"),
            flush=True,
        )
        outcomes.append(o)
    lines = [f"## World shapes, {date.today()}{' (quick)' if args.quick else ''}", ""]
    lines += table(outcomes)
    text = "\n".join(lines) + "\n"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out = OUTPUT / ("worlds-quick.md" if args.quick else "worlds.md")
    out.write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"bench done: table above, also in {out}")


if __name__ == "__main__":
    main()
