"""A shared or exposed mock: the control API's doors, connection hygiene, secrets nobody can derive,
where deliveries may go, and what long runs keep."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from avala_mock.mock_server.state import STATE, ServerConfig
from avala_mock.mock_server.testing import ControlError, LiveServer, ServeProcess
from avala_mock.simulators import agents, webhooks

KEY = {"X-Avala-Api-Key": "avk_mock_primary"}


def control(origin: str, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{origin}/_mock/{path}/", timeout=30, **kwargs)


# 3. the control plane ---------------------------------------------------------------------------------------


def test_off_loopback_the_control_api_needs_the_printed_token():
    with ServeProcess("--host", "0.0.0.0", "--manual-clock") as server:
        assert "WARNING: listening on every interface (0.0.0.0:" in server.text
        token = next(line.split(": ", 1)[1].split()[0] for line in server.output if "control token (shown once)" in line)
        assert control(server.origin, "GET", "clock").status_code == 401
        assert control(server.origin, "POST", "reset", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 403
        ok = control(server.origin, "GET", "clock", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and token not in ok.text
        assert control(server.origin, "GET", "clock", headers={"X-Avala-Mock-Token": token}).status_code == 200
        assert httpx.get(server.base_url + "/users/me/", headers=KEY).status_code == 200  # the Avala API itself


def test_a_given_token_is_required_on_loopback_too():
    with LiveServer(ServerConfig(manual_clock=True, control_token="s3cret-token")) as srv:
        assert control(srv.origin, "GET", "world").status_code == 401
        assert srv.clock()["mode"] == "manual"  # the handle sends its token


def test_loopback_control_is_host_checked_and_json_only(mock):
    assert control(mock.origin, "GET", "clock", headers={"Host": "attacker.example"}).status_code == 403
    assert control(mock.origin, "GET", "clock", headers={"Host": "localhost:1234"}).status_code == 200
    r = control(mock.origin, "POST", "reset", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.json()["detail"]
    r = control(mock.origin, "POST", "reset", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_world_files_load_only_from_data_dirs_and_are_never_quoted(tmp_path: Path):
    secret = tmp_path / "outside" / "credentials.yaml"
    secret.parent.mkdir()
    secret.write_text("password: hunter2-very-secret\nprivate_key: -----BEGIN KEY-----\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.yaml").write_text("organizations: {slug: hunter3-leak}\n")
    (data / "latin1.yaml").write_bytes("name: caf\xe9 hunter4\n".encode("latin-1"))
    (data / "broken.yaml").write_text("organizations: [\n  - slug: hunter5\n    : : :\n")
    with LiveServer(ServerConfig(manual_clock=True, data_dirs=[str(data)])) as srv:
        for ref in (str(secret), "/etc/passwd", "../outside/credentials.yaml", "bad.yaml", "latin1.yaml", "broken.yaml"):
            r = srv.http.post("/_mock/world/load/", json={"world": ref})
            assert r.status_code == 400, (ref, r.text)
            assert "hunter" not in r.text and "root:" not in r.text and "BEGIN" not in r.text, r.text
        assert "not UTF-8" in srv.http.post("/_mock/world/load/", json={"world": "latin1.yaml"}).json()["detail"]
        assert "not valid YAML at line 2, column 3" in srv.http.post("/_mock/world/load/", json={"world": "broken.yaml"}).json()["detail"]
        r = srv.http.post("/_mock/scenario/", json={"scenario": {"name": "x", "world": str(secret)}})
        assert r.status_code == 400 and "hunter" not in r.text
        assert srv.http.post("/_mock/world/load/", json={"world": "default"}).status_code == 200


def test_world_file_errors_on_the_command_line(tmp_path: Path):
    import subprocess
    import sys

    dup = tmp_path / "dup.yaml"
    dup.write_text("organizations:\n  - {slug: a, api_key: avk_same_key1}\n  - {slug: b, api_key: avk_same_key1}\n")
    twice = tmp_path / "twice.yaml"
    twice.write_text("organizations:\n  - {slug: a, api_key: avk_one_key11}\n  - {slug: a, api_key: avk_two_key22}\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("organizations: caf\xe9\n".encode("latin-1"))
    for path, words in ((dup, "api_key repeats"), (twice, "slug repeats"), (latin, "not UTF-8")):
        r = subprocess.run([sys.executable, "-m", "avala_mock", "serve", "--port", "0", "--world", str(path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


# 7. connection hygiene ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight() -> LiveServer:
    with LiveServer(ServerConfig(manual_clock=True, idle_timeout=1.0, body_timeout=1.0, max_connections=8)) as srv:
        yield srv


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return data + b"<closed>"
        data += chunk
    return data


def test_slow_headers_are_cut_off(tight):
    port = int(tight.origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /api/v1/users/me/ HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        assert _closed_within(s, 10).endswith(b"<closed>")


def test_a_body_that_never_arrives_is_408(tight):
    port = int(tight.origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/v1/agents/ HTTP/1.1\r\nHost: x\r\nX-Avala-Api-Key: avk_mock_primary\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\"")
        answer = _closed_within(s, 10)
    assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"did not arrive" in answer


def test_past_the_connection_cap_new_connections_get_503_and_the_rest_keep_working(tight):
    port = int(tight.origin.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        time.sleep(0.2)  # let the server accept them
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            answer = _closed_within(extra, 5)
        assert answer.startswith(b"HTTP/1.1 503") and b"Too many open connections" in answer
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the slots free up as the server sees the closes
        try:
            if httpx.get(tight.base_url + "/users/me/", headers=KEY, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("the server did not serve again after the idle connections closed")


# 10. secrets ----------------------------------------------------------------------------------------------------


def _signed_upload_url(srv: LiveServer) -> str:
    r = srv.http.post("/api/v1/datasets/manual-upload/file-upload-url/", headers=KEY,
                      json={"dataset_name": "Forge", "file_path_in_dataset": "a.png", "content_length": 4})
    assert r.status_code == 200, r.text
    return orjson.dumps(r.json()).decode()  # the whole answer: URL, fields and signature


def test_storage_signatures_are_not_derivable_from_the_seed():
    with LiveServer(ServerConfig(manual_clock=True, seed=5)) as a, LiveServer(ServerConfig(manual_clock=True, seed=5)) as b:
        ua, ub = _signed_upload_url(a), _signed_upload_url(b)
    strip = lambda u: u.split("://", 1)[1].split("/", 1)[1]  # noqa: E731 — the ports differ
    assert strip(ua) != strip(ub)
    with LiveServer(ServerConfig(manual_clock=True, seed=5, deterministic_secrets=True)) as a, \
            LiveServer(ServerConfig(manual_clock=True, seed=5, deterministic_secrets=True)) as b:
        assert strip(_signed_upload_url(a)) == strip(_signed_upload_url(b))


def test_webhook_secrets_differ_between_runs_of_the_same_seed():
    with LiveServer(ServerConfig(manual_clock=True, seed=5)) as a, LiveServer(ServerConfig(manual_clock=True, seed=5)) as b:
        made = [s.http.post("/api/v1/webhooks/", headers=KEY, json={"target_url": "https://example.com/h", "events": ["*"]}).json()
                for s in (a, b)]
    assert made[0]["uid"] == made[1]["uid"] and made[0]["secret"] != made[1]["secret"]


# 11. outbound requests ---------------------------------------------------------------------------------------------


def _deliveries(srv: LiveServer, hook: str) -> list[dict]:
    srv.advance(1)
    found = srv.http.get("/api/v1/webhook-deliveries/", headers=KEY, params={"limit": 100}).json()["results"]
    return [d for d in found if d["subscription"] == hook]


def _wait_delivery(srv: LiveServer, hook: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [d for d in _deliveries(srv, hook) if d["attempts"] or d["status"] != "pending"]
        if done:
            return done[0]
        time.sleep(0.05)
    raise AssertionError("no delivery attempt was recorded")


@pytest.mark.parametrize("target, reason", [
    ("http://10.20.30.40:9/hook", "private address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local address"),
    ("http://[fd00::1]:9/hook", "private address"),
    ("SELF", "this avala-mock server itself"),
])
def test_deliveries_never_reach_private_ranges_or_the_mock_itself(mock, target, reason):
    url = mock.origin + "/_mock/reset/" if target == "SELF" else target
    hook = mock.http.post("/api/v1/webhooks/", headers=KEY, json={"target_url": url, "events": ["webhook.test"]}).json()
    mock.http.post(f"/api/v1/webhooks/{hook['uid']}/test/", headers=KEY, json={})
    delivery = _wait_delivery(mock, hook["uid"])
    assert delivery["status"] in ("failed", "pending") and reason in (delivery["response_body"] or ""), delivery
    assert delivery["response_status"] is None


def test_an_allow_list_limits_deliveries_to_its_targets(webhook_receiver):
    port = int(webhook_receiver.url.rsplit(":", 1)[1].split("/", 1)[0])
    with LiveServer(ServerConfig(manual_clock=True, outbound_allow=["127.0.0.1/32"])) as srv:
        ok = srv.http.post("/api/v1/webhooks/", headers=KEY, json={"target_url": webhook_receiver.url, "events": ["webhook.test"]}).json()
        other = srv.http.post("/api/v1/webhooks/", headers=KEY,
                              json={"target_url": f"http://[::1]:{port}/x", "events": ["webhook.test"]}).json()
        for hook in (ok, other):
            srv.http.post(f"/api/v1/webhooks/{hook['uid']}/test/", headers=KEY, json={})
        assert _wait_delivery(srv, ok["uid"])["response_status"] == 200
        assert "allow-list" in _wait_delivery(srv, other["uid"])["response_body"]


# 8. what long runs keep ------------------------------------------------------------------------------------------


def test_retention_bounds_deliveries_and_executions_and_keeps_the_newest():
    with LiveServer(ServerConfig(manual_clock=True, retention=100)) as srv:
        store = srv.app[STATE].world.resolve_key("avk_mock_primary")[0]
        hook = srv.http.post("/api/v1/webhooks/", headers=KEY, json={"target_url": "https://example.com/h", "events": ["*"]}).json()
        agent = srv.http.post("/api/v1/agents/", headers=KEY, json={"name": "listener", "events": ["*"]}).json()
        for _ in range(300):
            srv.http.post(f"/api/v1/webhooks/{hook['uid']}/test/", headers=KEY, json={})
            srv.http.post(f"/api/v1/agents/{agent['uid']}/test/", headers=KEY, json={})
        assert len(webhooks.deliveries(store)) <= 110 and len(agents.executions(store)) <= 110
        newest = srv.http.get("/api/v1/webhook-deliveries/", headers=KEY, params={"limit": 1}).json()["results"][0]
        assert newest["created_at"] and webhooks.deliveries(store).dropped > 0


def test_listing_an_agents_executions_reads_only_that_agents(mock):
    world = mock.app[STATE].world if hasattr(mock, "app") else None
    if world is None:
        pytest.skip("needs the in-process server")
    store = world.resolve_key("avk_mock_primary")[0]
    found = agents.executions(store).filter(registration="no-such-agent")
    assert found == [] and "registration" in agents.executions(store).indexes


def test_control_error_type_is_raised_by_the_handles(mock):
    with pytest.raises(ControlError) as err:
        mock.control("POST", "clock/advance", json={"seconds": -1})
    assert err.value.status in (400, 409) and orjson.loads(err.value.body)["detail"]
