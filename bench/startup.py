"""Start-up costs a user pays: the CLI, time to a serving ``avala-mock serve``, the pytest plugin in a run
that does not use it, and a reset of the world. Each is the best and the median of N runs, next to a
baseline measured in the same run.

    python bench/startup.py [--runs 7]

Children run without PYTHONDONTWRITEBYTECODE (as on a user's machine, where bytecode is cached; a first
warm-up run writes it), so the figures are not inflated by compiling every module on every start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import avala_mock_cmd, wait_quiet

from avala_mock.mock_server.testing import LiveServer, ServeProcess

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], runs: int, **kwargs: object) -> list[float]:
    subprocess.run(cmd, check=True, capture_output=True, env=ENV, **kwargs)  # warm-up: bytecode, disk cache
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENV, **kwargs)
        out.append(time.perf_counter() - t)
    return out


def serve_ready(runs: int) -> list[float]:
    out = []
    for i in range(runs + 1):
        with ServeProcess(command=avala_mock_cmd(), env={"PYTHONDONTWRITEBYTECODE": ""}) as server:
            if i:  # the first is the warm-up
                out.append(server.ready_s)
    return out


def plugin_import_ms() -> float:
    """What importing the plugin adds to a process that has pytest loaded: the cumulative import time of
    every top-level import it triggers (deterministic enough to compare, unlike whole-run wall times)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest; import avala_mock.contracts.pytest_plugin"],
                          capture_output=True, text=True, env=ENV, check=True)
    total, seen_pytest = 0, False
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        top = len(name) - len(name.lstrip()) == 1  # nested imports are indented further
        if top and name.strip() == "pytest":
            seen_pytest = True
            continue
        if seen_pytest and top:  # a top-level import after pytest: the plugin's
            total += int(parts[1])
    return total / 1000


def show(name: str, values: list[float], baseline: list[float] | None = None, unit: str = "s") -> None:
    best, med = min(values), statistics.median(values)
    line = f"  {name:<44} best {best:.3f} {unit}, median {med:.3f} {unit}"
    if baseline:
        line += f"   (baseline best {min(baseline):.3f}; ratio {best / min(baseline):.2f}, +{best - min(baseline):.3f} {unit})"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    n = args.runs
    wait_quiet()
    py = sys.executable
    print(f"start-up, {n} runs each (python {sys.version.split()[0]})")
    interp = timed([py, "-c", "pass"], n)
    show("python -c pass", interp)
    show("avala-mock --version", timed([*avala_mock_cmd(), "--version"], n), interp)
    show("avala-mock --help", timed([*avala_mock_cmd(), "--help"], n), interp)
    floor = timed([py, "-c", "import aiohttp.web, numpy"], n)
    show("import aiohttp.web + numpy (the floor)", floor)
    show("avala-mock serve: exec -> banner", serve_ready(n), floor)

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_plain.py").write_text("def test_plain():\n    assert True\n")
        pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"]
        loaded, without = [], []
        for _ in range(n):  # interleaved, so drift in the machine's load hits both alike
            loaded += timed(pytest, 1, cwd=tmp)
            without += timed([*pytest, "-p", "no:avala_mock"], 1, cwd=tmp)
        show("pytest, one plain test, plugin disabled", without)
        show("pytest, one plain test, plugin loaded", loaded, without)
    print(f"  {'the plugin module import (-X importtime)':<44} {plugin_import_ms():.1f} ms cumulative, pytest already loaded")

    from avala_mock.fixtures.world import build_world, load_definition
    from avala_mock.mock_server.state import ServerConfig
    from avala_mock.simulators.clock import Clock

    definition = load_definition()
    rebuild = []
    for _ in range(n):
        t = time.perf_counter()
        build_world(definition, seed=7, clock=Clock("manual"))
        rebuild.append(time.perf_counter() - t)
    show("build the default world (what a reset was)", rebuild)
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
        resets = []
        for _ in range(n):
            t = time.perf_counter()
            server.reset()
            resets.append(time.perf_counter() - t)
    show("POST /_mock/reset/ (pristine copy, over HTTP)", resets, rebuild)


if __name__ == "__main__":
    main()
