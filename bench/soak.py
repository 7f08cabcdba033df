"""Soak: N minutes of mixed Avala traffic against one ``avala-mock serve``, printing the server's RSS over
time, latency percentiles and error counts per interval, then whether memory ended flat.

    python bench/soak.py --minutes 30 [--concurrency 16] [--retention 2000] [--time-scale 20]

The mix is what a team's clients do all day: list and page projects, datasets, items and jobs; start
auto-label jobs on every project (409 while one runs), poll and sometimes cancel them; post fleet
events one by one and in batches; read webhook deliveries and agent executions; register and remove
webhooks and agents. A webhook and a polling agent listen to every event, so each finished job makes
a delivery and thousands of executions: the records that retention (``--retention``) must bound.
A local receiver answers the webhook POSTs. "Flat" means: RSS after warm-up (the first quarter of the
run) grows by less than 10% over the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
from _common import HEADERS, mb, mock_server, proc_cpu, proc_mem
from aiohttp import web

INTERVAL_S = 10.0


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # connection-level failures

    def note(self, status: int | None, seconds: float) -> None:
        self.latencies.append(seconds)
        if status is None:
            self.errors += 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1


class Soak:
    def __init__(self, base: str, session: aiohttp.ClientSession, receiver_url: str, seed: int) -> None:
        self.base = base
        self.http = session
        self.receiver_url = receiver_url
        self.rng = random.Random(seed)
        self.window = Window()
        self.total = Window()
        self.projects: list[str] = []
        self.jobs: list[str] = []
        self.recordings: list[tuple[str, str]] = []
        self.agent = ""

    async def call(self, method: str, path: str, **kwargs: object) -> tuple[int | None, object]:
        started = time.perf_counter()
        status, body = None, None
        try:
            async with self.http.request(method, self.base + path, headers=HEADERS, **kwargs) as r:
                status = r.status
                body = await r.json(content_type=None) if r.content_length != 0 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass
        took = time.perf_counter() - started
        self.window.note(status, took)
        self.total.note(status, took)
        return status, body

    async def setup(self) -> None:
        _, page = await self.call("GET", "/projects/", params={"limit": 100})
        self.projects = [p["uid"] for p in page["results"]]
        _, recs = await self.call("GET", "/fleet/recordings/", params={"limit": 100})
        self.recordings = [(r["uid"], r["device"]) for r in recs["results"] if r.get("device")]
        await self.call("POST", "/webhooks/", json={"target_url": self.receiver_url, "events": ["*"]})
        _, agent = await self.call("POST", "/agents/", json={"name": "soak-poller", "events": ["*"]})
        self.agent = agent["uid"]

    async def step(self) -> None:
        r = self.rng.random()
        if r < 0.20:
            await self.call("GET", "/projects/", params={"limit": self.rng.choice([5, 20, 50])})
        elif r < 0.28:
            await self.call("GET", f"/projects/{self.rng.choice(self.projects)}/")
        elif r < 0.36:
            await self.call("GET", "/datasets/acme-robotics/street-scenes/items/", params={"limit": 20})
        elif r < 0.44:
            await self.call("GET", "/auto-label-jobs/", params={"limit": 20})
        elif r < 0.50:
            status, job = await self.call("POST", f"/projects/{self.rng.choice(self.projects)}/auto-label/",
                                          json={"model_type": self.rng.choice(["yolo", "sam3"]),
                                                "dry_run": self.rng.random() < 0.3})
            if status == 202:
                self.jobs = [*self.jobs[-50:], job["uid"]]
        elif r < 0.62 and self.jobs:
            await self.call("GET", f"/auto-label-jobs/{self.rng.choice(self.jobs)}/")
        elif r < 0.64 and self.jobs:
            await self.call("DELETE", f"/auto-label-jobs/{self.rng.choice(self.jobs)}/")
        elif r < 0.72 and self.recordings:
            rec, dev = self.rng.choice(self.recordings)
            event = {"recording": rec, "device": dev, "label": "soak", "type": "info", "timestamp": "2026-01-05T09:00:00Z"}
            if self.rng.random() < 0.25:
                await self.call("POST", "/fleet/events/batch/", json={"events": [event] * 20})
            else:
                await self.call("POST", "/fleet/events/", json=event)
        elif r < 0.78:
            await self.call("GET", "/webhook-deliveries/", params={"limit": 20})
        elif r < 0.84:
            await self.call("GET", f"/agents/{self.agent}/executions/", params={"limit": 20})
        elif r < 0.88:
            status, hook = await self.call("POST", "/webhooks/", json={"target_url": self.receiver_url, "events": ["auto_label.completed"]})
            if status == 201:
                await self.call("DELETE", f"/webhooks/{hook['uid']}/")
        elif r < 0.92:
            status, agent = await self.call("POST", "/agents/", json={"name": "soak-temp", "events": ["auto_label.completed"]})
            if status == 201:
                await self.call("DELETE", f"/agents/{agent['uid']}/")
        else:
            await self.call("GET", "/users/me/")


async def receiver() -> tuple[web.AppRunner, str]:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else 0.0


async def run(base: str, pid: int, minutes: float, concurrency: int, seed: int) -> list[dict]:
    recv_runner, url = await receiver()
    rows: list[dict] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        soak = Soak(base, session, url, seed)
        await soak.setup()
        deadline = time.monotonic() + minutes * 60

        async def worker() -> None:
            while time.monotonic() < deadline:
                await soak.step()

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        started, cpu0 = time.monotonic(), proc_cpu(pid)
        print(f"{'t (s)':>7} {'RSS MB':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'5xx':>5} {'conn err':>8} {'4xx':>6} {'CPU %':>6}")
        while any(not t.done() for t in tasks):
            await asyncio.sleep(INTERVAL_S)
            w, soak.window = soak.window, Window()
            cpu1 = proc_cpu(pid)
            row = {"t": time.monotonic() - started, "rss": proc_mem(pid)["VmRSS"], "n": len(w.latencies),
                   "p50": pct(w.latencies, 50), "p99": pct(w.latencies, 99), "errors": w.errors,
                   "5xx": sum(c for s, c in w.statuses.items() if s >= 500),
                   "4xx": sum(c for s, c in w.statuses.items() if 400 <= s < 500), "cpu": (cpu1 - cpu0) / INTERVAL_S}
            cpu0 = cpu1
            rows.append(row)
            print(f"{row['t']:7.0f} {mb(row['rss']):8.1f} {row['n'] / INTERVAL_S:7.0f} {row['p50']:7.1f} {row['p99']:8.1f} "
                  f"{row['5xx']:5d} {row['errors']:8d} {row['4xx']:6d} {100 * row['cpu']:6.0f}")
        await asyncio.gather(*tasks)
        total = soak.total
    await recv_runner.cleanup()
    print(f"\ntotal: {len(total.latencies)} requests, p50 {pct(total.latencies, 50):.1f} ms, p99 {pct(total.latencies, 99):.1f} ms, "
          f"5xx {sum(c for s, c in total.statuses.items() if s >= 500)}, connection errors {total.errors}, "
          f"statuses {dict(sorted(total.statuses.items()))}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--retention", type=int, default=2000)
    parser.add_argument("--time-scale", default="20")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with mock_server("--time-scale", args.time_scale, "--retention", str(args.retention)) as (proc, base, _):
        print(f"soak: {args.minutes:g} min, {args.concurrency} clients, retention {args.retention}, "
              f"time scale {args.time_scale}, server pid {proc.pid}")
        rows = asyncio.run(run(base, proc.pid, args.minutes, args.concurrency, args.seed))
    if len(rows) >= 4:
        warm = rows[len(rows) // 4]["rss"]
        end = rows[-1]["rss"]
        peak = max(r["rss"] for r in rows[len(rows) // 4:])
        growth = (end - warm) / warm
        print(f"RSS after warm-up {mb(warm):.1f} MB, at the end {mb(end):.1f} MB, peak since warm-up {mb(peak):.1f} MB: "
              f"{100 * growth:+.1f}% ({'flat' if growth < 0.10 else 'GROWING'})")


if __name__ == "__main__":
    main()
