"""Pytest fixtures shipped with avala-mock. Use them with ``pytest_plugins = ["mock_server.pytest_fixtures"]``
(or through the avala-mock pytest plugin, which re-exports them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mock_server.receiver import WebhookReceiver


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint on a free port: ``.url`` to subscribe, ``.secret = ...`` to check signatures
    (a POST with a bad signature is answered 401 and recorded with ``verified=False``), ``.wait_for(event)``,
    ``.status`` to answer non-2xx, ``.stop()``/``.start()`` to be down and back on the same port."""
    with WebhookReceiver() as receiver:
        yield receiver
