"""openapi.yaml is the contract: valid, bound one-to-one to handlers, and the 501 list only shrinks."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate

from fixtures.yamlio import load_yaml
from mock_server import handlers
from mock_server.spec import CONTROL_SPEC, Spec, default_spec_path

SPEC = Spec(default_spec_path())

# Operations that still answer 501. This list may only shrink: implementing one means deleting its line.
NOT_YET_IMPLEMENTED = {
    "admit_managed_fleet_upload",
    "complete_manual_upload",
    "confirm_fleet_recording_upload",
    "create_manual_upload_dataset",
    "finalize_fleet_recording_upload",
    "finalize_managed_fleet_upload",
    "get_fleet_recording_upload_status",
    "get_managed_fleet_upload_multipart_progress",
    "get_managed_fleet_upload_status",
    "get_manual_upload_allowed_mimes",
    "get_manual_upload_quota",
    "init_fleet_recording_upload",
    "init_managed_fleet_upload_multipart",
    "presign_fleet_recording_upload_urls",
    "presign_managed_fleet_upload_parts",
    "presign_manual_upload",
    "presign_manual_upload_parts",
}


def test_spec_is_valid_openapi_31():
    doc = load_yaml(default_spec_path().read_text())
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    validate(load_yaml(CONTROL_SPEC.read_text()))


def test_every_operation_has_a_handler_or_is_listed_as_501():
    bound = handlers.collect(SPEC)
    assert set(SPEC.operations) - set(bound) == NOT_YET_IMPLEMENTED
    assert not NOT_YET_IMPLEMENTED & set(bound), "implemented operations must leave the 501 list"


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


@pytest.mark.parametrize("operation_id", sorted(NOT_YET_IMPLEMENTED)[:: max(1, len(NOT_YET_IMPLEMENTED) // 12)])
def test_unimplemented_operations_answer_501_naming_the_operation(mock, operation_id):
    op = SPEC.operations[operation_id]
    path = op.path
    for name in [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]:
        path = path.replace("{" + name + "}", "x1")
    headers = {"X-Avala-Api-Key": mock.api_key}
    r = httpx.request(op.method, mock.base_url + path, headers=headers)
    assert r.status_code == 501, (op.method, path, r.text)
    assert operation_id in r.json()["detail"]
    assert r.headers["X-RateLimit-Limit"].isdigit()
