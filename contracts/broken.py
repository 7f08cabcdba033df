"""Deliberately wrong Avala servers, to prove the harness catches real non-conformance and keeps going:
our app with one outer middleware that breaks exactly one thing (``BROKEN`` maps each kind to the check
that must report it, and the operations worth running against it); ``StatelessServer``, a spec-only
mock in the manner of Prism's dynamic mode — every answer random but schema-valid, nothing remembered;
``JunkServer``, our app answering a seeded share of requests with junk (not JSON, JSON of the wrong
shape, broken headers, terminal escapes and rich markup in bodies); and ``SilentServer``, which passes the
preflight and then never answers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from avala_mock.mock_server.app import create_app
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

# kind -> (check that must fail, operations to run, what is broken)
BROKEN: dict[str, tuple[str, list[str], str]] = {
    "wrong-status": ("status_code_conformance", ["list_projects"], "GET /projects/ answers 201 instead of 200"),
    "missing-field": ("response_schema_conformance", ["list_projects"], "project objects lack their required `uid`"),
    "pagination-gap": ("pagination", ["list_projects", "list_datasets"],
                       "a page with a next link drops its last item (the cursor still points past it)"),
    "counters": ("auto_label_lifecycle", ["create_auto_label_job", "get_auto_label_job", "cancel_auto_label_job"],
                 "a running job reports one more successful item than it processed"),
    "no-rate-headers": ("rate_limit_headers", ["list_projects"], "X-RateLimit-Remaining is missing"),
    "error-shape": ("error_body_shape", ["get_project"], 'a 404 says {"error": ...} instead of {"detail": ...}'),
    "next-elsewhere": ("pagination", ["list_projects", "list_datasets"], "`next` links point at another host"),
}


def _json(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or response.content_type != "application/json" or response.body is None:
        return None
    return orjson.loads(response.body)  # type: ignore[arg-type]


def _rewrite(response: web.Response, body: Any) -> web.Response:
    response.body = orjson.dumps(body)
    return response


def breaker(kind: str) -> Callable:
    """The middleware that breaks ``kind``; it runs outside every middleware of the real app."""
    if kind not in BROKEN:
        raise ValueError(f"unknown broken kind {kind!r}; one of {', '.join(BROKEN)}")

    @web.middleware
    async def broken(request: web.Request, handler: Callable) -> web.StreamResponse:
        response = await handler(request)
        op = getattr(request.match_info.route.handler, "__name__", "")
        body = _json(response)
        if kind == "wrong-status" and op == "list_projects" and response.status == 200:
            response.set_status(201)
        elif kind == "missing-field" and op in ("list_projects", "get_project") and isinstance(body, dict):
            for item in body.get("results", [body]):
                item.pop("uid", None)
            _rewrite(response, body)  # type: ignore[arg-type]
        elif kind == "pagination-gap" and isinstance(body, dict) and body.get("next") and len(body.get("results", [])) > 1:
            body["results"] = body["results"][:-1]
            _rewrite(response, body)  # type: ignore[arg-type]
        elif kind == "counters" and op == "get_auto_label_job" and isinstance(body, dict) and body.get("processed_items"):
            body["successful_items"] += 1
            _rewrite(response, body)  # type: ignore[arg-type]
        elif kind == "no-rate-headers":
            response.headers.pop("X-RateLimit-Remaining", None)
        elif kind == "error-shape" and response.status == 404 and isinstance(body, dict):
            _rewrite(response, {"error": body.get("detail")})  # type: ignore[arg-type]
        elif kind == "next-elsewhere" and isinstance(body, dict) and body.get("next"):
            body["next"] = "http://elsewhere.invalid/api/v1/projects/?cursor=" + body["next"].rsplit("cursor=", 1)[-1]
            _rewrite(response, body)  # type: ignore[arg-type]
        return response

    return broken


def broken_app(kind: str, config: ServerConfig | None = None) -> web.Application:
    app = create_app(config or ServerConfig(manual_clock=True, rate_limit=10**9))
    app.middlewares.insert(0, breaker(kind))
    return app


class BrokenServer(LiveServer):
    """``LiveServer`` serving ``broken_app(kind)`` on a free port."""

    def __init__(self, kind: str, config: ServerConfig | None = None) -> None:
        super().__init__(config or ServerConfig(manual_clock=True, rate_limit=10**9))
        self.kind = kind
        breaker(kind)  # fail fast on an unknown kind

    def make_app(self) -> web.Application:
        return broken_app(self.kind, self.config)


class StatelessServer(LiveServer):
    """Every operation answers its documented success status with a random body valid against its
    response schema (drawn with schemathesis' generators), checks no key and remembers nothing: a job
    just created is some other job when fetched, and ``next`` links point wherever the draw says."""

    EXAMPLES = 12  # drawn per operation on its first call; the three richest are served

    def __init__(self, seed: int = 0) -> None:
        super().__init__(ServerConfig(manual_clock=True, rate_limit=10**9))
        self.seed = seed
        self.examples: dict[str, list[bytes]] = {}

    def make_app(self) -> web.Application:
        import random
        import warnings

        import schemathesis

        from avala_mock.mock_server.spec import Spec, default_spec_path

        spec = Spec(default_spec_path())
        draw = schemathesis.openapi.from_dict(_responses_as_requests(spec))
        rng = random.Random(self.seed)
        app = web.Application()

        def answer(op_id: str, status: int) -> Callable:
            async def handler(request: web.Request) -> web.Response:
                headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99", "X-RateLimit-Reset": "0"}
                if status == 204 or f"/{op_id}" not in draw.raw_schema["paths"]:
                    return web.Response(status=status, headers=headers)
                if op_id not in self.examples:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        drawn = _draw(draw[f"/{op_id}"]["POST"].as_strategy(), self.EXAMPLES, self.seed)
                        full = [b for b in drawn if _has_items(b)] or drawn
                        encoded = [json.dumps(b).encode() for b in full]  # draws may hold integers past 64 bits
                        self.examples[op_id] = sorted(encoded, key=len)[-3:]
                return web.Response(status=status, body=rng.choice(self.examples[op_id]),
                                    content_type="application/json", headers=headers)

            return handler

        for op in spec.routes():
            app.router.add_route(op.method, spec.base_path + op.path, answer(op.operation_id, op.success_status))
        return app


def _draw(strategy: Any, n: int, seed_: int = 0) -> list[Any]:
    """``n`` bodies from a case strategy, the same at every run (seeded, no example database): the server is
    random as spec-only mocks are, but a test against it fails the same way twice. Hypothesis leans to
    minimal values first (empty lists) and a spec-only mock shows content, so the draws run past the first
    few and the caller keeps the richest."""
    from hypothesis import HealthCheck, Phase, given, seed, settings

    bodies: list[Any] = []

    @seed(seed_)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Any) -> None:
        bodies.append(case.body)

    collect()
    return bodies


def _has_items(body: Any) -> bool:
    """A page with items, or anything that is not a page."""
    return not (isinstance(body, dict) and body.get("results") == [])


def _responses_as_requests(spec: Any) -> dict[str, Any]:
    """A document whose operations take each real operation's success response as their request body,
    so that schemathesis' request generators draw schema-valid responses."""
    paths = {}
    for item in spec.doc["paths"].values():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            code = min(c for c in op["responses"] if c.startswith("2"))
            schema = spec.deref(op["responses"][code]).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                paths[f"/{op['operationId']}"] = {"post": {
                    "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                    "responses": {"200": {"description": "drawn"}}}}
    return {"openapi": "3.1.0", "info": {"title": "responses", "version": "1"}, "paths": paths,
            "components": spec.doc["components"]}


# Answers no Avala server should give, each a way a foreign server can be wrong at once in body, type and headers.
JUNK: list[tuple[int, bytes, str, dict[str, str]]] = [
    (200, b"<html>oops</html>", "text/html", {}),
    (200, b"", "application/json", {}),
    (200, b"[1, 2, 3]", "application/json", {}),
    (200, b"null", "application/json", {}),
    (200, b'{"results": "nope", "next": 5}', "application/json", {}),
    (200, b'{"results": [1, null, "x"], "next": "::::", "previous": {}}', "application/json", {}),
    (200, b'{"truncated": ', "application/json", {}),
    (200, b"\xff\xfe\x00 not utf-8", "application/json", {}),
    (500, b"<h1>Server Error</h1>", "text/html", {}),
    (202, b'{"uid": 7, "status": ["x"]}', "application/json", {}),
    (200, b'{"uid": "a/b?c\\\\d", "status": "completed", "processed_items": "many"}', "application/json", {}),
    (429, b'{"detail": "slow down"}', "application/json", {"Retry-After": "soon"}),
    (200, b'{"results": [], "next": "http://127.0.0.1:1/x"}', "application/json",
     {"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-", "X-RateLimit-Reset": "1e999"}),
    (400, b'{"detail": "[/red] [bold]x[/] <script>alert(1)</script> \\u0000 \\u001b[2J"}', "application/json", {}),
    (200, b"[/] ]]] [[[ \x1b[31m red", "text/plain", {}),
]


def _preflight_or_control(request: web.Request) -> bool:
    """What the junk and silent servers answer truly: the preflight (so the run starts) and the control API."""
    return request.path.endswith("/users/me/") or request.path.startswith("/_mock/")


class JunkServer(LiveServer):
    """Our app, but (after the preflight's ``/users/me/``) a seeded ``share`` of answers is replaced by one of
    ``JUNK``: the harness must report what it meets and finish, whatever the bodies hold."""

    def __init__(self, seed: int = 0, share: float = 0.3) -> None:
        super().__init__(ServerConfig(manual_clock=True, rate_limit=10**9))
        self.rng, self.share = random.Random(seed), share

    def make_app(self) -> web.Application:
        app = create_app(self.config)
        rng, share = self.rng, self.share

        @web.middleware
        async def junk(request: web.Request, handler: Callable) -> web.StreamResponse:
            response = await handler(request)
            if _preflight_or_control(request) or rng.random() >= share:
                return response
            status, body, content_type, headers = rng.choice(JUNK)
            return web.Response(status=status, body=body, content_type=content_type, headers=headers)

        app.middlewares.insert(0, junk)
        return app


class SilentServer(LiveServer):
    """Passes the preflight (``/users/me/``), then answers nothing: a target that hangs mid-run."""

    def make_app(self) -> web.Application:
        app = create_app(self.config)
        stopping = asyncio.Event()

        @web.middleware
        async def silent(request: web.Request, handler: Callable) -> web.StreamResponse:
            if _preflight_or_control(request):
                return await handler(request)
            await stopping.wait()  # until the server stops (its shutdown waits for handlers in flight)
            raise web.HTTPServiceUnavailable()

        async def stop(app: web.Application) -> None:
            stopping.set()

        app.middlewares.insert(0, silent)
        app.on_shutdown.append(stop)
        return app
