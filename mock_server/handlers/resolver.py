"""The anonymous public dataset resolver (tag ``resolver``, surface doc §2.20). No key: the state is the
world's (``simulators/resolver.py``), not an organisation's. A withdrawn revision answers 410 with the
tombstone document the SDK verifies."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from aiohttp import web

from avala_mock.mock_server.context import Ctx
from avala_mock.mock_server.errors import json_response
from avala_mock.simulators import resolver


def resolve_dataset_reference(ctx: Ctx) -> dict[str, Any]:
    owner, dataset, selector = ctx.path["owner"], ctx.path["dataset"], ctx.path["selector"]
    rev = resolver.resolve_reference(resolver.registry(ctx.world), owner, dataset, selector)
    return resolver.revision_document(rev, f"{owner}/{dataset}@{selector}")


def resolve_dataset_revision(ctx: Ctx) -> dict[str, Any]:
    rev = _revision(ctx)
    return resolver.revision_document(rev, rev.canonical_reference)


def list_resolved_objects(ctx: Ctx) -> dict[str, Any]:
    rev, q = _revision(ctx), ctx.query
    ordinals = q.get("ordinals")
    return resolver.object_page(
        rev,
        role=q.get("role"),
        ordinal=q.get("ordinal"),
        ordinals=[int(v) for v in ordinals] if ordinals is not None else None,
        cursor=q.get("cursor"),
        limit=q.get("limit") or resolver.MAX_PAGE,
    )


def get_resolved_object_access(ctx: Ctx) -> web.Response:
    return _grant(ctx)


def create_resolved_object_access(ctx: Ctx) -> web.Response:
    return _grant(ctx)


def _grant(ctx: Ctx) -> web.Response:
    """The grant with a ``Date`` header from the virtual clock, so ``expires_at - Date`` is the lifetime."""
    grant, issued = resolver.access_grant(ctx.world, _revision(ctx), ctx.path["object_uid"], ctx.now)
    return json_response(grant, 200, {"Date": formatdate(issued, usegmt=True), "Cache-Control": "no-store"})


def _revision(ctx: Ctx) -> resolver.Revision:
    return resolver.resolve_exact(resolver.registry(ctx.world), ctx.path["dataset_uid"], ctx.path["revision_sha256"])
