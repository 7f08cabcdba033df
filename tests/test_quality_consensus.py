"""Quality targets and consensus through the official SDK (sync, async, CLI) and raw HTTP, on the
session server's manual clock."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess

import avala
import pytest
from avala.errors import AvalaError, NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli, project_named

FRESH = "Transit Vehicles"  # 400 items, none labeled: no human result, no draft
LABELED = "Shelf Inventory"  # 1,500 items, half labeled by humans: consensus has items to score
SEEDED_TARGETS = {"Labeling progress", "Draft precision", "Annotator agreement", "Rejection ceiling"}


def clock_epoch(mock) -> float:
    return mock.clock()["epoch"]


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), "-o", "json", *args)


def second_client(mock) -> avala.Client:
    return avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)


def run_job(mock, client, project_uid: str, **options):
    job = client.auto_label_jobs.create(project_uid, **options)
    for _ in range(200):
        mock.advance(10)
        job = client.auto_label_jobs.get(job.uid)
        if job.status not in ("pending", "running"):
            return job
    raise AssertionError("job never finished")


# ── quality targets ───────────────────────────────────────────────────────────────────────────────


def test_seeded_targets_are_populated_and_evaluated(client, http):
    project = project_named(client, LABELED)
    counts = http.get(f"projects/{project.uid}/").json()
    page = client.quality_targets.list(project.uid)
    assert {t.name for t in page.items} == SEEDED_TARGETS
    progress = next(t for t in page.items if t.metric == "completion_rate")
    assert progress.operator == "gte" and progress.threshold == 0.25 and progress.severity == "warning"
    assert progress.last_evaluated_at is not None and progress.created_at is not None
    assert progress.last_value == pytest.approx(counts["labeled_item_count"] / counts["item_count"], abs=1e-6)
    assert progress.is_breached is False and progress.breach_count == 0
    assert progress.notify_emails and "@" in progress.notify_emails[0]
    inactive = next(t for t in page.items if t.name == "Rejection ceiling")
    assert inactive.is_active is False and inactive.last_evaluated_at is None


def test_target_lifecycle_create_list_get_update_delete(mock, client, http):
    project = project_named(client, FRESH)
    created = client.quality_targets.create(project.uid, name="Box IoU", metric="iou", threshold=0.7)
    assert created.operator == "gt"  # omitted operator defaults to gt (Python optional, TS required)
    assert created.is_active is True and created.notify_webhook is True and created.notify_emails == []
    assert created.is_breached is False and created.breach_count == 0 and created.last_value is None
    assert created.created_at == created.updated_at

    listed = client.quality_targets.list(project.uid, limit=100)
    assert created.uid in [t.uid for t in listed.items]
    got = client.quality_targets.get(project.uid, created.uid)
    assert got.name == "Box IoU" and got.metric == "iou" and got.threshold == 0.7

    mock.advance(30)
    updated = client.quality_targets.update(project.uid, created.uid, threshold=0.8, operator="gte",
                                            severity="critical", notify_emails=["qa@example.com"], is_active=False)
    assert (updated.threshold, updated.operator, updated.severity, updated.is_active) == (0.8, "gte", "critical", False)
    assert updated.updated_at > updated.created_at
    again = client.quality_targets.get(project.uid, created.uid)
    assert again.notify_emails == ["qa@example.com"] and again.threshold == 0.8 and again.is_active is False
    assert again.name == "Box IoU"  # PATCH keeps what it was not given

    assert client.quality_targets.delete(project.uid, created.uid) is None
    with pytest.raises(NotFoundError):
        client.quality_targets.get(project.uid, created.uid)
    with pytest.raises(NotFoundError):
        client.quality_targets.update(project.uid, created.uid, threshold=0.1)
    assert http.delete(f"projects/{project.uid}/quality-targets/{created.uid}/").status_code == 404
    assert created.uid not in [t.uid for t in client.quality_targets.list(project.uid, limit=100).items]


def test_target_errors_on_the_wire(client, http):
    project = project_named(client, FRESH)
    base = f"projects/{project.uid}/quality-targets/"
    r = http.post(base, json={"name": "x", "metric": "happiness", "threshold": 1})
    assert r.status_code == 400 and "happiness" in r.json()["detail"] and "completion_rate" in r.json()["detail"]
    assert "metric" in r.json()["errors"]
    with pytest.raises(ValidationError):
        client.quality_targets.create(project.uid, name="x", metric="iou", threshold=0.5, operator="between")
    assert http.post(base, json={"name": "x", "metric": "iou"}).status_code == 400  # threshold is required
    assert http.post(base, json={"name": "x", "metric": "iou", "threshold": "high"}).status_code == 400
    assert http.post("projects/nope/quality-targets/", json={"name": "x", "metric": "iou", "threshold": 1}).status_code == 404
    with pytest.raises(NotFoundError):
        client.quality_targets.list("no-such-project")
    with pytest.raises(NotFoundError):
        client.quality_targets.evaluate("no-such-project")

    r = http.post(base, json={"name": "Recall floor", "metric": "recall", "threshold": 0.6, "operator": "gte"})
    assert r.status_code == 201 and r.json()["operator"] == "gte"
    uid = r.json()["uid"]
    dup = http.post(base, json={"name": "Recall floor", "metric": "iou", "threshold": 0.6})
    assert dup.status_code == 409 and "Recall floor" in dup.json()["detail"]
    other = http.post(base, json={"name": "Other", "metric": "iou", "threshold": 0.6}).json()
    assert http.patch(f"{base}{other['uid']}/", json={"name": "Recall floor"}).status_code == 409
    bad = http.patch(f"{base}{uid}/", json={"metric": "vibes", "threshold": 0.1})
    assert bad.status_code == 400
    assert http.get(f"{base}{uid}/").json()["threshold"] == 0.6  # nothing half-written
    # a target is addressed through its own project only
    elsewhere = project_named(client, LABELED)
    assert http.get(f"projects/{elsewhere.uid}/quality-targets/{uid}/").status_code == 404


def test_evaluate_tracks_breaches_on_the_clock(mock, client, http):
    project = project_named(client, FRESH)
    done = client.quality_targets.create(project.uid, name="Done", metric="completion_rate", threshold=0.5, operator="gte")
    iou = client.quality_targets.create(project.uid, name="IoU", metric="iou", threshold=0.6, severity="critical")
    off = client.quality_targets.create(project.uid, name="Off", metric="completion_rate", threshold=2, is_active=False)

    r = http.post(f"projects/{project.uid}/quality-targets/evaluate/")
    assert r.status_code == 200 and isinstance(r.json(), list)
    first = {e["uid"]: e for e in r.json()}
    # no item has a result: completion is 0 (a value), IoU has nothing to measure (left out), "Off" is inactive
    assert set(first) >= {done.uid} and iou.uid not in first and off.uid not in first
    assert first[done.uid]["current_value"] == 0.0 and first[done.uid]["is_breached"] is True
    t0 = clock_epoch(mock)
    state = client.quality_targets.get(project.uid, done.uid)
    assert state.is_breached and state.breach_count == 1 and state.last_value == 0.0
    assert state.last_breached_at == state.last_evaluated_at
    assert state.last_evaluated_at.timestamp() == pytest.approx(t0, abs=1e-3)

    mock.advance(60)
    client.quality_targets.evaluate(project.uid)
    state = client.quality_targets.get(project.uid, done.uid)
    assert state.breach_count == 1, "staying in breach is not a new breach"
    assert state.last_evaluated_at > state.last_breached_at
    assert client.quality_targets.get(project.uid, off.uid).last_evaluated_at is None

    job = run_job(mock, client, project.uid, model_type="yolo", confidence_threshold=0.5)
    assert job.status == "completed" and job.successful_items > 0
    evaluations = {e.uid: e for e in client.quality_targets.evaluate(project.uid)}
    completion = evaluations[done.uid].current_value
    assert completion == pytest.approx(job.successful_items / 400, abs=1e-6)
    assert evaluations[done.uid].is_breached is False
    box_iou = evaluations[iou.uid].current_value
    assert 0.6 < box_iou < 1.0 and evaluations[iou.uid].is_breached is False
    assert evaluations[iou.uid].severity == "critical" and evaluations[iou.uid].operator == "gt"

    client.quality_targets.update(project.uid, done.uid, threshold=0.99)
    mock.advance(5)
    again = {e.uid: e for e in client.quality_targets.evaluate(project.uid)}
    assert again[done.uid].is_breached is True
    state = client.quality_targets.get(project.uid, done.uid)
    assert state.breach_count == 2 and state.last_breached_at == state.last_evaluated_at


def test_model_quality_metrics_follow_the_drafts_and_the_threshold(mock, client):
    strict, loose = project_named(client, "Forklift Safety"), project_named(client, "Signage Audit")
    for project in (strict, loose):
        for metric in ("iou", "precision", "recall", "f1", "accuracy", "draft_ratio"):
            client.quality_targets.create(project.uid, name=metric, metric=metric, threshold=0.0, operator="gte")
    run_job(mock, client, strict.uid, model_type="sam3", confidence_threshold=0.85)
    run_job(mock, client, loose.uid, model_type="yolo", confidence_threshold=0.3)
    s = {e.metric: e.current_value for e in client.quality_targets.evaluate(strict.uid)}
    lo = {e.metric: e.current_value for e in client.quality_targets.evaluate(loose.uid)}
    for values in (s, lo):
        assert 0 < values["recall"] < 1 and 0 < values["precision"] <= 1 and 0 < values["accuracy"] < 1
        p, r = values["precision"], values["recall"]
        assert values["f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-5)
        assert values["draft_ratio"] == 1.0  # these projects had no human result: every result is a draft
    # a high threshold keeps fewer, surer predictions: fewer objects found, fewer false positives
    assert s["recall"] < lo["recall"] and s["precision"] > lo["precision"]


def test_async_client_quality_targets(mock):
    async def scenario():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            project = (await c.projects.list(limit=100)).items[0]
            t = await c.quality_targets.create(project.uid, name="Async", metric="consensus_score", threshold=0.95,
                                               operator="gte", severity="warning")
            listed = await c.quality_targets.list(project.uid, limit=2)
            evaluations = await c.quality_targets.evaluate(project.uid)
            got = await c.quality_targets.get(project.uid, t.uid)
            await c.quality_targets.delete(project.uid, t.uid)
            return t, listed, evaluations, got

    t, listed, evaluations, got = asyncio.run(scenario())
    assert len(listed.items) == 2 and listed.has_more
    mine = next(e for e in evaluations if e.uid == t.uid)
    assert 0.5 < mine.current_value < 0.95 and mine.is_breached is True
    assert got.breach_count == 1 and got.last_value == mine.current_value


def test_cli_lists_and_gets_targets(mock, client):
    project = project_named(client, LABELED)
    out = cli(mock, "quality-targets", "list", "--project", project.uid)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["name"] for r in rows} == SEEDED_TARGETS
    uid = rows[0]["uid"]
    got = cli(mock, "quality-targets", "get", "--project", project.uid, uid)
    assert got.returncode == 0 and json.loads(got.stdout)["uid"] == uid
    missing = cli(mock, "quality-targets", "get", "--project", project.uid, "nope")
    assert missing.returncode != 0 and "404" in missing.stdout + missing.stderr


def test_targets_are_tenant_isolated(mock, client, http):
    project = project_named(client, FRESH)
    mine = client.quality_targets.create(project.uid, name="Mine", metric="completion_rate", threshold=0.1)
    other = second_client(mock)
    try:
        with pytest.raises(NotFoundError):
            other.quality_targets.list(project.uid)
        with pytest.raises(NotFoundError):
            other.quality_targets.get(project.uid, mine.uid)
        with pytest.raises(NotFoundError):
            other.quality_targets.update(project.uid, mine.uid, threshold=0.9)
        with pytest.raises(NotFoundError):
            other.quality_targets.delete(project.uid, mine.uid)
        with pytest.raises(NotFoundError):
            other.quality_targets.evaluate(project.uid)
        with pytest.raises(NotFoundError):
            other.quality_targets.create(project.uid, name="Intruder", metric="iou", threshold=0.5)
        own = other.projects.list().items[0]
        theirs = other.quality_targets.list(own.uid, limit=100).items
        assert theirs and mine.uid not in {t.uid for t in theirs}
        # their project's uid is unknown to the first organisation as well
        assert http.get(f"projects/{own.uid}/quality-targets/").status_code == 404
    finally:
        other.close()
    assert client.quality_targets.get(project.uid, mine.uid).threshold == 0.1


# ── consensus ─────────────────────────────────────────────────────────────────────────────────────


def test_consensus_config_defaults_merge_and_errors(mock, client, http):
    project = project_named(client, FRESH)
    config = client.consensus.get_config(project.uid)
    assert (config.iou_threshold, config.min_agreement_ratio, config.min_annotations) == (0.5, 0.5, 2)
    assert config.uid and config.created_at is not None

    mock.advance(10)
    merged = client.consensus.update_config(project.uid, iou_threshold=0.75)
    assert (merged.iou_threshold, merged.min_agreement_ratio, merged.min_annotations) == (0.75, 0.5, 2)
    assert merged.uid == config.uid and merged.updated_at > config.updated_at
    merged = client.consensus.update_config(project.uid, min_annotations=3)
    assert (merged.iou_threshold, merged.min_annotations) == (0.75, 3)
    assert client.consensus.get_config(project.uid).iou_threshold == 0.75

    r = http.put(f"projects/{project.uid}/consensus/config/", json={"iou_threshold": 1.5})
    assert r.status_code == 400 and "iou_threshold" in r.json()["errors"]
    assert http.put(f"projects/{project.uid}/consensus/config/", json={"min_annotations": 0}).status_code == 400
    assert http.put(f"projects/{project.uid}/consensus/config/", json={"color": "red"}).status_code == 400
    assert http.put(f"projects/{project.uid}/consensus/config/", json={}).json()["iou_threshold"] == 0.75
    assert client.consensus.get_config(project.uid).min_annotations == 3
    for call in (lambda: client.consensus.get_config("nope"), lambda: client.consensus.update_config("nope", iou_threshold=0.1),
                 lambda: client.consensus.get_summary("nope"), lambda: client.consensus.list_scores("nope"),
                 lambda: client.consensus.compute("nope")):
        with pytest.raises(NotFoundError):
            call()


def test_seeded_summary_and_scores_are_consistent(client, http):
    project = project_named(client, LABELED)
    summary = client.consensus.get_summary(project.uid)
    assert summary.total_items > 100 and 0 < summary.items_with_consensus <= summary.total_items
    assert 0.0 <= summary.min_score <= summary.median_score <= summary.max_score <= 1.0
    assert 0.5 < summary.mean_score < 1.0
    assert sum(summary.score_distribution.values()) == summary.total_items
    tasks = {t.name for t in client.tasks.list(project=project.uid, limit=100).items}
    assert summary.by_task_name and {row["task_name"] for row in summary.by_task_name} <= tasks

    scores, cursor = [], None
    while True:
        page = client.consensus.list_scores(project.uid, limit=200, cursor=cursor)
        scores.extend(page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(scores) == summary.total_items == len({s.uid for s in scores})
    values = [s.score for s in scores]
    assert statistics.fmean(values) == pytest.approx(summary.mean_score, abs=1e-3)
    assert statistics.median(values) == pytest.approx(summary.median_score, abs=1e-3)
    assert all(s.annotator_count >= 2 and len(s.details["annotators"]) == s.annotator_count for s in scores)
    config = client.consensus.get_config(project.uid)
    agreeing = [s for s in scores if s.annotator_count >= config.min_annotations and s.score >= config.min_agreement_ratio]
    assert len(agreeing) == summary.items_with_consensus
    first = scores[0]
    assert first.task_name in tasks and first.score_type == "iou" and first.created_at is not None
    ds = client.datasets.get(http.get(f"projects/{project.uid}/").json()["dataset"])
    assert client.datasets.get_item(ds.owner_name, ds.slug, first.dataset_item_uid).uid == first.dataset_item_uid


def test_compute_runs_on_the_clock_and_applies_the_current_config(mock, client, http):
    project = project_named(client, LABELED)
    before = client.consensus.get_summary(project.uid)
    client.consensus.update_config(project.uid, iou_threshold=0.95)
    assert client.consensus.get_summary(project.uid) == before  # a config change alone recomputes nothing

    result = client.consensus.compute(project.uid)
    assert result.status == "started" and project.uid in result.message
    with pytest.raises(AvalaError) as busy:
        client.consensus.compute(project.uid)
    assert busy.value.status_code == 409
    r = http.post(f"projects/{project.uid}/consensus/compute/", json={})  # the TS body variant
    assert r.status_code == 409 and "already running" in r.json()["detail"]
    mock.advance(1)
    assert client.consensus.get_summary(project.uid) == before, "visible before the computation finished"

    mock.advance(600)
    after = client.consensus.get_summary(project.uid)
    assert after.total_items == before.total_items
    assert after.mean_score < before.mean_score - 0.1
    assert after.items_with_consensus < before.items_with_consensus
    page = client.consensus.list_scores(project.uid, limit=5)
    assert all(s.details["iou_threshold"] == 0.95 for s in page.items)

    # a finished computation frees the project: the TS `{}` body and the Python no-body both start one
    client.consensus.update_config(project.uid, iou_threshold=0.5, min_annotations=4)
    assert http.post(f"projects/{project.uid}/consensus/compute/", json={}).json()["status"] == "started"
    mock.advance(600)
    strict = client.consensus.get_summary(project.uid)
    four = sum(1 for s in client.consensus.list_scores(project.uid, limit=1000).items if s.annotator_count == 4)
    assert strict.items_with_consensus <= four < strict.total_items


def test_consensus_score_metric_follows_the_recomputation(mock, client):
    project = project_named(client, LABELED)
    target = client.quality_targets.create(project.uid, name="Agreement", metric="consensus_score", threshold=0.7,
                                           operator="gte")
    first = next(e for e in client.quality_targets.evaluate(project.uid) if e.uid == target.uid)
    assert first.current_value == pytest.approx(client.consensus.get_summary(project.uid).mean_score, abs=1e-4)
    assert first.is_breached is False
    client.consensus.update_config(project.uid, iou_threshold=0.97)
    client.consensus.compute(project.uid)
    mock.advance(600)
    second = next(e for e in client.quality_targets.evaluate(project.uid) if e.uid == target.uid)
    assert second.current_value < 0.7 and second.is_breached is True
    assert client.quality_targets.get(project.uid, target.uid).breach_count == 1


def test_project_without_human_results_has_zero_summary(mock, client):
    project = project_named(client, FRESH)
    summary = client.consensus.get_summary(project.uid)
    assert (summary.total_items, summary.items_with_consensus, summary.mean_score) == (0, 0, 0.0)
    assert client.consensus.list_scores(project.uid).items == []
    assert client.consensus.compute(project.uid).status == "started"
    mock.advance(60)
    assert client.consensus.get_summary(project.uid).total_items == 0


def test_async_client_consensus(mock):
    async def scenario():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            project = next(p for p in (await c.projects.list(limit=100)).items if p.name == LABELED)
            config = await c.consensus.update_config(project.uid, min_agreement_ratio=0.9)
            started = await c.consensus.compute(project.uid)
            mock.advance(600)
            return config, started, await c.consensus.get_summary(project.uid), await c.consensus.list_scores(project.uid, limit=30)

    config, started, summary, page = asyncio.run(scenario())
    assert config.min_agreement_ratio == 0.9 and started.status == "started"
    assert summary.total_items > 0 and len(page.items) == 30 and page.has_more
    expected = [s.score >= 0.9 and s.annotator_count >= config.min_annotations for s in page.items]
    assert [s.details["has_consensus"] for s in page.items] == expected and any(expected) and not all(expected)


def test_cli_consensus_summary_scores_and_config(mock, client):
    project = project_named(client, LABELED)
    summary = cli(mock, "consensus", "summary", "--project", project.uid)
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["total_items"] == str(client.consensus.get_summary(project.uid).total_items)
    scores = cli(mock, "consensus", "scores", "--project", project.uid, "--limit", "4")
    assert scores.returncode == 0 and len(json.loads(scores.stdout)) == 4
    config = cli(mock, "consensus", "config", "--project", project.uid, "--iou-threshold", "0.65")
    assert config.returncode == 0, config.stderr
    assert client.consensus.get_config(project.uid).iou_threshold == 0.65


def test_consensus_is_tenant_isolated(mock, client):
    project = project_named(client, LABELED)
    other = second_client(mock)
    try:
        for call in (lambda: other.consensus.get_summary(project.uid), lambda: other.consensus.list_scores(project.uid),
                     lambda: other.consensus.get_config(project.uid), lambda: other.consensus.compute(project.uid),
                     lambda: other.consensus.update_config(project.uid, iou_threshold=0.9)):
            with pytest.raises(NotFoundError):
                call()
        own = next(p for p in other.projects.list().items if p.name == "Field Segmentation")
        own_scores = other.consensus.list_scores(own.uid, limit=1000).items
        mine = {s.dataset_item_uid for s in client.consensus.list_scores(project.uid, limit=1000).items}
        assert own_scores and not mine & {s.dataset_item_uid for s in own_scores}
    finally:
        other.close()
    assert client.consensus.get_config(project.uid).iou_threshold != 0.9
