"""``avala-mock serve`` as a user runs it: a subprocess on a free port, then the official SDK."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import avala
import httpx
import pytest


def start(*args: str) -> tuple[subprocess.Popen, str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_server.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"AVALA_BASE_URL=(\S+)", line)
        if m:
            return proc, m.group(1), time.perf_counter() - started
    proc.kill()
    raise AssertionError("server did not start:\n" + "".join(lines))


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def test_serve_prints_base_url_and_key_and_answers_the_sdk(monkeypatch):
    proc, base, elapsed = start("--api-key", "avk_cli_test_key", "--time-scale", "instant", "--seed", "3")
    try:
        print(f"time to ready (incl. interpreter start): {elapsed:.2f}s")
        assert base.startswith("http://127.0.0.1:") and base.endswith("/api/v1")
        monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
        client = avala.Client(api_key="avk_cli_test_key", base_url=base)
        project = client.projects.list().items[0]
        job = client.auto_label_jobs.create(project.uid)
        assert job.status == "pending"
        deadline = time.monotonic() + 30
        while client.auto_label_jobs.get(job.uid).status != "completed":
            assert time.monotonic() < deadline
        final = client.auto_label_jobs.get(job.uid)
        assert final.total_items == 5000 and final.processed_items == 5000
        assert httpx.get(base + "/projects/", headers={"X-Avala-Api-Key": "avk_mock_primary"}).status_code == 401
    finally:
        stop(proc)


def test_world_file_and_bad_flags(tmp_path: Path):
    world = tmp_path / "w.yaml"
    world.write_text(
        "organizations:\n"
        "  - slug: solo\n    api_key: avk_solo_1234\n"
        "    datasets: [{slug: d, data_type: image, items: 50, labels: [x]}]\n"
        "    projects: [{name: Only, dataset: d, items: 50}]\n"
    )
    proc, base, _ = start("--world", str(world), "--manual-clock")
    try:
        r = httpx.get(base + "/projects/", headers={"X-Avala-Api-Key": "avk_mock_primary"})  # --api-key default replaces the first key
        assert [p["name"] for p in r.json()["results"]] == ["Only"]
    finally:
        stop(proc)
    bad = tmp_path / "bad.yaml"
    bad.write_text("organizations: []\n")
    for args in (["--world", str(bad)], ["--time-scale", "fast"]):
        r = subprocess.run([sys.executable, "-m", "mock_server.cli", "serve", "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "Error" in r.stderr


@pytest.mark.skipif(os.environ.get("CI_SKIP_DETERMINISM") == "1", reason="opt-out")
def test_same_seed_same_requests_give_identical_bytes():
    bodies = []
    for _ in range(2):
        proc, base, _ = start("--manual-clock", "--seed", "99")
        try:
            h = {"X-Avala-Api-Key": "avk_mock_primary"}
            with httpx.Client(base_url=base + "/", headers=h) as c:
                out = [c.get("projects/?limit=3").content]
                uid = c.get("projects/?limit=1").json()["results"][0]["uid"]
                job = c.post(f"projects/{uid}/auto-label/", json={"dry_run": True})
                out.append(job.content)
                httpx.post(base.replace("/api/v1", "/_mock/clock/advance/"), json={"seconds": 42.5})
                out.append(c.get(f"auto-label-jobs/{job.json()['uid']}/").content)
                out.append(c.get("datasets/acme-robotics/street-scenes/items/?limit=5").content)
            origin = base.removesuffix("/api/v1").encode()
            bodies.append([b.replace(origin, b"ORIGIN") for b in out])  # only the port differs
        finally:
            stop(proc)
    assert bodies[0] == bodies[1]
