"""A real avala-mock server on a free 127.0.0.1 port in a background thread, for tests and tools.

It speaks real HTTP (the official SDKs reach it like any server); the helpers drive it only through
the control API, never by touching its internals.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from aiohttp import web

from mock_server.app import create_app, make_runner
from mock_server.state import ServerConfig


class LiveServer:
    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1") -> None:
        self.config = config or ServerConfig(manual_clock=True)
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="avala-mock", daemon=True)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("avala-mock did not start within 30 s")
        if self._error is not None:
            raise self._error
        self.http = httpx.Client(base_url=self.origin, timeout=30)
        return self

    def make_app(self) -> web.Application:
        """The application to serve (subclasses serve variants, e.g. contracts/broken.py)."""
        return create_app(self.config)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.app = self.make_app()
            self._runner = make_runner(self.app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        if hasattr(self, "http"):
            self.http.close()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    @property
    def api_key(self) -> str:
        from fixtures.world import DEFAULT_API_KEY

        return self.config.api_key or DEFAULT_API_KEY

    def env(self) -> dict[str, str]:
        """The environment variables that point the official SDKs and CLI at this server."""
        return {"AVALA_BASE_URL": self.base_url, "AVALA_ALLOW_INSECURE_BASE_URL": "true", "AVALA_API_KEY": self.api_key}

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/_mock/{path.strip('/')}/", **kwargs)
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> dict:
        return self.control("POST", "clock/advance", json={"seconds": seconds})

    def reset(self) -> dict:
        return self.control("POST", "reset")

    def clock(self) -> dict:
        return self.control("GET", "clock")
