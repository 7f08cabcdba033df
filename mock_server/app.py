"""The aiohttp application: routes bound from the specs by operationId, one middleware for rate-limit
headers and error conversion, and the per-operation endpoint that authenticates, validates and calls
the handler. Every answer is JSON; nothing but an injected fault is ever a 5xx.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from avala_mock.mock_server import bodies, control, dashboard, downloads, event_worker, faults, handlers, storage_plane
from avala_mock.mock_server import media as media_plane
from avala_mock.mock_server.access import check_control
from avala_mock.mock_server.context import API_KEY_HEADER, Ctx
from avala_mock.mock_server.durability import UNLOGGED
from avala_mock.mock_server.errors import ApiError, error_response, json_response
from avala_mock.mock_server.serving import LISTEN_PORTS
from avala_mock.mock_server.spec import CONTROL_SPEC, Operation, Spec, default_spec_path, not_implemented
from avala_mock.mock_server.state import STATE, MockState, ServerConfig
from avala_mock.simulators import media
from avala_mock.simulators.errors import AvalaError

log = logging.getLogger("avala_mock")
requests_log = logging.getLogger("avala_mock.requests")  # one line per request (--log-level info)


SPEC = web.AppKey("spec", Spec)
API_PREFIX = "/api/"  # the Avala API (rate limits, shaping, journal); everything else is the mock's own
ORGANIZATION = web.RequestKey("organization", str)  # the key's organisation, once authenticated


def create_app(config: ServerConfig | None = None) -> web.Application:
    config = config or ServerConfig()
    state = MockState(config)
    spec = Spec(config.spec_path or default_spec_path())
    control_spec = Spec(CONTROL_SPEC)
    middlewares = [_middleware(state)]
    if config.strict:  # inside the error middleware: it sees every request and never changes an answer
        from avala_mock.mock_server.strict import StrictJournal, strict_middleware

        journal = StrictJournal(spec)
        middlewares.append(strict_middleware(spec, journal, config))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    if config.strict:
        from avala_mock.mock_server.strict import STRICT

        app[STRICT] = journal
    app[STATE] = state
    app[SPEC] = spec
    app[LISTEN_PORTS] = set()
    found = handlers.collect(spec)
    routes = spec.routes()
    for i, op in enumerate(routes):
        _add_route(app, op.method, spec.base_path + op.path, _endpoint(op, found.get(op.operation_id), state))
        last_of_path = i + 1 == len(routes) or routes[i + 1].path != op.path
        if last_of_path and "{" not in op.path:
            # A literal path owns its URL (Django-style): other methods get 405 here instead of falling
            # through to a placeholder sibling (GET /fleet/events/batch/ is not get_fleet_event("batch")).
            methods = {o.method for o in routes if o.path == op.path}
            methods |= {"HEAD"} if "GET" in methods else set()
            app.router.add_route("*", spec.base_path + op.path, _method_not_allowed(sorted(methods)))
    control_handlers = {op_id: getattr(control, op_id, None) or getattr(dashboard, op_id) for op_id in control_spec.operations}
    for op in control_spec.routes():
        _add_route(app, op.method, control_spec.base_path + op.path, _endpoint(op, control_handlers[op.operation_id], state))
    # the mock's own non-Avala planes: byte storage, downloads, item media, the dashboard
    for plane in (storage_plane, downloads, media_plane, dashboard):
        plane.add_routes(app, state)
    app.router.add_get("/healthz", _healthz(state))
    event_worker.register(app, state)  # webhook/callback POSTs in the background, on the virtual clock
    if state.replicator is not None:  # a worker sharing its world: stay current while idle
        app.on_startup.append(state.replicator.start_following)
        app.on_cleanup.append(state.replicator.stop_following)
    if state.durability is not None:  # rebuild from --state-dir before the first request is served
        state.durability.open(app, {**found, **control_handlers})
        app.on_cleanup.append(state.durability.close)
    app.router.add_get("/openapi.yaml", _serve_text(spec.text))
    app.router.add_get("/_mock/openapi.yaml", _serve_text(control_spec.text))
    return app


def _add_route(app: web.Application, method: str, path: str, endpoint: Callable) -> None:
    """The operation's route; a GET also answers HEAD (same status and headers, no body), as HTTP says."""
    app.router.add_route(method, path, endpoint)
    if method == "GET":
        app.router.add_route("HEAD", path, endpoint)


def _method_not_allowed(methods: list[str]) -> Callable:
    async def refuse(request: web.Request) -> web.Response:
        return json_response({"detail": f'Method "{request.method}" not allowed.'}, 405, {"Allow": ", ".join(methods)})

    return refuse


def _healthz(state: MockState) -> Callable:
    """Liveness for load balancers and scripts: no key, no rate limit, no journal entry."""
    started = time.time()

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok", "uptime_s": round(time.time() - started, 1),
                              "clock": state.world.clock.describe()["now"], "organizations": len(state.world.stores)}, 200)

    return healthz


def _serve_text(text: str) -> Callable:
    body = text.encode()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/yaml")

    return serve


def _endpoint(op: Operation, fn: Callable | None, state: MockState) -> Callable:
    if fn is not None and inspect.iscoroutinefunction(fn):  # an operation runs at one pinned instant
        raise TypeError(f"handler {op.operation_id} must be synchronous")

    logged = op.method not in UNLOGGED and not op.ephemeral and not op.replaces_world

    def authenticate(request: web.Request, world: Any) -> tuple[str | None, Any, Any]:
        if not op.secured:
            return None, None, None
        keys = request.headers.getall(API_KEY_HEADER, [])
        if len(keys) > 1:
            raise ApiError(400, f"Send one {API_KEY_HEADER} header, not {len(keys)}.")
        key = keys[0] if keys else None
        if not key:
            raise ApiError(401, "Authentication credentials were not provided.")
        found = world.resolve_key(key)
        if found is None:
            raise ApiError(401, "Invalid API key.")
        request[ORGANIZATION] = found[0].org.slug  # for the journal and the request log
        return key, found[0], found[1]

    def run(request: web.Request, key: str | None, store: Any, user: Any, path: dict, query: dict, body: Any) -> web.StreamResponse:
        world = state.world
        ctx = Ctx(request, world, store, user, path, query, body)  # type: ignore[arg-type]
        durable = state.durability
        with world.clock.pinned():  # one instant per operation (and the same instant when it is replayed)
            if durable is not None and logged:
                with durable.operation(op.operation_id, request, key, path, query, body):
                    result = fn(ctx)  # type: ignore[misc]
            else:
                result = fn(ctx)  # type: ignore[misc]
        if durable is not None and op.replaces_world:
            durable.checkpoint()  # the new world is the starting point, on disk before the answer
            if state.replicator is not None:
                state.replicator.replaced_world()
        if isinstance(result, web.StreamResponse):
            return result
        if op.success_status == 204:
            return web.Response(status=204)
        return json_response(result, op.success_status)

    async def endpoint(request: web.Request) -> web.StreamResponse:
        key, store, user = authenticate(request, state.world)
        if fn is None:
            raise not_implemented(op)
        query = op.parse_query(request.query)
        body = await _read_body(request, op, state.config) if op.body else None
        path = dict(request.match_info)
        replicator = state.replicator
        if replicator is None:
            return run(request, key, store, user, path, query, body)
        # Workers sharing one world: a change runs under the write lock once current with the shared log;
        # a read catches up first. The key is resolved again: the world may have moved on meanwhile.
        if logged or op.replaces_world:
            async with replicator.exclusive():
                key, store, user = authenticate(request, state.world)
                return run(request, key, store, user, path, query, body)
        await replicator.catch_up()
        key, store, user = authenticate(request, state.world)
        return run(request, key, store, user, path, query, body)

    endpoint.__name__ = op.operation_id
    endpoint.operation_id = op.operation_id  # type: ignore[attr-defined]  # read by the journal and shaping
    return endpoint


async def _read_body(request: web.Request, op: Operation, config: ServerConfig) -> Any:
    raw = await bodies.read_raw(request, op.max_body or config.max_body_bytes, config.body_timeout)
    if not raw:  # absent or zero-length; whitespace alone is not JSON (400 in parse)
        if op.body == "required":
            raise ApiError(400, "A JSON request body is required.", errors={"(body)": ["This field is required."]})
        return None
    body = bodies.parse(raw, request.content_type)
    op.check_body(body, len(raw))
    return body


def _middleware(state: MockState) -> Callable:
    async def _off_api(request: web.Request, handler: Callable, started: float) -> web.StreamResponse:
        """The mock's own planes: the control API (guarded, logged at debug), storage, media, health."""
        if request.path.startswith("/_mock/") or request.path == "/_mock":
            try:
                check_control(request, state.control_token, state.control_hosts)
            except ApiError as exc:
                return _logged(request, error_response(exc), started, level=logging.DEBUG)
            return _logged(request, await _guarded(request, handler), started, level=logging.DEBUG)
        return _logged(request, await _guarded(request, handler), started)

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        started = time.perf_counter()
        media.ORIGIN.set(lambda: _origin(request))  # media URLs in answers point back where the client came from
        path = request.path
        if not path.startswith(API_PREFIX):
            return await _off_api(request, handler, started)
        op_id = getattr(request.match_info.route.handler, "operation_id", None)
        method = request.method
        verdict = state.limiter.take(_bucket_key(request, state), op_id, method, path)
        delay, fault = 0.0, None
        if not verdict.allowed:
            detail = f"Request was throttled. Expected available in {verdict.retry_after} seconds."
            response = error_response(ApiError(429, detail, headers={"Retry-After": str(verdict.retry_after)}))
        elif state.shaping.active:  # latency and faults (mock_server/shaping.py, faults.py)
            decision = state.shaping.decide(op_id, method, path)
            delay, fault = decision.delay, decision.fault
            if delay:
                await asyncio.sleep(delay)
            if fault is not None:
                response, status = await faults.inject(fault, request, lambda: _guarded(request, handler), verdict.headers())
                state.journal.record(method, path, op_id, status, time.perf_counter() - started, delay, fault.kind,
                                     request.get(ORGANIZATION))
                _log_line(request, status, started, op_id)
                return response
            response = await _guarded(request, handler)
        else:
            response = await _guarded(request, handler)
        response.headers.update(verdict.headers())
        state.journal.record(method, path, op_id, response.status, time.perf_counter() - started, delay,
                             organization=request.get(ORGANIZATION))
        return _logged(request, response, started, op_id)

    return middleware


def _origin(request: web.Request) -> str | None:
    try:
        return str(request.url.origin())
    except ValueError:  # a Host header that is no host: media URLs fall back to the server's address
        return None


def _logged(request: web.Request, response: web.StreamResponse, started: float, op_id: str | None = None, *,
            level: int = logging.INFO) -> web.StreamResponse:
    _log_line(request, response.status, started, op_id, level)
    return response


def _log_line(request: web.Request, status: int, started: float, op_id: str | None, level: int = logging.INFO) -> None:
    """Method, path (never the query string: it may carry tokens), status, milliseconds, organisation."""
    if not requests_log.isEnabledFor(level):
        return
    ms = (time.perf_counter() - started) * 1000.0
    org = request.get(ORGANIZATION)
    requests_log.log(level, "%s %s %d %.1fms org=%s", request.method, request.path, status, ms, org or "-",
                     extra={"http": {"method": request.method, "path": request.path, "status": status, "ms": round(ms, 2),
                                     "organization": org, "operation_id": op_id}})


def _bucket_key(request: web.Request, state: MockState) -> str:
    """A valid key has its own bucket; a missing or unknown one shares its client address's, so inventing
    keys neither escapes throttling nor makes the limiter remember every string it was sent."""
    key = request.headers.get(API_KEY_HEADER)
    if key and state.world.resolve_key(key) is not None:
        return key
    return f"ip:{request.remote}"


async def _guarded(request: web.Request, handler: Callable) -> web.StreamResponse:
    try:
        return await handler(request)
    except AvalaError as exc:
        return error_response(exc)
    except web.HTTPMethodNotAllowed as exc:
        allow = ", ".join(sorted(_allowed_methods(request, exc.allowed_methods)))
        return json_response({"detail": f'Method "{request.method}" not allowed.'}, 405, {"Allow": allow})
    except web.HTTPNotFound:
        return json_response({"detail": f"Not found: {request.path}"}, 404)
    except web.HTTPRequestEntityTooLarge:
        return json_response({"detail": "Request body too large."}, 413)
    except web.HTTPException as exc:
        return json_response({"detail": exc.reason}, exc.status)
    except Exception:  # a bug in the mock: still JSON, and logged without request headers
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response({"detail": "Internal error in avala-mock (this is a bug; see the server log)."}, 500)


def _allowed_methods(request: web.Request, fallback: set[str]) -> set[str]:
    """Methods of the route that owns this path. aiohttp merges the methods of every resource whose
    pattern matches (``/organizations/industry-choices/`` also matches ``/organizations/{slug}/``);
    the literal route registered first is the one that answers, so its methods are the truth."""
    for resource in request.app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == request.path or (pattern is not None and pattern.fullmatch(request.path)):
            return {route.method for route in resource}
    return fallback
