"""Annotations bulk edit (tag ``annotations``). The rules live in simulators/annotations.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import annotations, datasets


def bulk_edit_annotations(ctx: Ctx) -> dict[str, Any]:
    ds = ctx.store.dataset_by_slug(datasets.owner_alias(ctx.store, ctx.path["owner"]), ctx.path["slug"])
    return annotations.apply_bulk_edits(ctx.world, ctx.store, ctx.user, ds, ctx.body)  # type: ignore[arg-type]
