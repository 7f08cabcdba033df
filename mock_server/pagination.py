"""Cursor pagination in the DRF shape ``{"results", "next", "previous"}`` (surface doc §1.9).

Keyset, not offset: a token holds the sort key of the page edge and a direction, so pages never
duplicate or drop objects when others are created or deleted meanwhile, and the token is
self-sufficient (the SDKs do not replay filters from ``next``). Finding the page is a bisect.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from avala_mock.mock_server.errors import ApiError

DEFAULT_LIMIT = 20


def encode_cursor(position: int, reverse: bool) -> str:
    raw = f"p={position}&r={int(reverse)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        fields = dict(part.split("=", 1) for part in raw.split("&"))
        return int(fields["p"]), fields["r"] == "1"
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
        # What DRF's CursorPagination (and so Avala) answers for a token it did not issue.
        raise ApiError(404, "Invalid cursor.") from None


def paginate(
    request: web.Request,
    query: dict[str, Any],
    keys: Sequence[int],
    fetch: Callable[[int, int], list[Any]],
) -> dict[str, Any]:
    """Page over objects whose sort keys ``keys`` ascend strictly; ``fetch(i, j)`` renders objects i..j-1.

    A descending listing passes negated keys.
    """
    limit = query.get("limit") or DEFAULT_LIMIT
    token = query.get("cursor")
    n = len(keys)
    if token is None:
        start = 0
        stop = min(n, limit)
    else:
        position, reverse = decode_cursor(token)
        if reverse:
            stop = bisect_left(keys, position)
            start = max(0, stop - limit)
        else:
            start = bisect_right(keys, position)
            stop = min(n, start + limit)
    results = fetch(start, stop) if stop > start else []
    next_url = _link(request, encode_cursor(keys[stop - 1], False)) if stop < n and stop > 0 else None
    if stop == 0 and n > 0 and token is not None:  # before the first object: the next page is the first
        next_url = _link(request, encode_cursor(keys[0] - 1, False))
    prev_url = _link(request, encode_cursor(keys[start], True)) if start > 0 and start < n else None
    if start >= n and n > 0 and token is not None:  # past the end: the previous page is the last
        prev_url = _link(request, encode_cursor(keys[-1] + 1, True))
    return {"results": results, "next": next_url, "previous": prev_url}


def _link(request: web.Request, token: str) -> str:
    return str(request.url.update_query(cursor=token))
