"""Errors the HTTP façade raises, and the JSON bodies every ``AvalaError`` becomes (DRF style
``{"detail": ...}``). The hierarchy itself lives in simulators/errors.py, below both layers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from avala_mock.simulators.errors import AvalaError, summarize


class ApiError(AvalaError):
    """A refusal decided by the façade itself (auth, parsing, protocol), with an explicit status."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail, status=status, headers=headers, **extra)


def validation_error(errors: dict[str, list[str]], where: str = "request") -> ApiError:
    """400 with a readable summary in ``detail`` and every field's messages in ``errors``."""
    return ApiError(400, summarize(errors, where), errors=errors)


JSON_HEADERS = {"Content-Type": "application/json"}


def error_response(exc: AvalaError) -> web.Response:
    return json_response(exc.body(), exc.status, exc.headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # The header set directly, not through ``content_type=``: that path parses and rebuilds it per answer.
    return web.Response(body=orjson.dumps(body), status=status,
                        headers={"Content-Type": "application/json", **headers} if headers else JSON_HEADERS)
