"""The server's rules that JSON Schema cannot state, taught to schemathesis.

``openapi.yaml`` states every rule a schema can express. A few are beyond any schema and are stated in
prose instead (in ``info.description`` or on the operation):

* integer *literals* anywhere in a body fit the signed 64-bit range, also inside free-form objects where
  the schema declares no type (JSON Schema sees numbers, not literals);
* ``page`` and ``cursor`` on ``GET /organizations/`` name the same page (a rule between two parameters);
* a manifest lookup by ``ordinal`` or ``ordinals`` (one of them) needs ``role`` and takes no ``cursor``;
* a manifest lists each path once (uniqueness of one key across array items);
* a dataset's GCS ``gc_storage_auth_json_content`` is a service-account key: JSON inside a string, which
  a schema can describe (``contentSchema``) but not assert;
* an annotation issue's body ``sequence_uid`` equals the path's (a body value compared with the path).

A positive case is brought within these rules before it is sent, so a schema-valid request is not refused
for them; a negative case is left as generated. The harness registers :func:`map_case` on its schema;
users of the plain schemathesis CLI load the same hook with
``SCHEMATHESIS_HOOKS=avala_mock.contracts.schemathesis_hooks``.
"""

from __future__ import annotations

from typing import Any

from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode

from avala_mock.mock_server.bodies import INT64

INT64_MIN, INT64_MAX = INT64
MANIFEST_OPERATIONS = frozenset({
    "init_fleet_recording_upload", "admit_managed_fleet_upload",
})
SAME_SEQUENCE_OPERATIONS = frozenset({"create_annotation_issue", "update_annotation_issue"})


def map_case(context: Any, case: Any) -> Any:
    """Schemathesis ``map_case`` hook: a positive case obeys the unstated rules; others pass unchanged."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    op_id = (case.operation.definition.raw or {}).get("operationId")
    if isinstance(case.body, (dict, list)):
        body = clamp_integers(case.body)
        if op_id in MANIFEST_OPERATIONS and isinstance(body, dict):
            body = _paths_once(body)
        if op_id == "create_dataset" and isinstance(body, dict) and isinstance(body.get("provider_config"), dict):
            body = {**body, "provider_config": _service_account_key(body["provider_config"])}
        if op_id in SAME_SEQUENCE_OPERATIONS and isinstance(body, dict) and "sequence_uid" in body:
            body = {**body, "sequence_uid": (case.path_parameters or {}).get("sequence_uid", body["sequence_uid"])}
        if body != case.body:
            case.body = body
    query = case.query
    if query not in (None, NOT_SET):
        if op_id == "list_organizations" and "page" in query and "cursor" in query:
            case.query = {**query, "cursor": str(query["page"])}
        elif op_id == "list_resolved_objects" and ("ordinal" in query or "ordinals" in query):
            case.query = _one_lookup(query)
    return case


def _one_lookup(query: dict[str, Any]) -> dict[str, Any]:
    lookup = {k: v for k, v in query.items() if k != "cursor"}
    if "ordinal" in lookup:
        lookup.pop("ordinals", None)
    if "role" not in lookup:
        lookup.pop("ordinal", None)
        lookup.pop("ordinals", None)
    return lookup


def clamp_integers(value: Any) -> Any:
    """``value`` with every integer outside the signed 64-bit range replaced by the nearest bound."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return min(max(value, INT64_MIN), INT64_MAX)
    if isinstance(value, dict):
        return {k: clamp_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clamp_integers(v) for v in value]
    return value


SERVICE_ACCOUNT_KEY = '{"type": "service_account", "client_email": "loader@example.iam.gserviceaccount.com"}'


def _service_account_key(config: dict[str, Any]) -> dict[str, Any]:
    if "gc_storage_auth_json_content" not in config:
        return config
    return {**config, "gc_storage_auth_json_content": SERVICE_ACCOUNT_KEY}


def _paths_once(body: dict[str, Any]) -> dict[str, Any]:
    files = body.get("files")
    if not isinstance(files, list):
        return body
    seen: set[Any] = set()
    kept = []
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(path, str) and path in seen:
            continue
        seen.add(path)
        kept.append(entry)
    return {**body, "files": kept}
