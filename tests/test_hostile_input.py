"""Hostile input over real HTTP (raw sockets where an HTTP client would not send it): every answer is a
prompt JSON 4xx with a bounded body, nothing is half-stored, and the server keeps serving everyone."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from avala_mock.mock_server.state import STATE, ServerConfig
from avala_mock.mock_server.testing import LiveServer

KEY = {"X-Avala-Api-Key": "avk_mock_primary"}


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def nested_json(depth: int) -> bytes:
    """``nested(depth)`` as JSON text (deeper than any encoder will write)."""
    return b'{"k": ' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def post_raw(http: httpx.Client, method: str, path: str, body: bytes) -> httpx.Response:
    return http.request(method, path, content=body, headers={"Content-Type": "application/json"})


def raw_exchange(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh connection; return everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def json_of(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, orjson.loads(body)


# 1. nesting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 255, 600, 1024])
def test_deep_json_is_refused_before_it_is_stored(http, depth):
    before = http.get("fleet/devices/", params={"limit": 100}).json()["results"]
    r = post_raw(http, "POST", "fleet/devices/", b'{"name": "deep", "type": "robot_arm", "metadata": ' + nested_json(depth) + b"}")
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]
    after = http.get("fleet/devices/", params={"limit": 100})
    assert after.status_code == 200 and after.json()["results"] == before  # nothing half-stored, list still renders
    device = before[0]["uid"]
    r = post_raw(http, "PATCH", f"fleet/devices/{device}/", b'{"metadata": ' + nested_json(depth) + b"}")
    assert r.status_code == 400
    assert http.get(f"fleet/devices/{device}/").status_code == 200


def test_nesting_at_the_limit_is_stored_and_rendered(http):
    r = http.post("fleet/devices/", json={"name": "deep-ok", "type": "robot_arm", "metadata": nested(31)})
    assert r.status_code == 201, r.text
    assert http.get(f"fleet/devices/{r.json()['uid']}/").json()["metadata"] == nested(31)


def test_1024_levels_of_arrays_in_a_provider_config(http):
    body = b'{"name": "p", "provider_type": "http", "config": ' + b"[" * 1024 + b"]" * 1024 + b"}"
    r = post_raw(http, "POST", "inference-providers/", body)
    assert r.status_code == 400 and r.json()["detail"]


# 2. work and echo bounds --------------------------------------------------------------------------------------


def test_a_huge_invalid_batch_is_one_short_400(http, mock):
    body = orjson.dumps({"events": [{}] * 100_000})
    started = time.perf_counter()
    r = http.post("fleet/events/batch/", content=body, headers={"Content-Type": "application/json"})
    took = time.perf_counter() - started
    assert r.status_code == 400 and len(r.content) < 4096, len(r.content)
    print(f"100,000-item invalid batch ({len(body)} bytes): 400 in {took * 1000:.0f} ms, {len(r.content)}-byte answer")
    assert http.get("users/me/").status_code == 200


def test_offending_values_are_not_echoed_whole(http):
    r = http.post("agents/", json={"name": "x" * 1_000_000})
    assert r.status_code == 400 and len(r.content) < 4096
    r = http.post("agents/", json={"name": "ok", **{f"extra_{i}": i for i in range(500)}})
    assert r.status_code == 400 and len(r.content) < 8192
    assert len(r.json()["errors"]) <= 21


def test_bodies_past_the_cap_are_413_whether_declared_or_chunked(mock):
    with httpx.Client(base_url=mock.base_url + "/", headers=KEY) as c:
        r = c.post("agents/", content=b"{" + b" " * (3 * 1024 * 1024) + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["detail"]

        def chunks():  # no Content-Length: the server must stop reading at its cap
            yield b'{"name": "'
            for _ in range(48):
                yield b"x" * 65536
            yield b'"}'

        r = c.post("agents/", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["detail"]
        assert c.get("users/me/").status_code == 200


# 9. the smaller things ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [b"9223372036854775808", b"-9223372036854775809", b"123456789012345678901234567890"])
def test_integers_beyond_64_bits_are_400(http, literal):
    p = http.get("projects/").json()["results"][0]["uid"]
    before = http.get("auto-label-jobs/").json()["results"]
    r = http.post(f"projects/{p}/auto-label/", content=b'{"confidence_threshold": 0.5, "labels": [], "x": ' + literal + b"}",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "out of range" in r.json()["detail"]
    assert http.get("auto-label-jobs/").json()["results"] == before


def test_a_repeated_api_key_header_is_400(mock):
    raw = raw_exchange(int(mock.origin.rsplit(":", 1)[1]),
                       b"GET /api/v1/users/me/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Avala-Api-Key: avk_mock_primary\r\n"
                       b"X-Avala-Api-Key: avk_mock_secondary\r\nConnection: close\r\n\r\n")
    status, body = json_of(raw)
    assert status == 400 and "one X-Avala-Api-Key" in body["detail"]


@pytest.mark.parametrize("payload", [
    b"GARBAGE\r\n\r\n",
    b"GET /api/v1/users/me/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /api/v1/users/me/ HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    b"POST /api/v1/agents/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nnot hex\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_protocol_level_rejections_answer_json(mock, payload):
    status, body = json_of(raw_exchange(int(mock.origin.rsplit(":", 1)[1]), payload))
    assert 400 <= status < 500 and body["detail"]


def test_head_is_served_on_get_routes(mock):
    r = httpx.head(mock.base_url + "/projects/", headers=KEY)
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Type"] == "application/json"
    assert "X-RateLimit-Limit" in r.headers
    r = httpx.request("PUT", mock.base_url + "/fleet/events/batch/", headers=KEY)
    assert r.status_code == 405 and r.json()["detail"] and "POST" in r.headers["Allow"]


# 5. rate-limit state -----------------------------------------------------------------------------------------


def test_invented_keys_share_one_bucket_and_leave_nothing_behind():
    with LiveServer(ServerConfig(manual_clock=True, rate_limit=5, rate_window=60)) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            codes = [c.get("/users/me/", headers={"X-Avala-Api-Key": f"avk_{i}_" + "k" * 60_000}).status_code
                     for i in range(12)]
        limiter = srv.app[STATE].limiter
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}  # rotating keys does not escape throttling
        assert list(limiter._default._buckets) == ["ip:127.0.0.1"]  # no bucket per invented key


def test_remembered_keys_are_bounded(mock):
    from avala_mock.mock_server.ratelimit import Bucket

    bucket = Bucket(10, 60)
    for i in range(Bucket.MAX_KEYS + 500):
        bucket.take(f"ip:{i}")
    assert len(bucket._buckets) == Bucket.MAX_KEYS
