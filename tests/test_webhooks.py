"""Webhooks and webhook deliveries through the official SDK, its CLI and raw HTTP."""

from __future__ import annotations

import asyncio
import subprocess

import avala
import pytest
from avala.errors import NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), *args)


def hook_for(client, event: str):
    return next(w for w in client.webhooks.list(limit=100) if event in w.events)


def all_deliveries(client) -> list:
    out, cursor = [], None
    while True:
        page = client.webhook_deliveries.list(limit=3, cursor=cursor)
        out += page.items
        if not page.has_more:
            return out
        cursor = page.next_cursor


def test_seeded_webhooks_and_deliveries_are_populated(client, http):
    ops = hook_for(client, "auto_label.completed")
    assert ops.target_url.startswith("https://") and ops.events == ["auto_label.completed", "auto_label.failed"]
    assert ops.is_active and ops.secret is None and ops.created_at and ops.updated_at
    assert hook_for(client, "task.completed").is_active is False

    deliveries = all_deliveries(client)
    assert len(deliveries) == 4 and len({d.uid for d in deliveries}) == 4
    stamps = [d.created_at for d in deliveries]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    hooks = {w.uid for w in client.webhooks.list(limit=100)}
    assert all(d.subscription in hooks and d.payload and d.status in ("delivered", "failed") for d in deliveries)

    failed = next(d for d in deliveries if d.status == "failed")
    assert failed.event_type == "auto_label.failed" and failed.attempts == 5 and failed.response_status == 503
    assert failed.next_retry_at is None and failed.payload["status"] == "failed"
    done = client.webhook_deliveries.get(next(d.uid for d in deliveries if d.event_type == "auto_label.completed"))
    assert done.status == "delivered" and done.attempts == 1 and done.response_status == 200 and done.response_body
    p = done.payload
    assert p["total_items"] == p["successful"] + p["failed"] + p["skipped"] and p["dry_run"] is False
    assert http.get(f"projects/{p['project_uid']}/").status_code == 200  # the payload names a real project
    with pytest.raises(NotFoundError):
        client.webhook_deliveries.get("no-such-delivery")


def test_webhook_lifecycle_create_get_update_delete(client, http):
    made = client.webhooks.create(target_url="https://example.com/hooks/avala", events=["export.completed"],
                                  secret="my-signing-secret")
    assert made.secret == "my-signing-secret" and made.is_active and made.events == ["export.completed"]
    generated = client.webhooks.create(target_url="http://localhost:9000/hook", events=["task.created"], is_active=False)
    assert generated.secret and generated.secret.startswith("whsec_") and generated.is_active is False

    got = client.webhooks.get(made.uid)
    assert got.secret is None and got.target_url == "https://example.com/hooks/avala"
    listing = http.get("webhooks/", params={"limit": 100}).text
    assert made.uid in listing and "my-signing-secret" not in listing and generated.secret not in listing

    updated = client.webhooks.update(made.uid, events=["export.completed", "export.ready"], is_active=False)
    assert updated.events == ["export.completed", "export.ready"] and updated.is_active is False
    assert updated.target_url == made.target_url and updated.secret is None
    moved = client.webhooks.update(made.uid, target_url="https://example.org/new")
    assert moved.target_url == "https://example.org/new" and moved.events == ["export.completed", "export.ready"]
    assert client.webhooks.get(made.uid).is_active is False

    client.webhooks.delete(made.uid)
    with pytest.raises(NotFoundError):
        client.webhooks.get(made.uid)
    with pytest.raises(NotFoundError):
        client.webhooks.delete(made.uid)
    assert made.uid not in [w.uid for w in client.webhooks.list(limit=100)]


def test_invalid_input_is_400_and_writes_nothing(client, http):
    before = http.get("webhooks/", params={"limit": 100}).json()["results"]
    for body, field in [
        ({"target_url": "not-a-url", "events": ["task.completed"]}, "target_url"),
        ({"target_url": "ftp://example.com/x", "events": ["task.completed"]}, "target_url"),
        ({"target_url": "https://exa mple.com/x", "events": ["task.completed"]}, "target_url"),
        ({"target_url": "https://example.com/x", "events": []}, "events"),
        ({"target_url": "https://example.com/x", "events": ["  "]}, "events"),
        ({"target_url": "https://example.com/x"}, "events"),
        ({"events": ["task.completed"]}, "target_url"),
        ({"target_url": "https://example.com/x", "events": ["a.b"], "secret": ""}, "secret"),
    ]:
        r = http.post("webhooks/", json=body)
        assert r.status_code == 400, body
        assert isinstance(r.json()["detail"], str) and field in r.json()["errors"], r.json()
    with pytest.raises(ValidationError):
        client.webhooks.create(target_url="not-a-url", events=["task.completed"])
    with pytest.raises(ValidationError):
        client.webhooks.create(target_url="https://example.com/x", events=[])
    assert http.get("webhooks/", params={"limit": 100}).json()["results"] == before

    hook = hook_for(client, "auto_label.completed")
    r = http.patch(f"webhooks/{hook.uid}/", json={"events": [], "is_active": False})
    assert r.status_code == 400
    r = http.patch(f"webhooks/{hook.uid}/", json={"target_url": "mailto:ops@example.com", "is_active": False})
    assert r.status_code == 400 and "target_url" in r.json()["errors"]
    assert client.webhooks.get(hook.uid).is_active is True  # nothing half-written
    r = http.post("webhooks/", json={"target_url": "nope", "events": ["a.b"], "secret": "sk_live_abcdef123456"})
    assert r.status_code == 400 and "sk_live_abcdef123456" not in r.text  # secrets never echoed in errors


def test_test_endpoint_records_a_simulated_delivery(mock, client, http):
    hook = hook_for(client, "auto_label.completed")
    r = http.post(f"webhooks/{hook.uid}/test/")
    body = r.json()
    assert r.status_code == 200 and body["success"] is True and body["delivered"] is True and body["status_code"] == 200
    assert hook.target_url in body["message"] and body["tested_at"].endswith("Z")
    newest = client.webhook_deliveries.list(limit=1).items[0]
    assert newest.uid == body["delivery"] and newest.event_type == "webhook.test" and newest.subscription == hook.uid
    assert newest.status == "delivered" and newest.attempts == 1 and newest.response_status == 200
    assert "no network I/O" in newest.response_body and newest.payload["webhook_uid"] == hook.uid
    assert http.post(f"webhooks/{hook.uid}/test/", json={}).status_code == 200
    assert http.post(f"webhooks/{hook.uid}/test/", json={"event": "x"}).status_code == 400

    inactive = hook_for(client, "task.completed")
    count = len(all_deliveries(client))
    off = client.webhooks.test(inactive.uid)
    assert off["success"] is False and off["delivered"] is False and "inactive" in off["message"]
    assert len(all_deliveries(client)) == count  # nothing was sent

    broken = client.webhooks.create(target_url="https://hooks.example.invalid/x", events=["task.completed"])
    failed = client.webhooks.test(broken.uid)
    assert failed["success"] is False and failed["status_code"] is None and "resolve" in failed["message"]
    record = client.webhook_deliveries.get(failed["delivery"])
    assert record.status == "failed" and record.attempts == 1 and record.response_status is None
    assert http.post("webhooks/no-such-hook/test/").status_code == 404

    assert "Webhook test passed" in cli(mock, "webhooks", "test", hook.uid).stdout
    out = cli(mock, "webhooks", "test", inactive.uid)
    assert out.returncode == 0 and "Webhook test failed" in out.stdout


def test_deleting_a_webhook_drops_its_delivery_log(client):
    hook = hook_for(client, "auto_label.completed")
    mine = [d.uid for d in all_deliveries(client) if d.subscription == hook.uid]
    assert len(mine) == 3
    client.webhooks.delete(hook.uid)
    left = all_deliveries(client)
    assert len(left) == 1 and not set(mine) & {d.uid for d in left}
    with pytest.raises(NotFoundError):
        client.webhook_deliveries.get(mine[0])


def test_delivery_pages_neither_repeat_nor_drop(client):
    hook = hook_for(client, "auto_label.completed")
    made = [client.webhooks.test(hook.uid)["delivery"] for _ in range(5)]
    seen = all_deliveries(client)
    assert len(seen) == 9 and len({d.uid for d in seen}) == 9
    assert [d.uid for d in seen[:5]] == made[::-1]  # newest first


def test_another_organisation_cannot_see_or_touch_webhooks(mock, client):
    hook = hook_for(client, "auto_label.completed")
    delivery = client.webhook_deliveries.list(limit=1).items[0]
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        assert hook.uid not in [w.uid for w in other.webhooks.list(limit=100)]
        assert delivery.uid not in [d.uid for d in other.webhook_deliveries.list(limit=100)]
        assert other.webhook_deliveries.list(limit=100).items  # it has its own
        for call in (lambda: other.webhooks.get(hook.uid),
                     lambda: other.webhooks.update(hook.uid, is_active=False),
                     lambda: other.webhooks.test(hook.uid),
                     lambda: other.webhooks.delete(hook.uid),
                     lambda: other.webhook_deliveries.get(delivery.uid)):
            with pytest.raises(NotFoundError):
                call()
        theirs = other.webhooks.create(target_url="https://globex.example.com/h", events=["task.completed"])
        assert theirs.uid not in [w.uid for w in client.webhooks.list(limit=100)]
    finally:
        other.close()
    assert client.webhooks.get(hook.uid).is_active is True


def test_async_client_round_trip(mock):
    async def go():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            made = await ac.webhooks.create(target_url="https://example.com/async", events=["task.completed"])
            got = await ac.webhooks.get(made.uid)
            upd = await ac.webhooks.update(made.uid, events=["task.failed"])
            tested = await ac.webhooks.test(made.uid)
            delivery = await ac.webhook_deliveries.get(tested["delivery"])
            page = await ac.webhook_deliveries.list(limit=2)
            hooks = await ac.webhooks.list(limit=100)
            await ac.webhooks.delete(made.uid)
            return made, got, upd, tested, delivery, page, hooks

    made, got, upd, tested, delivery, page, hooks = asyncio.run(go())
    assert made.secret and got.secret is None and upd.events == ["task.failed"] and made.uid in [h.uid for h in hooks]
    assert tested["success"] and delivery.subscription == made.uid and page.items[0].uid == delivery.uid


def test_cli_lists_gets_and_creates(mock, client):
    hook = hook_for(client, "auto_label.completed")
    listed = cli(mock, "webhooks", "list")
    assert listed.returncode == 0 and "auto_label.completed" in listed.stdout
    got = cli(mock, "-o", "json", "webhooks", "get", hook.uid)
    assert got.returncode == 0 and hook.target_url in got.stdout
    deliveries = cli(mock, "-o", "json", "webhooks", "deliveries")
    assert deliveries.returncode == 0 and deliveries.stdout.count('"delivered"') == 3 and '"failed"' in deliveries.stdout
    made = cli(mock, "webhooks", "create", "--target-url", "https://example.com/cli", "--events", "task.completed")
    assert made.returncode == 0 and "Secret: whsec_" in made.stdout
    bad = cli(mock, "webhooks", "create", "--target-url", "not-a-url", "--events", "task.completed")
    assert bad.returncode != 0 and "400" in bad.stdout + bad.stderr
