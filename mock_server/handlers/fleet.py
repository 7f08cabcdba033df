"""Fleet devices, recordings, events, rules, alerts and alert channels (tag ``fleet``).

Thin: parse, call simulators/fleet.py (where the rules live), render. Python's ``device_id`` /
``recording_id`` / ``rule_id`` arrive as the wire names ``device`` / ``recording`` / ``rule``.
"""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import crud, wire
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import fleet


def _render_device(record: dict[str, Any]) -> dict[str, Any]:
    """The token is shown once, by the register answer; everywhere else the field is there, null."""
    return {**wire.record(record), "device_token": None}


def _render_recording(ctx: Ctx) -> Any:
    now = ctx.now
    return lambda record: wire.record(fleet.settle_recording(record, now))


def _render_channel(record: dict[str, Any]) -> dict[str, Any]:
    out = wire.record(record)
    out["config"] = fleet.mask_config(out.get("config"))
    return out


def _page(ctx: Ctx, found: list[dict[str, Any]], render: Any, descending: bool = False) -> dict[str, Any]:
    if descending:  # the page keys must ascend: newest (highest seq) first
        found = sorted(found, key=lambda r: -r["seq"])
    keys = [-r["seq"] for r in found] if descending else [r["seq"] for r in found]
    return ctx.page(keys, lambda i, j: [render(r) for r in found[i:j]])


# --- devices -------------------------------------------------------------------------------------


def list_fleet_devices(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, fleet.DEVICES, filters={"status": "status", "type": "type"}, render=_render_device)


def register_fleet_device(ctx: Ctx) -> dict[str, Any]:
    record, token = fleet.register_device(ctx.world, ctx.store, ctx.body)
    return {**_render_device(record), "device_token": token}


def get_fleet_device(ctx: Ctx) -> dict[str, Any]:
    return _render_device(fleet.get(ctx.store, fleet.DEVICES, ctx.path["uid"]))


def update_fleet_device(ctx: Ctx) -> dict[str, Any]:
    return _render_device(fleet.update_device(ctx.world, ctx.store, ctx.path["uid"], ctx.body))


def delete_fleet_device(ctx: Ctx) -> None:
    fleet.delete_device(ctx.world, ctx.store, ctx.path["uid"])


# --- recordings ----------------------------------------------------------------------------------


def list_fleet_recordings(ctx: Ctx) -> dict[str, Any]:
    found = fleet.list_recordings(ctx.store, ctx.now, device=ctx.query.get("device"), status=ctx.query.get("status"))
    return _page(ctx, found, _render_recording(ctx), descending=True)


def get_fleet_recording(ctx: Ctx) -> dict[str, Any]:
    return _render_recording(ctx)(fleet.get(ctx.store, fleet.RECORDINGS, ctx.path["uid"]))


def update_fleet_recording(ctx: Ctx) -> dict[str, Any]:
    record = fleet.update_recording(ctx.world, ctx.store, ctx.path["uid"], ctx.body)
    return _render_recording(ctx)(record)


def delete_fleet_recording(ctx: Ctx) -> None:
    fleet.delete_recording(ctx.world, ctx.store, ctx.path["uid"])


# --- events --------------------------------------------------------------------------------------


def list_fleet_events(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    found = fleet.list_events(ctx.store, recording=q.get("recording"), device=q.get("device"), type=q.get("type"),
                              severity=q.get("severity"))
    return ctx.page([fleet.event_sort_key(e) for e in found], lambda i, j: [wire.record(e) for e in found[i:j]])


def create_fleet_event(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.create_event(ctx.world, ctx.store, ctx.body))


def create_fleet_events_batch(ctx: Ctx) -> dict[str, Any]:
    return {"created": len(fleet.create_events(ctx.world, ctx.store, ctx.body["events"]))}


def get_fleet_event(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.get(ctx.store, fleet.EVENTS, ctx.path["uid"]))


def delete_fleet_event(ctx: Ctx) -> None:
    fleet.delete_event(ctx.world, ctx.store, ctx.path["uid"])


# --- rules ---------------------------------------------------------------------------------------


def list_fleet_rules(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, fleet.RULES, filters={"enabled": "enabled"})


def create_fleet_rule(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.create_rule(ctx.world, ctx.store, ctx.body))


def get_fleet_rule(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.get(ctx.store, fleet.RULES, ctx.path["uid"]))


def update_fleet_rule(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.update_rule(ctx.world, ctx.store, ctx.path["uid"], ctx.body))


def delete_fleet_rule(ctx: Ctx) -> None:
    fleet.delete_rule(ctx.world, ctx.store, ctx.path["uid"])


# --- alerts --------------------------------------------------------------------------------------


def list_fleet_alerts(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    found = fleet.list_alerts(ctx.store, status=q.get("status"), severity=q.get("severity"), device=q.get("device"),
                              rule=q.get("rule"))
    return _page(ctx, found, wire.record, descending=True)


def get_fleet_alert(ctx: Ctx) -> dict[str, Any]:
    return wire.record(fleet.get(ctx.store, fleet.ALERTS, ctx.path["uid"]))


def acknowledge_fleet_alert(ctx: Ctx) -> dict[str, Any]:
    user_uid = ctx.user.uid if ctx.user else None
    return wire.record(fleet.acknowledge_alert(ctx.world, ctx.store, ctx.path["uid"], user_uid))


def resolve_fleet_alert(ctx: Ctx) -> dict[str, Any]:
    note = (ctx.body or {}).get("resolution_note")
    return wire.record(fleet.resolve_alert(ctx.world, ctx.store, ctx.path["uid"], note))


# --- alert channels ------------------------------------------------------------------------------


def list_fleet_alert_channels(ctx: Ctx) -> dict[str, Any]:
    return crud.list_page(ctx, fleet.CHANNELS, render=_render_channel)


def create_fleet_alert_channel(ctx: Ctx) -> dict[str, Any]:
    return _render_channel(fleet.create_channel(ctx.world, ctx.store, ctx.body))


def delete_fleet_alert_channel(ctx: Ctx) -> None:
    fleet.delete_channel(ctx.world, ctx.store, ctx.path["uid"])


def test_fleet_alert_channel(ctx: Ctx) -> dict[str, Any]:
    return fleet.test_channel(ctx.world, ctx.store, ctx.path["uid"])
