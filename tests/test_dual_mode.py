"""moto's dual mode for the core suites: the same SDK tests, run against a separate
``avala-mock serve`` process (server mode) instead of the in-process server the suite normally uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from avala_mock.mock_server.testing import ServeProcess

CORE = ["tests/test_auto_label_sdk.py", "tests/test_resources_sdk.py"]


def test_core_suites_pass_against_a_separate_server_process():
    with ServeProcess("--manual-clock", "--seed", "7", "--rate-limit", "1000000000") as server:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CORE, "--avala-mock-url", server.base_url],
            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600,
            # no spec for an in-process server: every request must go to the separate process
            env={**os.environ, "AVALA_MOCK_SPEC": "/nonexistent/openapi.yaml"},
        )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout
