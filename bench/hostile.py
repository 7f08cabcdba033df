"""Hostile input against a real ``avala-mock serve`` process: what each attack gets back (status, time,
answer size) and what it costs the server (RSS), next to a probe request that must stay fast.

    python bench/hostile.py

Each line is one of the hardening cases: deep JSON, a 100,000-item invalid batch (with the probe's
latency while it is handled), a 1 MB value echoed in an error, a chunked body past the cap, 5,000
invented 60 KB keys (limiter memory), a 300-agent list with 200 finished jobs' executions, 500
slow-header connections (served probes while they are held), a control API file read, and two servers
with one seed signing the same upload.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time

import httpx
import orjson
from _common import HEADERS, mb, mock_server, proc_mem, wait_quiet


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1000


def probe_while(base: str, action) -> tuple[object, float, float]:
    """Run ``action`` while a second thread probes ``GET /users/me/``; returns its result, its ms and the
    worst probe latency in ms seen meanwhile."""
    worst, stop = [0.0], threading.Event()

    def probe() -> None:
        with httpx.Client(headers=HEADERS, timeout=60) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get(base + "/users/me/")
                worst[0] = max(worst[0], (time.perf_counter() - t) * 1000)
                time.sleep(0.01)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        result, ms = timed(action)
    finally:
        stop.set()
        thread.join()
    return result, ms, worst[0]


def main() -> None:
    wait_quiet()
    with mock_server("--manual-clock") as (proc, base, _):
        origin = base.rsplit("/api/", 1)[0]
        c = httpx.Client(headers=HEADERS, timeout=120)
        rows: list[tuple[str, str]] = []

        deep = b'{"name": "d", "type": "robot_arm", "metadata": ' + b'{"k": ' * 600 + b"{}" + b"}" * 601
        r, ms = timed(lambda: c.post(base + "/fleet/devices/", content=deep, headers={"Content-Type": "application/json"}))
        listed = c.get(base + "/fleet/devices/").status_code
        rows.append(("1 deep JSON (600 levels) on create", f"{r.status_code} in {ms:.1f} ms; the list after it: {listed}"))

        batch = orjson.dumps({"events": [{}] * 100_000})
        r, ms, worst = probe_while(base, lambda: c.post(base + "/fleet/events/batch/", content=batch,
                                                          headers={"Content-Type": "application/json"}))
        rows.append(("2 100,000-item invalid batch (300 KB)", f"{r.status_code} in {ms:.0f} ms, {len(r.content)}-byte answer; "
                     f"slowest probe meanwhile {worst:.1f} ms"))
        r, ms = timed(lambda: c.post(base + "/agents/", json={"name": "x" * 1_000_000}))
        rows.append(("2 a 1 MB name in an error", f"{r.status_code} in {ms:.0f} ms, {len(r.content)}-byte answer"))

        def chunks():
            for _ in range(64):
                yield b"x" * (1 << 20)

        rss = proc_mem(proc.pid)["VmRSS"]
        r, ms = timed(lambda: c.post(base + "/agents/", content=chunks(), headers={"Content-Type": "application/json"}))
        rows.append(("4 64 MB chunked body (cap 2 MiB)", f"{r.status_code} in {ms:.0f} ms; RSS {mb(rss):.0f} -> {mb(proc_mem(proc.pid)['VmRSS']):.0f} MB"))

        rss = proc_mem(proc.pid)["VmRSS"]
        with httpx.Client(timeout=30) as k:
            for i in range(5000):
                k.get(base + "/users/me/", headers={"X-Avala-Api-Key": f"avk_{i}_" + "k" * 60_000})
        rows.append(("5 5,000 invented 60 KB keys", f"RSS {mb(rss):.0f} -> {mb(proc_mem(proc.pid)['VmRSS']):.0f} MB"))

        httpx.post(origin + "/_mock/rate-limits/", json={"limit": 100_000_000})
        projects = [p["uid"] for p in c.get(base + "/projects/", params={"limit": 100}).json()["results"]]
        for i in range(300):
            c.post(base + "/agents/", json={"name": f"a{i}", "events": ["*"]})
        for i in range(20):
            c.post(base + f"/projects/{projects[i % len(projects)]}/auto-label/", json={"dry_run": True})
            httpx.post(origin + "/_mock/clock/advance/", json={"seconds": 3600}, timeout=120)
        times = [timed(lambda: c.get(base + "/agents/", params={"limit": 100}))[1] for _ in range(5)]
        rows.append(("6 GET /agents/?limit=100 (300 agents, executions of 20 jobs each)", f"median {statistics.median(times):.1f} ms"))

        held = []
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", int(origin.rsplit(":", 1)[1])))
            s.sendall(b"GET /api/v1/users/me/ HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        ok = sum(c.get(base + "/users/me/").status_code == 200 for _ in range(4))
        time.sleep(16)  # past --idle-timeout (15 s)
        closed = 0
        for s in held:
            s.settimeout(0.2)
            try:
                closed += s.recv(1) == b""
            except (TimeoutError, OSError):
                pass
            s.close()
        rows.append(("7 500 slow-header connections", f"{ok}/4 probes answered while held; {closed}/500 closed by the server after 16 s"))

        r = httpx.post(origin + "/_mock/world/load/", json={"world": "/etc/passwd"})
        rows.append(("3 control API: load /etc/passwd as a world", f"{r.status_code}, file contents echoed: {'root:' in r.text}"))
        r = httpx.get(origin + "/_mock/clock/", headers={"Host": "rebound.example"})
        rows.append(("3 control API with a foreign Host header", f"{r.status_code}"))
        for what, answer in rows:
            print(f"  {what:<62} {answer}")

    sigs = []
    for _ in range(2):
        with mock_server("--manual-clock", "--seed", "5") as (_, base, _ready):
            d = httpx.post(base + "/datasets/manual-upload/file-upload-url/", headers=HEADERS,
                           json={"dataset_name": "F", "file_path_in_dataset": "a.png", "content_length": 4}).json()
            sigs.append(d["fields"]["x-avala-signature"])
    print(f"  {'10 one seed, two servers: the same upload signed':<62} {'identically (forgeable)' if sigs[0] == sigs[1] else 'differently'}")


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
