"""HTTP methods as RFC 9110 has them: HEAD wherever GET works, and honest ``Allow`` lists.

Starlette routes one method per FastAPI route and, for a method no route of a path
takes, answers 405 with the methods of the *first* route of that path only (``/v1/keys``
has a GET and a POST route: its 405 said ``Allow: GET``). Here:

- ``HEAD`` is answered wherever ``GET`` is, as that ``GET`` without its body (uptime
  checkers probe ``/healthz`` with HEAD); it needs the same key as the ``GET``.
- ``OPTIONS`` on a path the service has answers 204 with ``Allow``, needing no key: the
  methods are public in the OpenAPI document anyway.
- A 405 lists every method of the path (:func:`allow_header`, read by the 405 handler).

Only HEAD and OPTIONS requests pay for the look-up over the routes; every other request
passes straight through.
"""

from __future__ import annotations

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_METHODS = frozenset({"GET", "HEAD"})
"""What a mounted static folder (the dashboard's files, the docs' assets) answers."""

ROUTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
"""The methods a route of this service may take (HEAD and OPTIONS are answered here)."""


def path_methods(scope: Scope) -> set[str]:
    """Return every method the request's path takes (empty: the service has no such path).

    Each method is tried against the app's routes through their public ``matches``
    (FastAPI nests included routers, so the routes are not a flat list to read).

    Parameters
    ----------
    scope
        The request's ASGI scope, as the app received it (``scope["app"]`` is the app).
    """
    routes = scope["app"].router.routes
    # a mounted app's scope has its mount point as root_path: match from the app's root
    scope = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Mount) and route.matches(scope)[0] is not Match.NONE:
            methods |= STATIC_METHODS
    for method in ROUTED_METHODS:
        probe = {**scope, "method": method}
        if any(
            route.matches(probe)[0] is Match.FULL
            for route in routes
            if not isinstance(route, Mount)
        ):
            methods.add(method)
    if "GET" in methods:
        methods.add("HEAD")
    if methods:
        methods.add("OPTIONS")
    return methods


def allow_header(scope: Scope) -> str:
    """Return the ``Allow`` value of the request's path: its methods, sorted."""
    return _allow(path_methods(scope))


def _allow(methods: set[str]) -> str:
    return ", ".join(sorted(methods))


class MethodsMiddleware:
    """Answer ``OPTIONS`` and ``HEAD`` for every path (see the module's notes).

    Parameters
    ----------
    app
        The rest of the app's stack.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        method = scope.get("method")
        if scope["type"] != "http" or method not in ("HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        methods = path_methods(scope)
        if method == "OPTIONS" and methods:
            headers = [(b"allow", _allow(methods).encode())]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        elif method == "HEAD" and "GET" in methods:

            async def without_body(message: Message) -> None:
                if message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)

            await self.app({**scope, "method": "GET"}, receive, without_body)
        else:
            await self.app(scope, receive, send)
