"""Datasets, their items and sequences (tag ``datasets``)."""

from __future__ import annotations

from typing import Any

from mock_server import wire
from mock_server.context import Ctx
from simulators.world import Dataset, NotFound


def list_datasets(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    name = q.get("name", "").lower()
    found = [
        d for d in ctx.store.datasets.values()
        if (not name or name in d.name.lower())
        and all(q.get(k) in (None, getattr(d, k)) for k in ("data_type", "status", "visibility"))
    ]
    return ctx.page_of(found, wire.dataset)


def get_dataset(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(ctx.store.dataset(ctx.path["uid"]))


def get_dataset_by_slug(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(_by_slug(ctx))


def list_dataset_items(ctx: Ctx) -> dict[str, Any]:
    ds, now = _by_slug(ctx), ctx.now
    return ctx.page(range(len(ds.item_uids)), lambda i, j: [wire.dataset_item(ds, k, ctx.store, now) for k in range(i, j)])


def get_dataset_item(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    index = ds.item_index.get(ctx.path["item_uid"])
    if index is None:
        raise NotFound(f"Item {ctx.path['item_uid']!r} not found in {ds.owner_name}/{ds.slug}.")
    return wire.dataset_item(ds, index, ctx.store, ctx.now)


def list_dataset_sequences(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    return ctx.page_of(ds.sequences, lambda s: wire.sequence(ds, s, detail=False))


def get_dataset_sequence(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    index = ds.sequence_index.get(ctx.path["sequence_uid"])
    if index is None:
        raise NotFound(f"Sequence {ctx.path['sequence_uid']!r} not found in {ds.owner_name}/{ds.slug}.")
    return wire.sequence(ds, ds.sequences[index], detail=True)


def _by_slug(ctx: Ctx) -> Dataset:
    return ctx.store.dataset_by_slug(ctx.path["owner"], ctx.path["slug"])
