"""Snapshots of the whole simulated state: portable data (simulators/codec.py), never pickles.

Two uses. The control API and ``avala-mock snapshot save/load`` hand out a JSON document (format,
digest, base64 of the compressed state) that any process of this version can load; by default it leaves
secrets out (API keys are kept only as digests anyway; webhook and agent secrets, tokens and signing
keys come back freshly drawn), unless the caller asks to include them. The state directory keeps the
same state, secrets included, as its starting point (simulators/commandlog.py).

``freeze``/``thaw`` copy a world inside one process (a reset restores the pristine world that way):
bytes that never leave the process, so the standard pickle module is fine there and ten times faster.
"""

from __future__ import annotations

import base64
import hashlib
import io
import pickle
import threading
import time
import zlib
from typing import Any

from avala_mock.simulators import codec
from avala_mock.simulators.clock import Clock
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.world import key_digest

FORMAT = "avala-mock-snapshot/2"
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class SnapshotError(Invalid):
    """A document that is not a snapshot of this version, or one that was altered (400)."""


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock, ())
        return NotImplemented


def freeze(obj: Any) -> bytes:
    """An in-process copy of ``obj`` as bytes (never leaves the process)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def thaw(blob: bytes) -> Any:
    """A new, independent object from ``freeze``'s bytes (made by this process)."""
    return pickle.loads(blob)


def encode_state(parts: dict[str, Any], *, redact: bool) -> bytes:
    """``parts`` (world, definition, scenario, limits, shaping) as the codec's bytes."""
    return codec.encode(parts, redact=redact)


def decode_state(data: bytes) -> dict[str, Any]:
    parts = codec.decode(data)
    if not isinstance(parts, dict) or "world" not in parts:
        raise SnapshotError("the snapshot holds no world")
    return parts


def dump(parts: dict[str, Any], *, secrets: bool = False) -> dict[str, Any]:
    """The JSON document the control API answers (and ``snapshot save`` writes)."""
    if not secrets:  # the world definition names its keys by digest: a reset after loading still works
        parts = {**parts, "definition": _keys_as_digests(parts["definition"])}
    blob = zlib.compress(encode_state(parts, redact=not secrets), 1)
    clock = parts["world"].clock
    return {"format": FORMAT, "secrets": secrets, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "clock": clock.describe(), "data": base64.b64encode(blob).decode()}


def _keys_as_digests(definition: dict[str, Any]) -> dict[str, Any]:
    orgs = []
    for org in definition.get("organizations", []):
        org = dict(org)
        if "api_key" in org:
            org["key_sha256"] = key_digest(org.pop("api_key"))
        orgs.append(org)
    return {**definition, "organizations": orgs}


def load(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of a snapshot document, or a ``SnapshotError`` that says what is wrong with it."""
    fmt = doc.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("avala-mock-snapshot/"):
            raise SnapshotError(f"snapshot format {fmt!r} is not this version's ({FORMAT!r}); load it with the release that wrote it")
        raise SnapshotError(f"not a snapshot (format must be {FORMAT!r})")
    try:
        blob = base64.b64decode(doc["data"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise SnapshotError("snapshot data is not base64") from None
    if hashlib.sha256(blob).hexdigest() != doc.get("sha256"):
        raise SnapshotError("snapshot data does not match its sha256: it was cut or altered")
    try:
        parts = decode_state(zlib.decompress(blob))
    except zlib.error:
        raise SnapshotError("snapshot data is corrupt (it does not decompress)") from None
    except codec.CodecError as exc:
        raise SnapshotError(f"snapshot data is not a state document: {exc.detail}") from None
    return parts


def resume(world: Any, taken_at: float) -> None:
    """A restored world's clock continues from the instant the snapshot was taken (not from the wall
    time that passed since, which a restart after a crash does keep)."""
    clock = world.clock
    world.clock = Clock.from_anchor((clock.mode, clock.scale, taken_at, time.time()))
