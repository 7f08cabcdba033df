"""``--state-dir`` costs: write throughput per fsync mode against the same server in memory (same run),
the time to restart from 100,000 log records, and the default world's snapshot size and load time.

    python bench/durability.py [--seconds 5] [--records 100000]

Writes are ``POST /fleet/events/`` (the cheapest state change) from 16 concurrent keep-alive clients.
The restart figure is a real ``kill -9`` and a new process: exec -> banner, replaying the whole log
(compaction is pushed past the run so that no snapshot shortens it).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
from _common import HEADERS, avala_mock_cmd, mb, wait_quiet

from avala_mock.mock_server.testing import ServeProcess

EVENT = {"label": "bench", "type": "info", "timestamp": "2026-01-05T09:00:00Z"}


async def _writes(base: str, seconds: float | None, count: int | None, concurrency: int = 16) -> tuple[int, float]:
    async with aiohttp.ClientSession(headers=HEADERS) as s:
        async with s.get(base + "/fleet/recordings/", params={"limit": 1}) as r:
            rec = (await r.json())["results"][0]
        body = {**EVENT, "recording": rec["uid"], "device": rec["device"]}
        done, started = 0, time.perf_counter()
        deadline = started + (seconds or 1e9)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline and (count is None or done < count):
                done += 1
                async with s.post(base + "/fleet/events/", json=body) as r:
                    assert r.status == 201, await r.text()
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - started


def throughput(seconds: float) -> None:
    rows = []
    for mode in ("memory", "never", "batch", "always"):
        with tempfile.TemporaryDirectory() as tmp:
            extra = () if mode == "memory" else ("--state-dir", tmp, "--fsync", mode)
            with ServeProcess("--manual-clock", "--rate-limit", "100000000", *extra, command=avala_mock_cmd()) as srv:
                asyncio.run(_writes(srv.base_url, 1.0, None))  # warm-up
                wait_quiet(30)
                n, took = asyncio.run(_writes(srv.base_url, seconds, None))
                rows.append((mode, n / took))
    base = rows[0][1]
    print("write throughput, POST /fleet/events/, 16 clients:")
    for mode, rate in rows:
        print(f"  {mode:<8} {rate:8.0f} req/s   ratio to in-memory {rate / base:.2f}")


def restart(records: int, compact_every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = ("--manual-clock", "--rate-limit", "100000000", "--state-dir", tmp, "--fsync", "never",
                "--compact-every", str(compact_every))
        with ServeProcess(*args, command=avala_mock_cmd()) as srv:
            n, took = asyncio.run(_writes(srv.base_url, None, records, concurrency=32))
            srv.proc.kill()
            srv.proc.wait(10)
        size, snap = Path(tmp, "log.bin").stat().st_size, Path(tmp, "snapshot.bin").stat().st_size
        print(f"restart after {n} writes with --compact-every {compact_every} ({took:.1f} s to write), then kill -9: "
              f"{mb(snap):.1f} MB snapshot + {mb(size):.1f} MB of log")
        times = []
        for _ in range(3):
            with ServeProcess(*args, command=avala_mock_cmd(), timeout=600) as srv:
                times.append(srv.ready_s)
                srv.proc.kill()  # again without a final snapshot, so each start replays everything
                srv.proc.wait(10)
        print(f"  exec -> banner: best {min(times):.2f} s, worst {max(times):.2f} s")


def snapshot_figures() -> None:
    from avala_mock.fixtures.world import build_world, load_definition
    from avala_mock.mock_server import snapshot
    from avala_mock.simulators.clock import Clock

    world = build_world(load_definition(), seed=0, clock=Clock("manual"))
    parts = {"world": world, "definition": load_definition(), "scenario": None,
             "limits": {"limit": 6000, "window": 60.0, "rules": []}, "shaping": {"seed": 0, "latency": [], "faults": []},
             "taken_at": world.clock.now()}
    t = time.perf_counter()
    raw = snapshot.encode_state(parts, redact=False)
    encoded = time.perf_counter() - t
    packed = zlib.compress(raw, 1)
    t = time.perf_counter()
    snapshot.decode_state(zlib.decompress(packed))
    decoded = time.perf_counter() - t
    t = time.perf_counter()
    build_world(load_definition(), seed=0, clock=Clock("manual"))
    built = time.perf_counter() - t
    print(f"default world snapshot: {mb(len(raw)):.1f} MB encoded, {mb(len(packed)):.1f} MB compressed; "
          f"encode {encoded * 1000:.0f} ms, load {decoded * 1000:.0f} ms (building it from the world file: {built * 1000:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    wait_quiet()
    snapshot_figures()
    throughput(args.seconds)
    restart(args.records, 10_000)  # the default: the log never holds more than ~10,000 records
    restart(args.records // 5, 10 * args.records)  # no compaction: every record replayed (the per-record cost)


if __name__ == "__main__":
    main()
