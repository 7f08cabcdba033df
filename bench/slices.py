"""A slice of a whole big dataset: what selecting every item costs, ours (runs of index arrays) against the
representation it replaced (a list of (dataset, index) pairs and a uid -> position map), built in the same run.

    python bench/slices.py [--items 1000000]

Builds ``bench/worlds/bench.yaml`` with its dataset raised to ``--items`` in-process, then for each
representation: build time, memory it holds (tracemalloc), what it adds to a snapshot (bytes and encode
time beyond its dataset's), and the mean time of a member lookup by uid.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avala_mock.fixtures.world import build_world, load_definition  # noqa: E402
from avala_mock.simulators import codec, slices  # noqa: E402
from avala_mock.simulators.clock import Clock  # noqa: E402

BENCH_WORLD = Path(__file__).resolve().parent / "worlds" / "bench.yaml"
LOOKUPS = 1000  # uids looked up, spread over the dataset (mean time reported)


def measure(build: Callable[[], Any], lookup: Callable[[Any, str], Any], ds: Any, dataset: tuple[int, float]) -> dict[str, float]:
    gc.collect()
    started = time.perf_counter()
    build()
    took = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()  # a second build, traced (tracing slows allocation: not timed)
    members = build()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(ds.item_uids)
    probes = [(ds.item_uids[i], i) for i in range(0, n, max(1, n // LOOKUPS))]
    started = time.perf_counter()
    for uid, index in probes:
        found = lookup(members, uid)
        assert found == (ds, index), found
    looked = (time.perf_counter() - started) / len(probes)
    started = time.perf_counter()
    size = len(codec.encode({"_members": members}))  # the dataset comes along (referenced): subtracted below
    encode = time.perf_counter() - started
    return {"build": took, "held": held / 2**20, "lookup": looked * 1e6,
            "size": (size - dataset[0]) / 2**20, "encode": max(0.0, encode - dataset[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    definition = load_definition(BENCH_WORLD)
    definition["organizations"][0]["datasets"][0]["items"] = args.items
    world = build_world(definition, seed=0, clock=Clock("manual"))
    ds = next(iter(world.resolve_key("avk_mock_primary")[0].datasets.values()))
    started = time.perf_counter()
    dataset = (len(codec.encode({"_members": ds})), 0.0)
    dataset = (dataset[0], time.perf_counter() - started)
    def everything() -> Any:  # the selection itself is part of both builds
        return slices.select(ds, slices.parse_query(""))

    def pairs_and_map() -> tuple[list, dict]:
        listed = [(ds, i) for i in everything().tolist()]
        return listed, {ds.item_uids[i]: k for k, (_, i) in enumerate(listed)}

    ours = measure(lambda: slices.Members([(ds, everything())]), lambda m, uid: m.find(uid), ds, dataset)
    theirs = measure(pairs_and_map, lambda m, uid: m[0][m[1][uid]], ds, dataset)
    print(f"slice of all {args.items:,} items of one dataset (the dataset alone encodes to "
          f"{dataset[0] / 2**20:.1f} MB in {dataset[1]:.2f} s; below: what the slice adds)")
    for name, unit, key, fmt in [("build", "s", "build", "{:.3f}"), ("memory held", "MB", "held", "{:.1f}"),
                                 ("snapshot adds", "MB", "size", "{:.1f}"), ("encode adds", "s", "encode", "{:.3f}"),
                                 ("lookup by uid", "µs", "lookup", "{:.0f}")]:
        a, b = ours[key], theirs[key]
        ratio = f"{a / b:.3f}×" if b > 0 else "-"
        print(f"  {name:14s} runs {fmt.format(a):>8s} {unit:2s} | pairs + uid map {fmt.format(b):>8s} {unit:2s} | runs/pairs {ratio}")


if __name__ == "__main__":
    main()
