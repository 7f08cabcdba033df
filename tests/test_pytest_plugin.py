"""The pytest plugin (entry point ``avala_mock``): the fixture as a user gets it, and the assertion
helper failing a test whose client broke the contract (run in a child pytest, as a user would)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import avala
import httpx
import pytest

from avala_mock.contracts.pytest_plugin import AvalaMock, ContractBroken
from avala_mock.mock_server.testing import ServeProcess


def test_fixture_points_the_sdk_at_a_fresh_world(avala_mock: AvalaMock):
    assert os.environ["AVALA_BASE_URL"] == avala_mock.base_url
    with avala.Client() as client:  # from the env vars alone
        project = client.projects.list().items[0]
        job = client.auto_label_jobs.create(project.uid, model_type="yolo", confidence_threshold=0.6)
        before = avala_mock.clock()["now"]
        avala_mock.advance(3600)
        assert avala_mock.clock()["now"] != before
        assert client.auto_label_jobs.get(job.uid).status == "completed"
    avala_mock.assert_contract_kept()
    avala_mock.reset()
    assert avala_mock.coverage()["exercised"] == 0


def test_assertion_helper_names_the_broken_request(avala_mock: AvalaMock):
    httpx.get(avala_mock.base_url + "/projects/", params={"limit": "lots"}, headers={"X-Avala-Api-Key": avala_mock.api_key})
    with pytest.raises(ContractBroken, match=r"GET /api/v1/projects/ \(list_projects\): query-parameters \[limit\] — 'lots'"):
        avala_mock.assert_contract_kept()


INNER = textwrap.dedent('''
    import httpx
    from avala import Client

    def test_good_client(avala_mock):
        print("USING", avala_mock.base_url)
        with Client() as client:
            client.projects.list()
        avala_mock.assert_contract_kept()

    def test_bad_client(avala_mock):
        httpx.post(avala_mock.base_url + "/projects/", json={}, headers={"X-Avala-Api-Key": avala_mock.api_key})
        avala_mock.assert_contract_kept()

    def test_state_is_reset_between_tests(avala_mock):
        assert avala_mock.violations() == []
''')


def _run_user_suite(tmp_path, *args: str) -> str:
    (tmp_path / "test_user.py").write_text(INNER)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args, str(tmp_path / "test_user.py")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "2 passed" in out and "1 failed" in out
    assert "FAILED test_user.py::test_bad_client" in out
    assert "POST /api/v1/projects/: method" in out
    return out


def test_plugin_is_loaded_by_entry_point_in_a_user_suite(tmp_path):
    """In-process mode: the plugin starts its own strict server in a thread."""
    _run_user_suite(tmp_path)


def test_same_user_suite_against_a_running_server(tmp_path):
    """Server mode (moto-style dual mode): the same suite against ``avala-mock serve --strict --manual-clock``."""
    with ServeProcess("--strict", "--manual-clock") as server:
        out = _run_user_suite(tmp_path, "--avala-mock-url", server.base_url)
        assert f"USING {server.base_url}" in out  # the suite really ran against this server


def test_server_mode_refuses_a_server_that_is_not_strict(tmp_path, live):
    (tmp_path / "test_user.py").write_text(INNER)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--avala-mock-url", live.base_url,
                           str(tmp_path / "test_user.py")], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode != 0
    assert "not in strict mode" in done.stdout + done.stderr


UNRELATED = textwrap.dedent('''
    import sys

    def test_unrelated(pytestconfig):
        assert pytestconfig.pluginmanager.has_plugin("avala_mock")  # loaded by its entry point...
        ours = {m for m in sys.modules if m.startswith("avala_mock")}
        # ...and, no fixture of it being used, it has imported nothing of ours beyond itself (no server,
        # no aiohttp or numpy through it: the other plugins of this venv may load what they load)
        assert ours == {"avala_mock", "avala_mock.contracts", "avala_mock.contracts.pytest_plugin", "avala_mock.fixtures"}, ours
''')


def test_plugin_costs_nothing_in_a_suite_that_does_not_use_it(tmp_path):
    (tmp_path / "test_other.py").write_text(UNRELATED)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_other.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
