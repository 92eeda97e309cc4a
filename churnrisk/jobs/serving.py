"""Serving the API and the dashboard: the port checked, the store migrated, uvicorn run."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnrisk.errors import ConfigError
from churnrisk.jobs.stores import upgrade_store
from churnrisk.settings import Settings

if TYPE_CHECKING:
    pass


def check_port(host: str, port: int) -> None:
    """Raise a one-line :class:`ConfigError` when a server could not listen on ``host:port``.

    Binds, then closes, a socket at every address ``host`` resolves to, as the server
    will (asyncio's ``create_server``: an empty host is every interface, IPv4 and IPv6;
    ``SO_REUSEADDR`` on, IPv6 sockets IPv6-only), so a busy port is reported before
    anything starts rather than by uvicorn's ``[Errno 98]`` after the start-up lines.
    """
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on --host {host}: {exc.strerror}; pass an address of this"
            " machine (127.0.0.1, or 0.0.0.0 for all)"
        ) from exc
    for family, kind, proto, _, address in dict.fromkeys(found):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (no IPv6): the server skips it too
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(_bind_problem(host or "all addresses", port, exc)) from exc


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    """Say in one line why ``host``:``port`` cannot be listened on, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use: pass --port with a free port"
    if exc.errno == errno.EACCES and port < 1024:
        return (
            f"port {port} on {host} is privileged (below 1024) and this user may not listen"
            " there: pass --port 1024 or higher"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}: it is not an address of this machine; pass --host"
            " with one of its addresses (127.0.0.1, or 0.0.0.0 for all)"
        )
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc}"


def _shown_host(host: str) -> str:
    """Return an address a browser on this machine can open for ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Service:
    """A service about to start.

    Attributes
    ----------
    base
        The address a browser on this machine opens (``http://127.0.0.1:8000``).
    workers
        Worker processes.
    store_url
        The score store it serves (migrated; password masked).
    data
        The data source of ``/v1/metrics``, or ``None`` for the data of the current run.
    key
        An API key for the dashboard address's ``#key=`` fragment, or ``None``.
    """

    base: str
    workers: int
    store_url: str
    data: Path | None
    key: str | None = None


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = True,
    key: str | None = None,
    announce: Callable[[Service], None] = lambda _: None,
) -> Service:
    """Migrate the score store and run the API and dashboard with uvicorn until stopped.

    A port that cannot be listened on ends it first, with one line (:func:`check_port`);
    ``announce`` is called with the :class:`Service` just before uvicorn starts.

    One worker serves an app built from ``settings`` in this process. Several workers
    are processes of their own that build their app from the environment
    (:func:`churnrisk.api.app.app_from_env`): ``settings`` are handed on to them as
    environment variables (:meth:`~churnrisk.settings.Settings.environment`), set in
    this process, which only serves from then on.

    Raises
    ------
    ConfigError
        When the port cannot be listened on.
    """
    import uvicorn

    check_port(host, port)
    store_url = upgrade_store(settings).url
    service = Service(
        base=f"http://{_shown_host(host)}:{port}",
        workers=workers,
        store_url=store_url,
        data=settings.data,
        key=key,
    )
    announce(service)
    app: Any
    if workers == 1:
        from functools import partial

        from churnrisk.api.app import create_app

        app = partial(create_app, settings)
    else:
        os.environ.update(settings.environment())
        app = "churnrisk.api.app:app_from_env"
    uvicorn.run(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        server_header=False,
    )
    return service
