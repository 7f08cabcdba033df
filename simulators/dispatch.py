"""Who receives an event, how it is signed, and when a failed delivery is retried.

Pure rules, no I/O: the event bus (simulators/events.py) asks these questions and the HTTP worker
(mock_server/event_worker.py) performs the sends. Signing follows the common webhook scheme (Stripe,
Slack): the timestamp is part of the signed bytes, so a captured body cannot be replayed later with a
fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import urlsplit

from avala_mock.simulators.errors import Invalid

SIGNATURE_HEADER = "X-Avala-Signature"
EVENT_HEADER = "X-Avala-Event"
DELIVERY_HEADER = "X-Avala-Delivery"
MAX_ATTEMPTS = 5  # the first try plus four retries
RETRY_BASE_S = 10.0  # retry n (1-based) waits RETRY_BASE_S * 2**(n-1) virtual seconds: 10, 20, 40, 80
RESPONSE_BODY_LIMIT = 1024  # characters of the receiver's answer kept on the delivery record
# Reserved names (RFC 2606 / RFC 6761) are answered in-process, so the seeded world never touches the
# network: ``.invalid`` fails to resolve, the example domains answer 200. Every other host gets a real POST.
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org", "example")
UNRESOLVABLE_SUFFIX = ".invalid"  # RFC 2606: never resolves, so the simulated receiver fails
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")  # RFC 3986
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")  # name, IPv4 or IPv6


def webhook_matches(webhook: dict[str, Any], event: str) -> bool:
    """An active subscription listing the event by name (or ``*``)."""
    return bool(webhook.get("is_active")) and (event in webhook["events"] or "*" in webhook["events"])


def agent_matches(agent: dict[str, Any], event: str, payload: dict[str, Any]) -> bool:
    """An active agent listing the event, whose project scope and task types (if set) fit the payload."""
    if not agent.get("is_active") or event not in (agent.get("events") or []):
        return False
    project = agent.get("project")
    if project is not None and payload.get("project_uid") not in (None, project):
        return False
    types = agent.get("task_types") or []
    return not types or payload.get("task_type") in (None, *types)


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next try after ``attempts`` failed tries, or None once they are used up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_BASE_S * 2 ** (attempts - 1)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of b"<t>." + body keyed by the secret>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str | None, *, now: float | None = None, tolerance_s: float | None = None) -> bool:
    """Check a signature header against the raw body (constant-time). With ``tolerance_s`` and ``now``,
    a timestamp further than that from ``now`` is refused too (the timestamp is virtual clock time)."""
    if not header:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if tolerance_s is not None and now is not None and abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


def headers(secret: str, body: bytes, timestamp: int, event: str, delivery_uid: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "avala-mock-webhooks/1",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_uid,
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }


def simulated_answer(url: str) -> tuple[int | None, str] | None:
    """The in-process answer for a reserved host, or None when the URL gets a real POST."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "invalid" or host.endswith(".invalid"):
        return simulated_receiver(url)
    if any(host == d or host.endswith("." + d) for d in _EXAMPLE_DOMAINS):
        return simulated_receiver(url)
    return None


def truncate(text: str | None) -> str | None:
    if text is None or len(text) <= RESPONSE_BODY_LIMIT:
        return text
    return text[:RESPONSE_BODY_LIMIT] + "…[truncated]"


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


def unresolvable(url: str | None) -> bool:
    """The simulated DNS: only hosts under ``.invalid`` fail."""
    host = (urlsplit(url).hostname or "") if url else ""
    return host == UNRESOLVABLE_SUFFIX[1:] or host.endswith(UNRESOLVABLE_SUFFIX)


def simulated_receiver(url: str) -> tuple[int | None, str]:
    """What the simulated target answers (no network I/O): unresolvable ``.invalid`` hosts, else 200."""
    if unresolvable(url):
        host = urlsplit(url).hostname
        return None, f"Could not resolve host {host!r} (simulated by avala-mock; no request was sent)."
    return 200, "Simulated delivery: avala-mock performs no network I/O; the receiver is assumed to answer 200."
