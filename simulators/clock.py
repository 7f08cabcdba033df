"""The one source of time for the simulated backend (design principle 3).

Modes:
* ``real`` (scale 1.0) and ``scaled`` (e.g. 20x): virtual time runs ``scale`` times as fast as the wall.
* ``instant``: virtual time follows the wall, but simulated work takes no time, so jobs finish as
  fast as the CPU allows (``work_scale`` is 0).
* ``manual``: time moves only through :meth:`Clock.advance` (tests, the control API). It starts at a
  fixed epoch so that the same seed and the same requests give byte-identical responses.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from avala_mock.simulators.errors import Conflict

MANUAL_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc).timestamp()


class ClockError(Conflict, ValueError):
    """An operation the clock's mode does not allow, e.g. advancing a real-time clock (409)."""


class Clock:
    """Virtual epoch seconds. Thread-safe; ``now()`` is cheap enough for the request hot path."""

    def __init__(self, mode: str = "real", scale: float = 1.0, start: float | None = None) -> None:
        if mode not in ("real", "scaled", "instant", "manual"):
            raise ClockError(f"unknown clock mode {mode!r}")
        if mode in ("real", "scaled") and not scale > 0:
            raise ClockError("time scale must be > 0")
        self._lock = threading.Lock()
        self.mode = mode
        self.scale = 1.0 if mode in ("real", "instant") else float(scale)
        if mode == "scaled" and self.scale == 1.0:
            self.mode = "real"
        self._origin_virtual = start if start is not None else (MANUAL_EPOCH if mode == "manual" else time.time())
        # Epoch seconds, not monotonic ones: the anchor is saved with the state, and a restarted process
        # must continue the same virtual time line (time kept running while it was down).
        self._origin_wall = time.time()
        self._pinned: float | None = None
        self.paused_scale: float | None = None  # the scale to go back to while a real/scaled clock is paused

    @classmethod
    def from_cli(cls, time_scale: str | float | None, manual: bool) -> Clock:
        """Build from ``--time-scale {FLOAT|instant}`` and ``--manual-clock``."""
        if manual:
            return cls("manual")
        if time_scale is None:
            return cls("real")
        if str(time_scale).strip().lower() == "instant":
            return cls("instant")
        try:
            scale = float(time_scale)
        except ValueError as exc:
            raise ClockError(f"time scale must be a number or 'instant', not {time_scale!r}") from exc
        return cls("real" if scale == 1.0 else "scaled", scale)

    @property
    def work_scale(self) -> float:
        """Factor applied to simulated work durations: 0 on the instant clock, 1 otherwise."""
        return 0.0 if self.mode == "instant" else 1.0

    def now(self) -> float:
        if self._pinned is not None:
            return self._pinned
        if self.mode == "manual":
            return self._origin_virtual
        return self._origin_virtual + (time.time() - self._origin_wall) * self.scale

    @contextmanager
    def pinned(self, at: float | None = None) -> Iterator[float]:
        """Hold ``now()`` at one instant (the current one, or ``at``) while a command runs, so that the
        command reads one time throughout and replaying it later reads the same."""
        held = self.pin(at)
        try:
            yield self._pinned  # type: ignore[misc]
        finally:
            self.unpin(held)

    def pin(self, at: float | None = None) -> float | None:
        """``pinned()`` without the context manager (the request path, where a generator frame per request
        shows): returns what to hand ``unpin`` in a ``finally``."""
        held, self._pinned = self._pinned, self.now() if at is None else at
        return held

    def unpin(self, held: float | None) -> None:
        self._pinned = held

    def anchor(self) -> tuple[str, float, float, float]:
        """What defines the time line: mode, scale and the (virtual, wall) instant it passes through."""
        return (self.mode, self.scale, self._origin_virtual, self._origin_wall)

    @classmethod
    def from_anchor(cls, anchor: tuple[str, float, float, float] | list) -> Clock:
        mode, scale, virtual, wall = anchor
        clock = cls(mode, scale if mode in ("real", "scaled") else 1.0, start=virtual)
        clock._origin_wall = wall
        return clock

    def advance(self, seconds: float) -> float:
        """Move a manual clock forward; returns the new time."""
        if self.mode != "manual":
            raise ClockError(f"only a manual clock can be advanced (this one is {self.mode})")
        if not seconds >= 0:
            raise ClockError("cannot move the clock backwards")
        with self._lock:
            self._origin_virtual += float(seconds)
            if self._pinned is not None:  # the command that advanced the clock sees the new time
                self._pinned = self._origin_virtual
            return self._origin_virtual

    def set_scale(self, scale: float) -> None:
        """Change the speed of a real/scaled clock without a jump in virtual time."""
        if self.mode in ("manual", "instant"):
            raise ClockError(f"a {self.mode} clock has no scale")
        if not scale > 0:
            raise ClockError("time scale must be > 0")
        with self._lock:
            now = self.now()
            self._origin_virtual, self._origin_wall = now, time.time()
            self.scale = float(scale)
            self.mode = "real" if self.scale == 1.0 else "scaled"

    def pause(self) -> None:
        """Stop a real/scaled clock where it is: it becomes a manual clock (``advance`` moves it) until
        ``resume`` lets it run again at its old speed from the time it then shows."""
        if self.mode in ("manual", "instant"):
            raise ClockError(f"a {self.mode} clock cannot be paused" + (" (it already stands still)" if self.mode == "manual" else ""))
        with self._lock:
            self.paused_scale, self._origin_virtual = self.scale, self.now()
            self.mode, self.scale = "manual", 1.0

    def resume(self) -> None:
        if self.paused_scale is None:
            raise ClockError("the clock is not paused")
        with self._lock:
            self.scale, self.paused_scale = self.paused_scale, None
            self.mode = "real" if self.scale == 1.0 else "scaled"
            self._origin_wall = time.time()

    def describe(self) -> dict:
        return {"mode": self.mode, "scale": self.scale, "now": iso(self.now()), "epoch": self.now(),
                "paused": self.paused_scale is not None}


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, as Avala sends it."""
    return None if ts is None else _iso(ts)


@functools.lru_cache(maxsize=1 << 16)
def _iso(ts: float) -> str:
    # Cached: an object's timestamps are rendered on every read of it, and strftime is a hot spot.
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
