"""The demo: the whole job on a generated world, stage by stage, then the dashboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from churnrisk.config import RunConfig, ScoringConfig
from churnrisk.jobs.modelling import Trained, train_dataset
from churnrisk.jobs.progress import QUIET, Progress
from churnrisk.jobs.scoring import Champion, ScoreOutcome, load_champion, score_dataset
from churnrisk.jobs.serving import Service, check_port, serve
from churnrisk.jobs.sources import generate, load_data
from churnrisk.jobs.stores import CreatedKey, create_api_key, open_store, open_tracker
from churnrisk.review import Reviewed, scorecard_of
from churnrisk.settings import Settings

if TYPE_CHECKING:
    from churnrisk.dataset import Dataset
    from churnrisk.generate import GenerateSummary


DEMO_ACCOUNTS = 5000
DEMO_MONTHS = 36
DEMO_END = date(2026, 10, 31)
"""The last day of the demo's history."""

BACKFILL_MONTHS = 6
"""Monthly runs the demo scores before the current one. The label window (90 days and a
grace of 30) of the oldest three has closed by the end of the history, so the demo's
scorecard grades them; the younger ones give the dashboard its recent trend."""


def demo_start(months: int) -> date:
    """Return the first day of a history of ``months`` whole months ending on :data:`DEMO_END`."""
    return months_before(date(DEMO_END.year, DEMO_END.month, 1), months - 1)


def months_before(day: date, months: int) -> date:
    """Return the first day of the month ``months`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Validated:
    """The demo's data was checked; the JSON report is in ``path``."""

    report: Any
    path: Path


@dataclass(frozen=True)
class PanelWritten:
    """The demo's feature panel: ``rows`` rows on monthly as-of dates ``first`` to ``last``."""

    rows: int
    first: date
    last: date
    path: Path


@dataclass(frozen=True)
class MetricsWritten:
    """The metrics of the demo's last complete month ``period``, also written to ``path``."""

    values: dict[str, Any]
    period: str
    path: Path


@dataclass(frozen=True)
class Backfilled:
    """The demo's scoring runs: monthly runs as of ``dates``, then the current run."""

    dates: tuple[date, ...]
    runs: tuple[ScoreOutcome, ...]

    @property
    def current(self) -> ScoreOutcome:
        """The last run: the current one."""
        return self.runs[-1]


@dataclass(frozen=True)
class ScorecardWritten:
    """The scorecard of the demo's runs (:class:`~churnrisk.review.Reviewed`).

    Written as ``json`` (the document of ``GET /v1/scorecard``) and plotted in ``png``.
    """

    reviewed: Reviewed
    json: Path
    png: Path


@dataclass(frozen=True)
class DemoOutcome:
    """Everything the demo made; every file is under ``out_dir``.

    ``settings`` are those the demo ran with: the caller's, with the data dir (the
    MLflow and score stores, unless the caller's settings point elsewhere) in
    ``out_dir`` and ``data`` set to the generated world.
    """

    out_dir: Path
    settings: Settings
    world: GenerateSummary
    validated: Validated
    panel: PanelWritten
    metrics: MetricsWritten
    trained: Trained
    scored: Backfilled
    scorecard: ScorecardWritten
    key: CreatedKey


DemoStage: TypeAlias = (
    "GenerateSummary | Validated | PanelWritten | MetricsWritten | Trained | Backfilled"
    " | ScorecardWritten | CreatedKey | DemoOutcome | Service"
)
"""What the demo has just done: each stage's result, then the outcome, then the service."""


def demo(
    out_dir: Path,
    settings: Settings,
    *,
    accounts: int = DEMO_ACCOUNTS,
    months: int = DEMO_MONTHS,
    seed: int = 0,
    config: RunConfig | None = None,
    listen: tuple[str, int] | None = None,
    progress: Progress = QUIET,
    done: Callable[[DemoStage], None] = lambda _: None,
) -> DemoOutcome:
    """Run the whole job on a generated world: validate, features, metrics, train, score, serve.

    Everything lands in ``out_dir``: the data, the reports (the scorecard of the
    backfilled runs too) and, unless ``settings`` point tracking or the score store
    elsewhere, the MLflow store and the score store. The world's CS activities are
    imported by the scoring runs, and the dashboard's key may record more (scope
    ``write``); the service matches the default playbook.
    ``settings`` are not changed, nor is the process environment: the demo runs with a
    copy whose data dir is ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for everything the demo writes.
    settings
        The caller's settings (a tracking URI or database URL in them is kept).
    accounts, months, seed
        The generated world: ``months`` of history ending on :data:`DEMO_END`.
    config
        The run configuration (default: :class:`~churnrisk.config.RunConfig`).
    listen
        ``(host, port)`` to serve the dashboard at the end, checked before any work;
        ``None`` does not serve.
    progress
        What is shown as each stage goes.
    done
        Called with each stage's result as it completes (:data:`DemoStage`), then with
        the :class:`DemoOutcome`, then with the :class:`Service` before it starts.
    """
    if listen is not None:  # find out now, not after a minute of work
        check_port(*listen)
    run = config if config is not None else RunConfig()
    out_dir = out_dir.absolute()
    data_dir = out_dir / "data"
    here = settings.model_copy(update={"data_dir": out_dir, "data": data_dir})
    world = generate(
        data_dir,
        accounts=accounts,
        months=months,
        start=demo_start(months),
        seed=seed,
        progress=progress,
    )
    done(world)
    result = load_data(data_dir, quarantine=out_dir / "quarantine", progress=progress)
    validated = _write_report(result.report, out_dir / "validation.json")
    done(validated)
    ds = result.dataset
    panel = _demo_panel(ds, run, out_dir / "features.parquet", progress)
    done(panel)
    metrics = _demo_metrics(ds, out_dir / "metrics.json", progress)
    done(metrics)
    trained, champion = _demo_train(ds, run, here, data_dir, progress)
    done(trained)
    scored = _demo_scores(ds, champion, here, run.scoring, str(data_dir), progress)
    done(scored)
    card = _demo_scorecard(ds, champion, here, out_dir, progress)
    done(card)
    key = create_api_key(here, "demo", "write")
    done(key)
    outcome = DemoOutcome(
        out_dir, here, world, validated, panel, metrics, trained, scored, card, key
    )
    done(outcome)
    if listen is not None:
        serve(here, host=listen[0], port=listen[1], key=key.key, announce=done)
    return outcome


def _write_report(report: Any, path: Path) -> Validated:
    path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return Validated(report, path)


def _demo_panel(ds: Dataset, run: RunConfig, path: Path, progress: Progress) -> PanelWritten:
    """Write the labelled panel of the last year's monthly as-of dates."""
    from churnrisk.features import as_of_dates, write_features
    from churnrisk.metrics import last_complete_month

    span = last_complete_month(ds)
    dates = as_of_dates(date(span.start.year - 1, span.start.month, 1), span.start, "monthly")
    with progress.working(f"building features for {len(dates)} monthly as-of dates"):
        rows = write_features(ds, dates, path, labels=run.labels)
    return PanelWritten(rows=rows, first=dates[0], last=dates[-1], path=path)


def _demo_metrics(ds: Dataset, path: Path, progress: Progress) -> MetricsWritten:
    """Compute and write the metrics of the last complete month."""
    from churnrisk.metrics import last_complete_month, period_metrics

    label = last_complete_month(ds).label
    with progress.working(f"computing metrics for {label}"):
        values = period_metrics(ds, label)
    path.write_text(json.dumps(values, indent=2, default=str), encoding="utf-8")
    return MetricsWritten(values=values, period=label, path=path)


def _demo_train(
    ds: Dataset, run: RunConfig, settings: Settings, data_dir: Path, progress: Progress
) -> tuple[Trained, Champion]:
    """Train and gate; return the run and the champion to score with (new models if promoted)."""
    from churnrisk.tracking import fingerprint

    trained = train_dataset(
        ds, settings, run, fingerprint=fingerprint(data_dir), step=progress.step
    )
    outcome = trained.outcome
    if outcome.decision.promoted:
        return trained, Champion(outcome.models, outcome.versions)
    return trained, load_champion(open_tracker(settings), missing="after training")


def _demo_scores(
    ds: Dataset,
    champion: Champion,
    settings: Settings,
    config: ScoringConfig,
    source: str,
    progress: Progress,
) -> Backfilled:
    """Score earlier months first (:data:`BACKFILL_MONTHS`), for trends and a scorecard."""
    from churnrisk.dataset import observation_end

    end = observation_end(ds)
    dates = tuple(months_before(end, n) for n in range(BACKFILL_MONTHS, 0, -1))
    runs = tuple(
        score_dataset(
            ds, champion, settings, config=config, as_of=day, source=source, step=progress.step
        )
        for day in (*dates, None)
    )
    return Backfilled(dates=dates, runs=runs)


def _demo_scorecard(
    ds: Dataset, champion: Champion, settings: Settings, out_dir: Path, progress: Progress
) -> ScorecardWritten:
    """Grade the demo's runs with its champion; write the scorecard and its plot."""
    with open_store(settings) as store, progress.working("grading the backfilled runs"):
        reviewed = scorecard_of(ds, store, champion.models)
    paths = out_dir / "scorecard.json", out_dir / "scorecard.png"
    paths[0].write_text(json.dumps(reviewed.to_dict(), indent=2, default=str), encoding="utf-8")
    reviewed.card.figure().savefig(paths[1], dpi=110)
    return ScorecardWritten(reviewed, *paths)
