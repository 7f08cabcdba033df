"""Client verification: strict mode's journal and coverage over raw HTTP, and ``avala-mock verify-client``
failing on a client that sends one malformed request and passing on the SDK's seed quickstart."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import avala
import httpx
import pytest

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from helpers import spec_operations

QUICKSTART = textwrap.dedent('''
    import time
    from avala import Client

    client = Client()                                   # reads the three variables above
    project = client.projects.list().items[0]
    job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.6)
    while job.status in ("pending", "running"):
        time.sleep(1)
        job = client.auto_label_jobs.get(job.uid)
        print(f"{job.progress_pct}% ({job.processed_items}/{job.total_items})")
    print(job.successful_items, "labeled,", job.skipped_items, "skipped")
''')

MALFORMED = textwrap.dedent('''
    import os
    import httpx

    base, key = os.environ["AVALA_BASE_URL"], os.environ["AVALA_API_KEY"]
    with httpx.Client(base_url=base + "/", headers={"X-Avala-Api-Key": key}) as http:
        project = http.get("projects/").json()["results"][0]["uid"]
        # confidence_threshold must be a number in [0, 1]: this request breaks the contract
        r = http.post(f"projects/{project}/auto-label/", json={"model_type": "yolo", "confidence_threshold": "high"})
        print("answered", r.status_code)
''')


@pytest.fixture(scope="module")
def strict_server():
    with LiveServer(ServerConfig(manual_clock=True, strict=True, rate_limit=10**9)) as server:
        yield server


@pytest.fixture
def journal(strict_server, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    strict_server.reset()
    assert strict_server.http.delete("/_mock/violations/").status_code == 204
    return strict_server


def test_sdk_traffic_is_on_contract_and_counted(journal):
    with avala.Client(api_key=journal.api_key, base_url=journal.base_url) as client:
        project = client.projects.list(limit=5).items[0]
        job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.6)
        client.auto_label_jobs.get(job.uid)
        client.auto_label_jobs.list(limit=3)
    assert journal.control("GET", "violations")["violations"] == []
    cov = journal.control("GET", "coverage")
    assert cov["enabled"] is True and cov["operations"] == len(spec_operations())
    assert {"list_my_projects", "create_auto_label_job", "get_auto_label_job", "list_auto_label_jobs"} <= set(cov["counts"])
    assert cov["exercised"] == len(cov["counts"]) and "signup" in cov["not_exercised"]


def test_each_kind_of_off_contract_request_is_journaled(journal):
    key = {"X-Avala-Api-Key": journal.api_key}
    h = journal.http
    h.get("/api/v1/projects/", params={"limit": "many"}, headers=key)                       # query type
    h.get("/api/v1/projects/", params={"projcet": "x"}, headers=key)                        # unknown (typo) parameter
    uid = h.get("/api/v1/projects/", headers=key).json()["results"][0]["uid"]
    h.post(f"/api/v1/projects/{uid}/auto-label/", json={"model_type": "gpt-9"}, headers=key)  # body enum
    h.post(f"/api/v1/projects/{uid}/auto-label/", content=b"model_type=yolo", headers={**key, "Content-Type": "text/plain"})
    h.put("/api/v1/projects/", headers=key)                                                 # wrong method
    h.get("/api/v1/no-such-thing/", headers=key)                                            # unknown operation
    h.get("/api/v1/projects/")                                                              # no key
    found = journal.control("GET", "violations")["violations"]
    rules = [(v["rule"], v["operation_id"], v["field"]) for v in found]
    assert rules == [
        ("query-parameters", "list_projects", "limit"),
        ("query-parameters", "list_projects", "projcet"),
        ("request-body", "create_auto_label_job", "model_type"),
        ("content-type", "create_auto_label_job", None),
        ("method", None, None),
        ("unknown-operation", None, None),
        ("security", "list_projects", "X-Avala-Api-Key"),
    ]
    assert "gpt-9" in found[2]["detail"] or "yolo" in found[2]["detail"]
    assert "unknown query parameter 'projcet'" in found[1]["detail"]
    assert all(journal.api_key not in str(v) for v in found)


def test_the_mocks_own_planes_are_not_off_contract_and_placeholder_paths_tell_methods(journal):
    key = {"X-Avala-Api-Key": journal.api_key}
    h = journal.http
    assert h.get("/healthz").status_code == 200
    dataset = h.get("/api/v1/datasets/", headers=key).json()["results"][0]
    items = h.get(f"/api/v1/datasets/{dataset['owner_name']}/{dataset['slug']}/items/", params={"limit": 1}, headers=key)
    image = h.get(items.json()["results"][0]["url"])  # a media URL the client was handed
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    hook = h.post("/api/v1/webhooks/", json={"target_url": "http://127.0.0.1:9/h", "events": ["task.completed"]}, headers=key)
    assert h.put(f"/api/v1/webhooks/{hook.json()['uid']}/", json={}, headers=key).status_code == 405  # via the fallback
    found = journal.control("GET", "violations")["violations"]
    assert [(v["rule"], v["path"]) for v in found] == [("method", f"/api/v1/webhooks/{hook.json()['uid']}/")]


def test_not_strict_server_says_so(live):
    assert httpx.get(live.origin + "/_mock/violations/").json()["enabled"] is False


def _verify(tmp_path, script: str, *args: str, client_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    path = tmp_path / "client.py"
    path.write_text(script)
    cmd = [sys.executable, "-m", "avala_mock", "verify-client", *args, "--", sys.executable, str(path), *client_args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_verify_client_fails_and_names_the_request_and_rule(tmp_path):
    done = _verify(tmp_path, MALFORMED)
    assert done.returncode == 1, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "answered 400" in out
    assert "POST /api/v1/projects/" in out and "/auto-label/ (create_auto_label_job): request-body [confidence_threshold]" in out
    assert "confidence_threshold" in out and "1 off-contract request(s)" in out


def test_verify_client_passes_on_the_seed_quickstart(tmp_path):
    # brackets in the client's command line (pytest ids look like this) are echoed as text, not read as markup
    done = _verify(tmp_path, QUICKSTART, client_args=("tests/x.py::t[1-2]", "[/x]"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "labeled," in done.stdout and "PASSED" in done.stdout
    assert "client.py tests/x.py::t[1-2] [/x]" in " ".join(done.stdout.split())


def test_verify_client_min_coverage(tmp_path):
    done = _verify(tmp_path, QUICKSTART, "--min-coverage", "50")
    assert done.returncode == 1
    assert "< --min-coverage 50" in " ".join(done.stdout.split())


def test_serve_strict_exposes_the_journal(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "avala_mock", "serve", "--strict", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        base = None
        assert proc.stdout is not None
        for line in proc.stdout:  # the banner; ends when the server prints its URLs
            if "AVALA_BASE_URL=" in line:
                base = line.split("=", 1)[1].strip()
                break
        assert base, "no banner"
        origin = base.rsplit("/api/v1", 1)[0]
        httpx.get(base + "/projects/", params={"limit": -3}, headers={"X-Avala-Api-Key": "avk_mock_primary"})
        found = httpx.get(origin + "/_mock/violations/").json()
        assert found["enabled"] is True
        assert [(v["rule"], v["operation_id"]) for v in found["violations"]] == [("query-parameters", "list_projects")]
        assert httpx.get(origin + "/_mock/coverage/").json()["counts"] == {"list_projects": 1}
    finally:
        proc.terminate()
        proc.wait(10)
