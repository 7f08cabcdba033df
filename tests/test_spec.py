"""openapi.yaml is the contract: valid, bound one-to-one to handlers, and the 501 list only shrinks."""

from __future__ import annotations

from openapi_spec_validator import validate

from avala_mock.fixtures.yamlio import load_yaml
from avala_mock.mock_server import handlers
from avala_mock.mock_server.spec import CONTROL_SPEC, Spec, default_spec_path

SPEC = Spec(default_spec_path())


def test_spec_is_valid_openapi_31():
    doc = load_yaml(default_spec_path().read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    validate(load_yaml(CONTROL_SPEC.read_text()))


def test_every_operation_has_a_handler():
    assert set(handlers.collect(SPEC)) == set(SPEC.operations)


def test_every_handler_has_an_operation_of_its_tag():
    for name, module in handlers.all_handlers().items():
        assert name in SPEC.operations, f"{module}.{name} is not an operationId"
        assert handlers.module_for_tag(SPEC.operations[name].tag) == module, f"{name} is in the wrong module"


def test_every_response_documents_rate_limit_headers_and_errors_are_json():
    doc = SPEC.doc
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            assert "429" in op["responses"], (method, path)
            for code, response in op["responses"].items():
                response = SPEC.deref(response)
                assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response.get("headers", {})), (method, path, code)
            if op.get("security", doc["security"]):
                assert "401" in op["responses"], (method, path)


def test_creates_link_to_their_get():
    ops = SPEC.doc["paths"]["/projects/{project_uid}/auto-label/"]["post"]
    links = ops["responses"]["202"]["links"]
    assert {link["operationId"] for link in links.values()} == {"get_auto_label_job", "cancel_auto_label_job"}


def test_served_routes_are_exactly_the_described_operations():
    """openapi.yaml describes exactly what is served: every (method, path) under /api/v1 the app routes
    is an operation of the spec and every operation is routed (the 405 catch-alls aside)."""
    from avala_mock.mock_server.app import create_app
    from avala_mock.mock_server.state import ServerConfig

    app = create_app(ServerConfig(manual_clock=True))
    routed = {
        (route.method, route.resource.canonical.removeprefix(SPEC.base_path))
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith(SPEC.base_path + "/") and route.method != "*"
    }
    described = {(op.method, op.path) for op in SPEC.operations.values()}
    assert {r for r in routed if r[0] != "HEAD"} == described
    assert {(m, p) for m, p in routed if m == "HEAD"} == {("HEAD", p) for m, p in described if m == "GET"}


def test_no_operation_answers_501(mock):
    """Every operation has a backend: a request that passes auth never gets 501 (one per tag here;
    tests/test_sdk_surface.py walks all of them through the SDK)."""
    import httpx

    seen_tags = set()
    for op in SPEC.routes():
        if op.tag in seen_tags or "{" in op.path or op.method != "GET":
            continue
        seen_tags.add(op.tag)
        r = httpx.get(mock.base_url + op.path, headers={"X-Avala-Api-Key": mock.api_key})
        assert r.status_code != 501, (op.operation_id, r.text)
