"""Our own contract checks, the ones schemathesis cannot express: the auto-label job lifecycle across
many requests and over time, pagination walks with several limits, rate-limit headers on every
answer, and the DRF error shape. They speak plain HTTP to any base URL (contracts/target.py); when the
target is avala-mock on a manual clock, the lifecycle moves time instead of waiting for it.

Whatever a target answers — nothing, HTML, random JSON, links to another host — becomes a failure of
the check that met it, with its evidence, and the run goes on with the next operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from avala_mock.contracts.target import Target, segment, short, where
from avala_mock.mock_server.spec import Spec

TERMINAL = {"completed", "failed", "cancelled"}
ORDER = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
PAGE_LIMITS = (1, 3, 7)
MAX_PAGES = 8
ITEM_KEYS = ("uid", "id", "slug", "name")


# --- error bodies ---------------------------------------------------------------------------------

def run_error_shapes(target: Target, spec: Spec, operations: set[str]) -> None:
    """Provoke 404s (unknown uid) and 401s (no key) and let ``Target.call`` check their shape and headers."""
    for op in spec.operations.values():
        if op.operation_id not in operations or op.method != "GET":
            continue
        params = [seg for seg in op.path.split("/") if seg.startswith("{")]
        if len(params) == 1:
            url = op.path.replace(params[0], "zz-no-such-object-0000")
            r = target.call(op.operation_id, "error_body_shape", "GET", url)
            if r is not None and r.status_code < 400:
                target.report.fail(op.operation_id, "error_body_shape", f"{where(r)}: an unknown id answered {r.status_code}")
        elif not params and op.secured:
            r = target.call(op.operation_id, "error_body_shape", "GET", op.path, key=False)
            if r is not None and r.status_code != 401:
                target.report.fail(op.operation_id, "error_body_shape", f"{where(r)}: no API key answered {r.status_code}, not 401")


# --- pagination -----------------------------------------------------------------------------------

def _item_key(item: Any) -> Any:
    if isinstance(item, dict):
        for k in ITEM_KEYS:
            if k in item:
                return repr(item[k])
    return repr(item)


def run_pagination(target: Target, spec: Spec, operations: set[str], on_operation: Callable[[str], None] | None = None) -> None:
    """Walk every cursor list without path parameters with several limits: the walks must agree with
    one big page (no duplicate, no gap, same order) and ``previous`` from page 2 must give page 1."""
    for op in spec.operations.values():
        if op.operation_id not in operations or op.method != "GET" or "{" in op.path:
            continue
        if not any(p.name == "cursor" for p in op.query):
            continue
        if on_operation is not None:
            on_operation(op.operation_id)
        _walk_list(target, op.operation_id, op.path)


def _page(target: Target, op_id: str, url: str, **params: Any) -> dict | None:
    if url.startswith("http") and not target.within(url):
        target.report.fail(op_id, "pagination", f"a link leaves the base URL: {url[:120]}")
        return None
    r = target.call(op_id, "pagination", "GET", url, params=params or None)
    if r is None or r.status_code != 200:
        return None
    body = target.json(r, op_id, "pagination")
    if body is None:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        target.report.fail(op_id, "pagination", f"{where(r)}: a page without a results list: {short(r.text)}")
        return None
    for link in ("next", "previous"):
        if body.get(link) is not None and not isinstance(body[link], str):
            target.report.fail(op_id, "pagination", f"{where(r)}: `{link}` is not a URL string")
            body[link] = None
    return body


def _walk_list(target: Target, op_id: str, path: str) -> None:
    report = target.report
    first = _page(target, op_id, path, limit=max(PAGE_LIMITS) * MAX_PAGES)
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
                report.fail(op_id, "pagination", f"limit={limit}: a page of {len(keys)} items")
            if len(pages) == 2 and keys and keys == pages[0][0]:
                report.fail(op_id, "pagination", f"limit={limit}: page 2 repeats page 1")
                break
            dup = set(seen) & set(keys)
            if dup:
                report.fail(op_id, "pagination", f"limit={limit}: item(s) on two pages: {sorted(dup)[:3]}")
            seen.extend(keys)
            nxt = body.get("next")
            if nxt is None:
                if len(seen) < len(reference):
                    report.fail(op_id, "pagination", f"limit={limit}: the walk ended after {len(seen)} of {len(reference)} items")
                break
            if not target.within(nxt):
                report.fail(op_id, "pagination", f"limit={limit}: `next` leaves the base URL: {nxt[:120]}")
                break
            if not keys:
                report.fail(op_id, "pagination", f"limit={limit}: an empty page with a next link")
                break
            body = _page(target, op_id, nxt)
        expected = reference[: len(seen)]
        if seen != expected and len(seen) <= len(reference):
            missing = [k for k in expected if k not in seen]
            report.fail(op_id, "pagination", f"limit={limit}: the walk differs from one big page (missing: {missing[:3]})")
        if pages and pages[0][1].get("previous") is not None:
            report.fail(op_id, "pagination", f"limit={limit}: the first page has a previous link")
        if len(pages) >= 2 and pages[1][1].get("previous"):
            back = _page(target, op_id, pages[1][1]["previous"])
            if back is not None and [_item_key(i) for i in back["results"]] != pages[0][0]:
                report.fail(op_id, "pagination", f"limit={limit}: previous of page 2 is not page 1")
        elif len(pages) >= 2:
            report.fail(op_id, "pagination", f"limit={limit}: page 2 has no previous link")


# --- auto-label lifecycle -------------------------------------------------------------------------

LIFECYCLE = "auto_label_lifecycle"


def run_lifecycle(target: Target, timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """create → poll to the end (monotonic progress, counters add up, terminal final), a second job on a
    busy project refused with 409, cancel keeps processed items; time moves by the control API on a
    manual clock, else by polling until ``timeout``."""
    report = target.report
    r = target.call("list_projects", LIFECYCLE, "GET", "/projects/", params={"limit": 100})
    body = target.json(r, "list_projects", LIFECYCLE) if r is not None and r.status_code == 200 else None
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        report.fail("list_projects", LIFECYCLE, "cannot list projects to start jobs on" + (f" ({where(r)})" if r is not None else ""))
        return
    projects = [p["uid"] for p in body["results"] if isinstance(p, dict) and isinstance(p.get("uid"), str)]
    jobs: list[dict] = []
    for uid in projects:
        r = target.call("create_auto_label_job", LIFECYCLE, "POST", f"/projects/{segment(uid)}/auto-label/",
                        json={"model_type": "yolo", "confidence_threshold": 0.5})
        if r is None or r.status_code == 409:
            continue
        job = target.json(r, "create_auto_label_job", LIFECYCLE)
        if r.status_code != 202 or not isinstance(job, dict) or not isinstance(job.get("uid"), str):
            report.fail("create_auto_label_job", LIFECYCLE, f"{where(r)}: create did not answer 202 with a job: {short(r.text)}")
            return
        if job.get("status") != "pending":
            report.fail("create_auto_label_job", LIFECYCLE, f"a new job is {job.get('status')!r}, not 'pending'")
        again = target.call("create_auto_label_job", LIFECYCLE, "POST", f"/projects/{segment(uid)}/auto-label/", json={"model_type": "yolo"})
        if again is not None and again.status_code != 409:
            report.fail("create_auto_label_job", LIFECYCLE, f"a second job on a busy project answered {again.status_code}, not 409")
        jobs.append(job)
        if len(jobs) == 2:
            break
    if len(jobs) < 2:
        report.notes.append("lifecycle: fewer than two free projects; cancel check skipped" if jobs else
                            "lifecycle: no project accepted a job; lifecycle not checked")
    if len(jobs) == 2:
        _cancel_case(target, jobs[1], timeout, sleep)
    if jobs:
        _poll_to_end(target, jobs[0], timeout, sleep)


def _number(job: dict, field: str) -> float:
    value = job.get(field, 0)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _check_counters(target: Target, job: dict) -> None:
    report = target.report
    s, f, k, p = (_number(job, x) for x in ("successful_items", "failed_items", "skipped_items", "processed_items"))
    if p != s + f + k:
        report.fail("get_auto_label_job", LIFECYCLE, f"job {job.get('uid')}: processed_items {p} != successful {s} + failed {f} + skipped {k}")
    total = _number(job, "total_items")
    if p > total:
        report.fail("get_auto_label_job", LIFECYCLE, f"job {job.get('uid')}: processed {p} > total {total}")
    pct = _number(job, "progress_pct")
    if total and abs(pct - 100.0 * p / total) > 1.0:
        report.fail("get_auto_label_job", LIFECYCLE, f"job {job.get('uid')}: progress_pct {pct} != 100·{p}/{total}")


def _get(target: Target, uid: str, op_id: str = "get_auto_label_job") -> dict | None:
    r = target.call(op_id, LIFECYCLE, "GET", f"/auto-label-jobs/{segment(uid)}/")
    if r is None:
        return None
    if r.status_code != 200:
        target.report.fail(op_id, LIFECYCLE, f"{where(r)}: a created job answered {r.status_code} on GET")
        return None
    job = target.json(r, op_id, LIFECYCLE)
    if not isinstance(job, dict) or job.get("uid") != uid:
        target.report.fail(op_id, LIFECYCLE, f"{where(r)}: GET of job {uid} answered another object: {short(r.text)}")
        return None
    if job.get("status") not in ORDER:
        target.report.fail(op_id, LIFECYCLE, f"{where(r)}: job status {job.get('status')!r} is not a job status")
        return None
    return job


def _tick(target: Target, sleep: Callable[[float], None], seconds: float = 5.0) -> None:
    if target.manual:
        target.advance(seconds)
    else:
        sleep(0.5)


def _poll_to_end(target: Target, job: dict, timeout: float, sleep: Callable[[float], None]) -> None:
    report = target.report
    deadline = time.monotonic() + timeout
    last, moved = job, False
    while time.monotonic() < deadline:
        _tick(target, sleep)
        now = _get(target, job["uid"])
        if now is None:
            return
        _check_counters(target, now)
        if ORDER[now["status"]] < ORDER.get(last["status"], 0):
            report.fail("get_auto_label_job", LIFECYCLE, f"status went back {last['status']} -> {now['status']}")
        for field in ("processed_items", "progress_pct"):
            if _number(now, field) < _number(last, field):
                report.fail("get_auto_label_job", LIFECYCLE, f"{field} went back {last.get(field)} -> {now.get(field)}")
        moved = moved or now["status"] != job["status"] or _number(now, "processed_items") != _number(job, "processed_items")
        last = now
        if now["status"] in TERMINAL:
            _tick(target, sleep, 60.0)
            after = _get(target, job["uid"])
            if after is not None and (after["status"], after.get("processed_items")) != (now["status"], now.get("processed_items")):
                report.fail("get_auto_label_job", LIFECYCLE, f"a terminal job changed: {now['status']} -> {after['status']}")
            if now["status"] == "completed" and now.get("processed_items") != now.get("total_items"):
                report.fail("get_auto_label_job", LIFECYCLE, "a completed job did not process every item")
            return
    if not moved:
        report.fail("get_auto_label_job", LIFECYCLE, f"job {job['uid']}: status and counters never moved in {timeout:.0f} s")
    else:
        report.notes.append(f"lifecycle: job {job['uid']} not terminal within {timeout:.0f} s; checked while running only")


def _cancel_case(target: Target, job: dict, timeout: float, sleep: Callable[[float], None]) -> None:
    report = target.report
    deadline = time.monotonic() + timeout
    now: dict | None = job
    while now is not None and not _number(now, "processed_items") and now["status"] not in TERMINAL and time.monotonic() < deadline:
        _tick(target, sleep, 1.5)
        now = _get(target, job["uid"])
    if now is None or now["status"] in TERMINAL:
        report.notes.append("lifecycle: the job ended before it could be cancelled; cancel check skipped")
        return
    r = target.call("cancel_auto_label_job", LIFECYCLE, "DELETE", f"/auto-label-jobs/{segment(job['uid'])}/")
    if r is None or r.status_code not in (200, 202, 204):
        if r is not None:
            report.fail("cancel_auto_label_job", LIFECYCLE, f"{where(r)}: cancel answered {r.status_code}")
        return
    _tick(target, sleep, 60.0)
    after = _get(target, job["uid"])
    if after is None:
        return
    _check_counters(target, after)
    if after["status"] != "cancelled":
        report.fail("cancel_auto_label_job", LIFECYCLE, f"a cancelled job is {after['status']!r}")
    if _number(after, "processed_items") < _number(now, "processed_items"):
        report.fail("cancel_auto_label_job", LIFECYCLE,
                    f"cancel lost processed items ({now.get('processed_items')} -> {after.get('processed_items')})")
    again = target.call("cancel_auto_label_job", LIFECYCLE, "DELETE", f"/auto-label-jobs/{segment(job['uid'])}/")
    if again is not None and again.status_code != 409:
        report.fail("cancel_auto_label_job", LIFECYCLE, f"cancelling an ended job answered {again.status_code}, not 409")
