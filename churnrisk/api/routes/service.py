"""The standard metrics of a period, and the champion model's information."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from churnrisk.api.deps import ModelsDep, ReadKey, StateDep, StoreDep
from churnrisk.api.errors import ProblemError, bad_request, param_error, problem_responses
from churnrisk.api.routes import shapes
from churnrisk.api.schemas import MAX_TEXT, TEXT_PATTERN, ModelPublic
from churnrisk.api.state import MetricsUnavailableError, dumps
from churnrisk.errors import ConfigError
from churnrisk.metrics import PERIOD_PATTERN, PeriodNotCoveredError

router = APIRouter(prefix="/v1", tags=["service"])


@router.get(
    "/metrics",
    responses=problem_responses(400, 401, 503),
    summary="The standard SaaS metrics of a period",
    response_model=dict[str, Any],
)
def metrics(
    _key: ReadKey,
    state: StateDep,
    period: Annotated[
        str | None,
        Query(
            pattern=PERIOD_PATTERN,
            description="A month (`2026-10`) or a quarter (`2026Q4`); default: the last"
            " complete month of the data. A period the data does not cover is refused"
            " (400, naming the last day observed).",
        ),
    ] = None,
    segment: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_TEXT,
            pattern=TEXT_PATTERN,
            description="Only this segment. A segment no account has gives the metrics of no"
            " account, with a note under `notes.segment` saying so.",
        ),
    ] = None,
) -> Response:
    """Return the metrics of DESIGN section 6, as `churnrisk metrics --format json` gives them.

    Computed by the same engine as the CLI from the service's data source (`--data` /
    `CHURNRISK_DATA`, else the data the current run was scored from), cached per period
    and segment until a new scoring run lands. Metrics whose inputs are missing are
    null, with the reason in `notes`. A period the data does not cover is refused (400).
    """
    marker = state.runs.get() if state.holder.usable() is not None else None
    try:
        body = state.metrics.compute(period, segment, marker.current if marker else None)
    except MetricsUnavailableError as exc:
        raise ProblemError(503, str(exc), kind="no-metrics-source") from exc
    except (ConfigError, PeriodNotCoveredError) as exc:
        raise bad_request(str(exc), [param_error("period", "query", str(exc))]) from exc
    return Response(body, media_type="application/json")


@router.get(
    "/model",
    response_model=ModelPublic,
    responses=problem_responses(401, 503),
    summary="The champion models",
)
def model(_key: ReadKey, models: ModelsDep, store: StoreDep) -> Response:
    """Return the champion's versions, training window and backtest metrics.

    `current_run_uses_champion` tells whether the current scores were made with this
    champion (false after a promotion until the next `churnrisk score`). The service
    follows the registry: a newly promoted champion shows here within
    `CHURNRISK_MODEL_CHECK_SECONDS` (default 60), without a restart.
    """
    info = models.info
    if info is None:
        raise ProblemError(
            503, models.reason or "no champion model loaded", kind="no-champion-model"
        )
    run = store.current_run()
    out: dict[str, Any] = {k: info.get(k) for k in ModelPublic.model_fields}
    out["current_run"] = shapes.run_dict(run) if run is not None else None
    out["current_run_uses_champion"] = (
        None if run is None else run.churn_version == str(info.get("churn_version"))
    )
    return Response(dumps(out), media_type="application/json")
