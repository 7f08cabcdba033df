"""Datasets, their items and sequences, create / health / transfer (tag ``datasets``).

The rules live in simulators/datasets.py (create, indexing, transfer, health) and
simulators/annotations.py (bulk-edited objects shown on sequences).
"""

from __future__ import annotations

from typing import Any

from mock_server import wire
from mock_server.context import Ctx
from mock_server.errors import ApiError
from simulators import datasets as rules
from simulators.annotations import bulk_results
from simulators.world import Dataset, NotFound


def list_datasets(ctx: Ctx) -> dict[str, Any]:
    q, now = ctx.query, ctx.now
    name = q.get("name", "").lower()
    for d in ctx.store.datasets.values():
        rules.settle_dataset(d, now)  # the status filter sees indexing that ended meanwhile
    found = [
        d for d in ctx.store.datasets.values()
        if (not name or name in d.name.lower())
        and all(q.get(k) in (None, getattr(d, k)) for k in ("data_type", "status", "visibility"))
    ]
    return ctx.page_of(found, lambda d: wire.dataset(d, now))


def create_dataset(ctx: Ctx) -> dict[str, Any]:
    try:
        ds = rules.create_from_body(ctx.world, ctx.store, ctx.user, ctx.body)  # type: ignore[arg-type]
    except PermissionError as exc:
        raise ApiError(403, str(exc)) from None
    return wire.dataset(ds, ctx.now)


def get_dataset(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(ctx.store.dataset(ctx.path["uid"]), ctx.now)


def get_dataset_by_slug(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(_by_slug(ctx), ctx.now)


def transfer_dataset(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body or {}
    try:
        ds = rules.transfer_dataset(ctx.world, ctx.store, ctx.user, _by_slug(ctx),  # type: ignore[arg-type]
                                    organization_uid=body.get("organization_uid"),
                                    owner_username=body.get("owner_username"))
    except PermissionError as exc:
        raise ApiError(403, str(exc)) from None
    return wire.dataset(ds, ctx.now)


def get_dataset_health(ctx: Ctx) -> dict[str, Any]:
    return wire.record(rules.health(_by_slug(ctx), ctx.store, ctx.now))


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
    seq = ds.sequences[index]
    out = wire.sequence(ds, seq, detail=True)
    out["annotations"] = {"results": bulk_results(ds.objects.get(seq.uid, {}))}  # 3D cuboids / polylines
    return out


def _by_slug(ctx: Ctx) -> Dataset:
    owner = rules.owner_alias(ctx.store, ctx.path["owner"])  # a member's email names their username
    return ctx.store.dataset_by_slug(owner, ctx.path["slug"])
