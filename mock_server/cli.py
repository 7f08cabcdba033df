"""``avala-mock serve``: start the mock on a port and print how to reach it.

Only click is imported at module level: the command group lists this command (``--help``) without
paying for aiohttp, numpy and the world builder, which ``serve`` imports when it runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from avala_mock.fixtures import DEFAULT_API_KEY

if TYPE_CHECKING:
    from aiohttp import web


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="AVALA_MOCK_HOST",
              help="Address to bind [env AVALA_MOCK_HOST]. Off loopback the control API needs a token.")
@click.option("--port", default=8000, show_default=True, envvar="AVALA_MOCK_PORT", type=click.IntRange(0, 65535),
              help="Port, 0 = any free port [env AVALA_MOCK_PORT].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for ids, the world, model outputs and latencies.")
@click.option("--time-scale", default="1.0", show_default=True, metavar="FLOAT|instant",
              help="Virtual seconds per wall second, or 'instant' (simulated work takes no time).")
@click.option("--manual-clock", is_flag=True, help="Time moves only through POST /_mock/clock/advance/.")
@click.option("--api-key", default=None,
              help=f"API key of the first organisation [default: the world's own; {DEFAULT_API_KEY} in the default world].")
@click.option("--world", "world_file", type=click.Path(exists=True, dir_okay=False), help="World definition YAML.")
@click.option("--rate-limit", default=6000, show_default=True, type=click.IntRange(1), help="Requests per --rate-window (60 s) per key.")
@click.option("--rate-window", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds the --rate-limit budget refills over.")
@click.option("--rate-limit-rule", "rate_rules", multiple=True, metavar="PATTERN=LIMIT[/WINDOW]",
              help="Own bucket per key for an operationId or /path glob, e.g. 'create_*=10/60' (repeatable).")
@click.option("--storage-base-url", default=None, metavar="URL",
              help="Base of the upload/download URLs the mock hands out (default: <server>/_storage).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Server log level; 'info' logs one line per request (method, path, status, ms, organisation).")
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="'json': one JSON object per line, for log shippers.")
@click.option("--strict", is_flag=True, help="Record off-contract requests and coverage (GET /_mock/violations/, /_mock/coverage/).")
@click.option("--scenario", "scenario_file", default=None, metavar="FILE|NAME",
              help="Scenario YAML (or a shipped name: flaky-network, throttled, sagemaker-down, slow-sam).")
@click.option("--journal-size", default=10_000, show_default=True, type=click.IntRange(1), help="Request journal entries kept.")
@click.option("--retention", default=10_000, show_default=True, type=click.IntRange(100),
              help="Finished webhook deliveries and agent executions kept per organisation (oldest dropped).")
@click.option("--max-body", "max_body_bytes", default=2 * 1024 * 1024, show_default=True, type=click.IntRange(1024),
              help="Largest request body in bytes (413 past it).")
@click.option("--body-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds for a whole request body to arrive (408 past it).")
@click.option("--idle-timeout", default=15.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a connection may stay without a complete request (its headers included).")
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(1),
              help="Open connections at once (more get 503; lowered to fit the file-descriptor limit).")
@click.option("--control-token", default=None, envvar="AVALA_MOCK_CONTROL_TOKEN",
              help="Token the control API requires [env AVALA_MOCK_CONTROL_TOKEN; generated when --host is not loopback].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another Host header name the control API accepts on loopback (repeatable).")
@click.option("--data-dir", "data_dirs", multiple=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Directory the control API may load world and scenario files from (repeatable).")
@click.option("--outbound-allow", "outbound_allow", multiple=True, metavar="HOST|CIDR",
              help="Only these webhook/callback/alert targets get real requests (repeatable; default: loopback and public addresses).")
@click.option("--state-dir", default=None, envvar="AVALA_MOCK_STATE_DIR", type=click.Path(file_okay=False),
              help="Keep the state in DIR (command log + snapshots) and rebuild it from there on start [env AVALA_MOCK_STATE_DIR].")
@click.option("--fsync", default="batch", show_default=True, type=click.Choice(["always", "batch", "never"]),
              help="With --state-dir: disk sync per record (always), every 50 ms (batch) or left to the OS (never).")
@click.option("--compact-every", default=10_000, show_default=True, type=click.IntRange(100),
              help="With --state-dir or --redis: log records between two snapshots (with --redis, the shared log is trimmed then).")
@click.option("--redis", "redis_url", default=None, envvar="AVALA_MOCK_REDIS", metavar="URL",
              help="Share one world with the other workers given the same Redis URL and --redis-prefix "
                   "(they may run on other machines) [env AVALA_MOCK_REDIS].")
@click.option("--redis-prefix", default="avala-mock", show_default=True, help="With --redis: the world's keys in Redis.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="With --redis: this many worker processes on one port (SO_REUSEPORT); the kernel spreads connections.")
@click.option("--deterministic-secrets", is_flag=True,
              help="Derive secrets (storage signing key, webhook and agent secrets, tokens) from --seed, for byte-identical replays.")
def serve(**opts: Any) -> None:
    """Serve the Avala API on HOST:PORT from the default (or given) world."""
    started = time.perf_counter()
    import asyncio

    from avala_mock.mock_server.app import create_app
    from avala_mock.mock_server.state import ServerConfig
    from avala_mock.simulators.clock import Clock
    from avala_mock.simulators.errors import AvalaError

    _configure_logging(opts.pop("log_level"), opts.pop("log_format"))
    port = opts.pop("port")
    workers = opts.pop("workers")
    if workers > 1:
        if not opts.get("redis_url"):
            raise click.UsageError("--workers needs --redis: workers share their world through it.")
        if port == 0:
            raise click.UsageError("--workers needs a fixed --port: they listen on the same one.")
        _spawn_workers(workers)
        return
    try:
        Clock.from_cli(opts["time_scale"], opts["manual_clock"])
        rate_rules = [_rate_rule(r, opts["rate_window"]) for r in opts.pop("rate_rules")]
        config = ServerConfig(**{**opts, "rate_rules": rate_rules, "allowed_hosts": list(opts["allowed_hosts"]),
                                 "data_dirs": list(opts["data_dirs"]), "outbound_allow": list(opts["outbound_allow"])})
        app = create_app(config)
    except AvalaError as exc:
        raise click.UsageError(exc.detail) from None
    asyncio.run(_serve(app, config.host, port, started, reuse_port=bool(config.redis_url)))


def _rate_rule(text: str, window: float) -> dict:
    """``PATTERN=LIMIT[/WINDOW]`` -> a rate-limit rule."""
    from avala_mock.mock_server.shaping import ShapingError

    pattern, _, budget = text.rpartition("=")
    limit, _, per = budget.partition("/")
    try:
        return {"match": pattern, "limit": int(limit), "window": float(per) if per else window}
    except ValueError:
        raise ShapingError(f"--rate-limit-rule {text!r}: expected PATTERN=LIMIT[/WINDOW]") from None


def _spawn_workers(n: int) -> None:
    """Run ``n`` copies of this command (without ``--workers``) as child processes; stop them by PID on
    Ctrl-C or SIGTERM. The first prints its banner; all listen on the same port."""
    import os
    import signal
    import subprocess
    import sys

    args = sys.argv[1:]
    cleaned, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--workers":
            skip = True
            continue
        if a.startswith("--workers="):
            continue
        cleaned.append(a)
    children = []
    for i in range(n):
        out = None if i == 0 else subprocess.DEVNULL
        children.append(subprocess.Popen([sys.executable, "-m", "avala_mock", *cleaned], stdout=out,
                                         env={**os.environ, "AVALA_MOCK_WORKER": str(i)}))

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        for child in children:
            child.wait()
    except KeyboardInterrupt:
        stop()
        for child in children:
            child.wait()


async def _serve(app: web.Application, host: str, port: int, started: float, reuse_port: bool = False) -> None:
    import asyncio
    import os
    import signal
    import sys

    from avala_mock.mock_server import serving
    from avala_mock.mock_server.access import is_loopback
    from avala_mock.mock_server.state import STATE

    state = app[STATE]
    try:
        runner, site = await serving.start(app, host, port, idle_timeout=state.config.idle_timeout,
                                           max_connections=state.config.max_connections, reuse_port=reuse_port)
    except OSError as exc:
        click.secho(f"cannot bind {host}:{port}: {exc.strerror}", fg="red", err=True)
        sys.exit(2)
    bound = site.port
    everywhere = host in ("0.0.0.0", "::", "")
    shown = "127.0.0.1" if everywhere else host
    base = f"http://{shown}:{bound}/api/v1"
    click.echo(f"avala-mock ready in {time.perf_counter() - started:.2f}s (pid {os.getpid()})")
    click.echo(f"  export AVALA_BASE_URL={base}")
    click.echo("  export AVALA_ALLOW_INSECURE_BASE_URL=true")
    click.echo(f"  export AVALA_API_KEY={state.world.primary_key()}")
    click.echo(f"  # TypeScript: new Avala({{ apiKey: process.env.AVALA_API_KEY, baseUrl: \"{base}\" }})  (it ignores AVALA_BASE_URL)")
    click.echo(f"  clock: {state.world.clock.mode} (scale {state.world.clock.scale}), seed {state.world.seed}")
    if not is_loopback(host):
        where = f"every interface ({host or '0.0.0.0'}:{bound})" if everywhere else f"{host}:{bound}"
        click.secho(f"  WARNING: listening on {where}: other machines can reach this mock and its "
                    "well-known API keys.", fg="yellow")
    if state.control_token_generated:
        click.echo(f"  control token (shown once): {state.control_token}   "
                   "send it as 'Authorization: Bearer <token>' to /_mock/")
    click.echo(f"  dashboard: http://{shown}:{bound}/_mock/ui/   health: http://{shown}:{bound}/healthz")
    click.echo(f"  spec: http://{shown}:{bound}/openapi.yaml   control: http://{shown}:{bound}/_mock/")  # last line
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


@click.group()
def snapshot() -> None:
    """Save a running mock's state to a file, or load a file into one (portable between processes)."""


_URL = click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="AVALA_MOCK_URL_ROOT",
                    help="The mock's root URL (without /api/v1).")
_TOKEN = click.option("--token", default=None, envvar="AVALA_MOCK_CONTROL_TOKEN", help="Its control token, if it has one.")


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@_URL
@_TOKEN
@click.option("--include-secrets", is_flag=True, help="Keep webhook/agent secrets, tokens and signing keys in the file.")
def snapshot_save(file: str, url: str, token: str | None, include_secrets: bool) -> None:
    """Write the state of the mock at --url to FILE (JSON; secrets left out unless asked)."""
    from pathlib import Path

    doc = _control(url, token, "GET", "snapshot", params={"include_secrets": "true"} if include_secrets else None)
    Path(file).write_text(__import__("json").dumps(doc))
    click.echo(f"saved {file}: {doc['size']} bytes of state at {doc['clock']['now']}, secrets {'in' if doc['secrets'] else 'left out'}")


@snapshot.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_URL
@_TOKEN
def snapshot_load(file: str, url: str, token: str | None) -> None:
    """Load FILE (from `snapshot save` or GET /_mock/snapshot/) into the mock at --url."""
    import json
    from pathlib import Path

    try:
        doc = json.loads(Path(file).read_text())
    except (ValueError, UnicodeDecodeError):
        raise click.UsageError(f"{file} is not a snapshot (not JSON)") from None
    world = _control(url, token, "POST", "snapshot/restore", doc)
    click.echo(f"loaded {file}: {len(world['organizations'])} organisations, clock {world['clock']['now']}")


def _control(url: str, token: str | None, method: str, path: str, body: Any = None,
             params: dict[str, str] | None = None) -> Any:
    from avala_mock.mock_server.testing import ControlError, ExternalServer

    server = ExternalServer(url.rstrip("/") + "/api/v1")
    server.control_token = token
    try:
        return server.control(method, path, json=body, params=params)
    except ControlError as exc:
        raise click.ClickException(f"the mock answered {exc.status}: {exc.body[:300]}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None


def _configure_logging(level: str, fmt: str) -> None:
    """Root logging to stderr; in JSON each request line also carries its fields under ``http``."""
    import logging

    handler = logging.StreamHandler()
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("faker").setLevel(logging.WARNING)  # its locale chatter is noise at debug
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # ours is the request log
