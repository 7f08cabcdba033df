"""The contract is as strict as the server, and a tool that knows only the spec can reach the operations:
integer ranges stated, event names an enum, rules the spec states only in prose taught to schemathesis,
every parameterised operation given examples or an incoming link, and the examples true at any seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
from schemathesis.generation import GenerationMode

from avala_mock.contracts import unstated
from avala_mock.fixtures.yamlio import load_yaml
from avala_mock.mock_server.bodies import INT64
from avala_mock.mock_server.spec import default_spec_path
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec() -> dict:
    return load_yaml(default_spec_path().read_text())


def _deref(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                params = {}
                for p in item.get("parameters", []) + op.get("parameters", []):  # the operation's win
                    p = _deref(spec, p)
                    params[(p["name"], p["in"])] = p
                yield path, method, op, params


def test_declared_integers_in_requests_state_the_64_bit_range(spec):
    """The server refuses integers beyond 64 bits; wherever a request declares an integer, the range says so."""
    seen: set[str] = set()
    loose: list[str] = []

    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].split("/")[-1]
                if name not in seen:
                    seen.add(name)
                    walk(_deref(spec, node), name)
                return
            kind = node.get("type")
            if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
                lo, hi = node.get("minimum"), node.get("maximum")
                if lo is None or hi is None or lo < INT64[0] or hi > INT64[1]:
                    loose.append(where)
            for k, v in node.items():
                if k not in ("example", "examples", "default", "enum", "const"):
                    walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    for _path, _method, op, params in _operations(spec):
        for (name, _in), p in params.items():
            walk(p.get("schema", {}), f"{op['operationId']}.{name}")
        for media in op.get("requestBody", {}).get("content", {}).values():
            walk(media.get("schema", {}), f"{op['operationId']}.body")
    assert loose == []


def test_every_parameterised_operation_has_examples_or_an_incoming_link(spec):
    """A fuzzer that knows only the spec can reach each operation with a path parameter: either every path
    parameter has an example (a well-known object of the default world) or another operation links to it."""
    linked = {
        link["operationId"]
        for _p, _m, op, _ps in _operations(spec)
        for response in op.get("responses", {}).values()
        for link in (_deref(spec, response).get("links") or {}).values()
    }
    unreachable = []
    for _path, _method, op, params in _operations(spec):
        path_params = [p for (_n, where), p in params.items() if where == "path"]
        if path_params and op["operationId"] not in linked and not all("example" in p or "examples" in p for p in path_params):
            unreachable.append(op["operationId"])
    assert unreachable == []


def test_webhooks_and_agents_refuse_an_event_name_that_never_fires(http):
    for path, body in (("webhooks/", {"target_url": "https://example.com/h", "events": ["task.completed", "nope.nope"]}),
                       ("agents/", {"name": "typo", "events": ["nope.nope"]})):
        r = http.post(path, json=body)
        assert r.status_code == 400, r.text
        assert any(k.startswith("events") for k in r.json()["errors"]), r.json()
    ok = http.post("webhooks/", json={"target_url": "https://example.com/h", "events": ["auto_label.completed"]})
    assert ok.status_code == 201


def test_out_of_enum_values_are_400_naming_the_field(http):
    assert http.get("qc-available-tools/", params={"dataset_type": "hologram"}).status_code == 400
    r = http.post("organizations/", json={"name": "Enum Check", "industry": "alchemy"})
    assert r.status_code == 400 and "industry" in r.json()["errors"]
    r = http.post("signup/", json={"email": "short@example.com", "password": "abc"})
    assert r.status_code == 400 and "password" in r.json()["errors"]


def test_unstated_rules_bring_only_positive_cases_within_them():
    assert unstated.clamp_integers({"a": [2**70, -(2**70), 5, True]}) == {"a": [INT64[1], INT64[0], 5, True]}
    assert unstated._one_lookup({"ordinal": 1, "ordinals": "1,2", "cursor": "x"}) == {}
    assert unstated._one_lookup({"ordinal": 1, "ordinals": "1,2", "role": "frame", "limit": 5}) == {"ordinal": 1, "role": "frame", "limit": 5}
    assert unstated._service_account_key({"provider": "gcs", "gc_storage_auth_json_content": "x"})["gc_storage_auth_json_content"] == unstated.SERVICE_ACCOUNT_KEY
    assert unstated._paths_once({"files": [{"path": "a"}, {"path": "a"}, {"path": "b"}]}) == {"files": [{"path": "a"}, {"path": "b"}]}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_hook_changes_positive_cases_and_leaves_negative_ones_as_generated(mode):
    def case(op_id, body=None, query=None, path_parameters=None):
        return SimpleNamespace(meta=SimpleNamespace(generation=SimpleNamespace(mode=mode)),
                               operation=SimpleNamespace(definition=SimpleNamespace(raw={"operationId": op_id})),
                               body=body, query=query, path_parameters=path_parameters)

    cases = [
        case("create_project", body={"n": 2**70}),
        case("list_organizations", query={"page": 3, "cursor": "x"}),
        case("list_resolved_objects", query={"ordinal": 1, "ordinals": "1,2", "role": "frame"}),
        case("update_annotation_issue", body={"sequence_uid": "b"}, path_parameters={"sequence_uid": "a"}),
    ]
    sent = [(c.body, c.query) for c in cases]
    after = [(c.body, c.query) for c in (unstated.map_case(None, c) for c in cases)]
    if mode == GenerationMode.NEGATIVE:
        assert after == sent  # a negative case is meant to break rules: it goes out as drawn
    else:
        assert after == [({"n": INT64[1]}, None), (None, {"page": 3, "cursor": "3"}), (None, {"ordinal": 1, "role": "frame"}),
                         ({"sequence_uid": "a"}, None)]


def test_spec_examples_name_real_objects_at_another_seed(tmp_path):
    """schemathesis' examples phase (plain CLI) against the default world at a seed other than the default:
    every operation whose path parameters all carry examples answers a 2xx to its examples."""
    spec_path = default_spec_path()
    spec_doc = load_yaml(spec_path.read_text())
    with LiveServer(ServerConfig(seed=11, manual_clock=True, rate_limit=10**9)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", str(spec_path), "--url", server.base_url,
             "-H", f"X-Avala-Api-Key: {server.api_key}", "--phases", "examples", "--checks", "not_a_server_error",
             "--report", "har", "--report-dir", str(tmp_path), "--no-color", "--warnings", "off"],
            capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    entries = json.loads(next(Path(tmp_path).glob("har-*.json")).read_text())["log"]["entries"]
    answered: dict[tuple[str, str], set[int]] = {}
    for e in entries:
        answered.setdefault((e["request"]["method"], unquote(urlsplit(e["request"]["url"]).path)), set()).add(e["response"]["status"])
    base = urlsplit(server.base_url).path.rstrip("/")
    missing = []
    for path, method, op, params in _operations(spec_doc):
        path_params = {n: p for (n, where), p in params.items() if where == "path"}
        if not path_params or not all("example" in p for p in path_params.values()):
            continue
        url = base + path
        for name, p in path_params.items():
            url = url.replace("{" + name + "}", str(p["example"]))
        statuses = answered.get((method.upper(), url), set())
        if not any(200 <= s < 300 for s in statuses):
            missing.append((op["operationId"], sorted(statuses)))
    assert missing == []
