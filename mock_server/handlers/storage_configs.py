"""Storage configurations (tag ``storage-configs``). The rules live in simulators/storage_configs.py.

Credentials are stored under a private key of the record; ``wire.record`` never renders private keys,
so no response can carry them.
"""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import storage_configs as sc


def _scope(ctx: Ctx) -> dict[str, Any]:
    return sc.scope(ctx.world, ctx.store, ctx.user, ctx.query.get("organization"))


def list_storage_configs(ctx: Ctx) -> dict[str, Any]:
    found = sc.list_configs(ctx.store, _scope(ctx))
    return ctx.page([r["seq"] for r in found], lambda i, j: [wire.record(r) for r in found[i:j]])


def create_storage_config(ctx: Ctx) -> dict[str, Any]:
    org = _scope(ctx)
    return wire.record(sc.create_config(ctx.world, ctx.store, org, ctx.body))


def get_storage_config_setup_info(ctx: Ctx) -> dict[str, Any]:
    return sc.setup_info(_scope(ctx))


def test_storage_config(ctx: Ctx) -> dict[str, Any]:
    return sc.verify(ctx.world, sc.get_config(ctx.world, ctx.store, ctx.user, ctx.path["uid"]))


def get_storage_config(ctx: Ctx) -> dict[str, Any]:
    slug = ctx.query.get("organization")
    org = _scope(ctx) if slug is not None else None
    return wire.record(sc.get_config(ctx.world, ctx.store, ctx.user, ctx.path["uid"], org))


def delete_storage_config(ctx: Ctx) -> None:
    sc.delete_config(ctx.store, sc.get_config(ctx.world, ctx.store, ctx.user, ctx.path["uid"]))
