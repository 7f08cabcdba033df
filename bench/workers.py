"""Workers sharing one world through Redis: server CPU-seconds per request for one worker without Redis,
one worker with it, and two workers on one port (``--workers 2``, SO_REUSEPORT).

    python bench/workers.py [--duration 5] [--connections 32]

Reads are ``GET /api/v1/projects/{uid}/`` (each catches up with the shared log first); writes are
``POST /api/v1/agents/`` (each takes the world's write lock, catches up, appends to the stream). Load from
wrk (``apt install wrk``), one thread. The machine has 2 cores, so two workers cannot add throughput
here: the figure is CPU per request, i.e. what sharing the state costs, not how far it scales.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import HEADERS, KEY, mock_server, proc_cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the --workers parent and its workers)."""
    total = proc_cpu(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += tree_cpu(int(child))
    return total


def wrk(url: str, duration: float, connections: int, script: str | None) -> tuple[int, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-H", f"X-Avala-Api-Key: {KEY}", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1)), float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def run(label: str, extra: list[str], args: argparse.Namespace, post_script: str) -> None:
    # A fixed port: with --workers N every worker process listens on it (SO_REUSEPORT).
    with mock_server("--port", str(free_port()), "--time-scale", "instant", *extra) as (proc, base, _):
        uid = httpx.get(base + "/projects/?limit=1", headers=HEADERS).json()["results"][0]["uid"]
        time.sleep(1.0)  # every worker up
        for name, url, script in (("GET project", f"{base}/projects/{uid}/", None), ("POST agent", f"{base}/agents/", post_script)):
            wrk(url, 1, args.connections, script)  # warm-up
            cpu0 = tree_cpu(proc.pid)
            n, rps = wrk(url, args.duration, args.connections, script)
            cpu = tree_cpu(proc.pid) - cpu0
            print(f"{label:34s} {name:12s} {rps:8,.0f} req/s  server CPU {cpu / n * 1e6:6.0f} us/req")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        sys.exit("needs wrk and redis-server (apt install wrk redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        post = Path(tmp) / "post.lua"
        post.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        'wrk.body = \'{"name": "bench-agent", "events": ["task.completed"]}\'\n')
        run("1 worker, no Redis", [], args, str(post))
        for n in (1, 2):
            rport = free_port()
            redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
            try:
                time.sleep(0.3)
                run(f"{n} worker(s), --redis", ["--redis", f"redis://127.0.0.1:{rport}/0", "--workers", str(n)], args, str(post))
            finally:
                redis.terminate()
                redis.wait(timeout=10)
    print(f"(machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
