"""Liveness, readiness, and the dashboard's page (all open: no key)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from churnrisk.api.deps import StateDep
from churnrisk.api.errors import ProblemError, problem_response, problem_responses
from churnrisk.api.routes import shapes
from churnrisk.api.schemas import HealthPublic, ReadyPublic
from churnrisk.api.state import dumps
from churnrisk.store import StoreError

router = APIRouter(tags=["health"])


def static_dir() -> Path:
    """Return the folder of the dashboard's files (``churnrisk/api/static``)."""
    return Path(str(files("churnrisk.api"))) / "static"


@router.get("/healthz", response_model=HealthPublic, summary="Liveness")
async def healthz() -> Response:
    """Answer `{"status": "ok"}` while the process serves requests."""
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    responses=problem_responses(503),
    summary="Readiness",
)
def readyz(request: Request, state: StateDep) -> Response:
    """Check that the score store answers at the current schema and the models are loaded.

    503 (a problem document) with `checks` saying which failed and why, else 200.
    """
    holder = state.holder
    store_problem = holder.check()
    holder.error = store_problem
    run = None
    if store_problem is None and holder.store is not None:
        try:
            run = holder.store.current_run()
        except StoreError as exc:
            store_problem = str(exc)
    models = state.models
    checks: dict[str, Any] = {
        "store": "ok" if store_problem is None else store_problem,
        "models": "loaded" if models.loaded else models.error or "not loaded",
        "metrics": state.metrics.availability(run),
        "current_run": shapes.run_dict(run) if run is not None else None,
    }
    failed = [name for name in ("store", "models") if checks[name] not in ("ok", "loaded")]
    if failed:
        reasons = "; ".join(f"{name}: {checks[name]}" for name in failed)
        return problem_response(
            request, 503, f"not ready: {reasons}", kind="not-ready", checks=checks
        )
    return Response(dumps({"status": "ready", **checks}), media_type="application/json")


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """Serve the dashboard's page."""
    page = static_dir() / "index.html"
    if not page.is_file():
        raise ProblemError(404, "the dashboard is not installed in this build", kind="no-dashboard")
    return FileResponse(page, media_type="text/html")
