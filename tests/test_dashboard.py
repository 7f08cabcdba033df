"""The dashboard's data (control API `/_mock/dashboard/...`), its event stream and the clock controls
it drives; the page itself is tested in a real browser in test_dashboard_browser.py."""

from __future__ import annotations

import json

import httpx
import pytest

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import ControlError, LiveServer
from helpers import project_named


def test_state_shows_an_sdk_job_moving_on_the_virtual_clock(client, mock):
    project = project_named(client, "Transit Vehicles")
    job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.4)
    first = mock.control("GET", "dashboard/state")
    row = next(j for j in first["jobs"] if j["uid"] == job.uid)
    assert row["status"] == "pending" and row["project_name"] == "Transit Vehicles" and row["organization"] == "acme-robotics"
    assert row["eta_seconds"] > 0
    mock.control("POST", "clock/advance", {"seconds": 20})
    later = next(j for j in mock.control("GET", "dashboard/state")["jobs"] if j["uid"] == job.uid)
    assert later["processed_items"] > row["processed_items"] and later["eta_seconds"] < row["eta_seconds"]
    sdk = client.auto_label_jobs.get(job.uid)
    assert (later["processed_items"], later["status"]) == (sdk.processed_items, sdk.status)


def test_gallery_drafts_are_the_api_drafts_and_pr_is_against_the_truth(client, mock, http):
    project = project_named(client, "Transit Vehicles")
    job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.5)
    mock.control("POST", "clock/advance", {"seconds": 3600})
    gallery = mock.control("GET", f"dashboard/jobs/{job.uid}/gallery", params={"limit": 6})
    assert gallery["job"]["status"] == "completed" and len(gallery["items"]) == 6
    for item in gallery["items"]:
        assert item["url"].startswith(mock.origin + "/_media/") and item["width"] == 1280
        accepted = [d for d in item["drafts"] if d["accepted"]]
        assert all(d["confidence"] >= 0.5 for d in accepted) and all(d["confidence"] < 0.5 for d in item["drafts"] if not d["accepted"])
        api = http.get(f"datasets/acme-robotics/street-scenes/items/{item['uid']}/").json()["annotations"]["results"]
        mine = [r for r in api if r.get("source") == "auto_label" and json.dumps(r).find(job.uid) >= 0]
        drafted = sum(len(r["objects"]) for r in mine)
        assert drafted == len(accepted), (item["uid"], drafted, len(accepted))
        assert all(len(g["box"]) == 4 for g in item["ground_truth"])
    curve = gallery["pr_curve"]
    assert [p["threshold"] for p in curve] == sorted(p["threshold"] for p in curve)
    recalls = [p["recall"] for p in curve]
    assert recalls == sorted(recalls, reverse=True)  # a higher threshold never finds more
    at_job = next(p for p in curve if p["threshold"] == 0.5)
    assert at_job["tp"] + at_job["fn"] == curve[0]["tp"] + curve[0]["fn"]  # the same truth at every threshold
    with pytest.raises(ControlError) as missing:
        mock.control("GET", "dashboard/jobs/nope/gallery")
    assert missing.value.status == 404


def test_stream_pushes_state_and_new_journal_entries(mock, http):
    http.get("projects/", params={"limit": 1})
    with httpx.stream("GET", mock.origin + "/_mock/dashboard/stream/", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = []
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == 1:
                    http.get("tasks/", params={"limit": 1})  # lands in the next push's tail
                if len(events) == 2:
                    break
    assert {"clock", "jobs", "journal_tail"} <= set(events[0])
    assert any(e["operation_id"] == "list_projects" for e in events[0]["journal_tail"])
    assert [e["operation_id"] for e in events[1]["journal_tail"]] == ["list_tasks"]
    assert all(e["organization"] == "acme-robotics" for e in events[1]["journal_tail"])


def test_buckets_name_the_organisation_never_the_key(mock, http):
    http.get("projects/")
    buckets = mock.control("GET", "dashboard/buckets")
    assert any(b["organization"] == "acme-robotics" for b in buckets["buckets"])
    assert mock.api_key not in json.dumps(buckets)
    deliveries = mock.control("GET", "dashboard/deliveries", params={"limit": 3})["deliveries"]
    assert deliveries and all("target_host" in d and "://" not in (d["target_host"] or "") for d in deliveries)


def test_journal_filters_by_organisation(mock, http):
    http.get("projects/")
    with httpx.Client(base_url=mock.base_url + "/", headers={"X-Avala-Api-Key": "avk_mock_secondary"}) as other:
        other.get("projects/")
    acme = mock.control("GET", "journal", params={"organization": "acme-robotics"})["entries"]
    globex = mock.control("GET", "journal", params={"organization": "globex-vision"})["entries"]
    assert acme and globex and {e["organization"] for e in acme} == {"acme-robotics"}
    # A glob, as the page's filter box takes it: the page asks the server with what the user typed.
    both = mock.control("GET", "journal", params={"organization": "*-*"})["entries"]
    assert {e["organization"] for e in both} == {"acme-robotics", "globex-vision"}
    assert [e["seq"] for e in mock.control("GET", "journal", params={"organization": "acme*"})["entries"]] == [e["seq"] for e in acme]


def test_pause_and_resume_a_scaled_clock():
    with LiveServer(ServerConfig(time_scale="50", seed=1)) as server:
        paused = server.control("POST", "clock/pause", {})
        assert paused["paused"] and paused["mode"] == "manual"
        held = server.control("GET", "clock")["epoch"]
        assert server.control("GET", "clock")["epoch"] == held  # stands still
        moved = server.control("POST", "clock/advance", {"seconds": 60})
        assert moved["epoch"] == pytest.approx(held + 60)
        resumed = server.control("POST", "clock/resume", {})
        assert not resumed["paused"] and resumed["mode"] == "scaled" and resumed["scale"] == 50
        with pytest.raises(ControlError) as again:
            server.control("POST", "clock/resume", {})
        assert again.value.status == 409
