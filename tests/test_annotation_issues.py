"""QC annotation issues and the QC tool catalogue through the official SDK (sync and async) and raw HTTP."""

from __future__ import annotations

import asyncio

import avala
import pytest
from avala.errors import NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, project_named

OWNER, SLUG = "acme-robotics", "drive-logs"
TERMINAL = {"completed", "cant_reproduce", "no_action_taken", "resolved", "closed"}


def sequences(client):
    return client.datasets.list_sequences(OWNER, SLUG, limit=100).items


def cuboid(client):
    """The default lidar tool and a few of its problems, by title."""
    tool = next(t for t in client.annotation_issues.list_tools(dataset_type="lidar") if t.default)
    return tool, {p.title: p for p in tool.problems}


def new_issue(client, sequence_uid: str, **extra):
    tool, problems = cuboid(client)
    return client.annotation_issues.create(sequence_uid, tool_uid=tool.uid, problem_uid=problems["Wrong class"].uid, **extra)


def test_tools_per_dataset_type(client, http):
    lidar = client.annotation_issues.list_tools(dataset_type="lidar")
    image = client.annotation_issues.list_tools(dataset_type="image")
    assert {t.dataset_type for t in lidar} == {"lidar"} and {t.dataset_type for t in image} == {"image"}
    assert sum(1 for t in lidar if t.default) == 1 and sum(1 for t in image if t.default) == 1
    assert "Cuboid 3D" in {t.name for t in lidar} and "Bounding Box" in {t.name for t in image}
    assert not {t.uid for t in lidar} & {t.uid for t in image}
    assert all(t.problems and all(p.uid and p.title for p in t.problems) for t in lidar + image)
    # the seed vocabulary's `pointcloud` is the lidar catalogue
    assert [t.uid for t in client.annotation_issues.list_tools(dataset_type="pointcloud")] == [t.uid for t in lidar]
    with pytest.raises(ValidationError):
        client.annotation_issues.list_tools(dataset_type="hologram")
    r = http.get("qc-available-tools/")
    assert r.status_code == 400 and "dataset_type" in r.json()["errors"]
    # Avala's catalogue: the same for every organisation
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=str(http.base_url).rstrip("/"))
    try:
        assert [t.uid for t in other.annotation_issues.list_tools(dataset_type="lidar")] == [t.uid for t in lidar]
    finally:
        other.close()


def test_seeded_issues_are_populated(mock, client):
    issues = client.annotation_issues.list_by_dataset(OWNER, SLUG)
    seqs = sequences(client)
    assert len(issues) == 4 * len(seqs)
    assert {i.sequence_uid for i in issues} == {s.uid for s in seqs}
    created = [i.created_at for i in issues]
    assert created == sorted(created), "oldest first"
    closed = [i for i in issues if i.status in TERMINAL]
    assert closed and all(i.closed_at is not None and i.closed_at > i.created_at for i in closed)
    assert all(i.closed_at is None for i in issues if i.status not in TERMINAL)
    first = issues[0]
    assert first.tool.uid and first.problem.title and first.reporter.username and first.priority and first.severity
    assert first.frames_affected and first.dataset_item_uid.startswith("seq") and first.object_uid
    assert {i.reporter.type for i in issues} == {"customer", "agent"}


def test_issue_lifecycle(mock, client, http):
    seq = sequences(client)[1]
    project = project_named(client, "Urban Detection (full city)")
    tool, problems = cuboid(client)
    detail = client.datasets.get_sequence(OWNER, SLUG, seq.uid)
    frame_key = detail.frames[4]["key"]
    before = len(client.annotation_issues.list_by_sequence(seq.uid))
    on_frame = [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid, dataset_item_uid=frame_key)]  # seeded ones
    of_project = [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid, project_uid=project.uid)]

    issue = client.annotation_issues.create(
        seq.uid, tool_uid=tool.uid, problem_uid=problems["Wrong orientation"].uid, dataset_item_uid=frame_key,
        project_uid=project.uid, priority="high", severity="critical", description="Heading flipped on the van",
        wrong_class="car", correct_class="truck", should_re_annotate=True, should_delete=False, frames_affected="3-7",
        coordinates={"x": 12.5, "y": -3.0, "z": 0.8}, query_params={"frame": 3}, object_uid="obj-42",
    )
    assert issue.status == "open" and issue.closed_at is None and issue.sequence_uid == seq.uid
    assert issue.project.uid == project.uid and issue.project.name == project.name
    assert issue.tool.uid == tool.uid and issue.tool.name == "Cuboid 3D" and issue.tool.default is True
    assert issue.problem.title == "Wrong orientation" and issue.dataset_item_uid == frame_key
    assert issue.reporter.username == "ada" and issue.reporter.type == "customer"
    assert (issue.coordinates, issue.query_params, issue.object_uid) == ({"x": 12.5, "y": -3.0, "z": 0.8}, {"frame": 3}, "obj-42")
    assert issue.should_re_annotate is True and issue.should_delete is False and issue.frames_affected == "3-7"
    assert issue.created_at.timestamp() == pytest.approx(mock.clock()["epoch"], abs=1e-3)

    listed = client.annotation_issues.list_by_sequence(seq.uid)
    assert len(listed) == before + 1 and listed[-1].uid == issue.uid
    assert [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid, dataset_item_uid=frame_key)] == [*on_frame, issue.uid]
    assert [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid, project_uid=project.uid)] == [*of_project, issue.uid]
    assert client.annotation_issues.list_by_sequence(seq.uid, project_uid="other") == []
    assert issue.uid in [i.uid for i in client.annotation_issues.list_by_dataset(OWNER, SLUG, sequence_uid=seq.uid)]
    assert issue.uid not in [i.uid for i in client.annotation_issues.list_by_dataset(OWNER, SLUG, sequence_uid=sequences(client)[0].uid)]

    mock.advance(100)
    moved = client.annotation_issues.update(seq.uid, issue.uid, status="in_review", priority="low",
                                            tool_uid=tool.uid, problem_uid=problems["Wrong dimensions"].uid)
    assert (moved.status, moved.priority, moved.problem.title, moved.closed_at) == ("in_review", "low", "Wrong dimensions", None)
    assert moved.description == "Heading flipped on the van"  # PATCH keeps the rest

    mock.advance(3600)
    closed = client.annotation_issues.update(seq.uid, issue.uid, status="completed")
    assert closed.closed_at.timestamp() == pytest.approx(mock.clock()["epoch"], abs=1e-3)
    assert (closed.closed_at - closed.created_at).total_seconds() == pytest.approx(3700)
    mock.advance(50)
    still = client.annotation_issues.update(seq.uid, issue.uid, status="resolved")
    assert still.closed_at == closed.closed_at, "terminal to terminal keeps the first closing time"
    reopened = client.annotation_issues.update(seq.uid, issue.uid, status="relabeling")
    assert reopened.closed_at is None and reopened.status == "relabeling"
    persisted = next(i for i in client.annotation_issues.list_by_sequence(seq.uid) if i.uid == issue.uid)
    assert persisted.status == "relabeling" and persisted.problem.title == "Wrong dimensions" and persisted.priority == "low"

    assert http.delete(f"sequences/{seq.uid}/annotation-issues/{issue.uid}/").status_code == 204
    assert issue.uid not in [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid)]
    assert issue.uid not in [i.uid for i in client.annotation_issues.list_by_dataset(OWNER, SLUG)]
    with pytest.raises(NotFoundError):
        client.annotation_issues.update(seq.uid, issue.uid, status="open")
    with pytest.raises(NotFoundError):
        client.annotation_issues.delete(seq.uid, issue.uid)


def test_issue_references_are_checked(client, http):
    seqs = sequences(client)
    seq = seqs[0]
    tool, problems = cuboid(client)
    image_tool = client.annotation_issues.list_tools(dataset_type="image")[0]
    other_tool = next(t for t in client.annotation_issues.list_tools(dataset_type="lidar") if not t.default)
    base = f"sequences/{seq.uid}/annotation-issues/"
    ok = {"sequence_uid": seq.uid, "tool_uid": tool.uid, "problem_uid": problems["Wrong class"].uid}
    before = len(http.get(base).json())

    cases = {
        "sequence_uid": {**ok, "sequence_uid": seqs[1].uid},
        "tool_uid": {**ok, "tool_uid": "no-such-tool"},
        "problem_uid": {**ok, "problem_uid": other_tool.problems[-1].uid},
        "project_uid": {**ok, "project_uid": "no-such-project"},
        "dataset_item_uid": {**ok, "dataset_item_uid": "seq999/frame_00001"},
        "frames_affected": {**ok, "frames_affected": "20-99"},
    }
    for field, body in cases.items():
        r = http.post(base, json=body)
        assert r.status_code == 400, (field, r.text)
        assert field in r.json()["errors"], (field, r.json())
    r = http.post(base, json={**ok, "tool_uid": image_tool.uid, "problem_uid": image_tool.problems[0].uid})
    assert r.status_code == 400 and "image" in r.json()["detail"]  # an image tool on a lidar sequence
    assert http.post(base, json={**ok, "frames_affected": "five"}).status_code == 400
    assert http.post(base, json={"tool_uid": tool.uid, "problem_uid": ok["problem_uid"]}).status_code == 400  # sequence_uid is required
    assert http.post(base, json={**ok, "colour": "red"}).status_code == 400
    assert len(http.get(base).json()) == before, "a rejected create wrote something"

    with pytest.raises(NotFoundError):
        client.annotation_issues.create("no-such-sequence", tool_uid=tool.uid, problem_uid=ok["problem_uid"])
    with pytest.raises(NotFoundError):
        client.annotation_issues.list_by_sequence("no-such-sequence")
    with pytest.raises(NotFoundError):
        client.annotation_issues.list_by_dataset(OWNER, "no-such-dataset")
    with pytest.raises(NotFoundError):
        client.annotation_issues.get_metrics("someone-else", SLUG)

    issue = new_issue(client, seq.uid, priority="medium")
    r = http.patch(f"{base}{issue.uid}/", json={"status": "completed", "problem_uid": other_tool.problems[0].uid})
    assert r.status_code == 400 and "problem_uid" in r.json()["errors"]
    r = http.patch(f"{base}{issue.uid}/", json={"status": "completed", "tool_uid": other_tool.uid})  # keeps a problem of the old tool
    assert r.status_code == 400
    kept = next(i for i in client.annotation_issues.list_by_sequence(seq.uid) if i.uid == issue.uid)
    assert kept.status == "open" and kept.closed_at is None, "a rejected PATCH changed the issue"
    moved = client.annotation_issues.update(seq.uid, issue.uid, tool_uid=other_tool.uid, problem_uid=other_tool.problems[0].uid)
    assert moved.tool.uid == other_tool.uid and moved.problem.uid == other_tool.problems[0].uid
    # an issue is addressed through its own sequence
    assert http.patch(f"sequences/{seqs[2].uid}/annotation-issues/{issue.uid}/", json={"status": "closed"}).status_code == 404
    assert http.delete(f"sequences/{seqs[2].uid}/annotation-issues/{issue.uid}/").status_code == 404


def test_metrics_count_and_time_on_the_clock(mock, client):
    seq = sequences(client)[3]
    seeded = client.annotation_issues.list_by_sequence(seq.uid)
    for old in seeded:
        client.annotation_issues.delete(seq.uid, old.uid)
    assert client.annotation_issues.get_metrics(OWNER, SLUG, sequence_uid=seq.uid).status_count == {}

    a = new_issue(client, seq.uid, priority="high", severity="critical")
    mock.advance(600)
    b = new_issue(client, seq.uid, priority="high", severity="moderate")
    c = new_issue(client, seq.uid, priority="low", severity="moderate")
    mock.advance(400)
    client.annotation_issues.update(seq.uid, a.uid, status="completed")  # open for 1000 s
    mock.advance(200)
    client.annotation_issues.update(seq.uid, b.uid, status="closed")  # open for 600 s

    m = client.annotation_issues.get_metrics(OWNER, SLUG, sequence_uid=seq.uid)
    assert m.status_count == {"completed": 1, "closed": 1, "open": 1}
    assert m.priority_count == {"high": 2, "low": 1} and m.severity_count == {"critical": 1, "moderate": 2}
    assert m.mean_seconds_close_time_all == 800 and m.mean_seconds_close_time_customer == 800
    assert m.mean_unresolved_issue_age_all == 600 == m.mean_unresolved_issue_age_customer
    assert m.object_count_by_annotation_issue_problem_uid == [{"problem_uid": a.problem.uid, "count": 3}]
    mock.advance(1000)
    aged = client.annotation_issues.get_metrics(OWNER, SLUG, sequence_uid=seq.uid)
    assert aged.mean_unresolved_issue_age_all == 1600 and aged.mean_seconds_close_time_all == 800
    assert c.uid in [i.uid for i in client.annotation_issues.list_by_sequence(seq.uid)]

    everything = client.annotation_issues.get_metrics(OWNER, SLUG)
    assert sum(everything.status_count.values()) == len(client.annotation_issues.list_by_dataset(OWNER, SLUG))
    assert everything.mean_seconds_close_time_all > 800  # seeded issues stayed open for hours or days
    assert everything.mean_seconds_close_time_customer is not None and everything.mean_unresolved_issue_age_customer


def test_async_client_annotation_issues(mock):
    async def scenario():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            seq = (await c.datasets.list_sequences(OWNER, SLUG)).items[0]
            tool = (await c.annotation_issues.list_tools(dataset_type="lidar"))[0]
            issue = await c.annotation_issues.create(seq.uid, tool_uid=tool.uid, problem_uid=tool.problems[1].uid,
                                                     description="async", frames_affected="1")
            updated = await c.annotation_issues.update(seq.uid, issue.uid, status="no_action_taken")
            listed = await c.annotation_issues.list_by_sequence(seq.uid)
            metrics = await c.annotation_issues.get_metrics(OWNER, SLUG, sequence_uid=seq.uid)
            by_dataset = await c.annotation_issues.list_by_dataset(OWNER, SLUG, sequence_uid=seq.uid)
            await c.annotation_issues.delete(seq.uid, issue.uid)
            after = await c.annotation_issues.list_by_sequence(seq.uid)
            return issue, updated, listed, metrics, by_dataset, after

    issue, updated, listed, metrics, by_dataset, after = asyncio.run(scenario())
    assert issue.description == "async" and issue.problem.title == "Missing annotation"
    assert updated.status == "no_action_taken" and updated.closed_at is not None
    assert issue.uid in [i.uid for i in listed] and [i.uid for i in listed] == [i.uid for i in by_dataset]
    assert metrics.status_count.get("no_action_taken", 0) >= 1
    assert issue.uid not in [i.uid for i in after] and len(after) == len(listed) - 1


def test_issues_are_tenant_isolated(mock, client, http):
    seq = sequences(client)[0]
    issue = new_issue(client, seq.uid, description="mine")
    tool, problems = cuboid(client)
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        with pytest.raises(NotFoundError):
            other.annotation_issues.list_by_sequence(seq.uid)
        with pytest.raises(NotFoundError):
            other.annotation_issues.create(seq.uid, tool_uid=tool.uid, problem_uid=problems["Wrong class"].uid)
        with pytest.raises(NotFoundError):
            other.annotation_issues.update(seq.uid, issue.uid, status="closed")
        with pytest.raises(NotFoundError):
            other.annotation_issues.delete(seq.uid, issue.uid)
        with pytest.raises(NotFoundError):
            other.annotation_issues.list_by_dataset(OWNER, SLUG)
        with pytest.raises(NotFoundError):
            other.annotation_issues.get_metrics(OWNER, SLUG)
        # the second organisation has no sequence dataset: its own dataset has no issues
        assert other.annotation_issues.list_by_dataset("globex-vision", "crop-fields") == []
        assert other.annotation_issues.get_metrics("globex-vision", "crop-fields").status_count == {}
    finally:
        other.close()
    still = next(i for i in client.annotation_issues.list_by_sequence(seq.uid) if i.uid == issue.uid)
    assert still.status == "open" and still.description == "mine"
