"""``avala-mock serve``: start the mock on a port and print how to reach it.

Only click is imported at module level: the command group lists this command (``--help``) without
paying for aiohttp, numpy and the world builder, which ``serve`` imports when it runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from aiohttp import web

from avala_mock.fixtures import DEFAULT_API_KEY


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="AVALA_MOCK_HOST", help="Address to bind [env AVALA_MOCK_HOST].")
@click.option("--port", default=8000, show_default=True, envvar="AVALA_MOCK_PORT", type=click.IntRange(0, 65535),
              help="Port, 0 = any free port [env AVALA_MOCK_PORT].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for ids, the world, model outputs and latencies.")
@click.option("--time-scale", default="1.0", show_default=True, metavar="FLOAT|instant",
              help="Virtual seconds per wall second, or 'instant' (simulated work takes no time).")
@click.option("--manual-clock", is_flag=True, help="Time moves only through POST /_mock/clock/advance/.")
@click.option("--api-key", default=DEFAULT_API_KEY, show_default=True, help="API key of the first organisation.")
@click.option("--world", "world_file", type=click.Path(exists=True, dir_okay=False), help="World definition YAML.")
@click.option("--rate-limit", default=6000, show_default=True, type=click.IntRange(1), help="Requests per --rate-window (60 s) per key.")
@click.option("--storage-base-url", default=None, metavar="URL",
              help="Base of the upload/download URLs the mock hands out (default: <server>/_storage).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Server log level.")
@click.option("--strict", is_flag=True, help="Record off-contract requests and coverage (GET /_mock/violations/, /_mock/coverage/).")
@click.option("--rate-window", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds the --rate-limit budget refills over.")
@click.option("--rate-limit-rule", "rate_rules", multiple=True, metavar="PATTERN=LIMIT[/WINDOW]",
              help="Own bucket per key for an operationId or /path glob, e.g. 'create_*=10/60' (repeatable).")
@click.option("--scenario", "scenario_file", default=None, metavar="FILE|NAME",
              help="Scenario YAML (or a shipped name: flaky-network, throttled, sagemaker-down, slow-sam).")
@click.option("--journal-size", default=10_000, show_default=True, type=click.IntRange(1), help="Request journal entries kept.")
def serve(host: str, port: int, seed: int, time_scale: str, manual_clock: bool, api_key: str,
          world_file: str | None, rate_limit: int, storage_base_url: str | None, log_level: str,
          strict: bool = False, rate_window: float = 60.0, rate_rules: tuple[str, ...] = (),
          scenario_file: str | None = None, journal_size: int = 10_000) -> None:
    """Serve the Avala API on HOST:PORT from the default (or given) world."""
    started = time.perf_counter()
    import asyncio
    import logging

    from avala_mock.fixtures.world import WorldDefinitionError
    from avala_mock.mock_server.app import create_app
    from avala_mock.mock_server.shaping import ShapingError
    from avala_mock.mock_server.state import ServerConfig
    from avala_mock.simulators.clock import Clock, ClockError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        Clock.from_cli(time_scale, manual_clock)
        config = ServerConfig(seed=seed, time_scale=time_scale, manual_clock=manual_clock, api_key=api_key,
                              world_file=world_file, rate_limit=rate_limit, storage_base_url=storage_base_url)
        config.strict = strict
        config.rate_window, config.rate_rules = rate_window, [_rate_rule(r, rate_window) for r in rate_rules]
        config.scenario_file, config.journal_size = scenario_file, journal_size
        app = create_app(config)
    except (ClockError, WorldDefinitionError, ShapingError) as exc:
        raise click.UsageError(str(exc)) from None
    asyncio.run(_serve(app, host, port, started))


def _rate_rule(text: str, window: float) -> dict:
    """``PATTERN=LIMIT[/WINDOW]`` -> a rate-limit rule."""
    from avala_mock.mock_server.shaping import ShapingError

    pattern, _, budget = text.rpartition("=")
    limit, _, per = budget.partition("/")
    try:
        return {"match": pattern, "limit": int(limit), "window": float(per) if per else window}
    except ValueError:
        raise ShapingError(f"--rate-limit-rule {text!r}: expected PATTERN=LIMIT[/WINDOW]") from None


async def _serve(app: web.Application, host: str, port: int, started: float) -> None:
    import asyncio
    import os
    import signal
    import sys

    from aiohttp import web

    from avala_mock.mock_server.app import make_runner
    from avala_mock.mock_server.state import STATE

    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        click.secho(f"cannot bind {host}:{port}: {exc.strerror}", fg="red", err=True)
        await runner.cleanup()
        sys.exit(2)
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state = app[STATE]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base = f"http://{shown}:{bound}/api/v1"
    click.echo(f"avala-mock ready in {time.perf_counter() - started:.2f}s (pid {os.getpid()})")
    click.echo(f"  AVALA_BASE_URL={base}")
    click.echo("  AVALA_ALLOW_INSECURE_BASE_URL=true")
    click.echo(f"  AVALA_API_KEY={state.config.api_key or DEFAULT_API_KEY}")
    click.echo(f"  clock: {state.world.clock.mode} (scale {state.world.clock.scale}), seed {state.world.seed}")
    click.echo(f"  spec: http://{shown}:{bound}/openapi.yaml   control: http://{shown}:{bound}/_mock/")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
