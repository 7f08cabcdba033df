"""The seed auto-label workflow and every job rule, through the official avala SDK over real HTTP."""

from __future__ import annotations

import asyncio

import avala
import pytest
from avala.errors import AuthenticationError, AvalaError, NotFoundError, ValidationError

from helpers import project_named

BIG = "Urban Detection (full city)"  # 7,000 items, 5% labeled: more than 5,000 without a result
SMALL = "Transit Vehicles"  # 400 items, none labeled, labels bus/truck/car


def unlabeled(http, project_uid: str) -> int:
    p = http.get(f"projects/{project_uid}/").json()
    return p["item_count"] - p["labeled_item_count"]


def run_to_end(mock, client, job_uid: str, step: float = 5.0, limit: int = 10_000):
    """Poll like the seed quickstart, advancing the manual clock; returns every observed state."""
    seen = [client.auto_label_jobs.get(job_uid)]
    while seen[-1].status in ("pending", "running"):
        assert len(seen) < limit, "job never finished"
        mock.advance(step)
        seen.append(client.auto_label_jobs.get(job_uid))
    return seen


def all_items(client, ds):
    cursor = None
    while True:
        page = client.datasets.list_items(ds.owner_name, ds.slug, limit=1000, cursor=cursor)
        yield from page
        if not page.has_more:
            return
        cursor = page.next_cursor


def assert_consistent(job) -> None:
    assert job.processed_items == job.successful_items + job.failed_items + job.skipped_items
    assert 0 <= job.processed_items <= job.total_items
    expected = 100.0 * job.processed_items / job.total_items if job.total_items else job.progress_pct
    assert job.progress_pct == pytest.approx(expected, abs=0.01)


def test_seed_quickstart_completes_with_consistent_counters(mock, client, http):
    project = project_named(client, SMALL)
    todo = unlabeled(http, project.uid)
    job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.6, dry_run=False)
    assert job.status == "pending" and job.total_items == 0 and job.progress_pct == 0.0
    assert job.model_type == "yolo" and job.confidence_threshold == 0.6 and job.created_at is not None

    states = run_to_end(mock, client, job.uid, step=2.0)
    final = states[-1]
    assert final.status == "completed"
    assert final.total_items == final.processed_items == todo
    assert final.progress_pct == 100.0
    assert final.started_at is not None and final.completed_at is not None
    assert final.created_at <= final.started_at <= final.completed_at
    assert any(s.status == "running" and 0 < s.progress_pct < 100 for s in states), "never observed running"
    for state in states:
        assert_consistent(state)
    progress = [s.processed_items for s in states]
    assert progress == sorted(progress), "progress went backwards"
    assert final.summary["drafts_created"] == final.successful_items
    assert sum(row["count"] for row in final.summary["by_label"]) == final.summary["detections"]
    # Drafts now exist, so the project has no unlabeled item left for a second job.
    assert unlabeled(http, project.uid) == final.skipped_items + final.failed_items


def test_create_answers_202_on_the_wire(mock, http, client):
    project = project_named(client, SMALL)
    r = http.post(f"projects/{project.uid}/auto-label/", json={})
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "pending" and body["model_type"] == "yolo" and body["confidence_threshold"] == 0.5
    assert body["labels"] == [] and body["dry_run"] is False


def test_one_job_per_project(mock, client):
    project = project_named(client, SMALL)
    first = client.auto_label_jobs.create(project.uid)
    with pytest.raises(AvalaError) as exc:
        client.auto_label_jobs.create(project.uid)
    assert exc.value.status_code == 409 and first.uid in exc.value.message
    mock.advance(2)  # running now: still refused
    assert client.auto_label_jobs.get(first.uid).status == "running"
    with pytest.raises(AvalaError):
        client.auto_label_jobs.create(project.uid)
    # Another project is not blocked.
    other = project_named(client, "Signage Audit")
    assert client.auto_label_jobs.create(other.uid).status == "pending"
    run_to_end(mock, client, first.uid, step=30)
    assert client.auto_label_jobs.create(project.uid, dry_run=True).status == "pending"


def test_at_most_5000_items_and_the_rest_wait_for_the_next_job(mock, client, http):
    project = project_named(client, BIG)
    todo = unlabeled(http, project.uid)
    assert todo > 5000
    job = client.auto_label_jobs.create(project.uid, confidence_threshold=0.05)
    first = run_to_end(mock, client, job.uid, step=60)[-1]
    assert first.total_items == 5000
    left = unlabeled(http, project.uid)
    assert left == todo - first.successful_items
    second = run_to_end(mock, client, client.auto_label_jobs.create(project.uid).uid, step=60)[-1]
    assert second.total_items == left


def test_only_items_without_results_are_processed(mock, client, http):
    project = project_named(client, "Shelf Inventory")  # 1,500 items, half labeled by humans
    raw = http.get(f"projects/{project.uid}/").json()
    assert raw["labeled_item_count"] > 0
    job = run_to_end(mock, client, client.auto_label_jobs.create(project.uid).uid, step=30)[-1]
    assert job.total_items == raw["item_count"] - raw["labeled_item_count"]
    # Items that already had a human result keep it and get no draft.
    ds = client.datasets.get(raw["dataset"])
    humans = drafts = 0
    for item in all_items(client, ds):
        for result in item.annotations["results"]:
            if result["project"] != project.uid:
                continue
            assert len([r for r in item.annotations["results"] if r["project"] == project.uid]) == 1
            humans += result["source"] == "human"
            drafts += result["source"] == "auto_label"
    assert humans == raw["labeled_item_count"]
    assert drafts == job.successful_items


def test_below_threshold_is_skipped(mock, client):
    low, high = project_named(client, SMALL), project_named(client, "Signage Audit")
    a = run_to_end(mock, client, client.auto_label_jobs.create(low.uid, confidence_threshold=0.05, dry_run=True).uid)[-1]
    b = run_to_end(mock, client, client.auto_label_jobs.create(low.uid, confidence_threshold=0.99, dry_run=True).uid)[-1]
    assert b.skipped_items > a.skipped_items
    assert b.successful_items < a.successful_items
    c = run_to_end(mock, client, client.auto_label_jobs.create(high.uid, confidence_threshold=1.0).uid)[-1]
    assert c.successful_items == 0 and c.skipped_items == c.processed_items - c.failed_items


def test_threshold_trades_recall_for_precision_in_dry_runs(mock, client):
    project = project_named(client, SMALL)
    evals = []
    for threshold in (0.3, 0.5, 0.7, 0.9):
        job = run_to_end(mock, client, client.auto_label_jobs.create(project.uid, confidence_threshold=threshold, dry_run=True).uid)[-1]
        evaluation = job.summary["evaluation"]
        assert evaluation["threshold"] == threshold
        assert evaluation["true_positives"] + evaluation["false_negatives"] > 0
        evals.append(evaluation)
    precisions = [e["precision"] for e in evals]
    recalls = [e["recall"] for e in evals]
    assert precisions == sorted(precisions) and recalls == sorted(recalls, reverse=True)
    assert precisions[-1] > 0.95 and recalls[0] > 0.8


def test_labels_filter(mock, client):
    project = project_named(client, "Intersections")  # all street labels
    job = run_to_end(mock, client, client.auto_label_jobs.create(project.uid, labels=["bus"], dry_run=True).uid)[-1]
    assert job.labels == ["bus"]
    assert {row["label"] for row in job.summary["by_label"]} == {"bus"}
    everything = run_to_end(mock, client, client.auto_label_jobs.create(project.uid, dry_run=True).uid)[-1]
    assert len(everything.summary["by_label"]) > 3
    assert everything.successful_items > job.successful_items
    with pytest.raises(ValidationError) as exc:
        client.auto_label_jobs.create(project.uid, labels=["unicorn"])
    assert "unicorn" in exc.value.message


def test_dry_run_writes_no_result(mock, client, http):
    project = project_named(client, SMALL)
    before = unlabeled(http, project.uid)
    job = run_to_end(mock, client, client.auto_label_jobs.create(project.uid, dry_run=True).uid)[-1]
    assert job.dry_run is True and job.successful_items > 0
    assert job.summary["drafts_created"] == 0 and job.summary["evaluation"] is not None
    assert unlabeled(http, project.uid) == before
    again = run_to_end(mock, client, client.auto_label_jobs.create(project.uid).uid)[-1]
    assert again.total_items == before


def test_cancel_keeps_processed_items_and_their_drafts(mock, client, http):
    project = project_named(client, SMALL)
    before = unlabeled(http, project.uid)
    job = client.auto_label_jobs.create(project.uid)
    mock.advance(6)
    running = client.auto_label_jobs.get(job.uid)
    assert running.status == "running" and 0 < running.processed_items < running.total_items
    client.auto_label_jobs.cancel(job.uid)
    cancelled = client.auto_label_jobs.get(job.uid)
    assert cancelled.status == "cancelled" and cancelled.completed_at is not None
    mock.advance(600)
    frozen = client.auto_label_jobs.get(job.uid)
    assert frozen.model_dump() == cancelled.model_dump()
    assert_consistent(frozen)
    assert unlabeled(http, project.uid) == before - frozen.successful_items
    with pytest.raises(AvalaError) as exc:  # already ended
        client.auto_label_jobs.cancel(job.uid)
    assert exc.value.status_code == 409
    nxt = run_to_end(mock, client, client.auto_label_jobs.create(project.uid).uid)[-1]
    assert nxt.total_items == before - frozen.successful_items


def test_cancel_a_pending_job(mock, client):
    project = project_named(client, SMALL)
    job = client.auto_label_jobs.create(project.uid)
    client.auto_label_jobs.cancel(job.uid)
    mock.advance(100)
    got = client.auto_label_jobs.get(job.uid)
    assert got.status == "cancelled" and got.processed_items == 0 and got.started_at is None


def test_drafts_are_attributed_to_the_bot_and_carry_the_model_geometry(mock, client):
    for name, model, geometry in ((SMALL, "yolo", "bbox"), ("Forklift Safety", "sam3", "points")):
        project = project_named(client, name)
        job = run_to_end(mock, client, client.auto_label_jobs.create(project.uid, model_type=model).uid, step=30)[-1]
        raw_project = client.projects.get(project.uid)
        assert raw_project.uid == project.uid
        ds_uid = client._transport.request("GET", f"/projects/{project.uid}/")["dataset"]
        ds = client.datasets.get(ds_uid)
        drafts = [
            r for page_item in all_items(client, ds)
            for r in page_item.annotations["results"] if r["project"] == project.uid and r["status"] == "draft"
        ]
        assert drafts, "no drafts written"
        assert {r["created_by"] for r in drafts} == {"avala-bot"}
        assert {r["auto_label_job"] for r in drafts} == {job.uid}
        assert all(geometry in obj and obj["confidence"] >= 0.5 for r in drafts for obj in r["objects"])


def test_model_names(mock, client):
    project = project_named(client, SMALL)
    for alias in ("yolov8", "sam", "object_detection"):
        job = client.auto_label_jobs.create(project.uid, model_type=alias, dry_run=True)
        assert job.model_type == alias  # echoed unchanged
        client.auto_label_jobs.cancel(job.uid)
    with pytest.raises(ValidationError) as exc:
        client.auto_label_jobs.create(project.uid, model_type="gpt-vision")
    assert exc.value.status_code == 400
    with pytest.raises(ValidationError):
        client.auto_label_jobs.create(project.uid, confidence_threshold=1.5)


def test_sam_is_slower_than_yolo(mock, client):
    yolo = client.auto_label_jobs.create(project_named(client, SMALL).uid)
    sam = client.auto_label_jobs.create(project_named(client, "Beverage Shelf").uid, model_type="sam3")
    mock.advance(11)
    y, s = client.auto_label_jobs.get(yolo.uid), client.auto_label_jobs.get(sam.uid)
    assert y.processed_items > 2.5 * s.processed_items  # ~50 ms vs ~200 ms per item


def test_list_filters_and_paginates(mock, client):
    projects = [project_named(client, n) for n in (SMALL, "Signage Audit", "Price Tags")]
    history = [j.uid for j in client.auto_label_jobs.list(limit=100)]  # the account's past jobs, newest first
    assert history, "the default world has auto-label history"
    created = []
    for p in projects:
        created.append(client.auto_label_jobs.create(p.uid, dry_run=True).uid)
    client.auto_label_jobs.cancel(created[1])
    run_to_end(mock, client, created[0])  # the third job (not cancelled) completes meanwhile too
    for p in projects[:2]:
        created.append(client.auto_label_jobs.create(p.uid, dry_run=True).uid)
    # newest first, no duplicates or gaps whatever the page size
    for limit in (1, 2, 3, 100):
        seen, cursor = [], None
        while True:
            page = client.auto_label_jobs.list(limit=limit, cursor=cursor)
            seen += [j.uid for j in page]
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert seen == list(reversed(created)) + history
    only = client.auto_label_jobs.list(project=projects[0].uid)
    assert {j.uid for j in only} == {created[0], created[3]}
    assert client.auto_label_jobs.list(project="no-such-project").items == []
    # status filter (TS SDK / seeds): over raw HTTP since the Python SDK does not send it
    statuses = {
        s: {j["uid"] for j in client._transport.request("GET", "/auto-label-jobs/", params={"status": s})["results"]}
        - set(history)
        for s in ("pending", "completed", "cancelled")
    }
    assert statuses["cancelled"] == {created[1]}
    assert statuses["completed"] == {created[0], created[2]}
    assert statuses["pending"] == {created[3], created[4]}
    with pytest.raises(ValidationError):
        client._transport.request("GET", "/auto-label-jobs/", params={"status": "exploded"})


def test_errors_map_to_sdk_exceptions(mock, client):
    with pytest.raises(NotFoundError):
        client.auto_label_jobs.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        client.auto_label_jobs.create("no-such-project")
    with pytest.raises(NotFoundError):
        client.auto_label_jobs.cancel("no-such-job")
    bad = avala.Client(api_key="avk_wrong_key_123", base_url=mock.base_url)
    with pytest.raises(AuthenticationError) as exc:
        bad.auto_label_jobs.list()
    assert "avk_wrong_key_123" not in str(exc.value) and "avk_wrong_key_123" not in str(exc.value.body)


def test_second_org_cannot_see_first_orgs_jobs(mock, client):
    from helpers import SECOND_ORG_KEY

    job = client.auto_label_jobs.create(project_named(client, SMALL).uid)
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    theirs = {j.uid for j in other.auto_label_jobs.list(limit=100)}
    assert job.uid not in theirs
    assert not theirs & {j.uid for j in client.auto_label_jobs.list(limit=100)}
    with pytest.raises(NotFoundError):
        other.auto_label_jobs.get(job.uid)
    with pytest.raises(NotFoundError):
        other.auto_label_jobs.cancel(job.uid)
    with pytest.raises(NotFoundError):
        other.auto_label_jobs.create(project_named(client, SMALL).uid)
    assert client.auto_label_jobs.get(job.uid).status == "pending"


def test_async_client_runs_the_quickstart(mock, client):
    project = project_named(client, SMALL)

    async def flow() -> list:
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            job = await ac.auto_label_jobs.create(project.uid, model_type="sam3", confidence_threshold=0.7)
            seen = [job]
            while seen[-1].status in ("pending", "running"):
                await asyncio.to_thread(mock.advance, 10)
                seen.append(await ac.auto_label_jobs.get(job.uid))
            page = await ac.auto_label_jobs.list(project=project.uid)
            assert [j.uid for j in page.items] == [job.uid]
            return seen

    seen = asyncio.run(flow())
    assert seen[-1].status == "completed" and seen[-1].processed_items == seen[-1].total_items > 0
    for s in seen:
        assert_consistent(s)
