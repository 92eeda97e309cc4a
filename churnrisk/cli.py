"""The ``churnrisk`` command line: thin commands that parse, call a stage and summarise.

Every command that reads a data source validates it first, the same way as
``churnrisk validate``, and says what it set aside. Errors end the command with a
one-line message on standard error and no traceback: exit code 2 when the input cannot
be used at all, 1 for any other domain error (bad option values, unknown names).
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churnrisk.config import LabelConfig, load_run_config
from churnrisk.errors import ChurnRiskError, ConfigError, DataError


def _commands(help_text: str, **options: Any) -> typer.Typer:
    """Return a Typer command group whose help texts are shown exactly as written.

    Help texts here are plain text: with Rich markup on (Typer's default), a TOML table
    name such as ``[scoring]`` would read as a style tag and vanish from ``--help``.
    """
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **options)


app = _commands(
    "Churn risk, CLV and SaaS health metrics from your own subscription data.",
    name="churnrisk",
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = _commands("The point-in-time feature registry and builder.")
app.add_typer(features_app, name="features")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

QUARANTINE_HELP = (
    "Write the rows that break a rule here: <table>.csv per table, and"
    " <table>.malformed.csv for CSV lines that cannot be split into columns."
)
QuarantineOpt = Annotated[Path | None, typer.Option(help=QUARANTINE_HELP)]
SparkMasterOpt = Annotated[
    str,
    typer.Option(help="Spark master URL with --engine spark (spark-submit's --master wins)."),
]
DataArg = Annotated[
    Path,
    typer.Argument(
        help="A folder of <table>.csv / <table>.parquet files, or a DuckDB database file."
    ),
]


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r} is not a date; write it as YYYY-MM-DD") from exc


@contextmanager
def _working(message: str) -> Iterator[None]:
    """Show a spinner on standard error while a single long step runs."""
    with err.status(message, spinner="dots"):
        yield


def _load(data: Path, *, quarantine: Path | None = None) -> Any:
    """Validate ``data`` and return the load result, saying what was set aside.

    A required table left without a valid row ends the command (exit 2) after saying
    what was set aside and why.
    """
    from churnrisk.validate import UnusableDataError, load

    hint = f"`churnrisk validate {data}` lists every cause"
    with _working(f"validating {data}"):
        try:
            result = load(data, quarantine_dir=quarantine)
        except UnusableDataError as exc:
            _say_set_aside(exc.report, quarantine, hint)
            raise
    _say_set_aside(result.report, quarantine, hint)
    return result


SHOWN_CAUSES = 3
"""Causes of set-aside rows a command other than ``validate`` prints."""


def _say_set_aside(report: Any, quarantine: Path | None, hint: str = "") -> None:
    """Say on standard error which rows a load set aside, why, and which tables were absent."""
    set_aside = {name: t.quarantined for name, t in report.tables.items() if t.quarantined}
    if set_aside:
        parts = ", ".join(f"{name} {n:,}" for name, n in set_aside.items())
        where = f"; quarantined rows in {quarantine}" if quarantine else ""
        err.print(
            f"[yellow]set aside {sum(set_aside.values()):,} bad row(s)[/] ({parts}){where}",
            markup=True,
        )
        causes = getattr(report, "causes", [])
        for cause in causes[:SHOWN_CAUSES]:
            err.print(f"  {cause.text}", markup=False)
        more = len(causes) - SHOWN_CAUSES
        if more > 0 or (hint and causes):
            err.print(f"  {f'… {more:,} more cause(s): ' if more > 0 else ''}{hint}", markup=False)
    if report.absent:
        err.print(
            f"[dim]not provided: {', '.join(report.absent)} "
            "(the features and metrics that need them are null)[/]"
        )


def _load_spark(data: Path, master: str, quarantine: Path | None) -> tuple[Any, Any]:
    """Open a Spark session, load and check ``data`` on it; return (session, dataset)."""
    from churnrisk.spark import load_spark, spark_session
    from churnrisk.validate import UnusableDataError

    session = spark_session(master=master)
    source = spark_source(data)
    with _working(f"validating {source} on Spark"):
        try:
            ds = load_spark(source, session, quarantine_dir=quarantine)
        except UnusableDataError as exc:
            _say_set_aside(exc.report, quarantine)
            raise
    _say_set_aside(ds.report, quarantine)
    return session, ds


# --------------------------------------------------------------------------- generate


def _shapes_epilog() -> str:
    """Return the shapes for ``generate --help``: one line each, kept as written."""
    from churnrisk.generate import SHAPES

    entries = [
        f"  {spec.name:<19}{spec.accounts:>6,} x {spec.months:<3} {spec.summary}"
        for spec in SHAPES.values()
    ]
    return "\b\nShapes (--shape NAME): default accounts x months, what drives churn\n" + "\n".join(
        entries
    )


@app.command(epilog=_shapes_epilog())
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the tables into.")],
    shape: Annotated[
        str, typer.Option(metavar="NAME", help="The world's shape (listed below).")
    ] = "default",
    accounts: Annotated[
        int | None, typer.Option(help="Number of accounts [default: the shape's].")
    ] = None,
    months: Annotated[
        int | None, typer.Option(help="Months of history [default: the shape's].")
    ] = None,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = (
        "2024-11-01"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    fmt: Annotated[
        Literal["csv", "parquet"], typer.Option("--format", help="File format.")
    ] = "parquet",
) -> None:
    """Write a synthetic B2B world of one shape: its tables, with a documented churn mechanism."""
    summary = _generate(
        out_dir, accounts, months, _parse_date(start, "--start"), seed, fmt, shape=shape
    )
    total = sum(summary.rows.values())
    out.print(
        f"generated {summary.rows['accounts']:,} accounts and {total:,} rows in all"
        f" ({summary.shape} world, {summary.start} to {summary.end}, {fmt}) in {summary.out}"
    )


def _generate(
    out_dir: Path,
    accounts: int | None,
    months: int | None,
    start: date,
    seed: int,
    fmt: Literal["csv", "parquet"],
    *,
    shape: str = "default",
) -> Any:
    from churnrisk.generate import SHAPES, generate_world

    total = accounts if accounts is not None else getattr(SHAPES.get(shape), "accounts", None)
    with _progress() as progress:
        task = progress.add_task("generating accounts", total=total)
        return generate_world(
            out_dir,
            shape=shape,
            accounts=accounts,
            months=months,
            start=start,
            seed=seed,
            fmt=fmt,
            progress=lambda n: progress.advance(task, n),
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# --------------------------------------------------------------------------- validate


@app.command()
def validate(
    data: DataArg,
    report: Annotated[
        Path | None, typer.Option(help="Write the JSON report (tables, problems) here.")
    ] = None,
    quarantine: QuarantineOpt = None,
) -> None:
    """Check a data source against the contract; exit 0 clean, 1 rows set aside, 2 unusable."""
    from churnrisk.validate import UnusableDataError, load

    unusable: UnusableDataError | None = None
    with _working(f"validating {data}"):
        try:
            rep = load(data, quarantine_dir=quarantine).report
        except UnusableDataError as exc:
            rep, unusable = exc.report, exc
    table = Table("table", "rows", "valid", "quarantined", title=f"validation of {data}")
    for name, t in rep.tables.items():
        table.add_row(name, f"{t.rows:,}", f"{t.valid:,}", f"{t.quarantined:,}")
    out.print(table)
    if rep.causes:
        listed = "" if report else " (--report FILE lists every row)"
        out.print(f"why rows were set aside, one line per cause{listed}:")
    for cause in rep.causes:
        out.print(f"  {cause.text}", markup=False)
    for warning in rep.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(rep.to_dict(), indent=2), encoding="utf-8")
    bad = sum(t.quarantined for t in rep.tables.values())
    rows = sum(t.rows for t in rep.tables.values())
    where = ", ".join(
        f"{label} in {path}"
        for label, path in (("report", report), ("bad rows", quarantine))
        if path
    )
    verdict = "clean" if bad == 0 else f"{bad:,} bad row(s) set aside"
    out.print(
        f"validated {rows:,} rows in {len(rep.tables)} tables: {verdict}"
        + (f"; {where}" if where else "")
    )
    if unusable is not None:
        raise unusable
    raise typer.Exit(rep.exit_code)


# --------------------------------------------------------------------------- features


@features_app.command("list")
def features_list() -> None:
    """List every registered feature: name, family, window and meaning."""
    from churnrisk.features import FEATURES

    table = Table(
        title=f"{len(FEATURES)} registered features"
        " (a model adds one per event type and ticket priority of its data)"
    )
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("window", no_wrap=True)
    table.add_column("meaning")
    for f in FEATURES:
        window = f"{f.window_days} d" if f.window_days else "-"
        table.add_row(f.name, f.family, window, f.meaning)
    out.print(table)


@features_app.command("describe")
def features_describe(name: Annotated[str, typer.Argument(help="A feature name.")]) -> None:
    """Show one feature's declaration."""
    from churnrisk.features import get_feature

    f = get_feature(name)
    for key in ("name", "family", "window_days", "dtype", "table", "actionable", "meaning"):
        out.print(f"{key:12} {getattr(f, key, None)}")
    if f.agg is not None:
        a = f.agg
        how = a.how if a.measure is None else f"{a.how} of {a.measure}"
        extra = "".join(
            [
                f", where {a.where}" if a.where else "",
                f", inputs {' / '.join(a.of)}" if a.of else "",
            ]
        )
        out.print(f"{'computed':12} {how} over {a.source}{extra}, last {f.window_days} days")


@features_app.command("build")
def features_build(
    data: DataArg,
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="Parquet file to write (with --engine spark: a folder of part files)."
        ),
    ],
    as_of: Annotated[str | None, typer.Option(help="One as-of date (YYYY-MM-DD).")] = None,
    start: Annotated[str | None, typer.Option(help="First as-of date of a range.")] = None,
    end: Annotated[str | None, typer.Option(help="Last as-of date of a range.")] = None,
    freq: Annotated[
        Literal["monthly", "weekly"], typer.Option(help="Spacing of as-of dates in a range.")
    ] = "monthly",
    with_labels: Annotated[
        bool, typer.Option("--with-labels", help="Add the churn and 12-month revenue labels.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="TOML run configuration (label horizon, grace).")
    ] = None,
    quarantine: QuarantineOpt = None,
    engine: Annotated[
        Literal["duckdb", "spark"],
        typer.Option(
            help="duckdb (in process, the default) or spark: DATA may then also be a lake"
            " path or a Spark database prefix such as 'lake.', and --out is a Parquet"
            " folder written by Spark."
        ),
    ] = "duckdb",
    spark_master: SparkMasterOpt = "local[*]",
) -> None:
    """Build point-in-time features: one row per active account and as-of date."""
    from churnrisk.features import write_features

    dates = _as_of_option(as_of, start, end, freq)
    run = load_run_config(config)
    labels: LabelConfig | None = run.labels if with_labels else None
    if engine == "spark":
        rows = _features_spark(data, dates, out_file, labels, spark_master, quarantine)
    else:
        result = _load(data, quarantine=quarantine)
        with _working(f"building features for {len(dates)} as-of date(s)"):
            rows = write_features(result.dataset, dates, out_file, labels=labels)
    span = str(dates[0]) if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    out.print(
        f"built {rows:,} rows (account x as-of, {span}, {len(dates)} date(s))"
        f"{' with labels' if labels else ''} in {out_file}"
    )


def _features_spark(
    data: Path,
    dates: list[date],
    out_file: Path,
    labels: LabelConfig | None,
    master: str,
    quarantine: Path | None,
) -> int:
    """Validate ``data`` and write the feature panel with Spark; return the row count."""
    from churnrisk.spark import write_features_spark

    _, ds = _load_spark(data, master, quarantine)
    with _working(f"building features for {len(dates)} as-of date(s) on Spark"):
        return write_features_spark(ds, dates, out_file, labels=labels)


def _as_of_option(
    as_of: str | None, start: str | None, end: str | None, freq: Literal["monthly", "weekly"]
) -> list[date]:
    from churnrisk.features import as_of_dates

    if as_of is not None and (start is not None or end is not None):
        raise ConfigError("give either --as-of or --start/--end, not both")
    if as_of is not None:
        return [_parse_date(as_of, "--as-of")]
    if start is None or end is None:
        raise ConfigError("give --as-of DATE, or both --start DATE and --end DATE")
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    if last < first:
        raise ConfigError(f"--end {last} is before --start {first}")
    dates = as_of_dates(first, last, freq)
    if not dates:
        raise ConfigError(f"no {freq} as-of date falls between {first} and {last}")
    return dates


# --------------------------------------------------------------------------- metrics


@app.command()
def metrics(
    data: DataArg,
    period: Annotated[
        str | None,
        typer.Option(help="A month (2026-10) or a quarter (2026Q4); default: last complete month."),
    ] = None,
    segment: Annotated[str | None, typer.Option(help="Only accounts of this segment.")] = None,
    fmt: Annotated[
        Literal["json", "table"], typer.Option("--format", help="Output format.")
    ] = "table",
    quarantine: QuarantineOpt = None,
) -> None:
    """Compute the standard SaaS metrics of a period: churn, retention, MRR, NRR, NPS and more."""
    result = _load(data, quarantine=quarantine)
    values = _metrics(result.dataset, period, segment)
    if fmt == "json":
        out.print_json(json.dumps(values, default=str))
        return
    print_metrics(values)


def _metrics(ds: Any, period: str | None, segment: str | None) -> dict[str, Any]:
    from churnrisk.metrics import period_metrics

    with _working(f"computing metrics for {period or 'the last complete month'}"):
        return period_metrics(ds, period, segment=segment)


def print_metrics(values: dict[str, Any]) -> None:
    """Print a metrics dictionary as a table: value, unit, and the reason beside every null."""
    from churnrisk.metrics import METRIC_UNITS

    notes = values.get("notes") or {}
    seg = values.get("segment")
    title = f"metrics for {values['period']}" + (f", segment {seg}" if seg else "")
    table = Table(title=title)
    for column in ("metric", "value", "unit"):
        table.add_column(column, no_wrap=True)
    table.add_column("note")
    for key, unit in METRIC_UNITS.items():
        value = values[key]
        shown = "—" if value is None else f"{value:,.{unit.decimals}f}"
        note = notes.get(key, "") if isinstance(notes, dict) else ""
        table.add_row(key, shown, str(unit), str(note))
    out.print(table)
    for key in ("period", "segment"):
        if isinstance(notes, dict) and key in notes:
            out.print(f"[yellow]note:[/] {escape(str(notes[key]))}")


# --------------------------------------------------------------------------- models

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML run configuration (see the README).")
]


def _tracker() -> Any:
    """Open the tracker of this process: MLFLOW_TRACKING_URI, else the embedded store."""
    from churnrisk.settings import get_settings
    from churnrisk.tracking import Tracker, tracking_uri

    settings = get_settings()
    return Tracker(settings.mlflow_tracking_uri or tracking_uri(settings.data_dir))


def _steps() -> Any:
    """Return a progress callback that prints each pipeline step on standard error."""
    return lambda message: err.print(f"[dim]… {message}[/]")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_leaderboard(result: Any) -> None:
    """Print the backtest's overall metrics: one row a metric, the model beside each baseline.

    Notes that explain a null overall metric are printed below; per-fold notes are in
    the JSON output and the MLflow run.
    """
    for task, part in (("churn", result.churn), ("clv", result.clv)):
        names = ["model", *part["baselines"]]
        columns = [part["model"], *part["baselines"].values()]
        table = Table("metric", *names, title=f"{task} backtest, pooled out-of-time test rows")
        for key in part["model"]:
            table.add_row(key, *(_fmt(c.get(key)) for c in columns))
        out.print(table)
    if "chosen" in result.churn:
        tried = ", ".join(
            f"{n} {_fmt(m.get('roc_auc'))}/{_fmt(m.get('pr_auc'))}"
            for n, m in result.churn["candidates"].items()
        )
        out.print(
            f"churn model: {result.churn['chosen']} (candidates ROC-AUC/PR-AUC: {tried};"
            f" search {result.churn['search_seconds']:.1f} s)"
        )
    for note in result.notes:
        if note.startswith("overall"):
            out.print(f"[dim]note: {note}[/]")


AllowLeakOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-leak",
        help="A feature the leak audit may let through although it alone separates"
        " churners from stayers (repeat for several); check first that it is known in"
        " advance.",
    ),
]


@app.command()
def train(
    data: DataArg,
    config: ConfigOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Make the new models champion whatever the gate says.")
    ] = False,
    quarantine: QuarantineOpt = None,
    allow_leak: AllowLeakOpt = None,
) -> None:
    """Backtest, train and register the churn and CLV models; promote them if not worse."""
    from churnrisk.pipeline import train as run_train
    from churnrisk.tracking import fingerprint

    run = load_run_config(config)
    result = _load(data, quarantine=quarantine)
    tracker = _tracker()
    outcome = run_train(
        result.dataset,
        run,
        tracker=tracker,
        fingerprint=fingerprint(data),
        force=force,
        allow_leaks=allow_leak or (),
        step=_steps(),
    )
    print_leaderboard(outcome.backtest)
    if outcome.backtest.plan is not None:
        out.print(outcome.backtest.plan.line(), markup=False)
    d = outcome.decision
    verdict = "champion" if d.promoted else "challenger"
    out.print(
        f"gate: version {outcome.versions.churn} is {verdict} ({d.reason})"
        + (
            ""
            if d.promoted or force or d.reason.startswith("degenerate")
            else "; `churnrisk train --force` overrides"
        )
    )
    first, last = outcome.panel_dates
    clv = f"churnrisk-clv v{outcome.versions.clv}" if outcome.versions.clv else "no CLV model"
    out.print(
        f"trained on {outcome.panel_rows:,} rows ({first} to {last}); run {outcome.versions.run_id}"
        f" in {tracker.uri}; models churnrisk-churn v{outcome.versions.churn}, {clv}"
    )
    if outcome.clv_note:
        out.print(outcome.clv_note)


@app.command()
def backtest(
    data: DataArg,
    config: ConfigOpt = None,
    fmt: Annotated[
        Literal["json", "table"], typer.Option("--format", help="Output format.")
    ] = "table",
    quarantine: QuarantineOpt = None,
    allow_leak: AllowLeakOpt = None,
) -> None:
    """Backtest the configuration over time beside the baselines, and record the run."""
    from churnrisk.models.audit import check_leaks
    from churnrisk.models.backtest import backtest as run_backtest
    from churnrisk.pipeline import backtest_figures, training_grid, training_panel
    from churnrisk.tracking import fingerprint

    run = load_run_config(config)
    result = _load(data, quarantine=quarantine)
    step = _steps()
    step("building the panel")
    grid = training_grid(result.dataset, run)
    panel = training_panel(result.dataset, run, grid)
    step("auditing the features for leaks")
    check_leaks(panel, allow=allow_leak or ())
    step("backtesting the model and the baselines")
    bt = run_backtest(panel, run, grid=grid)
    tracker = _tracker()
    from churnrisk.features import feature_names

    dates = sorted(pd.to_datetime(panel["as_of"]).dt.date.unique())
    run_id = tracker.log_backtest(
        bt.to_dict(),
        config=run,
        fingerprint=fingerprint(data),
        window=(dates[0], dates[-1]),
        feature_names=list(feature_names()),
        figures=backtest_figures(bt),
    )
    if fmt == "json":
        out.print_json(json.dumps(bt.to_dict()))
        return
    print_leaderboard(bt)
    if bt.plan is not None:
        out.print(bt.plan.line(), markup=False)
    out.print(f"backtested {len(bt.folds)} folds; run {run_id} in {tracker.uri}")


@app.command()
def explain(
    data: DataArg,
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    as_of: Annotated[
        str | None, typer.Option(help="As-of date (default: the end of the data).")
    ] = None,
    top: Annotated[int, typer.Option(help="Drivers to show in each direction.")] = 5,
) -> None:
    """Show an account's churn risk, CLV and the drivers behind its score (champion model)."""
    from churnrisk.pipeline import explain_account

    day = _parse_date(as_of, "--as-of") if as_of else None
    result = _load(data)
    models = _tracker().load_champion()
    score, found, context = explain_account(models, result.dataset, account_id, as_of=day, top=top)
    renewal = score["renewal_date"]
    renews = (
        f"renews {renewal} (in {score['days_to_renewal']:,.0f} days)"
        if renewal is not None
        else "no known renewal date"
    )
    out.print(
        f"{account_id} as of {str(score['as_of'])[:10]}: churn probability "
        f"{score['churn_probability']:.1%}, MRR {score['mrr']:,.2f}, "
        f"12-month revenue {score['revenue_12m']:,.0f}, lifetime CLV {score['lifetime_clv']:,.0f};"
        f" {renews}"
    )
    labels = (
        ("drivers: what CS can act on, moving this score", "driver", found),
        (
            "context: who the account is and where its contract stands (not a driver)",
            "context",
            context,
        ),
    )
    for label, head, items in labels:
        out.print(label, markup=False)
        table = Table(head, "contribution (log-odds)")
        for d in items:
            table.add_row(d.text, f"{d.contribution:+.3f}")
        out.print(table)
    from churnrisk.models.explain import global_importance

    overall = global_importance(models.churn).head(5)
    shares = ", ".join(f"{r.meaning} ({r.share:.0%})" for r in overall.itertuples())
    out.print(f"the model's strongest drivers overall (share of gain): {shares}")


# --------------------------------------------------------------------------- score


@app.command()
def score(
    data: DataArg,
    as_of: Annotated[
        str | None,
        typer.Option(help="As-of date (default: the day after the data ends)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML run configuration whose [scoring] table sets the tiers and driver"
            " counts (default: the champion's training configuration).",
        ),
    ] = None,
    quarantine: QuarantineOpt = None,
    engine: Annotated[
        Literal["duckdb", "spark"],
        typer.Option(
            help="duckdb (in process, the default) or spark: features on Spark, scores"
            " through mlflow.pyfunc.spark_udf, drivers on the executors."
        ),
    ] = "duckdb",
    spark_master: SparkMasterOpt = "local[*]",
) -> None:
    """Score every active account with the champion models and keep the run in the store."""
    day = _parse_date(as_of, "--as-of") if as_of else None
    run = load_run_config(config) if config is not None else None
    if engine == "spark":
        from churnrisk.scoring_spark import require_pyspark

        require_pyspark()
    tracker = _tracker()
    info = tracker.champion_info()
    if info is None:
        raise ConfigError(f"no champion model in {tracker.uri}: run `churnrisk train DATA` first")
    # Load the very version the info names, so a promotion in between cannot mix them up.
    models = tracker.load_champion(version=info.versions.churn)
    scoring = run.scoring if run is not None else models.config.scoring
    if engine == "spark":
        line = _score_spark(
            data, tracker, models, info.versions, scoring, day, spark_master, quarantine
        )
    else:
        result = _load(data, quarantine=quarantine)
        line = _score_run(result.dataset, models, info.versions, scoring, day, str(data.absolute()))
    out.print(line)


def spark_source(data: Path) -> str:
    """Return DATA as Spark reads it: an absolute local path, a lake URI, or a prefix.

    Typer hands DATA over as a :class:`~pathlib.Path`, which collapses the ``//`` of a
    URI (``s3a://lake/x`` becomes ``s3a:/lake/x``); it is restored here. A catalog prefix
    such as ``lake.`` is kept as given.
    """
    text = str(data)
    uri = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):/+", text)
    if uri is not None:
        scheme, rest = uri.group(1), text[uri.end() :]
        return f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"
    return str(data.absolute()) if data.exists() else text


def _score_spark(
    data: Path,
    tracker: Any,
    models: Any,
    versions: Any,
    scoring: Any,
    as_of: date | None,
    master: str,
    quarantine: Path | None,
) -> str:
    """Score ``data`` on Spark into this process's store; return the one-line summary."""
    from churnrisk.features import panel_features
    from churnrisk.scoring_spark import spark_scorer
    from churnrisk.spark import build_features_spark

    # Python workers (spark_udf, mapInPandas) must run this interpreter, not "python3"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session, ds = _load_spark(data, master, quarantine)
    scorer = spark_scorer(
        session,
        models,
        tracker=tracker,
        versions=versions,
        config=scoring,
        features=lambda dates: build_features_spark(
            ds, dates, features=panel_features(models.vocabulary)
        ),
        attributes=lambda: ds.dataframe("accounts"),
        source=ds.source,
    )
    return _score_run(ds, models, versions, scoring, as_of, ds.source, scorer=scorer)


def _score_run(
    ds: Any,
    models: Any,
    versions: Any,
    scoring: Any,
    as_of: date | None,
    source: str,
    *,
    scorer: Any = None,
) -> str:
    """Score ``ds`` into this process's store; return the one-line summary."""
    from churnrisk.scoring import run_scoring
    from churnrisk.settings import get_settings
    from churnrisk.store import ScoreStore, StoreError

    store = ScoreStore(get_settings().store_url)
    try:
        store.upgrade()
        record = run_scoring(
            ds,
            models,
            store,
            as_of=as_of,
            config=scoring,
            versions=versions,
            source=source,
            step=_steps(),
            scorer=scorer,
        )
        totals = store.totals(record.run_id)
        trend = store.trend(limit=2)
    finally:
        store.close()
    if totals is None:  # pragma: no cover - the run was written just above
        raise StoreError(f"run {record.run_id} vanished from {store.url} right after its write")
    tiers = ", ".join(f"{t['accounts']:,} {t['tier']}" for t in totals["tiers"])
    at_risk = f"MRR at risk {totals['mrr_at_risk']:,.0f}"
    if len(trend) == 2 and trend[1]["run"].run_id == record.run_id:
        before = trend[0]
        change = trend[1]["mrr_at_risk"] - before["mrr_at_risk"]
        at_risk += f", {change:+,.0f} since {before['run'].as_of}"
    return (
        f"scored {record.accounts:,} accounts as of {record.as_of} ({tiers}; {at_risk})"
        f" with churnrisk-churn v{record.churn_version}; run {record.run_id} in {store.url}"
    )


# --------------------------------------------------------------------------- serve


def _service_store() -> Any:
    """Open this process's score store (CHURNRISK_DATABASE_URL, else the data dir), migrated."""
    from churnrisk.settings import get_settings
    from churnrisk.store import ScoreStore

    store = ScoreStore(get_settings().store_url)
    store.upgrade()
    return store


def _shown_host(host: str) -> str:
    """Return an address a browser on this machine can open for ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data source of /v1/metrics (a folder of tables or a DuckDB file);"
            " default: CHURNRISK_DATA, else the data the current run was scored from."
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
) -> None:
    """Serve the API and the dashboard (the score store is migrated first)."""
    serve_api(host=host, port=port, workers=workers, data=data, access_log=access_log)


def check_port(host: str, port: int) -> None:
    """Raise a one-line :class:`ConfigError` when ``churnrisk serve`` could not listen there.

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


def serve_api(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    data: Path | None = None,
    access_log: bool = True,
    key: str | None = None,
) -> None:
    """Migrate the score store, print the addresses and run uvicorn until stopped.

    Settings reach the workers through the environment: ``data`` is passed on as
    ``CHURNRISK_DATA``. ``key``, when given, is printed in the dashboard address (its
    ``#key=`` fragment never reaches a server or a log). A port that cannot be listened
    on ends it first, with one line (:func:`check_port`).
    """
    import uvicorn

    from churnrisk.settings import get_settings

    check_port(host, port)
    if data is not None:
        if not data.exists():
            raise ConfigError(f"--data {data}: no such file or folder")
        os.environ["CHURNRISK_DATA"] = str(data.absolute())
        get_settings.cache_clear()
    settings = get_settings()
    store = _service_store()
    store_url = store.url
    store.close()
    base = f"http://{_shown_host(host)}:{port}"
    metrics_from = settings.data or "the data of the current run (--data PATH overrides)"
    out.print(
        f"serving churnrisk at {base} with {workers} worker(s); scores from {store_url};"
        f" metrics from {metrics_from}",
        markup=False,
    )
    fragment = f"#key={key}" if key else ""
    out.print(f"dashboard: {base}/{fragment}  API docs: {base}/docs  (Ctrl+C stops)", markup=False)
    uvicorn.run(
        "churnrisk.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        server_header=False,
    )


# --------------------------------------------------------------------------- apikey

apikey_app = _commands("API keys of the service: create, list, revoke.")
app.add_typer(apikey_app, name="apikey")


def create_api_key(name: str, scope: str = "read") -> tuple[str, Any]:
    """Create an API key in this process's score store; return its text and record."""
    store = _service_store()
    try:
        key, record = store.create_key(name, scope)
    finally:
        store.close()
    return key, record


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. crm-sync.")],
    scope: Annotated[
        Literal["read", "admin"], typer.Option(help="read: the /v1 reads; admin: also keys.")
    ] = "read",
) -> None:
    """Create an API key and print it, once: only its hash is stored."""
    key, record = create_api_key(name, scope)
    out.print(key, markup=False)
    err.print(
        f"created {record.scope} key {record.key_id} ({record.name}); copy it now: it cannot"
        " be shown again",
        markup=False,
    )


@apikey_app.command("list")
def apikey_list() -> None:
    """List the API keys (id, name, scope, created, revoked); never their text."""
    store = _service_store()
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if not keys:
        out.print("no API keys yet: `churnrisk apikey create --name NAME` makes one")
        return
    table = Table("key id", "name", "scope", "created", "revoked", title=f"{len(keys)} API key(s)")
    for k in keys:
        revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else ""
        created = k.created_at.isoformat(timespec="seconds")
        table.add_row(k.key_id, k.name, k.scope, created, revoked)
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key id to revoke.")]) -> None:
    """Revoke an API key; running services stop accepting it within five seconds."""
    store = _service_store()
    try:
        revoked = store.revoke_key(key_id)
    finally:
        store.close()
    if not revoked:
        raise ConfigError(f"no active API key {key_id!r}: `churnrisk apikey list` shows them")
    out.print(f"revoked API key {key_id}; services stop accepting it within five seconds")


# --------------------------------------------------------------------------- store

store_app = _commands("The score store: schema migrations.")
app.add_typer(store_app, name="store")


@store_app.command("upgrade")
def store_upgrade() -> None:
    """Create or migrate the score store's schema to this version's revision."""
    store = _service_store()
    try:
        revision = store.revision()
    finally:
        store.close()
    out.print(f"score store {store.url} is at schema revision {revision}", markup=False)


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")],
    accounts: Annotated[int, typer.Option(help="Accounts in the generated world.")] = 5000,
    months: Annotated[int, typer.Option(help="Months of history, ending 2026-10-31.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    config: ConfigOpt = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the dashboard at the end.")
    ] = True,
    host: Annotated[str, typer.Option(help="Address the dashboard listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the dashboard.", min=1, max=65535)] = 8000,
) -> None:
    """Run the whole job on a generated world: validate, features, metrics, train, score, serve.

    Everything lands in the --out folder: the data, the reports, the MLflow store and the
    score store (unless MLFLOW_TRACKING_URI or CHURNRISK_DATABASE_URL point elsewhere).
    """
    from churnrisk.dataset import observation_end
    from churnrisk.features import as_of_dates, write_features
    from churnrisk.metrics import last_complete_month
    from churnrisk.pipeline import train as run_train
    from churnrisk.settings import get_settings
    from churnrisk.tracking import Tracker, fingerprint, tracking_uri

    if serve_after:  # find out now, not after a minute of work
        check_port(host, port)
    run = load_run_config(config)
    out_dir = out_dir.absolute()
    # The demo keeps its stores beside its data; workers of `serve` inherit this too.
    os.environ["CHURNRISK_DATA_DIR"] = str(out_dir)
    get_settings.cache_clear()
    data_dir = out_dir / "data"
    start = date(2026 - (months + 1) // 12, (10 - months) % 12 + 1, 1)
    summary = _generate(data_dir, accounts, months, start, seed, "parquet")
    out.print(
        f"1/7 generated {summary.rows['accounts']:,} accounts, "
        f"{summary.rows['events']:,} events ({summary.start} to {summary.end}) in {data_dir}"
    )

    report_file = out_dir / "validation.json"
    result = _load(data_dir, quarantine=out_dir / "quarantine")
    report_file.write_text(json.dumps(result.report.to_dict(), indent=2), encoding="utf-8")
    out.print(f"2/7 validated: exit code {result.report.exit_code}, report in {report_file}")

    ds = result.dataset
    span = last_complete_month(ds)
    dates = as_of_dates(date(span.start.year - 1, span.start.month, 1), span.start, "monthly")
    panel = out_dir / "features.parquet"
    with _working(f"building features for {len(dates)} monthly as-of dates"):
        rows = write_features(ds, dates, panel, labels=run.labels)
    out.print(f"3/7 built {rows:,} feature rows ({dates[0]} to {dates[-1]}) in {panel}")

    values = _metrics(ds, span.label, None)
    metrics_file = out_dir / "metrics.json"
    metrics_file.write_text(json.dumps(values, indent=2, default=str), encoding="utf-8")
    print_metrics(values)
    out.print(f"4/7 metrics for {span.label} in {metrics_file}")

    uri = get_settings().mlflow_tracking_uri or tracking_uri(out_dir)
    tracker = Tracker(uri)
    outcome = run_train(ds, run, tracker=tracker, fingerprint=fingerprint(data_dir), step=_steps())
    print_leaderboard(outcome.backtest)
    verdict = "champion" if outcome.decision.promoted else "challenger"
    out.print(
        f"5/7 trained and backtested; churnrisk-churn v{outcome.versions.churn} is {verdict}"
        f" ({outcome.decision.reason}); run {outcome.versions.run_id} in {uri}"
    )
    if outcome.decision.promoted:
        models, versions = outcome.models, outcome.versions
    else:
        info = tracker.champion_info()
        if info is None:
            raise ConfigError(f"no champion model in {uri} after training")
        models, versions = tracker.load_champion(version=info.versions.churn), info.versions
    # Three earlier monthly runs first, so the dashboard has trends and score changes.
    end = observation_end(ds)
    backfill = [_months_before(end, n) for n in (3, 2, 1)]
    for day in backfill:
        _score_run(ds, models, versions, run.scoring, day, str(data_dir))
    line = _score_run(ds, models, versions, run.scoring, None, str(data_dir))
    out.print(f"6/7 backfilled monthly runs as of {', '.join(map(str, backfill))}; then {line}")

    key, record = create_api_key("demo", "read")
    out.print(f"7/7 created read key {record.key_id} for the dashboard: {key}", markup=False)
    if uri.startswith("sqlite:///"):
        out.print(f"see the runs with: mlflow ui --backend-store-uri {uri}")
    out.print(f"demo done: everything is in {out_dir}")
    if serve_after:
        serve_api(host=host, port=port, data=data_dir, key=key)


def _months_before(day: date, months: int) -> date:
    """Return the first day of the month ``months`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning domain errors into a one-line message and an exit code.

    Usage errors are Typer's own (exit 2); :class:`~churnrisk.errors.DataError` (the input
    cannot be used) exits 2 and any other :class:`~churnrisk.errors.ChurnRiskError` exits 1.
    """
    # This is an offline tool: no usage telemetry from MLflow unless the user opts in.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        app(args=argv, prog_name="churnrisk")
    except DataError as exc:  # escaped: messages hold brackets (local[*], churnrisk[spark])
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except ChurnRiskError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)
