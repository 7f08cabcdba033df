"""Exports of a project or a dataset (surface doc §2.7): ``pending`` -> ``processing`` -> ``exported``
(or ``failed``) on the clock, then a JSON file with the real content.

What an export holds is fixed when it is created (a snapshot of the projects' result states and the
dataset's bulk-edited objects: copies of small arrays, so creating is cheap); the file is rendered
from that snapshot when downloaded, so it never shows results that came after the export.
"""

from __future__ import annotations

import copy
import hmac
from typing import Any

import numpy as np

from avala_mock.simulators import events, media
from avala_mock.simulators.annotations import bulk_results, human_result
from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.records import collection, new_record
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import HUMAN_RESULT, NO_RESULT, RESULT_STATUS, Dataset, OrgStore, Project, World

KIND = "exports"
FORMAT = "avala-export-v1"
QUEUE_S = 1.0  # pending -> processing
BASE_S = 2.0  # processing -> exported: start-up plus ...
PER_ITEM_S = 0.002  # ... per item (a 5,000-item project exports in 12 s)


def create_export(world: World, store: OrgStore, *, project: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Check the references, snapshot what will be exported and start the timeline."""
    if project is None and dataset is None:
        raise Invalid("Pass a project or a dataset to export.", field="project")
    p = store.project(project) if project is not None else None
    ds = store.dataset(dataset) if dataset is not None else None
    if p is not None and ds is not None and p.dataset is not ds:
        raise Invalid(f"Project {p.uid} does not label dataset {ds.uid}.", field="dataset")
    ds = ds or p.dataset  # type: ignore[union-attr]
    now = world.clock.now()
    with store.lock:
        snapshot = _snapshot(store, ds, p, now)
        n = len(snapshot["items"])
        if ds.settle(now).status == "creating":
            # Nothing to export yet: the job runs and fails, as Avala's worker does on an unindexed dataset.
            timeline = Timeline.start(world.clock, "pending", ("processing", QUEUE_S), ("failed", BASE_S))
            error = f"Dataset {ds.owner_name}/{ds.slug} is still indexing; export it once its status is created."
        else:
            timeline = Timeline.start(world.clock, "pending", ("processing", QUEUE_S), ("exported", BASE_S + PER_ITEM_S * n))
            error = None
        rec = new_record(world, store, {
            "project": p.uid if p else None,
            "dataset": ds.uid,
            "item_count": n,
            "format": FORMAT,
            "_timeline": timeline,
            "_error": error,
            "_token": world.secrets.hex(32),
            "_snapshot": snapshot,
        })
        collection(store, KIND).add(rec)
        events.export_started(world, store, rec)  # export.completed/failed when the timeline ends
    return rec


def state(rec: dict[str, Any], now: float) -> dict[str, Any]:
    """The export's wire fields at ``now`` (without the download URL, which depends on the server origin)."""
    timeline: Timeline = rec["_timeline"]
    status = timeline.status(now)
    changed = max(at for _, at in timeline.steps if at <= now) if timeline.steps[0][1] <= now else rec["created_at"]
    return {
        "uid": rec["uid"],
        "status": status,
        "project": rec["project"],
        "dataset": rec["dataset"],
        "item_count": rec["item_count"],
        "format": rec["format"],
        "error_message": rec["_error"] if status == "failed" else None,
        "exported_at": iso(timeline.reached("exported", now)),
        "created_at": iso(rec["created_at"]),
        "updated_at": iso(max(changed, rec["created_at"])),
    }


def download_path(rec: dict[str, Any]) -> str:
    """Where the file is served (relative to the server origin); the token makes the URL unguessable."""
    return f"/_downloads/exports/{rec['uid']}.json?token={rec['_token']}"


def find_for_download(stores: list[OrgStore], uid: str, token: str | None, now: float) -> tuple[OrgStore, dict] | None:
    """The exported record with this uid and token, in whichever organisation holds it."""
    for store in stores:
        found = collection(store, KIND)
        if uid not in found:
            continue
        rec = found.get(uid)
        if not token or not hmac.compare_digest(token, rec["_token"]):
            return None
        return (store, rec) if rec["_timeline"].status(now) == "exported" else None
    return None


def content(world: World, store: OrgStore, rec: dict[str, Any], now: float) -> dict[str, Any]:
    """The export file: the items with every result (human labels, auto-label drafts with their objects,
    bulk-edited cuboids) as they were when the export was created."""
    snap = rec["_snapshot"]
    ds: Dataset = snap["dataset"]
    p: Project | None = snap["project"]
    w, h = ds.image_size
    items = []
    objects_total = 0
    for index in snap["items"].tolist():
        results = [r for r in (_result(store, ds, view, index) for view in snap["projects"]) if r is not None]
        uid = ds.item_uids[index]
        results += bulk_results(snap["objects"].get(uid, {}))
        objects_total += sum(len(r["objects"]) for r in results)
        key = ds.item_keys[index] if ds.item_keys is not None else f"images/{index:06d}.jpg"
        items.append({"uid": uid, "key": key, "url": media.item_url(world, ds, key), "width": w, "height": h,
                      "sequence_uid": ds.item_sequence.get(index), "results": results})
    sequences = []
    for s in ds.sequences if p is None else []:
        results = bulk_results(snap["objects"].get(s.uid, {}))
        objects_total += sum(len(r["objects"]) for r in results)
        sequences.append({"uid": s.uid, "key": s.key, "frame_count": len(s.frames), "results": results})
    return {
        "format": FORMAT,
        "export": {"uid": rec["uid"], "created_at": iso(rec["created_at"]),
                   "exported_at": iso(rec["_timeline"].reached("exported", now))},
        "organization": {"uid": store.org.uid, "slug": store.org.slug},
        "project": None if p is None else {"uid": p.uid, "name": p.name, "task_type": p.task_type, "labels": p.labels},
        "dataset": {"uid": ds.uid, "name": ds.name, "slug": snap["slug"], "owner_name": snap["owner_name"],
                    "data_type": ds.data_type, "labels": ds.labels},
        "item_count": len(items),
        "sequence_count": len(sequences),
        "object_count": objects_total,
        "items": items,
        "sequences": sequences,
    }


def _snapshot(store: OrgStore, ds: Dataset, p: Project | None, now: float) -> dict[str, Any]:
    projects = [p] if p is not None else [q for q in store.projects.values() if q.dataset is ds]
    views = []
    for q in projects:
        q.settle(now)
        views.append({"project": q, "state": q.result_state.copy(), "job": q.result_job.copy()})
    items = np.asarray(p.rows, dtype=np.int64) if p is not None else np.arange(len(ds.item_uids))
    # Bulk-edited objects are few; the project's items may be a million: ask per object, not per item.
    objects = {k: v for k, v in ds.objects.items() if p is None or ds.item_index.get(k) in p.row_of_item}
    return {"dataset": ds, "project": p, "items": items, "projects": views, "objects": copy.deepcopy(objects),
            "owner_name": ds.owner_name, "slug": ds.slug}


def _result(store: OrgStore, ds: Dataset, view: dict[str, Any], index: int) -> dict[str, Any] | None:
    q: Project = view["project"]
    row = q.row_of_item.get(index)
    if row is None:
        return None
    st = int(view["state"][row])
    if st == NO_RESULT:
        return None
    if st == HUMAN_RESULT:
        return human_result(store, ds, q, index, st)
    job = store.jobs_by_seq[int(view["job"][row])]
    pos = int(np.searchsorted(job.rows, row))
    return {"project": q.uid, "status": RESULT_STATUS[st], "source": "auto_label", "created_by": store.bot.username,
            "auto_label_job": job.uid, "model_type": job.model_type, "objects": job.item_predictions(pos)}


