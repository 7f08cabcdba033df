"""Datasets, their items and sequences, create / health / transfer (tag ``datasets``).

The rules live in simulators/datasets.py (create, indexing, transfer, health) and
simulators/annotations.py (bulk-edited objects shown on sequences).
"""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import datasets as rules
from avala_mock.simulators.annotations import bulk_results
from avala_mock.simulators.errors import NotFound
from avala_mock.simulators.world import Dataset


def list_datasets(ctx: Ctx) -> dict[str, Any]:
    q, now = ctx.query, ctx.now
    name = q.get("name", "").lower()
    for d in ctx.store.datasets.values():
        d.settle(now)  # the status filter sees indexing that ended meanwhile
    found = [
        d for d in ctx.store.datasets.values()
        if (not name or name in d.name.lower())
        and all(q.get(k) in (None, getattr(d, k)) for k in ("data_type", "status", "visibility"))
    ]
    return ctx.page_of(found, wire.dataset)


def create_dataset(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(rules.create_from_body(ctx.world, ctx.store, ctx.user, ctx.body).settle(ctx.now))  # type: ignore[arg-type]


def get_dataset(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(ctx.store.dataset(ctx.path["uid"]).settle(ctx.now))


def get_dataset_by_slug(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(_by_slug(ctx).settle(ctx.now))


def transfer_dataset(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body or {}
    ds = rules.transfer_dataset(ctx.world, ctx.store, ctx.user, _by_slug(ctx),  # type: ignore[arg-type]
                                organization_uid=body.get("organization_uid"), owner_username=body.get("owner_username"))
    return wire.dataset(ds.settle(ctx.now))


def get_dataset_health(ctx: Ctx) -> dict[str, Any]:
    return wire.record(rules.health(_by_slug(ctx), ctx.store, ctx.now))


def list_dataset_items(ctx: Ctx) -> dict[str, Any]:
    ds, now = _by_slug(ctx), ctx.now
    return ctx.page(range(len(ds.item_uids)), lambda i, j: [crud.dataset_item(ctx, ds, k, now) for k in range(i, j)])


def get_dataset_item(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    index = ds.item_index.get(ctx.path["item_uid"])
    if index is None:
        raise NotFound(f"Item {ctx.path['item_uid']!r} not found in {ds.owner_name}/{ds.slug}.")
    return crud.dataset_item(ctx, ds, index, ctx.now)


def list_dataset_sequences(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    return ctx.page_of(ds.sequences, lambda s: wire.sequence(ctx.world, ds, s, detail=False))


def get_dataset_sequence(ctx: Ctx) -> dict[str, Any]:
    ds = _by_slug(ctx)
    index = ds.sequence_index.get(ctx.path["sequence_uid"])
    if index is None:
        raise NotFound(f"Sequence {ctx.path['sequence_uid']!r} not found in {ds.owner_name}/{ds.slug}.")
    seq = ds.sequences[index]
    out = wire.sequence(ctx.world, ds, seq, detail=True)
    out["annotations"] = {"results": bulk_results(ds.objects.get(seq.uid, {}))}  # 3D cuboids / polylines
    return out


def _by_slug(ctx: Ctx) -> Dataset:
    owner = rules.owner_alias(ctx.store, ctx.path["owner"])  # a member's email names their username
    return ctx.store.dataset_by_slug(owner, ctx.path["slug"])

