"""Reading a JSON request body: bounded in bytes and in time, parsed once, and refused before any state
changes when it could not be stored and rendered back.

* Size: ``Content-Length`` over the cap is refused before a byte is read; a chunked body is read up to
  the cap and no further (413), so a body that lies about its size cannot grow the process.
* Time: the whole body must arrive within ``timeout`` seconds (408), so a client that declares a body
  and never sends it does not hold a handler forever.
* Nesting: deeper than ``MAX_DEPTH`` containers is a 400. The check runs at C speed: orjson refuses to
  encode past a fixed depth, so encoding the body under ``limit - MAX_DEPTH`` extra levels fails exactly
  when the body itself is too deep. A body that passes can always be stored and rendered.
* Integers: outside the signed 64-bit range is a 400 (orjson would silently turn them into floats, and
  clients in JavaScript cannot hold them). Only a body with a run of 19+ digits is re-checked, with
  the standard library's parser, so ordinary bodies pay nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson
from aiohttp import web

from avala_mock.mock_server.errors import ApiError

JSON_TYPES = ("application/json",)
MAX_DEPTH = 32  # containers inside containers; Avala's metadata/config objects are a few levels deep
INT64 = (-(2**63), 2**63 - 1)
_LONG_DIGITS = re.compile(rb"\d{19,}")
_CHUNK = 64 * 1024


def _orjson_depth_limit() -> int:
    """The nesting at which orjson stops encoding (254 today), found once instead of assumed."""
    nested: list[Any] = []  # one level
    for depth in range(2, 4096):
        nested = [nested]  # ``depth`` levels
        try:
            orjson.dumps(nested)
        except orjson.JSONEncodeError:
            return depth
    raise RuntimeError("orjson encodes any depth; the nesting check needs another method")


_PROBE_LEVELS = _orjson_depth_limit() - MAX_DEPTH - 1


RAW = web.RequestKey("raw_body", object)  # the bytes once read (strict mode reads before the endpoint)


async def read_raw(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body's bytes: at most ``limit`` (413 past it), all of it within ``timeout`` seconds (408).
    Read once per request; later calls get the same bytes (or the same refusal)."""
    if RAW not in request:
        try:
            request[RAW] = await _read_bounded(request, limit, timeout)
        except ApiError as exc:
            request[RAW] = exc
    found = request[RAW]
    if isinstance(found, ApiError):
        raise found
    return found


async def _read_bounded(request: web.Request, limit: int, timeout: float) -> bytes:
    if not request.body_exists:
        return b""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError(413, f"Request body too large: {declared} bytes declared, at most {limit} accepted.",
                       headers={"Connection": "close"})
    try:
        return await asyncio.wait_for(_read_capped(request, limit), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"The request body did not arrive within {timeout:g} seconds.",
                       headers={"Connection": "close"}) from None


async def _read_capped(request: web.Request, limit: int) -> bytes:
    parts, size = [], 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body too large: more than {limit} bytes.", headers={"Connection": "close"})
        parts.append(chunk)
    return b"".join(parts)


def parse(raw: bytes, content_type: str) -> Any:
    """``raw`` as JSON, or a 415/400 that says what was wrong; never a value that cannot be rendered."""
    if content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise ApiError(415, f'Unsupported media type "{content_type[:100]}" in request; send application/json.')
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own parse limit (1,024 levels), past ours
            raise _too_deep() from None
        raise ApiError(400, f"JSON parse error - {str(exc)[:200]}", errors={"(body)": ["Malformed JSON."]}) from None
    check_depth(body)
    if _LONG_DIGITS.search(raw):
        check_integers(raw)
    return body


def check_depth(body: Any) -> None:
    """400 when ``body`` nests more than ``MAX_DEPTH`` containers."""
    if not isinstance(body, (dict, list)):
        return
    probe: Any = body
    for _ in range(_PROBE_LEVELS):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        raise _too_deep() from None


def _too_deep() -> ApiError:
    return ApiError(400, f"JSON nested too deeply: at most {MAX_DEPTH} levels of objects and arrays.",
                    errors={"(body)": [f"Nesting deeper than {MAX_DEPTH} levels."]})


def check_integers(raw: bytes) -> None:
    """400 when an integer literal falls outside the signed 64-bit range."""

    def as_int(text: str) -> int:
        value = int(text)
        if not INT64[0] <= value <= INT64[1]:
            shown = text if len(text) <= 40 else f"{text[:20]}…({len(text)} digits)"
            raise ApiError(400, f"Integer out of range: {shown} (integers must fit in 64 bits).",
                           errors={"(body)": ["Integer out of the signed 64-bit range."]})
        return value

    json.loads(raw, parse_int=as_int)
