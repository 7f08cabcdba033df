"""``avala-mock contract`` and ``avala-mock verify-client``; registered on the main CLI group."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from avala_mock.contracts.report import shown

REPORT_FORMATS = ("json", "junit", "html")


@click.command()
@click.option("--base-url", required=True, metavar="URL", help="Root of the API under test, e.g. https://staging.example/api/v1.")
@click.option("--api-key", required=True, envvar="AVALA_API_KEY", metavar="KEY", help="API key sent as X-Avala-Api-Key.")
@click.option("--operations", default=None, metavar="ID,ID", help="Only these operationIds (comma-separated).")
@click.option("--max-examples", default=10, show_default=True, type=click.IntRange(1), help="Generated cases per operation and phase.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for generation (deterministic runs).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Concurrent schemathesis workers.")
@click.option("--lifecycle-timeout", default=60.0, show_default=True, type=float,
              help="Seconds to wait for an auto-label job to end when the target's clock cannot be advanced.")
@click.option("--request-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for one answer (six requests in a row without one, over two operations or more, end the run: exit 2).")
@click.option("--no-schemathesis", is_flag=True, help="Run only our own checks (lifecycle, pagination, headers, errors).")
@click.option("--report", "report_format", type=click.Choice(REPORT_FORMATS), default=None, help="Also write a report file.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the report (default: avala-contract.<ext>).")
@click.option("--all-rows", is_flag=True, help="Show passing operations in the table too.")
@click.option("--keep-data", is_flag=True, help="Leave the objects the run created on the target (default: delete them).")
def contract(base_url: str, api_key: str, operations: str | None, max_examples: int, seed: int, workers: int,
             lifecycle_timeout: float, request_timeout: float, no_schemathesis: bool, report_format: str | None,
             output: Path | None, all_rows: bool, keep_data: bool) -> None:
    """Check a server (our mock, a staging Avala, another mock) against openapi.yaml.

    Exit 0: it conforms; 1: it does not (the report says where); 2: it could not be checked (unreachable,
    key refused, not an Avala API: one message, within seconds; or it stopped answering during the run).
    """
    try:
        from avala_mock.contracts.runner import HarnessOptions, run_harness
        from avala_mock.contracts.target import TargetProblem
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"avala-mock contract needs the 'harness' extra ({exc.name} is not installed): "
                               "pip install 'avala-mock[harness]'") from None

    console = Console(highlight=False, width=160)
    ops = [o.strip() for o in operations.split(",") if o.strip()] if operations else None
    opts = HarnessOptions(base_url=base_url.rstrip("/"), api_key=api_key, operations=ops, max_examples=max_examples,
                          seed=seed, workers=workers, schemathesis=not no_schemathesis, lifecycle_timeout=lifecycle_timeout,
                          request_timeout=request_timeout,
                          keep_data=keep_data)
    try:
        with _progress(console) as say:
            report = run_harness(opts, on_progress=say)
    except TargetProblem as exc:
        console.print(f"[red]cannot check {shown(base_url)}:[/red] {shown(exc)}")
        sys.exit(2)
    if report_format:  # written first: the file is what CI keeps
        ext = {"json": "json", "junit": "xml", "html": "html"}[report_format]
        path = output or Path(f"avala-contract.{ext}")
        text = {"json": report.to_json, "junit": report.to_junit, "html": report.to_html}[report_format]()
        path.write_text(text, encoding="utf-8")
    report.render(console, all_rows=all_rows)
    if report_format:
        console.print(f"report: {shown(path)}")
    sys.exit(0 if report.passed else 1)


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str], None]]:
    """A live status line on a terminal; elsewhere (CI logs) a line every few seconds at most."""
    if console.is_terminal:
        with console.status("starting") as status:
            yield lambda message: status.update(shown(message))
        return
    last = [0.0]

    def say(message: str) -> None:
        if time.monotonic() - last[0] >= 5.0 or not message.startswith("schemathesis:"):
            last[0] = time.monotonic()
            console.print(f"[dim]… {shown(message)}[/dim]")

    yield say


@click.command(name="verify-client", context_settings={"ignore_unknown_options": True})
@click.option("--min-coverage", default=None, type=click.FloatRange(0, 100), help="Fail below this % of spec operations exercised.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the mock's world.")
@click.option("--time-scale", default="instant", show_default=True, metavar="FLOAT|instant", help="The mock's clock.")
@click.option("--timeout", default=None, type=float, help="Kill the client after this many seconds.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def verify_client_cmd(min_coverage: float | None, seed: int, time_scale: str, timeout: float | None, command: tuple[str, ...]) -> None:
    """Run COMMAND against a fresh strict mock; exit 1 if it sent any off-contract request.

    Example: avala-mock verify-client -- python my_client.py
    """
    from avala_mock.contracts.verify import verify_client

    console = Console(highlight=False, width=160)
    result = verify_client(list(command), min_coverage=min_coverage, seed=seed, time_scale=time_scale,
                           timeout=timeout, console=console)
    result.render(console)
    sys.exit(0 if result.passed else 1)
