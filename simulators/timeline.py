"""Long-running operations whose status is a function of the clock (design principle 5): an export,
a dataset's indexing, a consensus computation, a recording's processing. A timeline is a list of
(status, virtual time reached); ``status(now)`` is a bisect, so nothing is scheduled or polled.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from avala_mock.simulators.clock import Clock


@dataclass
class Timeline:
    steps: list[tuple[str, float]]  # (status, time reached), times ascending

    @classmethod
    def start(cls, clock: Clock, first: str, *later: tuple[str, float]) -> Timeline:
        """``first`` now, then each ``(status, seconds after the previous one)``; work durations shrink
        to nothing on the instant clock."""
        t = clock.now()
        steps = [(first, t)]
        for status, delay in later:
            t += delay * clock.work_scale
            steps.append((status, t))
        return cls(steps)

    def status(self, now: float) -> str:
        i = bisect_right([at for _, at in self.steps], now) - 1
        return self.steps[max(i, 0)][0]

    def reached(self, status: str, now: float) -> float | None:
        """When ``status`` was reached, if it has been by ``now``."""
        for name, at in self.steps:
            if name == status and at <= now:
                return at
        return None

    def done(self, now: float) -> bool:
        return now >= self.steps[-1][1]

    def stop(self, now: float, status: str) -> None:
        """End the operation at ``now`` with ``status`` (e.g. cancelled, failed): later steps are dropped."""
        self.steps = [(s, at) for s, at in self.steps if at <= now] + [(status, now)]
