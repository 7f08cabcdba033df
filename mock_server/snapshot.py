"""Snapshot and restore of the whole simulated state as one JSON document.

The world (numpy arrays, dicts, jobs, the clock, the model caches, scheduled event callbacks) and the
shaping streams are pickled with cloudpickle (closures included): the simplest way to capture
everything without a serialiser per resource. Locks are re-created empty;
the clock is re-created at the virtual time it had (a running clock resumes from there).

A pickle runs code when loaded, so a snapshot is signed with a key that lives only in this process
(HMAC-SHA256): it can be restored into the server that made it, and nothing forged is ever unpickled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import pickle
import secrets
import threading
import zlib
from typing import Any

import cloudpickle

from avala_mock.simulators.clock import Clock
from avala_mock.simulators.errors import Invalid

FORMAT = "avala-mock-snapshot/1"
_KEY = secrets.token_bytes(32)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class SnapshotError(Invalid):
    """A snapshot this process did not make, or one that was altered (400)."""


def _new_clock(mode: str, scale: float, now: float) -> Clock:
    return Clock(mode, scale, start=now)


class _Pickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock, ())
        if type(obj) is Clock:
            return (_new_clock, (obj.mode, obj.scale, obj.now()))
        return super().reducer_override(obj)


def freeze(obj: Any) -> bytes:
    """An in-process copy of ``obj`` as bytes (never leaves the process, so it carries no signature)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def thaw(blob: bytes) -> Any:
    """A new, independent object from ``freeze``'s bytes (made by this process)."""
    return pickle.loads(blob)


def dump(state: dict[str, Any]) -> dict[str, Any]:
    blob = zlib.compress(freeze(state), 1)
    return {"format": FORMAT, "size": len(blob), "signature": hmac.new(_KEY, blob, hashlib.sha256).hexdigest(),
            "data": base64.b64encode(blob).decode()}


def load(doc: dict[str, Any]) -> dict[str, Any]:
    if doc.get("format") != FORMAT:
        raise SnapshotError(f"not a snapshot (format must be {FORMAT!r})")
    try:
        blob = base64.b64decode(doc["data"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise SnapshotError("snapshot data is not base64") from None
    expected = hmac.new(_KEY, blob, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(doc.get("signature", ""))):
        raise SnapshotError("snapshot signature does not match: it was made by another server process or altered")
    return pickle.loads(zlib.decompress(blob))
