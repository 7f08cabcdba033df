"""Agents, agent executions and agent actions (tag ``agents``). The rules live in simulators/agents.py."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import agents, events


def _render_agent(ctx: Ctx, agent: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    """The Agent model: ``secret`` only in the create answer, ``execution_stats`` always."""
    out = wire.record(agent)
    out["secret"] = agent["_secret"] if with_secret else None
    out["execution_stats"] = agents.execution_stats(ctx.store, agent, ctx.now)
    return out


def _render_execution(ctx: Ctx, execution: dict[str, Any]) -> dict[str, Any]:
    return wire.record(agents.settle(execution, ctx.now))


def _agent(ctx: Ctx) -> dict[str, Any]:
    return agents.agents(ctx.store).get(ctx.path["uid"])


def list_agents(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, agents.AGENT, render=lambda a: _render_agent(ctx, a))


def create_agent(ctx: Ctx) -> dict[str, Any]:
    return _render_agent(ctx, agents.create_agent(ctx.world, ctx.store, ctx.body), with_secret=True)


def get_agent(ctx: Ctx) -> dict[str, Any]:
    return _render_agent(ctx, _agent(ctx))


def update_agent(ctx: Ctx) -> dict[str, Any]:
    return _render_agent(ctx, agents.update_agent(ctx.world, ctx.store, _agent(ctx), ctx.body))


def delete_agent(ctx: Ctx) -> None:
    agents.delete_agent(ctx.store, ctx.path["uid"])


def list_agent_executions(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    found = agents.list_executions(ctx.store, _agent(ctx), ctx.now, status=q.get("status"),
                                   project=q.get("project"), task_types=q.get("task_types"))
    return ctx.page([e["seq"] for e in found], lambda i, j: [_render_execution(ctx, e) for e in found[i:j]])


def test_agent(ctx: Ctx) -> dict[str, Any]:
    return agents.test_agent(ctx.world, ctx.store, _agent(ctx))


def create_agent_action(ctx: Ctx) -> None:
    body = ctx.body
    events.act_on_execution(ctx.world, ctx.store, body["execution"], body["action"], body.get("reason"))
