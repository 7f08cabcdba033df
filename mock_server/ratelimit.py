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
from typing import Any

from avala_mock.mock_server.shaping import Matcher, validate

# One request's draw: the ``X-RateLimit-*`` headers every answer carries, and the seconds until a token is
# back when refused (0: allowed). A tuple: it is made on every request.
Verdict = tuple[dict[str, str], int]


class Bucket:
    """``limit`` requests per ``window`` seconds per key, refilled continuously. At most ``MAX_KEYS``
    keys are remembered (least recently used forgotten first; a forgotten key starts full again)."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, window: float) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self.rate = self.limit / self.window
        self._limit_text = str(self.limit)
        # key -> [tokens, monotonic time of the last draw], mutated in place (one lookup per request)
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str) -> Verdict:
        now = time.monotonic()
        limit, rate, buckets = self.limit, self.rate, self._buckets
        entry = buckets.get(key)
        if entry is None:
            entry = buckets[key] = [float(limit), now]
            if len(buckets) > self.MAX_KEYS:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
        tokens = entry[0] + (now - entry[1]) * rate
        if tokens > limit:
            tokens = float(limit)
        retry = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            retry = max(1, math.ceil((1.0 - tokens) / rate))
        entry[0], entry[1] = tokens, now
        reset = int(time.time() + (limit - tokens) / rate + 0.999)  # epoch seconds when the bucket is full again
        return {"X-RateLimit-Limit": self._limit_text, "X-RateLimit-Remaining": str(int(tokens)),
                "X-RateLimit-Reset": str(reset)}, retry


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
        rate = b.rate
        out = []
        for key, (tokens, last) in list(reversed(b._buckets.items()))[:limit]:
            tokens = min(float(b.limit), tokens + (now - last) * rate)
            out.append((key, int(tokens), b.limit, time.time() + (b.limit - tokens) / rate))
        return out

    def clear(self) -> None:
        self._default._buckets.clear()
        for _, bucket in self._rules:
            bucket._buckets.clear()
