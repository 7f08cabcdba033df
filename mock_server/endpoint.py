"""What every request goes through, as one coroutine per route (no aiohttp middleware on the hot path):

* an Avala operation (``api_route``): key resolved once (rate-limit bucket and authentication),
  throttling, latency and faults, query and body validation, the handler at one pinned instant, one
  response built with its rate-limit headers, the journal entry and the request-log line;
* the mock's own planes (``plane_route``): the control-API guard for ``/_mock``, JSON errors, the log
  line at debug level for the control API;
* the fallback route (``unmatched``): the JSON 404/405 for any path no route owns.

Every answer is JSON; nothing but an injected fault is ever a 5xx.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from avala_mock.mock_server import bodies, faults
from avala_mock.mock_server.access import check_control
from avala_mock.mock_server.context import API_KEY_HEADER, Ctx, Handler
from avala_mock.mock_server.durability import UNLOGGED
from avala_mock.mock_server.errors import ApiError, error_response, json_response
from avala_mock.mock_server.spec import Operation, not_implemented
from avala_mock.mock_server.state import MockState, ServerConfig
from avala_mock.simulators import media
from avala_mock.simulators.errors import AvalaError

log = logging.getLogger("avala_mock")
requests_log = logging.getLogger("avala_mock.requests")  # one line per request (--log-level info)

# (request, key, (store, user) the key resolved to or None, extra response headers) -> response
Answer = Callable[[web.Request, "str | None", Any, dict[str, str]], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"  # the fallback route's handler name (strict mode tells 404/405 by it)


def operation(op: Operation, fn: Callable | None, state: MockState) -> Answer:
    """Authenticate, validate and run one operation's handler; the answer carries ``headers``."""
    logged = op.method not in UNLOGGED and not op.ephemeral and not op.replaces_world
    success, secured, op_id = op.success_status, op.secured, op.operation_id

    def authenticate(request: web.Request, key: str | None, found: Any) -> tuple[Any, Any]:
        if not secured:
            return None, None
        if isinstance(found, Several):
            raise ApiError(400, f"Send one {API_KEY_HEADER} header, not {found.count}.")
        if not key:
            raise ApiError(401, "Authentication credentials were not provided.")
        if found is None:
            raise ApiError(401, "Invalid API key.")
        return found

    def run(request: web.Request, key: str | None, store: Any, user: Any, path: dict, query: dict, body: Any,
            headers: dict[str, str]) -> web.StreamResponse:
        world = state.world
        ctx = Ctx(request, world, store, user, path, query, body)  # type: ignore[arg-type]
        durable = state.durability
        clock = world.clock
        held = clock.pin()  # one instant per operation (and the same instant when it is replayed)
        try:
            if durable is not None and logged:
                with durable.operation(op_id, request, key, path, query, body):
                    result = fn(ctx)  # type: ignore[misc]
            else:
                result = fn(ctx)  # type: ignore[misc]
        finally:
            clock.unpin(held)
        if durable is not None and op.replaces_world:
            durable.checkpoint()  # the new world is the starting point, on disk before the answer
            if state.replicator is not None:
                state.replicator.replaced_world()
        # (a dict is checked first: StreamResponse is an abstract MutableMapping, its isinstance goes through abc)
        if result.__class__ is not dict and isinstance(result, web.StreamResponse):
            result.headers.update(headers)
            return result
        if success == 204:
            return web.Response(status=204, headers=headers)
        return json_response(result, success, headers)

    def prepare(request: web.Request, key: str | None, found: Any) -> tuple[Any, Any, dict]:
        """The key's (store, user) and the parsed query, or the 4xx/501 that ends the request."""
        store, user = authenticate(request, key, found)
        if fn is None:
            raise not_implemented(op)
        return store, user, op.parse_query(request.query) if op.query else {}

    def answer_now(request: web.Request, key: str | None, found: Any, headers: dict[str, str]) -> web.StreamResponse:
        """``answer`` without awaiting anything: for an operation with no body, on a world of its own."""
        store, user, query = prepare(request, key, found)
        return run(request, key, store, user, dict(request.match_info), query, None, headers)

    async def answer(request: web.Request, key: str | None, found: Any, headers: dict[str, str]) -> web.StreamResponse:
        store, user, query = prepare(request, key, found)
        body = await _read_body(request, op, state.config) if op.body else None
        path = dict(request.match_info)
        replicator = state.replicator
        if replicator is None:
            return run(request, key, store, user, path, query, body, headers)
        # Workers sharing one world: a change runs under the write lock once current with the shared log;
        # a read catches up first. The key is resolved again: the world may have moved on meanwhile.
        if logged or op.replaces_world:
            async with replicator.exclusive():
                store, user = authenticate(request, key, _resolve(state, key))
                return run(request, key, store, user, path, query, body, headers)
        await replicator.catch_up()
        store, user = authenticate(request, key, _resolve(state, key))
        return run(request, key, store, user, path, query, body, headers)

    # Most requests (GETs, bodiless POSTs) have nothing to wait for: one coroutine less on their path.
    answer.now = answer_now if not op.body and state.replicator is None else None  # type: ignore[attr-defined]
    return answer


def api_route(state: MockState, answer: Answer, op_id: str | None) -> Handler:
    """An Avala route: the key resolved once, throttling, shaping, the answer, journal and log line."""
    now = getattr(answer, "now", None)

    async def route(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        media.ORIGIN.set(lambda: _origin(request))  # media URLs in answers point back where the client came from
        keys = request.headers.getall(API_KEY_HEADER, ())
        if keys:
            key = keys[0]
            found = state.world.resolve_key(key)
        else:
            key = found = None
        # A valid key has its own bucket; a missing or unknown one shares its client address's, so inventing
        # keys neither escapes throttling nor makes the limiter remember every string it was sent.
        method, path = request.method, request.path
        headers, retry = state.limiter.take(key if found is not None else f"ip:{request.remote}", op_id, method, path)
        organization = found[0].org.slug if found is not None else None
        if len(keys) > 1:
            found = Several(len(keys))
        delay = 0.0
        try:
            if retry:
                detail = f"Request was throttled. Expected available in {retry} seconds."
                raise ApiError(429, detail, headers={"Retry-After": str(retry)})
            if state.shaping.active:  # latency and faults (mock_server/shaping.py, faults.py)
                decision = state.shaping.decide(op_id, method, path)
                delay, fault = decision.delay, decision.fault
                if delay:
                    await asyncio.sleep(delay)
                if fault is not None:
                    response, status = await faults.inject(fault, request, lambda: _answered(request, answer, key, found, {}),
                                                           headers)
                    state.journal.record(method, path, op_id, status, time.perf_counter() - started, delay, fault.kind,
                                         organization)
                    _log_line(request, status, started, op_id, organization)
                    return response
            response = now(request, key, found, headers) if now is not None else await answer(request, key, found, headers)
        except Exception as exc:
            response = error_answer(request, exc)
            response.headers.update(headers)
        state.journal.record(method, path, op_id, response.status, time.perf_counter() - started, delay, None, organization)
        if requests_log.isEnabledFor(logging.INFO):
            _log_line(request, response.status, started, op_id, organization)
        return response

    route.__name__ = op_id or answer.__name__  # strict mode tells the route kinds apart by it
    return route


async def _answered(request: web.Request, answer: Answer, key: str | None, found: Any, headers: dict[str, str]) -> web.StreamResponse:
    try:
        return await answer(request, key, found, headers)
    except Exception as exc:
        return error_answer(request, exc)


def control_route(state: MockState, answer: Answer) -> Handler:
    """A control-API operation (no key, no throttling): the guard, then the answer."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await answer(request, None, None, {})

    return plane_route(state, route)


def plane_route(state: MockState, handler: Handler) -> Handler:
    """One of the mock's own routes (control API, storage, media, downloads, health): the control guard
    for ``/_mock``, JSON errors, the log line (at debug level for the control API)."""

    async def route(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        media.ORIGIN.set(lambda: _origin(request))
        level = logging.INFO
        try:
            if request.path.startswith("/_mock/") or request.path == "/_mock":
                level = logging.DEBUG
                check_control(request, state.control_token, state.control_hosts)
            response = await handler(request)
        except Exception as exc:
            response = error_answer(request, exc)
        if requests_log.isEnabledFor(level):
            _log_line(request, response.status, started, None, None, level)
        return response

    route.__name__ = getattr(handler, "__name__", "plane")
    return route


def unmatched(state: MockState) -> Handler:
    """The last route: a path no route owns (404), or a method its owner does not take (405)."""

    async def refuse(request: web.Request, key: str | None, found: Any, headers: dict[str, str]) -> web.StreamResponse:
        methods = allowed_methods(request)
        if methods:
            return _not_allowed(request, ", ".join(sorted(methods)), headers)
        return json_response({"detail": f"Not found: {request.path}"}, 404, headers)

    api = api_route(state, refuse, None)

    async def plane(request: web.Request) -> web.StreamResponse:
        return await refuse(request, None, None, {})

    elsewhere = plane_route(state, plane)
    prefix = "/api/"

    async def route(request: web.Request) -> web.StreamResponse:
        return await (api if request.path.startswith(prefix) else elsewhere)(request)

    route.__name__ = UNMATCHED
    return route


def method_not_allowed(methods: list[str]) -> Answer:
    """The answer of a literal path to a method it does not take (Django-style: the path owns its URL)."""
    allow = ", ".join(methods)

    async def refuse(request: web.Request, key: str | None, found: Any, headers: dict[str, str]) -> web.StreamResponse:
        return _not_allowed(request, allow, headers)

    return refuse


def _not_allowed(request: web.Request, allow: str, headers: dict[str, str]) -> web.Response:
    return json_response({"detail": f'Method "{request.method}" not allowed.'}, 405, {**headers, "Allow": allow})


def allowed_methods(request: web.Request) -> set[str]:
    """Methods of the route that owns this path (empty: none does). aiohttp merges the methods of every
    resource whose pattern matches (``/organizations/industry-choices/`` also matches
    ``/organizations/{slug}/``); the literal route registered first is the one that answers, so its
    methods are the truth. Routes taking any method (the fallback) own nothing."""
    for resource in request.app.router.resources():
        methods = {route.method for route in resource}
        if "*" in methods and len(methods) == 1:
            continue
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == request.path or (pattern is not None and pattern.fullmatch(request.path)):
            return methods - {"*"}
    return set()


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer for an exception raised while answering ``request``."""
    if isinstance(exc, AvalaError):
        return error_response(exc)
    if isinstance(exc, web.HTTPNotFound):
        return json_response({"detail": f"Not found: {request.path}"}, 404)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return json_response({"detail": "Request body too large."}, 413)
    if isinstance(exc, web.HTTPException):
        return json_response({"detail": exc.reason}, exc.status)
    # a bug in the mock: still JSON, and logged without request headers
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return json_response({"detail": "Internal error in avala-mock (this is a bug; see the server log)."}, 500)


class Several:
    """What a request sending more than one key resolves to: a 400 on any operation that needs a key."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def _resolve(state: MockState, key: str | None) -> Any:
    return state.world.resolve_key(key) if key else None


async def _read_body(request: web.Request, op: Operation, config: ServerConfig) -> Any:
    raw = await bodies.read_raw(request, op.max_body or config.max_body_bytes, config.body_timeout)
    if not raw:  # absent or zero-length; whitespace alone is not JSON (400 in parse)
        if op.body == "required":
            raise ApiError(400, "A JSON request body is required.", errors={"(body)": ["This field is required."]})
        return None
    body = bodies.parse(raw, request.content_type)
    op.check_body(body, len(raw))
    return body


def _origin(request: web.Request) -> str | None:
    try:
        return str(request.url.origin())
    except ValueError:  # a Host header that is no host: media URLs fall back to the server's address
        return None


def _log_line(request: web.Request, status: int, started: float, op_id: str | None, org: str | None,
              level: int = logging.INFO) -> None:
    """Method, path (never the query string: it may carry tokens), status, milliseconds, organisation."""
    if not requests_log.isEnabledFor(level):
        return
    ms = (time.perf_counter() - started) * 1000.0
    requests_log.log(level, "%s %s %d %.1fms org=%s", request.method, request.path, status, ms, org or "-",
                     extra={"http": {"method": request.method, "path": request.path, "status": status, "ms": round(ms, 2),
                                     "organization": org, "operation_id": op_id}})
