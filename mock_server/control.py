"""Handlers of the control API (mock_server/control.yaml): clock, reset, world summary."""

from __future__ import annotations

from typing import Any

from mock_server.context import Ctx
from mock_server.errors import ApiError
from mock_server.state import STATE
from simulators.clock import ClockError


def get_clock(ctx: Ctx) -> dict[str, Any]:
    return ctx.world.clock.describe()


def advance_clock(ctx: Ctx) -> dict[str, Any]:
    try:
        ctx.world.clock.advance(float(ctx.body["seconds"]))
    except ClockError as exc:
        raise ApiError(409, str(exc)) from None
    return ctx.world.clock.describe()


def reset(ctx: Ctx) -> dict[str, Any]:
    ctx.request.app[STATE].reset()
    return get_world(ctx)


def get_world(ctx: Ctx) -> dict[str, Any]:
    world = ctx.request.app[STATE].world
    return {
        "seed": world.seed,
        "clock": world.clock.describe(),
        "organizations": [
            {"uid": s.org.uid, "slug": s.org.slug, "datasets": len(s.datasets), "projects": len(s.projects),
             "tasks": len(s.tasks), "auto_label_jobs": len(s.jobs)}
            for s in world.stores.values()
        ],
    }
