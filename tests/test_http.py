"""Transport rules over raw HTTP: auth, error bodies, statuses, headers, validation, pagination edges."""

from __future__ import annotations

import httpx
import pytest

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def first_project(http: httpx.Client) -> dict:
    return http.get("projects/", params={"limit": 1}).json()["results"][0]


def assert_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_missing_and_unknown_keys_are_401_without_echoing_the_key(mock):
    raw = httpx.Client(base_url=mock.base_url + "/")
    assert "credentials" in assert_error(raw.get("auto-label-jobs/"), 401)["detail"]
    r = raw.get("auto-label-jobs/", headers={"X-Avala-Api-Key": "avk_secret_guess_42"})
    assert_error(r, 401)
    assert "avk_secret_guess_42" not in r.text
    # Authorization header is not a credential in Avala
    assert_error(raw.get("auto-label-jobs/", headers={"Authorization": f"Bearer {mock.api_key}"}), 401)


def test_unknown_path_is_json_404(http):
    body = assert_error(http.get("no-such-thing/"), 404)
    assert "no-such-thing" in body["detail"]
    assert_error(http.get("auto-label-jobs"), 404)  # no slash-appending redirect either


def test_unknown_object_is_404(http):
    assert_error(http.get("auto-label-jobs/nope/"), 404)
    assert_error(http.get("projects/nope/"), 404)
    assert_error(http.get("users/me/projects/nope/"), 404)
    assert_error(http.get("datasets/nope/"), 404)
    assert_error(http.get("tasks/nope/"), 404)
    assert_error(http.get("datasets/acme-robotics/no-such-slug/items/"), 404)
    assert_error(http.get("datasets/acme-robotics/street-scenes/items/nope/"), 404)
    assert_error(http.get("datasets/acme-robotics/drive-logs/sequences/nope/"), 404)


def test_wrong_method_is_405_with_allow(http):
    r = http.put("auto-label-jobs/")
    assert_error(r, 405)
    assert "GET" in r.headers["Allow"]
    r = http.post("auto-label-jobs/some-uid/")
    assert_error(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


def test_non_json_body_is_415(http):
    p = first_project(http)
    r = http.post(f"projects/{p['uid']}/auto-label/", content=b"model_type=yolo",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in assert_error(r, 415)["detail"]


@pytest.mark.parametrize("raw", [b'{"model_type": ', b"\r", b"  \n"])
def test_malformed_json_is_400(http, raw):
    """Whitespace alone is not an empty body: it is a body that is not JSON (found by schemathesis'
    byte-level fuzzing of an optional body)."""
    p = first_project(http)
    before = http.get("auto-label-jobs/").json()["results"]
    r = http.post(f"projects/{p['uid']}/auto-label/", content=raw, headers={"Content-Type": "application/json"})
    assert "JSON parse error" in assert_error(r, 400)["detail"]
    assert http.get("auto-label-jobs/").json()["results"] == before


def test_body_validation_reports_every_field(http):
    p = first_project(http)
    before = http.get("auto-label-jobs/").json()["results"]
    r = http.post(f"projects/{p['uid']}/auto-label/",
                  json={"model_type": "resnet", "confidence_threshold": 2, "labels": "car", "surprise": 1})
    body = assert_error(r, 400)
    assert set(body["errors"]) == {"model_type", "confidence_threshold", "labels", "surprise"}
    assert all(isinstance(m, list) and m for m in body["errors"].values())
    assert body["detail"].startswith("Invalid request body")
    # nothing was created
    assert http.get("auto-label-jobs/").json()["results"] == before


@pytest.mark.parametrize("body", [None, b"", b"{}"])
def test_create_accepts_no_body_empty_body_and_empty_object(http, body):
    p = http.get("projects/", params={"limit": 20}).json()["results"]
    target = p[hash(body) % len(p)]["uid"]
    headers = {"Content-Type": "application/json"} if body else {}
    r = http.post(f"projects/{target}/auto-label/", content=body, headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["model_type"] == "yolo"


def test_query_validation(http):
    assert "limit" in assert_error(http.get("projects/", params={"limit": "ten"}), 400)["errors"]
    assert "limit" in assert_error(http.get("projects/", params={"limit": 0}), 400)["errors"]
    assert "limit" in assert_error(http.get("projects/", params={"limit": 5000}), 400)["errors"]
    assert assert_error(http.get("projects/", params={"cursor": "!!!not-a-cursor"}), 404)["detail"] == "Invalid cursor."
    assert "status" in assert_error(http.get("datasets/", params={"status": "bogus"}), 400)["errors"]


def test_rate_limit_headers_on_every_response():
    with LiveServer(ServerConfig(manual_clock=True, rate_limit=1000, rate_window=3600)) as server:
        http = httpx.Client(base_url=server.base_url + "/", headers={"X-Avala-Api-Key": server.api_key})
        responses = [http.get("projects/"), http.get("nope/"), http.get("auto-label-jobs/x/"), http.put("projects/")]
        responses.append(httpx.get(server.base_url + "/projects/"))  # 401, keyed by address
    remaining = []
    for r in responses:
        for h in RL_HEADERS:
            assert r.headers[h].isdigit(), (r.status_code, h)
        remaining.append(int(r.headers["X-RateLimit-Remaining"]))
    assert remaining[0] > remaining[1] > remaining[2] > remaining[3]


def test_429_with_retry_after_when_the_bucket_is_empty():
    import avala
    from avala.errors import RateLimitError

    with LiveServer(ServerConfig(manual_clock=True, rate_limit=5, rate_window=60)) as server:
        client = avala.Client(api_key=server.api_key, base_url=server.base_url)
        for expected in (4, 3, 2, 1, 0):
            client.projects.list()
            assert client._transport.last_rate_limit["remaining"] == str(expected)
        with pytest.raises(RateLimitError) as exc:
            client.projects.list()
        assert exc.value.retry_after is not None and exc.value.retry_after >= 1
        r = server.http.get("/api/v1/projects/", headers={"X-Avala-Api-Key": server.api_key})
        assert r.status_code == 429 and r.headers["Retry-After"].isdigit()
        assert "throttled" in r.json()["detail"]
        # another key has its own bucket
        other = server.http.get("/api/v1/projects/", headers={"X-Avala-Api-Key": "avk_mock_secondary"})
        assert other.status_code == 200


def test_spec_is_served(mock):
    r = mock.http.get("/openapi.yaml")
    assert r.status_code == 200
    from avala_mock.mock_server.spec import default_spec_path

    assert r.text == default_spec_path().read_text()
    assert mock.http.get("/_mock/openapi.yaml").status_code == 200


def test_pagination_walks_forward_and_back_without_gaps(http):
    ds = "datasets/acme-robotics/retail-products/items/"
    total = http.get("datasets/").json()
    everything, page = [], http.get(ds, params={"limit": 1000}).json()
    while True:
        everything += [i["uid"] for i in page["results"]]
        if not page["next"]:
            break
        page = httpx.get(page["next"], headers=http.headers).json()
    assert len(everything) == 2500 == len(set(everything))
    assert total["next"] is None and total["previous"] is None
    for limit in (97, 333):
        page = http.get(ds, params={"limit": limit}).json()
        forward, pages = [], [page]
        while True:
            forward += [i["uid"] for i in page["results"]]
            if page["next"] is None:
                break
            assert page["next"].startswith("http://127.0.0.1:")
            page = httpx.get(page["next"], headers=http.headers).json()
            pages.append(page)
        assert forward == everything
        backward = []
        while page is not None:
            backward = [i["uid"] for i in page["results"]] + backward
            page = httpx.get(page["previous"], headers=http.headers).json() if page["previous"] else None
        assert backward == everything


def test_empty_list_shape(mock):
    other = httpx.get(mock.base_url + "/auto-label-jobs/", params={"status": "running"},
                      headers={"X-Avala-Api-Key": "avk_mock_secondary"})
    assert other.json() == {"results": [], "next": None, "previous": None}


def test_control_api(mock):
    clock = mock.clock()
    assert clock["mode"] == "manual"
    after = mock.advance(12.5)
    assert after["epoch"] == pytest.approx(clock["epoch"] + 12.5)
    r = mock.http.post("/_mock/clock/advance/", json={"seconds": -1})
    assert r.status_code == 400 and "seconds" in r.json()["errors"]
    r = mock.http.post("/_mock/clock/advance/", json={})
    assert r.status_code == 400
    world = mock.reset()
    assert world["clock"]["epoch"] == clock["epoch"]
    assert [o["slug"] for o in world["organizations"]] == ["acme-robotics", "globex-vision"]
    assert "api_key" not in str(world) and mock.api_key not in str(world)


def test_advancing_a_real_clock_is_409():
    with LiveServer(ServerConfig(time_scale="instant")) as server:
        r = server.http.post("/_mock/clock/advance/", json={"seconds": 1})
        assert r.status_code == 409 and "manual" in r.json()["detail"]
