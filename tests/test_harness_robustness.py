"""The harness against servers that are wrong in whole classes of ways: it never stops early, reports
each problem under the check that met it with readable evidence, says what failed, leaves no data
behind, and exits 2 (cannot check), 1 (does not conform) or 0."""

from __future__ import annotations

import io
import json
import socket
import time
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from avala_mock.__main__ import main
from avala_mock.contracts.broken import BrokenServer, JunkServer, SilentServer, StatelessServer
from avala_mock.contracts.cleanup import Cleanup
from avala_mock.contracts.report import Report
from avala_mock.contracts.runner import HarnessOptions, run_harness
from avala_mock.contracts.target import Silence, TargetProblem, preflight
from avala_mock.mock_server.spec import Spec, default_spec_path
from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer

CLEANUP_SPEC = Spec(default_spec_path())
LIFECYCLE_OPS = "list_projects,create_auto_label_job,get_auto_label_job,cancel_auto_label_job,list_datasets,get_project"


def contract(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["contract", *args])
    return result.exit_code, result.output, time.perf_counter() - started


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_unreachable_target_is_one_message_and_exit_2_within_seconds():
    code, out, took = contract("--base-url", f"http://127.0.0.1:{closed_port()}/api/v1", "--api-key", "k")
    print(f"\nunreachable: exit {code} in {took:.2f} s")
    assert code == 2 and took < 5, out
    assert "cannot reach" in out and "Connection failed" not in out and "score" not in out


def test_a_wrong_key_is_exit_2():
    with LiveServer(ServerConfig(manual_clock=True)) as server:
        code, out, took = contract("--base-url", server.base_url, "--api-key", "avk_not_a_key")
    print(f"\nwrong key: exit {code} in {took:.2f} s")
    assert code == 2 and took < 5 and "does not accept the API key" in out


def test_a_url_that_is_not_the_api_root_is_exit_2():
    with LiveServer(ServerConfig(manual_clock=True)) as server:
        with pytest.raises(TargetProblem, match="does the URL end in /api/v1"):
            preflight(server.origin, server.api_key)


def test_next_links_to_another_host_are_a_pagination_failure_and_the_run_goes_on():
    with BrokenServer("next-elsewhere") as server:
        started = time.perf_counter()
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=["list_projects", "list_datasets",
                                            "create_auto_label_job", "get_auto_label_job", "cancel_auto_label_job"],
                                            schemathesis=False))
        took = time.perf_counter() - started
    messages = report.operations["list_projects"].messages["pagination"]
    print(f"\nnext elsewhere: {took:.1f} s, checks {sorted(report.failed_checks())}")
    assert any("`next` leaves the base URL" in m and "elsewhere.invalid" in m for m in messages)
    assert "auto_label_lifecycle" not in report.failed_checks()  # the later check still ran, and passed
    assert report.operations["get_auto_label_job"].cases > 0 and not report.errors


def test_a_stateless_spec_only_mock_is_reported_check_by_check():
    with StatelessServer() as server:
        code, out, took = contract("--base-url", server.base_url, "--api-key", "any", "--operations", LIFECYCLE_OPS,
                                   "--max-examples", "2", "--lifecycle-timeout", "3")
        report = run_harness(HarnessOptions(server.base_url, "any", operations=LIFECYCLE_OPS.split(","), max_examples=2,
                                            lifecycle_timeout=3))
    failed = report.failed_checks()
    print(f"\nstateless: exit {code} in {took:.1f} s, checks {sorted(failed)}")
    assert code == 1 and "NotSet" not in out and "object at 0x" not in out and "Traceback" not in out, out[-3000:]
    assert "auto_label_lifecycle" in failed  # a created job is some other job when fetched
    assert "pagination" in failed  # random next links, pages that do not add up
    assert {"ignored_auth", "status_code_conformance"} & set(failed) or "response_schema_conformance" in failed
    assert "FAILED" in out and " 0 failures" not in out
    for op in report.operations.values():  # every line says where (an operation's request or the check's step)
        for lines in op.messages.values():
            assert all(line.strip() and "object at 0x" not in line for line in lines), lines


def test_a_server_answering_junk_is_reported_and_the_report_is_written(tmp_path):
    """Not JSON, JSON of the wrong shape, broken rate headers, a backslash in a uid, markup and terminal escapes in
    bodies — for 40% of answers: every check reports and finishes, and the JUnit report is written and valid."""
    junit = tmp_path / "r.xml"
    with JunkServer(seed=1, share=0.4) as server:
        code, out, took = contract("--base-url", server.base_url, "--api-key", server.api_key, "--operations",
                                   LIFECYCLE_OPS, "--max-examples", "2", "--lifecycle-timeout", "3",
                                   "--report", "junit", "--output", str(junit))
    print(f"\njunk: exit {code} in {took:.1f} s")
    assert code == 1 and "Traceback" not in out and "FAILED" in out, out[-3000:]
    suite = ET.fromstring(junit.read_text(encoding="utf-8"))  # parses: no control characters left in it
    texts = [f.text or "" for f in suite.iter("failure")] + [e.get("message", "") for e in suite.iter("error")]
    assert texts and not [t for t in texts if "the check stopped" in t or "could not read a scenario" in t]
    assert suite.get("errors") == "0"


def test_a_target_that_stops_answering_ends_the_run_with_exit_2_within_seconds():
    """Before, each of thousands of cases waited out the request timeout: hours for a hung server."""
    with SilentServer(ServerConfig(manual_clock=True, rate_limit=10**9)) as server:
        code, out, took = contract("--base-url", server.base_url, "--api-key", server.api_key, "--max-examples", "2",
                                   "--request-timeout", "1")
        with pytest.raises(TargetProblem, match="stopped answering: 6 requests in a row over [2-6] operations"):
            run_harness(HarnessOptions(server.base_url, server.api_key, operations=LIFECYCLE_OPS.split(","),
                                       schemathesis=False, request_timeout=0.5))  # our own checks trip it too
    print(f"\nsilent after the preflight: exit {code} in {took:.1f} s")
    assert code == 2 and took < 60 and "stopped answering" in out and "Traceback" not in out, out[-2000:]


def test_one_slow_operation_alone_does_not_end_the_run_and_an_answer_starts_the_count_again():
    silence = Silence("http://h/api/v1")
    assert not any(silence.unanswered("export_dataset", "ReadTimeout") for _ in range(20))  # one operation: slow, not gone
    assert silence.unanswered("list_projects", "ReadTimeout")  # a second operation unanswered too: gone
    silence.answered()
    assert not any(silence.unanswered(op, "ConnectError") for op in ["a", "b", "c", "d", "e"])
    assert silence.unanswered("f", "ConnectError") and "6 requests in a row over 6 operations" in str(silence.problem())


def test_what_a_server_sent_is_shown_as_text_never_as_markup_or_terminal_control():
    hostile = "GET /x -> 400: [/red] [bold]x[/] <script>alert(1)</script> \x00 \x1b[2J \ud800 end"
    report = Report("http://h/api/v1")
    report.fail("list_projects", "error_body_shape", hostile)
    report.errors.append(hostile)
    report.notes.append(hostile)
    screen = io.StringIO()
    report.render(Console(file=screen, width=400, color_system=None), all_rows=True)
    printed = screen.getvalue()
    assert printed.count("[/red] [bold]x[/]") == 4  # the message, the error, the note and the summary line
    assert "\x1b" not in printed and "\x00" not in printed
    ET.fromstring(report.to_junit())
    assert "<script>" not in report.to_html() and json.loads(report.to_json())["errors"] == [hostile]


def test_failure_lines_show_method_path_status_and_a_short_body():
    with BrokenServer("wrong-status") as server:
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=["list_projects"], max_examples=2,
                                            own_checks=()))
    line = report.operations["list_projects"].messages["status_code_conformance"][0]
    assert "GET /projects/ -> 201" in line and "answer=" in line and "NotSet" not in line


def test_the_run_leaves_nothing_behind_unless_asked():
    ops = ["create_webhook", "create_agent", "create_fleet_device", "list_webhooks", "list_agents", "list_fleet_devices",
           "create_auto_label_job", "get_auto_label_job", "cancel_auto_label_job", "list_projects"]
    with LiveServer(ServerConfig(manual_clock=True, rate_limit=10**9)) as server:
        def counts() -> dict[str, int]:
            with httpx.Client(base_url=server.base_url, headers={"X-Avala-Api-Key": server.api_key}) as c:
                return {p: len(c.get(p, params={"limit": 1000}).json()["results"]) for p in ("/webhooks/", "/agents/", "/fleet/devices/")}

        def running_jobs() -> int:
            with httpx.Client(base_url=server.base_url, headers={"X-Avala-Api-Key": server.api_key}) as c:
                return sum(j["status"] in ("pending", "running") for j in c.get("/auto-label-jobs/", params={"limit": 1000}).json()["results"])

        before = counts()
        report = run_harness(HarnessOptions(server.base_url, server.api_key, operations=ops, max_examples=3))
        assert counts() == before and running_jobs() == 0, report.notes
        assert any(n.startswith("cleanup:") and "deleted" in n for n in report.notes)
        run_harness(HarnessOptions(server.base_url, server.api_key, operations=["create_webhook"], max_examples=3,
                                   own_checks=(), keep_data=True))
        assert counts()["/webhooks/"] > before["/webhooks/"]


@settings(max_examples=300, deadline=None)
@given(uid=st.text(min_size=1))
def test_any_uid_a_foreign_server_answers_with_becomes_one_undo_path_segment(uid):
    # A stateless server's random uid once held a backslash, which broke the undo URL and with it the whole run.
    cleanup = Cleanup(CLEANUP_SPEC, "/api/v1")
    cleanup.note("POST", "http://h/api/v1/webhooks/", 201, {"uid": uid})
    cleanup.note("POST", "http://h/api/v1/webhooks/", 201, {"uid": 7})  # not a string: nothing to undo by
    (created,) = cleanup.created
    head, _, segment = created.url.rstrip("/").rpartition("/")
    assert created.undo == "delete_webhook" and head == "/webhooks" and unquote(segment) == uid
