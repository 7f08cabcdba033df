"""Webhook subscriptions and their delivery records (surface doc §2.9, §3.12, §3.13, §4.1).

This module is storage plus rules; it sends nothing. ``record_delivery`` and ``record_attempt`` are
the two calls the event flow uses to log what it delivered, so a delivery made by the event bus and
one made by ``test_webhook`` look the same. A test delivery is simulated (no network I/O): hosts under
the reserved ``.invalid`` TLD (RFC 2606) fail to resolve, every other host answers 200.
"""

from __future__ import annotations

from typing import Any

from avala_mock.simulators.dispatch import check_url
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.records import Collection, collection, declare, new_record, patch
from avala_mock.simulators.world import OrgStore, World

WEBHOOK = "Webhook"
DELIVERY = "Webhook delivery"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
TEST_EVENT = "webhook.test"


def _delivery_finished(record: dict[str, Any]) -> bool:
    return record["status"] != "pending" and record.get("next_retry_at") is None


declare(DELIVERY, indexes=("subscription",), retained=True, finished=_delivery_finished)


def webhooks(store: OrgStore) -> Collection:
    return collection(store, WEBHOOK)


def deliveries(store: OrgStore) -> Collection:
    return collection(store, DELIVERY)


def check_events(events: Any) -> list[str]:
    """A non-empty list of event names (duplicates dropped, order kept), else 400."""
    if not isinstance(events, list) or not events:
        raise Invalid("events: at least one event is required.", field="events")
    out: list[str] = []
    for name in events:
        if not isinstance(name, str) or not name.strip():
            raise Invalid("events: event names must be non-empty strings.", field="events")
        if name.strip() not in out:
            out.append(name.strip())
    return out


def create_webhook(
    world: World, store: OrgStore, *, target_url: str, events: list[str], is_active: bool = True, secret: str | None = None
) -> dict[str, Any]:
    """A new subscription; its HMAC ``_secret`` is the one sent or a generated one (returned on create only)."""
    fields = {
        "target_url": check_url(target_url, "target_url"),
        "events": check_events(events),
        "is_active": bool(is_active),
        "_secret": secret or f"whsec_{world.secrets.hex(40)}",
    }
    return webhooks(store).add(new_record(world, store, fields))


def update_webhook(world: World, store: OrgStore, webhook: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """PATCH: any of target_url, events, is_active; everything is checked before anything is written."""
    clean = dict(changes)
    if "target_url" in clean:
        clean["target_url"] = check_url(clean["target_url"], "target_url")
    if "events" in clean:
        clean["events"] = check_events(clean["events"])
    return patch(world, webhook, clean, ("target_url", "events", "is_active"))


def delete_webhook(store: OrgStore, uid: str) -> None:
    """Remove the subscription and its delivery log (the log belongs to the subscription)."""
    webhooks(store).remove(uid)
    deliveries(store).remove_where(subscription=uid)


def record_delivery(
    world: World,
    store: OrgStore,
    webhook: dict[str, Any],
    event_type: str,
    payload: dict[str, Any] | None,
    *,
    created_at: float | None = None,
) -> dict[str, Any]:
    """Log a delivery of ``event_type`` to ``webhook``, ``pending`` with no attempt yet."""
    rec = new_record(world, store, {
        "subscription": webhook["uid"],
        "event_type": event_type,
        "payload": dict(payload or {}),
        "response_status": None,
        "response_body": None,
        "attempts": 0,
        "next_retry_at": None,
        "status": "pending",
    })
    if created_at is not None:
        rec["created_at"] = rec["updated_at"] = created_at
    return deliveries(store).add(rec)


def record_attempt(
    world: World,
    delivery: dict[str, Any],
    *,
    response_status: int | None,
    response_body: str | None,
    next_retry_at: float | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """One delivery attempt: a 2xx answer delivers it; otherwise it stays ``pending`` when a retry is
    scheduled (``next_retry_at``) and becomes ``failed`` when not."""
    ok = response_status is not None and 200 <= response_status < 300
    delivery["attempts"] += 1
    delivery["response_status"] = response_status
    delivery["response_body"] = response_body
    delivery["next_retry_at"] = None if ok else next_retry_at
    delivery["status"] = "delivered" if ok else ("pending" if next_retry_at is not None else "failed")
    delivery["updated_at"] = world.clock.now() if at is None else at
    return delivery
