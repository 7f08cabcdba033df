"""The request journal: what the mock answered, newest last, bounded in memory.

A ``deque(maxlen=...)`` of small tuples, so a long run costs a fixed amount of memory
(the oldest entries drop off). Recording is O(1); filtering walks the deque, which only the control
API does.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from fnmatch import fnmatchcase
from typing import Any

DEFAULT_SIZE = 10_000


# An entry is a plain tuple (recording is on every request's path; only the control API reads them):
FIELDS = ("seq", "at", "method", "path", "operation_id", "status", "latency_ms", "injected_latency_ms", "fault",
          "organization")
SEQ, AT, METHOD, PATH, OPERATION_ID, STATUS, LATENCY_MS, INJECTED_MS, FAULT, ORGANIZATION = range(len(FIELDS))
Entry = tuple


def as_dict(e: Entry) -> dict[str, Any]:
    out = dict(zip(FIELDS, e))
    out["latency_ms"], out["injected_latency_ms"] = round(e[LATENCY_MS], 3), round(e[INJECTED_MS], 3)
    return out


class Journal:
    """Bounded log of requests; ``size`` entries at most, the oldest dropped first."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = int(size)
        self._entries: deque[Entry] = deque(maxlen=self.size)
        self._seq = itertools.count(1)
        self.total = 0

    def record(self, method: str, path: str, operation_id: str | None, status: int, latency_s: float,
               injected_s: float = 0.0, fault: str | None = None, organization: str | None = None) -> None:
        """Path only, never the query string or headers: those may carry secrets."""
        self.total += 1
        self._entries.append((next(self._seq), time.time(), method, path, operation_id, status,
                              latency_s * 1000.0, injected_s * 1000.0, fault, organization))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.total = 0

    def query(self, *, method: str | None = None, path: str | None = None, operation_id: str | None = None,
              status: int | None = None, fault: str | None = None, since: int | None = None,
              limit: int = 100, organization: str | None = None) -> list[dict[str, Any]]:
        """Newest last. ``path``, ``operation_id`` and ``organization`` are globs, as in the dashboard's filters;
        ``fault`` "any" matches every injected fault, "none" the requests without one; ``since`` keeps entries
        with a larger ``seq``."""
        out: list[Entry] = []
        for e in reversed(self._entries):
            if since is not None and e[SEQ] <= since:
                break
            if method is not None and e[METHOD] != method.upper():
                continue
            if status is not None and e[STATUS] != status:
                continue
            if organization is not None and (e[ORGANIZATION] is None or not fnmatchcase(e[ORGANIZATION], organization)):
                continue
            if operation_id is not None and (e[OPERATION_ID] is None or not fnmatchcase(e[OPERATION_ID], operation_id)):
                continue
            if path is not None and not fnmatchcase(e[PATH], path):
                continue
            if fault is not None:
                if fault == "any" and e[FAULT] is None or fault == "none" and e[FAULT] is not None:
                    continue
                if fault not in ("any", "none") and e[FAULT] != fault:
                    continue
            out.append(e)
            if len(out) >= limit:
                break
        return [as_dict(e) for e in reversed(out)]

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "held": len(self._entries), "total": self.total}
