"""Shared helpers of the benchmarks: start/stop a server subprocess, read its memory, format ratios.

Servers bind 127.0.0.1 only and are always stopped (terminate, wait, kill if they do not go).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from avala_mock.mock_server.testing import ServeProcess

BENCH = Path(__file__).resolve().parent
KEY = "avk_mock_primary"
HEADERS = {"X-Avala-Api-Key": KEY}
NO_THROTTLE = "100000000"
PORT = re.compile(r"PORT=(\d+)")


def avala_mock_cmd() -> list[str]:
    """The venv's ``avala-mock`` script next to this interpreter, else ``python -m avala_mock``."""
    script = Path(sys.executable).with_name("avala-mock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "avala_mock"]


@contextlib.contextmanager
def mock_server(*args: str, timeout: float = 120.0, command: list[str] | None = None) -> Iterator[tuple[subprocess.Popen, str, float]]:
    """Run ``avala-mock serve --host 127.0.0.1 --port 0 --rate-limit 1e8 *args`` (``command`` instead of the
    venv's ``avala-mock``, e.g. under valgrind); yields (proc, base URL, ready s)."""
    with ServeProcess("--host", "127.0.0.1", "--rate-limit", NO_THROTTLE, *args, command=command or avala_mock_cmd(),
                      timeout=timeout) as server:
        yield server.proc, server.base_url, server.ready_s


@contextlib.contextmanager
def child(cmd: list[str], timeout: float = 60.0) -> Iterator[tuple[subprocess.Popen, int]]:
    """Run a helper server that prints ``PORT=<n>`` when ready; yields (proc, port). Stopped by its PID."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"helper server exited (rc={proc.poll()})")
            if found := PORT.search(line):
                yield proc, int(found.group(1))
                return
        raise RuntimeError("helper server did not print its port")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def proc_mem(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) of a process, in bytes, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0]) * 1024
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_busy() -> float:
    """Busy CPU seconds of the whole machine so far, all cores (from /proc/stat), to spot other load."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float = 120.0, threshold: float = 0.15, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` of one core; returns that load.

    The benchmark machine is shared (tests of other people may be running); a busy neighbour on 2 cores
    halves what a server and its load generator get. Call it when our own processes are idle.
    """
    deadline = time.monotonic() + max_wait
    while True:
        b0 = system_busy()
        time.sleep(window)
        load = (system_busy() - b0) / window
        if load < threshold or time.monotonic() >= deadline:
            if load >= threshold:
                print(f"  (machine still busy: {load:.0%} of a core used by other processes; figures are noisy)")
            return load


def mb(n: float) -> float:
    """Bytes -> MB (10**6 bytes; the 1.5 GB goal is 1,500 MB)."""
    return n / 1e6


def versus(value: float, goal: float, unit: str, fmt: str = "{:.3f}", higher_is_better: bool = False) -> str:
    """``value unit (goal ... ; ratio r)``; for lower-is-better figures ratio = value/goal (<= 1 meets it)."""
    ratio = value / goal
    ok = ratio >= 1 if higher_is_better else ratio <= 1
    rel = ">=" if higher_is_better else "<"
    unit = f" {unit}" if unit else ""
    return f"{fmt.format(value)}{unit}  (goal {rel} {fmt.format(goal)}{unit}; ratio to goal {ratio:.2f}, {'met' if ok else 'MISSED'})"
