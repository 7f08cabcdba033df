"""The contract harness: schemathesis (4.x engine, from Python) over openapi.yaml against any base URL
— every phase it has (examples, coverage, fuzzing, stateful through the spec's links) and every
check — plus our own checks (contracts/checks.py), folded into one per-operation ``Report``.

A run is: preflight (one cheap request: reachable, key accepted, an Avala API — or ``TargetProblem``),
schemathesis, our checks, then the cleanup of what the run created (unless ``keep_data``). It reports
progress as it goes (phase, operation, counts) through ``on_progress``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
import schemathesis
from multidict import MultiDict
from schemathesis.core import NOT_SET
from schemathesis.engine import events, from_schema

from avala_mock.contracts import unstated
from avala_mock.contracts.checks import run_error_shapes, run_lifecycle, run_pagination
from avala_mock.contracts.cleanup import Cleanup
from avala_mock.contracts.report import Report
from avala_mock.contracts.target import Silence, Target, TargetProblem, preflight, short
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.spec import Spec, default_spec_path

OWN_CHECKS = ("auto_label_lifecycle", "pagination", "rate_limit_headers", "error_body_shape")
# A schema-valid request may still name an object that does not exist: a random uid in a body is a
# faithful 400 (DRF: 'Invalid pk "x" - object does not exist.'), and no schema can say which ids exist.
# That, and a full storage quota (a documented 413), are the rejections of valid data the harness forgives;
# any other 400 for a schema-valid request means the spec is looser than the server, which is what a client
# author needs to hear about. (State conflicts are 409, which schemathesis accepts as it is.) Counted as
# `waived`, not failures.
MISSING_OBJECT = re.compile(r"does not exist|not found|no longer exists|no such ", re.IGNORECASE)
Progress = Callable[[str], None]


@dataclass
class HarnessOptions:
    base_url: str
    api_key: str
    operations: list[str] | None = None  # operationIds; None = all in the spec
    max_examples: int = 10
    seed: int | None = 0
    workers: int = 1  # >1 races CPython 3.11's AST recursion counter ("AST constructor recursion depth mismatch")
    schemathesis: bool = True
    own_checks: tuple[str, ...] = OWN_CHECKS
    lifecycle_timeout: float = 60.0
    spec_path: Path | None = None
    request_timeout: float = 30.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    keep_data: bool = False  # leave what the run created on the target
    preflight: bool = True


def run_harness(opts: HarnessOptions, on_progress: Progress | None = None) -> Report:
    """Run everything against ``opts.base_url`` and return the verdict. Raises ``TargetProblem`` when the
    target cannot be checked at all (the preflight fails, or it stops answering: ``Silence``); anything
    else becomes part of the report."""
    say = on_progress or (lambda message: None)
    started = time.perf_counter()
    report = Report(opts.base_url)
    spec_path = opts.spec_path or default_spec_path()
    spec = Spec(spec_path)
    selected = set(opts.operations) if opts.operations else set(spec.operations)
    unknown = selected - set(spec.operations)
    if unknown:
        report.errors.append(f"unknown operationId(s): {', '.join(sorted(unknown))}")
        selected -= unknown
    if opts.preflight:
        say("preflight: GET /users/me/")
        preflight(opts.base_url, opts.api_key)
    cleanup = Cleanup(spec, "/" + opts.base_url.split("://", 1)[-1].partition("/")[2].rstrip("/"))
    silence = Silence(opts.base_url.rstrip("/"))
    if opts.schemathesis and selected:
        _run_schemathesis(opts, spec_path, sorted(selected), report, cleanup, say, silence)
        if silence.gone:
            raise silence.problem()
    target = Target(opts.base_url, opts.api_key, report, opts.request_timeout, silence=silence,
                    on_response=lambda method, url, r: cleanup.note(method, url, r.status_code, _json_or_none(r.content)))
    try:
        for name, run in _own_checks(opts, target, spec, selected, say):
            try:
                run()
            except TargetProblem:
                raise
            except Exception as exc:  # a check met something it did not expect: evidence, not a crash
                report.fail(name, name, f"the check stopped: {type(exc).__name__}: {str(exc)[:200]}")
        if not opts.keep_data:
            say("cleanup: deleting what the run created")
            report.notes.append(cleanup.run(target))
    finally:
        target.close()
    report.duration = time.perf_counter() - started
    return report


def _own_checks(opts: HarnessOptions, target: Target, spec: Spec, selected: set[str], say: Progress) -> list[tuple[str, Callable[[], None]]]:
    checks: list[tuple[str, Callable[[], None]]] = []
    if "error_body_shape" in opts.own_checks or "rate_limit_headers" in opts.own_checks:
        checks.append(("error_body_shape", lambda: (say("own checks: error bodies"), run_error_shapes(target, spec, selected))))
    if "pagination" in opts.own_checks:
        checks.append(("pagination", lambda: run_pagination(target, spec, selected,
                                                            on_operation=lambda op: say(f"own checks: pagination {op}"))))
    lifecycle_ops = {"create_auto_label_job", "get_auto_label_job", "cancel_auto_label_job"}
    if "auto_label_lifecycle" in opts.own_checks and lifecycle_ops & selected:
        checks.append(("auto_label_lifecycle", lambda: (say("own checks: auto-label lifecycle"),
                                                        run_lifecycle(target, opts.lifecycle_timeout))))
    return checks


def _state_refusal(status: int | None, response: Any) -> bool:
    """A refusal of a schema-valid request for the target's state, which no schema can know: a 400 naming
    an object that does not exist, or a documented 413 for a full storage quota (``limit``/``used``)."""
    if status == 400:
        return _names_missing_object(response)
    if status == 413:
        body = _json_or_none(getattr(response, "content", b""))
        return isinstance(body, dict) and "limit" in body and "used" in body
    return False


def _names_missing_object(response: Any) -> bool:
    """Whether a 400's ``detail`` (or a field error) says that a referenced object does not exist."""
    body = _json_or_none(getattr(response, "content", b""))
    if not isinstance(body, dict):
        return False
    texts = [body.get("detail")] + [m for ms in (body.get("errors") or {}).values() if isinstance(ms, list) for m in ms]
    return any(isinstance(t, str) and MISSING_OBJECT.search(t) for t in texts)


def _json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except (orjson.JSONDecodeError, TypeError):
        return None


def _no_answer(event: events.NonFatalError) -> bool:
    """The request got no answer: timed out, refused or reset (not one the client could not even build)."""
    return (isinstance(event.value, (requests.Timeout, requests.ConnectionError))
            or event.info.title in ("Unresponsive Operation", "Unhealthy API"))


def _run_schemathesis(opts: HarnessOptions, spec_path: Path, operations: list[str], report: Report, cleanup: Cleanup,
                      say: Progress, silence: Silence) -> None:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # probes send NUL headers on purpose
    schema = schemathesis.openapi.from_path(str(spec_path))
    schema.config.update(base_url=opts.base_url, headers={"X-Avala-Api-Key": opts.api_key, **opts.extra_headers},
                         workers=opts.workers, request_timeout=opts.request_timeout)
    # Unknown query parameters are ignored, as DRF (and so Avala) does; the spec says so.
    schema.config.generation.update(max_examples=opts.max_examples, allow_extra_parameters=False,
                                    deterministic=opts.seed is not None)
    if opts.seed is not None:
        schema.config.seed = opts.seed
    schema.hook(unstated.map_case)
    schema = schema.include(operation_id=operations)
    spec = Spec(spec_path)
    phase, done, last_said = "", 0, 0.0
    stream = from_schema(schema).execute()
    for event in stream:
        if isinstance(event, events.PhaseStarted):
            phase, done = event.phase.name.value, 0
            say(f"schemathesis: {phase} phase")
        elif isinstance(event, events.ScenarioFinished):
            try:
                if event.is_test_scenario:
                    _fold_scenario(event, report, spec)
                _note_created(event, cleanup)
            except Exception as exc:  # what a foreign server answered must not end the run: say it and go on
                report.errors.append(f"harness could not read a scenario of {event.recorder.label}: "
                                     f"{type(exc).__name__}: {str(exc)[:200]}")
            if any(i.response is not None for i in event.recorder.interactions.values()):
                silence.answered()
            done += 1
            if time.monotonic() - last_said > 1.0:
                last_said = time.monotonic()
                say(f"schemathesis: {phase} phase, {done} scenario(s), {report.cases} cases, {report.failures} failures "
                    f"({event.recorder.label})")
        elif isinstance(event, events.NonFatalError):
            message = f"schemathesis: {event.label}: {event.info.message}"
            if _no_answer(event) and silence.unanswered(event.label, event.info.message) and not stream.stop_event.is_set():
                say(f"schemathesis: stopping: {silence.problem()}")
                stream.stop()  # the stream ends with its Finished event
            if "link definitions" in event.info.message:  # a subset of operations without their links
                report.notes.append(message.split("\n")[0])
            else:
                report.errors.append(message)
        elif isinstance(event, events.FatalError):
            report.errors.append(f"schemathesis stopped: {event.exception}")


def _note_created(event: events.ScenarioFinished, cleanup: Cleanup) -> None:
    for interaction in event.recorder.interactions.values():
        response = interaction.response
        if response is not None:
            cleanup.note(interaction.request.method, interaction.request.uri, response.status_code, _json_or_none(response.content))


def _operation_id(case: object) -> str:
    return case.operation.definition.raw.get("operationId") or case.operation.label  # type: ignore[attr-defined]


def _fold_scenario(event: events.ScenarioFinished, report: Report, spec: Spec | None = None) -> None:
    recorder = event.recorder
    for node in recorder.cases.values():
        report.add_cases(_operation_id(node.value))
    for case_id, checks in recorder.checks.items():
        node = recorder.cases.get(case_id)
        if node is None:
            continue
        op_id = _operation_id(node.value)
        for check in checks:
            if check.status.name != "FAILURE" or check.failure_info is None:
                continue
            response = recorder.find_response(case_id=case_id)
            status = response.status_code if response is not None else None
            if check.name == "positive_data_acceptance" and _state_refusal(status, response):
                report.waive(op_id, check.name)
                continue
            failure = check.failure_info.failure
            case = node.value
            if check.name == "negative_data_rejection" and spec is not None and _valid_under_31(spec, op_id, case):
                report.waive(op_id, check.name)  # only `format` was broken: an annotation in OpenAPI 3.1
                continue
            report.fail(op_id, check.name, f"[{event.phase.value}] {_describe(case, status, response)}: {failure.title}.")


def _describe(case: Any, status: int | None, response: Any) -> str:
    """``METHOD path -> status`` with what was sent (query, a short body) and a short answer body."""
    out = f"{case.method} {case.formatted_path} -> {status if status is not None else 'no answer'}"
    if case.query:
        out += f" query={short(str(dict(case.query)))}"
    body = getattr(case, "body", NOT_SET)
    if body is not NOT_SET and body is not None:
        out += f" sent={short(body.decode(errors='replace') if isinstance(body, (bytes, bytearray)) else str(body))}"
    if response is not None and response.content:
        out += f" answer={short(response.content.decode(errors='replace'))}"
    return out


def _valid_under_31(spec: Spec, op_id: str, case: object) -> bool:
    """Whether a "negative" case is valid under OpenAPI 3.1 / JSON Schema 2020-12, where ``format`` is an
    annotation: schemathesis mutates formats too, but a server that accepts them still conforms."""
    op = spec.operations.get(op_id)
    if op is None:
        return False
    body = getattr(case, "body", NOT_SET)
    if body is NOT_SET:
        body = None
    if op.body_validator is not None and body is not None and not isinstance(body, (bytes, bytearray, str)):
        if not op.body_validator.is_valid(body):
            return False
    elif body is not None:
        return False
    query = MultiDict()
    for name, value in (getattr(case, "query", None) or {}).items():
        for v in value if isinstance(value, list) else [value]:
            query.add(name, str(v).lower() if isinstance(v, bool) else str(v))
    try:
        op.parse_query(query)
    except ApiError:
        return False
    return True
