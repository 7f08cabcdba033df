"""Fleet (devices, recordings, events, rules, alerts, alert channels) through the official avala SDK,
its CLI and raw HTTP, against the real server on the manual clock."""

from __future__ import annotations

import asyncio
import json
import subprocess

import avala
import pytest
from avala.errors import AvalaError, NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli

TS = "2026-01-05T08:30:00Z"


def second(mock) -> avala.Client:
    return avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)


def arm_and_recording(client):
    """A seeded robot arm with a ready recording of its own."""
    for rec in client.fleet.recordings.list(status="ready", limit=100):
        device = client.fleet.devices.get(rec.device)
        if device.type == "robot_arm":
            return device, rec
    raise LookupError("no robot arm with a ready recording")


def device_of_type(client, type_: str):
    return client.fleet.devices.list(type=type_).items[0]


def recording_of(client, device_uid: str):
    return client.fleet.recordings.list(device_id=device_uid).items[0]


def event_body(device, rec, **extra):
    return {"recording": rec.uid, "device": device.uid, "label": "joint_overtemp", "type": "anomaly", "timestamp": TS, **extra}


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), "-o", "json", *args)


# --- the seeded world ----------------------------------------------------------------------------


def test_every_kind_is_seeded_and_every_sdk_getter_returns_a_populated_model(client):
    devices = client.fleet.devices.list().items
    assert len(devices) >= 5 and {"robot_arm", "lidar", "camera"} <= {d.type for d in devices}
    d = client.fleet.devices.get(devices[0].uid)
    assert d.name and d.status == "online" and d.firmware_version and d.tags and d.metadata["serial"]
    assert d.created_at is not None and d.last_seen_at is not None and d.device_token is None

    recs = client.fleet.recordings.list(limit=100).items
    assert {"ready", "error", "processing", "uploading"} <= {r.status for r in recs}
    ready = client.fleet.recordings.get(next(r.uid for r in recs if r.status == "ready"))
    assert ready.device and ready.duration_seconds > 0 and ready.size_bytes > 0 and ready.topic_count == len(ready.topics) >= 3
    assert ready.topics[0]["name"].startswith("/") and ready.started_at < ready.ended_at

    events = client.fleet.events.list(limit=100).items
    assert len(events) == 20
    e = client.fleet.events.get(events[0].uid)
    assert e.recording and e.device and e.type and e.label and e.timestamp and e.severity and e.metadata["temp"] > 0

    rules = client.fleet.rules.list().items
    hot = next(r for r in rules if r.name == "Arm over-temperature")
    assert hot.condition == {"field": "temp", "op": "gt", "value": 80} and hot.scope == {"device_type": "robot_arm"}
    assert hot.actions == [{"type": "alert"}] and hot.hit_count > 0 and hot.last_hit_at is not None
    assert client.fleet.rules.get(hot.uid).hit_count == hot.hit_count

    alerts = client.fleet.alerts.list(limit=100).items
    assert {"open", "acknowledged", "resolved"} <= {a.status for a in alerts}
    a = client.fleet.alerts.get(next(a.uid for a in alerts if a.status == "resolved"))
    assert a.rule and a.device and a.recording and a.severity and a.message and a.triggered_at and a.resolved_at
    assert a.resolution_note

    channels = client.fleet.alert_channels.list().items
    assert {c.type for c in channels} == {"email", "webhook", "slack"}
    assert all(c.name and c.config and c.created_at for c in channels)


# --- devices -------------------------------------------------------------------------------------


def test_device_lifecycle(client, http):
    d = client.fleet.devices.register(name="arm-test-01", type="robot_arm", firmware_version="3.0.0",
                                      tags=["lab"], metadata={"serial": "SN-1"})
    assert d.status == "provisioning" and d.device_token and d.device_token.startswith("fdt_")
    assert (d.name, d.type, d.firmware_version, d.tags, d.metadata) == ("arm-test-01", "robot_arm", "3.0.0", ["lab"], {"serial": "SN-1"})
    got = client.fleet.devices.get(d.uid)
    assert got.device_token is None and got.name == "arm-test-01"
    assert http.get(f"fleet/devices/{d.uid}/").json()["device_token"] is None  # issued once, null afterwards
    assert d.device_token not in http.get("fleet/devices/", params={"limit": 1000}).text
    assert [x.uid for x in client.fleet.devices.list(status="provisioning")] == [d.uid]
    assert d.uid in [x.uid for x in client.fleet.devices.list(type="robot_arm")]
    assert d.uid not in [x.uid for x in client.fleet.devices.list(type="lidar")]

    up = client.fleet.devices.update(d.uid, status="maintenance", name="arm-test-02", tags=["lab", "b"], metadata={"k": 1})
    assert (up.status, up.name, up.tags, up.metadata) == ("maintenance", "arm-test-02", ["lab", "b"], {"k": 1})
    assert up.updated_at >= up.created_at
    assert client.fleet.devices.get(d.uid).status == "maintenance"

    r = http.delete(f"fleet/devices/{d.uid}/")
    assert r.status_code == 204 and r.content == b"" and r.headers["X-RateLimit-Limit"].isdigit()
    with pytest.raises(NotFoundError):
        client.fleet.devices.get(d.uid)
    with pytest.raises(NotFoundError):
        client.fleet.devices.delete(d.uid)
    assert d.uid not in [x.uid for x in client.fleet.devices.list(limit=1000)]


def test_device_errors(client, http):
    r = http.post("fleet/devices/", json={"name": "x"})
    assert r.status_code == 400 and "type" in r.json()["errors"]
    dev = client.fleet.devices.list().items[0]
    with pytest.raises(ValidationError):
        client.fleet.devices.update(dev.uid, status="exploded")
    assert client.fleet.devices.get(dev.uid).status == dev.status
    r = http.patch(f"fleet/devices/{dev.uid}/", json={"device_token": "x"})
    assert r.status_code == 400
    with pytest.raises(NotFoundError):
        client.fleet.devices.update("no-such-device", name="x")


def test_deleting_a_device_keeps_its_recordings_and_events_without_it(client):
    device, rec = arm_and_recording(client)
    n_events = len(client.fleet.events.list(recording_id=rec.uid).items)
    assert n_events > 0
    client.fleet.devices.delete(device.uid)
    kept = client.fleet.recordings.get(rec.uid)
    assert kept.device is None and kept.status == "ready"
    evs = client.fleet.events.list(recording_id=rec.uid).items
    assert len(evs) == n_events and all(e.device is None for e in evs)
    assert client.fleet.recordings.list(device_id=device.uid).items == []
    assert all(a.device != device.uid for a in client.fleet.alerts.list(limit=1000))


# --- recordings ----------------------------------------------------------------------------------


def test_seeded_processing_recording_becomes_ready_on_the_clock(mock, client):
    rec = client.fleet.recordings.list(status="processing").items[0]
    assert rec.topics is None and rec.topic_count == 0
    mock.advance(1)
    assert client.fleet.recordings.get(rec.uid).status == "processing"
    mock.advance(120)
    done = client.fleet.recordings.get(rec.uid)
    assert done.status == "ready" and done.topic_count == len(done.topics) >= 3 and done.duration_seconds > 0
    assert rec.uid in [r.uid for r in client.fleet.recordings.list(status="ready", limit=100)]
    assert rec.uid not in [r.uid for r in client.fleet.recordings.list(status="processing", limit=100)]


def test_recording_update_status_tags_and_reprocessing(mock, client, http):
    rec = client.fleet.recordings.list(status="uploading").items[0]
    assert rec.size_bytes is None
    up = client.fleet.recordings.update(rec.uid, tags=["night", "rain"])
    assert up.tags == ["night", "rain"] and client.fleet.recordings.get(rec.uid).tags == ["night", "rain"]
    # The fixture's "uploaded" means the bytes are in: processing starts and the clock takes it to ready.
    up = client.fleet.recordings.update(rec.uid, status="uploaded")
    assert up.status == "processing"
    mock.advance(60)
    done = client.fleet.recordings.get(rec.uid)
    assert done.status == "ready" and done.topic_count >= 3 and done.ended_at > done.started_at
    assert client.fleet.recordings.update(rec.uid, status="archived").status == "archived"
    mock.advance(600)
    assert client.fleet.recordings.get(rec.uid).status == "archived"
    assert client.fleet.recordings.update(rec.uid, status="completed").status == "ready"  # seed name
    r = http.patch(f"fleet/recordings/{rec.uid}/", json={"status": "melted"})
    assert r.status_code == 400 and "status" in r.json()["errors"]
    r = http.patch(f"fleet/recordings/{rec.uid}/", json={"size_bytes": 3})
    assert r.status_code == 400
    assert client.fleet.recordings.get(rec.uid).status == "ready"
    with pytest.raises(NotFoundError):
        client.fleet.recordings.update("nope", tags=[])


def test_recording_delete_removes_it_and_its_events(client):
    device, rec = arm_and_recording(client)
    events = client.fleet.events.list(recording_id=rec.uid).items
    assert events
    client.fleet.recordings.delete(rec.uid)
    with pytest.raises(NotFoundError):
        client.fleet.recordings.get(rec.uid)
    with pytest.raises(NotFoundError):
        client.fleet.events.get(events[0].uid)
    assert client.fleet.events.list(recording_id=rec.uid).items == []
    assert rec.uid not in [r.uid for r in client.fleet.recordings.list(limit=100)]
    with pytest.raises(NotFoundError):
        client.fleet.recordings.delete(rec.uid)


def test_recordings_list_filters_by_device_newest_first(client):
    device, _ = arm_and_recording(client)
    recs = client.fleet.recordings.list(device_id=device.uid).items
    assert recs and all(r.device == device.uid for r in recs)
    everything = client.fleet.recordings.list(limit=100).items
    assert [r.created_at for r in everything] == sorted((r.created_at for r in everything), reverse=True)


# --- events --------------------------------------------------------------------------------------


def test_event_lifecycle_and_device_last_seen(mock, client, http):
    device = client.fleet.devices.register(name="cam-new", type="camera")  # owns no recording
    cam = device_of_type(client, "camera")
    rec = recording_of(client, cam.uid)
    mock.advance(30)
    before = client.fleet.devices.get(cam.uid).last_seen_at
    e = client.fleet.events.create(recording=rec.uid, device=cam.uid, label="lens_dirty", type="warning",
                                   timestamp="2026-01-05T08:59:00+01:00", severity="warning", description="smudge",
                                   duration_ms=120, tags=["optics"], metadata={"score": 0.4})
    assert (e.recording, e.device, e.label, e.type, e.severity, e.description, e.duration_ms, e.tags, e.metadata) == (
        rec.uid, cam.uid, "lens_dirty", "warning", "warning", "smudge", 120, ["optics"], {"score": 0.4})
    assert e.timestamp.isoformat() == "2026-01-05T07:59:00+00:00"
    assert http.get(f"fleet/events/{e.uid}/").json()["timestamp"] == "2026-01-05T07:59:00.000Z"
    assert client.fleet.devices.get(cam.uid).last_seen_at > before
    assert client.fleet.events.get(e.uid).label == "lens_dirty"
    assert [x.uid for x in client.fleet.events.list(device_id=cam.uid, type="warning", severity="warning")] == [e.uid]
    assert e.uid in [x.uid for x in client.fleet.events.list(recording_id=rec.uid)]
    assert e.uid not in [x.uid for x in client.fleet.events.list(severity="critical", limit=100)]
    client.fleet.events.delete(e.uid)
    with pytest.raises(NotFoundError):
        client.fleet.events.get(e.uid)
    with pytest.raises(NotFoundError):
        client.fleet.events.delete(e.uid)
    # The new device owns no recording: an event claiming one of another device's is a bad relation.
    with pytest.raises(ValidationError):
        client.fleet.events.create(recording=rec.uid, device=device.uid, label="x", type="info", timestamp=TS)
    assert client.fleet.devices.get(device.uid).status == "provisioning"


def test_first_event_brings_a_provisioning_device_online(client):
    device, rec = arm_and_recording(client)
    client.fleet.devices.update(device.uid, status="provisioning")
    client.fleet.events.create(**event_body(device, rec, metadata={"temp": 20}))
    d = client.fleet.devices.get(device.uid)
    assert d.status == "online" and d.last_seen_at is not None


@pytest.mark.parametrize("change, field", [
    ({"recording": "no-such-recording"}, "recording"),
    ({"device": "no-such-device"}, "device"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "1900-01-01T00:00:00Z"}, "timestamp"),
])
def test_event_create_rejects_bad_references_and_timestamps(client, http, change, field):
    device, rec = arm_and_recording(client)
    n = len(client.fleet.events.list(limit=1000).items)
    r = http.post("fleet/events/", json={**event_body(device, rec), **change})
    assert r.status_code == 400, r.text
    assert field in r.json()["errors"] and field in r.json()["detail"]
    assert len(client.fleet.events.list(limit=1000).items) == n


def test_event_on_a_recording_of_another_device_is_400(client, http):
    device, rec = arm_and_recording(client)
    other = next(d for d in client.fleet.devices.list() if d.uid != device.uid)
    r = http.post("fleet/events/", json=event_body(other, rec))
    assert r.status_code == 400 and "not found among the recordings of device" in r.json()["detail"]
    r = http.post("fleet/events/", json={k: v for k, v in event_body(device, rec).items() if k != "label"})
    assert r.status_code == 400 and "label" in r.json()["errors"]


def test_batch_is_all_or_nothing(client, http):
    device, rec = arm_and_recording(client)
    n = len(client.fleet.events.list(limit=1000).items)
    good = event_body(device, rec)
    r = http.post("fleet/events/batch/", json={"events": [good, {**good, "recording": "nope"}, good]})
    assert r.status_code == 400
    assert "events[1]" in r.json()["detail"] and "events[1].recording" in r.json()["errors"]
    r = http.post("fleet/events/batch/", json={"events": [good, {**good, "timestamp": 5}]})
    assert r.status_code == 400 and any(k.startswith("events.1") for k in r.json()["errors"])
    assert len(client.fleet.events.list(limit=1000).items) == n
    created = client.fleet.events.create_batch(events=[good, {**good, "label": "b"}, {**good, "label": "c", "severity": "error"}])
    assert created == 3
    labels = [e.label for e in client.fleet.events.list(recording_id=rec.uid, limit=100)]
    assert len(client.fleet.events.list(limit=1000).items) == n + 3 and {"b", "c"} <= set(labels)
    assert http.post("fleet/events/batch/", json={"events": []}).status_code == 400


def test_events_page_newest_timestamp_first_without_gaps(client):
    device, rec = arm_and_recording(client)
    stamps = [f"2026-01-0{d}T10:00:00Z" for d in (3, 1, 4, 2)]
    client.fleet.events.create_batch(events=[event_body(device, rec, timestamp=t, label=f"e{i}") for i, t in enumerate(stamps)])
    client.fleet.events.create(**event_body(device, rec, timestamp=stamps[0], label="tie"))
    seen, cursor = [], None
    while True:
        page = client.fleet.events.list(recording_id=rec.uid, limit=2, cursor=cursor)
        seen.extend(page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(seen) == len({e.uid for e in seen}) == len(client.fleet.events.list(recording_id=rec.uid, limit=100).items)
    assert [e.timestamp for e in seen] == sorted((e.timestamp for e in seen), reverse=True)
    ties = [e.label for e in seen if e.label in ("tie", "e0")]
    assert ties == ["tie", "e0"]  # same timestamp: the newer event first


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cond, expected", [
    ({"field": "temp", "op": "gt", "value": 80}, True),  # bare name = metadata key (the fixture rule)
    ({"field": "metadata.pos.z", "op": "<=", "value": 1.5}, True),
    ({"field": "device.type", "op": "eq", "value": "robot_arm"}, True),
    ({"field": "tags", "op": "contains", "value": "hot"}, True),
    ({"field": "label", "op": "in", "value": ["a", "overtemp"]}, True),
    ({"field": "missing", "op": "ne", "value": 1}, True),
    ({"field": "missing", "op": "eq", "value": None}, False),
    ({"field": "temp", "op": "gt", "value": "80"}, False),  # number vs string never compares
    ({"not": {"any": [{"field": "severity", "op": "eq", "value": "info"}, {"field": "temp", "op": "lt", "value": 0}]}}, True),
])
def test_condition_semantics(cond, expected):
    from avala_mock.simulators import fleet_rules

    fleet_rules.validate_condition(cond)
    event = {"label": "overtemp", "tags": ["hot"], "severity": "warning", "metadata": {"temp": 91, "pos": {"z": 1.5}}}
    assert fleet_rules.matches(cond, event, {"type": "robot_arm"}) is expected


def test_rule_lifecycle_and_enabled_filter(client, http):
    r = client.fleet.rules.create(name="Hot lidar", condition={"field": "temp", "op": "gte", "value": 70},
                                  actions=[{"type": "alert", "severity": "critical"}], description="d",
                                  scope={"device_type": "lidar"})
    assert (r.name, r.enabled, r.hit_count, r.last_hit_at, r.description) == ("Hot lidar", True, 0, None, "d")
    assert r.condition["op"] == "gte" and r.scope == {"device_type": "lidar"} and r.actions[0]["severity"] == "critical"
    assert r.uid in [x.uid for x in client.fleet.rules.list(enabled=True)]
    up = client.fleet.rules.update(r.uid, enabled=False, name="Hot lidar (off)",
                                   condition={"all": [{"field": "temp", "op": "gt", "value": 90}]})
    assert (up.enabled, up.name, up.condition) == (False, "Hot lidar (off)", {"all": [{"field": "temp", "op": "gt", "value": 90}]})
    assert client.fleet.rules.get(r.uid).enabled is False
    off = [x.uid for x in client.fleet.rules.list(enabled=False)]
    assert r.uid in off and r.uid not in [x.uid for x in client.fleet.rules.list(enabled=True)]
    assert http.get("fleet/rules/", params={"enabled": "maybe"}).status_code == 400
    client.fleet.rules.delete(r.uid)
    with pytest.raises(NotFoundError):
        client.fleet.rules.get(r.uid)
    assert r.uid not in [x.uid for x in client.fleet.rules.list(limit=100)]


@pytest.mark.parametrize("condition", [
    {"field": "temp", "op": "hotter", "value": 80},
    {"field": "temp", "value": 80},
    {"field": "", "op": "gt", "value": 80},
    {"field": "temp", "op": "gt", "value": [1]},
    {"all": []},
    {"any": [{"field": "temp", "op": "gt", "value": 1}, "nope"]},
    {"all": [{"field": "a", "op": "eq", "value": 1}], "any": []},
    {"field": "temp", "op": "gt", "value": 80, "extra": 1},
    {},
])
def test_rule_condition_shape_is_checked_on_create_and_update(client, http, condition):
    r = http.post("fleet/rules/", json={"name": "bad", "condition": condition, "actions": [{"type": "alert"}]})
    assert r.status_code == 400 and "condition" in r.json()["errors"], r.text
    rule = client.fleet.rules.list().items[0]
    r = http.patch(f"fleet/rules/{rule.uid}/", json={"condition": condition, "name": "renamed"})
    assert r.status_code == 400
    assert client.fleet.rules.get(rule.uid).name == rule.name and client.fleet.rules.get(rule.uid).condition == rule.condition


def test_rule_scope_and_actions_are_checked(http):
    base = {"name": "r", "condition": {"field": "temp", "op": "gt", "value": 1}, "actions": [{"type": "alert"}]}
    assert http.post("fleet/rules/", json={**base, "scope": {"devices": ["ghost"]}}).status_code == 400
    assert http.post("fleet/rules/", json={**base, "scope": {"planet": "mars"}}).status_code == 400
    assert http.post("fleet/rules/", json={**base, "actions": [{"severity": "x"}]}).status_code == 400
    assert http.post("fleet/rules/", json={**base, "actions": ["alert"]}).status_code == 400
    assert http.post("fleet/rules/", json={k: v for k, v in base.items() if k != "actions"}).status_code == 400
    assert http.post("fleet/rules/", json=base).status_code == 201


def test_rules_fire_on_matching_events_and_raise_alerts(client, http):
    for rule in client.fleet.rules.list(limit=100):  # a clean slate: only the rules made here
        client.fleet.rules.update(rule.uid, enabled=False)
    arm, rec = arm_and_recording(client)
    lidar = device_of_type(client, "lidar")
    lidar_rec = recording_of(client, lidar.uid)
    hot = client.fleet.rules.create(name="Arm hot", condition={"field": "temp", "op": "gt", "value": 80},
                                    actions=[{"type": "alert"}], scope={"device_type": "robot_arm"})
    combo = client.fleet.rules.create(
        name="Stall or collision",
        condition={"any": [{"all": [{"field": "type", "op": "eq", "value": "error"},
                                    {"field": "duration_ms", "op": "gte", "value": 5000}]},
                           {"field": "label", "op": "contains", "value": "collision"}]},
        actions=[{"type": "alert", "severity": "critical", "message": "Stop the line"}, {"type": "notify"}],
        scope={"devices": [arm.uid]})
    off = client.fleet.rules.create(name="Off", condition={"field": "metadata.temp", "op": "gt", "value": 0},
                                    actions=[{"type": "alert"}], enabled=False)
    before = {a.uid for a in client.fleet.alerts.list(limit=1000)}

    e1 = client.fleet.events.create(**event_body(arm, rec, metadata={"temp": 85.5}, severity="warning"))
    client.fleet.events.create(**event_body(arm, rec, metadata={"temp": 80}))  # not > 80
    client.fleet.events.create(**event_body(lidar, lidar_rec, metadata={"temp": 99}))  # out of scope
    client.fleet.events.create_batch(events=[
        event_body(arm, rec, type="error", label="motor_stall", duration_ms=6000, metadata={"temp": 10}),
        event_body(arm, rec, type="error", label="motor_stall", duration_ms=100),
        event_body(arm, rec, label="collision_detected", metadata={"temp": 81}),
    ])
    new = [a for a in client.fleet.alerts.list(limit=1000) if a.uid not in before]
    assert sorted(a.rule == hot.uid for a in new) == [False, False, True, True]
    first = next(a for a in new if a.rule == hot.uid and a.severity == "warning")
    assert (first.device, first.recording, first.status) == (arm.uid, rec.uid, "open")
    assert first.triggered_at is not None and "Arm hot" in first.message and first.acknowledged_at is None
    assert http.get(f"fleet/alerts/{first.uid}/").json()["event"] == e1.uid
    combo_alerts = [a for a in new if a.rule == combo.uid]
    assert len(combo_alerts) == 2 and all(a.severity == "critical" and a.message == "Stop the line" for a in combo_alerts)
    assert client.fleet.rules.get(hot.uid).hit_count == 2 and client.fleet.rules.get(hot.uid).last_hit_at is not None
    assert client.fleet.rules.get(combo.uid).hit_count == 2
    assert client.fleet.rules.get(off.uid).hit_count == 0
    assert {a.uid for a in client.fleet.alerts.list(rule_id=combo.uid)} == {a.uid for a in combo_alerts}
    # Deleting the rule (or the event) keeps its alerts, without the rule (or the event).
    client.fleet.rules.delete(combo.uid)
    assert all(client.fleet.alerts.get(a.uid).rule is None for a in combo_alerts)
    client.fleet.events.delete(e1.uid)
    assert http.get(f"fleet/alerts/{first.uid}/").json()["event"] is None
    assert client.fleet.alerts.get(first.uid).status == "open"


# --- alerts --------------------------------------------------------------------------------------


def test_alert_acknowledge_then_resolve(mock, client, http):
    me = http.get("users/me/").json()["uid"]
    alert = client.fleet.alerts.list(status="open").items[0]
    mock.advance(10)
    ack = client.fleet.alerts.acknowledge(alert.uid)
    assert ack.status == "acknowledged" and ack.acknowledged_by == me and ack.acknowledged_at > alert.triggered_at
    again = client.fleet.alerts.acknowledge(alert.uid)
    assert again.acknowledged_at == ack.acknowledged_at
    assert alert.uid in [a.uid for a in client.fleet.alerts.list(status="acknowledged", limit=100)]
    assert alert.uid not in [a.uid for a in client.fleet.alerts.list(status="open", limit=100)]
    mock.advance(10)
    res = client.fleet.alerts.resolve(alert.uid, resolution_note="Replaced the fan.")
    assert (res.status, res.resolution_note) == ("resolved", "Replaced the fan.") and res.resolved_at > ack.acknowledged_at
    assert client.fleet.alerts.get(alert.uid).status == "resolved"
    with pytest.raises(AvalaError) as err:
        client.fleet.alerts.resolve(alert.uid)
    assert err.value.status_code == 409
    r = http.post(f"fleet/alerts/{alert.uid}/acknowledge/", json={})
    assert r.status_code == 409 and "resolved" in r.json()["detail"]


@pytest.mark.parametrize("kwargs", [{}, {"content": b""}, {"json": {}}, {"json": {"resolution_note": "ok"}}])
def test_resolve_accepts_every_body_variant(client, http, kwargs):
    alert = client.fleet.alerts.list(status="open").items[0]
    r = http.post(f"fleet/alerts/{alert.uid}/resolve/", headers={"Content-Type": "application/json"}, **kwargs)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved" and r.json()["resolution_note"] == kwargs.get("json", {}).get("resolution_note")
    assert http.post(f"fleet/alerts/{alert.uid}/resolve/", json={"note": "x"}).status_code == 400


def test_alert_list_filters(client):
    alerts = client.fleet.alerts.list(limit=1000).items
    opened = {a.uid for a in alerts if a.status == "open"}
    assert {a.uid for a in client.fleet.alerts.list(status="open", limit=1000)} == opened
    assert {a.uid for a in client.fleet.alerts.list(status="active", limit=1000)} == opened  # seed vocabulary
    crit = client.fleet.alerts.list(severity="critical", limit=1000).items
    assert crit and all(a.severity == "critical" for a in crit)
    dev = alerts[0].device
    assert {a.uid for a in client.fleet.alerts.list(device_id=dev, limit=1000)} == {a.uid for a in alerts if a.device == dev}
    assert [a.created_at for a in alerts] == sorted((a.created_at for a in alerts), reverse=True)
    with pytest.raises(NotFoundError):
        client.fleet.alerts.get("no-such-alert")
    with pytest.raises(NotFoundError):
        client.fleet.alerts.acknowledge("no-such-alert")


# --- alert channels ------------------------------------------------------------------------------


def test_alert_channel_lifecycle_and_test(client, http):
    email = client.fleet.alert_channels.create(name="Oncall", type="email", config={"recipients": ["a@x.io", "b@x.io"]})
    hook = client.fleet.alert_channels.create(name="Hook", type="webhook",
                                              config={"url": "https://ops.example.com/hook", "secret": "whsec_abcdef123456"})
    slack = client.fleet.alert_channels.create(name="Slack", type="slack", config={"webhook_url": "https://hooks.slack.com/services/T1/B2/c3"})
    assert (email.type, email.config) == ("email", {"recipients": ["a@x.io", "b@x.io"]})
    assert hook.config["url"] == "https://ops.example.com/hook" and hook.config["secret"] == "****3456"
    listed = {c.uid: c for c in client.fleet.alert_channels.list(limit=100)}
    assert {email.uid, hook.uid, slack.uid} <= set(listed) and listed[hook.uid].config["secret"] == "****3456"
    assert "whsec_abcdef123456" not in http.get("fleet/alert-channels/", params={"limit": 100}).text

    t = client.fleet.alert_channels.test(email.uid)
    assert t["ok"] is t["delivered"] is t["success"] is True
    assert (t["channel_uid"], t["channel_type"]) == (email.uid, "email") and "2 recipients" in t["detail"]
    t = client.fleet.alert_channels.test(slack.uid)
    assert t["delivered"] and "hooks.slack.com" in t["detail"] and "c3" not in t["detail"]
    dead = client.fleet.alert_channels.create(name="Dead", type="webhook", config={"url": "https://alerts.invalid/x"})
    t = http.post(f"fleet/alert-channels/{dead.uid}/test/").json()
    assert t["ok"] is False and t["delivered"] is False and "unreachable" in t["detail"]

    client.fleet.alert_channels.delete(hook.uid)
    with pytest.raises(NotFoundError):
        client.fleet.alert_channels.test(hook.uid)
    with pytest.raises(NotFoundError):
        client.fleet.alert_channels.delete(hook.uid)
    assert hook.uid not in [c.uid for c in client.fleet.alert_channels.list(limit=100)]


@pytest.mark.parametrize("type_, config", [
    ("email", {}),
    ("email", {"recipients": ["not-an-address"]}),
    ("email", {"recipients": []}),
    ("webhook", {"url": "http://plain.example.com/hook"}),
    ("webhook", {"target": "https://x.example.com"}),
    ("slack", {"webhook_url": "hooks.slack.com/services/x"}),
    ("pagerduty", {"url": "https://x.example.com"}),
])
def test_alert_channel_config_is_checked_per_type(client, http, type_, config):
    n = len(client.fleet.alert_channels.list(limit=100).items)
    r = http.post("fleet/alert-channels/", json={"name": "c", "type": type_, "config": config})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]
    assert len(client.fleet.alert_channels.list(limit=100).items) == n


# --- tenants, async, CLI -------------------------------------------------------------------------


def test_another_organisation_sees_and_touches_nothing(mock, client):
    device, rec = arm_and_recording(client)
    event = client.fleet.events.list(recording_id=rec.uid).items[0]
    rule = client.fleet.rules.list().items[0]
    alert = client.fleet.alerts.list(status="open").items[0]
    channel = client.fleet.alert_channels.list().items[0]
    with second(mock) as other:
        for getter, uid in [(other.fleet.devices.get, device.uid), (other.fleet.recordings.get, rec.uid),
                            (other.fleet.events.get, event.uid), (other.fleet.rules.get, rule.uid),
                            (other.fleet.alerts.get, alert.uid), (other.fleet.alerts.acknowledge, alert.uid),
                            (other.fleet.alerts.resolve, alert.uid), (other.fleet.alert_channels.test, channel.uid),
                            (other.fleet.devices.delete, device.uid), (other.fleet.recordings.delete, rec.uid),
                            (other.fleet.events.delete, event.uid), (other.fleet.rules.delete, rule.uid),
                            (other.fleet.alert_channels.delete, channel.uid)]:
            with pytest.raises(NotFoundError):
                getter(uid)
        with pytest.raises(NotFoundError):
            other.fleet.devices.update(device.uid, name="stolen")
        with pytest.raises(NotFoundError):
            other.fleet.recordings.update(rec.uid, tags=["stolen"])
        with pytest.raises(NotFoundError):
            other.fleet.rules.update(rule.uid, enabled=False)
        with pytest.raises(ValidationError):
            other.fleet.events.create(**event_body(device, rec))
        theirs = {d.uid for d in other.fleet.devices.list(limit=1000)}
        assert theirs and device.uid not in theirs
        assert rec.uid not in {r.uid for r in other.fleet.recordings.list(limit=1000)}
        assert event.uid not in {e.uid for e in other.fleet.events.list(limit=1000)}
        assert rule.uid not in {r.uid for r in other.fleet.rules.list(limit=1000)}
        assert alert.uid not in {a.uid for a in other.fleet.alerts.list(limit=1000)}
        assert channel.uid not in {c.uid for c in other.fleet.alert_channels.list(limit=1000)}
        assert other.fleet.events.list(recording_id=rec.uid).items == []
    assert client.fleet.alerts.get(alert.uid).status == "open" and client.fleet.devices.get(device.uid).name == device.name


def test_async_client_round_trip(mock, client):
    device, rec = arm_and_recording(client)

    async def main():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            d = await ac.fleet.devices.register(name="async-arm", type="robot_arm")
            e = await ac.fleet.events.create(**event_body(device, rec, label="async"))
            n = await ac.fleet.events.create_batch(events=[event_body(device, rec, label="async2")])
            rule = await ac.fleet.rules.create(name="async", condition={"field": "label", "op": "eq", "value": "async3"},
                                               actions=[{"type": "alert", "severity": "info"}])
            await ac.fleet.events.create(**event_body(device, rec, label="async3"))
            alerts = (await ac.fleet.alerts.list(rule_id=rule.uid)).items
            ack = await ac.fleet.alerts.acknowledge(alerts[0].uid)
            res = await ac.fleet.alerts.resolve(alerts[0].uid)
            chan = await ac.fleet.alert_channels.create(name="a", type="email", config={"email": "ops@x.io"})
            test = await ac.fleet.alert_channels.test(chan.uid)
            recs = (await ac.fleet.recordings.list(device_id=device.uid)).items
            return d, e, n, alerts, ack, res, test, recs

    d, e, n, alerts, ack, res, test, recs = asyncio.run(main())
    assert d.status == "provisioning" and d.device_token and e.label == "async" and n == 1
    assert len(alerts) == 1 and alerts[0].severity == "info" and ack.status == "acknowledged"
    assert res.status == "resolved" and res.resolution_note is None and test["delivered"] is True
    assert rec.uid in [r.uid for r in recs]


@pytest.mark.parametrize("group", ["devices", "recordings", "events", "rules", "alerts"])
def test_cli_list_and_get(mock, client, group):
    out = cli(mock, "fleet", group, "list", "--limit", "3")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 and all(row["uid"] for row in rows)
    api = getattr(client.fleet, group).list(limit=3).items
    assert [row["uid"] for row in rows] == [x.uid for x in api]
    got = cli(mock, "fleet", group, "get", rows[0]["uid"])
    assert got.returncode == 0, got.stderr
    assert rows[0]["uid"] in got.stdout
    missing = cli(mock, "fleet", group, "get", "no-such-uid")
    assert missing.returncode != 0 and "404" in (missing.stdout + missing.stderr)
