"""``avala-mock load`` as a user runs it: Locust in a child process against a real mock, then its reports
(kept in ``artifacts/load/``, or ``$AVALA_MOCK_ARTIFACTS/load/``)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

# Never import locust here: it patches the standard library with gevent; the command runs it in a child.


def template_args(html: str) -> dict[str, Any]:
    """The data Locust's report page draws from: ``window.templateArgs = {...}`` (JSON)."""
    marker = "window.templateArgs = "
    start = html.index(marker) + len(marker)
    args, _ = json.JSONDecoder().raw_decode(html, start)
    return args


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_load_run_writes_charts_and_stats_by_route():
    # Kept where a user (or CI) can open it: artifacts/load/r.html and r_*.csv (or under $AVALA_MOCK_ARTIFACTS).
    out_dir = Path(os.environ.get("AVALA_MOCK_ARTIFACTS") or Path(__file__).resolve().parent.parent / "artifacts") / "load"
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "r.html"
    with LiveServer(ServerConfig(time_scale="instant", seed=5, rate_limit=10**9)) as server:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "avala_mock", "load", "--base-url", server.base_url, "--api-key", server.api_key,
             "--users", "20", "--spawn-rate", "20", "--run-time", "20s", "--html", str(html_path),
             "--csv", str(out_dir / "r"), "--allow-failures"],
            capture_output=True, text=True, timeout=120,
        )
        elapsed = time.monotonic() - started
        journal = server.control("GET", "journal", params={"limit": 100000})
    out = done.stdout + done.stderr
    print(f"load run: {elapsed:.1f}s; report {html_path}")
    assert done.returncode == 0, out[-4000:]
    assert server.api_key not in out  # the key travels in the environment only

    summary = [line for line in done.stdout.splitlines() if "req/s" in line and "p50/p95/p99" in line]
    jobs = re.search(r"(\d+)/(\d+) auto-label jobs completed", summary[0]) if summary else None
    assert jobs, done.stdout[-2000:]
    completed, finished = int(jobs[1]), int(jobs[2])
    assert 1 <= completed <= finished, summary[0]  # jobs on an instant clock reach the end within the run
    assert f"HTML report: {html_path}" in done.stdout and "r_stats.csv" in done.stdout

    args = template_args(html_path.read_text(encoding="utf-8"))
    history = args["history"]
    assert history, "the report has no chart data"
    assert any(point["current_rps"][1] > 0 for point in history)
    assert any(point["response_time_percentile_0.5"][1] > 0 and point["response_time_percentile_0.95"][1] > 0
               for point in history)
    names = {(s["method"], s["name"]) for s in args["requests_statistics"]}
    assert ("JOB", "auto-label time-to-complete") in names

    stats = {(row["Type"], row["Name"]): row for row in read_csv(out_dir / "r_stats.csv")}
    for key in [("GET", "/projects/"), ("POST", "/fleet/events/batch/"), ("JOB", "auto-label time-to-complete"),
                ("GET", "/datasets/{owner}/{slug}/items/"), ("GET", "/agents/")]:
        assert key in stats and int(stats[key]["Request Count"]) >= 1, (key, sorted(stats))
    job_row = stats[("JOB", "auto-label time-to-complete")]  # the summary line and the CSV tell the same story
    assert (int(job_row["Request Count"]), int(job_row["Failure Count"])) == (finished, finished - completed), job_row
    assert not [k for k in stats if "?" in k[1]], "requests are named by route template, without queries"

    failures = read_csv(out_dir / "r_failures.csv")
    assert not [f for f in failures if "5xx" in f["Error"] or "connection error" in f["Error"]], failures
    assert not [e for e in journal["entries"] if e["status"] >= 500]
    assert any(e["path"].endswith("/fleet/events/batch/") and e["status"] == 201 for e in journal["entries"])


@pytest.mark.parametrize("content, says", [
    ("browse: 5\nteleport: 1\n", "unknown behaviour 'teleport'"),
    ('{"browse": 5, "fleet": -1}', "negative"),
    ("browse: 0\n", "every weight is 0"),
    ("- browse\n", "expected a mapping"),
])
def test_bad_mix_file_is_a_usage_error(tmp_path: Path, content: str, says: str):
    mix = tmp_path / "mix.yaml"
    mix.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "avala_mock", "load", "--base-url", "http://127.0.0.1:9/api/v1", "--api-key", "k",
         "--users", "1", "--run-time", "1s", "--mix", str(mix)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--mix" in done.stderr and says in done.stderr
