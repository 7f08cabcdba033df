"""The synthetic inference model: finds an item's hidden ground-truth objects with a set recall, adds
false positives, and draws confidences so that raising the threshold trades recall for precision.

Everything for a whole batch is sampled at once with numpy (design principle 5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

# Names the docs use for the two model families (surface doc §5.8); echoed back unchanged.
MODEL_ALIASES: dict[str, str] = {
    "yolo": "yolo",
    "yolov8": "yolo",
    "yolo11": "yolo",
    "object_detection": "yolo",
    "sam3": "sam3",
    "sam": "sam3",
    "sam2": "sam3",
    "semantic_segmentation": "sam3",
    "instance_segmentation": "sam3",
}


@dataclass(frozen=True)
class ModelProfile:
    """How one model family behaves. Latency per item is lognormal with the given median."""

    name: str
    geometry: str  # "box" (YOLO) or "polygon" (SAM)
    latency_median_s: float
    latency_sigma: float = 0.25
    recall: float = 0.85
    tp_conf: tuple[float, float] = (8.0, 2.0)  # Beta(a, b) for true positives: mean 0.8
    fp_per_item: float = 0.6  # Poisson mean of false positives per item
    fp_conf: tuple[float, float] = (2.0, 5.0)  # Beta(a, b) for false positives: mean 0.29
    failure_rate: float = 0.002  # probability that inference on one item errors
    job_failure_rate: float = 0.0  # probability that the endpoint dies part-way through a job
    startup_s: float = 1.0  # pending -> running delay (endpoint warm-up)

    def with_overrides(self, **overrides: object) -> ModelProfile:
        fixed = {k: tuple(v) if k in ("tp_conf", "fp_conf") else v for k, v in overrides.items()}
        return replace(self, **fixed)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_PROFILES: dict[str, ModelProfile] = {
    "yolo": ModelProfile(name="yolo", geometry="box", latency_median_s=0.05),
    "sam3": ModelProfile(name="sam3", geometry="polygon", latency_median_s=0.2, latency_sigma=0.3, recall=0.9),
}


@dataclass
class GroundTruth:
    """Objects per item in CSR form: item i owns rows offsets[i]:offsets[i+1]."""

    offsets: np.ndarray  # int64 (n+1,)
    labels: np.ndarray  # int16 (m,) index into the label taxonomy
    boxes: np.ndarray  # float32 (m, 4): x, y, w, h in pixels

    def take(self, items: np.ndarray) -> GroundTruth:
        """The ground truth of a subset of items, re-packed in that order."""
        starts, ends = self.offsets[items], self.offsets[items + 1]
        counts = ends - starts
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = _ranges(starts, counts)
        return GroundTruth(offsets, self.labels[rows], self.boxes[rows])


@dataclass
class Predictions:
    """Model output for a batch, CSR by item like :class:`GroundTruth`."""

    offsets: np.ndarray
    labels: np.ndarray
    confidences: np.ndarray
    is_true_positive: np.ndarray
    boxes: np.ndarray
    latency_s: np.ndarray  # (n,) per item
    item_failed: np.ndarray  # (n,) bool
    gt_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (n,) in the label filter


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s+c) for each pair, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    idx = np.arange(total, dtype=np.int64)
    group = np.repeat(np.arange(len(counts)), counts)
    return starts[group] + (idx - (ends - counts)[group])


@dataclass
class ModelOutput:
    """What one model predicts on every item of a dataset, CSR by item. A model is deterministic: the
    same image gives the same detections in every job, so dry runs at different thresholds differ only
    by the threshold."""

    offsets: np.ndarray
    labels: np.ndarray
    confidences: np.ndarray
    is_true_positive: np.ndarray
    boxes: np.ndarray


def infer_dataset(
    profile: ModelProfile,
    gt: GroundTruth,
    n_labels: int,
    rng: np.random.Generator,
    image_size: tuple[int, int] = (1280, 720),
) -> ModelOutput:
    """Sample the model's detections on every item of ``gt`` at once (true and false positives)."""
    n = len(gt.offsets) - 1
    m = len(gt.labels)
    gt_item = np.repeat(np.arange(n), np.diff(gt.offsets))
    found = rng.random(m) < profile.recall
    tp_rows = np.flatnonzero(found)
    tp_conf = rng.beta(*profile.tp_conf, size=len(tp_rows))
    jitter = rng.normal(0.0, 0.03, size=(len(tp_rows), 4)) * np.repeat(gt.boxes[tp_rows, 2:], 2, axis=1)
    tp_boxes = gt.boxes[tp_rows] + jitter

    fp_counts = rng.poisson(profile.fp_per_item, size=n)
    n_fp = int(fp_counts.sum())
    fp_item = np.repeat(np.arange(n), fp_counts)
    fp_labels = rng.integers(0, max(n_labels, 1), size=n_fp)
    fp_conf = rng.beta(*profile.fp_conf, size=n_fp)
    w, h = image_size
    wh = rng.uniform(0.03, 0.25, size=(n_fp, 2)) * (w, h)
    xy = rng.uniform(0, 1, size=(n_fp, 2)) * ((w, h) - wh)
    fp_boxes = np.hstack([xy, wh])

    item = np.concatenate([gt_item[tp_rows], fp_item])
    order = np.argsort(item, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(item, minlength=n), out=offsets[1:])
    return ModelOutput(
        offsets=offsets,
        labels=np.concatenate([gt.labels[tp_rows].astype(np.int16), fp_labels.astype(np.int16)])[order],
        confidences=np.round(np.concatenate([tp_conf, fp_conf]), 4)[order],
        is_true_positive=np.concatenate([np.ones(len(tp_rows), bool), np.zeros(n_fp, bool)])[order],
        boxes=(np.vstack([tp_boxes, fp_boxes]) if len(item) else np.zeros((0, 4))).astype(np.float32)[order],
    )


BLOCK_ITEMS = 4096


class DatasetModel:
    """One model's detections on one dataset, sampled lazily in blocks of items, each block from its
    own seeded stream: deterministic per item whichever job asks first, and a job that touches 5,000
    items of a 500,000-item dataset samples two blocks, not the whole dataset."""

    def __init__(self, profile: ModelProfile, gt: GroundTruth, n_labels: int, seed: list[int], image_size: tuple[int, int]) -> None:
        self.profile, self.gt, self.n_labels, self.seed, self.image_size = profile, gt, n_labels, seed, image_size
        self._blocks: dict[int, ModelOutput] = {}

    def _block(self, b: int) -> ModelOutput:
        out = self._blocks.get(b)
        if out is None:
            n = len(self.gt.offsets) - 1
            items = np.arange(b * BLOCK_ITEMS, min((b + 1) * BLOCK_ITEMS, n))
            rng = np.random.default_rng([*self.seed, b])
            out = self._blocks[b] = infer_dataset(self.profile, self.gt.take(items), self.n_labels, rng, self.image_size)
        return out

    def gather(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, ModelOutput]:
        """``(starts, counts, out)``: item i's detections are rows starts[i]:starts[i]+counts[i] of ``out``."""
        blocks = items // BLOCK_ITEMS
        needed = np.unique(blocks)
        outs = [self._block(int(b)) for b in needed]
        which = np.searchsorted(needed, blocks)
        local = items - blocks * BLOCK_ITEMS
        starts = np.zeros(len(items), dtype=np.int64)
        counts = np.zeros(len(items), dtype=np.int64)
        base = 0
        for k, out in enumerate(outs):
            sel = which == k
            loc = local[sel]
            starts[sel] = base + out.offsets[loc]
            counts[sel] = out.offsets[loc + 1] - out.offsets[loc]
            base += len(out.labels)
        cat = ModelOutput(
            offsets=np.zeros(0, dtype=np.int64),
            labels=np.concatenate([o.labels for o in outs]) if outs else np.zeros(0, np.int16),
            confidences=np.concatenate([o.confidences for o in outs]) if outs else np.zeros(0),
            is_true_positive=np.concatenate([o.is_true_positive for o in outs]) if outs else np.zeros(0, bool),
            boxes=np.concatenate([o.boxes for o in outs]) if outs else np.zeros((0, 4), np.float32),
        )
        return starts, counts, cat


def run_inference(
    profile: ModelProfile,
    model: DatasetModel,
    gt: GroundTruth,
    items: np.ndarray,
    label_mask: np.ndarray,
    rng: np.random.Generator,
) -> Predictions:
    """A job's view of the model on ``items``: their detections of the wanted labels, plus this run's
    per-item latency and transient failures (which do vary from run to run)."""
    n = len(items)
    starts, counts, output = model.gather(items)
    rows = _ranges(starts, counts)
    item = np.repeat(np.arange(n), counts)
    labels = output.labels[rows]
    keep = label_mask[labels] if len(labels) else np.zeros(0, dtype=bool)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(item[keep], minlength=n), out=offsets[1:])

    sub = gt.take(items)
    gt_item = np.repeat(np.arange(n), np.diff(sub.offsets))
    wanted_gt = label_mask[sub.labels] if len(sub.labels) else np.zeros(0, dtype=bool)
    return Predictions(
        offsets=offsets,
        labels=labels[keep],
        confidences=output.confidences[rows][keep],
        is_true_positive=output.is_true_positive[rows][keep],
        boxes=output.boxes[rows][keep],
        latency_s=rng.lognormal(np.log(profile.latency_median_s), profile.latency_sigma, size=n),
        item_failed=rng.random(n) < profile.failure_rate,
        gt_counts=np.bincount(gt_item[wanted_gt], minlength=n).astype(np.int64),
    )
