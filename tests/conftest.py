"""Shared fixtures: one real server per session on a manual clock, reset before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import avala
import httpx
import pytest
from hypothesis import settings

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import ExternalServer, LiveServer, ServerHandle

# Every server in this suite is a local http mock: the SDKs refuse plain http without this, and tests that
# start their own server must not depend on another test having set it first (xdist runs them in any order).
os.environ["AVALA_ALLOW_INSECURE_BASE_URL"] = "true"


# The property tests draw the same examples at every run, so a red CI run is red again on a re-run and a
# green one does not turn red by luck. `pytest --hypothesis-profile explore` draws fresh ones.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("deterministic")


@pytest.fixture(scope="session")
def live(pytestconfig: pytest.Config) -> Iterator[ServerHandle]:
    """The session's server: in a thread of this process, or — moto's server mode — the separate
    ``avala-mock serve --manual-clock --seed 7`` given by ``--avala-mock-url`` (the plugin's option),
    driven the same way through HTTP and the control API (tests/test_dual_mode.py runs the core
    suites both ways)."""
    url = pytestconfig.getoption("avala_mock_url", default=None)
    if url:
        server = ExternalServer(url, pytestconfig.getoption("avala_mock_key"))
        os.environ.update(server.env())
        yield server
        server.close()
        return
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
        os.environ.update(server.env())
        yield server


@pytest.fixture
def mock(live: ServerHandle) -> ServerHandle:
    """The session server, reset to its fresh world and clock."""
    live.reset()
    return live


@pytest.fixture
def client(mock: ServerHandle) -> Iterator[avala.Client]:
    c = avala.Client(api_key=mock.api_key, base_url=mock.base_url)
    yield c
    c.close()


@pytest.fixture
def http(mock: ServerHandle) -> Iterator[httpx.Client]:
    """Raw HTTP with the primary key, rooted at /api/v1."""
    with httpx.Client(base_url=mock.base_url + "/", headers={"X-Avala-Api-Key": mock.api_key}, timeout=30) as c:
        yield c
