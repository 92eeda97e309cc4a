"""The FastAPI app: :func:`create_app` builds it, the lifespan opens what it serves.

``uvicorn --factory churnrisk.api.app:app_from_env`` (what ``churnrisk serve`` runs, with
any number of workers) builds one app per worker from the environment's settings.

At start-up the lifespan opens the score store (:class:`~churnrisk.store.ScoreStore` at
``settings.store_url``) and checks its schema, and loads the champion models from the
tracking store, then follows the registry: when the ``champion`` alias moves, the new
champion is loaded within ``CHURNRISK_MODEL_CHECK_SECONDS`` (60 s), no restart needed
(:class:`~churnrisk.api.state.ChampionWatch`). Neither is fatal: the service never
migrates the store by itself (the ``serve`` command does, before starting), and without
a usable store or a champion it still starts, ``/readyz`` answers 503 saying why, and
the routes that need the missing part answer 503. The metrics' data source
(``settings.data``) is read on the first ``/v1/metrics`` request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from churnrisk.api import logs, security
from churnrisk.api.deps import SECURITY_SCHEMES
from churnrisk.api.errors import PROBLEM_JSON, install_handlers
from churnrisk.api.methods import MethodsMiddleware
from churnrisk.api.routes import (
    accounts,
    activities,
    export,
    health,
    keys,
    review,
    service,
    status,
)
from churnrisk.api.state import (
    ChampionWatch,
    LoadedModels,
    MetricsSource,
    ServiceState,
    StoreHolder,
)
from churnrisk.playbooks import load_playbook
from churnrisk.settings import Settings
from churnrisk.store import ScoreStore, StoreError

DESCRIPTION = """
Churn risk scores, drivers and SaaS health metrics for customer success teams and CRMs.

Every `/v1` route needs an API key (`churnrisk apikey create --name NAME`), sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`; key management needs an `admin`
key. Errors are `application/problem+json` documents (RFC 9457). A revoked key may be
accepted for up to five seconds (keys are cached per worker).
"""


def _open_store(settings: Settings) -> StoreHolder:
    try:
        store = ScoreStore(settings.store_url)
    except StoreError as exc:
        holder = StoreHolder(None, owned=True)
        holder.record(exc)
        return holder
    holder = StoreHolder(store, owned=True)
    holder.refresh()
    return holder


def _models_uri(settings: Settings) -> str:
    from churnrisk.tracking import tracking_uri

    return settings.mlflow_tracking_uri or tracking_uri(settings.data_dir)


def _watch_champion(uri: str) -> ChampionWatch:
    return ChampionWatch(uri, LoadedModels.from_tracker(uri))


async def _follow_champion(watch: ChampionWatch, every: float) -> None:
    """Check the registry's champion every ``every`` seconds, off the event loop."""
    while True:
        await asyncio.sleep(every)
        await run_in_threadpool(watch.check)


def create_app(
    settings: Settings | None = None,
    *,
    store: ScoreStore | None = None,
    models: LoadedModels | None = None,
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings
        Where the store, the tracking store and the metrics' data are (default: a
        :class:`~churnrisk.settings.Settings` read from the environment when the app
        starts).
    store
        An open score store to serve instead of ``settings.store_url`` (tests); the
        caller keeps it and closes it.
    models
        The champion models to report instead of loading them from the tracking store
        (tests).

    Returns
    -------
    FastAPI
        The app; its lifespan opens the store and loads the models.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conf = settings if settings is not None else Settings()
        redactor = logs.install()
        if store is not None:
            holder = StoreHolder(store, owned=False)
            await run_in_threadpool(holder.refresh)
        else:
            holder = await run_in_threadpool(_open_store, conf)
        champion: ChampionWatch | LoadedModels
        follow: asyncio.Task[None] | None = None
        if models is not None:
            champion = models
        else:
            champion = await run_in_threadpool(_watch_champion, _models_uri(conf))
            if conf.model_check_seconds > 0:
                follow = asyncio.create_task(_follow_champion(champion, conf.model_check_seconds))
        app.state.service = ServiceState.open(
            holder, champion, MetricsSource(conf.data), load_playbook(conf.playbook)
        )
        # Everything loaded so far (pandas, SQLAlchemy, MLflow, the models) lives as long
        # as the process: move it out of the collector's sight, so that a full collection
        # walks only what requests create. Without this, full collections over the
        # start-up objects stall requests (bench/RESULTS.md has the tail it cost).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if follow is not None:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
            if holder.owned and holder.store is not None:
                holder.store.close()
            logs.uninstall(redactor)

    app = FastAPI(
        title="churnrisk",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        # The docs pages are served below from bundled assets, not from a CDN: they
        # must work on a machine with no internet.
        docs_url=None,
        redoc_url=None,
        # FastAPI's native OpenTelemetry costs a provider check per request; off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_handlers(app)
    app.add_middleware(MethodsMiddleware)
    app.include_router(activities.router)  # before the account route: its id is a path
    app.include_router(review.router)  # so is the usage route's
    app.include_router(accounts.router)
    app.include_router(service.router)
    app.include_router(export.router)
    app.include_router(keys.router)
    app.include_router(status.router)
    app.include_router(health.router)
    app.mount(
        "/static",
        StaticFiles(directory=health.static_dir(), check_dir=False),
        name="static",
    )
    security.install(app, pages=_add_docs(app))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_docs(app: FastAPI) -> dict[str, str]:
    """Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` with bundled assets.

    The JavaScript and CSS come from the ``fastapi-offline`` package (``/docs-assets``),
    so the API documentation works offline; no key is needed to read it. Swagger UI's
    online validator badge is off: it would send the document's address to swagger.io.

    Returns
    -------
    dict
        The Content-Security-Policy of each page: the service's, plus the SHA-256 of
        Swagger UI's inline start-up script, and inline styles for ReDoc (it styles its
        components at run time).
    """
    assets = Path(str(files("fastapi_offline"))) / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    swagger_page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="churnrisk API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    redoc_page = get_redoc_html(
        openapi_url="/openapi.json",
        title="churnrisk API",
        redoc_js_url="/docs-assets/redoc.standalone.js",
        redoc_favicon_url="/static/favicon.svg",
        with_google_fonts=False,
    ).body

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return HTMLResponse(swagger_page)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_page)

    swagger_scripts = security.inline_hashes(bytes(swagger_page).decode("utf-8"))
    return {
        "/docs": security.content_security_policy(
            {"script-src": swagger_scripts, "img-src": ["data:"]}
        ),
        "/redoc": security.content_security_policy(
            {"style-src": ["'unsafe-inline'"], "img-src": ["data:"], "worker-src": ["blob:"]}
        ),
    }


def app_from_env() -> FastAPI:
    """Build the app from the environment's settings (``uvicorn --factory``)."""
    from churnrisk.settings import get_settings

    return create_app(get_settings())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("churnrisk")
    except PackageNotFoundError:
        return "0"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI document, with errors documented as problem+json and 400."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for route, path in schema.get("paths", {}).items():
        for operation in path.values():
            if route.startswith("/v1/"):
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _present(parameter["schema"])
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for code, response in responses.items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a parameter's schema without pydantic's ``null`` branch of an optional value.

    A parameter left out is ``None`` in the code, but a parameter that is there is never
    null (a query string has no null), so its schema is the other branch alone.
    """
    branches = schema.get("anyOf", [])
    values = [b for b in branches if b != {"type": "null"}]
    if len(branches) != 2 or len(values) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**rest, **values[0]}
