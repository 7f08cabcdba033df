"""Shared fixtures: one real server per session on a manual clock, reset before each test."""

from __future__ import annotations

import os

import avala
import httpx
import pytest

from mock_server.state import ServerConfig
from mock_server.testing import LiveServer

SECOND_ORG_KEY = "avk_mock_secondary"


@pytest.fixture(scope="session")
def live(pytestconfig: pytest.Config) -> LiveServer:
    """The session's server: in a thread of this process, or — moto's server mode — the separate
    ``avala-mock serve --manual-clock --seed 7`` given by ``--avala-mock-url`` (the plugin's option),
    driven the same way through HTTP and the control API (tests/test_dual_mode.py runs the core
    suites both ways)."""
    url = pytestconfig.getoption("avala_mock_url", default=None)
    if url:
        from contracts.pytest_plugin import ExternalServer

        server = ExternalServer(url, pytestconfig.getoption("avala_mock_key"))
        os.environ.update(server.env())
        yield server
        server.http.close()
        return
    with LiveServer(ServerConfig(manual_clock=True, seed=7, rate_limit=10**9)) as server:
        os.environ.update(server.env())
        yield server


@pytest.fixture
def mock(live: LiveServer) -> LiveServer:
    """The session server, reset to its fresh world and clock."""
    live.reset()
    return live


@pytest.fixture
def client(mock: LiveServer) -> avala.Client:
    c = avala.Client(api_key=mock.api_key, base_url=mock.base_url)
    yield c
    c.close()


@pytest.fixture
def http(mock: LiveServer) -> httpx.Client:
    """Raw HTTP with the primary key, rooted at /api/v1."""
    with httpx.Client(base_url=mock.base_url + "/", headers={"X-Avala-Api-Key": mock.api_key}, timeout=30) as c:
        yield c


def project_named(client: avala.Client, name: str):
    for p in client.projects.list(limit=100):
        if p.name == name:
            return p
    raise LookupError(name)
