"""Quality targets (surface doc §2.11, §3.15): a threshold on a project metric, checked by ``evaluate``.

Every metric is derived from the project's real state at the virtual-clock instant of the call:
its result states (human labels, bot drafts, review outcomes), the auto-label drafts compared with the
dataset's hidden ground truth, and the last finished consensus computation. A metric that has nothing
to measure yet (e.g. ``iou`` before any draft exists) has no value, and its targets are left out of an
evaluation instead of being answered with a null.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from avala_mock.simulators import consensus
from avala_mock.simulators.autolabel import AutoLabelJob
from avala_mock.simulators.errors import Conflict, Invalid, NotFound
from avala_mock.simulators.records import collection, declare, new_record, patch
from avala_mock.simulators.world import ACCEPTED_RESULT, DRAFT_RESULT, NO_RESULT, REJECTED_RESULT, OrgStore, Project, World

KIND = "quality_targets"
declare(KIND, indexes=("project",))
MATCH_IOU = 0.5  # a draft prediction is correct when it overlaps a same-label ground-truth object this much

# name -> what it measures (documented in openapi.yaml, QualityTarget.metric)
METRICS: dict[str, str] = {
    "completion_rate": "items with a result (human or draft) / project items",
    "draft_ratio": "items whose result is an auto-label draft awaiting review / items with a result",
    "acceptance_rate": "items whose result was accepted / items with a result",
    "rejection_rate": "items whose result was rejected / items with a result",
    "iou": "mean IoU of each auto-label prediction with its best same-label ground-truth object",
    "precision": "auto-label predictions matching a same-label ground-truth object at IoU >= 0.5 / predictions",
    "recall": "ground-truth objects of auto-labelled items found by a prediction at IoU >= 0.5 / those objects",
    "f1": "harmonic mean of precision and recall",
    "accuracy": "auto-labelled items whose predictions match their ground truth exactly (every prediction "
                "correct, every object found) / auto-labelled items",
    "consensus_score": "mean item score of the project's last finished consensus computation",
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda v, t: v > t,
    "gte": lambda v, t: v >= t,
    "lt": lambda v, t: v < t,
    "lte": lambda v, t: v <= t,
    "eq": lambda v, t: abs(v - t) <= 1e-9,
}
FIELDS = ("name", "metric", "threshold", "operator", "severity", "is_active", "notify_webhook", "notify_emails")


# ── targets ───────────────────────────────────────────────────────────────────────────────────────


def _check(fields: dict[str, Any]) -> None:
    metric = fields.get("metric")
    if metric is not None and metric not in METRICS:
        raise Invalid(f"Unknown metric {metric!r}; supported metrics: {', '.join(METRICS)}.", field="metric")
    operator = fields.get("operator")
    if operator is not None and operator not in OPERATORS:
        raise Invalid(f"Unknown operator {operator!r}; expected one of: {', '.join(OPERATORS)}.", field="operator")


def targets(store: OrgStore, project: Project) -> list[dict[str, Any]]:
    return collection(store, KIND).filter(project=project.uid)


def get_target(store: OrgStore, project: Project, uid: str) -> dict[str, Any]:
    """The target ``uid`` of this project (another project's target is not found here)."""
    found = collection(store, KIND).get(uid)
    if found["project"] != project.uid:
        raise NotFound(f"Quality target {uid!r} not found in project {project.uid}.")
    return found


def _unique_name(store: OrgStore, project: Project, name: str, exclude: str | None = None) -> None:
    """409 when another target of the project already has this name (names identify targets in alerts)."""
    for other in collection(store, KIND).filter(project=project.uid, name=name):
        if other["uid"] != exclude:
            raise Conflict(f"Project {project.uid} already has a quality target named {name!r} ({other['uid']}).")


def create_target(world: World, store: OrgStore, project: Project, body: dict[str, Any]) -> dict[str, Any]:
    """Add a target; ``operator`` defaults to ``gt`` (optional in Python, required in TypeScript)."""
    _check(body)
    _unique_name(store, project, body["name"])
    fields = {
        "project": project.uid,
        "name": body["name"],
        "metric": body["metric"],
        "operator": body.get("operator") or "gt",
        "threshold": float(body["threshold"]),
        "severity": body.get("severity"),
        "is_active": bool(body.get("is_active", True)),
        "notify_webhook": bool(body.get("notify_webhook", True)),
        "notify_emails": list(body.get("notify_emails") or []),
        "last_evaluated_at": None,
        "last_value": None,
        "is_breached": False,
        "breach_count": 0,
        "last_breached_at": None,
    }
    return collection(store, KIND).add(new_record(world, store, fields))


def update_target(world: World, store: OrgStore, project: Project, record: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    _check(body)
    if "name" in body:
        _unique_name(store, project, body["name"], exclude=record["uid"])
    changes = dict(body)
    if "threshold" in changes:
        changes["threshold"] = float(changes["threshold"])
    return patch(world, record, changes, FIELDS)


def delete_target(store: OrgStore, record: dict[str, Any]) -> None:
    collection(store, KIND).remove(record["uid"])


# ── evaluation ────────────────────────────────────────────────────────────────────────────────────


def evaluate(world: World, store: OrgStore, project: Project) -> list[dict[str, Any]]:
    """Evaluate the project's active targets now and keep the breach bookkeeping on each.

    ``is_breached`` is ``not (value <operator> threshold)``; ``breach_count`` and ``last_breached_at``
    move on each transition into breach. Targets whose metric has no value are skipped untouched.
    """
    with store.lock:
        now = world.clock.now()
        values = project_metrics(world, store, project, now)
        out = []
        for target in targets(store, project):
            if not target["is_active"]:
                continue
            value = values.get(target["metric"])
            if value is None:
                continue
            breached = not OPERATORS[target["operator"]](value, target["threshold"])
            if breached and not target["is_breached"]:
                target["breach_count"] += 1
                target["last_breached_at"] = now
            target.update(is_breached=breached, last_value=value, last_evaluated_at=now)
            out.append({
                "uid": target["uid"],
                "name": target["name"],
                "metric": target["metric"],
                "threshold": target["threshold"],
                "operator": target["operator"],
                "current_value": value,
                "is_breached": breached,
                "severity": target["severity"],
                "evaluated_at": now,
            })
        return out


def project_metrics(world: World, store: OrgStore, project: Project, now: float) -> dict[str, float | None]:
    """Every supported metric of the project at ``now`` (None: nothing to measure yet)."""
    project.settle(now)
    state = project.result_state
    n = len(state)
    with_result = int(np.count_nonzero(state != NO_RESULT))
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    out["completion_rate"] = _ratio(with_result, n)
    if with_result:
        out["draft_ratio"] = _ratio(int(np.count_nonzero(state == DRAFT_RESULT)), with_result)
        out["acceptance_rate"] = _ratio(int(np.count_nonzero(state == ACCEPTED_RESULT)), with_result)
        out["rejection_rate"] = _ratio(int(np.count_nonzero(state == REJECTED_RESULT)), with_result)
    out.update(draft_quality(store, project))
    score = consensus.mean_score(store, project, now)
    out["consensus_score"] = None if score is None else round(score, 6)
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


def draft_quality(store: OrgStore, project: Project) -> dict[str, float | None]:
    """``iou``/``precision``/``recall``/``f1``/``accuracy`` of the model-made results against ground truth."""
    state, made_by = project.result_state, project.result_job
    rows = np.flatnonzero((made_by >= 0) & np.isin(state, (DRAFT_RESULT, ACCEPTED_RESULT, REJECTED_RESULT)))
    empty = {"iou": None, "precision": None, "recall": None, "f1": None, "accuracy": None}
    if not len(rows):
        return empty
    totals = np.zeros(6)  # predictions, IoU sum, correct predictions, gt objects, gt found, exact items
    for seq in np.unique(made_by[rows]):
        job = store.jobs_by_seq.get(int(seq))
        if job is None:
            continue
        mine = rows[made_by[rows] == seq]
        pos = np.searchsorted(job.rows, mine)
        m = _job_match(job)
        exact = (m["correct"][pos] == m["n_pred"][pos]) & (m["found"][pos] == m["n_gt"][pos])
        totals += [m["n_pred"][pos].sum(), m["iou_sum"][pos].sum(), m["correct"][pos].sum(),
                   m["n_gt"][pos].sum(), m["found"][pos].sum(), exact.sum()]
    n_pred, iou_sum, correct, n_gt, found, exact_items = totals.tolist()
    precision = correct / n_pred if n_pred else None
    recall = found / n_gt if n_gt else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "iou": round(iou_sum / n_pred, 6) if n_pred else None,
        "precision": None if precision is None else round(precision, 6),
        "recall": None if recall is None else round(recall, 6),
        "f1": None if f1 is None else round(f1, 6),
        "accuracy": round(exact_items / len(rows), 6),
    }


_matches: weakref.WeakKeyDictionary[AutoLabelJob, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def _job_match(job: AutoLabelJob) -> dict[str, np.ndarray]:
    """Per job item (position in ``job.rows``): its accepted predictions matched with its ground truth.

    A job's predictions never change, so this is computed once per job, vectorised over all its items.
    """
    found = _matches.get(job)
    if found is not None:
        return found
    project = job.project
    n = len(job.rows)
    above = job.above
    pred_pos = job.pred_item[above]
    pred_lab = job.preds.labels[above].astype(np.int64)
    pred_box = job.preds.boxes[above].astype(np.float64)
    sub = project.dataset.gt.take(project.rows[job.rows])
    wanted = project.label_mask(job.labels)
    gt_pos_all = np.repeat(np.arange(n), np.diff(sub.offsets))
    keep = wanted[sub.labels] if len(sub.labels) else np.zeros(0, dtype=bool)
    gt_pos, gt_lab, gt_box = gt_pos_all[keep], sub.labels[keep].astype(np.int64), sub.boxes[keep].astype(np.float64)
    n_gt = np.bincount(gt_pos, minlength=n)
    gt_start = np.concatenate([[0], np.cumsum(n_gt)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    # every (prediction, ground-truth object) pair of the same item
    per_pred = n_gt[pred_pos]
    pair_pred = np.repeat(np.arange(len(pred_pos)), per_pred)
    first = np.cumsum(per_pred) - per_pred
    pair_gt = gt_start[pred_pos][pair_pred] + (np.arange(len(pair_pred)) - first[pair_pred])
    iou = consensus.box_iou(pred_box[pair_pred], gt_box[pair_gt]) * (pred_lab[pair_pred] == gt_lab[pair_gt])
    best_pred = np.zeros(len(pred_pos))
    np.maximum.at(best_pred, pair_pred, iou)
    best_gt = np.zeros(len(gt_pos))
    np.maximum.at(best_gt, pair_gt, iou)
    found = {
        "n_pred": np.bincount(pred_pos, minlength=n),
        "iou_sum": np.bincount(pred_pos, weights=best_pred, minlength=n),
        "correct": np.bincount(pred_pos, weights=best_pred >= MATCH_IOU, minlength=n).astype(np.int64),
        "n_gt": n_gt,
        "found": np.bincount(gt_pos, weights=best_gt >= MATCH_IOU, minlength=n).astype(np.int64),
    }
    _matches[job] = found
    return found
