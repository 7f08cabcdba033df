"""Each shipped scenario file loads (from the CLI config and through the control API) and does what its
README line says; scenario validation; backend scenarios through the official SDK."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import avala
import httpx
import pytest
from avala.errors import RateLimitError
from scipy import stats

from avala_mock.fixtures import SCENARIO_DIR
from avala_mock.fixtures.files import FileError
from avala_mock.mock_server.shaping import ShapingError, load_scenario
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

SHIPPED = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def server():
    with LiveServer(ServerConfig(manual_clock=True, seed=9)) as s:
        yield s


@pytest.fixture
def srv(server):
    yield server
    server.http.delete("/_mock/scenario/")  # back to the command-line config


@pytest.fixture
def sdk(srv, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    with avala.Client(api_key=srv.api_key, base_url=srv.base_url) as c:
        yield c


@pytest.fixture
def api(srv):
    with httpx.Client(base_url=srv.base_url, headers={"X-Avala-Api-Key": srv.api_key}, timeout=10) as c:
        yield c


def load(srv, name: str) -> dict:
    return srv.control("POST", "scenario", json={"name": name})["scenario"]


def project_uid(api: httpx.Client, name: str) -> str:
    for p in api.get("/projects/", params={"limit": 100}).json()["results"]:
        if p["name"] == name:
            return p["uid"]
    raise LookupError(name)


def create_job(api: httpx.Client, project: str, model: str = "yolo", **extra) -> dict:
    r = api.post(f"/projects/{project_uid(api, project)}/auto-label/", json={"model_type": model, **extra})
    assert r.status_code == 202, r.text
    return r.json()


def job(api: httpx.Client, uid: str) -> dict:
    return api.get(f"/auto-label-jobs/{uid}/").json()


def poll(fn, deadline_s: float = 15.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if value := fn():
            return value
        time.sleep(0.02)
    raise AssertionError("not reached before the deadline")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_validates_and_is_documented(name):
    scenario = load_scenario(name)
    assert scenario["name"] == name and scenario["description"]
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"`{name}`" in readme, f"{name} has no README line"


def test_bad_scenarios_are_rejected_with_reasons(srv):
    with pytest.raises(ShapingError, match="bogus"):
        load_scenario(data={"name": "x", "bogus": 1})
    with pytest.raises(FileError, match="shipped"):
        load_scenario("no-such-scenario")
    for body in ({"name": "no-such-scenario"}, {"scenario": {"name": "x", "faults": [{"kind": "nope"}]}},
                 {"scenario": {"name": "x", "world": "missing-world"}}):
        r = srv.http.post("/_mock/scenario/", json=body)
        assert r.status_code == 400, body
    assert srv.control("GET", "scenario") == {"scenario": None}


def test_flaky_network(srv):
    """5% 503, 3% 502, 2% connection resets, lognormal ~40 ms latency on every Avala call."""
    assert load(srv, "flaky-network")["seed"] == 11
    n = 400

    def call(_: int) -> str:
        try:
            return str(client.get("/projects/").status_code)
        except httpx.ReadError:
            return "reset"

    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=srv.base_url, headers={"X-Avala-Api-Key": srv.api_key},
                                                      timeout=10) as client:
        outcomes = list(pool.map(call, range(n)))
    p503, p502 = 0.05, 0.95 * 0.03
    preset = 0.95 * 0.97 * 0.02
    for outcome, p in (("503", p503), ("502", p502), ("reset", preset)):
        lo, hi = stats.binom.interval(0.999, n, p)
        assert lo <= outcomes.count(outcome) <= hi, (outcome, outcomes.count(outcome))
    assert set(outcomes) <= {"200", "503", "502", "reset"}
    injected = [e["injected_latency_ms"] for e in srv.control("GET", "journal", params={"limit": 1000})["entries"]]
    assert len(injected) == n
    assert stats.kstest(injected, stats.lognorm(s=0.6, scale=40).cdf).pvalue > 0.001


def test_throttled_from_the_command_line_config(monkeypatch):
    """60 requests/min per key; auto-label job creation 2/min, then 429 with Retry-After."""
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    with LiveServer(ServerConfig(manual_clock=True, scenario_file=str(SCENARIO_DIR / "throttled.yaml"))) as s:
        with avala.Client(api_key=s.api_key, base_url=s.base_url) as client:
            projects = list(client.projects.list(limit=100))
            assert len(projects) >= 3
            client.auto_label_jobs.create(projects[0].uid, model_type="yolo")
            client.auto_label_jobs.create(projects[1].uid, model_type="yolo")
            with pytest.raises(RateLimitError) as err:
                client.auto_label_jobs.create(projects[2].uid, model_type="yolo")
            assert err.value.retry_after == 30.0
        with httpx.Client(base_url=s.base_url, headers={"X-Avala-Api-Key": s.api_key}) as c:
            statuses = [c.get("/datasets/") for _ in range(60)]
        assert statuses[0].headers["X-RateLimit-Limit"] == "60"
        assert statuses[-1].status_code == 429 and int(statuses[-1].headers["Retry-After"]) >= 1


def test_sagemaker_down(srv, api, sdk):
    """Every new sam3 job fails right after it starts with an error_message; YOLO jobs run; clock 20x."""
    load(srv, "sagemaker-down")
    assert srv.clock()["mode"] == "scaled" and srv.clock()["scale"] == 20
    sam = create_job(api, "Forklift Safety", "sam")  # an alias of sam3
    failed = poll(lambda: (j := job(api, sam["uid"]))["status"] == "failed" and j)
    assert failed["processed_items"] == 0 and "unavailable" in failed["error_message"]
    assert sdk.auto_label_jobs.get(sam["uid"]).error_message == failed["error_message"]
    yolo = create_job(api, "Transit Vehicles", "yolo")
    running = poll(lambda: (j := job(api, yolo["uid"]))["processed_items"] > 0 and j)
    assert running["status"] in ("running", "completed") and running["error_message"] is None


def run_for(srv, api, project: str, model: str, seconds: float, **extra) -> dict:
    uid = create_job(api, project, model, **extra)["uid"]
    srv.advance(seconds)
    return job(api, uid)


def test_slow_sam(srv, api):
    """sam3 takes ~2 s per item (10x slower) with recall 0.6 instead of 0.9; YOLO unchanged."""
    srv.reset()
    base_sam = run_for(srv, api, "Forklift Safety", "sam3", 60)
    base_yolo = run_for(srv, api, "Transit Vehicles", "yolo", 5)
    base_eval = run_for(srv, api, "Intersections", "sam3", 10_000, dry_run=True)["summary"]["evaluation"]
    load(srv, "slow-sam")
    slow_sam = run_for(srv, api, "Forklift Safety", "sam3", 60)
    slow_yolo = run_for(srv, api, "Transit Vehicles", "yolo", 5)
    slow_eval = run_for(srv, api, "Intersections", "sam3", 10_000, dry_run=True)["summary"]["evaluation"]
    ratio = base_sam["processed_items"] / max(1, slow_sam["processed_items"])
    assert 6 <= ratio <= 15, (base_sam["processed_items"], slow_sam["processed_items"])
    assert slow_yolo["processed_items"] == base_yolo["processed_items"]
    assert base_eval["recall"] > 0.8 and 0.45 < slow_eval["recall"] < 0.7, (base_eval, slow_eval)


def test_stalled_job(srv, api, sdk):
    """Transit Vehicles jobs stall after 100 items until cancelled; Signage Audit jobs fail after 50."""
    load(srv, "stalled-job")
    stalled = run_for(srv, api, "Transit Vehicles", "yolo", 3600)
    assert stalled["status"] == "running" and stalled["processed_items"] == 100
    srv.advance(86_400)
    assert job(api, stalled["uid"])["processed_items"] == 100
    sdk.auto_label_jobs.cancel(stalled["uid"])
    assert job(api, stalled["uid"])["status"] == "cancelled"
    died = run_for(srv, api, "Signage Audit", "yolo", 3600)
    assert died["status"] == "failed" and died["processed_items"] == 50 and died["error_message"]
    other = run_for(srv, api, "Pallet Detection", "yolo", 3600)
    assert other["status"] == "completed"


def test_loading_a_world_with_a_seed(srv):
    summary = srv.control("POST", "world/load", json={"world": "default", "seed": 42})
    assert summary["seed"] == 42
    assert srv.control("GET", "scenario")["scenario"]["seed"] == 42
    r = srv.http.post("/_mock/world/load/", json={"world": "nope"})
    assert r.status_code == 400 and "not found" in r.json()["detail"]


def test_clock_set_scale_from_an_inline_scenario(srv):
    load_inline = srv.control("POST", "scenario", json={"scenario": {"name": "fast", "clock": {"mode": "scaled", "scale": 5}}})
    assert load_inline["scenario"]["clock"] == {"mode": "scaled", "scale": 5}
    before = srv.clock()
    after = srv.control("POST", "clock/scale", json={"scale": 50})
    assert after["mode"] == "scaled" and after["scale"] == 50 and after["epoch"] >= before["epoch"]
    assert srv.http.post("/_mock/clock/scale/", json={"scale": 0}).status_code == 400
    srv.http.delete("/_mock/scenario/")
    assert srv.clock()["mode"] == "manual"  # back to the command-line config
    r = srv.http.post("/_mock/clock/scale/", json={"scale": 2})
    assert r.status_code == 409 and "manual" in r.json()["detail"]
