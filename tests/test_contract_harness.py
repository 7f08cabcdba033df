"""The contract harness (contracts/): 0 failures against our own mock over every operation, and each
deliberately broken target reported under the check that owns the breakage."""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from avala_mock.__main__ import main
from avala_mock.contracts.broken import BROKEN, BrokenServer
from avala_mock.contracts.checks import Target
from avala_mock.contracts.report import Report
from avala_mock.contracts.runner import HarnessOptions, run_harness
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from helpers import spec_operations

FULL_RUN_MAX_EXAMPLES = 10  # the suite's one full schemathesis pass: every phase and check over every operation


def test_harness_against_our_mock_has_no_failures():
    """Every operation, every schemathesis phase and check, plus our own checks; manual clock via control API."""
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
        started = time.perf_counter()
        report = run_harness(HarnessOptions(server.base_url, server.api_key, max_examples=FULL_RUN_MAX_EXAMPLES, seed=0))
        took = time.perf_counter() - started
    failing = {op: dict(r.failures) for op, r in report.operations.items() if r.failures}
    assert not report.errors, report.errors
    assert failing == {}, json.dumps({op: report.operations[op].messages for op in failing}, indent=1)[:4000]
    assert set(report.operations) == spec_operations()
    assert report.score == 100.0
    assert report.operations["get_auto_label_job"].cases > 0
    print(f"\ncontract harness vs avala-mock: {report.cases} cases over {len(report.operations)} operations, "
          f"0 failures, {sum(sum(r.waived.values()) for r in report.operations.values())} waived, {took:.1f} s")


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_target_is_reported_under_the_right_check(kind):
    check, operations, _what = BROKEN[kind]
    with BrokenServer(kind) as server:
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=operations, max_examples=5))
    failed = report.failed_checks()
    assert not report.passed
    assert check in failed, f"{kind}: expected {check}, got {sorted(failed)}"
    assert failed[check] & set(operations + ["get_auto_label_job", "list_projects"]), failed
    assert report.score < 100.0


def test_lifecycle_without_the_control_api_polls_a_scaled_clock():
    """No manual clock: the harness cannot move time, so it polls with a deadline (scale 100: a
    5,000-item job runs ~2.5 s of wall time, polled every 0.5 s)."""
    with LiveServer(ServerConfig(time_scale="100", seed=3, rate_limit=10**9)) as server:
        report = Report(server.base_url)
        target = Target(server.base_url, server.api_key, report)
        assert target.manual is False
        target.close()
        report = run_harness(HarnessOptions(server.base_url, server.api_key, schemathesis=False,
                                            own_checks=("auto_label_lifecycle",), lifecycle_timeout=60))
    assert report.passed, report.to_json()
    assert report.operations["get_auto_label_job"].cases >= 2
    assert not any("not terminal" in n for n in report.notes), report.notes


def test_reports_render_as_json_junit_and_html():
    with BrokenServer("wrong-status") as server:
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=["list_projects"], max_examples=3,
                                            own_checks=()))
    doc = json.loads(report.to_json())
    assert doc["passed"] is False and doc["operations"]["list_projects"]["failures"]["status_code_conformance"] >= 1
    suite = ET.fromstring(report.to_junit())
    failures = suite.findall("./testcase[@name='list_projects']/failure")
    assert {f.get("type") for f in failures} >= {"status_code_conformance"}
    assert "FAILED" in report.to_html() and "list_projects" in report.to_html()


def test_contract_cli_exit_codes_and_report_file(tmp_path):
    runner = CliRunner()
    with LiveServer(ServerConfig(manual_clock=True, rate_limit=10**9)) as server:
        ok = runner.invoke(main, ["contract", "--base-url", server.base_url, "--api-key", server.api_key,
                                  "--operations", "list_projects,get_project", "--max-examples", "3"])
    assert ok.exit_code == 0, ok.output
    assert "PASSED" in ok.output
    out = tmp_path / "r.xml"
    with BrokenServer("error-shape") as server:
        bad = runner.invoke(main, ["contract", "--base-url", server.base_url, "--api-key", server.api_key,
                                   "--operations", "get_project", "--no-schemathesis", "--report", "junit", "--output", str(out)])
    assert bad.exit_code == 1, bad.output
    assert "error_body_shape" in bad.output
    assert ET.parse(out).getroot().find("./testcase[@name='get_project']/failure[@type='error_body_shape']") is not None


def test_unknown_operation_is_a_harness_error():
    with LiveServer(ServerConfig(manual_clock=True)) as server:
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=["no_such_op"], schemathesis=False))
    assert not report.passed and "no_such_op" in report.errors[0]
