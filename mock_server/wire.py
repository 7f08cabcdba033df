"""Render backend objects as the JSON the official clients read (surface doc §3).

Rendering reads and never changes state: handlers pass objects already brought up to the clock by
their own accessors (``Project.settle``, ``Dataset.settle``, ``AutoLabelJob.view``, ``item_results``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avala_mock.simulators import media
from avala_mock.simulators.autolabel import JobView
from avala_mock.simulators.clock import iso
from avala_mock.simulators.datasets import mime_type
from avala_mock.simulators.world import NO_RESULT, Dataset, OrgStore, Project, Sequence, Task, User, World

SEQUENCE_TERMINAL = ("completed", "archived")


def user(u: User, store: OrgStore) -> dict[str, Any]:
    return {
        "uid": u.uid,
        "username": u.username,
        "email": u.email,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "full_name": f"{u.first_name} {u.last_name}".strip(),
        "organization_uid": store.org.uid,
        "is_bot": u.is_bot,
    }


assert NO_RESULT == 0  # labeled_count relies on it


def labeled_count(p: Project) -> int:
    """Items with any result: NO_RESULT is 0, so the non-zero states, counted without a temporary mask
    (a project's GET would otherwise allocate one byte per item)."""
    return int(np.count_nonzero(p.result_state))


def project(p: Project) -> dict[str, Any]:
    return {
        "uid": p.uid,
        "name": p.name,
        "status": p.status,
        "description": p.description,
        "task_type": p.task_type,
        "labels": p.labels,
        "dataset": p.dataset.uid,
        "item_count": len(p.rows),
        "labeled_item_count": labeled_count(p),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def dataset(d: Dataset) -> dict[str, Any]:
    return {
        "uid": d.uid,
        "name": d.name,
        "slug": d.slug,
        "item_count": len(d.item_uids),
        "owner_name": d.owner_name,
        "status": d.status,
        "data_type": d.data_type,
        "is_sequence": d.is_sequence,
        "visibility": d.visibility,
        "predefined_labels": [{"name": name, "index": i} for i, name in enumerate(d.labels)],
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def dataset_item(world: World, d: Dataset, index: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    """An item with the ``results`` projects hold for it (``simulators.annotations.item_results``)."""
    key = d.item_keys[index] if d.item_keys is not None else f"images/{index:06d}.jpg"
    w, h = d.image_size
    uid = d.item_uids[index]
    return {
        "id": index + 1,
        "uid": uid,
        "is_hidden": False,
        "key": key,
        "dataset": d.uid,
        "dataset_owner_name": d.owner_name,
        "dataset_slug": d.slug,
        "url": media.item_url(world, d, key),
        "gpu_texture_url": None,
        "thumbnails": [media.thumbnail_url(world, d, index)],
        "video_thumbnail": None,
        "metadata": {"width": w, "height": h, "mime_type": mime_type(key)},
        "export_snippet": None,
        "annotations": {"results": results},
        "crop_data": None,
        "related_items": [],
        "related_sequence_uid": d.item_sequence.get(index),
        "created_at": iso(d.created_at + index),
        "updated_at": iso(d.created_at + index),
    }


def sequence(world: World, d: Dataset, s: Sequence, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uid": s.uid,
        "is_hidden": False,
        "key": s.key,
        "custom_uuid": None,
        "status": s.status,
        "featured_image": media.frame_url(world, d, s.key, s.frames[0]["images"][0]["camera"], 0)
        if s.frames and s.frames[0]["images"] else None,
        "number_of_frames": len(s.frames),
        "views": [{"camera": c["camera_id"]} for c in s.camera_calibration],
        "crop_data": None,
        "predefined_labels": [{"name": name, "index": i} for i, name in enumerate(d.labels)],
        "metrics": {"frame_count": len(s.frames)},
        "dataset_uid": d.uid,
        "dataset_data_type": d.data_type,
        "device_id": None,
        "allow_lidar_calibration": d.data_type == "lidar",
        "lidar_calibration_enabled": d.data_type == "lidar",
        "camera_calibration_enabled": bool(s.camera_calibration),
        # Frames and calibration are the detail endpoint's (D9): present, null, in lists.
        "frames": _frames(world, d, s) if detail else None,
        "camera_calibration": s.camera_calibration if detail else None,
        # No chain-of-custody workflow runs on the mock's sequences: an empty timeline, no workflows.
        "coc_timeline": [],
        "is_workflow_terminal": s.status in SEQUENCE_TERMINAL,
        "sequence_status_workflow": None,
        "sequence_deliverable_workflow": None,
    }
    return out


def _frames(world: World, d: Dataset, s: Sequence) -> list[dict[str, Any]]:
    """The frames with image URLs on this server's media plane (signed, with the client's origin)."""
    return [
        {**frame, "images": [{**image, "image_url": media.frame_url(world, d, s.key, image["camera"], f)} for image in frame["images"]]}
        for f, frame in enumerate(s.frames)
    ]


def task(t: Task) -> dict[str, Any]:
    return {
        "uid": t.uid,
        "type": t.type,
        "name": t.name,
        "status": t.status,
        "project": t.project,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def job(view: JobView) -> dict[str, Any]:
    """A job as ``AutoLabelJob.view`` (or ``created_view`` for the 202 answer) saw it."""
    j, s = view.job, view.state
    return {
        "uid": j.uid,
        "project": j.project.uid,
        "status": s.status,
        "model_type": j.model_type,
        "confidence_threshold": j.threshold,
        "labels": j.labels,
        "dry_run": j.dry_run,
        "total_items": s.total_items,
        "processed_items": s.processed_items,
        "successful_items": s.successful_items,
        "failed_items": s.failed_items,
        "skipped_items": s.skipped_items,
        "progress_pct": s.progress_pct,
        "error_message": s.error_message,
        "summary": view.summary,
        "started_at": iso(s.started_at),
        "completed_at": iso(s.completed_at),
        "created_at": iso(j.created_at),
    }


def record(rec: dict[str, Any]) -> dict[str, Any]:
    """Render a plain record (simulators/records.py): private keys dropped, ``*_at`` epochs as ISO 8601."""
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key.startswith("_") or key == "seq":
            continue
        out[key] = iso(value) if key.endswith("_at") and isinstance(value, (int, float)) else value
    return out
