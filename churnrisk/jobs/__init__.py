"""The workflows behind the commands: scoring runs, the demo, the store, API keys, serving.

Each workflow is one plain function that takes its settings and paths explicitly (a
:class:`~churnrisk.settings.Settings`, never the process environment) and returns a
result dataclass. The CLI parses its options, calls one of them and prints the summary;
the notebook and the Spark path call the same functions, so no module above the stages
sequences them by hand. The modelling workflow on a data set (panel, backtest, training,
gate) is :mod:`churnrisk.pipeline`; :func:`train`, :func:`backtest` and :func:`explain`
here run it on a data source with the stores of the settings.

Progress reaches the caller through a :class:`Progress` passed in (the CLI draws
spinners, bars and step lines from it); the default, :data:`QUIET`, shows nothing.

One module a job, every name re-exported here: :mod:`~churnrisk.jobs.progress`,
:mod:`~churnrisk.jobs.stores` (tracker, score store, API keys),
:mod:`~churnrisk.jobs.sources` (generate, validate on DuckDB or Spark),
:mod:`~churnrisk.jobs.modelling` (train, backtest, explain),
:mod:`~churnrisk.jobs.scoring` (scoring runs), :mod:`~churnrisk.jobs.alerting`
(alerts after a run), :mod:`~churnrisk.jobs.review` (the scorecard and win-back),
:mod:`~churnrisk.jobs.serving` (the API and dashboard) and
:mod:`~churnrisk.jobs.demo_job` (the demo).
"""

from churnrisk.jobs.alerting import AlertsSent, alerts_config, run_alerts, send_sample
from churnrisk.jobs.demo_job import (
    DEMO_ACCOUNTS,
    DEMO_END,
    DEMO_MONTHS,
    Backfilled,
    DemoOutcome,
    DemoStage,
    MetricsWritten,
    PanelWritten,
    ScorecardWritten,
    Validated,
    demo,
    demo_start,
    months_before,
)
from churnrisk.jobs.modelling import (
    Backtested,
    Explained,
    Trained,
    backtest,
    explain,
    train,
    train_dataset,
)
from churnrisk.jobs.progress import (
    QUIET,
    Count,
    Progress,
    Quiet,
)
from churnrisk.jobs.review import review, win_back
from churnrisk.jobs.scoring import (
    Champion,
    ScoreOutcome,
    load_champion,
    score,
    score_dataset,
)
from churnrisk.jobs.serving import (
    Service,
    check_port,
    serve,
)
from churnrisk.jobs.sources import (
    generate,
    load_data,
    load_spark_data,
    open_spark,
)
from churnrisk.jobs.stores import (
    CreatedKey,
    StoreStatus,
    create_api_key,
    list_api_keys,
    open_store,
    open_tracker,
    revoke_api_key,
    upgrade_store,
)
from churnrisk.review import Reviewed, WinBack, drift_warnings

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_END",
    "DEMO_MONTHS",
    "QUIET",
    "AlertsSent",
    "Backfilled",
    "Backtested",
    "Champion",
    "Count",
    "CreatedKey",
    "DemoOutcome",
    "DemoStage",
    "Explained",
    "MetricsWritten",
    "PanelWritten",
    "Progress",
    "Quiet",
    "Reviewed",
    "ScoreOutcome",
    "ScorecardWritten",
    "Service",
    "StoreStatus",
    "Trained",
    "Validated",
    "WinBack",
    "alerts_config",
    "backtest",
    "check_port",
    "create_api_key",
    "demo",
    "demo_start",
    "drift_warnings",
    "explain",
    "generate",
    "list_api_keys",
    "load_champion",
    "load_data",
    "load_spark_data",
    "months_before",
    "open_spark",
    "open_store",
    "open_tracker",
    "review",
    "revoke_api_key",
    "run_alerts",
    "score",
    "score_dataset",
    "send_sample",
    "serve",
    "train",
    "train_dataset",
    "upgrade_store",
    "win_back",
]
