"""Every public method of the official SDK's resources, sync and async, against the mock.

The methods are found by introspecting ``avala.Client`` / ``avala.AsyncClient``: a method that a future
SDK version adds fails ``test_every_sdk_method_is_covered`` until a step below calls it. Each step
runs in order (creates before gets, updates and deletes) and checks that the returned models are
populated — the server sent at least half of the model's fields — not empty defaults.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import avala
import pytest
from avala._pagination import CursorPage
from pydantic import BaseModel

from helpers import sdk_world

# Methods that move bytes to https storage hosts, or work on the local disk only: the SDK refuses a
# plain-http mock for the byte transfer itself (surface doc §2.4, §2.18, §2.19), so tests/test_uploads.py
# and tests/test_fleet_uploads.py drive them up to that point and do the byte flows over raw HTTP.
NOT_WALKED = {
    "datasets.upload_files": "sends bytes to https storage hosts only (tests/test_uploads.py)",
    "datasets.create_from_local": "uploads bytes to https storage hosts only (tests/test_uploads.py)",
    "datasets.prepare_manual_upload_batch": "local resume state under ~/.avala only",
    "datasets.resolve_storage_root": "derives a storage prefix from users/me (tests/test_uploads.py)",
    "datasets.assert_storage_root_unchanged": "local comparison of storage prefixes",
    "fleet.uploads.collect_files": "local directory scan, no request",
    "fleet.uploads.upload_recording": "PUTs bytes to https storage hosts only (tests/test_fleet_uploads.py)",
    "fleet.uploads.upload_managed_recording": "PUTs bytes to R2 grants only (tests/test_fleet_uploads.py)",
}


@dataclass
class Step:
    name: str  # resource path and method, e.g. "fleet.devices.get"
    args: Callable[[dict], tuple[tuple, dict]] = lambda w: ((), {})
    keep: str | None = None  # store the result's uid (or the result) under this key
    keep_attr: str = "uid"
    expect_items: bool = True  # a list/page must not be empty


def _a(*args: Any, **kwargs: Any) -> Callable[[dict], tuple[tuple, dict]]:
    """Arguments that may refer to earlier results: a str starting with '@' is looked up in the world."""

    def resolve(w: dict) -> tuple[tuple, dict]:
        def v(x: Any) -> Any:
            if isinstance(x, list):
                return [v(i) for i in x]
            if isinstance(x, dict):
                return {k: v(i) for k, i in x.items()}
            return w[x[1:]] if isinstance(x, str) and x.startswith("@") else x

        return tuple(v(x) for x in args), {k: v(x) for k, x in kwargs.items()}

    return resolve


def steps(tag: str) -> list[Step]:
    """The walk; ``tag`` makes created names unique per run (sync and async walk the same world)."""
    return [
        Step("projects.list"), Step("projects.get", _a("@project")),
        Step("tasks.list", _a(project="@project")), Step("tasks.get", _a("@task")),
        Step("datasets.list"), Step("datasets.get", _a("@dataset_uid")),
        Step("datasets.get_by_slug", _a("@owner", "@dataset_slug")),
        Step("datasets.list_items", _a("@owner", "@dataset_slug", limit=5)),
        Step("datasets.get_item", _a("@owner", "@dataset_slug", "@item")),
        Step("datasets.list_sequences", _a("@owner", "drive-logs")),
        Step("datasets.get_sequence", _a("@owner", "drive-logs", "@sequence")),
        Step("datasets.get_frame", _a("@owner", "drive-logs", "@sequence", 0)),
        Step("datasets.get_calibration", _a("@owner", "drive-logs", "@sequence")),
        Step("datasets.get_health", _a("@owner", "@dataset_slug")),
        Step("datasets.create", _a(name=f"Walk {tag}", slug=f"walk-{tag}", data_type="image"), keep="new_dataset"),
        Step("datasets.wait", _a("@new_dataset", interval=0.5, timeout=60)),
        Step("datasets.transfer", _a("@owner", f"walk-{tag}", owner_username="@username")),
        Step("datasets.manual_upload_quota"), Step("datasets.manual_upload_allowed_mimes"),
        Step("datasets.create_manual_upload_url",
             _a(dataset_name=f"up-{tag}", file_path_in_dataset="a/b.jpg", content_length=1024), keep="presign", keep_attr=""),
        Step("datasets.create_from_manual_upload", _a(name=f"up-{tag}", slug=f"up-{tag}", data_type="image")),
        Step("annotations.bulk_edit", _a("@owner", "drive-logs", "@bulk_edits")),
        Step("auto_label_jobs.create", _a("@project", dry_run=True), keep="job"),
        Step("auto_label_jobs.list"), Step("auto_label_jobs.get", _a("@job")), Step("auto_label_jobs.cancel", _a("@job")),
        Step("exports.create", _a(project="@project"), keep="export"), Step("exports.list"),
        Step("exports.get", _a("@export")), Step("exports.wait", _a("@export", interval=0.5, timeout=60)),
        Step("agents.create", _a(name=f"agent-{tag}", events=["result.submitted"], project="@project",
                                 callback_url="https://example.com/hook"), keep="agent"),
        Step("agents.list"), Step("agents.get", _a("@agent")),
        Step("agents.update", _a("@agent", description="walked")), Step("agents.test", _a("@agent")),
        Step("agents.list_executions", _a("@seeded_agent")), Step("agents.delete", _a("@agent")),
        Step("webhooks.create", _a(target_url="https://example.com/wh", events=["auto_label.completed"]), keep="webhook"),
        Step("webhooks.list"), Step("webhooks.get", _a("@webhook")),
        Step("webhooks.update", _a("@webhook", is_active=True)), Step("webhooks.test", _a("@webhook")),
        Step("webhook_deliveries.list", keep="delivery_page", keep_attr=""),
        Step("webhook_deliveries.get", _a("@delivery")), Step("webhooks.delete", _a("@webhook")),
        Step("inference_providers.create", _a(name=f"ip-{tag}", provider_type="http",
                                              config={"url": "https://infer.example.com/v1", "method": "POST"}), keep="provider"),
        Step("inference_providers.list"), Step("inference_providers.get", _a("@provider")),
        Step("inference_providers.update", _a("@provider", description="walked")),
        Step("inference_providers.test", _a("@provider")), Step("inference_providers.delete", _a("@provider")),
        Step("quality_targets.create", _a("@project", name=f"qt-{tag}", metric="completion_rate", threshold=0.5), keep="target"),
        Step("quality_targets.list", _a("@project")), Step("quality_targets.get", _a("@project", "@target")),
        Step("quality_targets.update", _a("@project", "@target", threshold=0.4)),
        Step("quality_targets.evaluate", _a("@project")), Step("quality_targets.delete", _a("@project", "@target")),
        Step("consensus.get_config", _a("@project")), Step("consensus.update_config", _a("@project", iou_threshold=0.6)),
        Step("consensus.get_summary", _a("@project")), Step("consensus.list_scores", _a("@project")),
        Step("consensus.compute", _a("@project")),
        Step("annotation_issues.list_tools", _a(dataset_type="lidar")),
        Step("annotation_issues.create", _a("@sequence", tool_uid="@tool", problem_uid="@problem", description="walk"), keep="issue"),
        Step("annotation_issues.list_by_sequence", _a("@sequence")),
        Step("annotation_issues.update", _a("@sequence", "@issue", priority="high")),
        Step("annotation_issues.list_by_dataset", _a("@owner", "drive-logs")),
        Step("annotation_issues.get_metrics", _a("@owner", "drive-logs")),
        Step("annotation_issues.delete", _a("@sequence", "@issue")),
        Step("storage_configs.setup_info"),
        Step("storage_configs.create", _a(name=f"sc-{tag}", provider="aws_s3", s3_bucket_name="walk-bucket",
                                          s3_bucket_region="us-east-1", s3_auth_method="iam_role",
                                          s3_role_arn="arn:aws:iam::123456789012:role/avala"), keep="storage"),
        Step("storage_configs.list"), Step("storage_configs.get", _a("@storage")),
        Step("storage_configs.test", _a("@storage")), Step("storage_configs.delete", _a("@storage")),
        Step("organizations.industry_choices"),
        Step("organizations.create", _a(name=f"Walk Org {tag}"), keep="org", keep_attr="slug"),
        Step("organizations.list"), Step("organizations.get", _a("@org")),
        Step("organizations.slug_for_uid", _a("@org_uid")),
        Step("organizations.update", _a("@org", description="walked")),
        Step("organizations.list_members", _a("@org")),
        Step("organizations.create_invitation", _a("@org", email=f"walk-{tag}@example.com", role="member"), keep="invitation"),
        Step("organizations.list_invitations", _a("@org")),
        Step("organizations.resend_invitation", _a("@org", "@invitation")),
        Step("organizations.cancel_invitation", _a("@org", "@invitation")),
        Step("organizations.create_team", _a("@org", name=f"Team {tag}"), keep="team", keep_attr="slug"),
        Step("organizations.list_teams", _a("@org")), Step("organizations.get_team", _a("@org", "@team")),
        Step("organizations.update_team", _a("@org", "@team", color="#00ff00")),
        Step("organizations.add_team_member", _a("@org", "@team", user_uid="@user_uid"), keep="team_member", keep_attr="user_uid"),
        Step("organizations.list_team_members", _a("@org", "@team")),
        Step("organizations.update_team_member_role", _a("@org", "@team", "@user_uid", role="lead")),
        Step("organizations.remove_team_member", _a("@org", "@team", "@user_uid")),
        Step("organizations.delete_team", _a("@org", "@team")),
        Step("organizations.update_member_role", _a("@home_org", "@member_uid", role="admin")),
        Step("organizations.remove_member", _a("@home_org", "@member_uid")),
        Step("organizations.delete", _a("@org")),
        Step("slices.create", _a(name=f"Slice {tag}", visibility="private",
                                 sub_slices=[{"dataset": "@dataset_uid", "query": "label=car"}]), keep="slice", keep_attr="slug"),
        Step("slices.list", _a("@owner")), Step("slices.get", _a("@owner", "@slice")),
        Step("slices.list_items", _a("@owner", "@slice"), keep="slice_page", keep_attr=""),
        Step("slices.get_item", _a("@owner", "@slice", "@slice_item")),
        Step("fleet.devices.register", _a(name=f"dev-{tag}", type="robot_arm"), keep="device"),
        Step("fleet.devices.list"), Step("fleet.devices.get", _a("@device")),
        Step("fleet.devices.update", _a("@device", firmware_version="2.0.0")),
        Step("fleet.recordings.list"), Step("fleet.recordings.get", _a("@recording")),
        Step("fleet.recordings.update", _a("@recording", tags=["walked"])),
        Step("fleet.rules.create", _a(name=f"rule-{tag}", condition={"field": "severity", "op": "eq", "value": "critical"},
                                      actions=[{"type": "alert"}]), keep="rule"),
        Step("fleet.rules.list"), Step("fleet.rules.get", _a("@rule")), Step("fleet.rules.update", _a("@rule", enabled=True)),
        Step("fleet.events.create", _a(recording="@recording", device="@recording_device", label="walk", type="anomaly",
                                       timestamp="2026-01-05T09:00:00Z", severity="critical"), keep="event"),
        Step("fleet.events.create_batch", _a(events="@batch_events")),
        Step("fleet.events.list"), Step("fleet.events.get", _a("@event")),
        Step("fleet.alerts.list", _a(rule_id="@rule"), keep="alert_page", keep_attr=""),
        Step("fleet.alerts.get", _a("@alert")), Step("fleet.alerts.acknowledge", _a("@alert")),
        Step("fleet.alerts.resolve", _a("@alert", resolution_note="walked")),
        Step("fleet.alert_channels.create", _a(name=f"ch-{tag}", type="webhook", config={"url": "https://example.com/alerts"}), keep="channel"),
        Step("fleet.alert_channels.list"), Step("fleet.alert_channels.test", _a("@channel")),
        Step("fleet.alert_channels.delete", _a("@channel")),
        Step("fleet.events.delete", _a("@event")), Step("fleet.rules.delete", _a("@rule")),
        Step("fleet.uploads.get_upload_status", _a("@upload_recording"), keep="upload_status", keep_attr=""),
        Step("fleet.uploads.init_upload", _a("@upload_recording", [{"path": "a.mcap", "size_bytes": 10}]), keep="session"),
        Step("fleet.uploads.get_upload_urls", _a("@upload_recording", "@session", ["a.mcap"])),
        Step("fleet.uploads.confirm_upload", _a("@upload_recording", "@session", "@confirm_files")),
        Step("fleet.uploads.finalize_upload", _a("@upload_recording", "@session")),
        Step("fleet.recordings.delete", _a("@recording")), Step("fleet.devices.delete", _a("@device")),
        # last: hand the home organisation to another member, then leave it
        Step("organizations.transfer_ownership", _a("@home_org", new_owner_uid="@heir_uid")),
        Step("organizations.leave", _a("@home_org")),
    ]


def sdk_methods(client: Any) -> set[str]:
    found: set[str] = set()

    def walk(obj: Any, prefix: str) -> None:
        for name in dir(obj):
            if name.startswith("_"):
                continue
            attr = getattr(obj, name)
            if type(attr).__module__.startswith("avala.resources"):
                walk(attr, f"{prefix}{name}.")
            elif prefix and (inspect.ismethod(attr)):
                found.add(prefix + name)

    walk(client, "")
    return found


def test_every_sdk_method_is_covered():
    sync = sdk_methods(avala.Client(api_key="k", base_url="https://api.avala.ai/api/v1"))
    walked = {s.name for s in steps("x")}
    assert sync - walked - set(NOT_WALKED) == set(), "SDK methods without a step"
    assert walked - sync == set(), "steps for methods the SDK does not have"
    asynchronous = sdk_methods(avala.AsyncClient(api_key="k", base_url="https://api.avala.ai/api/v1"))
    assert asynchronous - walked - set(NOT_WALKED) == set(), "async SDK methods without a step"


def assert_populated(result: Any, step: Step) -> None:
    models: list[Any]
    if isinstance(result, CursorPage):
        models = result.items
    elif isinstance(result, list):
        models = result
    else:
        models = [result]
    if isinstance(result, (CursorPage, list)) and step.expect_items:
        assert models, f"{step.name} returned no items"
    for m in models:
        if isinstance(m, BaseModel):
            sent = m.model_fields_set
            assert len(sent) >= max(1, len(type(m).model_fields) // 2), f"{step.name}: {type(m).__name__} only has {sorted(sent)}"


def _after(step: Step, result: Any, w: dict, client: Any) -> None:
    """Bookkeeping between steps: remember results and derive what later steps need."""
    if step.keep:
        w[step.keep] = getattr(result, step.keep_attr) if step.keep_attr else result
    if step.name == "webhook_deliveries.list":
        w["delivery"] = result.items[0].uid
    elif step.name == "slices.list_items":
        w["slice_item"] = result.items[0].uid
    elif step.name == "fleet.alerts.list":
        w["alert"] = result.items[0].uid
    elif step.name == "organizations.create":
        w["org_uid"] = result.uid
    elif step.name == "fleet.uploads.get_upload_urls":
        w["confirm_files"] = [{"path": "a.mcap", "etag": "0" * 32, "size_bytes": 10}]


def _call(client: Any, step: Step, w: dict) -> Any:
    target = client
    for part in step.name.split("."):
        target = getattr(target, part)
    args, kwargs = step.args(w)
    result = target(*args, **kwargs)
    return list(result) if inspect.isgenerator(result) else result  # bulk_edit is lazy


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_walk_every_sdk_method(mock, client, flavour):
    pytest.importorskip("avala")
    w = sdk_world(mock, client)
    tag = f"{flavour}-{uuid.uuid4().hex[:6]}"
    if flavour == "sync":
        for step in steps(tag):
            if step.name in PREPARE:
                PREPARE[step.name](mock, client, w)
            result = _call(client, step, w)
            assert_populated(result, step)
            _after(step, result, w, client)
        return

    async def run() -> None:
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            for step in steps(tag):
                if not _has(ac, step.name):
                    continue  # sync-only helpers (fleet uploads, slug_for_uid, upload helpers)
                if step.name in PREPARE:
                    await asyncio.to_thread(PREPARE[step.name], mock, client, w)
                result = _call(ac, step, w)
                if inspect.isawaitable(result):
                    result = await result
                if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
                    result = [x async for x in result]
                elif inspect.isgenerator(result):
                    result = list(result)
                assert_populated(result, step)
                _after(step, result, w, ac)

    asyncio.run(run())


def _has(client: Any, name: str) -> bool:
    target = client
    for part in name.split("."):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def _upload_via_plane(mock: Any, client: Any, w: dict) -> None:
    """Put the bytes the fleet upload session expects into the data plane (the SDK cannot: http)."""
    urls = client.fleet.uploads.get_upload_urls(w["upload_recording"], w["session"], ["a.mcap"])
    put = mock.http.put(urls.urls[0].put_url, content=b"0123456789", headers=urls.urls[0].headers)
    put.raise_for_status()
    w["confirm_files"] = [{"path": "a.mcap", "etag": put.headers["ETag"].strip('"'), "size_bytes": 10}]


def _upload_manual(mock: Any, client: Any, w: dict) -> None:
    """Upload the presigned file's bytes over raw HTTP so the manual-upload dataset can be finalized."""
    p = w["presign"]
    files = {"file": ("b.jpg", b"x" * 1024, "image/jpeg")}
    mock.http.post(p["url"], data=p.get("fields", {}), files=files).raise_for_status()


def _advance(mock: Any, client: Any, w: dict) -> None:
    mock.advance(3600)


PREPARE: dict[str, Callable[[Any, Any, dict], None]] = {
    "fleet.uploads.confirm_upload": _upload_via_plane,
    "datasets.create_from_manual_upload": _upload_manual,
    "datasets.wait": _advance,
    "exports.wait": _advance,
}


def _refs(step: Step) -> bool:
    """Whether a step's arguments name objects of the walking organisation."""
    marker = object()
    seen: list[bool] = []

    class Probe(dict):
        def __missing__(self, key: str) -> object:
            seen.append(True)
            return marker

    try:
        step.args(Probe())
    except Exception:  # noqa: BLE001 - a probe value in an f-string or arithmetic: it does refer
        return True
    return bool(seen)


def test_second_org_cannot_reach_the_first_orgs_objects(mock, client):
    """Every step that names the first organisation's objects, replayed first with the second
    organisation's key, is refused (404, or 400/403 for references in a body) and changes nothing —
    the first organisation's own call right after still succeeds. Lists never show its objects."""
    from avala.errors import AvalaError

    from helpers import SECOND_ORG_KEY

    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    w = sdk_world(mock, client)
    mine: set[str] = set()
    refused = 0
    for step in steps("xt"):
        if step.name in PREPARE:
            PREPARE[step.name](mock, client, w)
        if _refs(step):
            try:
                leaked = _call(other, step, w)
            except (AvalaError, RuntimeError) as exc:  # bulk_edit wraps the API error in a RuntimeError
                error = exc if isinstance(exc, AvalaError) else exc.__cause__
                assert isinstance(error, AvalaError) and error.status_code in (400, 403, 404), (step.name, exc)
                refused += 1
            else:
                # Only a list filtered by a foreign object may answer (with nothing of ours); the SDK's
                # client-side slug search may find nothing (None).
                if not (leaked is None and step.name == "organizations.slug_for_uid"):
                    assert isinstance(leaked, (CursorPage, list)), f"{step.name} reached another organisation's object"
                    ours = mine | {v for v in w.values() if isinstance(v, str)}
                    assert not {getattr(x, "uid", None) for x in leaked} & ours, step.name
        elif step.name.endswith((".list", "list_executions")) and mine:
            theirs = {getattr(x, "uid", None) for x in _call(other, step, w)}
            assert not theirs & mine, f"{step.name} shows another organisation's objects"
        result = _call(client, step, w)
        for x in result.items if isinstance(result, CursorPage) else [result]:
            if isinstance(getattr(x, "uid", None), str):
                mine.add(x.uid)
        _after(step, result, w, client)
    assert refused > 80
