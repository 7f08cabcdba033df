"""Backend scenarios: how the simulated inference backend misbehaves for some models or projects.

* ``endpoint_unavailable``: new jobs fail as soon as they start, with an ``error_message``.
* ``fail_after``: the endpoint dies after ``items`` items; the job fails with what it processed.
* ``stall``: the job processes ``items`` items, then makes no progress until it is cancelled.
* ``model_profile``: the model behaves differently (latency, recall, confidences, failure rates).

Each applies to one model family (``model``, aliases accepted) and/or one project (uid or name), or to
all when omitted. They are consulted when a job is created, so the whole outcome is still sampled up
front and a job's state stays a function of the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from avala_mock.simulators.model import MODEL_ALIASES, ModelProfile

SHARED_KEY = "backend_scenarios"


@dataclass(frozen=True)
class BackendScenario:
    kind: str
    model: str | None = None  # model family (yolo, sam3) after alias resolution
    project: str | None = None
    items: int = 0
    profile: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendScenario:
        model = data.get("model")
        if model is not None and model not in MODEL_ALIASES:
            raise ValueError(f"unknown model {model!r} in backend scenario; expected one of: {', '.join(sorted(MODEL_ALIASES))}")
        return cls(data["kind"], MODEL_ALIASES[model] if model else None, data.get("project"),
                   int(data.get("items", 0)), dict(data.get("profile") or {}))

    def applies(self, project_uid: str, project_name: str, family: str) -> bool:
        if self.model is not None and self.model != family:
            return False
        return self.project is None or self.project in (project_uid, project_name)


@dataclass
class JobPlan:
    """What the scenarios make of one new job."""

    profile: ModelProfile
    unavailable: bool = False
    fail_after: int | None = None
    stall_after: int | None = None

    def fail_index(self, n: int, sampled: int | None) -> int | None:
        if self.unavailable:
            return 0
        if self.fail_after is not None and self.fail_after < n:
            return self.fail_after
        return sampled

    def error_message(self) -> str | None:
        if not self.unavailable:
            return None
        return (f"Inference endpoint for model '{self.profile.name}' is unavailable "
                "(ModelError: 503 Service Unavailable); no items were processed.")


def install(shared: dict[str, Any], rules: list[dict[str, Any]]) -> list[BackendScenario]:
    """Parse and store the world's backend scenarios (``World.shared``), replacing earlier ones."""
    parsed = [BackendScenario.from_dict(r) for r in rules]
    shared[SHARED_KEY] = parsed
    return parsed


def plan_job(shared: dict[str, Any], project_uid: str, project_name: str, profile: ModelProfile) -> JobPlan:
    plan = JobPlan(profile)
    for rule in shared.get(SHARED_KEY, ()):
        if not rule.applies(project_uid, project_name, profile.name):
            continue
        if rule.kind == "endpoint_unavailable":
            plan.unavailable = True
        elif rule.kind == "fail_after":
            plan.fail_after = rule.items if plan.fail_after is None else min(plan.fail_after, rule.items)
        elif rule.kind == "stall":
            plan.stall_after = rule.items if plan.stall_after is None else min(plan.stall_after, rule.items)
        elif rule.kind == "model_profile":
            plan.profile = plan.profile.with_overrides(**rule.profile)
    return plan


def describe(shared: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"kind": r.kind, "model": r.model, "project": r.project, "items": r.items, "profile": r.profile}
            for r in shared.get(SHARED_KEY, ())]
