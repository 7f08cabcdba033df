"""Shared steps of the plain-record handlers (list with filters, get, delete), so each handler module
states only what is particular to its resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import annotations
from avala_mock.simulators.records import Collection, collection
from avala_mock.simulators.world import Dataset


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


def dataset_item(ctx: Ctx, ds: Dataset, index: int, now: float) -> dict[str, Any]:
    """A dataset item with its results as of ``now`` (items are listed from datasets and from slices)."""
    return wire.dataset_item(ctx.world, ds, index, annotations.item_results(ctx.store, ds, index, now))
