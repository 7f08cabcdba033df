"""The auto-label -> agent QA loop: an avala-agents TaskAgent (from PyPI, unpatched) reviews the drafts an
auto-label job produced, and its approve/reject decisions show on the results through the API."""

from __future__ import annotations

import time

from avala_agents import TaskAgent

from avala_mock.mock_server.receiver import WebhookReceiver
from helpers import project_named

SMALL = "Transit Vehicles"


def drain(agent: TaskAgent, limit: int = 100) -> int:
    """``run_once`` until nothing is pending (it handles one page of executions per call)."""
    total = 0
    for _ in range(limit):
        n = agent.run_once()
        if n == 0:
            return total
        total += n
    raise AssertionError("the agent never ran out of executions")


def project_results(client, http, project_uid: str) -> dict[str, dict]:
    """result uid -> this project's result, read from ``annotations.results`` of the dataset's items (SDK)."""
    dataset_uid = http.get(f"projects/{project_uid}/").json()["dataset"]
    ds = next(d for d in client.datasets.list(limit=100) if d.uid == dataset_uid)
    out, cursor = {}, None
    while True:
        page = client.datasets.list_items(ds.owner_name, ds.slug, limit=1000, cursor=cursor)
        for item in page:
            for r in (item.annotations or {}).get("results", []):
                if r.get("project") == project_uid and r.get("uid"):
                    out[r["uid"]] = r
        if not page.has_more:
            return out
        cursor = page.next_cursor


def test_task_agent_reviews_the_drafts_of_an_auto_label_job(mock, client, http):
    project = project_named(client, SMALL)
    task_type = http.get(f"projects/{project.uid}/").json()["task_type"]
    agent = TaskAgent(api_key=mock.api_key, base_url=mock.base_url, name="qa-loop",
                      project=project.uid, task_types=[task_type])
    decided: dict[str, str] = {}

    @agent.on("result.submitted")
    def review(ctx):
        assert ctx.task_uid and ctx.result_data and ctx.project_uid == project.uid and ctx.task_type == task_type
        if ctx.result_metadata["confidence"] >= 0.8:
            decided[ctx.result_uid] = "accepted"
            ctx.approve()
        else:
            decided[ctx.result_uid] = "rejected"
            ctx.reject(reason="Low confidence")

    with agent:
        assert agent.run_once() == 0  # registers; nothing pending yet
        job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.5)
        assert agent.run_once() == 0  # nothing drafted yet
        before = project_results(client, http, project.uid)
        assert before == {}
        mock.advance(3600)
        final = client.auto_label_jobs.get(job.uid)
        assert final.status == "completed" and final.successful_items > 0
        drafts = project_results(client, http, project.uid)
        assert set(drafts) and {r["status"] for r in drafts.values()} == {"draft"}
        processed = drain(agent)
    assert processed == len(decided) == final.successful_items == final.summary["drafts_created"]
    assert set(decided.values()) == {"accepted", "rejected"}  # both branches exercised
    assert set(decided) == set(drafts)  # the events name the results the API shows

    results = project_results(client, http, project.uid)
    assert {uid: r["status"] for uid, r in results.items()} == decided
    assert all(r["source"] == "auto_label" and r["auto_label_job"] == job.uid for r in results.values())

    registered = next(a for a in client.agents.list(limit=100) if a.name == "qa-loop")
    assert registered.execution_stats["completed"] == processed and registered.execution_stats["pending"] == 0


def test_approve_and_reject_raise_result_events_to_webhooks(mock, client):
    project = project_named(client, SMALL)
    with WebhookReceiver(secret="whsec_qa") as receiver:
        client.webhooks.create(target_url=receiver.url, events=["result.accepted", "result.rejected"], secret="whsec_qa")
        agent = TaskAgent(api_key=mock.api_key, base_url=mock.base_url, name="qa-events", project=project.uid)

        @agent.on("result.submitted")
        def review(ctx):
            if ctx.result_metadata["confidence"] >= 0.8:
                ctx.approve()
            else:
                ctx.reject(reason="Low confidence")

        with agent:
            agent.run_once()
            client.auto_label_jobs.create(project.uid)
            mock.advance(3600)
            n = drain(agent)
        got = receiver.wait_for(count=n, timeout=20)
        assert len(got) == n and all(r.verified for r in got)
        assert {r.event for r in got} == {"result.accepted", "result.rejected"}
        assert all(r.payload["result_status"] == r.event.split(".")[1] for r in got)
        time.sleep(0.1)
        assert len(receiver.events()) == n  # each decision once
