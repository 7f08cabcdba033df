"""The aiohttp application: routes bound from the specs by operationId, each route one coroutine from
mock_server/endpoint.py (no middleware on the hot path: aiohttp builds and walks a middleware chain
per request), and a last route answering JSON 404/405 for paths no route owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from avala_mock.mock_server import control, dashboard, downloads, endpoint, event_worker, handlers, storage_plane
from avala_mock.mock_server import media as media_plane
from avala_mock.mock_server.errors import json_response
from avala_mock.mock_server.serving import LISTEN_PORTS
from avala_mock.mock_server.spec import CONTROL_SPEC, Spec, default_spec_path
from avala_mock.mock_server.state import STATE, MockState, ServerConfig

SPEC = web.AppKey("spec", Spec)


def create_app(config: ServerConfig | None = None) -> web.Application:
    config = config or ServerConfig()
    state = MockState(config)
    spec = Spec(config.spec_path or default_spec_path())
    control_spec = Spec(CONTROL_SPEC)
    middlewares = []
    if config.strict:  # sees every request and never changes an answer
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
        answer = endpoint.operation(op, found.get(op.operation_id), state)
        _add_route(app, op.method, spec.base_path + op.path, endpoint.api_route(state, answer, op.operation_id))
        last_of_path = i + 1 == len(routes) or routes[i + 1].path != op.path
        if last_of_path and "{" not in op.path:
            # A literal path owns its URL (Django-style): other methods get 405 here instead of falling
            # through to a placeholder sibling (GET /fleet/events/batch/ is not get_fleet_event("batch")).
            methods = {o.method for o in routes if o.path == op.path}
            methods |= {"HEAD"} if "GET" in methods else set()
            refuse = endpoint.api_route(state, endpoint.method_not_allowed(sorted(methods)), None)  # named "refuse"
            app.router.add_route("*", spec.base_path + op.path, refuse)
    control_handlers = {op_id: getattr(control, op_id, None) or getattr(dashboard, op_id) for op_id in control_spec.operations}
    for op in control_spec.routes():
        answer = endpoint.operation(op, control_handlers[op.operation_id], state)
        _add_route(app, op.method, control_spec.base_path + op.path, endpoint.control_route(state, answer))
    # the mock's own non-Avala planes: byte storage, downloads, item media, the dashboard
    for plane in (storage_plane, downloads, media_plane, dashboard):
        plane.add_routes(app, state, lambda handler: endpoint.plane_route(state, handler))
    app.router.add_get("/healthz", endpoint.plane_route(state, _healthz(state)))
    event_worker.register(app, state)  # webhook/callback POSTs in the background, on the virtual clock
    if state.replicator is not None:  # a worker sharing its world: stay current while idle
        app.on_startup.append(state.replicator.start_following)
        app.on_cleanup.append(state.replicator.stop_following)
    if state.durability is not None:  # rebuild from --state-dir before the first request is served
        state.durability.open(app, {**found, **control_handlers})
        app.on_cleanup.append(state.durability.close)
    app.router.add_get("/openapi.yaml", endpoint.plane_route(state, _serve_text(spec.text)))
    app.router.add_get("/_mock/openapi.yaml", endpoint.plane_route(state, _serve_text(control_spec.text)))
    app.router.add_route("*", "/{tail:.*}", endpoint.unmatched(state))  # last: what no route owns
    return app


def _add_route(app: web.Application, method: str, path: str, handler: Callable) -> None:
    """The operation's route; a GET also answers HEAD (same status and headers, no body), as HTTP says."""
    app.router.add_route(method, path, handler)
    if method == "GET":
        app.router.add_route("HEAD", path, handler)


def _healthz(state: MockState) -> Callable:
    """Liveness for load balancers and scripts: no key, no rate limit, no journal entry."""
    started = time.time()

    async def healthz(request: web.Request) -> web.Response:
        body = {"status": "ok", "uptime_s": round(time.time() - started, 1),
                "clock": state.world.clock.describe()["now"], "organizations": len(state.world.stores)}
        if state.replicator is not None:  # a worker sharing its world: how far along the shared log it is
            body["replication"] = state.replicator.describe()
        return json_response(body, 200)

    return healthz


def _serve_text(text: str) -> Callable:
    body = text.encode()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/yaml")

    return serve
