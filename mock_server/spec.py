"""Load an OpenAPI document and compile, once, what the request path needs per operation: its route,
its query and body validators (jsonschema-rs, refs resolved through one registry), its success status.

Both openapi.yaml (Avala) and control.yaml (the mock's own API) go through this module; there is no
second route table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs

from avala_mock.fixtures.yamlio import load_yaml_cached
from avala_mock.mock_server.errors import ApiError, validation_error

METHODS = ("get", "put", "post", "patch", "delete")
PACKAGED_SPEC = Path(str(files("avala_mock"))) / "openapi.yaml"  # package data; wheels install unpacked
CONTROL_SPEC = Path(str(files("avala_mock.mock_server"))) / "control.yaml"


def default_spec_path() -> Path:
    """The openapi.yaml shipped in the package; ``AVALA_MOCK_SPEC`` points at another copy."""
    env = os.environ.get("AVALA_MOCK_SPEC")
    return Path(env) if env else PACKAGED_SPEC


@dataclass
class QueryParam:
    name: str
    kind: str  # integer | number | boolean | string | array
    required: bool
    item_kind: str = "string"  # for arrays: the type of each repeated value


@dataclass
class Operation:
    operation_id: str
    method: str
    path: str
    tag: str
    secured: bool
    success_status: int
    query: list[QueryParam] = field(default_factory=list)
    query_validator: Any = None
    body: str | None = None  # None (no request body) | "required" | "optional"
    body_validator: Any = None
    max_body: int | None = None  # x-max-body-bytes: read past the app's request size cap, up to this
    replaces_world: bool = False  # x-replaces-world: with --state-dir, a checkpoint follows it
    ephemeral: bool = False  # x-ephemeral: changes process bookkeeping only, never logged

    def parse_query(self, raw: Any) -> dict[str, Any]:
        """Coerce the declared query parameters from strings and validate them; unknown ones are ignored."""
        if not self.query:
            return {}
        values: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for p in self.query:
            if p.name not in raw:
                continue
            try:
                if p.kind == "array":
                    values[p.name] = [_coerce(p.item_kind, v) for v in raw.getall(p.name)]
                else:
                    values[p.name] = _coerce(p.kind, raw[p.name])
            except ValueError as exc:
                errors[p.name] = [str(exc)]
        if not errors and self.query_validator is not None:
            errors = collect_errors(self.query_validator, values)
        if errors:
            raise validation_error(errors, "query parameters")
        return values

    def check_body(self, body: Any, size: int = 0) -> None:
        """400 listing what is wrong; a body over ``FULL_REPORT_BYTES`` reports its first error only, so
        a huge invalid batch costs one failed check, not one message per bad item."""
        if self.body_validator is not None:
            errors = collect_errors(self.body_validator, body, first_only=size > FULL_REPORT_BYTES)
            if errors:
                raise validation_error(errors, "request body")


def _coerce(kind: str, value: Any) -> Any:
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    return value


_SECRET_FIELD = re.compile(r"password|secret|token|api_?key|access_key|credential|auth_json|private_key", re.I)


def _first_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    return next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind


MAX_ERROR_FIELDS = 20  # fields listed in a 400's ``errors``; the summary says how many more there were
MAX_MESSAGE_CHARS = 200  # jsonschema messages quote the offending value, which may be megabytes long
# Larger invalid bodies report their first error only: jsonschema-rs builds every error of an invalid
# document eagerly (~20 µs each), so a 1 MB batch of bad items would hold the event loop for seconds.
FULL_REPORT_BYTES = 8 * 1024
MAX_KEY_CHARS = 100

def collect_errors(validator: Any, instance: Any, first_only: bool = False) -> dict[str, list[str]]:
    """Validation errors keyed by the dotted field they concern (``(body)`` for the whole document):
    at most ``MAX_ERROR_FIELDS`` fields, each message cut to ``MAX_MESSAGE_CHARS``."""
    if validator.is_valid(instance):
        return {}
    if first_only:
        try:
            validator.validate(instance)
        except jsonschema_rs.ValidationError as err:
            found = [err]
    else:
        found = validator.iter_errors(instance)
    errors: dict[str, list[str]] = {}
    for err in found:
        if len(errors) >= MAX_ERROR_FIELDS:
            errors["(more)"] = ["Further errors were not listed."]
            break
        base = ".".join(str(p) for p in err.instance_path)
        kind = err.kind.as_dict()
        names = [kind["property"]] if "property" in kind else kind.get("unexpected") or [None]
        for name in names[:MAX_ERROR_FIELDS]:
            key = (".".join(x for x in (base, name) if x) or "(body)")[:MAX_KEY_CHARS]
            secret = _SECRET_FIELD.search(key.rsplit(".", 1)[-1])
            # jsonschema messages quote the value; a secret's value must never come back in an error.
            message = f"Invalid value ({err.kind.name} check failed)." if secret and "property" not in kind else err.message
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[: MAX_MESSAGE_CHARS - 1] + "…"
            messages = errors.setdefault(key, [])
            if len(messages) < 3:
                messages.append(message)
    return errors


class Spec:
    """A parsed OpenAPI document with one compiled ``Operation`` per operationId."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.text = self.path.read_text()
        self.doc: dict[str, Any] = load_yaml_cached(self.text)
        self.base_path = (self.doc.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
        urn = f"urn:avala-mock:{self.path.name}"
        registry = jsonschema_rs.Registry([(urn, self.doc)])
        global_security = self.doc.get("security", [])
        self.operations: dict[str, Operation] = {}
        for path, item in self.doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method not in item:
                    continue
                op = item[method]
                params = [self.deref(p) for p in shared + op.get("parameters", [])]
                operation = Operation(
                    operation_id=op["operationId"],
                    method=method.upper(),
                    path=path,
                    tag=(op.get("tags") or ["default"])[0],
                    secured=bool(op.get("security", global_security)),
                    success_status=min(int(c) for c in op["responses"] if c.isdigit() and c.startswith("2")),
                    max_body=op.get("x-max-body-bytes"),
                    replaces_world=bool(op.get("x-replaces-world")),
                    ephemeral=bool(op.get("x-ephemeral")),
                )
                self._compile_query(operation, params, registry)
                self._compile_body(operation, op.get("requestBody"), path, method, urn, registry)
                if operation.operation_id in self.operations:
                    raise ValueError(f"duplicate operationId {operation.operation_id}")
                self.operations[operation.operation_id] = operation

    def deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _compile_query(self, operation: Operation, params: list[dict], registry: Any) -> None:
        query = [p for p in params if p.get("in") == "query"]
        if not query:
            return
        props, required = {}, []
        for p in query:
            schema = self.deref(p.get("schema", {}))
            kind = _first_type(schema)
            item_kind = _first_type(self.deref(schema.get("items", {}))) if kind == "array" else "string"
            operation.query.append(QueryParam(p["name"], kind, bool(p.get("required")), item_kind))
            props[p["name"]] = p.get("schema", {})
            if p.get("required"):
                required.append(p["name"])
        schema = {"type": "object", "properties": props, "required": required}
        operation.query_validator = jsonschema_rs.validator_for(_rebase(schema, registry_urn(self)), registry=registry, validate_formats=True)

    def _compile_body(self, operation: Operation, body: dict | None, path: str, method: str, urn: str, registry: Any) -> None:
        if not body:
            return
        body = self.deref(body)
        operation.body = "required" if body.get("required") else "optional"
        if "application/json" in body.get("content", {}):
            escaped = quote(path.replace("~", "~0").replace("/", "~1"), safe="~")
            pointer = "/".join(["paths", escaped, method, "requestBody", "content", "application~1json", "schema"])
            operation.body_validator = jsonschema_rs.validator_for({"$ref": f"{urn}#/{pointer}"}, registry=registry, validate_formats=True)

    def routes(self) -> list[Operation]:
        """Operations in registration order: shorter paths first, then at each segment literals before
        placeholders (§1.3). aiohttp tries the routes under one literal prefix in registration order, and a
        placeholder never spans a ``/``, so paths of different lengths cannot match the same URL: putting
        ``/projects/{uid}/`` before the nine deeper ``/projects/{project_uid}/...`` routes makes a
        project's GET try 2 patterns instead of 10."""

        def key(op: Operation) -> tuple:
            segments = op.path.strip("/").split("/")
            return len(segments), tuple((seg.startswith("{"), seg) for seg in segments), op.method

        return sorted(self.operations.values(), key=key)


def registry_urn(spec: Spec) -> str:
    return f"urn:avala-mock:{spec.path.name}"


def _rebase(schema: Any, urn: str) -> Any:
    """Point local ``#/...`` refs of an inline schema at the registered document."""
    if isinstance(schema, dict):
        return {k: (f"{urn}{v}" if k == "$ref" and v.startswith("#") else _rebase(v, urn)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v, urn) for v in schema]
    return schema


def not_implemented(operation: Operation) -> ApiError:
    return ApiError(501, f"Operation {operation.operation_id} is not implemented by avala-mock yet.", operation_id=operation.operation_id)
