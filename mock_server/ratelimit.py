"""Per-key token bucket behind the ``X-RateLimit-*`` headers that every response carries.

It runs on wall time (monotonic), not the virtual clock: throttling protects the process and is what a
client feels in real time, and a manual clock that never moves must not leave a test starved.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the bucket is full again
    retry_after: int  # seconds until one token is back (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """``limit`` requests per ``window`` seconds per key, refilled continuously."""

    def __init__(self, limit: int = 6000, window: float = 60.0) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> Verdict:
        now = time.monotonic()
        rate = self.limit / self.window
        tokens, last = self._buckets.get(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        full_in = (self.limit - tokens) / rate
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
        return Verdict(allowed, self.limit, int(tokens), int(time.time() + full_in + 0.999), retry)

    def clear(self) -> None:
        self._buckets.clear()
