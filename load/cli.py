"""``avala-mock load``: drive an Avala-API server with simulated clients through Locust.

Locust patches the standard library with gevent on import, so it never runs in this process: this
command validates its options, builds Locust's command line (``python -m locust -f load/locustfile.py``)
and waits for that child, streaming its output. The child gets a session of its own, so Ctrl-C reaches
only this command, which then stops the child by its PID (SIGINT: Locust writes its reports and quits;
SIGTERM, then SIGKILL, if it lingers). Nothing here imports locust (``pip install 'avala-mock[load]'``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from avala_mock.load import (
    DEFAULT_MIX,
    ENV_BASE_URL,
    ENV_JOB_DEADLINE,
    ENV_KEY,
    ENV_MIX,
    ENV_SEED,
    ENV_SUMMARY,
)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RUN_TIME = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")
GRACE_S = 90.0  # past --run-time, how long a headless run may take to start, stop and write its reports
CSV_SUFFIXES = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")


def parse_mix(text: str) -> dict[str, int]:
    """A mix file's text (YAML or JSON: behaviour -> weight) as a full mix; unlisted behaviours weigh 0.
    Raises ValueError saying what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML or JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError("expected a mapping of behaviour name to weight, e.g. {browse: 5, fleet: 1}")
    known = ", ".join(DEFAULT_MIX)
    mix = dict.fromkeys(DEFAULT_MIX, 0)
    for name, weight in data.items():
        if name not in DEFAULT_MIX:
            raise ValueError(f"unknown behaviour {name!r} (known: {known})")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ValueError(f"the weight of {name!r} must be a whole number, not {weight!r}")
        if weight < 0:
            raise ValueError(f"the weight of {name!r} is negative ({weight})")
        mix[name] = weight
    if not any(mix.values()):
        raise ValueError("every weight is 0: nothing to run")
    return mix


def _mix_option(_ctx: click.Context, _param: click.Parameter, path: str | None) -> dict[str, int]:
    if path is None:
        return dict(DEFAULT_MIX)
    try:
        return parse_mix(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None


def run_time_seconds(value: str) -> int:
    """Locust's time span (``20``, ``20s``, ``3m``, ``1h30m``) in seconds; ValueError if it is not one."""
    found = RUN_TIME.match(value.strip())
    if not value.strip() or not found:
        raise ValueError(f"{value!r} is not a time span like 20s, 3m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def _run_time_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            if run_time_seconds(value) < 1:
                raise ValueError("it must be at least 1 s")
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def locust_command(opts: dict[str, Any], web_port: int | None) -> list[str]:
    """Locust's command line for these options (the key is not on it: it travels in the environment)."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", opts["base_url"]]
    if opts["worker"]:
        return [*cmd, "--worker", "--master-host", opts["master_host"], "--master-port", str(opts["master_port"])]
    users = opts["users"]
    if users is not None:
        cmd += ["--users", str(users), "--spawn-rate", f"{opts['spawn_rate'] or users:g}"]
    if opts["run_time"]:
        cmd += ["--run-time", opts["run_time"]]
    if opts["html"]:
        cmd += ["--html", opts["html"]]
    if opts["csv_prefix"]:
        cmd += ["--csv", opts["csv_prefix"]]
    if opts["quiet"]:
        cmd += ["--only-summary"]
    if opts["allow_failures"]:
        cmd += ["--exit-code-on-error", "0"]
    if opts["master"]:
        cmd += ["--master", "--master-bind-host", opts["master_bind_host"], "--master-bind-port", str(opts["master_port"])]
        if opts["expect_workers"]:
            cmd += ["--expect-workers", str(opts["expect_workers"])]
    if web_port is None:
        cmd += ["--headless"]
    else:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    return cmd


def stop(proc: subprocess.Popen[bytes]) -> int:
    """Stop the Locust child by its PID: SIGINT (it writes its reports), then SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(sig)
            return proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: no more patience
            proc.kill()
            return proc.wait()
    return proc.wait()


def summary_line(summary: dict[str, Any]) -> str:
    """One line: volume, failures, throughput, latency, throttling and auto-label jobs."""
    requests = summary["requests"]

    def share(n: int) -> str:
        return f"{100 * n / requests:.1f}%" if requests else "n/a"

    def ms(value: float | None) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"

    median = summary["job_median_ms"]
    jobs = f"{summary['jobs_completed']}/{summary['jobs_finished']} auto-label jobs completed"
    if median is not None:
        jobs += f", median time-to-complete {ms(median)} ms"
    return (f"{requests} requests, {summary['failures']} failures ({share(summary['failures'])}), "
            f"{summary['rps']:.1f} req/s, p50/p95/p99 {ms(summary['p50'])}/{ms(summary['p95'])}/{ms(summary['p99'])} ms, "
            f"429s {share(summary['throttled'])}, 5xx {summary['server_errors']}, {jobs}")


def report(summary_path: Path, opts: dict[str, Any]) -> None:
    """The closing lines: the summary and where the reports are."""
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        click.echo(f"avala-mock load: {summary_line(summary)}")
        if summary.get("exceptions"):
            click.echo(f"avala-mock load: warning: {summary['exceptions']} unhandled exception(s) in the locustfile "
                       "(see Locust's report)", err=True)
    else:
        click.echo("avala-mock load: no summary (Locust stopped before it could write one)", err=True)
    html = Path(opts["html"]) if opts["html"] else None
    if html is not None and html.is_file():
        click.echo(f"avala-mock load: HTML report: {html.resolve()}")
    if opts["csv_prefix"]:
        written = [p for p in (Path(opts["csv_prefix"] + s) for s in CSV_SUFFIXES) if p.is_file()]
        if written:
            click.echo(f"avala-mock load: CSV: {', '.join(str(p.resolve()) for p in written)}")


@click.command(context_settings={"show_default": True})
@click.option("--base-url", required=True, envvar="AVALA_BASE_URL", metavar="URL",
              help="The API root, e.g. http://127.0.0.1:8000/api/v1 (default: $AVALA_BASE_URL).")
@click.option("--api-key", required=True, envvar="AVALA_API_KEY", show_default=False, metavar="KEY",
              help="Sent as X-Avala-Api-Key; never printed (default: $AVALA_API_KEY).")
@click.option("--users", type=click.IntRange(1), default=None, help="Concurrent simulated clients (required when headless).")
@click.option("--spawn-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clients started per second  [default: --users, all within a second]")
@click.option("--run-time", default=None, callback=_run_time_option, metavar="SPAN",
              help="How long to run, e.g. 20s, 3m, 1h30m (required when headless).")
@click.option("--mix", type=click.Path(dir_okay=False), callback=_mix_option, metavar="FILE",
              help=f"YAML/JSON mapping behaviour -> weight; unlisted behaviours weigh 0  [default: {DEFAULT_MIX}]")
@click.option("--html", default="load-report.html", metavar="FILE", help="Locust's HTML report ('' for none).")
@click.option("--csv", "csv_prefix", default=None, metavar="PREFIX", help="Also write Locust's CSVs: PREFIX_stats.csv etc.")
@click.option("--web", is_flag=True, help="Run Locust's web UI (on 127.0.0.1) instead of a headless run; Ctrl-C ends it.")
@click.option("--web-port", type=click.IntRange(0, 65535), default=0, help="The web UI's port (0: a free one).")
@click.option("--seed", type=int, default=None, help="Seed the clients' choices (best effort: timing still varies).")
@click.option("--job-deadline", type=click.FloatRange(min=1), default=120.0,
              help="Seconds an auto-label job may take before it is reported as failed.")
@click.option("--allow-failures", is_flag=True,
              help="Exit 0 even when requests failed (Locust exits 1 when any request failed).")
@click.option("--quiet", is_flag=True, help="Only the final tables, not Locust's periodic stats (--only-summary).")
@click.option("--master", is_flag=True, help="Distributed: be Locust's master and wait for workers.")
@click.option("--worker", is_flag=True, help="Distributed: be a worker of the master at --master-host.")
@click.option("--master-host", default="127.0.0.1", help="The master a --worker connects to.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, help="The master's port.")
@click.option("--master-bind-host", default="127.0.0.1", help="Where a --master listens ('*' for every interface).")
@click.option("--expect-workers", type=click.IntRange(1), default=None, help="A headless --master waits for this many workers.")
def load(**opts: Any) -> None:
    """Load-test an Avala-API server with simulated clients (Locust), headless by default.

    Each client repeatedly browses projects and datasets, starts dry-run auto-label jobs and polls them
    to the end, posts fleet event batches and approves agent executions, weighted by --mix. The run ends
    with a one-line summary (requests, failures, req/s, p50/p95/p99, 429 share, jobs completed and their
    median time-to-complete) and the report paths.

    Exit code: Locust's, which is 1 when any request failed (a 429 counts as a failure) unless
    --allow-failures is given; 2 for bad options.

    Distributed: start `avala-mock load --master --expect-workers N --users ... --run-time ...` and N times
    `avala-mock load --worker --master-host HOST --base-url URL --api-key KEY` (each worker needs the URL
    and key; the master's summary and reports cover all workers).
    """
    if opts["master"] and opts["worker"]:
        raise click.UsageError("--master and --worker exclude each other")
    if opts["worker"] and opts["web"]:
        raise click.UsageError("a --worker has no web UI (run --web on the master)")
    if not opts["worker"] and not opts["web"]:
        missing = [flag for flag, key in (("--users", "users"), ("--run-time", "run_time")) if opts[key] is None]
        if missing:
            raise click.UsageError(f"a headless run needs {' and '.join(missing)}")
    if opts["worker"]:
        opts["html"] = opts["csv_prefix"] = None  # the master writes the reports
    if importlib.util.find_spec("locust") is None:  # looked up, not imported
        raise click.ClickException("Locust is not installed: pip install 'avala-mock[load]' (or locust>=2.20)")
    web_port = (opts["web_port"] or free_port()) if opts["web"] else None
    with tempfile.TemporaryDirectory(prefix="avala-load-") as scratch:
        summary_path = Path(scratch) / "summary.json"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", ENV_BASE_URL: opts["base_url"], ENV_KEY: opts["api_key"],
               ENV_MIX: json.dumps(opts["mix"]), ENV_JOB_DEADLINE: str(opts["job_deadline"]),
               ENV_SUMMARY: str(summary_path)}
        env.pop(ENV_SEED, None)
        if opts["seed"] is not None:
            env[ENV_SEED] = str(opts["seed"])
        cmd = locust_command(opts, web_port)
        click.echo(f"avala-mock load: {' '.join(cmd[1:])}")
        if web_port is not None:
            click.echo(f"avala-mock load: Locust web UI at http://127.0.0.1:{web_port}/ (Ctrl-C to stop and write the report)")
        headless_single = not (opts["web"] or opts["master"] or opts["worker"])
        deadline = run_time_seconds(opts["run_time"]) + GRACE_S if headless_single else None
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # A shell starts background jobs with SIGINT ignored, and exec passes that on: neither this
            # command nor Locust would ever see Ctrl-C or `kill -INT`. Handled here, it is default there.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise click.ClickException(f"could not start Locust: {exc}") from None
        try:
            code = proc.wait(deadline)
        except subprocess.TimeoutExpired:
            click.echo(f"avala-mock load: Locust still running {GRACE_S:g} s after --run-time; stopping it", err=True)
            code = stop(proc) or 1
        except KeyboardInterrupt:
            click.echo("avala-mock load: interrupted; stopping Locust (it writes its reports first)", err=True)
            code = stop(proc)
        if not opts["worker"]:
            report(summary_path, opts)
    sys.exit(128 - code if code < 0 else code)  # killed by signal N: the shell's 128+N
