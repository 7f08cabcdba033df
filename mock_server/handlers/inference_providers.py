"""Inference providers (tag ``inference-providers``). The rules live in simulators/inference_providers.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import inference_providers as providers


def _render_provider(provider: dict[str, Any]) -> dict[str, Any]:
    """The InferenceProvider model, with secret-looking ``config`` values masked."""
    out = wire.record(provider)
    out["config"] = providers.masked_config(provider["config"])
    return out


def _provider(ctx: Ctx) -> dict[str, Any]:
    return providers.providers(ctx.store).get(ctx.path["uid"])


def list_inference_providers(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, providers.PROVIDER, render=_render_provider)


def create_inference_provider(ctx: Ctx) -> dict[str, Any]:
    return _render_provider(providers.create_provider(ctx.world, ctx.store, ctx.body))


def get_inference_provider(ctx: Ctx) -> dict[str, Any]:
    return _render_provider(_provider(ctx))


def update_inference_provider(ctx: Ctx) -> dict[str, Any]:
    return _render_provider(providers.update_provider(ctx.world, ctx.store, _provider(ctx), ctx.body))


def delete_inference_provider(ctx: Ctx) -> None:
    providers.providers(ctx.store).remove(ctx.path["uid"])


def test_inference_provider(ctx: Ctx) -> dict[str, Any]:
    return providers.test_provider(ctx.world, _provider(ctx))
