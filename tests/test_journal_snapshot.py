"""The request journal (every Avala request, bounded, filterable) and whole-state snapshot/restore:
snapshot -> mutate -> restore answers byte-identically to before the mutation."""

from __future__ import annotations

import httpx
import pytest

from avala_mock.mock_server.journal import Journal
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer


@pytest.fixture(scope="module")
def server():
    with LiveServer(ServerConfig(manual_clock=True, seed=4, journal_size=50)) as s:
        yield s


@pytest.fixture
def srv(server):
    server.reset()
    return server


@pytest.fixture
def api(srv):
    with httpx.Client(base_url=srv.base_url, headers={"X-Avala-Api-Key": srv.api_key}, timeout=10) as c:
        yield c


def entries(srv, **params):
    return srv.control("GET", "journal", params=params)


def test_journal_records_every_request_with_its_outcome(srv, api):
    api.get("/projects/")
    api.get("/projects/missing/")
    httpx.get(srv.base_url + "/projects/")  # no key
    srv.control("PUT", "faults", json={"rules": [{"match": "list_datasets", "kind": "http_503"}]})
    api.get("/datasets/")
    got = entries(srv)["entries"]
    assert [(e["method"], e["path"], e["operation_id"], e["status"], e["fault"]) for e in got] == [
        ("GET", "/api/v1/projects/", "list_projects", 200, None),
        ("GET", "/api/v1/projects/missing/", "get_project", 404, None),
        ("GET", "/api/v1/projects/", "list_projects", 401, None),
        ("GET", "/api/v1/datasets/", "list_datasets", 503, "http_503"),
    ]
    assert all(e["latency_ms"] >= 0 and e["seq"] for e in got)
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)


def test_journal_filters(srv, api):
    api.get("/projects/")
    api.get("/projects/missing/")
    api.post("/datasets/", content=b"{", headers={"Content-Type": "application/json"})
    assert [e["status"] for e in entries(srv, status=404)["entries"]] == [404]
    assert [e["operation_id"] for e in entries(srv, operation_id="get_*")["entries"]] == ["get_project"]
    assert [e["method"] for e in entries(srv, method="post")["entries"]] == ["POST"]
    assert len(entries(srv, path="/api/v1/projects/*")["entries"]) == 2
    assert entries(srv, fault="any")["entries"] == [] and len(entries(srv, fault="none")["entries"]) == 3
    first = entries(srv)["entries"][0]["seq"]
    assert len(entries(srv, since=first)["entries"]) == 2
    assert len(entries(srv, limit=1)["entries"]) == 1
    assert srv.http.get("/_mock/journal/", params={"limit": 0}).status_code == 400
    srv.http.delete("/_mock/journal/")
    assert entries(srv)["held"] == 0


def test_journal_is_bounded_oldest_dropped(srv, api):
    for _ in range(80):
        api.get("/projects/")
    got = entries(srv, limit=1000)
    assert got["size"] == 50 and got["held"] == 50 and got["total"] == 80
    seqs = [e["seq"] for e in got["entries"]]
    assert seqs == list(range(seqs[0], seqs[0] + 50)) and seqs[-1] - seqs[0] == 49


def test_journal_never_holds_query_strings_or_keys():
    journal = Journal(3)
    for i in range(10):
        journal.record("GET", f"/p/{i}", None, 200, 0.001)
    assert len(journal) == 3 and [e["path"] for e in journal.query()] == ["/p/7", "/p/8", "/p/9"]


PROBES = ("/projects/", "/datasets/", "/auto-label-jobs/", "/users/me/")


def observe(api: httpx.Client, extra: list[str]) -> list[bytes]:
    return [api.get(p).content for p in (*PROBES, *extra)]


def test_snapshot_mutate_restore_answers_byte_identically(srv, api):
    projects = api.get("/projects/", params={"limit": 100}).json()["results"]
    uid = next(p["uid"] for p in projects if p["name"] == "Transit Vehicles")
    job = api.post(f"/projects/{uid}/auto-label/", json={"model_type": "yolo"}).json()
    srv.advance(3)
    srv.control("PUT", "latency", json={"rules": [{"match": "get_user_me", "distribution": "fixed", "ms": 1}]})
    extra = [f"/auto-label-jobs/{job['uid']}/", f"/projects/{uid}/"]
    before = observe(api, extra)
    clock_before = srv.clock()
    snap = srv.control("GET", "snapshot")
    assert snap["format"] == "avala-mock-snapshot/2" and snap["size"] > 0 and snap["secrets"] is False

    # Mutate: time moves, the job finishes and writes drafts, a dataset and a job are created, rules change.
    srv.advance(600)
    assert api.post("/datasets/", json={"name": "Later", "slug": "later", "data_type": "image"}).status_code in (200, 201)
    other = next(p["uid"] for p in projects if p["name"] == "Signage Audit")
    api.post(f"/projects/{other}/auto-label/", json={"model_type": "yolo"})
    srv.control("DELETE", "latency")
    assert observe(api, extra) != before

    restored = srv.control("POST", "snapshot/restore", json=snap)
    assert restored["seed"] == 4
    assert srv.clock() == clock_before
    assert observe(api, extra) == before
    assert srv.control("GET", "latency")["rules"][0]["match"] == "get_user_me"
    # ... and the restored world keeps living: the clock moves the job on as it did the first time.
    srv.advance(600)
    assert api.get(f"/auto-label-jobs/{job['uid']}/").json()["status"] == "completed"


def test_restore_rejects_corrupt_foreign_or_altered_snapshots_and_loads_nothing(srv, api):
    snap = srv.control("GET", "snapshot")
    before = observe(api, [])
    for bad, why in (({**snap, "sha256": "0" * 64}, "does not match its sha256"),
                     ({**snap, "data": snap["data"][:-8] + "AAAAAAA="}, "sha256"),
                     ({**snap, "format": "avala-mock-snapshot/1"}, "not this version's"),
                     ({**snap, "format": "other"}, "not a snapshot"),
                     ({"format": "avala-mock-snapshot/2", "sha256": "x", "data": "!!"}, "not base64")):
        r = srv.http.post("/_mock/snapshot/restore/", json=bad)
        assert r.status_code == 400 and why in r.json()["detail"], r.text
    assert observe(api, []) == before
