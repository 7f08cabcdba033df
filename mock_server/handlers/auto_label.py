"""Auto-label jobs (tag ``auto-label``). The rules live in simulators/autolabel.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import autolabel


def create_auto_label_job(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body or {}
    project = ctx.store.project(ctx.path["project_uid"])
    job = autolabel.create_job(
        ctx.world,
        ctx.store,
        project,
        model_type=body.get("model_type", "yolo"),
        confidence_threshold=body.get("confidence_threshold", 0.5),
        labels=body.get("labels"),
        dry_run=body.get("dry_run", False),
    )
    return wire.job(job.created_view())


def list_auto_label_jobs(ctx: Ctx) -> dict[str, Any]:
    now = ctx.now
    jobs = autolabel.list_jobs(ctx.store, now, project=ctx.query.get("project"), status=ctx.query.get("status"))
    return ctx.page_of(jobs, lambda j: wire.job(j.view(now)), descending=True)


def get_auto_label_job(ctx: Ctx) -> dict[str, Any]:
    return wire.job(ctx.store.job(ctx.path["uid"]).view(ctx.now))


def cancel_auto_label_job(ctx: Ctx) -> None:
    autolabel.cancel_job(ctx.world, ctx.store, ctx.store.job(ctx.path["uid"]))
