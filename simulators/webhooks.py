"""Webhook subscriptions and their delivery records (surface doc §2.9, §3.12, §3.13, §4.1).

This module is storage plus rules; it sends nothing. ``record_delivery`` and ``record_attempt`` are
the two calls the event flow uses to log what it delivered, so a delivery made by the event bus and
one made by ``test_webhook`` look the same. A test delivery is simulated (no network I/O): hosts under
the reserved ``.invalid`` TLD (RFC 2606) fail to resolve, every other host answers 200.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from simulators.clock import iso
from simulators.records import Collection, collection, new_record, patch
from simulators.world import Invalid, OrgStore, World

WEBHOOK = "Webhook"
DELIVERY = "Webhook delivery"
DELIVERY_STATUSES = ("pending", "delivered", "failed")
TEST_EVENT = "webhook.test"
UNRESOLVABLE_SUFFIX = ".invalid"  # RFC 2606: never resolves, so the simulated receiver fails
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")  # RFC 3986
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")  # name, IPv4 or IPv6


def webhooks(store: OrgStore) -> Collection:
    return collection(store, WEBHOOK)


def deliveries(store: OrgStore) -> Collection:
    return collection(store, DELIVERY)


def check_url(url: str, field: str) -> str:
    """An absolute http(s) URI (RFC 3986 characters only, a valid host), else 400 naming ``field``.
    The message does not echo the URL: it may carry credentials in its userinfo or query."""
    try:
        parts = urlsplit(url) if isinstance(url, str) and _URI_CHARS.fullmatch(url) else None
        host = parts.hostname if parts else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:  # a malformed IPv6 literal or port
        parts, host, port_ok = None, None, False
    if parts is None or parts.scheme not in ("http", "https") or not host or not _HOST.fullmatch(host) or not port_ok:
        raise Invalid(f"{field}: not an absolute http(s) URL (e.g. https://example.com/hooks/avala).", field=field)
    return url


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


def unresolvable(url: str | None) -> bool:
    """The simulated DNS: only hosts under ``.invalid`` fail."""
    host = (urlsplit(url).hostname or "") if url else ""
    return host == UNRESOLVABLE_SUFFIX[1:] or host.endswith(UNRESOLVABLE_SUFFIX)


def create_webhook(
    world: World, store: OrgStore, *, target_url: str, events: list[str], is_active: bool = True, secret: str | None = None
) -> dict[str, Any]:
    """A new subscription; its HMAC ``_secret`` is the one sent or a generated one (returned on create only)."""
    fields = {
        "target_url": check_url(target_url, "target_url"),
        "events": check_events(events),
        "is_active": bool(is_active),
        "_secret": secret or f"whsec_{world.ids.hex(40)}",
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


def simulated_receiver(url: str) -> tuple[int | None, str]:
    """What the simulated target answers (no network I/O): unresolvable ``.invalid`` hosts, else 200."""
    if unresolvable(url):
        host = urlsplit(url).hostname
        return None, f"Could not resolve host {host!r} (simulated by avala-mock; no request was sent)."
    return 200, "Simulated delivery: avala-mock performs no network I/O; the receiver is assumed to answer 200."


def test_webhook(world: World, store: OrgStore, webhook: dict[str, Any]) -> dict[str, Any]:
    """Send (simulated) a ``webhook.test`` event and log it as a delivery; an inactive webhook sends nothing."""
    now = world.clock.now()
    if not webhook["is_active"]:
        return {"success": False, "delivered": False, "status_code": None, "delivery": None,
                "message": "Webhook is inactive; activate it (is_active=true) to receive events.", "tested_at": iso(now)}
    payload = {"webhook_uid": webhook["uid"], "target_url": webhook["target_url"],
               "message": "Test event from Avala.", "sent_at": iso(now)}
    delivery = record_delivery(world, store, webhook, TEST_EVENT, payload)
    from simulators.dispatch import simulated_answer  # late: dispatch and events import this module
    from simulators.events import bus

    if simulated_answer(webhook["target_url"]) is None:  # a real endpoint: a signed POST, off the request path
        bus(world).send_now(store, delivery)
        return {"success": True, "delivered": False, "status_code": None, "delivery": delivery["uid"],
                "message": f"Test event queued for {webhook['target_url']}; the delivery record shows the outcome.",
                "tested_at": iso(now)}
    status, body = simulated_receiver(webhook["target_url"])
    record_attempt(world, delivery, response_status=status, response_body=body)
    ok = delivery["status"] == "delivered"
    message = f"Test event delivered to {webhook['target_url']} (HTTP {status})." if ok else f"Test event failed: {body}"
    return {"success": ok, "delivered": ok, "status_code": status, "delivery": delivery["uid"],
            "message": message, "tested_at": iso(now)}
