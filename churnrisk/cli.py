"""The ``churnrisk`` command line: thin commands that parse, call a workflow and summarise.

A command calls one workflow (:mod:`churnrisk.jobs`, :mod:`churnrisk.pipeline`) or one
stage with the process's settings, shows its progress on standard error (:class:`Shown`)
and prints a summary; it sequences no stages of its own.

Every command that reads a data source validates it first, the same way as
``churnrisk validate``, and says what it set aside. Errors end the command with a
one-line message on standard error and no traceback: exit code 2 when the input cannot
be used at all, 1 for any other domain error (bad option values, unknown names).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churnrisk import jobs
from churnrisk.config import LabelConfig, load_run_config
from churnrisk.errors import ChurnRiskError, ConfigError, DataError

if TYPE_CHECKING:
    from churnrisk.settings import Settings


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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


class Shown:
    """The progress of a workflow (:class:`churnrisk.jobs.Progress`) on standard error.

    Steps are dim lines (``… building the panel``), a single long step is a spinner, a
    counted one a bar; what a load set aside is said as soon as it is known.
    """

    def step(self, message: str) -> None:
        """Print the step as a dim line."""
        err.print(f"[dim]… {message}[/]")

    def working(self, message: str) -> Any:
        """Show a spinner while the step runs."""
        return _working(message)

    @contextmanager
    def counting(self, message: str, total: int | None) -> Iterator[jobs.Count]:
        """Show a bar of ``total`` items while the step runs."""
        with _progress() as progress:
            task = progress.add_task(message, total=total)
            yield lambda n: progress.advance(task, n)

    def loaded(self, report: Any, quarantine: Path | None, source: Path | None) -> None:
        """Say which rows were set aside, and that ``churnrisk validate`` lists every cause."""
        hint = f"`churnrisk validate {source}` lists every cause" if source is not None else ""
        _say_set_aside(report, quarantine, hint)


SHOWN = Shown()


def _settings() -> Settings:
    """Return this process's settings (read once from the environment)."""
    from churnrisk.settings import get_settings

    return get_settings()


def _load(data: Path, *, quarantine: Path | None = None) -> Any:
    """Validate ``data`` and return the load result, saying what was set aside.

    A required table left without a valid row ends the command (exit 2) after saying
    what was set aside and why.
    """
    return jobs.load_data(data, quarantine=quarantine, progress=SHOWN)


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


def _load_spark(data: Path, master: str, quarantine: Path | None) -> Any:
    """Open a Spark session, load and check ``data`` on it; return the dataset."""
    session = jobs.open_spark(master)
    return jobs.load_spark_data(spark_source(data), session, quarantine=quarantine, progress=SHOWN)


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
    summary = jobs.generate(
        out_dir,
        shape=shape,
        accounts=accounts,
        months=months,
        start=_parse_date(start, "--start"),
        seed=seed,
        fmt=fmt,
        progress=SHOWN,
    )
    total = sum(summary.rows.values())
    out.print(
        f"generated {summary.rows['accounts']:,} accounts and {total:,} rows in all"
        f" ({summary.shape} world, {summary.start} to {summary.end}, {fmt}) in {summary.out}"
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

    ds = _load_spark(data, master, quarantine)
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
    trained = jobs.train(
        data,
        _settings(),
        load_run_config(config),
        force=force,
        allow_leaks=allow_leak or (),
        quarantine=quarantine,
        progress=SHOWN,
    )
    outcome = trained.outcome
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
        f" in {trained.tracking_uri}; models churnrisk-churn v{outcome.versions.churn}, {clv}"
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
    done = jobs.backtest(
        data,
        _settings(),
        load_run_config(config),
        allow_leaks=allow_leak or (),
        quarantine=quarantine,
        progress=SHOWN,
    )
    bt = done.outcome.backtest
    if fmt == "json":
        out.print_json(json.dumps(bt.to_dict()))
        return
    print_leaderboard(bt)
    if bt.plan is not None:
        out.print(bt.plan.line(), markup=False)
    out.print(f"backtested {len(bt.folds)} folds; run {done.outcome.run_id} in {done.tracking_uri}")


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
    day = _parse_date(as_of, "--as-of") if as_of else None
    explained = jobs.explain(data, _settings(), account_id, as_of=day, top=top, progress=SHOWN)
    score = explained.score
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
        ("drivers: what CS can act on, moving this score", "driver", explained.drivers),
        (
            "context: who the account is and where its contract stands (not a driver)",
            "context",
            explained.context,
        ),
    )
    for label, head, items in labels:
        out.print(label, markup=False)
        table = Table(head, "contribution (log-odds)")
        for d in items:
            table.add_row(d.text, f"{d.contribution:+.3f}")
        out.print(table)
    overall = explained.overall.head(5)
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
    outcome = jobs.score(
        spark_source(data) if engine == "spark" else data,
        _settings(),
        as_of=day,
        config=run.scoring if run is not None else None,
        quarantine=quarantine,
        engine=engine,
        spark_master=spark_master,
        progress=SHOWN,
    )
    out.print(score_line(outcome))
    if outcome.alerts is not None:
        out.print(outcome.alerts.summary())


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


def score_line(outcome: jobs.ScoreOutcome) -> str:
    """Return the one-line summary of a scoring run: tiers, MRR at risk and its change."""
    record = outcome.run
    tiers = ", ".join(f"{accounts:,} {tier}" for tier, accounts in outcome.tiers)
    at_risk = f"MRR at risk {outcome.mrr_at_risk:,.0f}"
    if outcome.change is not None:
        at_risk += f", {outcome.change:+,.0f} since {outcome.since}"
    imported = (
        ""
        if outcome.activities is None
        else f"; {outcome.activities:,} CS activities imported from before {record.as_of}"
    )
    return (
        f"scored {record.accounts:,} accounts as of {record.as_of} ({tiers}; {at_risk})"
        f" with churnrisk-churn v{record.churn_version}; run {record.run_id} in"
        f" {outcome.store_url}{imported}"
    )


# --------------------------------------------------------------------------- review


@app.command()
def scorecard(
    data: DataArg,
    k: Annotated[
        int | None,
        typer.Option(
            help="Size of the list each run is graded on (default: the champion's backtest"
            " capacity_k, the accounts CS can contact per run; 100 by default).",
            min=1,
        ),
    ] = None,
    runs: Annotated[int, typer.Option(help="How many as-of dates to read.", min=1)] = 104,
    plot: Annotated[
        Path | None, typer.Option(help="Write the reliability and tier plot here (PNG).")
    ] = None,
    fmt: Annotated[
        Literal["json", "table"], typer.Option("--format", help="Output format.")
    ] = "table",
    quarantine: QuarantineOpt = None,
) -> None:
    """Grade the kept scoring runs against what happened, and check the features' drift."""
    done = jobs.review(data, _settings(), k=k, runs=runs, quarantine=quarantine, progress=SHOWN)
    card = done.card
    k = card.k
    if plot is not None:
        card.figure().savefig(plot, dpi=110)
    if fmt == "json":
        out.print_json(json.dumps(done.to_dict(), default=str))
        return
    tiers = Table("tier", "accounts scored", "churned", "realised churn rate")
    for t in card.tiers:
        rate = "-" if t.rate is None else f"{t.rate:.1%}"
        tiers.add_row(t.tier, f"{t.accounts:,}", f"{t.churned:,}", rate)
    out.print(tiers)
    graded = Table("as of", "accounts", "churned", f"precision@{k}", f"recall@{k}", "MRR caught")
    for r in card.runs:
        graded.add_row(
            str(r.as_of),
            f"{r.accounts:,}",
            f"{r.churned:,}",
            f"{r.precision_at_k:.1%}",
            "-" if r.recall_at_k is None else f"{r.recall_at_k:.1%}",
            "-" if r.mrr_caught is None else f"{r.mrr_caught:.1%}",
        )
    out.print(graded)
    lead = card.lead
    early = (
        f"median {lead.median_days:,.0f} days before the churn"
        if lead.median_days is not None
        else "none flagged"
    )
    out.print(
        f"flagged early: {lead.flagged:,} of {lead.churns:,} churns were high risk first; {early}",
        markup=False,
    )
    for warning in jobs.drift_warnings(done.drift, done.latest.as_of):
        err.print(f"[yellow]warning:[/] {warning}")
    where = f"; plot in {plot}" if plot is not None else ""
    out.print(
        f"graded {card.graded_runs} run(s) ({card.open_runs} still open) from {done.store_url}"
        f"{where}",
        markup=False,
    )


@app.command()
def winback(
    data: DataArg,
    as_of: Annotated[
        str | None, typer.Option(help="As-of date (default: the day after the data ends).")
    ] = None,
    days: Annotated[int, typer.Option(help="Churned within this many days.", min=1)] = 90,
    recent: Annotated[
        int, typer.Option(help="Used the product within this many days: still using.", min=1)
    ] = 14,
    fmt: Annotated[
        Literal["json", "table"], typer.Option("--format", help="Output format.")
    ] = "table",
    quarantine: QuarantineOpt = None,
) -> None:
    """List the accounts that churned lately, marked when they still use the product."""
    day = _parse_date(as_of, "--as-of") if as_of else None
    found = jobs.win_back(
        data,
        _settings(),
        as_of=day,
        days=days,
        recent_days=recent,
        quarantine=quarantine,
        progress=SHOWN,
    )
    rows = found.accounts
    if fmt == "json":
        out.print_json(json.dumps(rows.to_dict("records"), default=str))
        return
    table = Table("account", "churned", "last MRR", "used since", "still using", "last drivers")
    for r in rows.to_dict("records"):
        drivers = r.get("last_drivers")
        table.add_row(
            f"{r['account_id']} {r['name'] or ''}".strip(),
            str(r["churn_day"]),
            f"{r['last_mrr']:,.0f}",
            f"{r['active_days_after_end']:,} day(s)",
            "yes" if r["still_using"] else "no",
            "; ".join(drivers[:2]) if isinstance(drivers, list) else "-",
        )
    out.print(table)
    using = int(rows["still_using"].sum()) if len(rows) else 0
    out.print(
        f"{len(rows):,} account(s) churned in the {days} days before {found.as_of};"
        f" {using:,} still use the product",
        markup=False,
    )


alerts_app = _commands("Alerts after each scoring run: webhooks and e-mail digests.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("test")
def alerts_test() -> None:
    """Send a sample alert to every webhook and recipient of CHURNRISK_ALERTS."""
    sent = jobs.send_sample(_settings())
    out.print(sent.summary(), markup=False)
    if any(d.status == "failed" for d in sent.deliveries):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- serve


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
    settings = _settings()
    if data is not None:
        jobs.check_port(host, port)  # a busy port is said first, as without --data
        if not data.exists():
            raise ConfigError(f"--data {data}: no such file or folder")
        settings = settings.model_copy(update={"data": data.absolute()})
    jobs.serve(
        settings, host=host, port=port, workers=workers, access_log=access_log, announce=_announce
    )


def _announce(service: jobs.Service) -> None:
    """Print where the service is about to listen and what it serves."""
    metrics_from = service.data or "the data of the current run (--data PATH overrides)"
    out.print(
        f"serving churnrisk at {service.base} with {service.workers} worker(s); scores from"
        f" {service.store_url}; metrics from {metrics_from}",
        markup=False,
    )
    base, fragment = service.base, f"#key={service.key}" if service.key else ""
    out.print(f"dashboard: {base}/{fragment}  API docs: {base}/docs  (Ctrl+C stops)", markup=False)


# --------------------------------------------------------------------------- apikey

apikey_app = _commands("API keys of the service: create, list, revoke.")
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. crm-sync.")],
    scope: Annotated[
        Literal["read", "write", "admin"],
        typer.Option(help="read: the /v1 reads; write: also CS activities; admin: also keys."),
    ] = "read",
) -> None:
    """Create an API key and print it, once: only its hash is stored."""
    created = jobs.create_api_key(_settings(), name, scope)
    record = created.record
    out.print(created.key, markup=False)
    err.print(
        f"created {record.scope} key {record.key_id} ({record.name}); copy it now: it cannot"
        " be shown again",
        markup=False,
    )


@apikey_app.command("list")
def apikey_list() -> None:
    """List the API keys (id, name, scope, created, revoked); never their text."""
    keys = jobs.list_api_keys(_settings())
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
    if not jobs.revoke_api_key(_settings(), key_id):
        raise ConfigError(f"no active API key {key_id!r}: `churnrisk apikey list` shows them")
    out.print(f"revoked API key {key_id}; services stop accepting it within five seconds")


# --------------------------------------------------------------------------- store

store_app = _commands("The score store: schema migrations.")
app.add_typer(store_app, name="store")


@store_app.command("upgrade")
def store_upgrade() -> None:
    """Create or migrate the score store's schema to this version's revision."""
    status = jobs.upgrade_store(_settings())
    out.print(f"score store {status.url} is at schema revision {status.revision}", markup=False)


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")],
    accounts: Annotated[
        int, typer.Option(help="Accounts in the generated world.")
    ] = jobs.DEMO_ACCOUNTS,
    months: Annotated[
        int, typer.Option(help="Months of history, ending 2026-10-31.")
    ] = jobs.DEMO_MONTHS,
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
    jobs.demo(
        out_dir,
        _settings(),
        accounts=accounts,
        months=months,
        seed=seed,
        config=load_run_config(config),
        listen=(host, port) if serve_after else None,
        progress=SHOWN,
        done=_say_demo,
    )


def _say_demo(stage: jobs.DemoStage) -> None:
    """Print the line (and table) of a stage of the demo as it completes."""
    from churnrisk.generate import GenerateSummary

    if isinstance(stage, GenerateSummary):
        out.print(
            f"1/8 generated {stage.rows['accounts']:,} accounts, {stage.rows['events']:,}"
            f" events ({stage.start} to {stage.end}) in {stage.out}"
        )
    elif isinstance(stage, jobs.Validated):
        out.print(f"2/8 validated: exit code {stage.report.exit_code}, report in {stage.path}")
    elif isinstance(stage, jobs.PanelWritten):
        out.print(
            f"3/8 built {stage.rows:,} feature rows ({stage.first} to {stage.last}) in {stage.path}"
        )
    elif isinstance(stage, jobs.MetricsWritten):
        print_metrics(stage.values)
        out.print(f"4/8 metrics for {stage.period} in {stage.path}")
    elif isinstance(stage, jobs.Trained):
        outcome = stage.outcome
        print_leaderboard(outcome.backtest)
        verdict = "champion" if outcome.decision.promoted else "challenger"
        out.print(
            f"5/8 trained and backtested; churnrisk-churn v{outcome.versions.churn} is"
            f" {verdict} ({outcome.decision.reason}); run {outcome.versions.run_id} in"
            f" {stage.tracking_uri}"
        )
    elif isinstance(stage, jobs.Backfilled):
        dates = ", ".join(map(str, stage.dates))
        out.print(f"6/8 backfilled monthly runs as of {dates}; then {score_line(stage.current)}")
    elif isinstance(stage, jobs.ScorecardWritten):
        card = stage.reviewed.card
        for warning in jobs.drift_warnings(stage.reviewed.drift, stage.reviewed.latest.as_of):
            err.print(f"[yellow]warning:[/] {warning}")
        out.print(
            f"7/8 graded {card.graded_runs} run(s) ({card.open_runs} still open): scorecard in"
            f" {stage.json}, plot in {stage.png}",
            markup=False,
        )
    elif isinstance(stage, jobs.CreatedKey):
        key, record = stage.key, stage.record
        out.print(
            f"8/8 created {record.scope} key {record.key_id} for the dashboard (it may record"
            f" CS activities; default playbook): {key}",
            markup=False,
        )
    elif isinstance(stage, jobs.DemoOutcome):
        uri = stage.trained.tracking_uri
        if uri.startswith("sqlite:///"):
            out.print(f"see the runs with: mlflow ui --backend-store-uri {uri}")
        out.print(f"demo done: everything is in {stage.out_dir}")
    else:
        _announce(stage)


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
