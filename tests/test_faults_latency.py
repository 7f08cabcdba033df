"""Injected latency and faults over real HTTP: each fault kind as httpx sees it, latencies against
their configured distribution (Kolmogorov-Smirnov), fault rates inside a binomial interval, and the
seeded sequence repeating after a reset. The server is this module's own, so no rule leaks elsewhere."""

from __future__ import annotations

import json
import random
import time

import avala
import httpx
import pytest
from avala.errors import ServerError
from scipy import stats

from avala_mock.mock_server.latency import sample_ms
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

PATH = "/projects/"  # list_projects


@pytest.fixture(scope="module")
def server():
    with LiveServer(ServerConfig(manual_clock=True, seed=5, rate_limit=10**9)) as s:
        yield s


@pytest.fixture
def srv(server):
    server.reset()  # drops every runtime rule: back to the (empty) baseline
    return server


@pytest.fixture
def api(srv):
    with httpx.Client(base_url=srv.base_url, headers={"X-Avala-Api-Key": srv.api_key}, timeout=5) as c:
        yield c


def faults(srv, *rules):
    return srv.control("PUT", "faults", json={"rules": list(rules)})


def latency(srv, *rules):
    return srv.control("PUT", "latency", json={"rules": list(rules)})


def journal(srv, **params):
    return srv.control("GET", "journal", params={"limit": 100000, **params})["entries"]


# ---- each fault kind as a real client sees it -------------------------------------------------------
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_http_error_faults_are_avala_like_json(srv, api, code):
    faults(srv, {"match": "list_projects", "kind": f"http_{code}"})
    r = api.get(PATH)
    assert r.status_code == code
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert "X-RateLimit-Remaining" in r.headers
    assert api.get("/datasets/").status_code == 200  # other operations untouched
    assert journal(srv, fault=f"http_{code}")[-1]["status"] == code


def test_sdk_sees_injected_500_as_server_error(srv, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    faults(srv, {"match": "/api/v1/users/me/projects/", "kind": "http_500"})  # what the SDK's list calls
    with avala.Client(api_key=srv.api_key, base_url=srv.base_url) as client, pytest.raises(ServerError) as err:
        client.projects.list()
    assert err.value.status_code == 500


def test_connection_reset_is_a_reset(srv, api):
    faults(srv, {"match": "list_projects", "kind": "connection_reset"})
    with pytest.raises(httpx.ReadError, match="reset"):
        api.get(PATH)


def test_empty_response_is_a_disconnect_before_any_byte(srv, api):
    faults(srv, {"match": "list_projects", "kind": "empty_response"})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        api.get(PATH)


def test_malformed_json_transfers_but_does_not_parse(srv, api):
    faults(srv, {"match": "list_projects", "kind": "malformed_json"})
    r = api.get(PATH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_truncated_body_promises_more_than_it_sends(srv, api):
    faults(srv, {"match": "list_projects", "kind": "truncated_body"})
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message body"):
        api.get(PATH)


def test_slow_body_dribbles_the_real_answer(srv, api):
    faults(srv, {"match": "list_projects", "kind": "slow_body", "chunk_bytes": 1024, "chunk_delay_ms": 100})
    started = time.perf_counter()
    r = api.get(PATH)
    elapsed = time.perf_counter() - started
    chunks = -(-len(r.content) // 1024)
    assert r.status_code == 200 and r.json()["results"]
    assert chunks >= 2 and elapsed >= (chunks - 1) * 0.1 * 0.9
    with pytest.raises(httpx.ReadTimeout):  # a client with a tight read timeout gives up mid-body
        api.get(PATH, timeout=httpx.Timeout(5, read=0.05))


def test_hang_until_the_client_times_out_and_bounded_on_the_server(srv, api):
    faults(srv, {"match": "list_projects", "kind": "hang", "hang_s": 1.0})
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        api.get(PATH, timeout=httpx.Timeout(5, read=0.3))
    assert time.perf_counter() - started < 1.0
    # A patient client sees the server give up after hang_s: a disconnect, not an eternal wait.
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(PATH, timeout=10)
    assert time.perf_counter() - started < 5
    entries = journal(srv, fault="hang")
    assert entries and entries[-1]["status"] == 0


def test_status_faults_do_not_run_the_handler(srv, api):
    """A 503 is injected before the handler: nothing is created."""
    faults(srv, {"match": "create_dataset", "kind": "http_503"})
    before = srv.control("GET", "world")["organizations"][0]["datasets"]
    r = api.post("/datasets/", json={"name": "never", "slug": "never", "data_type": "image"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert srv.control("GET", "world")["organizations"][0]["datasets"] == before


def test_path_patterns_and_methods(srv, api):
    faults(srv, {"match": "/api/v1/datasets/*", "methods": ["GET"], "kind": "http_502"})
    assert api.get("/datasets/").status_code == 502
    assert api.get(PATH).status_code == 200


def test_invalid_rules_are_400_and_change_nothing(srv):
    faults(srv, {"match": "list_projects", "kind": "http_500"})
    for bad in ({"match": "x", "kind": "explode"}, {"match": "x", "kind": "http_500", "probability": 2},
                {"kind": "http_500"}):
        r = srv.http.put("/_mock/faults/", json={"rules": [bad]})
        assert r.status_code == 400 and "Invalid configuration" in r.json()["detail"]
    r = srv.http.put("/_mock/latency/", json={"rules": [{"match": "x", "distribution": "uniform", "ms": 3}]})
    assert r.status_code == 400
    assert srv.control("GET", "faults")["rules"] == [{"match": "list_projects", "kind": "http_500"}]
    assert srv.control("GET", "latency")["rules"] == []


# ---- statistics ----------------------------------------------------------------------------------------
def test_fault_rate_inside_binomial_tolerance_and_seeded(srv, api):
    n, p = 600, 0.2
    rule = {"match": "list_projects", "kind": "http_503", "probability": p}
    faults(srv, rule)
    first = [api.get(PATH).status_code for _ in range(n)]
    hits = first.count(503)
    lo, hi = stats.binom.interval(0.999, n, p)
    assert lo <= hits <= hi, (hits, lo, hi)
    assert set(first) == {200, 503}
    assert len(journal(srv, fault="http_503")) == hits
    faults(srv, rule)  # setting the rules restarts the seeded stream: the same sequence again
    assert [api.get(PATH).status_code for _ in range(n)] == first


LATENCY_CASES = {
    "lognormal": ({"distribution": "lognormal", "median_ms": 2.0, "sigma": 0.5}, stats.lognorm(s=0.5, scale=2.0)),
    "uniform": ({"distribution": "uniform", "min_ms": 1.0, "max_ms": 4.0}, stats.uniform(loc=1.0, scale=3.0)),
    "normal": ({"distribution": "normal", "mean_ms": 3.0, "stddev_ms": 0.5}, stats.norm(loc=3.0, scale=0.5)),
}


@pytest.mark.parametrize("name", ["lognormal", "uniform"])
def test_injected_latency_over_http_passes_ks(srv, api, name):
    spec, dist = LATENCY_CASES[name]
    latency(srv, {"match": "list_projects", **spec})
    n = 500
    measured = []
    for _ in range(n):
        t = time.perf_counter()
        assert api.get(PATH).status_code == 200
        measured.append((time.perf_counter() - t) * 1000)
    injected = [e["injected_latency_ms"] for e in journal(srv, operation_id="list_projects")]
    assert len(injected) == n
    result = stats.kstest(injected, dist.cdf)
    assert result.pvalue > 0.001, result
    # The delay is real: every request took at least what was injected (journal rounds to 1 us).
    assert all(m >= i - 0.01 for m, i in zip(measured, injected, strict=True))
    assert all(e["latency_ms"] >= e["injected_latency_ms"] - 0.01 for e in journal(srv, operation_id="list_projects"))


@pytest.mark.parametrize("name", sorted(LATENCY_CASES))
def test_sampler_passes_ks_with_fixed_seed(name):
    spec, dist = LATENCY_CASES[name]
    rng = random.Random("latency:1")
    samples = [sample_ms(spec, rng) for _ in range(2000)]
    assert stats.kstest(samples, dist.cdf).pvalue > 0.001
    # ... and it can fail: the same samples against a shifted distribution are rejected.
    shifted = stats.norm(loc=dist.mean() * 1.3, scale=dist.std())
    assert stats.kstest(samples, shifted.cdf).pvalue < 1e-6


def test_fixed_latency_is_felt_by_the_client(srv, api):
    latency(srv, {"match": "list_projects", "distribution": "fixed", "ms": 150})
    t = time.perf_counter()
    api.get(PATH)
    assert time.perf_counter() - t >= 0.15
    t = time.perf_counter()
    api.get("/datasets/")
    assert time.perf_counter() - t < 0.15
    srv.control("DELETE", "latency")
    assert srv.control("GET", "latency")["rules"] == []
