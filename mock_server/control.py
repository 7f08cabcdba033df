"""Handlers of the control API (mock_server/control.yaml): clock, reset, world summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avala_mock.mock_server import event_worker
from avala_mock.mock_server.context import Ctx
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.state import STATE
from avala_mock.simulators import events


def get_clock(ctx: Ctx) -> dict[str, Any]:
    return ctx.world.clock.describe()


def advance_clock(ctx: Ctx) -> dict[str, Any]:
    ctx.world.clock.advance(float(ctx.body["seconds"]))
    event_worker.kick(ctx.request.app)  # events due by the new time are emitted before we answer
    return ctx.world.clock.describe()


def reset(ctx: Ctx) -> dict[str, Any]:
    ctx.request.app[STATE].reset()
    return get_world(ctx)


def get_world(ctx: Ctx) -> dict[str, Any]:
    world = ctx.request.app[STATE].world
    return {
        "seed": world.seed,
        "clock": world.clock.describe(),
        "organizations": [
            {"uid": s.org.uid, "slug": s.org.slug, "datasets": len(s.datasets), "projects": len(s.projects),
             "tasks": len(s.tasks), "auto_label_jobs": len(s.jobs)}
            for s in world.stores.values()
        ],
    }


def list_events(ctx: Ctx) -> dict[str, Any]:
    """The event bus's log, brought up to the clock first."""
    from avala_mock.simulators.clock import iso
    from avala_mock.simulators.events import bus

    event_worker.kick(ctx.request.app)
    q, log = ctx.query, bus(ctx.world)
    name, since = q.get("event"), q.get("since") or 0
    found = [e for e in list(log.log) if e["seq"] > since and (
        name is None or e["event"] == name or (name.endswith(".") and e["event"].startswith(name)))]
    due = log.next_due()
    due = due if due is not None and due < 1e11 else None  # a stalled job's end is never due (inf)
    return {"count": len(found), "next_due": iso(due), "results": found[: q.get("limit") or 1000]}


def _strict_journal(ctx: Ctx) -> Any:
    from avala_mock.mock_server.strict import STRICT

    return ctx.request.app.get(STRICT)


def get_violations(ctx: Ctx) -> dict[str, Any]:
    journal = _strict_journal(ctx)
    return journal.violations_doc() if journal else {"enabled": False, "count": 0, "requests": 0, "violations": []}


def get_coverage(ctx: Ctx) -> dict[str, Any]:
    journal = _strict_journal(ctx)
    if journal is None:
        return {"enabled": False, "operations": 0, "exercised": 0, "percent": 0.0, "counts": {}, "not_exercised": []}
    return journal.coverage_doc()


def clear_violations(ctx: Ctx) -> None:
    journal = _strict_journal(ctx)
    if journal:
        journal.clear()


# ---- traffic shaping, scenarios, snapshot and journal -------------------------------------------------
def _shaped(ctx: Ctx, fn: Callable[[], Any]) -> Any:
    """Run a config change; a config the schema rejects is a 400, never half-applied."""
    from avala_mock.mock_server.shaping import ShapingError

    try:
        return fn()
    except (ShapingError, ValueError) as exc:
        raise ApiError(400, f"Invalid configuration: {exc}") from None


def pause_clock(ctx: Ctx) -> dict[str, Any]:
    ctx.world.clock.pause()
    return ctx.world.clock.describe()


def resume_clock(ctx: Ctx) -> dict[str, Any]:
    ctx.world.clock.resume()
    event_worker.kick(ctx.request.app)
    return ctx.world.clock.describe()


def set_clock_scale(ctx: Ctx) -> dict[str, Any]:
    ctx.world.clock.set_scale(float(ctx.body["scale"]))
    return ctx.world.clock.describe()


def get_scenario(ctx: Ctx) -> dict[str, Any]:
    return {"scenario": ctx.request.app[STATE].scenario}


def load_scenario(ctx: Ctx) -> dict[str, Any]:
    from avala_mock.mock_server.shaping import load_scenario as read

    state, body = ctx.request.app[STATE], ctx.body
    scenario = _shaped(ctx, lambda: read(body.get("name") or body.get("path"), body.get("scenario"), state.files))
    state.load(scenario)
    return get_scenario(ctx)


def unload_scenario(ctx: Ctx) -> None:
    ctx.request.app[STATE].load(None)


def load_world(ctx: Ctx) -> dict[str, Any]:
    from avala_mock.mock_server.shaping import load_scenario as read

    state = ctx.request.app[STATE]
    path = str(state.files.world(ctx.body["world"]))
    scenario = {**(state.scenario or {"name": "control-api"}), "world": path}
    if "seed" in ctx.body:
        scenario["seed"] = ctx.body["seed"]
    state.load(_shaped(ctx, lambda: read(data=scenario, access=state.files)))
    return get_world(ctx)


def get_snapshot(ctx: Ctx) -> dict[str, Any]:
    from avala_mock.mock_server import snapshot

    state = ctx.request.app[STATE]
    return snapshot.dump(state.parts(), secrets=bool(ctx.query.get("include_secrets")))


def restore_snapshot(ctx: Ctx) -> dict[str, Any]:
    from avala_mock.mock_server import snapshot

    state = ctx.request.app[STATE]
    saved = snapshot.load(ctx.body)
    snapshot.resume(saved["world"], saved["taken_at"])
    events.bus(saved["world"]).requeue_unanswered()  # sends on their way when it was taken: made again here
    state.restore(saved)
    return get_world(ctx)


def get_rate_limits(ctx: Ctx) -> dict[str, Any]:
    return ctx.request.app[STATE].limiter.describe()


def set_rate_limits(ctx: Ctx) -> dict[str, Any]:
    limiter = ctx.request.app[STATE].limiter
    merged = {**limiter.describe(), **ctx.body}
    _shaped(ctx, lambda: limiter.configure(merged["limit"], merged["window"], merged["rules"]))
    return limiter.describe()


def clear_rate_limits(ctx: Ctx) -> dict[str, Any]:
    state = ctx.request.app[STATE]
    limits = (state.scenario or {}).get("rate_limits", {})
    cfg = state.config
    state.limiter.configure(limits.get("limit", cfg.rate_limit), limits.get("window", cfg.rate_window),
                            limits.get("rules", cfg.rate_rules))
    return state.limiter.describe()


def get_latency(ctx: Ctx) -> dict[str, Any]:
    shaping = ctx.request.app[STATE].shaping
    return {"seed": shaping.seed, "rules": shaping.describe()["latency"]}


def set_latency(ctx: Ctx) -> dict[str, Any]:
    _shaped(ctx, lambda: ctx.request.app[STATE].shaping.set_latency(ctx.body["rules"]))
    return get_latency(ctx)


def clear_latency(ctx: Ctx) -> dict[str, Any]:
    ctx.request.app[STATE].shaping.set_latency([])
    return get_latency(ctx)


def get_faults(ctx: Ctx) -> dict[str, Any]:
    shaping = ctx.request.app[STATE].shaping
    return {"seed": shaping.seed, "rules": shaping.describe()["faults"]}


def set_faults(ctx: Ctx) -> dict[str, Any]:
    _shaped(ctx, lambda: ctx.request.app[STATE].shaping.set_faults(ctx.body["rules"]))
    return get_faults(ctx)


def clear_faults(ctx: Ctx) -> dict[str, Any]:
    ctx.request.app[STATE].shaping.set_faults([])
    return get_faults(ctx)


def get_journal(ctx: Ctx) -> dict[str, Any]:
    journal = ctx.request.app[STATE].journal
    q = ctx.query
    entries = journal.query(method=q.get("method"), path=q.get("path"), operation_id=q.get("operation_id"),
                            status=q.get("status"), fault=q.get("fault"), since=q.get("since"), limit=q.get("limit", 100),
                            organization=q.get("organization"))
    return {**journal.describe(), "entries": entries}


def clear_journal(ctx: Ctx) -> None:
    ctx.request.app[STATE].journal.clear()
