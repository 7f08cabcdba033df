"""Errors a handler raises, and the JSON bodies they become (DRF style ``{"detail": ...}``)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class ApiError(Exception):
    """An answer other than success: status, a human ``detail``, optional extra body keys and headers."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra
        self.headers = headers or {}

    def response(self) -> web.Response:
        return json_response({"detail": self.detail, **self.extra}, self.status, self.headers)


def validation_error(errors: dict[str, list[str]], where: str = "request") -> ApiError:
    """400 with a readable summary in ``detail`` and every field's messages in ``errors``."""
    summary = "; ".join(f"{field}: {msgs[0]}" for field, msgs in list(errors.items())[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return ApiError(400, f"Invalid {where}: {summary}{more}", errors=errors)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )
