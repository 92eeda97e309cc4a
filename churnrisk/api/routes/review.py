"""The CS review: the scorecard of past runs, an account's monthly usage, the win-back list.

Like `/v1/metrics`, these answers are computed from the service's data source (`serve
--data`, else the data the current run was scored from) with the engine the CLI uses
(:mod:`churnrisk.review`, :mod:`churnrisk.usage`, :mod:`churnrisk.winback`), and
cached per current run (:meth:`churnrisk.api.state.MetricsSource.answer`). The routes
are plain ``def``: the computation runs in the thread pool, never in the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query
from fastapi.responses import Response

from churnrisk.api.deps import ModelsDep, ReadKey, StateDep, StoreDep
from churnrisk.api.errors import ProblemError, never_scored, no_run, problem_responses
from churnrisk.api.routes.activities import AccountId
from churnrisk.api.schemas import ScorecardPublic, UsagePublic, WinBackPublic
from churnrisk.api.state import LoadedModels, MetricsUnavailableError, ServiceState
from churnrisk.review import capacity_k, scorecard_of, win_back_of
from churnrisk.usage import MAX_MONTHS, monthly_usage

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from churnrisk.dataset import Dataset
    from churnrisk.models.bundle import ChurnRiskModels
    from churnrisk.store import RunRecord, ScoreStore

router = APIRouter(prefix="/v1", tags=["review"])

JSON = "application/json"

MAX_WINBACK_DAYS = 730
"""The longest look back of the win-back list."""


def _current(state: ServiceState) -> RunRecord:
    """Return the current run, or answer 404 without one."""
    run = state.runs.get().current
    if run is None:
        raise no_run()
    return run


def _answer(
    state: ServiceState, key: Hashable, build: Callable[[Dataset], Any], run: RunRecord
) -> Response:
    """Answer ``build(data set)`` from the data source's cache (503 without a source)."""
    try:
        body = state.metrics.answer(key, build, run)
    except MetricsUnavailableError as exc:
        raise ProblemError(503, str(exc), kind="no-metrics-source") from exc
    return Response(body, media_type=JSON)


def _champion(models: LoadedModels) -> ChurnRiskModels | None:
    """Return the loaded champion bundle, or ``None``."""
    from churnrisk.models.bundle import ChurnRiskModels

    return models.bundle if isinstance(models.bundle, ChurnRiskModels) else None


def _scorecard(
    ds: Dataset, store: ScoreStore, champion: ChurnRiskModels | None, k: int
) -> dict[str, Any]:
    return scorecard_of(ds, store, champion, k=k).to_dict()


@router.get(
    "/scorecard",
    response_model=ScorecardPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="How right the past scores were, and the features' drift",
)
def scorecard(
    _key: ReadKey,
    state: StateDep,
    store: StoreDep,
    models: ModelsDep,
    k: Annotated[
        int | None,
        Query(
            ge=1,
            le=100_000,
            description="Size of the list each run is graded on (default: the champion's"
            " backtest `capacity_k`, the accounts CS can contact per run).",
        ),
    ] = None,
) -> Response:
    """Grade each kept run whose label window has closed against what then happened.

    As `churnrisk scorecard DATA`: the realised churn rate of each tier, precision and
    recall among each run's `k` riskiest accounts and the share of the churned MRR they
    carried, a reliability curve of the past probabilities, and how early the high tier
    flagged the accounts that churned. Graded with the champion's label definition.
    `drift` is the population stability index of each feature between the champion's
    training rows and the latest run; a feature above `drift_threshold` gives a
    sentence in `warnings`.
    """
    run = _current(state)
    champion = _champion(models)
    size = capacity_k(champion) if k is None else k
    key = ("scorecard", size, models.versions)
    return _answer(state, key, lambda ds: _scorecard(ds, store, champion, size), run)


@router.get(
    "/accounts/{account_id}/usage",
    response_model=UsagePublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="One account's usage, tickets and NPS per month",
    operation_id="account_usage",
)
def usage(
    account_id: AccountId,
    _key: ReadKey,
    state: StateDep,
    store: StoreDep,
    months: Annotated[
        int, Query(ge=1, le=MAX_MONTHS, description="Calendar months, the latest last.")
    ] = 12,
) -> Response:
    """Return the account's events, active users, tickets opened and mean NPS per month.

    The months before the current run's as-of date, point in time: nothing timed on or
    after it counts, and the month it cuts short is marked `partial`. Months without
    any row are listed with zeros.
    """
    run = _current(state)
    if store.account_detail(account_id) is None:
        raise never_scored(account_id)

    def build(ds: Dataset) -> dict[str, Any]:
        found = monthly_usage(ds, account_id, run.as_of, months=months)
        return {"account_id": account_id, "as_of": run.as_of, "months": found}

    return _answer(state, ("usage", account_id, months), build, run)


def _winback_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for item in frame.to_dict("records"):
        drivers = item.get("last_drivers")
        probability, clv = item.get("last_probability"), item.get("lifetime_clv")
        rows.append(
            {
                **{str(k): v for k, v in item.items() if k not in ("last_mrr", "last_used")},
                "mrr": item["last_mrr"],
                "last_used": item["last_used"],
                "used_after_end": item["events_after_end"] > 0,
                "last_probability": None if pd.isna(probability) else probability,
                "lifetime_clv": None if pd.isna(clv) else clv,
                "last_drivers": drivers if isinstance(drivers, list) else [],
            }
        )
    return rows


@router.get(
    "/winback",
    response_model=WinBackPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="The accounts that churned lately, marked when they still use the product",
)
def winback(
    _key: ReadKey,
    state: StateDep,
    store: StoreDep,
    days: Annotated[
        int,
        Query(ge=1, le=MAX_WINBACK_DAYS, description="Churned within this many days."),
    ] = 90,
) -> Response:
    """Return the accounts that churned in the `days` before the current run's as-of date.

    As `churnrisk winback DATA`: each with the MRR it paid before it churned, its usage
    since (the warmest leads still use the product), and its last score before the
    churn with what raised it. Those still using it come first, then by MRR.
    """
    run = _current(state)

    def build(ds: Dataset) -> dict[str, Any]:
        found = win_back_of(ds, store, run.as_of, days=days)
        return {"as_of": run.as_of, "days": days, "data": _winback_rows(found.accounts)}

    return _answer(state, ("winback", days), build, run)
