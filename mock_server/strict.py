"""Strict mode (``serve --strict``): a middleware that checks every Avala request against openapi.yaml
on its own, records each off-contract request in a bounded violations journal and counts which
operations were exercised (coverage). It never changes an answer: the client still gets what the
mock would have said; the journal is what ``verify-client`` and the pytest plugin read.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from avala_mock.mock_server import bodies
from avala_mock.mock_server.context import API_KEY_HEADER
from avala_mock.mock_server.endpoint import UNMATCHED, allowed_methods
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.spec import Operation, Spec
from avala_mock.mock_server.state import ServerConfig

JOURNAL_SIZE = 1000
_OWN_PREFIXES = ("/_mock/", "/_storage/", "/_downloads/", "/_media/", "/openapi.yaml", "/healthz")


class StrictJournal:
    """Bounded list of violations (newest kept) plus per-operation request counts."""

    def __init__(self, spec: Spec, size: int = JOURNAL_SIZE) -> None:
        self.spec = spec
        self.violations: deque[dict[str, Any]] = deque(maxlen=size)
        self.total_violations = 0
        self.requests = 0
        self.exercised: Counter[str] = Counter()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.violations.clear()
            self.total_violations = 0
            self.requests = 0
            self.exercised.clear()

    def record(self, request: web.Request, rule: str, detail: str, operation_id: str | None, status: int | None,
               field: str | None = None) -> None:
        with self._lock:
            self.total_violations += 1
            self.violations.append({
                "seq": self.total_violations,
                "method": request.method,
                "path": request.path,
                "operation_id": operation_id,
                "rule": rule,
                "field": field,
                "detail": detail,
                "status": status,
            })

    def violations_doc(self) -> dict[str, Any]:
        with self._lock:
            return {"enabled": True, "count": self.total_violations, "requests": self.requests,
                    "violations": list(self.violations)}

    def coverage_doc(self) -> dict[str, Any]:
        with self._lock:
            ops = sorted(self.spec.operations)
            hit = [o for o in ops if self.exercised[o]]
            return {
                "enabled": True,
                "operations": len(ops),
                "exercised": len(hit),
                "percent": round(100.0 * len(hit) / len(ops), 2) if ops else 100.0,
                "counts": {o: self.exercised[o] for o in hit},
                "not_exercised": [o for o in ops if not self.exercised[o]],
            }


STRICT = web.AppKey("strict", StrictJournal)


Violation = tuple[str, str | None, str]  # (rule, field or None, detail)


async def check_request(request: web.Request, op: Operation, config: ServerConfig) -> list[Violation]:
    """The contract rules this request breaks, one entry per field at fault; empty when it conforms.

    Stricter than the server on one point: an unknown query parameter is answered (ignored, as DRF does)
    but recorded, because it is nearly always a typo (``?projcet=``) that silently filters nothing."""
    found: list[Violation] = []
    if op.secured and not request.headers.get(API_KEY_HEADER):
        found.append(("security", API_KEY_HEADER, f"missing {API_KEY_HEADER} header"))
    declared = {p.name for p in op.query}
    for name in dict.fromkeys(request.query):
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            found.append(("query-parameters", name, f"unknown query parameter {name!r} (declared: {known})"))
    try:
        op.parse_query(request.query)
    except ApiError as exc:
        found += _per_field("query-parameters", exc)
    if not op.body:
        return found
    try:  # the same bounded read the endpoint does; it keeps the bytes for the endpoint
        raw = await bodies.read_raw(request, op.max_body or config.max_body_bytes, config.body_timeout)
    except ApiError as exc:
        found.append(("request-body", None, exc.detail))
        return found
    if not raw:
        if op.body == "required":
            found.append(("request-body", None, "a JSON request body is required"))
        return found
    try:
        body = bodies.parse(raw, request.content_type)
        op.check_body(body, len(raw))
    except ApiError as exc:
        found += [("content-type", None, exc.detail)] if exc.status == 415 else _per_field("request-body", exc)
    return found


def _per_field(rule: str, exc: ApiError) -> list[Violation]:
    errors = exc.errors or {}
    if not errors:
        return [(rule, None, exc.detail)]
    return [(rule, None if field in ("(body)", "(more)") else field, "; ".join(messages)) for field, messages in errors.items()]


def strict_middleware(spec: Spec, journal: StrictJournal, config: ServerConfig) -> Callable:
    """Middleware recording off-contract requests (the only middleware: it sees every request, throttled or not)."""
    prefix = spec.base_path

    @web.middleware
    async def strict(request: web.Request, handler: Callable) -> web.StreamResponse:
        path = request.path
        if path.startswith(_OWN_PREFIXES):
            return await handler(request)
        with journal._lock:
            journal.requests += 1
        route_name = getattr(request.match_info.route.handler, "__name__", "")
        op = spec.operations.get(route_name)
        if op is not None:
            with journal._lock:
                journal.exercised[op.operation_id] += 1
            for rule, field, detail in await check_request(request, op, config):
                journal.record(request, rule, detail, op.operation_id, None, field)
        elif route_name == "refuse" or route_name == UNMATCHED and allowed_methods(request):
            journal.record(request, "method", f"{request.method} is not an operation of {path}", None, 405)
        elif route_name == UNMATCHED or not path.startswith(prefix + "/"):
            journal.record(request, "unknown-operation", f"no operation in openapi.yaml matches {request.method} {path}", None, 404)
        return await handler(request)

    return strict
