"""Exports (tag ``exports``). The rules and the file's content live in simulators/exports.py; the file
itself is served by mock_server/downloads.py at the URL an exported export carries."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import exports


def list_exports(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, exports.KIND, render=lambda r: _render_export(ctx, r), descending=True)


def create_export(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body or {}
    rec = exports.create_export(ctx.world, ctx.store, project=body.get("project"), dataset=body.get("dataset"))
    return _render_export(ctx, rec)


def get_export(ctx: Ctx) -> dict[str, Any]:
    return _render_export(ctx, crud.records(ctx, exports.KIND).get(ctx.path["uid"]))


def _render_export(ctx: Ctx, rec: dict[str, Any]) -> dict[str, Any]:
    out = exports.state(rec, ctx.now)
    exported = out["status"] == "exported"
    out["download_url"] = str(ctx.request.url.origin()) + exports.download_path(rec) if exported else None
    return out
