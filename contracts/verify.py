"""``verify-client``: run a client's command against a fresh strict mock and fail if it sent any
off-contract request (Prism-style request validation, Pact-style consumer side), with optional
coverage of the spec's operations as a threshold (Specmatic-style).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer, describe_violation


@dataclass
class VerifyResult:
    exit_code: int
    violations: list[dict[str, Any]]
    coverage: dict[str, Any]
    duration: float
    min_coverage: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def render(self, console: Console) -> None:
        for v in self.violations:
            console.print(f"[red]violation[/red] {escape(describe_violation(v))}")
        cov = self.coverage
        console.print(f"coverage: {cov.get('exercised', 0)}/{cov.get('operations', 0)} operations ({cov.get('percent', 0)}%)")
        for p in self.problems:
            console.print(f"[red]FAILED[/red] {escape(p)}")
        if self.passed:
            console.print(f"[green]PASSED[/green] client exited 0 and sent no off-contract request ({self.duration:.1f} s)")


def verify_client(command: list[str], *, min_coverage: float | None = None, seed: int = 0,
                  time_scale: str = "instant", timeout: float | None = None, console: Console | None = None) -> VerifyResult:
    """Start a strict mock on a free port, run ``command`` with the SDK env vars pointed at it, judge."""
    started = time.perf_counter()
    config = ServerConfig(seed=seed, time_scale=time_scale, strict=True, rate_limit=10**9)
    with LiveServer(config) as server:
        env = {**os.environ, **server.env()}
        if console is not None:
            console.print(f"avala-mock (strict) at {server.base_url}; running: {escape(' '.join(command))}")
        try:
            exit_code = subprocess.run(command, env=env, timeout=timeout, check=False).returncode
        except FileNotFoundError:
            exit_code = 127
        except subprocess.TimeoutExpired:
            exit_code = -1
        journal = server.control("GET", "violations")
        coverage = server.control("GET", "coverage")
    result = VerifyResult(exit_code, journal["violations"], coverage, time.perf_counter() - started, min_coverage)
    if exit_code != 0:
        result.problems.append(f"client command exited {exit_code}")
    if journal["count"]:
        result.problems.append(f"{journal['count']} off-contract request(s)")
    if min_coverage is not None and coverage["percent"] < min_coverage:
        result.problems.append(f"coverage {coverage['percent']}% < --min-coverage {min_coverage}%")
    return result
