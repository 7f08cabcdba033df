"""Per-key token bucket behind the ``X-RateLimit-*`` headers that every response carries.

It runs on wall time (monotonic), not the virtual clock: throttling protects the process and is what a
client feels in real time, and a manual clock that never moves must not leave a test starved.

Besides the default bucket (``limit`` per ``window`` per key), rules give an operation or path pattern
its own bucket per key (see :mod:`mock_server.shaping` for ``match``); the first matching rule is the
bucket a request draws from and reports in its headers, instead of the default one.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from avala_mock.mock_server.shaping import Matcher, validate


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


class Bucket:
    """``limit`` requests per ``window`` seconds per key, refilled continuously. At most ``MAX_KEYS``
    keys are remembered (least recently used forgotten first; a forgotten key starts full again)."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> Verdict:
        now = time.monotonic()
        rate = self.limit / self.window
        tokens, last = self._buckets.pop(key, (float(self.limit), now))
        tokens = min(float(self.limit), tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.MAX_KEYS:
            self._buckets.popitem(last=False)
        full_in = (self.limit - tokens) / rate
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
        return Verdict(allowed, self.limit, int(tokens), int(time.time() + full_in + 0.999), retry)


class RateLimiter:
    """The default bucket plus per-pattern rule buckets."""

    def __init__(self, limit: int = 6000, window: float = 60.0, rules: list[dict[str, Any]] | None = None) -> None:
        self.configure(limit, window, rules or [])

    def configure(self, limit: int, window: float, rules: list[dict[str, Any]]) -> None:
        validate("rate_limits", {"limit": limit, "window": window, "rules": rules})
        self.limit, self.window = int(limit), float(window)
        self.rules = [dict(r) for r in rules]
        self._default = Bucket(limit, window)
        self._rules = [(Matcher.of(r), Bucket(r["limit"], r.get("window", window))) for r in rules]

    def take(self, key: str, op_id: str | None = None, method: str = "GET", path: str = "") -> Verdict:
        for matcher, bucket in self._rules:
            if matcher(op_id, method, path):
                return bucket.take(key)
        return self._default.take(key)

    def describe(self) -> dict[str, Any]:
        return {"limit": self.limit, "window": self.window, "rules": self.rules}

    def buckets(self, limit: int = 100) -> list[tuple[str, int, int, float]]:
        """The default bucket's most recently used keys: (key, remaining, limit, epoch when full again).
        Keys are API keys: callers show whose they are, never the keys themselves."""
        b, now = self._default, time.monotonic()
        rate = b.limit / b.window
        out = []
        for key, (tokens, last) in list(reversed(b._buckets.items()))[:limit]:
            tokens = min(float(b.limit), tokens + (now - last) * rate)
            out.append((key, int(tokens), b.limit, time.time() + (b.limit - tokens) / rate))
        return out

    def clear(self) -> None:
        self._default._buckets.clear()
        for _, bucket in self._rules:
            bucket._buckets.clear()
