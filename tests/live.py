"""What the tests of a running service need beside it: its log lines, and a relay that can
cut its database off.

:func:`logged_lines` collects what the service's loggers write.

:class:`Relay` stands between the service and PostgreSQL (127.0.0.1:5432) on a loopback
port of its own. :meth:`Relay.stop` is the outage: it closes the listening socket, so a
new connection is refused at once (``ECONNREFUSED``, as from a host whose database server
is down or restarting), and it cuts every relayed connection, so the connections pooled
by the service die as they do when the server goes away. :meth:`Relay.start` listens on
the same port again: the database is back.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

LOGGERS = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "churnrisk", "churnrisk.api")
"""The loggers a served app writes to (the root included)."""


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record is not self._last:  # a record propagates through several of LOGGERS
            self._last = record
            self.lines.append(self.format(record))


@contextmanager
def logged_lines() -> Iterator[list[str]]:
    """Collect the formatted records of :data:`LOGGERS` (a list, filled as they come).

    Start it after the server (``api_fixtures.uvicorn_server``): uvicorn's logging set-up
    drops the handlers of its loggers.
    """
    handler = _Lines()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler.lines
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)


class Relay:
    """Relay TCP connections from a loopback port to ``target`` until stopped.

    Parameters
    ----------
    target
        ``(host, port)`` to relay to.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen (on the same port as before, once there was one) and relay."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut every relayed one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # shut down first: no longer listening, even mid-accept
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                cut = self._listener is not listener  # stopped meanwhile
                if not cut:
                    self._open.update((client, upstream))
            if cut:
                _close(client)
                _close(upstream)
                return
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with self._lock:
                self._open.discard(sock)
            _close(sock)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
