"""The request path every route shares (mock_server/endpoint.py): JSON 404/405 from the fallback route,
rate-limit headers and journal entries on every Avala answer (errors included), one key resolution
for throttling and authentication, and the parts of the state a scenario or snapshot replaces (the
journal, the shaping rules) taking effect on the next request."""

from __future__ import annotations

import httpx

KEY = "X-Avala-Api-Key"


def journal(mock, **params):
    return mock.control("GET", "journal", params=params)["entries"]


def test_unknown_paths_answer_json_404_with_rate_limit_headers_and_a_journal_entry(mock, http):
    r = http.get("nope/at/all/")
    assert r.status_code == 404 and r.json() == {"detail": "Not found: /api/v1/nope/at/all/"}
    assert r.headers["Content-Type"] == "application/json" and "X-RateLimit-Remaining" in r.headers
    assert [(e["path"], e["status"], e["operation_id"], e["organization"]) for e in journal(mock)] == [
        ("/api/v1/nope/at/all/", 404, None, "acme-robotics")]
    outside = httpx.get(mock.base_url.rsplit("/api/", 1)[0] + "/no-such-page")
    assert outside.status_code == 404 and outside.json() == {"detail": "Not found: /no-such-page"}
    assert "X-RateLimit-Remaining" not in outside.headers  # the mock's own planes are not throttled


def test_a_method_a_path_does_not_take_is_405_naming_the_ones_it_does(mock, http):
    uid = http.post("webhooks/", json={"target_url": "http://127.0.0.1:9/hook", "events": ["auto_label.completed"]}).json()["uid"]
    r = http.put(f"webhooks/{uid}/", json={})  # a placeholder path: aiohttp would fall through to the catch-all
    assert r.status_code == 405 and r.json() == {"detail": 'Method "PUT" not allowed.'}
    assert r.headers["Allow"] == "DELETE, GET, HEAD, PATCH" and "X-RateLimit-Limit" in r.headers
    r = http.get("fleet/events/batch/")  # a literal path owns its URL
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert [e["status"] for e in journal(mock)][-2:] == [405, 405]


def test_errors_carry_the_rate_limit_headers_and_one_key_is_required(mock, http):
    for r in (http.get("projects/missing/"), httpx.get(mock.base_url + "/projects/"),
              httpx.get(mock.base_url + "/projects/", headers={KEY: "avk_not_a_key"})):
        assert r.status_code in (401, 404) and r.json()["detail"]
        assert int(r.headers["X-RateLimit-Remaining"]) >= 0
    two = httpx.get(mock.base_url + "/projects/", headers=[(KEY, mock.api_key), (KEY, mock.api_key)])
    assert two.status_code == 400 and two.json()["detail"] == f"Send one {KEY} header, not 2."
    # The first key is still resolved (its organisation is journaled), so repeating it escapes nothing.
    assert journal(mock)[-1]["organization"] == "acme-robotics"


def test_throttling_comes_before_authentication(mock):
    mock.control("PUT", "rate-limits", json={"limit": 2, "window": 60})
    try:
        codes = [httpx.get(mock.base_url + "/projects/").status_code for _ in range(4)]
    finally:
        mock.control("DELETE", "rate-limits")
    assert codes == [401, 401, 429, 429]


def test_a_scenario_that_resizes_the_journal_is_recorded_into_from_the_next_request(mock, http):
    mock.control("POST", "scenario", json={"scenario": {"name": "small-journal", "journal_size": 3}})
    try:
        for _ in range(5):
            http.get("projects/", params={"limit": 1})
        got = mock.control("GET", "journal")
        assert got["size"] == 3 and len(got["entries"]) == 3
        assert {e["operation_id"] for e in got["entries"]} == {"list_projects"}
    finally:
        mock.http.delete("/_mock/scenario/")


def test_faults_of_a_restored_snapshot_apply_to_the_next_request(mock, http):
    mock.control("PUT", "faults", json={"rules": [{"match": "list_datasets", "kind": "http_503"}]})
    snap = mock.control("GET", "snapshot")
    mock.control("DELETE", "faults")
    assert http.get("datasets/").status_code == 200
    mock.control("POST", "snapshot/restore", json=snap)  # replaces the shaping object
    r = http.get("datasets/")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "X-RateLimit-Limit" in r.headers
    assert journal(mock)[-1]["fault"] == "http_503"
