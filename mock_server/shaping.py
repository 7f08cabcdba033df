"""Traffic-shaping configuration: which operations get extra latency, injected faults or their own rate
limit, and the seeded random streams that decide it per request.

A rule's ``match`` is a glob on the operationId (``get_auto_label_job``, ``list_*``) or, when it starts
with ``/``, on the request path (``/api/v1/projects/*``). ``methods`` narrows it further. The first
matching latency rule (or rate-limit rule) wins; fault rules are tried in order, each with its own
probability, and the first that fires is injected. The config is validated against ``fixtures/scenario_schema.yaml`` (the
same ``$defs`` a scenario file uses), so the control API and scenario files accept exactly the same thing.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

import jsonschema_rs

from avala_mock.fixtures import SCENARIO_SCHEMA
from avala_mock.fixtures.files import FileAccess, read_yaml, schema_errors
from avala_mock.fixtures.yamlio import load_yaml
from avala_mock.mock_server.latency import sample_seconds
from avala_mock.simulators.errors import Invalid

SCHEMA: dict[str, Any] = load_yaml(SCENARIO_SCHEMA.read_text())
_VALIDATORS: dict[str, Any] = {}
FAULT_KINDS = ("http_500", "http_502", "http_503", "http_504", "connection_reset", "empty_response",
               "malformed_json", "truncated_body", "slow_body", "hang")


class ShapingError(Invalid):
    """A shaping config that does not match the schema (400)."""


def validate(kind: str, data: Any, *, inline: bool = True) -> None:
    """Check ``data`` against ``$defs/<kind>`` of the scenario schema; raise with readable messages."""
    validator = _VALIDATORS.get(kind)
    if validator is None:
        schema = SCHEMA if kind == "scenario" else {"$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]}
        validator = _VALIDATORS[kind] = jsonschema_rs.validator_for(schema)
    errors = schema_errors(validator, data, inline=inline)
    if errors:
        raise ShapingError("; ".join(errors))


@dataclass
class Matcher:
    """A compiled ``match`` + ``methods`` pair."""

    pattern: str
    methods: frozenset[str] | None = None
    on_path: bool = field(init=False)
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        self.on_path = self.pattern.startswith("/")
        self.regex = re.compile(translate(self.pattern))

    def __call__(self, op_id: str | None, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        subject = path if self.on_path else op_id
        return subject is not None and self.regex.match(subject) is not None

    @classmethod
    def of(cls, rule: dict[str, Any]) -> Matcher:
        methods = rule.get("methods")
        return cls(rule.get("match", "*"), frozenset(m.upper() for m in methods) if methods else None)


@dataclass
class LatencyRule:
    spec: dict[str, Any]
    matcher: Matcher

    def sample(self, rng: random.Random) -> float:
        return sample_seconds(self.spec, rng)


@dataclass
class FaultRule:
    spec: dict[str, Any]
    matcher: Matcher

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def probability(self) -> float:
        return float(self.spec.get("probability", 1.0))


@dataclass
class Decision:
    """What the middleware does to one request: wait ``delay`` seconds, then maybe inject ``fault``."""

    delay: float = 0.0
    fault: FaultRule | None = None


NO_DECISION = Decision()


class Shaping:
    """Latency and fault rules with their own seeded streams (one per kind, so adding a fault rule does
    not shift the latency sequence). ``active`` is False when nothing is configured: the hot path then
    costs one attribute read."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.latency: list[LatencyRule] = []
        self.faults: list[FaultRule] = []
        self.active = False
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.latency_rng = random.Random(f"latency:{seed}")
        self.fault_rng = random.Random(f"faults:{seed}")

    def set_latency(self, rules: list[dict[str, Any]]) -> None:
        validate("latency", rules)
        self.latency = [LatencyRule(dict(r), Matcher.of(r)) for r in rules]
        self.latency_rng = random.Random(f"latency:{self.seed}")
        self._refresh()

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        validate("faults", rules)
        self.faults = [FaultRule(dict(r), Matcher.of(r)) for r in rules]
        self.fault_rng = random.Random(f"faults:{self.seed}")
        self._refresh()

    def _refresh(self) -> None:
        self.active = bool(self.latency or self.faults)

    def decide(self, op_id: str | None, method: str, path: str) -> Decision:
        delay = 0.0
        for rule in self.latency:
            if rule.matcher(op_id, method, path):
                delay = rule.sample(self.latency_rng)
                break
        fault = None
        for rule in self.faults:  # every matching rule rolls in order; the first that fires is injected
            if rule.matcher(op_id, method, path) and self.fault_rng.random() < rule.probability:
                fault = rule
                break
        if not delay and fault is None:
            return NO_DECISION
        return Decision(delay, fault)

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "latency": [r.spec for r in self.latency], "faults": [r.spec for r in self.faults]}


def load_scenario(ref: str | None = None, data: dict[str, Any] | None = None, access: FileAccess | None = None) -> dict[str, Any]:
    """Read and validate a scenario (a shipped name, a file ``access`` allows, or the inline ``data``);
    its ``world`` becomes an absolute path, found the same way (relative to the scenario's file)."""
    access = access or FileAccess()
    base, inline = None, data is not None
    if data is None:
        if not ref:
            raise ShapingError("a scenario needs a file, a shipped name or an inline document")
        path = access.scenario(ref)
        data = read_yaml(path, "scenario")
        base = path.parent
    if not isinstance(data, dict):
        raise ShapingError("a scenario is a mapping")
    validate("scenario", data, inline=inline)
    data = dict(data)
    if data.get("world"):
        data["world"] = str(access.world(data["world"], base))
    return data
