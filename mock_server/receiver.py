"""A webhook receiver for tests: a real HTTP server on a free 127.0.0.1 port that records every POST and
checks its ``X-Avala-Signature`` against the secret it is given.

It runs in a thread (stdlib ``http.server``: no event loop to share with the test), answers with a
status the test can change (``receiver.status = 500`` to play a broken endpoint), and can be stopped and
started again on the same port to play an endpoint that is down for a while.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from avala_mock.simulators.dispatch import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify

__all__ = ["Received", "WebhookReceiver", "verify"]


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None when the receiver has no secret to check with
    json: Any = field(default=None)

    @property
    def event(self) -> str | None:
        return self.json.get("event") if isinstance(self.json, dict) else None

    @property
    def payload(self) -> dict[str, Any]:
        return self.json.get("payload") or {} if isinstance(self.json, dict) else {}

    @property
    def delivery(self) -> str | None:
        return self.headers.get(DELIVERY_HEADER.lower())

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER.lower())


class WebhookReceiver:
    def __init__(self, secret: str | None = None, *, host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        self.secret = secret
        self.host, self.port = host, port
        self.status = status
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/avala"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> WebhookReceiver:
        """Listen (again) on ``port`` (a free one the first time)."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket: senders now get 'connection refused'."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, name: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self.received if name is None or r.event == name]

    def wait_for(
        self, name: str | None = None, count: int = 1, timeout: float = 10.0, where: Callable[[Received], bool] | None = None,
    ) -> list[Received]:
        """Block until ``count`` POSTs (of event ``name``, matching ``where``) arrived; AssertionError after
        ``timeout``. Returns every match so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.received if (name is None or r.event == name) and (where is None or where(r))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} x {name or 'any event'}, got {len(found)} after {timeout} s")
                self._cond.wait(left)

    def _record(self, item: Received) -> None:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = None if receiver.secret is None else verify(receiver.secret, body, headers.get(SIGNATURE_HEADER.lower()))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                receiver._record(Received(self.path, headers, body, ok, parsed))
                status = receiver.status if ok is not False else 401
                answer = json.dumps({"received": headers.get(EVENT_HEADER.lower()), "verified": ok}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        return Handler
