"""pytest plugin (entry point ``avala_mock``): a strict avala-mock on a free port for a test session,
and per test an ``avala_mock`` fixture with the SDK env vars set, a fresh world, manual-clock helpers
and ``assert_contract_kept()``, which fails the test if its client sent an off-contract request.

    def test_my_client(avala_mock):
        run_my_client()                # reads AVALA_BASE_URL / AVALA_API_KEY as usual
        avala_mock.advance(60)         # move the manual clock
        avala_mock.assert_contract_kept()

Every pytest run in an environment holding avala-mock loads this module, wanted or not. So it imports
only pytest and the standard library, and does no work until one of its fixtures is requested: the
server, aiohttp and the world builder load inside the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from avala_mock.fixtures import DEFAULT_API_KEY

if TYPE_CHECKING:
    from avala_mock.mock_server.receiver import WebhookReceiver
    from avala_mock.mock_server.testing import ServerHandle


class ContractBroken(AssertionError):
    """The client under test sent requests that break openapi.yaml."""


class AvalaMock:
    """What a test gets: where the server is, its clock, its journal."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server

    base_url = property(lambda self: self.server.base_url)
    api_key = property(lambda self: self.server.api_key)
    origin = property(lambda self: self.server.origin)

    def env(self) -> dict[str, str]:
        return self.server.env()

    def advance(self, seconds: float) -> dict:
        """Move the manual clock forward."""
        return self.server.advance(seconds)

    def clock(self) -> dict:
        return self.server.clock()

    def reset(self) -> None:
        """Fresh world, clock, violations and coverage."""
        self.server.reset()
        self.server.control("DELETE", "violations")

    def violations(self) -> list[dict[str, Any]]:
        return self.server.control("GET", "violations")["violations"]

    def coverage(self) -> dict[str, Any]:
        return self.server.control("GET", "coverage")

    def assert_contract_kept(self, min_coverage: float | None = None) -> None:
        """Fail with every off-contract request (and the rule it broke) the test's client sent."""
        found = self.violations()
        if found:
            from avala_mock.mock_server.testing import describe_violation

            lines = ["  " + describe_violation(v) for v in found]
            raise ContractBroken(f"{len(found)} request(s) broke the Avala contract:\n" + "\n".join(lines))
        if min_coverage is not None:
            cov = self.coverage()
            if cov["percent"] < min_coverage:
                raise ContractBroken(f"coverage {cov['percent']}% < {min_coverage}% ({cov['exercised']}/{cov['operations']})")


def assert_contract_kept(mock: AvalaMock, min_coverage: float | None = None) -> None:
    """Function form of ``AvalaMock.assert_contract_kept``."""
    mock.assert_contract_kept(min_coverage)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("avala-mock")
    group.addoption("--avala-mock-url", default=os.environ.get("AVALA_MOCK_URL"), metavar="BASE_URL",
                    help="Use a running avala-mock (serve --strict --manual-clock) instead of one in-process.")
    group.addoption("--avala-mock-key", default=DEFAULT_API_KEY, metavar="KEY", help="Its API key.")
    group.addoption("--avala-mock-state-dir", default=os.environ.get("AVALA_MOCK_STATE_DIR"), metavar="DIR",
                    help="Keep the in-process server's state in DIR (command log + snapshots; kept across runs).")


@pytest.fixture(scope="session")
def avala_mock_server(pytestconfig: pytest.Config) -> Iterator[ServerHandle]:
    """One strict server per session on a manual clock (seed 0, no rate limit), in a thread of this
    process; or the server given by ``--avala-mock-url``."""
    from avala_mock.mock_server.testing import ExternalServer, LiveServer

    url = pytestconfig.getoption("avala_mock_url")
    if url:
        server = ExternalServer(url, pytestconfig.getoption("avala_mock_key"))
        if not server.control("GET", "violations")["enabled"]:
            pytest.exit(f"{url} is not in strict mode: start it with avala-mock serve --strict --manual-clock", 2)
        yield server
        server.close()
        return
    from avala_mock.mock_server.state import ServerConfig

    state_dir = pytestconfig.getoption("avala_mock_state_dir")
    with LiveServer(ServerConfig(manual_clock=True, strict=True, rate_limit=10**9, state_dir=state_dir)) as live:
        yield live


@pytest.fixture
def avala_mock(avala_mock_server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> AvalaMock:
    """The session server reset to a fresh world, with the SDK env vars pointing at it for this test."""
    mock = AvalaMock(avala_mock_server)
    mock.reset()
    for name, value in mock.env().items():
        monkeypatch.setenv(name, value)
    return mock


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint on a free port: ``.url`` to subscribe, ``.secret = ...`` to check signatures
    (a POST with a bad signature is answered 401 and recorded with ``verified=False``), ``.wait_for(event)``,
    ``.status`` to answer non-2xx, ``.stop()``/``.start()`` to be down and back on the same port."""
    from avala_mock.mock_server.receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver
