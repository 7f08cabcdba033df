"""Avala clients under load: the locustfile ``avala-mock load`` hands to ``python -m locust -f``.

Each simulated user is one API client that, between pauses of 0.5-2 s, picks a behaviour by weight:

* ``browse``: pages through projects (up to 3 pages), lists datasets, reads one dataset's items;
* ``auto_label``: starts a dry-run auto-label job on a project and polls it to the end like the SDK
  (1 s, x1.5, at most 10 s), then reports the job's time-to-complete as a ``JOB`` event;
* ``fleet``: lists devices and recordings once, then posts batches of 5-20 detection events;
* ``agent``: lists agents and one agent's pending executions, approves one.

Requests are named by route template so the statistics group by operation. Every 429 is a failure
("429 throttled", so the share shows) followed by a sleep of its ``Retry-After``; 5xx and connection
errors are failures. Settings come from the environment (names in ``avala_mock.load``); the key is
never logged. Runnable on its own too: ``AVALA_LOAD_KEY=... locust -f load/locustfile.py --host URL``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import gevent
from locust import HttpUser, between, events
from locust import stats as locust_stats
from locust.runners import WorkerRunner
from locust.stats import RequestStats, StatsEntry, StatsError

from avala_mock.load import (
    DEFAULT_MIX,
    ENV_BASE_URL,
    ENV_JOB_DEADLINE,
    ENV_KEY,
    ENV_MIX,
    ENV_SEED,
    ENV_SUMMARY,
    JOB_EVENT_NAME,
    JOB_EVENT_TYPE,
    SERVER_ERROR,
    THROTTLED,
)

API_KEY_HEADER = "X-Avala-Api-Key"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 1.0, 1.5, 10.0  # the official SDK's job-polling backoff
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is honoured only this far (a run is minutes long)
BROWSE_PAGES = 3

SEED = int(os.environ[ENV_SEED]) if os.environ.get(ENV_SEED) else None
JOB_DEADLINE_S = float(os.environ.get(ENV_JOB_DEADLINE) or 120.0)
_user_numbers = itertools.count()
if SEED is not None:
    random.seed(SEED)  # Locust picks tasks and wait times with the module-level generator


@dataclass
class Reply:
    """What a behaviour needs of a response: its status, its decoded body, and whether it was a success."""

    status: int
    body: Any = None
    ok: bool = False

    @property
    def results(self) -> list[dict[str, Any]]:
        """The ``results`` of a successful list page (empty otherwise)."""
        if self.ok and isinstance(self.body, dict) and isinstance(self.body.get("results"), list):
            return [r for r in self.body["results"] if isinstance(r, dict)]
        return []


class JobNotCompleted(Exception):
    """An auto-label job ended in failed/cancelled, or not at all before the deadline."""


def retry_after_seconds(value: str | None) -> float:
    """``Retry-After`` in seconds (the mock sends whole seconds); 1 s when absent or unreadable."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiClient(HttpUser):
    """An authenticated API client with the request discipline above; ``AvalaClient`` adds the behaviours."""

    abstract = True
    host = os.environ.get(ENV_BASE_URL) or None
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        key = os.environ.get(ENV_KEY)
        if not key:
            raise RuntimeError(f"{ENV_KEY} is not set: run through `avala-mock load` or export it")
        self.client.headers[API_KEY_HEADER] = key
        number = next(_user_numbers)
        self.rng = random.Random(f"{SEED}:{number}") if SEED is not None else random.Random()
        self.recordings: list[dict[str, Any]] | None = None  # fleet's cache, filled once

    def call(self, method: str, url: str, name: str, *, json: Any = None, expect: tuple[int, ...] = (200,)) -> Reply:
        """One request, judged: ``expect`` statuses succeed, a 429 fails and then sleeps its Retry-After."""
        reply, pause = Reply(0), 0.0
        with self.client.request(method, url, name=name, json=json, catch_response=True) as response:
            reply.status = status = response.status_code or 0
            if status == 429:
                pause = retry_after_seconds(response.headers.get("Retry-After"))
                response.failure(THROTTLED)
            elif status == 0:
                response.failure(f"connection error: {type(response.error).__name__}")
            elif status >= 500:
                response.failure(f"{SERVER_ERROR} (HTTP {status})")
            elif status not in expect:
                response.failure(f"unexpected HTTP {status}")
            else:
                try:
                    reply.body = response.json() if response.content else None
                except ValueError:
                    response.failure(f"HTTP {status} with a body that is not JSON")
                else:
                    reply.ok = True
                    response.success()
        if pause:
            gevent.sleep(pause)
        return reply

    def relative(self, url: str | None) -> str | None:
        """A pagination link as a path under our base URL, so paging never leaves the server under test."""
        if not url:
            return None
        base = urlsplit(self.client.base_url).path.rstrip("/")
        link = urlsplit(url)
        if not link.path.startswith(base + "/"):
            return None
        return link.path[len(base):] + (f"?{link.query}" if link.query else "")

    def report_job(self, started: float, exception: Exception | None) -> None:
        """The job's create-to-terminal time as a custom request, so it lands in the stats and charts."""
        self.environment.events.request.fire(
            request_type=JOB_EVENT_TYPE, name=JOB_EVENT_NAME, response_time=(time.monotonic() - started) * 1000,
            response_length=0, exception=exception, context={},
        )

    def wait_for_job(self, uid: str, started: float | None) -> None:
        """Poll a job to a terminal status with the SDK's backoff; report it when we timed it from creation."""
        delay = POLL_FIRST_S
        deadline = (started if started is not None else time.monotonic()) + JOB_DEADLINE_S
        while True:
            reply = self.call("GET", f"/auto-label-jobs/{quote(uid)}/", "/auto-label-jobs/{uid}/")
            status = reply.body.get("status") if reply.ok and isinstance(reply.body, dict) else None
            if status in TERMINAL:
                if started is not None:
                    self.report_job(started, None if status == "completed" else JobNotCompleted(f"job {status}"))
                return
            if reply.status == 404:  # gone (e.g. the server was reset): already logged as a failure
                return
            left = deadline - time.monotonic()
            if left <= 0:
                if started is not None:
                    self.report_job(started, JobNotCompleted(f"not finished within {JOB_DEADLINE_S:g} s"))
                return
            if reply.status != 429:  # after a 429, call() already waited its Retry-After
                gevent.sleep(min(delay, left))
                delay = min(delay * POLL_FACTOR, POLL_MAX_S)


def browse(user: ApiClient) -> None:
    """Look around: a few pages of projects, the datasets, one dataset's items."""
    url: str | None = "/projects/?limit=20"
    for _ in range(BROWSE_PAGES):
        if url is None:
            break
        page = user.call("GET", url, "/projects/")
        url = user.relative(page.body.get("next")) if page.ok and isinstance(page.body, dict) else None
    datasets = [d for d in user.call("GET", "/datasets/?limit=20", "/datasets/").results if d.get("owner_name") and d.get("slug")]
    if datasets:
        dataset = user.rng.choice(datasets)
        user.call("GET", f"/datasets/{quote(dataset['owner_name'])}/{quote(dataset['slug'])}/items/?limit=50",
                  "/datasets/{owner}/{slug}/items/")


def auto_label(user: ApiClient) -> None:
    """Start a dry-run YOLO job and wait for it; on a 409 (one already running there) watch that one."""
    projects = [p for p in user.call("GET", "/projects/?limit=100", "/projects/").results if p.get("uid")]
    if not projects:
        return
    uid = quote(user.rng.choice(projects)["uid"])
    started = time.monotonic()
    created = user.call("POST", f"/projects/{uid}/auto-label/", "/projects/{uid}/auto-label/",
                        json={"model_type": "yolo", "dry_run": True}, expect=(202, 409))
    if created.status == 409:
        running = user.call("GET", f"/auto-label-jobs/?project={uid}&status=running", "/auto-label-jobs/").results
        if running and running[0].get("uid"):
            user.wait_for_job(running[0]["uid"], started=None)  # not ours: watched, not timed
        return
    if created.ok and isinstance(created.body, dict) and created.body.get("uid"):
        user.wait_for_job(created.body["uid"], started)


def fleet(user: ApiClient) -> None:
    """A device gateway: learn the fleet once, then report detections in batches."""
    if user.recordings is None:
        devices = user.call("GET", "/fleet/devices/?limit=50", "/fleet/devices/")
        recordings = user.call("GET", "/fleet/recordings/?limit=50", "/fleet/recordings/")
        if not (devices.ok and recordings.ok):
            return  # try again next time
        user.recordings = [r for r in recordings.results if r.get("uid") and r.get("device")]
    if not user.recordings:
        return
    batch = []
    for _ in range(user.rng.randint(5, 20)):
        recording = user.rng.choice(user.recordings)  # a recording and its own device belong together
        batch.append({"recording": recording["uid"], "device": recording["device"], "type": "detection",
                      "label": "obstacle", "timestamp": rfc3339_now(), "severity": "info"})
    user.call("POST", "/fleet/events/batch/", "/fleet/events/batch/", json={"events": batch}, expect=(200, 201))


def agent(user: ApiClient) -> None:
    """A reviewer: find one agent's pending executions and approve one. Another user may have decided it
    first; the server's 409 ("already completed") is then a success."""
    agents = [a for a in user.call("GET", "/agents/?limit=20", "/agents/").results if a.get("uid")]
    if not agents:
        return
    uid = quote(user.rng.choice(agents)["uid"])
    pending = [e for e in user.call("GET", f"/agents/{uid}/executions/?limit=20&status=pending",
                                    "/agents/{uid}/executions/").results if e.get("uid")]
    if pending:
        user.call("POST", "/agent-actions/", "/agent-actions/",
                  json={"execution": user.rng.choice(pending)["uid"], "action": "approve"}, expect=(200, 201, 204, 409))


BEHAVIOURS: dict[str, Callable[[ApiClient], None]] = {
    "browse": browse, "auto_label": auto_label, "fleet": fleet, "agent": agent,
}


def weighted_tasks(mix: dict[str, int]) -> dict[Callable[[ApiClient], None], int]:
    """Locust's ``{task: weight}`` form; behaviours of weight 0 are left out."""
    return {BEHAVIOURS[name]: int(weight) for name, weight in mix.items() if weight > 0}


class AvalaClient(ApiClient):
    """The simulated Avala client: behaviours picked by the mix's weights, 0.5-2 s apart."""

    tasks = weighted_tasks(json.loads(os.environ[ENV_MIX]) if os.environ.get(ENV_MIX) else DEFAULT_MIX)


def summarize(stats: RequestStats) -> dict[str, Any]:
    """The run in a few numbers: HTTP requests apart from the job events, and those separately."""
    http = StatsEntry(stats, "HTTP", "")
    job: StatsEntry | None = None
    for entry in stats.entries.values():
        if entry.method == JOB_EVENT_TYPE:
            job = entry
        else:
            http.extend(entry)
    errors = [(StatsError.parse_error(e.error), e.occurrences) for e in stats.errors.values()]
    duration = (stats.last_request_timestamp or stats.start_time) - stats.start_time
    percentile = {f"p{round(p * 100)}": (http.get_response_time_percentile(p) if http.num_requests else None)
                  for p in (0.5, 0.95, 0.99)}
    return {
        "requests": http.num_requests,
        "failures": http.num_failures,
        "rps": http.num_requests / duration if duration > 0 else 0.0,
        **percentile,
        "throttled": sum(n for text, n in errors if THROTTLED in text),
        "server_errors": sum(n for text, n in errors if SERVER_ERROR in text),
        "jobs_finished": job.num_requests if job else 0,
        "jobs_completed": job.num_requests - job.num_failures if job else 0,
        "job_median_ms": job.median_response_time if job and job.num_requests else None,
    }


@events.quitting.add_listener
def write_summary(environment: Any, **_kwargs: Any) -> None:
    """Hand the summary to ``avala-mock load`` (the master's or the single process's; workers have none)."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    if getattr(environment.parsed_options, "csv_prefix", None):
        # Locust rewrites its CSVs every CSV_STATS_INTERVAL_SEC and not again at exit: let it write the
        # final numbers once more, so the CSVs agree with the tables and this summary.
        gevent.sleep(locust_stats.CSV_STATS_INTERVAL_SEC + 0.2)
    path = os.environ.get(ENV_SUMMARY)
    if not path:
        return
    summary = {**summarize(runner.stats), "exceptions": len(runner.exceptions)}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(summary, out)
