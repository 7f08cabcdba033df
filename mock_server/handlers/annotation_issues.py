"""QC annotation issues and the QC tool catalogue (tag ``annotation-issues``). Rules:
simulators/annotation_issues.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import annotation_issues as issues
from avala_mock.simulators import media


def list_sequence_annotation_issues(ctx: Ctx) -> list[dict[str, Any]]:
    found = issues.sequence_issues(ctx.store, ctx.path["sequence_uid"], dataset_item_uid=ctx.query.get("dataset_item_uid"),
                                   project_uid=ctx.query.get("project_uid"))
    return [_issue(ctx, r) for r in found]


def create_annotation_issue(ctx: Ctx) -> dict[str, Any]:
    return _issue(ctx, issues.create_issue(ctx.world, ctx.store, ctx.user, ctx.path["sequence_uid"], ctx.body))


def update_annotation_issue(ctx: Ctx) -> dict[str, Any]:
    issue = issues.get_issue(ctx.store, ctx.path["sequence_uid"], ctx.path["issue_uid"])
    return _issue(ctx, issues.update_issue(ctx.world, ctx.store, issue, ctx.body or {}))


def delete_annotation_issue(ctx: Ctx) -> None:
    issues.delete_issue(ctx.store, issues.get_issue(ctx.store, ctx.path["sequence_uid"], ctx.path["issue_uid"]))


def list_dataset_annotation_issues(ctx: Ctx) -> list[dict[str, Any]]:
    dataset = ctx.store.dataset_by_slug(ctx.path["owner"], ctx.path["slug"])
    return [_issue(ctx, r) for r in issues.dataset_issues(ctx.store, dataset, ctx.query.get("sequence_uid"))]


def get_annotation_issue_metrics(ctx: Ctx) -> dict[str, Any]:
    dataset = ctx.store.dataset_by_slug(ctx.path["owner"], ctx.path["slug"])
    return issues.metrics(issues.dataset_issues(ctx.store, dataset, ctx.query.get("sequence_uid")), ctx.now)


def list_qc_available_tools(ctx: Ctx) -> list[dict[str, Any]]:
    return issues.tools_for(ctx.world, ctx.query["dataset_type"])


def _issue(ctx: Ctx, record: dict[str, Any]) -> dict[str, Any]:
    """The issue as answered: its reporter's picture on this server's media plane (made per request,
    as the URL carries the origin the client used)."""
    out = wire.record(record)
    reporter = out.get("reporter")
    if isinstance(reporter, dict) and reporter.get("username"):
        out["reporter"] = {**reporter, "picture": media.avatar_url(ctx.world, reporter["username"])}
    return out
