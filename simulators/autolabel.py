"""The auto-label job engine (seeds 000-003, design.md "The auto-label job").

A job's whole outcome is sampled when it is created: which items it takes, each item's inference
latency, failure and detections. Its state at any instant is then a function of the clock: items
processed by time t = ``searchsorted(done_at, t)``; counters are prefix sums. No task or timer runs per
item, so polling is O(log n) and a hundred 5,000-item jobs cost arithmetic, not scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avala_mock.simulators import events, scenarios
from avala_mock.simulators.errors import Conflict, Invalid
from avala_mock.simulators.model import MODEL_ALIASES, DatasetModel, ModelProfile, Predictions, run_inference
from avala_mock.simulators.world import DRAFT_RESULT, NO_RESULT, Dataset, OrgStore, Project, World

MAX_ITEMS_PER_JOB = 5000
TERMINAL = ("completed", "failed", "cancelled")
SUCCESS, FAILED, SKIPPED = 0, 1, 2
HIST_EDGES = np.linspace(0.0, 1.0, 11)


@dataclass
class JobState:
    """What a job looks like at one instant."""

    status: str
    total_items: int
    processed_items: int
    successful_items: int
    failed_items: int
    skipped_items: int
    progress_pct: float
    started_at: float | None
    completed_at: float | None
    error_message: str | None


@dataclass
class JobView:
    """A job as a reader sees it at one instant: its state and its result summary (None while pending)."""

    job: AutoLabelJob
    state: JobState
    summary: dict[str, Any] | None


class AutoLabelJob:
    """One job, fully sampled up front; ``state(t)`` derives everything else."""

    def __init__(
        self,
        *,
        uid: str,
        seq: int,
        project: Project,
        model_type: str,
        profile: ModelProfile,
        threshold: float,
        labels: list[str],
        dry_run: bool,
        created_at: float,
        start_at: float,
        rows: np.ndarray,
        preds: Predictions,
        done_at: np.ndarray,
        fail_index: int | None,
        bot_uid: str,
    ) -> None:
        self.uid, self.seq, self.project = uid, seq, project
        self.model_type, self.profile = model_type, profile
        self.threshold, self.labels, self.dry_run = threshold, labels, dry_run
        self.created_at, self.start_at = created_at, start_at
        self.rows, self.preds, self.done_at = rows, preds, done_at
        self.bot_uid = bot_uid
        n = len(rows)
        self.pred_item = np.repeat(np.arange(n), np.diff(preds.offsets))
        self.above = preds.confidences >= threshold
        n_above = np.bincount(self.pred_item[self.above], minlength=n)
        self.outcome = np.where(preds.item_failed, FAILED, np.where(n_above > 0, SUCCESS, SKIPPED)).astype(np.int8)
        self.cum = np.zeros((n + 1, 3), dtype=np.int64)
        if n:
            np.cumsum(np.eye(3, dtype=np.int64)[self.outcome], axis=0, out=self.cum[1:])
        # Items processed before the job ends: all of them, unless the endpoint dies part-way.
        self.n_effective = n if fail_index is None else fail_index
        if fail_index is None:
            self.end_at = float(done_at[-1]) if n else start_at
            self.error_message = None
        else:
            self.end_at = float(done_at[fail_index - 1]) if fail_index else start_at
            self.error_message = (
                f"Inference endpoint for model '{profile.name}' stopped responding "
                f"(ModelError: 503 Service Unavailable) after {fail_index} of {n} items."
            )
        self.cancelled_at: float | None = None
        self.settled = 0  # rows whose drafts are written to the project
        self._ended: JobState | None = None  # the state once ended: it never changes after its instant
        self._summary_cache: tuple[int, dict] | None = None
        self._final: tuple[JobState, dict[str, Any] | None] | None = None  # set by ``retire``

    @property
    def total(self) -> int:
        return self._final[0].total_items if self._final is not None else len(self.rows)

    @property
    def retired(self) -> bool:
        return self._final is not None

    def retire(self, now: float) -> bool:
        """A job that has ended without writing a draft (a dry run, or cancelled or failed before its
        first success) keeps only its final answer, state and summary, and lets its per-item arrays go:
        long runs start many dry runs. The event bus calls this once every listener heard of the end,
        because draft events read those arrays. Returns whether the job was retired."""
        if self._final is not None:
            return True
        s = self.state(now)
        if s.status not in TERMINAL or (not self.dry_run and s.successful_items > 0):
            return False
        self.settle(now)
        self._final = (s, self.summary(s.processed_items))
        self.preds = self.done_at = self.cum = self.pred_item = self.above = self.outcome = None  # type: ignore[assignment]
        self.rows = self.rows[:0]
        return True

    def processed_at(self, t: float) -> int:
        if self._final is not None:
            return self._final[0].processed_items
        if t < self.start_at:
            return 0
        if t >= self.end_at:  # every effective row is done by the end (the common case of a polled job)
            return self.n_effective
        return int(np.searchsorted(self.done_at[: self.n_effective], t, side="right"))

    def state(self, now: float) -> JobState:
        if self._final is not None:
            return self._final[0]
        ended = getattr(self, "_ended", None)  # absent in jobs restored from an older snapshot
        if ended is not None and ended.completed_at is not None and now >= ended.completed_at:
            return ended  # polled to death after the end: the answer is fixed
        t = now if self.cancelled_at is None else min(now, self.cancelled_at)
        cancelled = self.cancelled_at is not None and self.cancelled_at <= now
        if t < self.start_at:
            status = "cancelled" if cancelled else "pending"
            return JobState(status, 0, 0, 0, 0, 0, 0.0, None, self.cancelled_at if cancelled else None, None)
        k = self.processed_at(t)
        s, f, sk = (int(x) for x in self.cum[k])
        if t >= self.end_at:
            status, completed_at = ("completed", self.end_at) if self.error_message is None else ("failed", self.end_at)
        elif cancelled:
            status, completed_at = "cancelled", self.cancelled_at
        else:
            status, completed_at = "running", None
        n = self.total
        pct = round(100.0 * k / n, 2) if n else (100.0 if status == "completed" else 0.0)
        error = self.error_message if status == "failed" else None
        result = JobState(status, n, k, s, f, sk, pct, self.start_at, completed_at, error)
        if status in TERMINAL:
            self._ended = result
        return result

    def is_active(self, now: float) -> bool:
        return self.state(now).status in ("pending", "running")

    def settle(self, now: float) -> None:
        """Write the drafts of items processed by ``now`` into the project (idempotent, incremental)."""
        if self._final is not None or self.settled >= self.n_effective:
            return
        t = now if self.cancelled_at is None else min(now, self.cancelled_at)
        k = self.processed_at(t)
        if k <= self.settled:
            return
        if not self.dry_run:
            window = slice(self.settled, k)
            ok = self.outcome[window] == SUCCESS
            rows = self.rows[window][ok]
            self.project.result_state[rows] = DRAFT_RESULT
            self.project.result_job[rows] = self.seq
        self.settled = k

    def view(self, now: float) -> JobView:
        """The job as of ``now``: its drafts settled into the project first, so what a reader is told
        (counters, summary) and what the project holds agree."""
        self.settle(now)
        s = self.state(now)
        return JobView(self, s, self.summary(s.processed_items) if s.status != "pending" else None)

    def created_view(self) -> JobView:
        """The job as its create answer shows it: pending, every counter zero (seed 001)."""
        return JobView(self, JobState("pending", 0, 0, 0, 0, 0, 0.0, None, None, None), None)

    def summary(self, k: int) -> dict[str, Any] | None:
        """Result breakdown of the first ``k`` processed items, cached per ``k``."""
        if self._final is not None:
            return self._final[1]
        if k == 0 and self.total == 0:
            return None
        cached = self._summary_cache
        if cached is not None and cached[0] == k:
            return cached[1]
        p = int(self.preds.offsets[k])
        item_outcome = self.outcome[self.pred_item[:p]]
        not_failed = item_outcome != FAILED
        accepted = self.above[:p] & (item_outcome == SUCCESS)
        names = self.project.dataset.labels
        per_label = np.bincount(self.preds.labels[:p][accepted], minlength=len(names))
        hist, _ = np.histogram(self.preds.confidences[:p][not_failed], bins=HIST_EDGES)
        detections = int(accepted.sum())
        summary: dict[str, Any] = {
            "detections": detections,
            "drafts_created": 0 if self.dry_run else int(self.cum[k][SUCCESS]),
            "by_label": [{"label": names[i], "count": int(c)} for i, c in enumerate(per_label) if c],
            "confidence_histogram": {"bin_edges": [round(x, 2) for x in HIST_EDGES.tolist()], "counts": hist.tolist()},
            "evaluation": None,
        }
        if self.dry_run:
            tp, fp, fn = self.counts_at(k, self.threshold)
            summary["evaluation"] = {
                "threshold": self.threshold,
                "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
                "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
                "true_positives": tp,
                "false_positives": fp,
                "false_negatives": fn,
            }
        self._summary_cache = (k, summary)
        return summary

    def counts_at(self, k: int, threshold: float) -> tuple[int, int, int]:
        """True positives, false positives and false negatives against the hidden ground truth over the
        first ``k`` processed items, had the job kept its predictions at or above ``threshold``."""
        p = int(self.preds.offsets[k])
        ok = self.outcome[self.pred_item[:p]] != FAILED
        kept = ok & (self.preds.confidences[:p] >= threshold)
        tp = int((kept & self.preds.is_true_positive[:p]).sum())
        gt = int(self.preds.gt_counts[:k][self.outcome[:k] != FAILED].sum())
        return tp, int(kept.sum()) - tp, gt - tp

    def item_predictions(self, row_pos: int, *, everything: bool = False) -> list[dict]:
        """The accepted predictions for the job's ``row_pos``-th item (what its draft holds); with
        ``everything``, those under the threshold too, each marked ``accepted`` or not."""
        a, b = int(self.preds.offsets[row_pos]), int(self.preds.offsets[row_pos + 1])
        names = self.project.dataset.labels
        out = []
        for j in range(a, b):
            if not self.above[j] and not everything:
                continue
            x, y, w, h = (round(float(v), 1) for v in self.preds.boxes[j])
            obj: dict[str, Any] = {"label": names[int(self.preds.labels[j])], "confidence": float(self.preds.confidences[j])}
            if self.profile.geometry == "box":
                obj["type"] = "bounding_box"
                obj["bbox"] = {"x": x, "y": y, "width": w, "height": h}
            else:
                obj["type"] = "polygon"
                obj["points"] = _octagon(x, y, w, h)
            if everything:
                obj["accepted"] = bool(self.above[j])
            out.append(obj)
        return out


def _octagon(x: float, y: float, w: float, h: float) -> list[list[float]]:
    """A segmentation outline inside the box (SAM gives polygons, not boxes)."""
    cx, cy = x + w / 2, y + h / 2
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    return [[round(cx + w / 2 * float(np.cos(a)), 1), round(cy + h / 2 * float(np.sin(a)), 1)] for a in angles]


def resolve_model(world: World, model_type: str) -> ModelProfile:
    family = MODEL_ALIASES.get(model_type)
    if family is None:
        known = ", ".join(sorted(MODEL_ALIASES))
        raise Invalid(f"Unknown model_type {model_type!r}; expected one of: {known}.", field="model_type")
    return world.models[family]


def model_output(world: World, dataset: Dataset, profile: ModelProfile) -> DatasetModel:
    """The model's (deterministic) detections on the dataset, sampled block by block on first use."""
    # A scenario's profile override is a different model: its own cache entry, same seed stream.
    key = profile.name if profile == world.models.get(profile.name) else f"{profile.name}:{hash(profile)}"
    model = dataset.model_outputs.get(key)
    if model is None:
        seed = [world.seed, dataset.seq, sum(map(ord, profile.name))]
        model = DatasetModel(profile, dataset.gt, len(dataset.labels), seed, dataset.image_size)
        dataset.model_outputs[key] = model
    return model


def active_job(project: Project, now: float) -> AutoLabelJob | None:
    job = project.active_job
    return job if job is not None and job.is_active(now) else None


def create_job(
    world: World,
    store: OrgStore,
    project: Project,
    *,
    model_type: str = "yolo",
    confidence_threshold: float = 0.5,
    labels: list[str] | None = None,
    dry_run: bool = False,
) -> AutoLabelJob:
    """Apply the create rules (one active job per project, 5,000 items, unlabeled only) and sample."""
    plan = scenarios.plan_job(world.shared, project.uid, project.name, resolve_model(world, model_type))
    profile = plan.profile
    labels = list(labels or [])
    unknown = [name for name in labels if name not in project.labels]
    if unknown:
        raise Invalid(
            f"Labels not found in the project's taxonomy: {', '.join(unknown)}. Known labels: {', '.join(project.labels)}.",
            field="labels",
        )
    with store.lock:
        now = world.clock.now()
        running = active_job(project, now)
        if running is not None:
            raise Conflict(f"Project {project.uid} already has an auto-label job in progress ({running.uid}).")
        project.settle(now)
        rows = np.flatnonzero(project.result_state == NO_RESULT)[:MAX_ITEMS_PER_JOB]
        seq = store.next_seq()
        rng = np.random.default_rng([world.seed, seq, len(store.jobs)])
        output = model_output(world, project.dataset, profile)
        preds = run_inference(profile, output, project.dataset.gt, project.rows[rows], project.label_mask(labels), rng)
        scale = world.clock.work_scale
        start_at = now + profile.startup_s * scale
        done_at = start_at + np.cumsum(preds.latency_s) * scale
        fail_index = None
        if len(rows) and rng.random() < profile.job_failure_rate:
            fail_index = int(rng.integers(0, len(rows)))
        fail_index = plan.fail_index(len(rows), fail_index)
        if plan.stall_after is not None and plan.stall_after < len(rows):
            done_at[plan.stall_after :] = np.inf  # stalled: never processed, never completes
        job = AutoLabelJob(
            uid=world.ids.uid(),
            seq=seq,
            project=project,
            model_type=model_type,
            profile=profile,
            threshold=float(confidence_threshold),
            labels=labels,
            dry_run=bool(dry_run),
            created_at=now,
            start_at=start_at,
            rows=rows,
            preds=preds,
            done_at=done_at,
            fail_index=fail_index,
            bot_uid=store.bot.uid,
        )
        if plan.unavailable:
            job.error_message = plan.error_message()
        store.jobs[job.uid] = job
        store.jobs_by_seq[job.seq] = job
        project.active_job = job
        _forget_retired(store)
        events.bus(world).job_created(store, job)  # its end event and drafts, due on the clock
        return job


def _forget_retired(store: OrgStore) -> None:
    """Past the organisation's retention, the oldest retired jobs (ended, no drafts) leave the history;
    jobs that wrote drafts stay, since the drafts name them (and each item is drafted at most once)."""
    limit = store.retention
    if limit is None or len(store.jobs) <= limit:
        return
    retired = [j for j in store.jobs.values() if j.retired and j.project.active_job is not j]
    for job in retired[: max(0, len(retired) - limit)]:
        del store.jobs[job.uid]
        del store.jobs_by_seq[job.seq]


def cancel_job(world: World, store: OrgStore, job: AutoLabelJob) -> None:
    """Stop a pending or running job; what it processed stays, drafts included."""
    with store.lock:
        now = world.clock.now()
        status = job.state(now).status
        if status in TERMINAL:
            raise Conflict(f"Auto-label job {job.uid} is already {status} and cannot be cancelled.")
        job.cancelled_at = now
        job.settle(now)
        events.bus(world).job_cancelled(store, job, now)


def list_jobs(store: OrgStore, now: float, project: str | None = None, status: str | None = None) -> list[AutoLabelJob]:
    """Jobs newest first, filtered by project uid and status at ``now``."""
    jobs = [j for j in store.jobs.values() if project is None or j.project.uid == project]
    if status is not None:
        jobs = [j for j in jobs if j.state(now).status == status]
    jobs.sort(key=lambda j: -j.seq)
    return jobs
