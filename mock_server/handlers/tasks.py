"""Tasks (tag ``tasks``)."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx


def list_tasks(ctx: Ctx) -> dict[str, Any]:
    project, status = ctx.query.get("project"), ctx.query.get("status")
    tasks = [
        t for t in ctx.store.tasks.values()
        if (project is None or t.project == project) and (status is None or t.status == status)
    ]
    return ctx.page_of(tasks, wire.task)


def get_task(ctx: Ctx) -> dict[str, Any]:
    return wire.task(ctx.store.task(ctx.path["uid"]))
