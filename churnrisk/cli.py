"""The ``churnrisk`` command line: thin commands that parse, call a stage and summarise.

Every command that reads a data source validates it first, the same way as
``churnrisk validate``, and says what it set aside. Errors end the command with a
one-line message on standard error and no traceback: exit code 2 when the input cannot
be used at all, 1 for any other domain error (bad option values, unknown names).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churnrisk.config import LabelConfig, load_run_config
from churnrisk.errors import ChurnRiskError, ConfigError, DataError

app = typer.Typer(
    name="churnrisk",
    help="Churn risk, CLV and SaaS health metrics from your own subscription data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(
    help="The point-in-time feature registry and builder.", no_args_is_help=True
)
app.add_typer(features_app, name="features")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

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
    """Validate ``data`` and return the load result, saying what was set aside."""
    from churnrisk.validate import load

    with _working(f"validating {data}"):
        result = load(data, quarantine_dir=quarantine)
    report = result.report
    set_aside = {name: t.quarantined for name, t in report.tables.items() if t.quarantined}
    if set_aside:
        parts = ", ".join(f"{name} {n:,}" for name, n in set_aside.items())
        where = f"; quarantined rows in {quarantine}" if quarantine else ""
        err.print(
            f"[yellow]set aside {sum(set_aside.values()):,} bad row(s)[/] ({parts}){where};"
            f" `churnrisk validate {data}` lists them"
        )
    if report.absent:
        err.print(
            f"[dim]not provided: {', '.join(report.absent)} "
            "(the features and metrics that need them are null)[/]"
        )
    return result


# --------------------------------------------------------------------------- generate


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the tables into.")],
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 5000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] = (
        "2024-11-01"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    fmt: Annotated[
        Literal["csv", "parquet"], typer.Option("--format", help="File format.")
    ] = "parquet",
) -> None:
    """Write a synthetic B2B SaaS world: all seven contract tables, with planted churn signal."""
    summary = _generate(out_dir, accounts, months, _parse_date(start, "--start"), seed, fmt)
    total = sum(summary.rows.values())
    out.print(
        f"generated {summary.rows['accounts']:,} accounts and {total:,} rows in all"
        f" ({summary.start} to {summary.end}, {fmt}) in {summary.out}"
    )


def _generate(
    out_dir: Path,
    accounts: int,
    months: int,
    start: date,
    seed: int,
    fmt: Literal["csv", "parquet"],
) -> Any:
    from churnrisk.generate import generate_world

    with _progress() as progress:
        task = progress.add_task("generating accounts", total=accounts)
        return generate_world(
            out_dir,
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
    quarantine: Annotated[
        Path | None, typer.Option(help="Write the rows that break a rule here, one CSV a table.")
    ] = None,
) -> None:
    """Check a data source against the contract; exit 0 clean, 1 rows set aside, 2 unusable."""
    from churnrisk.validate import load

    with _working(f"validating {data}"):
        result = load(data, quarantine_dir=quarantine)
    rep = result.report
    table = Table("table", "rows", "valid", "quarantined", title=f"validation of {data}")
    for name, t in rep.tables.items():
        table.add_row(name, f"{t.rows:,}", f"{t.valid:,}", f"{t.quarantined:,}")
    out.print(table)
    for problem in rep.problems[:20]:
        out.print(
            f"  {problem.table} row {problem.row}: {problem.column} {problem.rule}"
            f" ({problem.value!r})"
        )
    if len(rep.problems) > 20:
        out.print(f"  … and {len(rep.problems) - 20:,} more problems (see --report)")
    for warning in rep.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
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
    raise typer.Exit(rep.exit_code)


# --------------------------------------------------------------------------- features


@features_app.command("list")
def features_list() -> None:
    """List every registered feature: name, family, window and meaning."""
    from churnrisk.features import FEATURES

    table = Table(title=f"{len(FEATURES)} features")
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
    for key in ("name", "family", "window_days", "dtype", "table", "meaning"):
        out.print(f"{key:12} {getattr(f, key, None)}")


@features_app.command("build")
def features_build(
    data: DataArg,
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
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
    quarantine: Annotated[
        Path | None, typer.Option(help="Write rows that break a rule here.")
    ] = None,
) -> None:
    """Build point-in-time features: one row per active account and as-of date."""
    from churnrisk.features import write_features

    dates = _as_of_option(as_of, start, end, freq)
    run = load_run_config(config)
    result = _load(data, quarantine=quarantine)
    labels: LabelConfig | None = run.labels if with_labels else None
    with _working(f"building features for {len(dates)} as-of date(s)"):
        rows = write_features(result.dataset, dates, out_file, labels=labels)
    span = str(dates[0]) if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    out.print(
        f"built {rows:,} rows (account x as-of, {span}, {len(dates)} date(s))"
        f"{' with labels' if labels else ''} in {out_file}"
    )


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
    quarantine: Annotated[
        Path | None, typer.Option(help="Write rows that break a rule here.")
    ] = None,
) -> None:
    """Compute the standard SaaS metrics of a period: churn, retention, MRR, NRR, NPS and more."""
    result = _load(data, quarantine=quarantine)
    values = _metrics(result.dataset, period, segment)
    if fmt == "json":
        out.print_json(json.dumps(values, default=str))
        return
    print_metrics(values)


def _metrics(ds: Any, period: str | None, segment: str | None) -> dict[str, Any]:
    from churnrisk.metrics import compute_metrics, last_complete_month, parse_period

    span = parse_period(period) if period else last_complete_month(ds)
    with _working(f"computing metrics for {span.label}"):
        return compute_metrics(ds, span, segment=segment)


def print_metrics(values: dict[str, Any]) -> None:
    """Print a metrics dictionary as a table, with the reason beside every null."""
    from churnrisk.metrics import METRIC_KEYS

    notes = values.get("notes") or {}
    seg = values.get("segment")
    title = f"metrics for {values['period']}" + (f", segment {seg}" if seg else "")
    table = Table("metric", "value", "note", title=title)
    for key in METRIC_KEYS:
        value = values[key]
        if value is None:
            shown = "—"
        elif isinstance(value, float):
            shown = f"{value:,.2f}" if key != "dau_mau" else f"{value:.3f}"
        else:
            shown = f"{value:,}"
        note = notes.get(key, "") if isinstance(notes, dict) else ""
        table.add_row(key, shown, str(note))
    out.print(table)


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")],
    accounts: Annotated[int, typer.Option(help="Accounts in the generated world.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate a world, validate it, build a labelled feature panel, show last month's metrics."""
    from churnrisk.features import as_of_dates, write_features
    from churnrisk.metrics import last_complete_month

    data_dir = out_dir / "data"
    summary = _generate(data_dir, accounts, 24, date(2024, 11, 1), seed, "parquet")
    out.print(
        f"1/4 generated {summary.rows['accounts']:,} accounts, "
        f"{summary.rows['events']:,} events in {data_dir}"
    )

    report_file = out_dir / "validation.json"
    result = _load(data_dir, quarantine=out_dir / "quarantine")
    report_file.write_text(json.dumps(result.report.to_dict(), indent=2), encoding="utf-8")
    out.print(f"2/4 validated: exit code {result.report.exit_code}, report in {report_file}")

    ds = result.dataset
    span = last_complete_month(ds)
    first = date(span.start.year - 1, span.start.month, 1)
    dates = as_of_dates(first, span.start, "monthly")
    panel = out_dir / "features.parquet"
    with _working(f"building features for {len(dates)} monthly as-of dates"):
        rows = write_features(ds, dates, panel, labels=LabelConfig())
    out.print(f"3/4 built {rows:,} feature rows ({dates[0]} to {dates[-1]}) in {panel}")

    values = _metrics(ds, span.label, None)
    metrics_file = out_dir / "metrics.json"
    metrics_file.write_text(json.dumps(values, indent=2, default=str), encoding="utf-8")
    print_metrics(values)
    out.print(f"4/4 metrics for {span.label} in {metrics_file}")
    out.print(f"demo done: everything is in {out_dir}")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning domain errors into a one-line message and an exit code.

    Usage errors are Typer's own (exit 2); :class:`~churnrisk.errors.DataError` (the input
    cannot be used) exits 2 and any other :class:`~churnrisk.errors.ChurnRiskError` exits 1.
    """
    try:
        app(args=argv, prog_name="churnrisk")
    except DataError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(2)
    except ChurnRiskError as exc:
        err.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
