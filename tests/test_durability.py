"""``--state-dir``: what a client was told is stored survives a restart and ``kill -9``; snapshots move
between processes; a torn log tail, a corrupt or foreign snapshot are handled, never half-applied."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from avala_mock.mock_server.state import STATE, ServerConfig
from avala_mock.mock_server.testing import LiveServer, ServeProcess
from avala_mock.simulators.commandlog import FileLog, frame
from helpers import HangingReceiver, held_delivery, until_delivered

KEY = {"X-Avala-Api-Key": "avk_mock_primary"}
PROBES = ["/projects/?limit=100", "/auto-label-jobs/?limit=100", "/webhooks/?limit=100", "/agents/?limit=100",
          "/webhook-deliveries/?limit=100", "/fleet/events/?limit=50", "/organizations/?limit=100", "/users/me/",
          "/datasets/?limit=100"]


def observe(base: str) -> list[bytes]:
    origin = base.rsplit("/api/", 1)[0].encode()
    with httpx.Client(base_url=base, headers=KEY, timeout=30) as c:
        return [c.get(p).content.replace(origin, b"ORIGIN") for p in PROBES]


def busy(c: httpx.Client, srv) -> dict:
    """Change a bit of everything; returns uids to look at afterwards."""
    projects = c.get("/projects/", params={"limit": 100}).json()["results"]
    job = c.post(f"/projects/{projects[1]['uid']}/auto-label/", json={"model_type": "sam3"}).json()
    hook = c.post("/webhooks/", json={"target_url": "https://example.com/hook", "events": ["*"]}).json()
    agent = c.post("/agents/", json={"name": "durable", "events": ["auto_label.completed"]}).json()
    org = c.post("/organizations/", json={"name": "Durable Org"}).json()
    srv.advance(120)
    rec = c.get("/fleet/recordings/", params={"limit": 5}).json()["results"][0]
    c.post("/fleet/events/", json={"recording": rec["uid"], "device": rec["device"], "label": "kept", "type": "info",
                                   "timestamp": "2026-01-05T09:00:00Z"})
    return {"job": job["uid"], "hook": hook, "agent": agent["uid"], "org": org["slug"]}


def test_a_restart_answers_every_get_as_before(tmp_path):
    config = ServerConfig(manual_clock=True, seed=3, state_dir=str(tmp_path))
    with LiveServer(config) as srv:
        with httpx.Client(base_url=srv.base_url, headers=KEY) as c:
            made = busy(c, srv)
        before, clock = observe(srv.base_url), srv.clock()
    with LiveServer(config) as srv:
        assert observe(srv.base_url) == before and srv.clock() == clock
        hook = httpx.get(f"{srv.base_url}/webhooks/{made['hook']['uid']}/", headers=KEY).json()
        assert hook["target_url"] == made["hook"]["target_url"]
        srv.advance(3600)  # and it keeps living: the job ends as it would have
        assert httpx.get(f"{srv.base_url}/auto-label-jobs/{made['job']}/", headers=KEY).json()["status"] == "completed"


def test_replaying_the_log_gives_the_same_state_as_living_it(tmp_path):
    """No checkpoint between the writes and the restart (the log is all there is after the first snapshot)."""
    config = ServerConfig(manual_clock=True, seed=3, state_dir=str(tmp_path), compact_every=10**6)
    with LiveServer(config) as srv:
        durability = srv.app[STATE].durability
        with httpx.Client(base_url=srv.base_url, headers=KEY) as c:
            busy(c, srv)
        before = observe(srv.base_url)
        durability.store._sync()
        durability.checkpoint = lambda: None  # stop as a crash would: no final snapshot
    with LiveServer(config) as srv:
        assert srv.app[STATE].durability.replayed > 5
        assert observe(srv.base_url) == before


def test_a_torn_last_record_is_dropped_and_the_rest_applies(tmp_path):
    config = ServerConfig(manual_clock=True, seed=3, state_dir=str(tmp_path), compact_every=10**6)
    with LiveServer(config) as srv:
        srv.app[STATE].durability.checkpoint = lambda: None
        with httpx.Client(base_url=srv.base_url, headers=KEY) as c:
            made = busy(c, srv)
        before = observe(srv.base_url)
    log = Path(tmp_path, "log.bin")
    torn = frame({"k": "op", "op": "create_agent", "n": 10**6})
    log.write_bytes(log.read_bytes() + torn[: len(torn) // 2])  # the process died mid-write
    with LiveServer(config) as srv:
        assert srv.app[STATE].durability.store.dropped_tail == len(torn) // 2
        assert observe(srv.base_url) == before
        assert httpx.get(f"{srv.base_url}/agents/{made['agent']}/", headers=KEY).status_code == 200


def test_a_snapshot_of_another_format_version_is_refused_clearly(tmp_path):
    Path(tmp_path, "snapshot.bin").write_bytes(b"AVALAMOCK-SNAPSHOT\x00\x01" + b"\x00" * 8 + b"junk")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "avala_mock", "serve", "--port", "0", "--state-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "snapshot format 1 is not this version's" in r.stderr and "Traceback" not in r.stderr


def _workload(base: str, acked: dict[str, list], stop: threading.Event, seed: int) -> None:
    """Mixed writes; every object whose 2xx arrived goes into ``acked``."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, headers=KEY, timeout=10) as c:
        projects = [p["uid"] for p in c.get("/projects/", params={"limit": 100}).json()["results"]]
        i = 0
        while not stop.is_set():
            i += 1
            try:
                kind = rng.choice(["hook", "agent", "org", "job", "upload", "clock"])
                if kind == "hook":
                    r = c.post("/webhooks/", json={"target_url": f"https://example.com/h{i}", "events": ["*"]})
                    if r.status_code == 201:
                        acked["hook"].append((r.json()["uid"], r.json()["target_url"]))
                elif kind == "agent":
                    r = c.post("/agents/", json={"name": f"agent-{i}", "events": ["auto_label.completed"]})
                    if r.status_code == 201:
                        acked["agent"].append((r.json()["uid"], f"agent-{i}"))
                elif kind == "org":
                    r = c.post("/organizations/", json={"name": f"Org {seed} {i}"})
                    if r.status_code == 201:
                        acked["org"].append((r.json()["slug"], f"Org {seed} {i}"))
                elif kind == "job":
                    r = c.post(f"/projects/{rng.choice(projects)}/auto-label/", json={"dry_run": rng.random() < 0.5})
                    if r.status_code == 202:
                        acked["job"].append((r.json()["uid"], r.json()["dry_run"]))
                elif kind == "upload":
                    data = rng.randbytes(64)
                    d = c.post("/datasets/manual-upload/file-upload-url/",
                               json={"dataset_name": f"Up {seed}", "file_path_in_dataset": f"f{i}.bin", "content_length": 64}).json()
                    r = httpx.post(d["url"], data=d["fields"], files={"file": ("f.bin", data, "application/octet-stream")}, timeout=10)
                    if r.status_code == 204:
                        acked["upload"].append((d["fields"]["key"], data))
                else:
                    httpx.post(base.rsplit("/api/", 1)[0] + "/_mock/clock/advance/", json={"seconds": 5}, timeout=10)
            except httpx.HTTPError:  # the server was killed mid-request: that request was not acknowledged
                return


def _lost(base: str, acked: dict[str, list]) -> list[str]:
    origin = base.rsplit("/api/", 1)[0]
    lost = []
    with httpx.Client(base_url=base, headers=KEY, timeout=30) as c:
        for uid, url in acked["hook"]:
            r = c.get(f"/webhooks/{uid}/")
            lost += [] if r.status_code == 200 and r.json()["target_url"] == url else [f"webhook {uid}"]
        for uid, name in acked["agent"]:
            r = c.get(f"/agents/{uid}/")
            lost += [] if r.status_code == 200 and r.json()["name"] == name else [f"agent {uid}"]
        for slug, name in acked["org"]:
            r = c.get(f"/organizations/{slug}/")
            lost += [] if r.status_code == 200 and r.json()["name"] == name else [f"organization {slug}"]
        for uid, dry in acked["job"]:
            r = c.get(f"/auto-label-jobs/{uid}/")
            lost += [] if r.status_code == 200 and r.json()["dry_run"] == dry else [f"job {uid}"]
        for key, data in acked["upload"]:
            r = httpx.get(f"{origin}/_storage/{key}", headers=KEY, timeout=30)
            lost += [] if r.status_code == 200 and r.content == data else [f"upload {key}"]
    return lost


@pytest.mark.parametrize("fsync", ["batch", "never"])
def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path, fsync):
    rng = random.Random(fsync)
    args = ("--manual-clock", "--rate-limit", "1000000000", "--state-dir", str(tmp_path), "--fsync", fsync,
            "--compact-every", "200")
    acked: dict[str, list] = {k: [] for k in ("hook", "agent", "org", "job", "upload")}
    for round_ in range(3):
        with ServeProcess(*args) as server:
            stop = threading.Event()
            worker = threading.Thread(target=_workload, args=(server.base_url, acked, stop, round_))
            worker.start()
            time.sleep(rng.uniform(0.5, 2.0))
            server.proc.kill()  # SIGKILL: no shutdown, no final snapshot
            server.proc.wait(10)
            stop.set()
            worker.join(30)
    with ServeProcess(*args) as server:
        total = sum(len(v) for v in acked.values())
        lost = _lost(server.base_url, acked)
        print(f"\nkill -9 x3 ({fsync}): {total} acknowledged writes, {len(lost)} lost")
        assert total > 20 and lost == []


def test_a_running_job_continues_where_the_virtual_clock_says(tmp_path):
    args = ("--time-scale", "100", "--state-dir", str(tmp_path))
    with ServeProcess(*args) as server:
        with httpx.Client(base_url=server.base_url, headers=KEY) as c:
            project = c.get("/projects/", params={"limit": 100}).json()["results"][2]["uid"]
            job = c.post(f"/projects/{project}/auto-label/", json={}).json()["uid"]
            time.sleep(0.3)
            seen = c.get(f"/auto-label-jobs/{job}/").json()
        server.proc.kill()
        server.proc.wait(10)
    down_since = time.monotonic()
    time.sleep(0.5)
    with ServeProcess(*args) as server:
        with httpx.Client(base_url=server.base_url, headers=KEY) as c:
            now = c.get(f"/auto-label-jobs/{job}/").json()
            assert now["processed_items"] >= seen["processed_items"]  # never back
            # it kept running while the process was down: at x100, half a second is ~1,000 items
            assert now["status"] == "completed" or now["processed_items"] > seen["processed_items"]
            deadline = time.monotonic() + 60
            while c.get(f"/auto-label-jobs/{job}/").json()["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert time.monotonic() - down_since < 60


def test_a_snapshot_saved_from_one_process_loads_into_another(tmp_path):
    from click.testing import CliRunner

    from avala_mock.__main__ import main

    with ServeProcess("--manual-clock", "--seed", "11") as a, ServeProcess("--manual-clock", "--seed", "99") as b:
        with httpx.Client(base_url=a.base_url, headers=KEY) as c:
            made = busy(c, a)
        before = observe(a.base_url)
        assert observe(b.base_url) != before
        path = tmp_path / "state.json"
        out = CliRunner().invoke(main, ["snapshot", "save", str(path), "--url", a.origin])
        assert out.exit_code == 0, out.output
        out = CliRunner().invoke(main, ["snapshot", "load", str(path), "--url", b.origin])
        assert out.exit_code == 0, out.output
        assert observe(b.base_url) == before
        hook_b = httpx.get(f"{b.base_url}/webhooks/{made['hook']['uid']}/", headers=KEY).json()
        assert hook_b["target_url"] == made["hook"]["target_url"]
        out = CliRunner().invoke(main, ["snapshot", "load", str(tmp_path / "nope.json"), "--url", b.origin])
        assert out.exit_code != 0


def test_shared_snapshots_leave_secrets_out_unless_asked(mock):
    hook = mock.http.post("/api/v1/webhooks/", headers=KEY, json={"target_url": "https://example.com/s", "events": ["*"]}).json()
    plain = mock.http.get("/_mock/snapshot/").json()
    full = mock.http.get("/_mock/snapshot/", params={"include_secrets": "true"}).json()
    import base64
    import zlib

    def raw(doc: dict) -> bytes:
        return zlib.decompress(base64.b64decode(doc["data"]))

    assert plain["secrets"] is False and hook["secret"].encode() not in raw(plain)
    assert full["secrets"] is True and hook["secret"].encode() in raw(full)
    assert b"avk_mock_primary" not in raw(plain) and b"avk_mock_secondary" not in raw(plain)
    restored = mock.http.post("/_mock/snapshot/restore/", json=plain)
    assert restored.status_code == 200
    assert mock.http.get("/api/v1/users/me/", headers=KEY).status_code == 200  # keys are kept as digests


def test_the_log_store_numbers_records_and_skips_what_a_snapshot_holds(tmp_path):
    store = FileLog(tmp_path, "always")
    store.read()
    assert [store.append({"k": "x", "i": i}) for i in range(3)] == [0, 1, 2]
    store.checkpoint(b"state", 2)  # the state includes records 0 and 1
    store.append({"k": "x", "i": 3})
    store.close()
    again = FileLog(tmp_path, "never")
    snap, records = again.read()
    assert snap == b"state" and [r["i"] for r in records] == [2, 3] and again.position() == 4
    again.close()


def test_agent_callbacks_are_not_sent_again_after_a_crash(tmp_path, webhook_receiver):
    """Callbacks are best effort and never answered into the log: replaying it after ``kill -9`` must not take
    every callback since the last snapshot for a send still in flight (webhook deliveries in flight are re-sent)."""
    args = ("--manual-clock", "--seed", "3", "--state-dir", str(tmp_path), "--compact-every", "1000000")
    with ServeProcess(*args) as server:
        with httpx.Client(base_url=server.base_url, headers=KEY, timeout=30) as c:
            project = c.get("/projects/", params={"limit": 100}).json()["results"][1]["uid"]
            c.post("/agents/", json={"name": "cb", "events": ["auto_label.completed"], "callback_url": webhook_receiver.url})
            c.post(f"/projects/{project}/auto-label/", json={"model_type": "yolo"})
            server.advance(3600)
        assert len(webhook_receiver.wait_for("auto_label.completed", timeout=20)) == 1
        server.proc.kill()  # SIGKILL: no final snapshot, so the restart replays the drain that made the callback
        server.proc.wait(10)
    with ServeProcess(*args) as server:
        with httpx.Client(base_url=server.base_url, headers=KEY, timeout=30) as c:
            hook = c.post("/webhooks/", json={"target_url": webhook_receiver.url, "events": ["task.completed"]}).json()
            c.post(f"/webhooks/{hook['uid']}/test/")  # something to drain after the restart
            webhook_receiver.wait_for("webhook.test", timeout=20)
            server.advance(60)
            time.sleep(0.5)  # a re-sent callback would be on its way by now (nothing to poll for: it must not come)
    assert len(webhook_receiver.events("auto_label.completed")) == 1


def test_a_delivery_on_its_way_at_a_stop_is_sent_after_the_restart(tmp_path):
    """The stop's snapshot holds the world after the drain: the send in flight (drained, never answered) must
    be in it, not only in log records after it — else the delivery stays pending for ever."""
    receiver = HangingReceiver()
    args = ("--manual-clock", "--seed", "3", "--state-dir", str(tmp_path))
    try:
        with ServeProcess(*args) as server:
            with httpx.Client(base_url=server.base_url, headers=KEY, timeout=30) as c:
                delivery = held_delivery(c, receiver)
        # stopped (SIGTERM): the POST was cancelled unanswered and the stop wrote a snapshot
        with ServeProcess(*args) as server:
            with httpx.Client(base_url=server.base_url, headers=KEY, timeout=30) as c:
                d = until_delivered(c, delivery)
        assert receiver.deliveries == [delivery, delivery] and d["attempts"] == 1
    finally:
        receiver.close()


def test_a_snapshot_taken_while_a_delivery_was_on_its_way_sends_it_when_restored():
    receiver = HangingReceiver()
    try:
        with LiveServer(ServerConfig(manual_clock=True, seed=3)) as server:
            with httpx.Client(base_url=server.base_url, headers=KEY, timeout=30) as c:
                delivery = held_delivery(c, receiver)
                saved = server.control("GET", "snapshot", params={"include_secrets": "true"})
                server.control("POST", "reset", {})
                assert c.get(f"/webhook-deliveries/{delivery}/").status_code == 404
                server.control("POST", "snapshot/restore", saved)
                d = until_delivered(c, delivery)
        assert receiver.deliveries == [delivery, delivery] and d["attempts"] == 1
    finally:
        receiver.close()
