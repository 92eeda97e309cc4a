"""The routes' dependencies: the state, the store, the models, and the API key check.

Keys are accepted as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` and never
from the query string (a URL ends up in access logs). A missing, unknown, malformed or
revoked key is a 401 with ``WWW-Authenticate: Bearer``; a key without the route's scope
is a 403. ``admin`` keys may do everything ``read`` keys may.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Request

from churnrisk.api.errors import ProblemError, store_unavailable
from churnrisk.api.state import MAX_KEY_TEXT, MISSING, LoadedModels, Marker, ServiceState
from churnrisk.store import SCOPES, ApiKey, ScoreStore

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`churnrisk apikey create`) as `Authorization: Bearer <key>`.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key in the `X-API-Key` header.",
    },
}
"""The OpenAPI security schemes of the ``/v1`` routes (either one will do)."""

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def get_state(request: Request) -> ServiceState:
    """Return the app's :class:`~churnrisk.api.state.ServiceState`."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_store(state: StateDep) -> ScoreStore:
    """Return the score store, or answer 503 while it is unreachable or not migrated."""
    store = state.holder.usable()
    if store is None:
        raise store_unavailable(state.holder.reason)
    return store


async def get_models(state: StateDep) -> LoadedModels:
    """Return the champion models as loaded at start-up (maybe with an error)."""
    return state.models


StoreDep = Annotated[ScoreStore, Depends(get_store)]
ModelsDep = Annotated[LoadedModels, Depends(get_models)]


async def current_marker(state: ServiceState) -> Marker:
    """Return the store's marker, reading it in a worker thread when due (503: no store)."""
    marker = state.runs.cached()
    if marker is None:
        marker = await state.flights.run("marker", _read_marker, state)
    return marker


def _read_marker(state: ServiceState) -> Marker:
    get_store(state)  # 503 while the store is not usable
    return state.runs.get()


def _verify(state: ServiceState, key: str, digest: str) -> ApiKey | None:
    api_key = get_store(state).verify_key(key)
    state.keys.store(digest, api_key)
    return api_key


def _credential(request: Request) -> str | None:
    """Return the key a request carries: ``Authorization: Bearer`` first, then ``X-API-Key``."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


def require(scope: Literal["read", "write", "admin"]) -> Callable[..., Awaitable[ApiKey]]:
    """Return a dependency that admits a request only with a valid key of ``scope``.

    The dependency reads the headers itself (no sub-dependencies: each costs time on the
    hot path); the OpenAPI document declares the two schemes (:data:`SECURITY_SCHEMES`).

    Parameters
    ----------
    scope
        ``"read"`` (any valid key), ``"write"`` (a write or admin key) or ``"admin"``.
    """

    async def check_key(request: Request) -> ApiKey:
        state: ServiceState = request.app.state.service
        key = _credential(request)
        if not key:
            raise ProblemError(
                401,
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                " (`churnrisk apikey create --name NAME` makes one)",
                kind="unauthorized",
                headers=_CHALLENGE,
            )
        api_key: ApiKey | None = None
        if len(key) <= MAX_KEY_TEXT:
            digest = state.keys.digest(key)
            cached = state.keys.lookup(digest)
            if cached is MISSING:
                api_key = await state.flights.run(("key", digest), _verify, state, key, digest)
            else:
                api_key = cached  # type: ignore[assignment]
        if api_key is None:
            raise ProblemError(
                401,
                "invalid API key: it is unknown, malformed or revoked",
                kind="unauthorized",
                headers=_CHALLENGE,
            )
        if SCOPES.index(api_key.scope) < SCOPES.index(scope):
            article = "an" if scope == "admin" else "a"
            raise ProblemError(
                403,
                f"API key {api_key.key_id} has scope {api_key.scope!r}; this needs"
                f" {article} {scope} key",
                kind="forbidden",
            )
        return api_key

    check_key.__name__ = f"require_{scope}"
    return check_key


ReadKey = Annotated[ApiKey, Depends(require("read"))]
WriteKey = Annotated[ApiKey, Depends(require("write"))]
AdminKey = Annotated[ApiKey, Depends(require("admin"))]
