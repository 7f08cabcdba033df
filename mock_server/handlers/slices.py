"""Slices (tag ``slices``). The selection rules, ownership and status live in simulators/slices.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import slices
from avala_mock.simulators.world import OrgStore

FEATURED = 4  # how many item thumbnails a ready slice features


def create_slice(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    record = slices.create_slice(
        ctx.world,
        ctx.store,
        name=body["name"],
        visibility=body["visibility"],
        sub_slices=body["sub_slices"],
        organization=body.get("organization"),
        random_selection_count=body.get("random_selection_count"),
    )
    return _render(ctx, record)


def list_slices(ctx: Ctx) -> dict[str, Any]:
    found = slices.list_slices(ctx.store, ctx.path["owner"])
    keys = [r["seq"] for r in found]
    return ctx.page(keys, lambda i, j: [_render(ctx, r) for r in found[i:j]])


def get_slice(ctx: Ctx) -> dict[str, Any]:
    return _render(ctx, _slice(ctx))


def list_slice_items(ctx: Ctx) -> dict[str, Any]:
    record, now = _slice(ctx), ctx.now
    members = slices.members(record)
    return ctx.page(range(len(members)), lambda i, j: [crud.dataset_item(ctx, ds, k, now) for ds, k in members.page(i, j)])


def get_slice_item(ctx: Ctx) -> dict[str, Any]:
    ds, index = slices.member(_slice(ctx), ctx.path["item_uid"])
    return crud.dataset_item(ctx, ds, index, ctx.now)


def _slice(ctx: Ctx) -> dict[str, Any]:
    return slices.get_slice(ctx.store, ctx.path["owner"], ctx.path["slug"])


def _render(ctx: Ctx, record: dict[str, Any]) -> dict[str, Any]:
    """The record plus what depends on the clock (status, featured thumbnails once ready) and the
    organisation as it is now."""
    now = ctx.now
    status = slices.status(record, now)
    featured = []
    if status == "ready":
        for ds, k in slices.members(record).page(0, FEATURED):
            featured.extend(crud.dataset_item(ctx, ds, k, now)["thumbnails"][:1])
    return {**wire.record(record), "owner_name": ctx.store.org.slug, "status": status,
            "organization": _organization(ctx.store),
            "featured_slice_item_urls": featured}


def _organization(store: OrgStore) -> dict[str, Any]:
    org = store.org
    return {"uid": org.uid, "name": org.name, "slug": org.slug, "handle": org.slug, "visibility": org.visibility}

