"""Bulk edition of 3D annotations (surface doc §2.5): cuboids per dataset item, 3D cuboids and point-cloud
polylines per sequence, upserted or deleted by their stable ``object_uuid``.

A chunk is validated whole before anything is written, so one bad edit leaves the dataset untouched.
Edits are idempotent on (``object_uuid``, item or sequence uid). Objects are filed under a "bulk-edition
project" per (``object_type``, ``object_name``), as Avala does, and show in the item's (or sequence's)
``annotations.results``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.events import result_uid
from avala_mock.simulators.world import HUMAN_RESULT, NO_RESULT, RESULT_STATUS, Dataset, OrgStore, Project, User, World

ITEM_TYPES = ("cuboid",)
SEQUENCE_TYPES = ("cuboid 3d", "point cloud polyline")
POINT_CLOUD_DATA_TYPES = ("lidar", "pointcloud", "mcap")
DEFAULT_NAME = "Object"
_VECTORS = {"position": ("px", "py", "pz"), "dimensions": ("dx", "dy", "dz"), "rotation": ("qx", "qy", "qz", "qw")}


@dataclass(frozen=True)
class _Edit:
    action: str
    object_uuid: str
    target: str  # item or sequence uid
    object_type: str | None
    fields: dict[str, Any]


def apply_bulk_edits(world: World, store: OrgStore, user: User, ds: Dataset, edits: list[dict[str, Any]]) -> dict[str, int]:
    """Apply one chunk atomically; answers ``{"updated", "created", "deleted"}`` for the chunk."""
    if ds.data_type not in POINT_CLOUD_DATA_TYPES:
        raise Invalid(f"Bulk edition needs a point-cloud dataset (lidar, pointcloud or mcap); "
                      f"{ds.owner_name}/{ds.slug} is {ds.data_type!r}.", field="data_type")
    plan = [_check(ds, i, edit) for i, edit in enumerate(edits)]
    created = deleted = 0
    now = world.clock.now()
    with store.lock:
        for edit in plan:
            objects = ds.objects.setdefault(edit.target, {})
            if edit.action == "delete":
                deleted += objects.pop(edit.object_uuid, None) is not None
                if not objects:
                    del ds.objects[edit.target]
                continue
            project_uid, project_name = _bulk_project(world, ds, edit.object_type or "", edit.fields["object_name"])
            previous = objects.get(edit.object_uuid)
            created += previous is None
            objects[edit.object_uuid] = {
                "object_uuid": edit.object_uuid,
                "object_type": edit.object_type,
                **edit.fields,
                "label": edit.fields["object_data"].get("label") or edit.fields["object_name"],
                "project": project_uid,
                "project_name": project_name,
                "created_by": user.username,
                "created_at": previous["created_at"] if previous else now,
                "updated_at": now,
            }
        if plan:
            ds.updated_at = now
    return {"updated": len(plan), "created": created, "deleted": deleted}


def item_results(store: OrgStore, d: Dataset, index: int, now: float) -> list[dict[str, Any]]:
    """The ``annotations.results`` of one item as of ``now``: per project, its human labels or the bot's
    drafts from auto-label jobs (each project settled to ``now`` first), then bulk-edited objects."""
    out = []
    for p in store.projects.values():
        if p.dataset is not d or index not in p.row_of_item:
            continue
        p.settle(now)
        row = p.row_of_item[index]
        state = int(p.result_state[row])
        if state == NO_RESULT:
            continue
        if state == HUMAN_RESULT:
            out.append(human_result(store, d, p, index, state))
            continue
        job = store.jobs_by_seq[int(p.result_job[row])]
        pos = int(np.searchsorted(job.rows, row))
        out.append({"uid": result_uid(p, row), "project": p.uid, "status": RESULT_STATUS[state], "source": "auto_label",
                    "created_by": store.bot.username, "created_by_uid": store.bot.uid,
                    "auto_label_job": job.uid, "model_type": job.model_type, "objects": job.item_predictions(pos)})
    uid = d.item_uids[index]
    if uid in d.objects:  # cuboids from bulk edits, one result per bulk-edition project
        out += bulk_results(d.objects[uid])
    return out


def human_result(store: OrgStore, d: Dataset, p: Project, index: int, state: int) -> dict[str, Any]:
    """A project's human labels of one item: the item's ground-truth boxes of the project's labels."""
    a, b = int(d.gt.offsets[index]), int(d.gt.offsets[index + 1])
    objects = [
        {"type": "bounding_box", "label": d.labels[int(d.gt.labels[j])],
         "bbox": dict(zip(("x", "y", "width", "height"), (round(float(v), 1) for v in d.gt.boxes[j])))}
        for j in range(a, b) if d.labels[int(d.gt.labels[j])] in p.labels
    ]
    return {"project": p.uid, "status": RESULT_STATUS[state], "source": "human",
            "created_by": store.owner.username, "auto_label_job": None, "objects": objects}


def bulk_results(objects: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """An item's or sequence's bulk-edited objects as ``annotations.results`` entries, one per project."""
    by_project: dict[str, dict[str, Any]] = {}
    for obj in objects.values():
        result = by_project.get(obj["project"])
        if result is None:
            result = by_project[obj["project"]] = {
                "project": obj["project"], "project_name": obj["project_name"], "status": "submitted",
                "source": "bulk_edition", "created_by": obj["created_by"], "auto_label_job": None, "objects": [],
            }
        result["objects"].append({
            "type": obj["object_type"], "object_uuid": obj["object_uuid"], "label": obj["label"],
            "object_name": obj["object_name"], "object_name_plural": obj["object_name_plural"],
            "duration": obj["duration"], "data": obj["object_data"],
            "created_at": iso(obj["created_at"]), "updated_at": iso(obj["updated_at"]),
        })
    return list(by_project.values())


def _bulk_project(world: World, ds: Dataset, object_type: str, object_name: str) -> tuple[str, str]:
    key = f"{object_type}|{object_name}"
    uid = ds.bulk_projects.get(key)
    if uid is None:
        uid = ds.bulk_projects[key] = world.ids.uid()
    return uid, f"Bulk edition: {object_type} {object_name}"


def _check(ds: Dataset, i: int, edit: dict[str, Any]) -> _Edit:
    """One edit against the rules; ``Invalid`` names the edit's index and field."""

    def bad(field: str, message: str) -> Invalid:
        return Invalid(f"edit {i}: {message}", field=f"[{i}].{field}")

    action = edit.get("action")
    if action not in ("upsert", "delete"):
        raise bad("action", "action must be upsert or delete.")
    object_uuid = edit.get("object_uuid")
    try:
        object_uuid = str(uuid.UUID(str(object_uuid)))
    except ValueError:
        raise bad("object_uuid", "object_uuid must be a UUID.") from None
    item_uid, seq_uid = edit.get("dataset_item_uid") or None, edit.get("sequence_uid") or None
    if (item_uid is None) == (seq_uid is None):
        raise bad("dataset_item_uid", "exactly one of dataset_item_uid / sequence_uid is required.")
    object_type = edit.get("object_type")
    if item_uid is not None:
        if item_uid not in ds.item_index:
            raise bad("dataset_item_uid", f"dataset item {item_uid!r} not found in {ds.owner_name}/{ds.slug}.")
        allowed = ITEM_TYPES
    else:
        if seq_uid not in ds.sequence_index:
            raise bad("sequence_uid", f"sequence {seq_uid!r} not found in {ds.owner_name}/{ds.slug}.")
        allowed = SEQUENCE_TYPES
    if object_type is not None and object_type not in allowed:
        where = "a dataset item" if item_uid else "a sequence"
        raise bad("object_type", f"object_type {object_type!r} does not apply to {where} (use {' or '.join(allowed)}).")
    fields: dict[str, Any] = {}
    if action == "upsert":
        if object_type is None:
            raise bad("object_type", "object_type is required for upsert.")
        data = edit.get("object_data")
        if not isinstance(data, dict):
            raise bad("object_data", "object_data (an object) is required for upsert.")
        _check_geometry(data, bad)
        duration = edit.get("duration")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0):
            raise bad("duration", "duration must be a non-negative number.")
        name = edit.get("object_name") or DEFAULT_NAME
        if not isinstance(name, str):
            raise bad("object_name", "object_name must be a string.")
        fields = {"object_name": name, "object_name_plural": edit.get("object_name_plural") or f"{name}s",
                  "duration": duration, "object_data": data}
    return _Edit(action, object_uuid, item_uid or seq_uid, object_type, fields)


def _check_geometry(data: dict[str, Any], bad: Any) -> None:
    """position / dimensions / rotation, when given, are vectors of finite numbers (sizes positive)."""
    for key, components in _VECTORS.items():
        if key not in data:
            continue
        vec = data[key]
        if not isinstance(vec, dict) or any(not _finite(vec.get(c)) for c in components):
            raise bad(f"object_data.{key}", f"object_data.{key} needs numbers {', '.join(components)}.")
        if key == "dimensions" and any(vec[c] <= 0 for c in components):
            raise bad("object_data.dimensions", "object_data.dimensions must be positive.")
        if key == "rotation" and math.hypot(*(vec[c] for c in components)) < 1e-9:
            raise bad("object_data.rotation", "object_data.rotation must be a non-zero quaternion.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
