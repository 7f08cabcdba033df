"""Contract harness figures: strict mode's per-request cost vs a non-strict server, and the harness
run against our mock split into its parts (schemathesis, our own checks).

    python bench/contract.py [--requests 2000] [--rounds 3] [--max-examples 5]
    python bench/contract.py --stateless 1,2,3 [--max-examples 2]
    python bench/contract.py --junk 1,2,3 [--junk-share 0.3] [--max-examples 2]

``--stateless`` / ``--junk`` instead run the whole harness (150 operations) against the tests' foreign
servers (``contracts/broken.py``) at each draw seed: random schema-valid answers, or our app answering a
share of requests with junk. The harness must report what it meets and never stop: 0 harness errors.

Both servers are in-process (``LiveServer``, manual clock, no throttling); the client is one keep-alive
httpx client, sequential, so the figures are latency-bound and the ratio is what matters.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avala_mock.contracts.runner import HarnessOptions, run_harness  # noqa: E402
from avala_mock.mock_server.state import ServerConfig  # noqa: E402
from avala_mock.mock_server.testing import LiveServer  # noqa: E402


def _requests_per_second(server: LiveServer, n: int) -> float:
    headers = {"X-Avala-Api-Key": server.api_key}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        uid = http.get("/projects/").json()["results"][0]["uid"]
        started = time.perf_counter()
        for i in range(n):
            if i % 2:
                http.get("/projects/", params={"limit": 5})
            else:  # validated body, refused by the schema (400)
                http.post(f"/projects/{uid}/auto-label/", json={"model_type": "yolo", "confidence_threshold": 2})
        return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-examples", type=int, default=5)
    ap.add_argument("--stateless", help="comma-separated draw seeds: the harness against the stateless server")
    ap.add_argument("--junk", help="comma-separated draw seeds: the harness against the junk server")
    ap.add_argument("--junk-share", type=float, default=0.3, help="share of answers the junk server replaces")
    args = ap.parse_args()
    if args.stateless or args.junk:
        foreign(args, "stateless" if args.stateless else "junk", [int(x) for x in (args.stateless or args.junk).split(",")])
        return
    base = ServerConfig(manual_clock=True, rate_limit=10**9)
    strict = ServerConfig(manual_clock=True, rate_limit=10**9, strict=True)
    with LiveServer(base) as plain, LiveServer(strict) as checked:
        best = {"plain": 0.0, "strict": 0.0}
        for _ in range(args.rounds):  # alternate, keep the best of each
            best["plain"] = max(best["plain"], _requests_per_second(plain, args.requests))
            best["strict"] = max(best["strict"], _requests_per_second(checked, args.requests))
        print(f"sequential req/s, best of {args.rounds}: plain {best['plain']:.0f}, strict {best['strict']:.0f}, "
              f"strict/plain {best['strict'] / best['plain']:.2f}")
        journal = checked.control("GET", "violations")
        print(f"strict journal: {journal['count']} violations over {journal['requests']} requests (newest 1000 kept)")
    for label, opts in (
        ("schemathesis only", dict(own_checks=())),
        ("own checks only", dict(schemathesis=False)),
        ("full harness", {}),
    ):
        with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
            report = run_harness(HarnessOptions(server.base_url, server.api_key, max_examples=args.max_examples, **opts))
        print(f"{label:18s} max-examples {args.max_examples}: {report.cases:6d} cases, {report.failures} failures, "
              f"{report.duration:6.1f} s ({report.cases / report.duration:.0f} cases/s)")


def foreign(args: argparse.Namespace, kind: str, seeds: list[int]) -> None:
    from avala_mock.contracts.broken import JunkServer, StatelessServer

    for seed in seeds:
        server = StatelessServer(seed) if kind == "stateless" else JunkServer(seed, args.junk_share)
        with server:
            report = run_harness(HarnessOptions(server.base_url, server.api_key, max_examples=args.max_examples,
                                                lifecycle_timeout=3))
        checks = sorted({c for op in report.operations.values() for c in op.failures})
        stopped = sum("the check stopped" in m for op in report.operations.values() for ms in op.messages.values() for m in ms)
        print(f"{kind} server, draw seed {seed}: {report.cases} cases, {report.failures} failures under "
              f"{len(checks)} checks, {len(report.errors)} harness errors, {stopped} checks stopped, {report.duration:.1f} s")
        for error in report.errors:
            print(f"  harness error: {error[:200]}")


if __name__ == "__main__":
    main()
