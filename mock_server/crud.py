"""Shared steps of the plain-record handlers (list with filters, get, delete), so each handler module
states only what is particular to its resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mock_server import wire
from mock_server.context import Ctx
from simulators.records import Collection, collection


def records(ctx: Ctx, kind: str) -> Collection:
    return collection(ctx.store, kind)


def list_page(
    ctx: Ctx,
    kind: str,
    *,
    filters: dict[str, str] | None = None,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
    render: Callable[[dict[str, Any]], dict[str, Any]] = wire.record,
    descending: bool = False,
) -> dict[str, Any]:
    """A cursor page of ``kind``; ``filters`` maps query parameter -> record field (equality)."""
    equal = {field: ctx.query.get(param) for param, field in (filters or {}).items()}
    found = records(ctx, kind).filter(predicate, **equal)
    if descending:
        found.reverse()
    keys = [-r["seq"] for r in found] if descending else [r["seq"] for r in found]
    return ctx.page(keys, lambda i, j: [render(r) for r in found[i:j]])
