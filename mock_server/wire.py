"""Render backend objects as the JSON the official clients read (surface doc §3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulators.annotations import bulk_results
from simulators.autolabel import AutoLabelJob, settle_project
from simulators.clock import iso
from simulators.datasets import mime_type, settle_dataset
from simulators.events import result_uid
from simulators.world import HUMAN_RESULT, NO_RESULT, RESULT_STATUS, Dataset, OrgStore, Project, Sequence, Task, User

MEDIA_ROOT = "https://data.avala.ai/mock"


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


def project(p: Project, now: float) -> dict[str, Any]:
    settle_project(p, now)
    return {
        "uid": p.uid,
        "name": p.name,
        "status": p.status,
        "description": p.description,
        "task_type": p.task_type,
        "labels": p.labels,
        "dataset": p.dataset.uid,
        "item_count": len(p.rows),
        "labeled_item_count": int(np.count_nonzero(p.result_state != NO_RESULT)),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
    }


def dataset(d: Dataset, now: float | None = None) -> dict[str, Any]:
    """``now`` settles a new dataset's indexing (``creating`` -> ``created``); without it the last status."""
    return {
        "uid": d.uid,
        "name": d.name,
        "slug": d.slug,
        "item_count": len(d.item_uids),
        "owner_name": d.owner_name,
        "status": settle_dataset(d, now) if now is not None else d.status,
        "data_type": d.data_type,
        "is_sequence": d.is_sequence,
        "visibility": d.visibility,
        "predefined_labels": [{"name": name, "index": i} for i, name in enumerate(d.labels)],
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def dataset_item(d: Dataset, index: int, store: OrgStore, now: float) -> dict[str, Any]:
    key = d.item_keys[index] if d.item_keys is not None else f"images/{index:06d}.jpg"
    w, h = d.image_size
    uid = d.item_uids[index]
    results = _item_results(d, index, store, now)
    if uid in d.objects:  # cuboids from bulk edits, one result per bulk-edition project
        results += bulk_results(d.objects[uid])
    return {
        "id": index + 1,
        "uid": uid,
        "is_hidden": False,
        "key": key,
        "dataset": d.uid,
        "dataset_owner_name": d.owner_name,
        "dataset_slug": d.slug,
        "url": f"{MEDIA_ROOT}/{d.slug}/{key}",
        "gpu_texture_url": None,
        "thumbnails": [f"{MEDIA_ROOT}/{d.slug}/thumbs/{index:06d}.jpg"],
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


def _item_results(d: Dataset, index: int, store: OrgStore, now: float) -> list[dict[str, Any]]:
    """The results projects hold for this item: human labels, or bot drafts from auto-label jobs."""
    out = []
    for p in store.projects.values():
        if p.dataset is not d or index not in p.row_of_item:
            continue
        settle_project(p, now)
        row = p.row_of_item[index]
        state = int(p.result_state[row])
        if state == NO_RESULT:
            continue
        if state == HUMAN_RESULT:
            a, b = int(d.gt.offsets[index]), int(d.gt.offsets[index + 1])
            objects = [
                {"type": "bounding_box", "label": d.labels[int(d.gt.labels[j])],
                 "bbox": dict(zip(("x", "y", "width", "height"), (round(float(v), 1) for v in d.gt.boxes[j])))}
                for j in range(a, b) if d.labels[int(d.gt.labels[j])] in p.labels
            ]
            out.append({"project": p.uid, "status": RESULT_STATUS[state], "source": "human",
                        "created_by": store.owner.username, "auto_label_job": None, "objects": objects})
            continue
        job = store.jobs_by_seq[int(p.result_job[row])]
        pos = int(np.searchsorted(job.rows, row))
        out.append({"uid": result_uid(p, row), "project": p.uid, "status": RESULT_STATUS[state], "source": "auto_label",
                    "created_by": store.bot.username, "created_by_uid": store.bot.uid,
                    "auto_label_job": job.uid, "model_type": job.model_type, "objects": job.item_predictions(pos)})
    return out


def sequence(d: Dataset, s: Sequence, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uid": s.uid,
        "is_hidden": False,
        "key": s.key,
        "custom_uuid": None,
        "status": s.status,
        "featured_image": s.frames[0]["images"][0]["image_url"] if s.frames and s.frames[0]["images"] else None,
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
    }
    if detail:
        out["frames"] = s.frames
        out["camera_calibration"] = s.camera_calibration
    return out


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


def job(j: AutoLabelJob, now: float, *, as_created: bool = False) -> dict[str, Any]:
    """The job at ``now``; ``as_created`` renders the 202 answer (pending, all counters zero, seed 001)."""
    if as_created:
        status, pct, started, completed, error, summary = "pending", 0.0, None, None, None, None
        counters = (0, 0, 0, 0, 0)
    else:
        j.settle(now)
        s = j.state(now)
        status, pct, started, completed, error = s.status, s.progress_pct, s.started_at, s.completed_at, s.error_message
        counters = (s.total_items, s.processed_items, s.successful_items, s.failed_items, s.skipped_items)
        summary = j.summary(s.processed_items) if status != "pending" else None
    total, processed, ok, failed, skipped = counters
    return {
        "uid": j.uid,
        "project": j.project.uid,
        "status": status,
        "model_type": j.model_type,
        "confidence_threshold": j.threshold,
        "labels": j.labels,
        "dry_run": j.dry_run,
        "total_items": total,
        "processed_items": processed,
        "successful_items": ok,
        "failed_items": failed,
        "skipped_items": skipped,
        "progress_pct": pct,
        "error_message": error,
        "summary": summary,
        "started_at": iso(started),
        "completed_at": iso(completed),
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
