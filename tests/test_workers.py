"""Workers sharing one world through a real Redis (Debian's ``redis-server``, started here on a free port and
stopped by its PID): read-your-writes across workers, one auto-label job per project under concurrent
creates, one virtual clock, stable pagination, a worker killed mid-run loses nothing acknowledged, and the
shared log stays bounded (a worker that fell behind its trim reloads the snapshot)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import avala
import httpx
import pytest

from avala_mock.mock_server.testing import ServeProcess
from helpers import HangingReceiver, held_delivery, until_delivered

REDIS = shutil.which("redis-server")
KEY = {"X-Avala-Api-Key": "avk_mock_primary"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url() -> Iterator[str]:
    if REDIS is None:
        if os.environ.get("AVALA_MOCK_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
        pytest.skip("redis-server is not installed (apt-get install redis-server); .ci/run installs it and runs this")
    port = _free_port()
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _workers(redis_url: str, n: int, *extra: str) -> list[ServeProcess]:
    return [ServeProcess("--redis", redis_url, "--manual-clock", "--rate-limit", "100000000", *extra).start() for _ in range(n)]


def test_workers_share_writes_jobs_clock_and_pages(redis_url):
    workers = _workers(redis_url, 3)
    try:
        clients = [httpx.Client(base_url=w.base_url + "/", headers=KEY, timeout=30) for w in workers]
        a, b, c = clients
        # read-your-writes: made on one worker, seen on the next request to any other
        made = [a.post("agents/", json={"name": f"shared-{i}", "events": ["task.completed"]}).json()["uid"] for i in range(5)]
        for other in (b, c):
            names = {x["uid"] for x in other.get("agents/", params={"limit": 100}).json()["results"]}
            assert set(made) <= names
        assert b.get(f"agents/{made[0]}/").json()["name"] == "shared-0"
        # one job per project: 9 concurrent creates spread over the 3 workers -> exactly one 202
        project = a.get("projects/", params={"limit": 1}).json()["results"][0]["uid"]
        with ThreadPoolExecutor(9) as pool:
            codes = list(pool.map(lambda i: clients[i % 3].post(f"projects/{project}/auto-label/", json={}).status_code, range(9)))
        assert sorted(codes) == [202] + [409] * 8, codes
        # one clock: advanced through one worker's control API, every worker reports the same job state
        job = c.get("auto-label-jobs/", params={"project": project}).json()["results"][0]["uid"]
        httpx.post(workers[1].origin + "/_mock/clock/advance/", json={"seconds": 45})
        seen = {(x.get(f"auto-label-jobs/{job}/").json()["processed_items"], x.get(f"auto-label-jobs/{job}/").json()["status"]) for x in clients}
        assert len(seen) == 1 and next(iter(seen))[0] > 0
        # stable pagination: walking the same list through different workers gives the same pages
        page1 = a.get("agents/", params={"limit": 3}).json()
        page2_b = b.get(page1["next"].split("/api/v1/", 1)[1]).json()
        page2_c = c.get(page1["next"].split("/api/v1/", 1)[1]).json()
        assert page2_b["results"] == page2_c["results"]
        # uploads and webhooks through different workers
        hook = b.post("webhooks/", json={"target_url": "https://example.com/h", "events": ["auto_label.completed"]}).json()
        assert c.get(f"webhooks/{hook['uid']}/").status_code == 200
        org = a.post("organizations/", json={"name": "Shared Org"}).json()
        assert c.get(f"organizations/{org['slug']}/").json()["uid"] == org["uid"]
        # an upload: presigned on one worker, its bytes PUT to that worker's storage plane, completed on another
        grant = a.post("datasets/manual-upload/file-upload-url/", json={
            "dataset_name": "Shared Uploads", "file_path_in_dataset": "a/one.jpg", "content_length": 5,
            "upload_protocol_version": 2, "dataset_upload_uid": "0b5f3c8e-2a41-4d7e-9c1a-5e6f7a8b9c0d"}).json()
        put = httpx.request(grant["method"], grant["url"], content=b"12345", headers=grant.get("headers") or {}) \
            if grant["method"] == "PUT" else httpx.post(grant["url"], data=grant["fields"], files={"file": ("one.jpg", b"12345")})
        assert put.status_code < 300, put.text
        done = b.post(f"datasets/manual-upload/uploads/{grant['upload_uid']}/complete/", json={})
        assert done.status_code == 200 and done.json()["complete"], done.text
        for x in clients:
            x.close()
    finally:
        for w in workers:
            w.stop()


def test_a_killed_worker_loses_nothing_acknowledged(redis_url):
    first, second = _workers(redis_url, 2)
    try:
        acked = []
        with httpx.Client(base_url=first.base_url + "/", headers=KEY, timeout=30) as a:
            for i in range(20):
                r = a.post("agents/", json={"name": f"before-kill-{i}", "events": ["task.completed"]})
                assert r.status_code == 201
                acked.append(r.json()["uid"])
        first.proc.kill()  # SIGKILL: no clean shutdown, no snapshot
        first.proc.wait(timeout=10)
        with httpx.Client(base_url=second.base_url + "/", headers=KEY, timeout=30) as b:
            listed = {x["uid"] for x in b.get("agents/", params={"limit": 100}).json()["results"]}
            assert set(acked) <= listed
            assert b.post("agents/", json={"name": "after-kill", "events": ["task.completed"]}).status_code == 201
        third = _workers(redis_url, 1)[0]  # a worker joining later starts from the shared world
        try:
            with httpx.Client(base_url=third.base_url + "/", headers=KEY, timeout=30) as c:
                names = {x["name"] for x in c.get("agents/", params={"limit": 100}).json()["results"]}
                assert {"after-kill", "before-kill-0", "before-kill-19"} <= names
        finally:
            third.stop()
    finally:
        first.stop()
        second.stop()


def test_the_shared_log_is_trimmed_and_a_worker_behind_the_trim_reloads(redis_url):
    import redis

    first, paused = _workers(redis_url, 2, "--compact-every", "100")
    r = redis.Redis.from_url(redis_url)
    try:
        with httpx.Client(base_url=first.base_url + "/", headers=KEY, timeout=30) as a:
            made = [a.post("webhooks/", json={"target_url": f"https://example.com/{i}", "events": ["task.completed"]}).json()["uid"]
                    for i in range(5)]
            os.kill(paused.proc.pid, signal.SIGSTOP)  # cannot follow the log while 250 writes go by
            try:
                for i in range(250):
                    assert a.post("agents/", json={"name": f"trim-{i}", "events": ["task.completed"]}).status_code == 201
            finally:
                os.kill(paused.proc.pid, signal.SIGCONT)
            assert r.xlen("avala-mock:log") <= 101  # trimmed at every 100th record; the newest entry stays
            assert int(r.get("avala-mock:upto")) >= 200
        with httpx.Client(base_url=paused.base_url + "/", headers=KEY, timeout=30) as b:
            names = {x["name"] for x in b.get("agents/", params={"limit": 1000}).json()["results"]}
            assert {f"trim-{i}" for i in range(250)} <= names  # reloaded from the snapshot, then the rest
            health = httpx.get(paused.origin + "/healthz").json()["replication"]
            assert health["reloads"] == 1 and health["applied_records"] >= 255
        sdk = avala.Client(api_key=KEY["X-Avala-Api-Key"], base_url=paused.base_url)  # the official SDK, paging
        try:
            assert {f"trim-{i}" for i in range(250)} <= {a.name for a in sdk.agents.list(limit=1000)}
        finally:
            sdk.close()
        with httpx.Client(base_url=paused.base_url + "/", headers=KEY, timeout=30) as b:
            assert b.get(f"webhooks/{made[4]}/").status_code == 200
            assert b.post("agents/", json={"name": "after-reload", "events": ["task.completed"]}).status_code == 201
        with httpx.Client(base_url=first.base_url + "/", headers=KEY, timeout=30) as a:
            assert any(x["name"] == "after-reload" for x in a.get("agents/", params={"limit": 1000}).json()["results"])
            assert httpx.get(first.origin + "/healthz").json()["replication"]["reloads"] == 0
    finally:
        r.close()
        first.stop()
        paused.stop()


@pytest.mark.parametrize("writes_after", [0, 120], ids=["from-the-log", "from-a-snapshot"])
def test_a_send_in_flight_on_a_killed_worker_is_made_by_a_survivor(redis_url, writes_after):
    """With ``writes_after`` writes between the send and the second worker's start, a checkpoint (every 100
    records) trims the drain record away: the joining worker learns of the send from the snapshot's world."""
    receiver = HangingReceiver()
    first = _workers(redis_url, 1, "--compact-every", "100")[0]
    second = None
    try:
        with httpx.Client(base_url=first.base_url + "/", headers=KEY, timeout=30) as a:
            delivery = held_delivery(a, receiver)  # the first worker is sending it (and the receiver holds on)
            for i in range(writes_after):
                assert a.post("organizations/", json={"name": f"Filler {i}"}).status_code == 201
        upto = httpx.get(first.origin + "/healthz").json()["replication"]["snapshot_upto"]
        assert (upto >= 100) == bool(writes_after), upto  # the drain record (the third) is behind the snapshot
        second = _workers(redis_url, 1)[0]  # joins while the send is in flight: knows it, and whose it is
        first.proc.kill()
        first.proc.wait(timeout=10)
        with httpx.Client(base_url=second.base_url + "/", headers=KEY, timeout=30) as b:
            d = until_delivered(b, delivery)  # taken over once the dead worker's heartbeat expires (3 s)
            assert d["attempts"] == 1 and d["response_status"] == 200
        assert receiver.deliveries == [delivery, delivery]  # sent again, once
        assert httpx.get(second.origin + "/healthz").json()["replication"]["sends_taken_over"] == 1
    finally:
        receiver.close()
        first.stop()
        if second is not None:
            second.stop()


def test_a_reset_on_one_worker_is_the_world_of_every_worker(redis_url):
    a_srv, b_srv = _workers(redis_url, 2)
    try:
        with httpx.Client(base_url=a_srv.base_url + "/", headers=KEY, timeout=30) as a, \
                httpx.Client(base_url=b_srv.base_url + "/", headers=KEY, timeout=30) as b:
            before = {x["uid"] for x in b.get("agents/", params={"limit": 100}).json()["results"]}
            gone = a.post("agents/", json={"name": "before-reset", "events": ["task.completed"]}).json()["uid"]
            assert gone in {x["uid"] for x in b.get("agents/", params={"limit": 100}).json()["results"]}
            assert httpx.post(b_srv.origin + "/_mock/reset/", json={}).status_code == 200
            assert {x["uid"] for x in a.get("agents/", params={"limit": 100}).json()["results"]} == before
            made = a.post("agents/", json={"name": "after-reset", "events": ["task.completed"]}).json()["uid"]
            assert b.get(f"agents/{made}/").json()["name"] == "after-reset"
    finally:
        a_srv.stop()
        b_srv.stop()
