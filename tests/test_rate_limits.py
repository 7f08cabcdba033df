"""Rate limits over raw HTTP and through the SDK: headers on every response count down, 429 with
Retry-After when the bucket is empty (the SDK's RateLimitError.retry_after), refill, per-operation and
per-path buckets, and configuration from the control API, the CLI syntax and YAML."""

from __future__ import annotations

import time

import avala
import httpx
import pytest
from avala.errors import RateLimitError

from avala_mock.mock_server.cli import _rate_rule
from avala_mock.mock_server.ratelimit import RateLimiter
from avala_mock.mock_server.shaping import ShapingError
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture(scope="module")
def server():
    with LiveServer(ServerConfig(manual_clock=True, seed=3)) as s:
        yield s


@pytest.fixture
def srv(server):
    server.reset()  # baseline limits, full buckets
    return server


@pytest.fixture
def api(srv):
    with httpx.Client(base_url=srv.base_url, headers={"X-Avala-Api-Key": srv.api_key}, timeout=10) as c:
        yield c


def limits(srv, **body):
    return srv.control("PUT", "rate-limits", json=body)


def poll_until(predicate, deadline_s: float = 10.0, every: float = 0.05):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)  # polling a wall-time bucket, with a deadline
    raise AssertionError("condition not met before the deadline")


def test_default_limit_is_generous_and_on_every_response(srv, api):
    assert srv.control("GET", "rate-limits") == {"limit": 6000, "window": 60.0, "rules": []}
    for r in (api.get("/projects/"), api.get("/projects/nope/"), api.post("/projects/", content=b"{")):
        assert all(h in r.headers for h in HEADERS), r.status_code
        assert r.headers["X-RateLimit-Limit"] == "6000"
    anonymous = httpx.get(srv.base_url + "/projects/")
    assert anonymous.status_code == 401 and "X-RateLimit-Remaining" in anonymous.headers


def test_headers_count_down_then_429_with_retry_after_then_refill(srv, api):
    limits(srv, limit=3, window=3)
    seen = []
    for _ in range(3):
        r = api.get("/projects/")
        assert r.status_code == 200
        seen.append(int(r.headers["X-RateLimit-Remaining"]))
        reset_at = int(r.headers["X-RateLimit-Reset"])
        assert time.time() - 1 <= reset_at <= time.time() + 4
    assert seen == [2, 1, 0]
    r = api.get("/projects/")
    assert r.status_code == 429
    assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-RateLimit-Limit"] == "3"
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 3
    assert "throttled" in r.json()["detail"] and str(retry) in r.json()["detail"]
    # Another key has its own bucket.
    other = httpx.get(srv.base_url + "/projects/", headers={"X-Avala-Api-Key": "avk_mock_secondary"})
    assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "2"
    # Tokens come back at limit/window per second: after Retry-After the key is served again.
    r = poll_until(lambda: (x := api.get("/projects/")).status_code == 200 and x)
    assert int(r.headers["X-RateLimit-Remaining"]) >= 0
    # ... and once its X-RateLimit-Reset has passed, the bucket is full again. Wait on the wall clock
    # without sending requests (each one would spend a token and push the reset further away).
    full_at = int(other.headers["X-RateLimit-Reset"])
    poll_until(lambda: time.time() >= full_at + 0.2, deadline_s=10)
    r = httpx.get(srv.base_url + "/projects/", headers={"X-Avala-Api-Key": "avk_mock_secondary"})
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "2"


def test_sdk_raises_rate_limit_error_with_retry_after(srv, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    limits(srv, limit=2, window=60)
    with avala.Client(api_key=srv.api_key, base_url=srv.base_url) as client:
        client.projects.list()
        client.projects.list()
        with pytest.raises(RateLimitError) as err:
            client.projects.list()
    assert err.value.status_code == 429
    assert err.value.retry_after == 30.0  # one token at 2/60 per second


def test_per_operation_rule_has_its_own_bucket(srv, api):
    limits(srv, rules=[{"match": "get_project", "limit": 1, "window": 60}])
    uid = api.get("/projects/").json()["results"][0]["uid"]
    first = api.get(f"/projects/{uid}/")
    assert first.status_code == 200 and first.headers["X-RateLimit-Limit"] == "1"
    second = api.get(f"/projects/{uid}/")
    assert second.status_code == 429 and second.headers["Retry-After"] == "60"
    listed = api.get("/projects/")  # the default bucket is untouched
    assert listed.status_code == 200 and listed.headers["X-RateLimit-Limit"] == "6000"


def test_per_path_rule_with_methods(srv, api):
    limits(srv, rules=[{"match": "/api/v1/datasets/*", "methods": ["GET"], "limit": 1, "window": 60}])
    assert api.get("/datasets/").status_code == 200
    assert api.get("/datasets/").status_code == 429
    assert api.get("/projects/").status_code == 200


def test_clear_and_reset_restore_the_baseline(srv, api):
    limits(srv, limit=1, window=60)
    api.get("/projects/")
    assert api.get("/projects/").status_code == 429
    assert srv.control("DELETE", "rate-limits")["limit"] == 6000
    assert api.get("/projects/").status_code == 200
    limits(srv, limit=1, window=60)
    srv.reset()
    assert srv.control("GET", "rate-limits")["limit"] == 6000


def test_invalid_limits_are_400_and_change_nothing(srv):
    limits(srv, limit=10)
    for body in ({"limit": 0}, {"window": -1}, {"rules": [{"match": "x"}]}, {"rules": [{"limit": 2}]}):
        r = srv.http.put("/_mock/rate-limits/", json=body)
        assert r.status_code == 400, body
    assert srv.control("GET", "rate-limits")["limit"] == 10


def test_cli_rule_syntax():
    assert _rate_rule("create_*=10/30", 60.0) == {"match": "create_*", "limit": 10, "window": 30.0}
    assert _rate_rule("/api/v1/datasets/*=5", 60.0) == {"match": "/api/v1/datasets/*", "limit": 5, "window": 60.0}
    with pytest.raises(ShapingError):
        _rate_rule("nolimit", 60.0)


def test_cli_config_reaches_the_server():
    config = ServerConfig(manual_clock=True, rate_limit=5, rate_window=10.0, rate_rules=[_rate_rule("list_*=2/5", 10.0)])
    with LiveServer(config) as s, httpx.Client(base_url=s.base_url, headers={"X-Avala-Api-Key": s.api_key}) as c:
        assert s.control("GET", "rate-limits")["rules"] == [{"match": "list_*", "limit": 2, "window": 5.0}]
        assert [c.get("/projects/").status_code for _ in range(3)] == [200, 200, 429]
        assert c.get("/projects/", params={"x": 1}).headers["X-RateLimit-Limit"] == "2"


def test_limiter_rejects_a_bad_rule_at_construction():
    with pytest.raises(ShapingError):
        RateLimiter(10, 60, [{"match": "x", "limit": -1}])
