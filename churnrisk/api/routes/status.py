"""The service's status for admins: what ``/readyz`` keeps to itself.

``/readyz`` is open to anyone, so it says only whether each part works and, if not, why
in words that name no URL, user, host, database or path. This route, for admin keys,
adds the details: the store's URL (password masked) and its whole error, the tracking
store the models come from, and the data source of the metrics (the configured one, else
the current run's) with the error of its last load. While the store is down
no key can be verified, so this route answers 503 too; the server log has the details.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from churnrisk.api.deps import AdminKey, StateDep
from churnrisk.api.errors import problem_responses
from churnrisk.api.schemas import StatusPublic
from churnrisk.api.state import ChampionWatch, ServiceState, dumps
from churnrisk.store import RunRecord, StoreError, mask_password

router = APIRouter(prefix="/v1", tags=["service"])


def _current_run(state: ServiceState) -> RunRecord | None:
    """Return the current run, or ``None`` (no run, or the store is not usable)."""
    if state.holder.usable() is None:
        return None
    try:
        return state.runs.get().current
    except StoreError as exc:
        state.holder.failed(exc)
        return None


def status_dict(state: ServiceState) -> dict[str, Any]:
    """Return the service's status in the shape of :class:`StatusPublic`."""
    holder, models, champion = state.holder, state.models, state.champion
    problem = holder.problem
    uri = champion.uri if isinstance(champion, ChampionWatch) else None
    source = state.metrics.source_for(_current_run(state))
    return {
        "store": {
            "url": holder.store.url if holder.store is not None else None,
            "status": holder.status,
            "error": str(problem) if problem is not None else None,
        },
        "models": {
            "tracking_uri": mask_password(uri) if uri is not None else None,
            "status": models.status,
            "error": models.error,
        },
        "metrics": {
            "source": str(source) if source is not None else None,
            "error": state.metrics.last_error,
        },
    }


@router.get(
    "/status",
    response_model=StatusPublic,
    responses=problem_responses(401, 403, 503),
    summary="The service's parts, in detail (admin)",
)
def status(_key: AdminKey, state: StateDep) -> Response:
    """Return the details `/readyz` gives to no one: the store's URL and error in full.

    Also the tracking store the models come from (passwords masked) with its error, and
    the data source of `/v1/metrics`. While the store is down, keys cannot be verified
    and this answers 503 like every `/v1` route: the server log has the details then.
    """
    return Response(
        dumps(status_dict(state)),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
