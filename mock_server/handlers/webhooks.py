"""Webhooks and webhook deliveries (tag ``webhooks``). The rules live in simulators/webhooks.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import events, webhooks


def _render_webhook(webhook: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    """The Webhook model: the HMAC ``secret`` only in the create answer."""
    out = wire.record(webhook)
    out["secret"] = webhook["_secret"] if with_secret else None
    return out


def _webhook(ctx: Ctx) -> dict[str, Any]:
    return webhooks.webhooks(ctx.store).get(ctx.path["uid"])


def list_webhooks(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, webhooks.WEBHOOK, render=_render_webhook)


def create_webhook(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    webhook = webhooks.create_webhook(ctx.world, ctx.store, target_url=body["target_url"], events=body["events"],
                                      is_active=body.get("is_active", True), secret=body.get("secret"))
    return _render_webhook(webhook, with_secret=True)


def get_webhook(ctx: Ctx) -> dict[str, Any]:
    return _render_webhook(_webhook(ctx))


def update_webhook(ctx: Ctx) -> dict[str, Any]:
    return _render_webhook(webhooks.update_webhook(ctx.world, ctx.store, _webhook(ctx), ctx.body))


def delete_webhook(ctx: Ctx) -> None:
    webhooks.delete_webhook(ctx.store, ctx.path["uid"])


def test_webhook(ctx: Ctx) -> dict[str, Any]:
    return events.test_webhook(ctx.world, ctx.store, _webhook(ctx))


def list_webhook_deliveries(ctx: Ctx) -> dict[str, Any]:
    """Newest first: the page keys are negated ``seq`` over the records in reverse creation order."""
    found = webhooks.deliveries(ctx.store).values()[::-1]
    return ctx.page([-d["seq"] for d in found], lambda i, j: [wire.record(d) for d in found[i:j]])


def get_webhook_delivery(ctx: Ctx) -> dict[str, Any]:
    return wire.record(webhooks.deliveries(ctx.store).get(ctx.path["uid"]))
