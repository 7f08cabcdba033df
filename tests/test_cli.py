"""``avala-mock serve`` as a user runs it: a subprocess on a free port, then the official SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import avala
import httpx
import pytest

from avala_mock.mock_server.testing import ServeProcess


def test_serve_prints_base_url_and_key_and_answers_the_sdk(monkeypatch):
    with ServeProcess("--api-key", "avk_cli_test_key", "--time-scale", "instant", "--seed", "3") as server:
        base = server.base_url
        print(f"time to ready (incl. interpreter start): {server.ready_s:.2f}s")
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


def test_world_file_and_bad_flags(tmp_path: Path):
    world = tmp_path / "w.yaml"
    world.write_text(
        "organizations:\n"
        "  - slug: solo\n    api_key: avk_solo_1234\n"
        "    datasets: [{slug: d, data_type: image, items: 50, labels: [x]}]\n"
        "    projects: [{name: Only, dataset: d, items: 50}]\n"
    )
    with ServeProcess("--world", str(world), "--manual-clock") as server:  # the world's own key, printed
        assert "AVALA_API_KEY=avk_solo_1234" in server.text
        r = httpx.get(server.base_url + "/projects/", headers={"X-Avala-Api-Key": "avk_solo_1234"})
        assert [p["name"] for p in r.json()["results"]] == ["Only"]
        assert httpx.get(server.base_url + "/projects/", headers={"X-Avala-Api-Key": "avk_mock_primary"}).status_code == 401
    with ServeProcess("--world", str(world), "--manual-clock", "--api-key", "avk_given_5678") as server:  # --api-key wins
        assert "AVALA_API_KEY=avk_given_5678" in server.text
        r = httpx.get(server.base_url + "/projects/", headers={"X-Avala-Api-Key": "avk_given_5678"})
        assert [p["name"] for p in r.json()["results"]] == ["Only"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("organizations: []\n")
    for args in (["--world", str(bad)], ["--time-scale", "fast"]):
        r = subprocess.run([sys.executable, "-m", "avala_mock", "serve", "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "Error" in r.stderr


@pytest.mark.skipif(os.environ.get("CI_SKIP_DETERMINISM") == "1", reason="opt-out")
def test_same_seed_same_requests_give_identical_bytes():
    bodies = []
    for _ in range(2):
        with ServeProcess("--manual-clock", "--seed", "99") as server:
            base = server.base_url
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
    assert bodies[0] == bodies[1]
