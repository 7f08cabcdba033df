"""Journal memory over a long run: RSS before/after 1,000,000 requests through the bounded journal.

    python bench/journal.py [--requests 1000000] [--size 10000]

In-process, not 1M real HTTP requests (that would take minutes and measure aiohttp, not the journal):
each iteration records exactly what the middleware records for one request (`Journal.record` with a
method, path, operationId, status, latencies and a fault every 50th). Baseline in the same run: the
same records kept in an unbounded list, the leak the deque prevents. RSS is read with psutil after a
gc; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from avala_mock.mock_server.journal import Entry, Journal  # noqa: E402

PATHS = [f"/api/v1/auto-label-jobs/{i:032x}/" for i in range(1000)]


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def drive(journal: Journal, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        journal.record("GET", PATHS[i % 1000], "get_auto_label_job", 200 if i % 50 else 503, 0.0021, 0.0,
                       None if i % 50 else "http_503")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args()
    n = args.requests

    journal = Journal(args.size)
    before = rss_mb()
    half = drive(journal, n // 2)
    middle = rss_mb()
    rest = drive(journal, n - n // 2)
    after = rss_mb()
    print(f"journal size {args.size:,}, {n:,} requests recorded in {half + rest:.2f} s "
          f"({(half + rest) / n * 1e6:.2f} µs per request)")
    print(f"RSS before {before:.1f} MB, after {n // 2:,} {middle:.1f} MB, after {n:,} {after:.1f} MB "
          f"(growth over the 2nd half: {after - middle:+.1f} MB); held {len(journal):,}, total {journal.total:,}")

    unbounded: list[Entry] = []
    base = rss_mb()
    started = time.perf_counter()
    for i in range(n):
        unbounded.append(Entry(i, 0.0, "GET", PATHS[i % 1000], "get_auto_label_job", 200, 2.1, 0.0, None))
    elapsed = time.perf_counter() - started
    grown = rss_mb() - base
    print(f"baseline, unbounded list of the same entries: +{grown:.1f} MB after {n:,} ({elapsed:.2f} s)")
    print(f"ratio bounded/unbounded growth over the run: {(after - before) / grown:.3f}")


if __name__ == "__main__":
    main()
