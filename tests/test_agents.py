"""Agents, agent executions and agent actions through the official SDK, its CLI, avala-agents and raw HTTP."""

from __future__ import annotations

import asyncio
import subprocess

import avala
import pytest
from avala.errors import NotFoundError, ValidationError
from avala_agents import TaskAgent

from avala_mock.simulators.agents import EXECUTION_TIMEOUT_S
from helpers import SECOND_ORG_KEY, avala_cli


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), *args)


def agent_named(client, name: str):
    return next(a for a in client.agents.list(limit=100) if a.name == name)


def executions(client, uid: str) -> list:
    return list(client.agents.list_executions(uid, limit=100))


def test_seeded_agents_are_populated_and_reference_the_world(client, http):
    reviewer = agent_named(client, "qa-reviewer")
    project = http.get(f"projects/{reviewer.project}/").json()
    assert reviewer.events == ["result.submitted"] and reviewer.callback_url is None and reviewer.is_active
    assert reviewer.task_types == [project["task_type"]] and reviewer.description
    assert reviewer.secret is None and reviewer.created_at and reviewer.updated_at
    assert reviewer.execution_stats == {"pending": 3, "running": 0, "completed": 2, "failed": 1}
    notifier = client.agents.get(agent_named(client, "completion-notifier").uid)
    assert notifier.callback_url.startswith("https://") and "task.completed" in notifier.events
    assert agent_named(client, "legacy-export-bot").is_active is False

    runs = executions(client, reviewer.uid)
    assert [e.status for e in runs] == ["failed", "completed", "completed", "pending", "pending", "pending"]
    for e in runs:
        assert e.registration == reviewer.uid and e.event_type == "result.submitted"
        p = e.event_payload
        assert p["project_uid"] == project["uid"] and p["task_type"] == project["task_type"]
        assert client.tasks.get(e.task).project == project["uid"] == client.tasks.get(p["task_uid"]).project
        assert e.result == p["result_uid"] and p["result_data"]
        assert all(o["label"] in project["labels"] for o in p["result_data"])
        assert 0.5 < p["result_metadata"]["confidence"] < 1.0
        assert e.started_at and e.created_at and e.updated_at
    assert runs[0].error_message and "Timed out" in runs[0].error_message and runs[0].completed_at
    approved, rejected = runs[1], runs[2]
    assert approved.action == "approve" and rejected.action == "reject"
    assert rejected.response_payload["reason"] == "Box on the cyclist is too loose." and rejected.completed_at
    assert all(e.action is None and e.completed_at is None for e in runs[3:])


def test_agent_lifecycle_create_get_update_delete(client, http):
    project = client.projects.list().items[1]
    created = client.agents.create(name="triage", events=["task.completed"], description="first",
                                   callback_url="https://agents.example.com/cb", is_active=False,
                                   project=project.uid, task_types=["bounding_box"])
    assert created.secret and created.secret.startswith("agsec_")
    assert (created.name, created.description, created.is_active, created.project) == ("triage", "first", False, project.uid)
    assert created.execution_stats == {"pending": 0, "running": 0, "completed": 0, "failed": 0}

    got = client.agents.get(created.uid)
    assert got.secret is None and got.callback_url == "https://agents.example.com/cb" and got.task_types == ["bounding_box"]
    assert created.uid in [a.uid for a in client.agents.list(limit=100)]
    assert created.secret not in http.get("agents/", params={"limit": 100}).text

    updated = client.agents.update(created.uid, description="second", is_active=True)
    assert updated.description == "second" and updated.is_active and updated.name == "triage"
    assert updated.events == ["task.completed"] and updated.project == project.uid and updated.updated_at >= created.updated_at
    assert client.agents.get(created.uid).description == "second"

    client.agents.delete(created.uid)
    with pytest.raises(NotFoundError):
        client.agents.get(created.uid)
    with pytest.raises(NotFoundError):
        client.agents.delete(created.uid)
    with pytest.raises(NotFoundError):
        client.agents.list_executions(created.uid)
    assert created.uid not in [a.uid for a in client.agents.list(limit=100)]


def test_create_accepts_every_client_variant(http):
    ts = http.post("agents/", json={"name": "ts-agent", "events": ["task.completed"]})  # TS: events required, no is_active
    assert ts.status_code == 201 and ts.json()["is_active"] is True and ts.json()["events"] == ["task.completed"]
    ag = http.post("agents/", json={"name": "default-agent", "events": []})  # avala-agents with no handlers
    assert ag.status_code == 201 and ag.json()["events"] == [] and ag.json()["uid"]
    py = http.post("agents/", json={"name": "py-agent"})  # Python: events optional
    body = py.json()
    assert py.status_code == 201 and body["events"] == [] and body["task_types"] == [] and body["secret"]
    again = http.post("agents/", json={"name": "default-agent", "events": []})  # registration is not idempotent
    assert again.status_code == 201 and again.json()["uid"] != ag.json()["uid"]


def test_create_and_update_reject_bad_input_without_writing(mock, client, http):
    foreign_project = http.get("projects/", headers={"X-Avala-Api-Key": SECOND_ORG_KEY}).json()["results"][0]["uid"]
    before = http.get("agents/", params={"limit": 100}).json()["results"]
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x", "project": "no-such-project"}, "project"),
        ({"name": "x", "project": foreign_project}, "project"),  # another organisation's project
        ({"name": "x", "callback_url": "not-a-url"}, "callback_url"),
        ({"name": "x", "events": "task.completed"}, "events"),
        ({"name": "x", "colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        r = http.post("agents/", json=body)
        assert r.status_code == 400, body
        assert isinstance(r.json()["detail"], str) and field in r.json()["errors"], r.json()
    assert http.get("agents/", params={"limit": 100}).json()["results"] == before

    agent = agent_named(client, "qa-reviewer")
    r = http.patch(f"agents/{agent.uid}/", json={"name": "renamed", "project": "no-such-project"})
    assert r.status_code == 400 and "project" in r.json()["errors"]
    assert client.agents.get(agent.uid).name == "qa-reviewer"  # nothing half-written
    with pytest.raises(ValidationError):
        client.agents.create(name="y", callback_url="ftp://files.example.com/")
    assert http.patch("agents/no-such-agent/", json={"name": "z"}).status_code == 404
    assert http.post("agents/", content=b"name=x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_execution_filters_as_avala_agents_polls(client, http):
    reviewer = agent_named(client, "qa-reviewer")
    url = f"agents/{reviewer.uid}/executions/"

    def uids(**params):
        r = http.get(url, params=params)
        assert r.status_code == 200
        return [e["uid"] for e in r.json()["results"]]

    pending = uids(status="pending", project=reviewer.project, task_types="segmentation,bounding_box")
    assert len(pending) == 3
    assert uids(status="pending", project=reviewer.project, task_types="segmentation") == []
    assert uids(status="pending", project=client.projects.list().items[3].uid) == []
    assert len(uids(status="completed")) == 2 and len(uids(status="failed")) == 1 and len(uids()) == 6
    assert uids(status="success") == []

    first = client.agents.list_executions(reviewer.uid, limit=4)
    assert len(first.items) == 4 and first.has_more
    rest = client.agents.list_executions(reviewer.uid, limit=4, cursor=first.next_cursor)
    assert len(rest.items) == 2 and not rest.has_more
    assert [e.uid for e in first.items + rest.items] == uids()


def test_agent_action_decides_a_pending_execution_once(client, http):
    reviewer = agent_named(client, "qa-reviewer")
    pending = [e for e in executions(client, reviewer.uid) if e.status == "pending"]
    target = pending[0]
    r = http.post("agent-actions/", json={"execution": target.uid, "action": "reject", "reason": "Missing a car."})
    assert r.status_code == 204 and r.content == b""
    done = next(e for e in executions(client, reviewer.uid) if e.uid == target.uid)
    assert done.status == "completed" and done.action == "reject" and done.completed_at is not None
    assert done.response_payload["reason"] == "Missing a car." and done.response_payload["action"] == "reject"
    assert client.agents.get(reviewer.uid).execution_stats["pending"] == 2
    still = http.get(f"agents/{reviewer.uid}/executions/", params={"status": "pending"}).json()["results"]
    assert target.uid not in [e["uid"] for e in still] and len(still) == 2

    again = http.post("agent-actions/", json={"execution": target.uid, "action": "approve"})
    assert again.status_code == 409 and "completed" in again.json()["detail"]
    assert http.post("agent-actions/", json={"execution": "no-such-execution", "action": "skip"}).status_code == 404
    bad = http.post("agent-actions/", json={"execution": pending[1].uid, "action": "label"})
    assert bad.status_code == 400 and "action" in bad.json()["errors"]
    assert http.post("agent-actions/", json={"action": "skip"}).status_code == 400
    assert http.post("agent-actions/", json={"execution": pending[1].uid, "action": "skip"}).status_code == 204
    skipped = next(e for e in executions(client, reviewer.uid) if e.uid == pending[1].uid)
    assert skipped.action == "skip" and skipped.response_payload["reason"] is None


def test_avala_agents_reviews_the_pending_results(mock, client):
    reviewer = agent_named(client, "qa-reviewer")
    pending = {e.uid: e for e in executions(client, reviewer.uid) if e.status == "pending"}
    seen = []
    agent = TaskAgent(api_key=mock.api_key, base_url=mock.base_url, name="qa-reviewer",
                      project=reviewer.project, task_types=reviewer.task_types)

    @agent.on("result.submitted")
    def review(ctx):
        seen.append((ctx.task_uid, ctx.result_metadata["confidence"], len(ctx.result_data)))
        if ctx.result_metadata["confidence"] >= 0.8:
            ctx.approve()
        else:
            ctx.reject(reason="Low confidence")

    agent._agent_uid = reviewer.uid  # this process *is* the seeded agent (skip a fresh registration)
    with agent:
        assert agent.run_once() == 3
        assert agent.run_once() == 0  # decided executions no longer match status=pending
    assert sorted(t for t, _, _ in seen) == sorted(e.task for e in pending.values())
    for e in executions(client, reviewer.uid):
        if e.uid in pending:
            conf = pending[e.uid].event_payload["result_metadata"]["confidence"]
            assert e.status == "completed"
            assert e.action == ("approve" if conf >= 0.8 else "reject")
            assert e.response_payload["reason"] == (None if conf >= 0.8 else "Low confidence")


def test_avala_agents_registers_and_picks_up_a_test_event(mock, client, http):
    project = http.get("projects/").json()["results"][2]
    agent = TaskAgent(api_key=mock.api_key, base_url=mock.base_url, name="ag-roundtrip",
                      project=project["uid"], task_types=[project["task_type"]])

    @agent.on("task.completed")
    def noop(ctx):
        ctx.approve()

    with agent:
        assert agent.run_once() == 0  # registers (POST /agents/), nothing to do yet
        registered = agent_named(client, "ag-roundtrip")
        assert registered.events == ["task.completed"] and registered.project == project["uid"]
        result = client.agents.test(registered.uid)  # a polling agent: the test event waits for its poll
        assert result["success"] is True and result["delivered"] is False and result["status_code"] is None
        assert "poll" in result["message"] and result["tested_at"]
        assert agent.run_once() == 1  # no handler for agent.test: avala-agents skips it
    [e] = executions(client, registered.uid)
    assert e.uid == result["execution"] and e.event_type == "agent.test" and e.status == "completed"
    assert e.action == "skip" and "No handler registered" in e.response_payload["reason"]


def test_test_endpoint_reflects_the_agent(mock, client, http):
    notifier = agent_named(client, "completion-notifier")
    r = http.post(f"agents/{notifier.uid}/test/")
    body = r.json()
    assert r.status_code == 200 and body["success"] is True and body["delivered"] is True and body["status_code"] == 200
    assert notifier.callback_url in body["message"] and body["tested_at"].endswith("Z")
    last = executions(client, notifier.uid)[-1]
    assert last.uid == body["execution"] and last.event_type == "agent.test" and last.status == "completed"

    assert http.post(f"agents/{notifier.uid}/test/", json={}).status_code == 200  # TS-style empty object
    assert http.post(f"agents/{notifier.uid}/test/", json={"x": 1}).status_code == 400

    legacy = agent_named(client, "legacy-export-bot")
    off = client.agents.test(legacy.uid)
    assert off["success"] is False and off["delivered"] is False and "inactive" in off["message"]
    assert executions(client, legacy.uid) == []  # nothing was sent

    broken = client.agents.create(name="broken", callback_url="https://agents.example.invalid/cb")
    failed = client.agents.test(broken.uid)
    assert failed["success"] is False and "resolve" in failed["message"]
    [e] = executions(client, broken.uid)
    assert e.status == "failed" and "resolve" in e.error_message
    assert http.post("agents/no-such-agent/test/").status_code == 404

    out = cli(mock, "agents", "test", legacy.uid)
    assert out.returncode == 0 and "Agent test failed" in out.stdout and "inactive" in out.stdout
    assert "Agent test passed" in cli(mock, "agents", "test", notifier.uid).stdout


def test_undecided_executions_fail_at_the_timeout(mock, client, http):
    reviewer = agent_named(client, "qa-reviewer")
    pending = [e.uid for e in executions(client, reviewer.uid) if e.status == "pending"]

    def statuses():
        runs = {e.uid: e for e in executions(client, reviewer.uid)}
        return [runs[uid].status for uid in pending], runs

    # The three were created 60, 50 and 40 minutes before the world's start; each expires a day later.
    mock.advance(EXECUTION_TIMEOUT_S - 3600 - 1)
    assert statuses()[0] == ["pending", "pending", "pending"]
    mock.advance(1)
    now, runs = statuses()
    assert now == ["failed", "pending", "pending"]
    oldest = runs[pending[0]]
    assert "Timed out" in oldest.error_message and oldest.completed_at and oldest.action is None
    assert http.post("agent-actions/", json={"execution": oldest.uid, "action": "approve"}).status_code == 409
    assert client.agents.get(reviewer.uid).execution_stats == {"pending": 2, "running": 0, "completed": 2, "failed": 2}
    mock.advance(1200)
    assert statuses()[0] == ["failed", "failed", "failed"]


def test_another_organisation_cannot_see_or_touch_agents(mock, client, http):
    reviewer = agent_named(client, "qa-reviewer")
    pending = next(e for e in executions(client, reviewer.uid) if e.status == "pending")
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        theirs = [a.uid for a in other.agents.list(limit=100)]
        assert theirs and reviewer.uid not in theirs
        for call in (lambda: other.agents.get(reviewer.uid),
                     lambda: other.agents.update(reviewer.uid, name="stolen"),
                     lambda: other.agents.list_executions(reviewer.uid),
                     lambda: other.agents.test(reviewer.uid),
                     lambda: other.agents.delete(reviewer.uid)):
            with pytest.raises(NotFoundError):
                call()
        mine = other.agents.create(name="globex-only")
        assert mine.uid not in [a.uid for a in client.agents.list(limit=100)]
    finally:
        other.close()
    foreign = http.post("agent-actions/", json={"execution": pending.uid, "action": "skip"},
                        headers={"X-Avala-Api-Key": SECOND_ORG_KEY})
    assert foreign.status_code == 404
    assert client.agents.get(reviewer.uid).name == "qa-reviewer"
    assert next(e for e in executions(client, reviewer.uid) if e.uid == pending.uid).status == "pending"


def test_async_client_round_trip(mock):
    async def go():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            created = await ac.agents.create(name="async-agent", events=["result.accepted"])
            fetched = await ac.agents.get(created.uid)
            updated = await ac.agents.update(created.uid, task_types=["segmentation"])
            listed = await ac.agents.list(limit=100)
            tested = await ac.agents.test(created.uid)
            runs = await ac.agents.list_executions(created.uid)
            await ac.agents.delete(created.uid)
            return created, fetched, updated, listed, tested, runs

    created, fetched, updated, listed, tested, runs = asyncio.run(go())
    assert created.secret and fetched.secret is None and fetched.events == ["result.accepted"]
    assert updated.task_types == ["segmentation"] and created.uid in [a.uid for a in listed]
    assert tested["success"] is True and [e.event_type for e in runs.items] == ["agent.test"]


def test_cli_lists_gets_and_creates(mock, client):
    reviewer = agent_named(client, "qa-reviewer")
    listed = cli(mock, "agents", "list")
    assert listed.returncode == 0 and "qa-reviewer" in listed.stdout and "completion-notifier" in listed.stdout
    got = cli(mock, "-o", "json", "agents", "get", reviewer.uid)
    assert got.returncode == 0 and '"project": "' + reviewer.project in got.stdout
    runs = cli(mock, "-o", "json", "agents", "executions", reviewer.uid)
    assert runs.returncode == 0 and runs.stdout.count('"pending"') == 3
    made = cli(mock, "agents", "create", "--name", "cli-agent", "--events", "task.completed, result.submitted")
    assert made.returncode == 0 and "Secret: agsec_" in made.stdout
    assert agent_named(client, "cli-agent").events == ["task.completed", "result.submitted"]
    missing = cli(mock, "agents", "get", "no-such-agent")
    assert missing.returncode != 0 and "404" in (missing.stdout + missing.stderr)
