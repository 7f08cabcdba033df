"""Projects and the current user (tag ``projects``). Both path families serve the same data (§2.2)."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx


def get_current_user(ctx: Ctx) -> dict[str, Any]:
    return wire.user(ctx.user, ctx.store)  # type: ignore[arg-type]


def list_projects(ctx: Ctx) -> dict[str, Any]:
    now = ctx.now
    return ctx.page_of(list(ctx.store.projects.values()), lambda p: wire.project(p.settle(now)))


def get_project(ctx: Ctx) -> dict[str, Any]:
    return wire.project(ctx.store.project(ctx.path["uid"]).settle(ctx.now))


def list_my_projects(ctx: Ctx) -> dict[str, Any]:
    return list_projects(ctx)


def get_my_project(ctx: Ctx) -> dict[str, Any]:
    return get_project(ctx)
