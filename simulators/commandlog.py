"""The command log: every change to the simulated state, in order, as data; and where it is kept.

Why commands and not the changes they made: the backend is deterministic given the clock and its random
streams (design principle 4), so a command plus what it could not recompute — the virtual time it ran
at, the secrets it drew from the operating system, the answer a webhook receiver gave — reproduces its
effect exactly, whatever the effect touched (a job samples thousands of predictions; a webhook test
writes a delivery and schedules a retry). Recording effects instead would need a diff format for every
structure in ``simulators/``. The same records are what several workers replay to share one world.

Records (msgpack maps; ``k`` names the kind):
* ``op``: an API or control operation that answered 2xx: ``op`` (operationId), ``t`` (virtual time,
  held for the whole operation), ``key`` (SHA-256 of the API key), ``path``, ``query``, ``body``,
  ``origin`` (the URL root it was called at), ``draws`` (secrets drawn, in order);
* ``drain``: the event bus emitted what was due at ``t`` (``w``: the worker making its sends, when shared);
* ``report``: a webhook send finished (``org``, ``uid``, ``status``, ``text``; agent callbacks are never answered);
* ``takeover``: worker ``w`` makes the sends ``uids`` of a worker that stopped (shared logs only);
* ``reload``: the world was replaced (reset, load, restore): other workers reload the snapshot (shared logs only);
* ``blob``: bytes stored through the storage plane (``op`` put/part, ``key``/``upload``, ``data``).

On disk (``FileLog``): ``snapshot.bin`` (the state at a point, written to a temporary file and renamed)
and ``log.bin`` (the records after it). Each record is framed ``length (4 bytes) + CRC-32 (4 bytes) +
payload``, so a record torn by a crash is recognised at the end of the log and dropped, never half-applied.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import msgpack

from avala_mock.simulators.errors import Invalid

SNAPSHOT_MAGIC = b"AVALAMOCK-SNAPSHOT"
SNAPSHOT_VERSION = 2
FSYNC_MODES = ("always", "batch", "never")
BATCH_FSYNC_S = 0.05
_FRAME = struct.Struct(">II")


class LogError(Invalid):
    """A state directory or snapshot that cannot be used (another format version, a corrupt file)."""


class LogStore(ABC):
    """Where records and snapshots live: a directory today, a Redis stream for several workers.
    Records are numbered as they are appended; a snapshot says up to which number it includes them."""

    @abstractmethod
    def append(self, record: dict[str, Any]) -> int:
        """Store ``record`` durably enough for the store's mode before returning; returns its number."""

    @abstractmethod
    def read(self) -> tuple[bytes | None, list[dict[str, Any]]]:
        """The latest snapshot (None if none) and every record it does not include, in order."""

    @abstractmethod
    def position(self) -> int:
        """The number the next record will get: a snapshot of the state now includes every record before it."""

    @abstractmethod
    def checkpoint(self, snapshot: bytes, upto: int) -> None:
        """Make ``snapshot`` (the state when ``position()`` was ``upto``) the starting point; records numbered
        ``upto`` and later stay in the log."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is pending."""


def pack_snapshot(state: bytes, upto: int) -> bytes:
    """A snapshot file: magic, format version, the first record number it does not include, the
    compressed state document."""
    return SNAPSHOT_MAGIC + struct.pack(">HQ", SNAPSHOT_VERSION, upto) + zlib.compress(state, 1)


def unpack_snapshot(blob: bytes) -> tuple[bytes, int]:
    if not blob.startswith(SNAPSHOT_MAGIC):
        raise LogError("not an avala-mock snapshot file")
    (version,) = struct.unpack_from(">H", blob, len(SNAPSHOT_MAGIC))
    if version != SNAPSHOT_VERSION:
        raise LogError(f"snapshot format {version} is not this version's ({SNAPSHOT_VERSION}); "
                       "load it with the avala-mock release that wrote it")
    (upto,) = struct.unpack_from(">Q", blob, len(SNAPSHOT_MAGIC) + 2)
    try:
        return zlib.decompress(blob[len(SNAPSHOT_MAGIC) + 10:]), upto
    except zlib.error:
        raise LogError("snapshot file is corrupt (it does not decompress)") from None


def frame(record: dict[str, Any]) -> bytes:
    payload = msgpack.packb(record, use_bin_type=True)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def unframe(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The whole records in ``data`` and the offset where they end (a torn tail is left out)."""
    records, offset = [], 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        payload = data[start:start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        records.append(msgpack.unpackb(payload, raw=False, strict_map_key=False))
        offset = start + length
    return records, offset


class FileLog(LogStore):
    """The command log in a directory. ``fsync``: ``always`` (each record reaches the disk before its
    answer), ``batch`` (each record reaches the kernel before its answer, the disk within 50 ms), ``never``
    (the kernel only). Every mode survives ``kill -9``; only ``always`` also survives power loss whole.

    A checkpoint writes the new snapshot (to a temporary file, renamed), then rewrites the log without the
    records the snapshot includes. A crash between the two leaves the new snapshot with the old log; the
    records it already includes are recognised by their numbers and skipped, so nothing is applied twice.
    """

    def __init__(self, directory: str | Path, fsync: str = "batch") -> None:
        if fsync not in FSYNC_MODES:
            raise LogError(f"--fsync must be one of {', '.join(FSYNC_MODES)}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.log_path = self.dir / "log.bin"
        self.snapshot_path = self.dir / "snapshot.bin"
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._dirty = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "batch":
            self._syncer = threading.Thread(target=self._sync_loop, name="avala-mock-fsync", daemon=True)
            self._syncer.start()
        self._next = 0  # set by read()
        self.dropped_tail = 0

    def append(self, record: dict[str, Any]) -> int:
        with self._lock:
            n = self._next
            data = frame({**record, "n": n})
            os.write(self._fd, data)
            self._next += 1
            if self.fsync == "always":
                os.fsync(self._fd)
            else:
                self._dirty = True
            return n

    def _sync_loop(self) -> None:
        while not self._stop.wait(BATCH_FSYNC_S):
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def read(self) -> tuple[bytes | None, list[dict[str, Any]]]:
        snapshot, upto = (None, 0)
        if self.snapshot_path.exists():
            snapshot, upto = unpack_snapshot(self.snapshot_path.read_bytes())
        data = self.log_path.read_bytes()
        records, end = unframe(data)
        if end < len(data):  # a record torn by a crash: drop it, so the next append starts clean
            self.dropped_tail = len(data) - end
            with self._lock:
                os.ftruncate(self._fd, end)
        records = [r for r in records if r["n"] >= upto]
        self._next = max([upto, *(r["n"] + 1 for r in records)])
        return snapshot, records

    def position(self) -> int:
        with self._lock:
            return self._next

    def checkpoint(self, snapshot: bytes, upto: int) -> None:
        tmp = self.snapshot_path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(pack_snapshot(snapshot, upto))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.snapshot_path)
        _fsync_dir(self.dir)
        with self._lock:
            records, _ = unframe(self.log_path.read_bytes())
            keep = b"".join(frame(r) for r in records if r["n"] >= upto)  # appended while the snapshot was written
            fresh = self.log_path.with_suffix(f".{os.getpid()}.tmp")
            with open(fresh, "wb") as fh:
                fh.write(keep)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(fresh, self.log_path)
            _fsync_dir(self.dir)
            os.close(self._fd)
            self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._dirty = False

    def close(self) -> None:
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(1)
        self._sync()
        os.close(self._fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
