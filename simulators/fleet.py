"""The simulated fleet backend (surface doc §2.17): devices, their recordings, events on recordings,
rules that fire on events and raise alerts, and alert channels. No HTTP here.

Everything is a plain record (simulators/records.py) in the organisation's collections, so another
organisation's key cannot see any of it. A recording's processing runs on the virtual clock as a
``Timeline`` kept in its private ``_timeline`` key and settled whenever the recording is read.

Choices (also listed in openapi.yaml's description):
* Deleting a device, recording or rule keeps what refers to it (recordings, events, alerts) with the
  reference set to null, as Django's ``on_delete=SET_NULL`` would; deleting a recording deletes its events.
* An event marks its device seen (``last_seen_at`` = now) and brings a ``provisioning`` device ``online``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from avala_mock.simulators import fleet_rules
from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Conflict, Invalid, NotFound
from avala_mock.simulators.records import Collection, collection, declare, new_record, patch
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import OrgStore, World

DEVICES, RECORDINGS, EVENTS = "fleet_device", "fleet_recording", "fleet_event"
RULES, ALERTS, CHANNELS = "fleet_rule", "fleet_alert", "fleet_alert_channel"
declare(RECORDINGS, indexes=("device",))
# Events and the alerts they raise are telemetry streams: like deliveries and executions, an organisation
# keeps the newest ``retention`` of each (a fleet posting all night must not grow the mock without bound).
declare(EVENTS, indexes=("recording", "device"), retained=True)
declare(ALERTS, indexes=("rule", "recording", "event"), retained=True)

DEVICE_STATUSES = ("provisioning", "online", "offline", "maintenance", "error")
RECORDING_STATUSES = ("uploading", "processing", "ready", "error", "archived")
# Seed/fixture names accepted on PATCH and stored as the status the CLI understands.
RECORDING_ALIASES = {"recording": "uploading", "uploaded": "processing", "completed": "ready"}
ALERT_STATUS_ALIASES = {"active": "open"}
LABELS = {DEVICES: "Device", RECORDINGS: "Recording", EVENTS: "Event", RULES: "Rule", ALERTS: "Alert", CHANNELS: "Alert channel"}
CHANNEL_TYPES = ("email", "webhook", "slack")
SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")
UNREACHABLE_SUFFIXES = (".invalid", ".test", ".example", ".localhost")

PROCESSING_BASE_S = 5.0  # virtual seconds to index a recording, plus size / rate
PROCESSING_BYTES_PER_S = 50e6
TOPIC_CATALOGUE = (
    ("/camera/front/image_raw", "sensor_msgs/msg/Image", 30.0),
    ("/camera/left/image_raw", "sensor_msgs/msg/Image", 15.0),
    ("/lidar/points", "sensor_msgs/msg/PointCloud2", 10.0),
    ("/imu/data", "sensor_msgs/msg/Imu", 200.0),
    ("/joint_states", "sensor_msgs/msg/JointState", 100.0),
    ("/odom", "nav_msgs/msg/Odometry", 50.0),
    ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", 1.0),
    ("/tf", "tf2_msgs/msg/TFMessage", 100.0),
)

# Called as hook(world, store, recording_uid) when a recording is deleted (e.g. the uploads backend
# dropping its sessions), so modules that hang state on a recording need not be imported here.
ON_RECORDING_DELETED: list[Callable[[World, OrgStore, str], None]] = []


def devices(store: OrgStore) -> Collection:
    return collection(store, DEVICES)


def recordings(store: OrgStore) -> Collection:
    return collection(store, RECORDINGS)


def events(store: OrgStore) -> Collection:
    return collection(store, EVENTS)


def rules(store: OrgStore) -> Collection:
    return collection(store, RULES)


def alerts(store: OrgStore) -> Collection:
    return collection(store, ALERTS)


def channels(store: OrgStore) -> Collection:
    return collection(store, CHANNELS)


# --- devices -------------------------------------------------------------------------------------


def register_device(world: World, store: OrgStore, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A new device in ``provisioning`` and its token (which only this answer shows)."""
    token = f"fdt_{world.secrets.hex(40)}"
    record = new_record(world, store, {
        "name": body["name"],
        "type": body["type"],
        "status": "provisioning",
        "tags": list(body.get("tags") or []),
        "firmware_version": body.get("firmware_version"),
        "metadata": dict(body.get("metadata") or {}),
        "last_seen_at": None,
        "_device_token": token,
    })
    return devices(store).add(record), token


def update_device(world: World, store: OrgStore, uid: str, changes: dict[str, Any]) -> dict[str, Any]:
    device = get(store, DEVICES, uid)
    status = changes.get("status")
    if status is not None and status not in DEVICE_STATUSES:
        raise Invalid(f"status {status!r} is not one of {', '.join(DEVICE_STATUSES)}.", field="status")
    return patch(world, device, changes, ("name", "status", "firmware_version", "tags", "metadata"))


def delete_device(world: World, store: OrgStore, uid: str) -> None:
    get(store, DEVICES, uid)
    devices(store).remove(uid)
    for kind in (RECORDINGS, EVENTS, ALERTS):
        collection(store, kind).unlink("device", uid)


# --- recordings ----------------------------------------------------------------------------------


def settle_recording(record: dict[str, Any], now: float) -> dict[str, Any]:
    """Bring a recording's status up to ``now``; when processing ends, its indexed fields appear."""
    timeline: Timeline | None = record.get("_timeline")
    if timeline is None:
        return record
    status = timeline.status(now)
    if status != record["status"]:
        record["status"] = status
        record["updated_at"] = timeline.reached(status, now)
    if timeline.done(now):
        record.update(record.pop("_on_ready", {}) if status == "ready" else {})
        del record["_timeline"]
    return record


def recording_status(world: World, record: dict[str, Any]) -> str:
    """The recording's status now (for other backends reading recordings, e.g. uploads)."""
    return settle_recording(record, world.clock.now())["status"]


def list_recordings(store: OrgStore, now: float, device: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    found = recordings(store).filter(device=device)
    for record in found:
        settle_recording(record, now)
    return [r for r in found if status is None or r["status"] == RECORDING_ALIASES.get(status, status)]


def start_processing(world: World, store: OrgStore, record: dict[str, Any]) -> None:
    """Processing → ready on the clock; duration and topics are sampled now, shown once ready."""
    size = int(record.get("size_bytes") or 0)
    delay = PROCESSING_BASE_S + size / PROCESSING_BYTES_PER_S
    record["_timeline"] = Timeline.start(world.clock, "processing", ("ready", delay))
    record["status"] = "processing"
    record["updated_at"] = world.clock.now()
    if not record.get("topics"):
        contents = sample_contents(world, record["seq"], size)
        if record.get("started_at") is not None and record.get("ended_at") is None:
            contents["ended_at"] = record["started_at"] + contents["duration_seconds"]
        record["_on_ready"] = contents


def recording_uploaded(world: World, store: OrgStore, recording_uid: str, total_bytes: int) -> None:
    """An upload of ``total_bytes`` to the recording completed: it is processed on the clock, then ready."""
    record = get(store, RECORDINGS, recording_uid)
    record["size_bytes"] = int(total_bytes)
    record["topics"] = None
    record["topic_count"] = 0
    start_processing(world, store, record)


def sample_contents(world: World, seq: int, size_bytes: int) -> dict[str, Any]:
    """Deterministic topics and duration for a recording of ``size_bytes`` (seeded by world seed and seq)."""
    rng = np.random.default_rng([world.seed, 7919, seq])
    n = int(rng.integers(3, len(TOPIC_CATALOGUE) + 1))
    picked = sorted(rng.choice(len(TOPIC_CATALOGUE), size=n, replace=False).tolist())
    duration = round(float(max(5.0, size_bytes / 4e6 if size_bytes else rng.uniform(30, 900))), 2)
    topics = [
        {"name": name, "message_type": mtype, "frequency_hz": hz, "message_count": int(duration * hz)}
        for name, mtype, hz in (TOPIC_CATALOGUE[i] for i in picked)
    ]
    return {"duration_seconds": duration, "topics": topics, "topic_count": len(topics)}


def update_recording(world: World, store: OrgStore, uid: str, changes: dict[str, Any]) -> dict[str, Any]:
    record = settle_recording(get(store, RECORDINGS, uid), world.clock.now())
    status = changes.get("status")
    if status is not None:
        status = RECORDING_ALIASES.get(status, status)
        if status not in RECORDING_STATUSES:
            accepted = ", ".join(RECORDING_STATUSES + tuple(RECORDING_ALIASES))
            raise Invalid(f"status {changes['status']!r} is not one of {accepted}.", field="status")
        if status == "processing":  # (re)process: the clock takes it to ready
            start_processing(world, store, record)
        else:
            record.pop("_timeline", None)
            record.pop("_on_ready", None)
            record["status"] = status
    return patch(world, record, changes, ("tags",))


def delete_recording(world: World, store: OrgStore, uid: str) -> None:
    get(store, RECORDINGS, uid)
    recordings(store).remove(uid)
    for event in events(store).filter(recording=uid):
        delete_event(world, store, event["uid"])
    alerts(store).unlink("recording", uid)
    for hook in ON_RECORDING_DELETED:
        hook(world, store, uid)


# --- events --------------------------------------------------------------------------------------


def parse_timestamp(value: Any, field: str = "timestamp") -> float:
    """Epoch seconds of an ISO 8601 timestamp (naive = UTC), 400 otherwise."""
    try:
        dt = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        dt = None
    if dt is None:
        raise Invalid(f"{field}: {value!r} is not an ISO 8601 timestamp (e.g. 2026-02-23T10:30:00Z).", field=field)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        utc = dt.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not 1970 <= utc.year <= 9999:
        raise Invalid(f"{field}: {value!r} is outside 1970-01-01..9999-12-31.", field=field)
    return utc.timestamp()


def _check_event(store: OrgStore, body: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], float]:
    """The event's device and timestamp, after checking its references belong together (400 otherwise)."""
    rec_uid, dev_uid = body["recording"], body["device"]
    if rec_uid not in recordings(store):
        raise Invalid(f"{prefix}recording {rec_uid!r} not found.", field=f"{prefix}recording")
    if dev_uid not in devices(store):
        raise Invalid(f"{prefix}device {dev_uid!r} not found.", field=f"{prefix}device")
    owner = recordings(store).get(rec_uid)["device"]
    if owner != dev_uid:
        raise Invalid(f"{prefix}recording {rec_uid!r} not found among the recordings of device {dev_uid!r}.",
                      field=f"{prefix}recording")
    return devices(store).get(dev_uid), parse_timestamp(body["timestamp"], f"{prefix}timestamp")


def _add_event(world: World, store: OrgStore, body: dict[str, Any], device: dict[str, Any], ts: float) -> dict[str, Any]:
    event = events(store).add(new_record(world, store, {
        "recording": body["recording"],
        "device": body["device"],
        "type": body["type"],
        "label": body["label"],
        "description": body.get("description"),
        "timestamp": iso(ts),
        "duration_ms": body.get("duration_ms"),
        "tags": list(body.get("tags") or []),
        "metadata": dict(body.get("metadata") or {}),
        "severity": body.get("severity") or "info",
        "_ts": ts,
    }))
    now = world.clock.now()
    device["last_seen_at"] = now
    if device["status"] == "provisioning":
        device["status"] = "online"
        device["updated_at"] = now
    fire_rules(world, store, event, device)
    return event


def create_event(world: World, store: OrgStore, body: dict[str, Any]) -> dict[str, Any]:
    device, ts = _check_event(store, body)
    return _add_event(world, store, body, device, ts)


def create_events(world: World, store: OrgStore, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All or nothing: every event is checked before the first is written."""
    checked = [_check_event(store, body, f"events[{i}].") for i, body in enumerate(bodies)]
    return [_add_event(world, store, body, device, ts) for body, (device, ts) in zip(bodies, checked)]


def list_events(store: OrgStore, **equal: Any) -> list[dict[str, Any]]:
    """Newest timestamp first (ties: newest created first)."""
    found = events(store).filter(**equal)
    found.sort(key=event_sort_key)
    return found


def delete_event(world: World, store: OrgStore, uid: str) -> None:
    """The event goes; alerts it raised stay (they are history), without it."""
    get(store, EVENTS, uid)
    events(store).remove(uid)
    alerts(store).unlink("event", uid)


def event_sort_key(event: dict[str, Any]) -> int:
    """An integer that ascends as events go from newest to oldest timestamp (the page key)."""
    return -(round(event["_ts"] * 1000) * 2**32 + event["seq"])


# --- rules and alerts ----------------------------------------------------------------------------


def _check_rule(store: OrgStore, body: dict[str, Any]) -> None:
    if "condition" in body:
        fleet_rules.validate_condition(body["condition"])
    if "actions" in body:
        fleet_rules.validate_actions(body["actions"])
    if "scope" in body:
        fleet_rules.validate_scope(body["scope"], lambda uid: uid in devices(store))


def create_rule(world: World, store: OrgStore, body: dict[str, Any]) -> dict[str, Any]:
    _check_rule(store, body)
    return rules(store).add(new_record(world, store, {
        "name": body["name"],
        "description": body.get("description"),
        "enabled": body.get("enabled", True),
        "condition": body["condition"],
        "actions": body["actions"],
        "scope": body.get("scope"),
        "hit_count": 0,
        "last_hit_at": None,
    }))


def update_rule(world: World, store: OrgStore, uid: str, changes: dict[str, Any]) -> dict[str, Any]:
    rule = get(store, RULES, uid)
    _check_rule(store, changes)
    return patch(world, rule, changes, ("name", "description", "enabled", "condition", "actions", "scope"))


def delete_rule(world: World, store: OrgStore, uid: str) -> None:
    get(store, RULES, uid)
    rules(store).remove(uid)
    alerts(store).unlink("rule", uid)


def fire_rules(world: World, store: OrgStore, event: dict[str, Any], device: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every enabled rule whose scope and condition match counts a hit and runs its alert actions."""
    now = world.clock.now()
    raised = []
    for rule in rules(store).filter(enabled=True):
        if not fleet_rules.in_scope(rule.get("scope"), event, device) or not fleet_rules.matches(rule["condition"], event, device):
            continue
        rule["hit_count"] += 1
        rule["last_hit_at"] = now
        for action in rule["actions"]:
            if action.get("type") == "alert":
                raised.append(raise_alert(world, store, rule, action, event, device))
    return raised


def raise_alert(world: World, store: OrgStore, rule: dict[str, Any], action: dict[str, Any], event: dict[str, Any],
                device: dict[str, Any] | None) -> dict[str, Any]:
    where = f" on device {device['name']!r}" if device else ""
    message = action.get("message") or f"Rule {rule['name']!r} matched {event['type']} event {event['label']!r}{where}."
    return alerts(store).add(new_record(world, store, {
        "rule": rule["uid"],
        "device": event.get("device"),
        "recording": event.get("recording"),
        "event": event.get("uid"),
        "severity": action.get("severity") or event.get("severity") or "warning",
        "status": "open",
        "message": message,
        "triggered_at": world.clock.now(),
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolution_note": None,
    }))


def list_alerts(store: OrgStore, status: str | None = None, **equal: Any) -> list[dict[str, Any]]:
    return alerts(store).filter(status=ALERT_STATUS_ALIASES.get(status, status) if status else None, **equal)


def acknowledge_alert(world: World, store: OrgStore, uid: str, user_uid: str) -> dict[str, Any]:
    """open → acknowledged; acknowledging again changes nothing; a resolved alert is 409."""
    alert = get(store, ALERTS, uid)
    if alert["status"] == "resolved":
        raise Conflict(f"Alert {uid!r} is resolved; it cannot be acknowledged.")
    if alert["status"] != "acknowledged":
        now = world.clock.now()
        alert.update(status="acknowledged", acknowledged_at=now, acknowledged_by=user_uid, updated_at=now)
    return alert


def resolve_alert(world: World, store: OrgStore, uid: str, note: str | None) -> dict[str, Any]:
    """open or acknowledged → resolved; resolving twice is 409."""
    alert = get(store, ALERTS, uid)
    if alert["status"] == "resolved":
        raise Conflict(f"Alert {uid!r} is already resolved.")
    now = world.clock.now()
    alert.update(status="resolved", resolved_at=now, resolution_note=note, updated_at=now)
    return alert


# --- alert channels ------------------------------------------------------------------------------


def _https_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname)


def _check_channel_config(kind: str, config: dict[str, Any]) -> None:
    if kind not in CHANNEL_TYPES:
        raise Invalid(f"type {kind!r} is not one of {', '.join(CHANNEL_TYPES)}.", field="type")
    if kind == "email":
        recipients = _recipients(config)
        if not recipients:
            raise Invalid("config: an email channel needs `recipients` (a list of addresses) or `email`.", field="config")
        bad = [r for r in recipients if not isinstance(r, str) or "@" not in r.strip("@")]
        if bad:
            raise Invalid(f"config.recipients: {bad[0]!r} is not an email address.", field="config")
        return
    url = config.get("url", config.get("webhook_url"))
    if url is None:
        raise Invalid(f"config: a {kind} channel needs `url` (or `webhook_url`).", field="config")
    if not _https_url(url):
        raise Invalid(f"config: the {kind} URL must be an https URL with a host.", field="config")


def _recipients(config: dict[str, Any]) -> list[Any]:
    recipients = config.get("recipients")
    found = list(recipients) if isinstance(recipients, list) else ([recipients] if recipients is not None else [])
    if "email" in config:
        found.append(config["email"])
    return found


def create_channel(world: World, store: OrgStore, body: dict[str, Any]) -> dict[str, Any]:
    _check_channel_config(body["type"], body["config"])
    return channels(store).add(new_record(world, store, {"name": body["name"], "type": body["type"], "config": body["config"]}))


def delete_channel(world: World, store: OrgStore, uid: str) -> None:
    get(store, CHANNELS, uid)
    channels(store).remove(uid)


def test_channel(world: World, store: OrgStore, uid: str) -> dict[str, Any]:
    """A simulated test notification (no network I/O): reserved host names (RFC 6761) are unreachable."""
    channel = get(store, CHANNELS, uid)
    config = channel["config"] or {}
    if channel["type"] == "email":
        n = len(_recipients(config))
        delivered, detail = True, f"Test notification sent to {n} recipient{'s' if n != 1 else ''}."
    else:
        host = urlsplit(str(config.get("url", config.get("webhook_url", "")))).hostname or ""
        delivered = not (host == "localhost" or host.endswith(UNREACHABLE_SUFFIXES))
        detail = (f"Test notification delivered to {host}." if delivered
                  else f"Test notification could not be delivered: {host} is unreachable.")
    return {"detail": detail, "channel_uid": uid, "channel_type": channel["type"], "ok": delivered,
            "delivered": delivered, "success": delivered, "tested_at": iso(world.clock.now())}


def mask_config(config: Any) -> Any:
    """The config with secret-looking values (keys containing api_key, token, secret, password) masked."""
    if isinstance(config, list):
        return [mask_config(v) for v in config]
    if not isinstance(config, dict):
        return config
    out = {}
    for key, value in config.items():
        if any(word in key.lower() for word in SECRET_WORDS) and value is not None and not isinstance(value, (dict, list)):
            text = str(value)
            out[key] = "****" + (text[-4:] if len(text) >= 12 else "")
        else:
            out[key] = mask_config(value)
    return out


def get(store: OrgStore, kind: str, uid: str) -> dict[str, Any]:
    """The record, or 404 with a readable name ("Device 'x' not found.")."""
    try:
        return collection(store, kind).get(uid)
    except NotFound:
        raise NotFound(f"{LABELS[kind]} {uid!r} not found.") from None
