"""Quality targets of a project (tag ``quality-targets``). Metrics and breach rules: simulators/quality.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import quality


def _project(ctx: Ctx) -> Any:
    return ctx.store.project(ctx.path["project_uid"])


def list_quality_targets(ctx: Ctx) -> dict[str, Any]:
    found = quality.targets(ctx.store, _project(ctx))
    return ctx.page([r["seq"] for r in found], lambda i, j: [wire.record(r) for r in found[i:j]])


def create_quality_target(ctx: Ctx) -> dict[str, Any]:
    return wire.record(quality.create_target(ctx.world, ctx.store, _project(ctx), ctx.body))


def get_quality_target(ctx: Ctx) -> dict[str, Any]:
    return wire.record(quality.get_target(ctx.store, _project(ctx), ctx.path["uid"]))


def update_quality_target(ctx: Ctx) -> dict[str, Any]:
    project = _project(ctx)
    target = quality.get_target(ctx.store, project, ctx.path["uid"])
    return wire.record(quality.update_target(ctx.world, ctx.store, project, target, ctx.body or {}))


def delete_quality_target(ctx: Ctx) -> None:
    quality.delete_target(ctx.store, quality.get_target(ctx.store, _project(ctx), ctx.path["uid"]))


def evaluate_quality_targets(ctx: Ctx) -> list[dict[str, Any]]:
    return [wire.record(e) for e in quality.evaluate(ctx.world, ctx.store, _project(ctx))]
