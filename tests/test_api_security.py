"""Every answer of the service carries the browser hardening headers (see api_fixtures).

The Content-Security-Policy strings are written out here in full: they are the
specification. That the dashboard and the documentation still work under them, with no
violation reported by the browser, is tested in Chromium (test_dashboard).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from api_fixtures import Api, api_fixture  # noqa: F401
from fastapi.responses import Response

POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HARDENING = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def hardened(response: Any, policy: str = POLICY) -> None:
    """Check the four headers of ``response``, each given once."""
    for name, value in {"content-security-policy": policy, **HARDENING}.items():
        assert response.headers.get_list(name) == [value], name


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/", None, 200),  # the dashboard
        ("GET", "/static/app.js", None, 200),
        ("GET", "/static/nothing.js", None, 404),
        ("GET", "/docs-assets/swagger-ui.css", None, 200),
        ("GET", "/openapi.json", None, 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/v1/summary", "read", 200),
        ("GET", "/v1/accounts/at-risk?limit=2", "read", 200),
        ("GET", "/v1/export/scores?format=csv", "read", 200),
        ("GET", "/v1/accounts/at-risk?limit=0", "read", 400),
        ("GET", "/v1/summary", None, 401),
        ("GET", "/v1/keys", "read", 403),
        ("GET", "/v1/nothing", "read", 404),
        ("DELETE", "/v1/summary", "read", 405),
        ("OPTIONS", "/v1/keys", None, 204),  # answered by the methods middleware
        ("HEAD", "/healthz", None, 200),
    ],
)
def test_every_answer_carries_the_hardening_headers(
    api: Api, method: str, path: str, key: str | None, status: int
) -> None:
    response = api.client.request(method, path, headers=api.auth(key))
    assert response.status_code == status
    hardened(response)


def test_an_unexpected_error_carries_them_too(api: Api) -> None:
    def broken() -> Any:
        raise RuntimeError("secret internals")

    api.store.summary = broken  # type: ignore[method-assign]
    response = api.get("/v1/summary")
    assert response.status_code == 500
    hardened(response)


def test_a_header_a_route_sets_itself_is_kept(api: Api) -> None:
    app: Any = api.client.app

    @app.get("/framed")
    def framed() -> Response:
        return Response("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    response = api.client.get("/framed")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["content-security-policy"] == POLICY


def sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def test_swagger_ui_may_run_its_one_inline_script_and_nothing_else(api: Api) -> None:
    response = api.client.get("/docs")
    page = response.text
    scripts = page.split("<script>")[1:]  # the inline ones (the bundle has a src)
    assert len(scripts) == 1
    inline = scripts[0].split("</script>")[0]
    assert "SwaggerUIBundle(" in inline
    assert '"validatorUrl": null' in inline  # no call to swagger.io's validator
    hardened(
        response,
        "default-src 'none'; script-src 'self' "
        + sha256_source(inline)
        + "; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'",
    )


def test_redoc_may_style_inline_and_start_its_search_worker(api: Api) -> None:
    response = api.client.get("/redoc")
    assert "<redoc spec-url=" in response.text
    hardened(
        response,
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'; worker-src blob:",
    )
