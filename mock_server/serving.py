"""Putting the app on a socket with the hygiene a shared mock needs (every entry point serves this way):

* an idle timeout: a connection that has not completed a request's headers within ``idle_timeout``
  seconds of connecting (or of its previous answer) is closed — aiohttp's keep-alive timer covers the
  time before the first request too, so slow-header (slowloris) connections cannot pile up;
* a cap on open connections: past ``max_connections`` a new connection gets a JSON 503 and is closed
  at once, so the process keeps file descriptors for the clients it is already serving;
* protocol-level rejections (a malformed request line, an oversized header, broken chunking) answer
  JSON ``{"detail": ...}`` like every other error, logged at debug level without a traceback;
* the event loop's own errors (e.g. ``accept()`` out of file descriptors) are logged once per kind per
  ten seconds with a count, never as a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import time
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("avala_mock")
LISTEN_PORTS = web.AppKey("listen_ports", set)  # filled when the app is bound: requests to these are to itself
LOOP_LOG_INTERVAL_S = 10.0
FD_RESERVE = 64  # descriptors kept for files, outbound webhook connections and the listening socket


def make_runner(app: web.Application, idle_timeout: float = 15.0) -> web.AppRunner:
    """The runner every entry point uses. Long request lines (fuzzers, huge cursors) still reach the
    app and get a JSON answer, instead of aiohttp's plain-text 400 from the parser (8 KiB default)."""
    return web.AppRunner(app, access_log=None, max_line_size=65536, max_field_size=65536,
                         keepalive_timeout=idle_timeout, lingering_time=1.0)


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection protocol, answering its own rejections as JSON."""

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        log.debug("rejected a request from %s: %s %s", request.remote, status, (message or "")[:200])
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started; the connection is dropped")
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            detail = "Internal error in avala-mock (this is a bug; see the server log)."
        else:
            reason = (message or HTTPStatus(status).phrase).replace("\n", " ")
            detail = f"Malformed HTTP request: {reason[:200]}"
        response = web.Response(status=status, body=orjson.dumps({"detail": detail}), content_type="application/json")
        response.force_close()
        return response


class _Busy(asyncio.Protocol):
    """Answers a connection over the cap with a 503 and closes it."""

    BODY = orjson.dumps({"detail": "Too many open connections; try again shortly."})
    RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                b"Connection: close\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.RESPONSE)
        transport.close()


class GuardedFactory:
    """The protocol factory given to the listening socket: aiohttp's handler (JSON errors) up to
    ``max_connections`` open at once, ``_Busy`` past it."""

    def __init__(self, server: web.Server, max_connections: int) -> None:
        self.server = server
        self.max_connections = max_connections
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        if len(self.server.connections) >= self.max_connections:
            self.refused += 1
            return _Busy()
        # aiohttp's own factory (Server.__call__) with our handler class; same loop and settings
        return JsonErrorHandler(self.server, loop=self.server._loop, **self.server._kwargs)


class GuardedSite(web.TCPSite):
    """``TCPSite`` listening through ``GuardedFactory``."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, max_connections: int, reuse_port: bool | None = None) -> None:
        super().__init__(runner, host, port, backlog=256, reuse_port=reuse_port)
        self.max_connections = max_connections
        self.factory: GuardedFactory | None = None

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does; TCPSite.start would bind aiohttp's factory
        server = self._runner.server
        assert server is not None
        self.factory = GuardedFactory(server, self.max_connections)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.factory, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to what the process's file-descriptor limit allows (the soft limit is raised
    to the hard one first, as servers do)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - FD_RESERVE)) if soft != resource.RLIM_INFINITY else wanted


def quiet_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log the loop's exceptions once per message per ``LOOP_LOG_INTERVAL_S`` with a count; an
    out-of-descriptors ``accept()`` retries every second and must not write a traceback each time."""
    last: dict[str, tuple[float, int]] = {}

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        key = f"{message}: {type(exc).__name__}" if exc else message
        now = time.monotonic()
        when, count = last.get(key, (0.0, 0))
        if now - when < LOOP_LOG_INTERVAL_S:
            last[key] = (when, count + 1)
            return
        suffix = f" ({count} more since the last report)" if count else ""
        log.warning("%s%s%s", key, f" — {exc}" if exc else "", suffix)
        last[key] = (now, 0)

    loop.set_exception_handler(handler)


async def start(app: web.Application, host: str, port: int, *, idle_timeout: float = 15.0,
                max_connections: int = 1000, reuse_port: bool = False) -> tuple[web.AppRunner, GuardedSite]:
    """Serve ``app`` on ``host:port`` (0 = a free port; ``site.port`` says which) until ``runner.cleanup()``.
    ``reuse_port``: several worker processes listen on one port and the kernel spreads connections."""
    quiet_loop_errors(asyncio.get_running_loop())
    # The world is built and lives as long as the server: keep the cyclic collector from walking it again
    # and again while requests come in (a collection it triggers landed inside random requests).
    gc.collect()
    gc.freeze()
    runner = make_runner(app, idle_timeout)
    await runner.setup()
    site = GuardedSite(runner, host, port, connection_cap(max_connections), reuse_port=reuse_port or None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    if LISTEN_PORTS in app:
        app[LISTEN_PORTS].add(site.port)
    return runner, site

