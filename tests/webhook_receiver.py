"""A local webhook endpoint for the alert tests: scripted answers, signature checks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from churnrisk.alerts import DELIVERY_HEADER, SIGNATURE_HEADER, verify

SECRET = "whsec_test"


class Receiver:
    """A local webhook endpoint: answers from a script of statuses, checks signatures."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify(SECRET, body, self.headers[SIGNATURE_HEADER], now=int(time.time()))
                receiver.received.append(
                    {"body": body, "signed": signed, "id": self.headers[DELIVERY_HEADER]}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status if signed else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Callable[[list[int]], Receiver]]:
    """Start receivers (``receiver([503, 200])``: answers in order, then 200); stop them after."""
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def free_port() -> int:
    """Return a local port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
