"""The fleet rule language: what a rule's ``condition``, ``scope`` and ``actions`` may say, and whether
an event matches them. Kept apart from the records so the language can be read (and tested) on its own.

Condition (the fixture shape, surface doc §2.17, and its combinations)::

    {"field": "temp", "op": "gt", "value": 80}
    {"all": [<condition>, ...]}   {"any": [<condition>, ...]}   {"not": <condition>}

``field`` names an event field (``type``, ``label``, ``severity``, ``duration_ms``, ``tags``, ...),
``metadata.<key>[.<key>...]``, ``device.<field>`` (the event's device), or a bare metadata key
(``temp`` = ``metadata.temp``, so the fixture rule means what it says).

Scope (all keys optional, all must hold): ``device_type`` / ``device_types`` (a type or list of types),
``device`` / ``devices`` (device uids), ``device_tags`` (any of these tags), ``event_type`` /
``event_types``.
"""

from __future__ import annotations

from typing import Any

from avala_mock.simulators.errors import Invalid

OPS = {
    "gt": "gt", ">": "gt", "gte": "gte", ">=": "gte", "lt": "lt", "<": "lt", "lte": "lte", "<=": "lte",
    "eq": "eq", "==": "eq", "ne": "ne", "!=": "ne", "contains": "contains", "in": "in",
}
EVENT_FIELDS = ("uid", "recording", "device", "type", "label", "description", "timestamp", "duration_ms", "tags",
                "metadata", "severity")
DEVICE_FIELDS = ("uid", "name", "type", "status", "tags", "firmware_version", "metadata")
SCOPE_KEYS = ("device_type", "device_types", "device", "devices", "device_tags", "event_type", "event_types")
MAX_DEPTH = 16


def validate_condition(cond: Any, where: str = "condition", depth: int = 0) -> None:
    """400 (naming the offending path) unless ``cond`` is a well-formed condition."""
    if depth > MAX_DEPTH:
        raise Invalid(f"{where}: conditions nest at most {MAX_DEPTH} levels deep.", field="condition")
    if not isinstance(cond, dict) or not cond:
        raise Invalid(f"{where}: a condition is a non-empty object.", field="condition")
    combinators = [k for k in ("all", "any", "not") if k in cond]
    if combinators:
        if len(cond) != 1:
            raise Invalid(f"{where}: {combinators[0]!r} must be the only key of its object.", field="condition")
        key = combinators[0]
        if key == "not":
            validate_condition(cond["not"], f"{where}.not", depth + 1)
            return
        items = cond[key]
        if not isinstance(items, list) or not items:
            raise Invalid(f"{where}.{key}: a non-empty list of conditions is required.", field="condition")
        for i, item in enumerate(items):
            validate_condition(item, f"{where}.{key}[{i}]", depth + 1)
        return
    missing = [k for k in ("field", "op", "value") if k not in cond]
    if missing:
        raise Invalid(
            f"{where}: missing {', '.join(missing)}; a condition is {{\"field\", \"op\", \"value\"}} "
            "or {\"all\"|\"any\": [...]} or {\"not\": ...}.", field="condition")
    extra = sorted(set(cond) - {"field", "op", "value"})
    if extra:
        raise Invalid(f"{where}: unknown key(s) {', '.join(extra)}.", field="condition")
    if not isinstance(cond["field"], str) or not cond["field"].strip():
        raise Invalid(f"{where}.field: a non-empty string is required.", field="condition")
    op = OPS.get(cond["op"]) if isinstance(cond["op"], str) else None
    if op is None:
        raise Invalid(f"{where}.op: {cond['op']!r} is not one of gt, gte, lt, lte, eq, ne, contains, in.", field="condition")
    value = cond["value"]
    if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise Invalid(f"{where}.value: {op} compares with a number or a string.", field="condition")
    if op == "in" and not isinstance(value, list):
        raise Invalid(f"{where}.value: 'in' needs a list.", field="condition")


def validate_scope(scope: Any, device_exists: Any) -> None:
    """400 unless ``scope`` uses known keys with the right shapes and names existing devices."""
    if not isinstance(scope, dict):
        raise Invalid("scope: an object is required.", field="scope")
    unknown = sorted(set(scope) - set(SCOPE_KEYS))
    if unknown:
        raise Invalid(f"scope: unknown key(s) {', '.join(unknown)}; known: {', '.join(SCOPE_KEYS)}.", field="scope")
    for key, value in scope.items():
        values = value if isinstance(value, list) else [value]
        if key in ("device_types", "devices", "device_tags", "event_types") and not isinstance(value, list):
            raise Invalid(f"scope.{key}: a list of strings is required.", field="scope")
        if not all(isinstance(v, str) and v for v in values):
            raise Invalid(f"scope.{key}: non-empty strings are required.", field="scope")
        if key in ("device", "devices"):
            for uid in values:
                if not device_exists(uid):
                    raise Invalid(f"scope.{key}: device {uid!r} not found.", field="scope")


def validate_actions(actions: Any) -> None:
    """Each action is an object with a string ``type``; ``alert`` may carry ``severity`` and ``message``."""
    if not isinstance(actions, list):
        raise Invalid("actions: a list is required.", field="actions")
    for i, action in enumerate(actions):
        if not isinstance(action, dict) or not isinstance(action.get("type"), str) or not action["type"]:
            raise Invalid(f"actions[{i}]: an object with a string 'type' (e.g. \"alert\") is required.", field="actions")
        if action["type"] == "alert":
            for key in ("severity", "message"):
                if key in action and not isinstance(action[key], str):
                    raise Invalid(f"actions[{i}].{key}: a string is required.", field="actions")


def in_scope(scope: dict[str, Any] | None, event: dict[str, Any], device: dict[str, Any] | None) -> bool:
    if not scope:
        return True
    dev = device or {}
    for key, value in scope.items():
        values = value if isinstance(value, list) else [value]
        if key in ("device_type", "device_types") and dev.get("type") not in values:
            return False
        if key in ("device", "devices") and event.get("device") not in values:
            return False
        if key == "device_tags" and not set(values) & set(dev.get("tags") or []):
            return False
        if key in ("event_type", "event_types") and event.get("type") not in values:
            return False
    return True


def matches(cond: dict[str, Any], event: dict[str, Any], device: dict[str, Any] | None) -> bool:
    """Whether the event (and its device) satisfies a validated condition."""
    if "all" in cond:
        return all(matches(c, event, device) for c in cond["all"])
    if "any" in cond:
        return any(matches(c, event, device) for c in cond["any"])
    if "not" in cond:
        return not matches(cond["not"], event, device)
    found, actual = _lookup(cond["field"], event, device)
    return _compare(OPS[cond["op"]], found, actual, cond["value"])


def _lookup(field: str, event: dict[str, Any], device: dict[str, Any] | None) -> tuple[bool, Any]:
    """(found, value) of a field path."""
    head, _, rest = field.partition(".")
    if head == "device" and rest:
        root: Any = device or {}
        parts = rest.split(".")
        if parts[0] not in DEVICE_FIELDS:
            return False, None
    elif head in EVENT_FIELDS:
        root, parts = event, field.split(".")
    else:  # a bare name is a metadata key (the fixture's "temp")
        root, parts = event.get("metadata") or {}, field.split(".")
    for part in parts:
        if not isinstance(root, dict) or part not in root:
            return False, None
        root = root[part]
    return True, root


def _compare(op: str, found: bool, actual: Any, value: Any) -> bool:
    if op == "ne":
        return not found or actual != value
    if not found:
        return False
    if op == "eq":
        return actual == value
    if op == "contains":
        if isinstance(actual, str) and isinstance(value, str):
            return value in actual
        if isinstance(actual, (list, dict)):
            return value in actual if not isinstance(value, (list, dict)) else False
        return False
    if op == "in":
        return isinstance(value, list) and not isinstance(actual, (list, dict)) and actual in value
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (actual, value))
    if not numeric and not (isinstance(actual, str) and isinstance(value, str)):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op]
