"""Consensus scoring (surface doc §2.12, §3.16): how much several annotators agree on the same items.

The world has no real multi-annotator data, so each project gets a seeded *panel*: every item is
labelled by 1-4 of the organisation's (non-bot) users, each of whom reproduces the item's hidden ground
truth with a personal noise profile (missed objects, class swaps, box jitter, the odd spurious box).
The panel is sampled once per project, so the same item always carries the same annotations; what a
computation changes is the config it applies. Pairwise agreement of two annotators is an F1 of their
objects matched on the same label with IoU >= ``iou_threshold``; an item's score is the mean over its
annotator pairs. Items with fewer than two annotators cannot be scored.

A computation is sampled up front and its visibility is a function of the clock (a ``Timeline``):
started at t it finishes at t + d, and only then do the summary and scores reflect it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avala_mock.simulators.errors import Conflict, Invalid
from avala_mock.simulators.records import collection, declare, new_record, patch
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import NO_RESULT, OrgStore, Project, World

DEFAULTS = {"iou_threshold": 0.5, "min_agreement_ratio": 0.5, "min_annotations": 2}
CONFIG_FIELDS = tuple(DEFAULTS)
MAX_ANNOTATORS = 4
ANNOTATOR_COUNT_P = (0.08, 0.47, 0.3, 0.15)  # P(1..4 annotators on an item)
STARTUP_S = 2.0  # virtual seconds before a computation starts scoring
SECONDS_PER_ITEM = 0.01
BUCKETS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0))
CONFIGS, RUNS = "consensus_configs", "consensus_runs"
declare(CONFIGS, indexes=("project",))
declare(RUNS, indexes=("project",))


@dataclass
class _Panel:
    """Seeded annotations of every item of one project (see module docstring)."""

    count: np.ndarray  # (n_rows,) annotators per item, 1..4
    users: np.ndarray  # (n_rows, 4) index into the user pool, -1 past ``count``
    obj_row: np.ndarray  # (m,) project row of each ground-truth object
    kept: np.ndarray  # (m, 4) annotator s drew the object
    label: np.ndarray  # (m, 4) the label annotator s gave it
    box: np.ndarray  # (m, 4, 4) the box annotator s drew
    spurious: np.ndarray  # (n_rows, 4) objects annotator s drew that are not there
    usernames: list[str]
    signature: tuple


def _pool(store: OrgStore) -> list[Any]:
    return [u for u in store.users.values() if not u.is_bot]


def _panel(world: World, store: OrgStore, project: Project) -> _Panel:
    """The project's panel of annotators and what each drew, sampled from the seed whenever a computation
    starts (the same draws every time; not kept: it is ~2 MB per 5,000-item project and a computation's
    scores are stored with it)."""
    signature = (len(project.rows), tuple(project.labels))
    pool = _pool(store)
    n_users = max(len(pool), 1)
    skill_rng = np.random.default_rng([world.seed, 4242, project.dataset.seq])
    miss = skill_rng.uniform(0.02, 0.12, n_users)
    swap = skill_rng.uniform(0.0, 0.05, n_users)
    jitter = skill_rng.uniform(0.015, 0.07, n_users)  # box noise, as a share of the box size

    rng = np.random.default_rng([world.seed, 4243, project.seq])
    n = len(project.rows)
    count = rng.choice(np.arange(1, MAX_ANNOTATORS + 1), size=n, p=ANNOTATOR_COUNT_P)
    count = np.minimum(count, n_users)
    order = np.argsort(rng.random((n, n_users)), axis=1)
    users = np.full((n, MAX_ANNOTATORS), -1, dtype=np.int64)
    width = min(MAX_ANNOTATORS, n_users)
    users[:, :width] = order[:, :width]
    users[np.arange(MAX_ANNOTATORS)[None, :] >= count[:, None]] = -1

    gt = project.dataset.gt.take(project.rows)
    in_taxonomy = project.label_mask(None)
    obj_row_all = np.repeat(np.arange(n), np.diff(gt.offsets))
    keep = in_taxonomy[gt.labels] if len(gt.labels) else np.zeros(0, dtype=bool)
    obj_row, labels, boxes = obj_row_all[keep], gt.labels[keep].astype(np.int64), gt.boxes[keep].astype(np.float64)
    m = len(obj_row)
    u = np.maximum(users[obj_row], 0)  # (m, 4); slots past the count are masked out when scoring
    kept = rng.random((m, MAX_ANNOTATORS)) >= miss[u]
    project_labels = np.flatnonzero(in_taxonomy)
    swapped = rng.random((m, MAX_ANNOTATORS)) < swap[u]
    other = project_labels[rng.integers(0, max(len(project_labels), 1), size=(m, MAX_ANNOTATORS))] if len(project_labels) else labels[:, None]
    label = np.where(swapped, other, labels[:, None])
    size = np.concatenate([boxes[:, 2:], boxes[:, 2:]], axis=1)  # (m, 4): w, h, w, h
    noise = rng.normal(0.0, 1.0, size=(m, MAX_ANNOTATORS, 4)) * jitter[u][:, :, None] * size[:, None, :]
    box = boxes[:, None, :] + noise
    box[:, :, 2:] = np.maximum(box[:, :, 2:], 1.0)
    spurious = rng.poisson(0.08, size=(n, MAX_ANNOTATORS))
    return _Panel(count, users, obj_row, kept, label, box, spurious, [u.username for u in pool], signature)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of paired xywh boxes (rows of ``a`` with rows of ``b``)."""
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def scorable_rows(project: Project) -> np.ndarray:
    """Rows with a human-made result (drafts of the bot have a single "annotator": the model)."""
    return np.flatnonzero((project.result_state != NO_RESULT) & (project.result_job < 0))


def score_rows(panel: _Panel, rows: np.ndarray, iou_threshold: float) -> dict[str, np.ndarray]:
    """Per-item scores of ``rows`` (those with >= 2 annotators) at ``iou_threshold``."""
    rows = rows[panel.count[rows] >= 2]
    n_rows = len(panel.count)
    in_scope = np.zeros(n_rows, dtype=bool)
    in_scope[rows] = True
    sel = in_scope[panel.obj_row]
    obj_row = panel.obj_row[sel]
    kept, label, box = panel.kept[sel], panel.label[sel], panel.box[sel]
    drawn = np.stack([np.bincount(obj_row, weights=kept[:, s], minlength=n_rows) for s in range(MAX_ANNOTATORS)], axis=1)
    drawn = drawn + panel.spurious
    agree_sum = np.zeros(n_rows)
    iou_sum = np.zeros(n_rows)
    matched_sum = np.zeros(n_rows)
    pairs = np.zeros(n_rows)
    for a in range(MAX_ANNOTATORS):
        for b in range(a + 1, MAX_ANNOTATORS):
            valid = panel.count > b
            iou = box_iou(box[:, a], box[:, b])
            both = kept[:, a] & kept[:, b] & (label[:, a] == label[:, b])
            match = both & (iou >= iou_threshold)
            matched = np.bincount(obj_row, weights=match, minlength=n_rows)
            iou_sum += np.bincount(obj_row, weights=np.where(match, iou, 0.0), minlength=n_rows) * valid
            matched_sum += matched * valid
            total = drawn[:, a] + drawn[:, b]
            agreement = np.where(total > 0, 2.0 * matched / np.where(total > 0, total, 1.0), 1.0)
            agree_sum += agreement * valid
            pairs += valid
    score = agree_sum[rows] / pairs[rows]
    mean_iou = np.where(matched_sum[rows] > 0, iou_sum[rows] / np.maximum(matched_sum[rows], 1), 0.0)
    return {"rows": rows, "count": panel.count[rows], "score": np.clip(score, 0.0, 1.0), "mean_iou": mean_iou,
            "pairs": pairs[rows].astype(np.int64), "users": panel.users[rows]}


# ── config ────────────────────────────────────────────────────────────────────────────────────────


def get_config(world: World, store: OrgStore, project: Project) -> dict[str, Any]:
    """The project's config record (created with the defaults on first use)."""
    configs = collection(store, CONFIGS)
    found = configs.filter(project=project.uid)
    if found:
        return found[0]
    return configs.add(new_record(world, store, {"project": project.uid, **DEFAULTS}))


def update_config(world: World, store: OrgStore, project: Project, changes: dict[str, Any]) -> dict[str, Any]:
    """A merge: absent keys keep their value (the clients PUT partial bodies)."""
    for key in ("iou_threshold", "min_agreement_ratio"):
        if key in changes and not 0.0 <= float(changes[key]) <= 1.0:
            raise Invalid(f"{key} must be between 0 and 1.", field=key)
    if "min_annotations" in changes and int(changes["min_annotations"]) < 1:
        raise Invalid("min_annotations must be at least 1.", field="min_annotations")
    record = get_config(world, store, project)
    clean = {k: (int(v) if k == "min_annotations" else float(v)) for k, v in changes.items() if k in CONFIG_FIELDS}
    return patch(world, record, clean, CONFIG_FIELDS)


# ── computations ──────────────────────────────────────────────────────────────────────────────────


def _runs(store: OrgStore, project: Project) -> list[dict[str, Any]]:
    return collection(store, RUNS).filter(project=project.uid)


def running(store: OrgStore, project: Project, now: float) -> dict[str, Any] | None:
    runs = _runs(store, project)
    return runs[-1] if runs and not runs[-1]["_timeline"].done(now) else None


def latest_finished(store: OrgStore, project: Project, now: float) -> dict[str, Any] | None:
    for run in reversed(_runs(store, project)):
        if run["_timeline"].done(now):
            return run
    return None


def start(world: World, store: OrgStore, project: Project, *, started_at: float | None = None) -> dict[str, Any]:
    """Schedule a computation with the current config; 409 while the project's previous one runs.

    The outcome is sampled now (it depends only on the panel, the project's results and the config at
    the start); it becomes visible when the timeline reaches ``completed``. ``started_at`` back-dates a
    computation (the seeders use it to leave a finished one in the fresh world).
    """
    with store.lock:
        now = world.clock.now()
        busy = running(store, project, now)
        if busy is not None:
            raise Conflict(f"A consensus computation of project {project.uid} is already running ({busy['uid']}).")
        project.settle(now)
        config = {k: get_config(world, store, project)[k] for k in CONFIG_FIELDS}
        panel = _panel(world, store, project)
        scored = score_rows(panel, scorable_rows(project), config["iou_threshold"])
        n = len(scored["rows"])
        duration = (STARTUP_S + SECONDS_PER_ITEM * n) * world.clock.work_scale
        begin = now if started_at is None else started_at
        timeline = Timeline([("running", begin), ("completed", begin + duration)])
        tasks = sorted((t for t in store.tasks.values() if t.project == project.uid), key=lambda t: t.seq)
        record = new_record(world, store, {
            "project": project.uid,
            "config": config,
            "_timeline": timeline,
            "_scores": scored,
            "_score_uids": world.ids.many(n),
            "_tasks": [t.name for t in tasks] or [project.task_type],
            "_usernames": panel.usernames,
            "_n_rows": len(project.rows),
        })
        if started_at is not None:
            record["created_at"] = record["updated_at"] = started_at
        return collection(store, RUNS).add(record)


def duration_s(run: dict[str, Any]) -> float:
    steps = run["_timeline"].steps
    return steps[-1][1] - steps[0][1]


def _has_consensus(run: dict[str, Any]) -> np.ndarray:
    """Items scored by at least ``min_annotations`` annotators who agree at least ``min_agreement_ratio``."""
    s, cfg = run["_scores"], run["config"]
    return (s["count"] >= cfg["min_annotations"]) & (s["score"] >= cfg["min_agreement_ratio"])


def _task_of(run: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    n_tasks = len(run["_tasks"])
    return (rows * n_tasks) // max(run["_n_rows"], 1)


def summary(store: OrgStore, project: Project, now: float) -> dict[str, Any]:
    """Aggregates of the last finished computation (zeros before the first one)."""
    run = latest_finished(store, project, now)
    scores = run["_scores"]["score"] if run is not None else np.zeros(0)
    if not len(scores):
        return {
            "mean_score": 0.0, "median_score": 0.0, "min_score": 0.0, "max_score": 0.0,
            "total_items": 0, "items_with_consensus": 0,
            "score_distribution": {_bucket_name(lo, hi): 0 for lo, hi in BUCKETS},
            "by_task_name": [],
            "computed_at": run["_timeline"].steps[-1][1] if run is not None else None,
        }
    edges = [lo for lo, _ in BUCKETS] + [1.0 + 1e-9]
    counts, _ = np.histogram(scores, bins=edges)
    task_idx = _task_of(run, run["_scores"]["rows"])
    by_task = []
    for i, name in enumerate(run["_tasks"]):
        mine = scores[task_idx == i]
        if len(mine):
            by_task.append({"task_name": name, "mean_score": round(float(mine.mean()), 4), "item_count": int(len(mine))})
    return {
        "mean_score": round(float(scores.mean()), 4),
        "median_score": round(float(np.median(scores)), 4),
        "min_score": round(float(scores.min()), 4),
        "max_score": round(float(scores.max()), 4),
        "total_items": int(len(scores)),
        "items_with_consensus": int(_has_consensus(run).sum()),
        "score_distribution": {_bucket_name(lo, hi): int(c) for (lo, hi), c in zip(BUCKETS, counts)},
        "by_task_name": by_task,
        "computed_at": run["_timeline"].steps[-1][1],
    }


def _bucket_name(lo: float, hi: float) -> str:
    return f"{lo:.1f}-{hi:.1f}"


def mean_score(store: OrgStore, project: Project, now: float) -> float | None:
    """The ``consensus_score`` quality metric: mean item score of the last finished computation."""
    run = latest_finished(store, project, now)
    if run is None or not len(run["_scores"]["score"]):
        return None
    return float(run["_scores"]["score"].mean())


def score_count(store: OrgStore, project: Project, now: float) -> int:
    run = latest_finished(store, project, now)
    return 0 if run is None else len(run["_scores"]["rows"])


def scores(store: OrgStore, project: Project, now: float, i: int, j: int) -> list[dict[str, Any]]:
    """Scores ``i..j-1`` of the last finished computation, in item order, as plain dicts."""
    run = latest_finished(store, project, now)
    if run is None:
        return []
    s = run["_scores"]
    usernames = run["_usernames"]
    finished = run["_timeline"].steps[-1][1]
    consensus = _has_consensus(run)
    task_idx = _task_of(run, s["rows"])
    item_uids = project.dataset.item_uids
    out = []
    for k in range(i, min(j, len(s["rows"]))):
        row = int(s["rows"][k])
        names = [usernames[u] for u in s["users"][k] if 0 <= u < len(usernames)]
        out.append({
            "uid": run["_score_uids"][k],
            "dataset_item_uid": item_uids[int(project.rows[row])],
            "task_name": run["_tasks"][int(task_idx[k])],
            "score_type": "iou",
            "score": round(float(s["score"][k]), 4),
            "annotator_count": int(s["count"][k]),
            "details": {
                "annotators": names,
                "annotator_pairs": int(s["pairs"][k]),
                "mean_matched_iou": round(float(s["mean_iou"][k]), 4) if s["mean_iou"][k] > 0 else None,
                "iou_threshold": run["config"]["iou_threshold"],
                "has_consensus": bool(consensus[k]),
            },
            "created_at": finished,
        })
    return out
