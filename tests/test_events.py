"""Events end to end: signed webhook deliveries to a real receiver, retries on the manual clock, the
failure event from a world whose model always fails, and the bus itself (no HTTP, manual clock)."""

from __future__ import annotations

import json
import time

import avala
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avala_mock.fixtures.world import DEFAULT_WORLD, build_world
from avala_mock.fixtures.yamlio import load_yaml
from avala_mock.mock_server.receiver import WebhookReceiver
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from avala_mock.simulators import agents, autolabel, dispatch, events, webhooks
from avala_mock.simulators.clock import Clock
from avala_mock.simulators.world import DRAFT_RESULT
from helpers import project_named

SMALL = "Transit Vehicles"  # 400 unlabeled items: a job of ~20 s virtual time
AUTO_LABEL_EVENTS = ["auto_label.completed", "auto_label.failed"]


def poll(fetch, done, timeout: float = 10.0):
    """``fetch()`` until ``done(value)`` (the worker reports attempts asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout} s; last value: {value!r}"
        time.sleep(0.02)


def deliveries_of(client, hook_uid: str) -> list:
    return [d for d in client.webhook_deliveries.list(limit=100) if d.subscription == hook_uid]


def expected_payload(job, project_uid: str) -> dict:
    return {"job_uid": job.uid, "project_uid": project_uid, "status": job.status, "total_items": job.total_items,
            "successful": job.successful_items, "failed": job.failed_items, "skipped": job.skipped_items,
            "dry_run": False}


def test_auto_label_completed_reaches_the_receiver_signed_with_the_job_counts(mock, client, webhook_receiver):
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS)
    webhook_receiver.secret = hook.secret
    project = project_named(client, SMALL)
    job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.5)
    mock.advance(1)
    assert client.auto_label_jobs.get(job.uid).status == "running"
    assert webhook_receiver.events() == [] and deliveries_of(client, hook.uid) == []  # nothing before the end
    mock.advance(3600)
    [got] = webhook_receiver.wait_for("auto_label.completed")
    final = client.auto_label_jobs.get(job.uid)
    assert final.status == "completed" and final.successful_items > 0
    assert got.payload == expected_payload(final, project.uid)
    assert got.json == {"event": "auto_label.completed", "payload": got.payload}
    assert got.verified is True and got.headers["x-avala-event"] == "auto_label.completed"
    [delivery] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds and ds[0].status == "delivered")
    assert delivery.uid == got.delivery and delivery.event_type == "auto_label.completed"
    assert delivery.attempts == 1 and delivery.response_status == 200 and delivery.next_retry_at is None
    assert delivery.payload == got.payload and '"verified":true' in delivery.response_body.replace(" ", "")
    assert client.webhook_deliveries.get(delivery.uid).status == "delivered"


def test_auto_label_failed_is_delivered_when_the_model_fails(tmp_path, webhook_receiver):
    definition = load_yaml(DEFAULT_WORLD.read_text())
    definition["models"] = {"yolo": {"job_failure_rate": 1.0}}
    world_file = tmp_path / "failing.yaml"
    world_file.write_text(json.dumps(definition))  # JSON is YAML
    with LiveServer(ServerConfig(manual_clock=True, seed=7, world_file=str(world_file))) as server, \
            avala.Client(api_key=server.api_key, base_url=server.base_url) as client:
        hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS, secret="whsec_fail")
        webhook_receiver.secret = "whsec_fail"
        project = project_named(client, SMALL)
        job = client.auto_label_jobs.create(project.uid, model_type="yolo")
        server.advance(3600)
        [got] = webhook_receiver.wait_for("auto_label.failed")
        final = client.auto_label_jobs.get(job.uid)
        assert final.status == "failed" and got.verified is True
        assert got.payload == {**expected_payload(final, project.uid), "error_message": final.error_message}
        assert webhook_receiver.events("auto_label.completed") == []
        [delivery] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds and ds[0].status == "delivered")
        assert delivery.event_type == "auto_label.failed"


def test_receiver_down_then_up_is_retried_on_the_clock_and_delivered_once(mock, client, webhook_receiver):
    webhook_receiver.stop()  # the port is now refused
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS, secret="whsec_retry")
    webhook_receiver.secret = "whsec_retry"
    client.auto_label_jobs.create(project_named(client, SMALL).uid)
    mock.advance(3600)
    now = mock.clock()["epoch"]
    [d] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds and ds[0].attempts == 1)
    assert d.status == "pending" and d.response_status is None and "Connection failed" in d.response_body
    assert d.next_retry_at.timestamp() == pytest.approx(now + 10)
    mock.advance(9)  # not due yet: no attempt
    assert deliveries_of(client, hook.uid)[0].attempts == 1
    mock.advance(1)
    [d] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds[0].attempts == 2)
    assert d.status == "pending" and d.next_retry_at.timestamp() == pytest.approx(now + 10 + 20)
    webhook_receiver.start()  # back, on the same port
    assert webhook_receiver.events() == []
    mock.advance(20)
    webhook_receiver.wait_for("auto_label.completed")
    [d] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds[0].status == "delivered")
    assert d.attempts == 3 and d.response_status == 200 and d.next_retry_at is None
    for _ in range(3):  # well past every retry: nothing more is sent
        mock.advance(1000)
    time.sleep(0.2)  # give a wrongly scheduled retry the chance to arrive before we count
    assert len(webhook_receiver.events()) == 1 and deliveries_of(client, hook.uid)[0].attempts == 3


def test_retries_stop_after_five_attempts_and_the_delivery_fails(mock, client, webhook_receiver):
    webhook_receiver.status = 503  # up, but broken
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS)
    client.auto_label_jobs.create(project_named(client, SMALL).uid)
    mock.advance(3600)
    for n, wait in enumerate((10, 20, 40, 80), start=1):
        poll(lambda: deliveries_of(client, hook.uid), lambda ds, n=n: ds and ds[0].attempts == n)
        mock.advance(wait)
    [d] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds[0].attempts == dispatch.MAX_ATTEMPTS)
    assert d.status == "failed" and d.response_status == 503 and d.next_retry_at is None
    mock.advance(10_000)
    assert len(webhook_receiver.events()) == dispatch.MAX_ATTEMPTS


def test_signature_verifies_with_the_right_secret_only(mock, client, webhook_receiver):
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS, secret="whsec_right")
    webhook_receiver.secret = "whsec_wrong"  # the receiver was configured with another secret
    client.auto_label_jobs.create(project_named(client, SMALL).uid)
    mock.advance(3600)
    [got] = webhook_receiver.wait_for("auto_label.completed")
    assert got.verified is False
    assert dispatch.verify("whsec_right", got.body, got.signature) is True
    assert dispatch.verify("whsec_wrong", got.body, got.signature) is False
    assert dispatch.verify("whsec_right", got.body.replace(b"completed", b"failed"), got.signature) is False
    assert dispatch.verify("whsec_right", got.body, None) is False
    t = int(got.signature.split(",")[0][2:])
    assert t == int(mock.clock()["epoch"])  # the timestamp is virtual clock time
    assert dispatch.verify("whsec_right", got.body, got.signature, now=t + 301, tolerance_s=300) is False
    # the receiver refused it (401), so the mock keeps the delivery pending for a retry
    [d] = poll(lambda: deliveries_of(client, hook.uid), lambda ds: ds and ds[0].attempts == 1)
    assert d.status == "pending" and d.response_status == 401 and d.next_retry_at is not None


def test_a_cancelled_job_sends_no_completion_event(mock, client, webhook_receiver):
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS)
    job = client.auto_label_jobs.create(project_named(client, SMALL).uid)
    mock.advance(3)
    client.auto_label_jobs.cancel(job.uid)
    mock.advance(3600)
    assert client.auto_label_jobs.get(job.uid).status == "cancelled"
    assert deliveries_of(client, hook.uid) == [] and webhook_receiver.events() == []


def test_inactive_and_unsubscribed_webhooks_get_nothing(mock, client, webhook_receiver):
    inactive = client.webhooks.create(target_url=webhook_receiver.url, events=AUTO_LABEL_EVENTS, is_active=False)
    other = client.webhooks.create(target_url=webhook_receiver.url, events=["export.completed"])
    client.auto_label_jobs.create(project_named(client, SMALL).uid)
    mock.advance(3600)
    assert deliveries_of(client, inactive.uid) == deliveries_of(client, other.uid) == []
    assert webhook_receiver.events() == []


# -- the bus on its own: manual clock, no HTTP ------------------------------------------------------


def _small_world():
    world = build_world(seed=3, clock=Clock("manual"))
    store = next(iter(world.stores.values()))
    project = next(p for p in store.projects.values() if p.name == SMALL)
    return world, store, project


def test_bus_emits_one_result_submitted_per_draft_lazily_and_in_bulk():
    world, store, project = _small_world()
    agent = agents.create_agent(world, store, {"name": "qa", "events": ["result.submitted"], "project": project.uid})
    job = autolabel.create_job(world, store, project)
    bus = events.bus(world)
    mine = lambda: [k for k in bus._entries if job.uid in k]  # noqa: E731
    assert len(mine()) == 2  # one drafts entry and one end entry: no timer per item
    world.clock.advance(float(job.done_at[len(job.done_at) // 2]) - world.clock.now())
    assert bus.drain(world.clock.now()) == []  # reserved/no webhooks: nothing to POST
    half = agents.list_executions(store, agent, world.clock.now())
    assert 0 < len(half) == int(job.cum[job.processed_at(world.clock.now())][autolabel.SUCCESS])
    assert len(mine()) == 2  # the drafts entry moved on to the next item
    world.clock.advance(3600)
    bus.drain(world.clock.now())
    done = agents.list_executions(store, agent, world.clock.now())
    summary = job.summary(job.total)
    assert len(done) == summary["drafts_created"] == job.state(world.clock.now()).successful_items
    assert len({e["result"] for e in done}) == len(done)  # one result per draft
    assert [e["created_at"] for e in done] == sorted(e["created_at"] for e in done)  # at each item's completion
    assert mine() == []
    assert [e["event"] for e in bus.log if e["payload"].get("job_uid") == job.uid][-1] == "auto_label.completed"


def test_bus_retry_schedule_and_delivery_records():
    world, store, project = _small_world()
    hook = webhooks.create_webhook(world, store, target_url="http://127.0.0.1:9/x", events=["auto_label.completed"])
    job = autolabel.create_job(world, store, project)
    bus = events.bus(world)
    world.clock.advance(3600)
    [out] = bus.drain(world.clock.now())
    assert out.url == hook["target_url"] and out.headers[dispatch.EVENT_HEADER] == "auto_label.completed"
    assert dispatch.verify(hook["_secret"], out.body, out.headers[dispatch.SIGNATURE_HEADER])
    assert json.loads(out.body)["payload"]["job_uid"] == job.uid
    for attempt, delay in enumerate((10, 20, 40, 80), start=1):
        bus.report(out, None, "refused")
        assert out.record["attempts"] == attempt and out.record["status"] == "pending"
        assert out.record["next_retry_at"] == world.clock.now() + delay
        world.clock.advance(delay - 1)
        assert bus.drain(world.clock.now()) == []
        world.clock.advance(1)
        [out] = bus.drain(world.clock.now())
    bus.report(out, 500, "x" * 5000)
    assert out.record["status"] == "failed" and out.record["next_retry_at"] is None
    assert len(out.record["response_body"]) <= dispatch.RESPONSE_BODY_LIMIT + 20
    world.clock.advance(10_000)
    assert bus.drain(world.clock.now()) == []


def test_receiver_verifies_signatures_standalone():
    with WebhookReceiver(secret="s3cret") as receiver:
        import httpx

        body = b'{"event":"x","payload":{}}'
        good = dispatch.headers("s3cret", body, 1700000000, "x", "d1")
        bad = dispatch.headers("other", body, 1700000000, "x", "d2")
        assert httpx.post(receiver.url, content=body, headers=good).status_code == 200
        assert httpx.post(receiver.url, content=body, headers=bad).status_code == 401
        assert [r.verified for r in receiver.wait_for(count=2)] == [True, False]


def test_webhook_test_endpoint_sends_a_real_signed_post(mock, client, webhook_receiver):
    hook = client.webhooks.create(target_url=webhook_receiver.url, events=["task.completed"], secret="whsec_t")
    webhook_receiver.secret = "whsec_t"
    answer = client.webhooks.test(hook.uid)
    assert answer["success"] is True and answer["delivered"] is False and "queued" in answer["message"]
    [got] = webhook_receiver.wait_for("webhook.test")
    assert got.verified is True and got.delivery == answer["delivery"] and got.payload["webhook_uid"] == hook.uid
    d = poll(lambda: client.webhook_deliveries.get(answer["delivery"]), lambda d: d.status == "delivered")
    assert d.attempts == 1 and d.response_status == 200


def test_callback_agent_is_posted_its_signed_executions(mock, client, http, webhook_receiver):
    project = project_named(client, SMALL)
    created = http.post("agents/", json={"name": "cb", "events": ["result.submitted"], "project": project.uid,
                                         "callback_url": webhook_receiver.url}).json()
    webhook_receiver.secret = created["secret"]
    job = client.auto_label_jobs.create(project.uid)
    mock.advance(3600)
    n = client.auto_label_jobs.get(job.uid).successful_items
    got = webhook_receiver.wait_for("result.submitted", count=n, timeout=20)
    assert len(got) == n and all(r.verified for r in got)
    pending = {e.uid for e in client.agents.list_executions(created["uid"], limit=100)}
    assert {r.json["execution"]["uid"] for r in got[:100]} & pending
    assert got[0].json["execution"]["event_payload"] == got[0].payload


def test_export_and_dataset_events_fire_when_their_timelines_end(mock, client, http, webhook_receiver):
    events_wanted = ["export.completed", "export.failed", "dataset.created"]
    client.webhooks.create(target_url=webhook_receiver.url, events=events_wanted, secret="whsec_x")
    webhook_receiver.secret = "whsec_x"
    project = project_named(client, SMALL)
    export = http.post("exports/", json={"project": project.uid}).json()
    ds = http.post("datasets/", json={"name": "Events DS", "slug": "events-ds", "data_type": "image"})
    assert ds.status_code in (200, 201), ds.text
    assert webhook_receiver.events() == []
    mock.advance(3600)
    [done] = webhook_receiver.wait_for("export.completed", where=lambda r: r.payload["export_uid"] == export["uid"])
    assert done.verified and done.payload["project_uid"] == project.uid
    assert done.payload["status"] == http.get(f"exports/{export['uid']}/").json()["status"] == "exported"
    [created] = webhook_receiver.wait_for("dataset.created")
    assert created.payload["dataset_uid"] == ds.json()["uid"] and created.payload["slug"] == "events-ds"


def test_control_api_lists_emitted_events(mock, client):
    job = client.auto_label_jobs.create(project_named(client, SMALL).uid)
    before = mock.http.get("/_mock/events/", params={"event": "auto_label."}).json()
    assert before["count"] == 0 and before["next_due"] is not None
    mock.advance(3600)
    listed = mock.http.get("/_mock/events/", params={"event": "auto_label."}).json()
    [entry] = listed["results"]
    assert entry["event"] == "auto_label.completed" and entry["payload"]["job_uid"] == job.uid
    drafts = mock.http.get("/_mock/events/", params={"event": "result.submitted"}).json()["results"]
    assert sum(e.get("count", 1) for e in drafts) == client.auto_label_jobs.get(job.uid).successful_items
    assert mock.http.get("/_mock/events/", params={"limit": 0}).status_code == 400


@settings(max_examples=15, deadline=None)
@given(steps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=12), cancel_at=st.integers(0, 12))
def test_drafts_are_announced_exactly_once_however_the_clock_moves(steps, cancel_at):
    world, store, project = _small_world()
    agent = agents.create_agent(world, store, {"name": "qa", "events": ["result.submitted"], "project": project.uid})
    job = autolabel.create_job(world, store, project)
    bus = events.bus(world)
    for i, dt in enumerate(steps):
        world.clock.advance(dt)
        if i == cancel_at and job.is_active(world.clock.now()):
            autolabel.cancel_job(world, store, job)
        bus.drain(world.clock.now())
        announced = [e["result"] for e in agents.list_executions(store, agent, world.clock.now())]
        project.settle(world.clock.now())  # the API's view of the drafts
        drafted = int((project.result_state == DRAFT_RESULT).sum())
        assert len(announced) == len(set(announced)) == drafted  # never behind, never twice
