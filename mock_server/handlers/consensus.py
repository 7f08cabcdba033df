"""Consensus of a project (tag ``consensus``). Panel, scoring and the clock-driven computation:
simulators/consensus.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import consensus
from avala_mock.simulators.clock import iso


def _project(ctx: Ctx) -> Any:
    return ctx.store.project(ctx.path["project_uid"])


def get_consensus_summary(ctx: Ctx) -> dict[str, Any]:
    return wire.record(consensus.summary(ctx.store, _project(ctx), ctx.now))


def list_consensus_scores(ctx: Ctx) -> dict[str, Any]:
    project, now = _project(ctx), ctx.now
    n = consensus.score_count(ctx.store, project, now)
    return ctx.page(range(n), lambda i, j: [wire.record(s) for s in consensus.scores(ctx.store, project, now, i, j)])


def compute_consensus(ctx: Ctx) -> dict[str, Any]:
    project = _project(ctx)
    run = consensus.start(ctx.world, ctx.store, project)
    seconds = consensus.duration_s(run)
    return {
        "status": "started",
        "message": f"Consensus computation started for project {project.uid}; results in about {seconds:.0f} s.",
        "uid": run["uid"],
        "config": run["config"],
        "started_at": iso(run["created_at"]),
        "estimated_completion_at": iso(run["created_at"] + seconds),
    }


def get_consensus_config(ctx: Ctx) -> dict[str, Any]:
    return _render_config(consensus.get_config(ctx.world, ctx.store, _project(ctx)))


def update_consensus_config(ctx: Ctx) -> dict[str, Any]:
    return _render_config(consensus.update_config(ctx.world, ctx.store, _project(ctx), ctx.body or {}))


def _render_config(record: dict[str, Any]) -> dict[str, Any]:
    return wire.record(record)
