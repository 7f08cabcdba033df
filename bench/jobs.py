"""Auto-label job benchmarks: one 5,000-item job, then 100 concurrent 5,000-item jobs.

    python bench/jobs.py [--repeats 5] [--scale 2000]

a. One yolo job on "Urban Detection (full city)" of the default world, instant clock: wall time from
   the POST until a GET shows ``completed`` (tight polling), through a real server subprocess and, for
   comparison, in-process without HTTP (``create_job`` + ``job.state(clock.now())``).
b. 100 concurrent jobs on bench/worlds/bench.yaml (100 projects x 5,000 items): instant clock (wall
   time, server RSS before / peak) and a scaled clock where each job takes 251 s of virtual time.
c. Every figure with its ratio to its goal. Nothing is asserted: this script only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson
from _common import BENCH, HEADERS, KEY, mb, mock_server, proc_mem, versus, wait_quiet

from avala_mock.fixtures.world import build_world, load_definition
from avala_mock.mock_server import wire
from avala_mock.simulators.autolabel import TERMINAL, create_job
from avala_mock.simulators.clock import Clock

URBAN = "Urban Detection (full city)"
BENCH_WORLD = BENCH / "worlds" / "bench.yaml"
JOB_BODY = {"model_type": "yolo", "confidence_threshold": 0.5}
GOAL_ONE_S, GOAL_MANY_S, GOAL_RSS_B = 0.25, 15.0, 1.5e9


async def project_uids(s: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with s.get(f"{base}/users/me/projects/", params={"limit": "1000"}) as r:
        assert r.status == 200, await r.text()
        return {p["name"]: p["uid"] for p in (await r.json())["results"]}


async def create(s: aiohttp.ClientSession, base: str, project_uid: str) -> str:
    async with s.post(f"{base}/projects/{project_uid}/auto-label/", json=JOB_BODY) as r:
        body = await r.read()
        assert r.status == 202, body
        return orjson.loads(body)["uid"]


async def status(s: aiohttp.ClientSession, base: str, job_uid: str) -> str:
    async with s.get(f"{base}/auto-label-jobs/{job_uid}/") as r:
        body = await r.read()
        assert r.status == 200, body
        return orjson.loads(body)["status"]


async def one_job_http(repeats: int) -> dict:
    """POST then GET in a tight loop until terminal; reset the world between repeats."""
    walls, posts, polls = [], [], []
    with mock_server("--time-scale", "instant") as (_, base, _ready):
        root = base.rsplit("/api/", 1)[0]
        async with aiohttp.ClientSession(headers=HEADERS) as s:
            for i in range(repeats):
                if i:
                    async with s.post(f"{root}/_mock/reset/") as r:
                        assert r.status == 200, await r.text()
                project = (await project_uids(s, base))[URBAN]
                t0 = time.perf_counter()
                job = await create(s, base, project)
                t1 = time.perf_counter()
                n = 1
                while (st := await status(s, base, job)) not in TERMINAL:
                    n += 1
                walls.append(time.perf_counter() - t0)
                posts.append(t1 - t0)
                polls.append(n)
                assert st == "completed", st
    return {"walls": walls, "posts": posts, "polls": polls}


def one_job_inproc(repeats: int) -> dict:
    """The same job without HTTP: fresh default world each time (not timed), then create + state."""
    definition = load_definition()
    out: dict[str, list[float]] = {"build": [], "create": [], "state": [], "render": [], "total": []}
    for _ in range(repeats):
        t = time.perf_counter()
        world = build_world(definition, seed=0, clock=Clock("instant"))
        out["build"].append(time.perf_counter() - t)
        store = world.resolve_key(KEY)[0]
        project = next(p for p in store.projects.values() if p.name == URBAN)
        t0 = time.perf_counter()
        job = create_job(world, store, project, **JOB_BODY)
        t1 = time.perf_counter()
        while (st := job.state(world.clock.now()).status) not in TERMINAL:
            pass
        t2 = time.perf_counter()
        assert st == "completed" and job.total == 5000, (st, job.total)
        orjson.dumps(wire.job(job.view(world.clock.now())))  # what the first completed GET adds: settle + summary + JSON
        t3 = time.perf_counter()
        for name, value in (("create", t1 - t0), ("state", t2 - t1), ("render", t3 - t2), ("total", t2 - t0)):
            out[name].append(value)
    return out


async def many_jobs(scale: str) -> dict:
    """100 jobs created concurrently on bench.yaml, then polled in rounds until all are terminal."""
    with mock_server("--time-scale", scale, "--world", str(BENCH_WORLD)) as (proc, base, ready):
        mem_start = proc_mem(proc.pid)
        try:  # reset the peak-RSS counter so VmHWM below is the peak while the jobs run
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            hwm_reset = True
        except OSError:
            hwm_reset = False
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as s:
            uids = list((await project_uids(s, base)).values())
            assert len(uids) == 100, len(uids)
            wait_quiet()  # blocking on purpose: nothing else runs in this loop yet
            mem_before = proc_mem(proc.pid)
            t0 = time.perf_counter()
            jobs = await asyncio.gather(*(create(s, base, u) for u in uids))
            created = time.perf_counter() - t0
            pending, polls, rounds, final = list(jobs), 0, 0, {}
            while pending:
                states = await asyncio.gather(*(status(s, base, j) for j in pending))
                polls, rounds = polls + len(pending), rounds + 1
                final.update({j: st for j, st in zip(pending, states) if st in TERMINAL})
                pending = [j for j, st in zip(pending, states) if st not in TERMINAL]
            wall = time.perf_counter() - t0
        mem_after = proc_mem(proc.pid)
    by_status = {st: list(final.values()).count(st) for st in sorted(set(final.values()))}
    return {"ready": ready, "start_hwm": mem_start["VmHWM"], "rss_before": mem_before["VmRSS"], "hwm_reset": hwm_reset,
            "peak": max(mem_after["VmHWM"], mem_start["VmHWM"]), "peak_jobs": mem_after["VmHWM"], "rss_after": mem_after["VmRSS"],
            "created": created, "wall": wall, "polls": polls, "rounds": rounds, "statuses": by_status}


def fmt(values: list[float]) -> str:
    return f"min {min(values) * 1e3:8.1f} ms   median {statistics.median(values) * 1e3:8.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scale", default="2000", help="time scale of the scaled-clock run (default 2000)")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs, "
          f"load average at start {Path('/proc/loadavg').read_text().split()[0]}")
    print("== a. one 5,000-item yolo job, instant clock ==")
    wait_quiet()
    http = asyncio.run(one_job_http(args.repeats))
    print(f"  HTTP  POST -> GET completed : {fmt(http['walls'])}   (polls per job: {http['polls']})")
    print(f"        of which the POST     : {fmt(http['posts'])}")
    wait_quiet()
    inproc = one_job_inproc(args.repeats)
    print(f"  in-process create_job       : {fmt(inproc['create'])}")
    print(f"  in-process state -> done    : {fmt(inproc['state'])}")
    print(f"  in-process create + state   : {fmt(inproc['total'])}")
    print(f"  first completed render+JSON : {fmt(inproc['render'])}   (settle + summary + orjson)")
    print(f"  default world build         : {fmt(inproc['build'])}")

    print("== b. world bench/worlds/bench.yaml ==")
    definition = load_definition(BENCH_WORLD)
    wait_quiet()
    t = time.perf_counter()
    world = build_world(definition, seed=0, clock=Clock("instant"))
    build_s = time.perf_counter() - t
    print(f"  in-process build_world: {build_s:.2f} s")
    store = world.resolve_key(KEY)[0]
    firsts = []
    for project in list(store.projects.values())[:3]:  # the first job on a dataset samples its model output
        t = time.perf_counter()
        create_job(world, store, project, **JOB_BODY)
        firsts.append(time.perf_counter() - t)
    print(f"  in-process create_job on 500,000-item dataset: 1st {firsts[0] * 1e3:.1f} ms, "
          f"2nd {firsts[1] * 1e3:.1f} ms, 3rd {firsts[2] * 1e3:.1f} ms")
    del world, store
    results = {}
    for label, scale in (("instant", "instant"), (f"scaled x{args.scale}", args.scale)):
        r = results[label] = asyncio.run(many_jobs(scale))
        print(f"== b. 100 concurrent 5,000-item jobs, {label} clock ==")
        print(f"  server ready in {r['ready']:.2f} s (spawn -> banner; peak RSS while starting {mb(r['start_hwm']):,.0f} MB)")
        print(f"  POST x100 done in {r['created']:.3f} s; all terminal after {r['wall']:.3f} s; "
              f"{r['polls']} GET polls in {r['rounds']} rounds; statuses {r['statuses']}")
        peak_label = "peak RSS during jobs" if r["hwm_reset"] else "peak RSS (lifetime)"
        print(f"  server RSS before jobs {mb(r['rss_before']):,.0f} MB, {peak_label} {mb(r['peak_jobs']):,.0f} MB, "
              f"after {mb(r['rss_after']):,.0f} MB; lifetime peak {mb(r['peak']):,.0f} MB")

    one = statistics.median(http["walls"])
    inst = results["instant"]
    print("== c. against the goals ==")
    print(f"  5,000-item job, HTTP (median)   : {versus(one, GOAL_ONE_S, 's')}")
    print(f"  5,000-item job, in-process      : {versus(statistics.median(inproc['total']), GOAL_ONE_S, 's')}")
    print(f"  100 x 5,000 jobs, instant       : {versus(inst['wall'], GOAL_MANY_S, 's')}")
    print(f"  server peak RSS (lifetime)      : {versus(mb(inst['peak']), mb(GOAL_RSS_B), 'MB', '{:,.0f}')}")
    scaled = results[f"scaled x{args.scale}"]
    print(f"  100 x 5,000 jobs, scaled x{args.scale} : {versus(scaled['wall'], GOAL_MANY_S, 's')}  polls {scaled['polls']}")
    print(f"  1st job on 500k-item dataset    : {versus(firsts[0], GOAL_ONE_S, 's')}  (in-process)")
    print(f"  bench world build (in-process)  : {build_s:.2f} s; server ready {inst['ready']:.2f} s")


if __name__ == "__main__":
    main()
