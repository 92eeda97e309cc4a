"""Browser hardening: security headers on every response of the service.

Every answer (the dashboard, its static files, the API documentation, JSON, CSV and
problem documents, a 500 included) carries:

- ``Content-Security-Policy``: the page may load scripts, styles, images and data from
  this service only, no inline script and no plugin, and may not be framed
  (``frame-ancestors 'none'``); a page that needs an inline block (Swagger UI's start-up
  script) is allowed exactly that block, by its SHA-256 hash.
- ``X-Frame-Options: DENY``: no framing, for browsers without ``frame-ancestors``.
- ``X-Content-Type-Options: nosniff``: a response is only what its type says.
- ``Referrer-Policy: no-referrer``: no address of this service leaves in a ``Referer``.

A header a route sets itself is kept. The middleware is plain ASGI (it adds prepared
header pairs to the response start) so it costs the at-risk list next to nothing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SELF, _NONE = "'self'", "'none'"

POLICY: Mapping[str, tuple[str, ...]] = {
    "default-src": (_NONE,),
    "script-src": (_SELF,),
    "style-src": (_SELF,),
    "img-src": (_SELF,),
    "connect-src": (_SELF,),
    "form-action": (_SELF,),
    "base-uri": (_NONE,),
    "frame-ancestors": (_NONE,),
}
"""The Content-Security-Policy of every response, directive by directive."""

HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""The other hardening headers, the same on every response."""

_INLINE = {
    kind: re.compile(rf"<{kind}(?![^>]*\bsrc=)[^>]*>(.*?)</{kind}>", re.DOTALL | re.IGNORECASE)
    for kind in ("script", "style")
}


def content_security_policy(more: Mapping[str, Iterable[str]] | None = None) -> str:
    """Return :data:`POLICY` as a header value, with ``more`` sources added per directive."""
    directives = {name: list(sources) for name, sources in POLICY.items()}
    for name, sources in (more or {}).items():
        directives.setdefault(name, []).extend(sources)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def inline_hashes(page: str, kind: str = "script") -> list[str]:
    """Return the CSP sources (``'sha256-…'``) that allow exactly the inline blocks of ``page``.

    Parameters
    ----------
    page
        An HTML page built by this service from fixed text (never one holding request
        data: a hash taken of injected script would allow it).
    kind
        ``"script"`` or ``"style"``: which inline blocks (elements without ``src``).
    """
    out = []
    for block in _INLINE[kind].findall(page):
        digest = hashlib.sha256(block.encode("utf-8")).digest()
        out.append(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    return out


def _pairs(policy: str) -> list[tuple[bytes, bytes]]:
    headers = {"Content-Security-Policy": policy, **HEADERS}
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


class SecurityHeaders:
    """ASGI middleware adding the hardening headers to every HTTP response.

    Parameters
    ----------
    app
        The application to wrap.
    pages
        A Content-Security-Policy per request path that needs its own (the API
        documentation pages); every other path gets :func:`content_security_policy`.
    """

    def __init__(self, app: ASGIApp, *, pages: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.default = _pairs(content_security_policy())
        self.pages = {path: _pairs(policy) for path, policy in (pages or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers a response start lacks."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.pages.get(scope["path"], self.default)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in extra if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI, *, pages: Mapping[str, str] | None = None) -> None:
    """Wrap ``app``'s whole middleware stack in :class:`SecurityHeaders`.

    Outside Starlette's own outer layers, unlike ``app.add_middleware``: the answers those
    give (the 500 of an unexpected error, a body over the size limit) get the headers too.
    """
    build = app.build_middleware_stack

    def build_with_headers() -> Any:
        return SecurityHeaders(build(), pages=pages)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
