"""Injected faults, each what a client sees when the thing it names goes wrong.

* ``http_500`` / ``http_502`` / ``http_503`` / ``http_504``: an Avala-like JSON error (``{"detail": ...}``);
  the handler does not run, so no state changes.
* ``connection_reset``: the socket is closed with SO_LINGER 0, so the client reads a TCP RST.
* ``empty_response``: the connection is closed before a single byte is sent.
* ``hang``: nothing is sent until the client gives up; the server closes the connection after
  ``hang_s`` (default 30 s, at most 300) so nothing waits forever.
* ``malformed_json``: the handler runs (state changes as usual); the body is cut and garbled, with a
  correct Content-Length, so the transfer succeeds and JSON parsing fails.
* ``truncated_body``: the handler runs; Content-Length promises the whole body, half is sent, then
  the connection closes.
* ``slow_body``: the handler runs; the body arrives in ``chunk_bytes`` pieces ``chunk_delay_ms`` apart.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from avala_mock.mock_server.errors import json_response
from avala_mock.mock_server.shaping import FaultRule

STATUS_BODIES = {
    500: "A server error occurred.",
    502: "Bad gateway: the upstream service returned an invalid response.",
    503: "Service temporarily unavailable, try again later.",
    504: "Gateway timeout: the upstream service did not respond in time.",
}
DROPPED = 0  # journal status of a request whose connection was dropped without a response


async def inject(rule: FaultRule, request: web.Request, call: Callable[[], Awaitable[web.StreamResponse]],
                 headers: dict[str, str]) -> tuple[web.StreamResponse, int]:
    """Apply ``rule`` to ``request``; returns the response for aiohttp and the status to journal."""
    kind = rule.kind
    if kind.startswith("http_"):
        status = int(kind[5:])
        extra = {"Retry-After": "1"} if status == 503 else {}
        return json_response({"detail": STATUS_BODIES[status]}, status, {**headers, **extra}), status
    if kind == "connection_reset":
        _close(request, reset=True)
        return _dropped(), DROPPED
    if kind == "empty_response":
        _close(request, reset=False)
        return _dropped(), DROPPED
    if kind == "hang":
        await asyncio.sleep(float(rule.spec.get("hang_s", 30.0)))
        _close(request, reset=False)
        return _dropped(), DROPPED
    real = await call()
    body = real.body if isinstance(real, web.Response) and isinstance(real.body, bytes) else b""
    if kind == "malformed_json":
        garbled = body[: max(1, len(body) // 2)] + b'\x00<html>upstream error' if body else b'{"detail": '
        out = web.Response(body=garbled, status=real.status, headers={**headers, "Content-Type": "application/json"})
        return out, real.status
    response = web.StreamResponse(status=real.status, headers={**headers, "Content-Type": real.content_type or "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    if kind == "truncated_body":
        await response.write(body[: len(body) // 2])
        _close(request, reset=False)
        return response, real.status
    # slow_body
    step = int(rule.spec.get("chunk_bytes", 64))
    pause = float(rule.spec.get("chunk_delay_ms", 50.0)) / 1000.0
    for i in range(0, len(body), step):
        await response.write(body[i : i + step])
        if i + step < len(body):
            await asyncio.sleep(pause)
    await response.write_eof()
    return response, real.status


def _close(request: web.Request, *, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _dropped() -> web.StreamResponse:
    """What the middleware hands aiohttp after the connection is gone (it is never written)."""
    return web.Response(status=500)
