"""Our own contract checks, the ones schemathesis cannot express: the auto-label job lifecycle across
many requests and over time, pagination walks with several limits, rate-limit headers on every
answer, and the DRF error shape. They speak plain HTTP to any base URL; when the target is avala-mock
on a manual clock (its control API answers), the lifecycle moves time instead of waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from avala_mock.contracts.report import Report
from avala_mock.mock_server.context import API_KEY_HEADER
from avala_mock.mock_server.spec import Spec

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
TERMINAL = {"completed", "failed", "cancelled"}
ORDER = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
PAGE_LIMITS = (1, 3, 7)
MAX_PAGES = 8
ITEM_KEYS = ("uid", "id", "slug", "name")


class Target:
    """HTTP to the server under test; every answer passes the header and error-shape checks."""

    def __init__(self, base_url: str, api_key: str, report: Report, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.report = report
        self.api_key = api_key
        self.http = httpx.Client(timeout=timeout)
        self.manual = self._detect_manual_clock()

    def close(self) -> None:
        self.http.close()

    def _detect_manual_clock(self) -> bool:
        origin = self.base_url.rsplit("/api/", 1)[0]
        try:
            r = self.http.get(f"{origin}/_mock/clock/")
            return r.status_code == 200 and r.json().get("mode") == "manual"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def advance(self, seconds: float) -> None:
        origin = self.base_url.rsplit("/api/", 1)[0]
        self.http.post(f"{origin}/_mock/clock/advance/", json={"seconds": seconds}).raise_for_status()

    def call(self, op_id: str, method: str, url: str, *, key: bool = True, **kwargs: Any) -> httpx.Response:
        full = url if url.startswith("http") else self.base_url + url
        headers = {API_KEY_HEADER: self.api_key} if key else {}
        response = self.http.request(method, full, headers=headers, **kwargs)
        self.report.add_cases(op_id)
        check_rate_headers(self.report, op_id, response)
        check_error_shape(self.report, op_id, response)
        return response


def _where(r: httpx.Response) -> str:
    return f"{r.request.method} {r.request.url.raw_path.decode()[:120]} -> {r.status_code}"


def check_rate_headers(report: Report, op_id: str, r: httpx.Response) -> None:
    missing = [h for h in RATE_HEADERS if h not in r.headers]
    if missing:
        report.fail(op_id, "rate_limit_headers", f"{_where(r)}: missing {', '.join(missing)}")
        return
    try:
        limit, remaining, reset = (int(r.headers[h]) for h in RATE_HEADERS)
    except ValueError:
        report.fail(op_id, "rate_limit_headers", f"{_where(r)}: non-integer X-RateLimit-* values")
        return
    if not (0 <= remaining <= limit) or reset < 0 or limit <= 0:
        report.fail(op_id, "rate_limit_headers", f"{_where(r)}: incoherent limit={limit} remaining={remaining} reset={reset}")
    if r.status_code == 429 and "Retry-After" not in r.headers:
        report.fail(op_id, "rate_limit_headers", f"{_where(r)}: 429 without Retry-After")


def check_error_shape(report: Report, op_id: str, r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
    except ValueError:
        report.fail(op_id, "error_body_shape", f"{_where(r)}: error body is not JSON")
        return
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"]:
        report.fail(op_id, "error_body_shape", f'{_where(r)}: error body lacks a string "detail"')


# --- error bodies ---------------------------------------------------------------------------------

def run_error_shapes(target: Target, spec: Spec, operations: set[str]) -> None:
    """Provoke 404s (unknown uid) and 401s (no key) and let ``Target.call`` check their shape and headers."""
    for op in spec.operations.values():
        if op.operation_id not in operations or op.method != "GET":
            continue
        params = [seg for seg in op.path.split("/") if seg.startswith("{")]
        if len(params) == 1:
            url = op.path.replace(params[0], "zz-no-such-object-0000")
            r = target.call(op.operation_id, "GET", url)
            if r.status_code != 404 and r.status_code < 400:
                target.report.fail(op.operation_id, "error_body_shape", f"{_where(r)}: unknown id answered {r.status_code}")
        elif not params and op.secured:
            r = target.call(op.operation_id, "GET", op.path, key=False)
            if r.status_code != 401:
                target.report.fail(op.operation_id, "error_body_shape", f"{_where(r)}: no API key answered {r.status_code}, not 401")


# --- pagination -----------------------------------------------------------------------------------

def _item_key(item: Any) -> Any:
    if isinstance(item, dict):
        for k in ITEM_KEYS:
            if k in item:
                return item[k]
    return repr(item)


def run_pagination(target: Target, spec: Spec, operations: set[str]) -> None:
    """Walk every cursor list without path parameters with several limits: the walks must agree with
    one big page (no duplicate, no gap, same order) and ``previous`` from page 2 must give page 1."""
    for op in spec.operations.values():
        if op.operation_id not in operations or op.method != "GET" or "{" in op.path:
            continue
        if not any(p.name == "cursor" for p in op.query):
            continue
        _walk_list(target, op.operation_id, op.path)


def _page(target: Target, op_id: str, url: str, **params: Any) -> dict | None:
    r = target.call(op_id, "GET", url, params=params or None)
    if r.status_code != 200:
        return None
    body = r.json()
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        target.report.fail(op_id, "pagination", f"{_where(r)}: page has no results list")
        return None
    return body


def _walk_list(target: Target, op_id: str, path: str) -> None:
    report = target.report
    big_limit = max(PAGE_LIMITS) * MAX_PAGES
    first = _page(target, op_id, path, limit=big_limit)
    if first is None:
        return
    reference = [_item_key(i) for i in first["results"]]
    for limit in PAGE_LIMITS:
        seen: list[Any] = []
        body = _page(target, op_id, path, limit=limit)
        pages = []
        while body is not None and len(pages) < MAX_PAGES:
            keys = [_item_key(i) for i in body["results"]]
            pages.append((keys, body))
            if len(keys) > limit:
                report.fail(op_id, "pagination", f"limit={limit}: page of {len(keys)} items")
            dup = set(seen) & set(keys)
            if dup:
                report.fail(op_id, "pagination", f"limit={limit}: duplicate item(s) across pages: {sorted(map(str, dup))[:3]}")
            seen.extend(keys)
            if body.get("next") is None:
                if len(seen) < len(reference):
                    report.fail(op_id, "pagination", f"limit={limit}: walk ended after {len(seen)} of {len(reference)} items")
                break
            if not keys:
                report.fail(op_id, "pagination", f"limit={limit}: empty page with a next link")
                break
            body = _page(target, op_id, body["next"])
        expected = reference[: len(seen)]
        if seen != expected and len(seen) <= len(reference):
            missing = [k for k in expected if k not in seen]
            report.fail(op_id, "pagination", f"limit={limit}: walk differs from one big page (gap: {missing[:3]})")
        if pages and pages[0][1].get("previous") is not None:
            report.fail(op_id, "pagination", f"limit={limit}: first page has a previous link")
        if len(pages) >= 2 and pages[1][1].get("previous"):
            back = _page(target, op_id, pages[1][1]["previous"])
            if back is not None and [_item_key(i) for i in back["results"]] != pages[0][0]:
                report.fail(op_id, "pagination", f"limit={limit}: previous of page 2 is not page 1")
        elif len(pages) >= 2:
            report.fail(op_id, "pagination", f"limit={limit}: page 2 has no previous link")


# --- auto-label lifecycle -------------------------------------------------------------------------

def run_lifecycle(target: Target, timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """create → poll to the end (monotonic progress, counters add up, terminal final), a second job on a
    busy project refused with 409, cancel keeps processed items; time moves by the control API on a
    manual clock, else by polling until ``timeout``."""
    report = target.report
    r = target.call("list_projects", "GET", "/projects/", params={"limit": 100})
    if r.status_code != 200:
        report.errors.append(f"lifecycle: cannot list projects ({r.status_code})")
        return
    projects = [p["uid"] for p in r.json().get("results", [])]
    jobs: list[tuple[str, dict]] = []
    for uid in projects:
        r = target.call("create_auto_label_job", "POST", f"/projects/{uid}/auto-label/",
                        json={"model_type": "yolo", "confidence_threshold": 0.5})
        if r.status_code == 409:
            continue
        if r.status_code != 202:
            report.fail("create_auto_label_job", "auto_label_lifecycle", f"{_where(r)}: create answered {r.status_code}, not 202")
            return
        job = r.json()
        if job.get("status") != "pending":
            report.fail("create_auto_label_job", "auto_label_lifecycle", f"new job is {job.get('status')!r}, not 'pending'")
        again = target.call("create_auto_label_job", "POST", f"/projects/{uid}/auto-label/", json={"model_type": "yolo"})
        if again.status_code != 409:
            report.fail("create_auto_label_job", "auto_label_lifecycle",
                        f"second job on a busy project answered {again.status_code}, not 409")
        jobs.append((uid, job))
        if len(jobs) == 2:
            break
    if len(jobs) < 2:
        report.notes.append("lifecycle: fewer than two free projects; cancel check skipped" if jobs else
                            "lifecycle: no project accepted a job; lifecycle not checked")
    if len(jobs) == 2:
        _cancel_case(target, jobs[1][1], timeout, sleep)
    if jobs:
        _poll_to_end(target, jobs[0][1], timeout, sleep)


def _check_counters(report: Report, job: dict) -> None:
    s, f, k, p = (job.get(x, 0) for x in ("successful_items", "failed_items", "skipped_items", "processed_items"))
    if p != s + f + k:
        report.fail("get_auto_label_job", "auto_label_lifecycle",
                    f"job {job.get('uid')}: processed_items {p} != successful {s} + failed {f} + skipped {k}")
    total = job.get("total_items", 0)
    if p > total:
        report.fail("get_auto_label_job", "auto_label_lifecycle", f"job {job.get('uid')}: processed {p} > total {total}")
    pct = job.get("progress_pct", 0)
    if total and abs(pct - 100.0 * p / total) > 1.0:
        report.fail("get_auto_label_job", "auto_label_lifecycle", f"job {job.get('uid')}: progress_pct {pct} != 100·{p}/{total}")


def _get(target: Target, uid: str) -> dict | None:
    r = target.call("get_auto_label_job", "GET", f"/auto-label-jobs/{uid}/")
    if r.status_code != 200:
        target.report.fail("get_auto_label_job", "auto_label_lifecycle", f"{_where(r)}: polling a job answered {r.status_code}")
        return None
    return r.json()


def _tick(target: Target, sleep: Callable[[float], None], seconds: float = 5.0) -> None:
    if target.manual:
        target.advance(seconds)
    else:
        sleep(0.5)


def _poll_to_end(target: Target, job: dict, timeout: float, sleep: Callable[[float], None]) -> None:
    report = target.report
    deadline = time.monotonic() + timeout
    last = job
    while time.monotonic() < deadline:
        _tick(target, sleep)
        now = _get(target, job["uid"])
        if now is None:
            return
        _check_counters(report, now)
        if ORDER.get(now["status"], -1) < ORDER.get(last["status"], 0):
            report.fail("get_auto_label_job", "auto_label_lifecycle", f"status went back {last['status']} -> {now['status']}")
        for field in ("processed_items", "progress_pct"):
            if now.get(field, 0) < last.get(field, 0):
                report.fail("get_auto_label_job", "auto_label_lifecycle", f"{field} went back {last[field]} -> {now[field]}")
        last = now
        if now["status"] in TERMINAL:
            _tick(target, sleep, 60.0)
            after = _get(target, job["uid"])
            if after is not None and (after["status"], after["processed_items"]) != (now["status"], now["processed_items"]):
                report.fail("get_auto_label_job", "auto_label_lifecycle", f"terminal job changed: {now['status']} -> {after['status']}")
            if now["status"] == "completed" and now["processed_items"] != now["total_items"]:
                report.fail("get_auto_label_job", "auto_label_lifecycle", "completed job did not process every item")
            return
    report.notes.append(f"lifecycle: job {job['uid']} not terminal within {timeout:.0f} s; checked while running only")


def _cancel_case(target: Target, job: dict, timeout: float, sleep: Callable[[float], None]) -> None:
    report = target.report
    deadline = time.monotonic() + timeout
    now: dict | None = job
    while now is not None and now["processed_items"] == 0 and now["status"] not in TERMINAL and time.monotonic() < deadline:
        _tick(target, sleep, 1.5)
        now = _get(target, job["uid"])
    if now is None or now["status"] in TERMINAL:
        report.notes.append("lifecycle: job ended before it could be cancelled; cancel check skipped")
        return
    r = target.call("cancel_auto_label_job", "DELETE", f"/auto-label-jobs/{job['uid']}/")
    if r.status_code not in (200, 202, 204):
        report.fail("cancel_auto_label_job", "auto_label_lifecycle", f"{_where(r)}: cancel answered {r.status_code}")
        return
    _tick(target, sleep, 60.0)
    after = _get(target, job["uid"])
    if after is None:
        return
    _check_counters(report, after)
    if after["status"] != "cancelled":
        report.fail("cancel_auto_label_job", "auto_label_lifecycle", f"cancelled job is {after['status']!r}")
    if after["processed_items"] < now["processed_items"]:
        report.fail("cancel_auto_label_job", "auto_label_lifecycle",
                    f"cancel lost processed items ({now['processed_items']} -> {after['processed_items']})")
    again = target.call("cancel_auto_label_job", "DELETE", f"/auto-label-jobs/{job['uid']}/")
    if again.status_code != 409:
        report.fail("cancel_auto_label_job", "auto_label_lifecycle", f"cancelling an ended job answered {again.status_code}, not 409")
