"""Events benchmark: what emitting a job's events costs, and how fast real deliveries go out.

1. Backend (simulators only, manual clock): a 5,000-item auto-label job's ``result.submitted`` events,
   drained in one step and in 100 clock steps, with nobody listening (one batched log entry per drain)
   and with an agent listening (one execution per draft). Baseline: creating the job (sampling it).
2. End to end: a real server (in-process, manual clock) POSTs one signed delivery per draft to a real
   receiver; wall time from the clock advance to the last delivery recorded ``delivered``. Baseline: the
   same number of POSTs from one httpx client in a loop.

Prints figures and ratios; asserts nothing about timing.  ``python bench/events.py``
"""

from __future__ import annotations

import time

import httpx

from avala_mock.fixtures.world import build_world
from avala_mock.mock_server.receiver import WebhookReceiver
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from avala_mock.simulators import agents, autolabel, dispatch, events
from avala_mock.simulators.clock import Clock

BIG = "Urban Detection (full city)"  # 5,000 items in the first job


def backend(listening: bool, steps: int) -> dict[str, float]:
    world = build_world(seed=1, clock=Clock("manual"))
    store = next(iter(world.stores.values()))
    project = next(p for p in store.projects.values() if p.name == BIG)
    for seeded in agents.agents(store).values():
        seeded["is_active"] = False  # the seeded qa-reviewer listens on this project: start from nobody
    if listening:
        agents.create_agent(world, store, {"name": "qa", "events": ["result.submitted"], "project": project.uid})
    t0 = time.perf_counter()
    job = autolabel.create_job(world, store, project)
    t_create = time.perf_counter() - t0
    bus = events.bus(world)
    span = float(job.end_at) - world.clock.now() + 1
    t0 = time.perf_counter()
    for _ in range(steps):
        world.clock.advance(span / steps)
        bus.drain(world.clock.now())
    t_drain = time.perf_counter() - t0
    drafts = job.state(world.clock.now()).successful_items
    return {"create_s": t_create, "drain_s": t_drain, "drafts": drafts}


def end_to_end(project_name: str = "Transit Vehicles") -> dict[str, float]:
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server, \
            WebhookReceiver(secret="whsec_bench") as receiver:
        h = {"X-Avala-Api-Key": server.api_key}
        api = httpx.Client(base_url=server.base_url + "/", headers=h, timeout=30)
        api.post("webhooks/", json={"target_url": receiver.url, "events": ["result.submitted"], "secret": "whsec_bench"})
        project = next(p for p in api.get("projects/", params={"limit": 100}).json()["results"] if p["name"] == project_name)
        job = api.post(f"projects/{project['uid']}/auto-label/", json={"model_type": "yolo"}).json()
        t0 = time.perf_counter()
        server.advance(3600)
        n = api.get(f"auto-label-jobs/{job['uid']}/").json()["successful_items"]
        receiver.wait_for("result.submitted", count=n, timeout=300)
        t_send = time.perf_counter() - t0
        assert all(r.verified for r in receiver.received)
        body = b'{"event":"x","payload":{}}'
        hdrs = dispatch.headers("whsec_bench", body, 0, "x", "d")
        with httpx.Client() as raw:
            t0 = time.perf_counter()
            for _ in range(n):
                raw.post(receiver.url, content=body, headers=hdrs)
            t_raw = time.perf_counter() - t0
        api.close()
        return {"n": n, "send_s": t_send, "raw_s": t_raw}


def main() -> None:
    print("backend: 5,000-item job, result.submitted drained on the manual clock")
    for listening in (False, True):
        for steps in (1, 100):
            r = backend(listening, steps)
            print(f"  listener={'agent' if listening else 'none ':5}  steps={steps:3d}  drafts={r['drafts']:5d}  "
                  f"create {r['create_s'] * 1e3:7.1f} ms  drain {r['drain_s'] * 1e3:8.1f} ms  "
                  f"({r['drain_s'] / r['create_s']:.2f}x create, {r['drain_s'] / max(r['drafts'], 1) * 1e6:.1f} us/draft)")
    r = end_to_end()
    print(f"end to end: {r['n']} signed deliveries to a real receiver in {r['send_s']:.2f} s "
          f"({r['n'] / r['send_s']:.0f}/s); one httpx client in a loop: {r['raw_s']:.2f} s "
          f"({r['n'] / r['raw_s']:.0f}/s); ratio {r['send_s'] / r['raw_s']:.2f}x")


if __name__ == "__main__":
    main()
