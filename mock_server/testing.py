"""Handles on a running avala-mock for tests and tools: ``LiveServer`` (a real server on a free
127.0.0.1 port in a background thread of this process), ``ServeProcess`` (``avala-mock serve`` as a child
process, stopped by its PID) and ``ExternalServer`` (one already running elsewhere).

All three speak real HTTP (the official SDKs reach them like any server) and are driven only through
the control API, never by touching internals. The control client is the standard library's, so the
pytest plugin can hand these out in an environment that has nothing but avala-mock and pytest; heavy
imports (aiohttp, the world builder) happen when a server is started, not when this module loads.
"""

from __future__ import annotations

import json as _json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from avala_mock.fixtures import DEFAULT_API_KEY

if TYPE_CHECKING:
    import httpx
    from aiohttp import web

    from avala_mock.mock_server.state import ServerConfig

READY_LINE = re.compile(r"AVALA_BASE_URL=(\S+)")
BANNER_END = "  spec: "  # the banner's last line always starts so


def describe_violation(v: dict[str, Any]) -> str:
    """One line per off-contract request: where, which operation, which rule and which field."""
    op = f" ({v['operation_id']})" if v.get("operation_id") else ""
    where = f" [{v['field']}]" if v.get("field") else ""
    return f"{v['method']} {v['path']}{op}: {v['rule']}{where} — {v['detail']}"


class ControlError(RuntimeError):
    """A control-API call answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"control API answered {status}: {body[:500]}")
        self.status, self.body = status, body


class ServerHandle:
    """What every handle offers: where the server is, the SDK's environment, and the control API."""

    origin: str
    api_key: str = DEFAULT_API_KEY
    control_token: str | None = None
    _http: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    def env(self) -> dict[str, str]:
        """The environment variables that point the official SDKs and CLI at this server."""
        return {"AVALA_BASE_URL": self.base_url, "AVALA_ALLOW_INSECURE_BASE_URL": "true", "AVALA_API_KEY": self.api_key}

    def control(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Call ``/_mock/<path>/``; returns the decoded JSON (None for 204). Raises ``ControlError``."""
        data = None if json is None else _json.dumps(json).encode()
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        headers = {"Content-Type": "application/json"} if method != "GET" else {}
        if self.control_token:
            headers["Authorization"] = f"Bearer {self.control_token}"
        request = urllib.request.Request(f"{self.origin}/_mock/{path.strip('/')}/{query}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ControlError(exc.code, exc.read().decode(errors="replace")) from None
        return _json.loads(raw) if raw else None

    def advance(self, seconds: float) -> dict:
        return self.control("POST", "clock/advance", json={"seconds": seconds})

    def reset(self) -> dict:
        return self.control("POST", "reset")

    def clock(self) -> dict:
        return self.control("GET", "clock")

    @property
    def http(self) -> httpx.Client:
        """An httpx client rooted at the server's origin (needs httpx, from the ``test`` extra)."""
        if self._http is None:
            import httpx

            self._http = httpx.Client(base_url=self.origin, timeout=30)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


class LiveServer(ServerHandle):
    """A real server in a background thread of this process, on a free port."""

    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1") -> None:
        self.config = config
        self.host = host
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="avala-mock", daemon=True)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveServer:
        from dataclasses import replace

        from avala_mock.mock_server.state import STATE, ServerConfig

        self.config = replace(self.config or ServerConfig(manual_clock=True), host=self.host)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("avala-mock did not start within 60 s")
        if self._error is not None:
            raise self._error
        state = self.app.get(STATE)  # None for apps that are not avala-mock (a stateless stand-in)
        self.api_key = (state.world.primary_key() if state else None) or self.config.api_key or DEFAULT_API_KEY
        self.control_token = state.control_token if state else None
        return self

    def make_app(self) -> web.Application:
        """The application to serve (subclasses serve variants, e.g. contracts/broken.py)."""
        from avala_mock.mock_server.app import create_app

        return create_app(self.config)

    def _run(self) -> None:
        import asyncio

        from avala_mock.mock_server import serving

        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self.app = self.make_app()
            config = self.config
            self._runner, site = self._loop.run_until_complete(serving.start(
                self.app, self.host, 0, idle_timeout=config.idle_timeout, max_connections=config.max_connections))
            self.port = site.port
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
        self.close()

    @property
    def origin(self) -> str:  # type: ignore[override]
        return f"http://{self.host}:{self.port}"


class ServeProcess(ServerHandle):
    """``avala-mock serve --port 0 ARGS`` as a child process: ready when its banner names the URL, stopped
    by its own PID (terminate, then kill), so other avala-mock processes on the machine are never touched."""

    def __init__(self, *args: str, command: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, timeout: float = 60.0) -> None:
        self.args = args
        self.command = command or [sys.executable, "-m", "avala_mock"]
        self.env_extra = env or {}
        self.cwd = cwd
        self.timeout = timeout
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.ready_s = 0.0
        self.origin = ""
        key = [a for i, a in enumerate(args) if i and args[i - 1] == "--api-key"]
        self.api_key = key[-1] if key else DEFAULT_API_KEY

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServeProcess:
        started = time.perf_counter()
        has_port = "--port" in self.args
        cmd = [*self.command, "serve", *([] if has_port else ["--port", "0"]), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.cwd,
                                     env={**os.environ, "COLUMNS": "200", **self.env_extra})
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if found := READY_LINE.search(line):
                self.origin = found.group(1).rsplit("/api/", 1)[0]
                self.ready_s = time.perf_counter() - started
            if self.origin and BANNER_END in line:  # the whole banner is in ``output``
                return self
        self.stop()
        raise RuntimeError(f"avala-mock serve did not become ready (rc={self.proc.returncode}):\n{self.text[-3000:]}")

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        """Read the child's output to its end, so it never blocks on a full pipe."""
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> int | None:
        """Terminate (SIGTERM), wait, kill if it lingers; returns the exit code."""
        self.close()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode


class ExternalServer(ServerHandle):
    """An avala-mock already running elsewhere (e.g. ``serve --strict --manual-clock``), driven the same
    way: the moto-style server mode of the pytest plugin."""

    def __init__(self, base_url: str, api_key: str = DEFAULT_API_KEY) -> None:
        self.origin = base_url.rstrip("/").rsplit("/api/", 1)[0]
        self.api_key = api_key
