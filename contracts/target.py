"""The server under test, as our own checks reach it: plain HTTP to any base URL, where every answer —
or the lack of one — becomes evidence in the report instead of an exception that stops the run.

``preflight`` runs first (a few seconds at most): a target that does not answer, does not accept the
key or is not an Avala API is one clear message and exit code 2, not minutes of failing cases.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from avala_mock.contracts.report import Report
from avala_mock.mock_server.context import API_KEY_HEADER

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
PREFLIGHT_TIMEOUT_S = 5.0
BODY_SHOWN = 160  # characters of a response body quoted in a failure line


class TargetProblem(Exception):
    """The target cannot be checked at all (unreachable, key refused, not an Avala API, stopped answering): exit code 2."""


class Silence:
    """Requests in a row that got no answer (timed out, refused, reset). Past ``LIMIT`` of them over at least two
    operations the target is taken to have stopped answering: the run ends with exit code 2 instead of waiting
    the request timeout out on each of thousands of cases. One slow operation alone does not trip it."""

    LIMIT = 6

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.count = 0
        self.operations: set[str] = set()
        self.last = ""

    def answered(self) -> None:
        self.count = 0
        self.operations.clear()

    def unanswered(self, operation: str, reason: str) -> bool:
        """Count one; True when the target is taken to have stopped answering."""
        self.count += 1
        self.operations.add(operation)
        self.last = reason
        return self.gone

    @property
    def gone(self) -> bool:
        return self.count >= self.LIMIT and len(self.operations) >= 2

    def problem(self) -> TargetProblem:
        return TargetProblem(f"{self.base_url} stopped answering: {self.count} requests in a row over "
                             f"{len(self.operations)} operations got no answer (last: {self.last[:160]})")


def preflight(base_url: str, api_key: str, timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """One authenticated GET of the cheapest endpoint; raise ``TargetProblem`` with the reason."""
    url = base_url.rstrip("/") + "/users/me/"
    try:
        r = httpx.get(url, headers={API_KEY_HEADER: api_key}, timeout=timeout)
    except httpx.TimeoutException:
        raise TargetProblem(f"{base_url} did not answer within {timeout:g} s (GET /users/me/)") from None
    except httpx.HTTPError as exc:
        raise TargetProblem(f"cannot reach {base_url}: {_reason(exc)}") from None
    if r.status_code in (401, 403):
        raise TargetProblem(f"{base_url} does not accept the API key (GET /users/me/ answered {r.status_code}); "
                            "check --api-key / AVALA_API_KEY")
    if r.status_code == 404:
        raise TargetProblem(f"no Avala API at {base_url}: GET /users/me/ answered 404 (does the URL end in /api/v1?)")
    if r.status_code >= 400:
        raise TargetProblem(f"{base_url} answered {r.status_code} to GET /users/me/: {short(r.text)}")
    try:
        r.json()
    except ValueError:
        raise TargetProblem(f"{base_url} is not an Avala API: GET /users/me/ did not answer JSON ({short(r.text)})") from None


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(cause or exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def segment(uid: str) -> str:
    """A uid the server handed out, as one path segment: a foreign server's ids may hold '/', '?' or '\\'."""
    return quote(uid, safe="")


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_SHOWN else text[:BODY_SHOWN] + "…"


def where(r: httpx.Response) -> str:
    return f"{r.request.method} {r.request.url.raw_path.decode()[:120]} -> {r.status_code}"


class Target:
    """HTTP to the server under test. ``call`` checks headers and error shape on every answer and
    reports a missing answer as a failure of the check that asked (it returns None then)."""

    def __init__(self, base_url: str, api_key: str, report: Report, timeout: float = 30.0, on_response: Any = None,
                 silence: Silence | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = self.base_url.rsplit("/api/", 1)[0]
        self.report = report
        self.api_key = api_key
        self.http = httpx.Client(timeout=timeout)
        self.on_response = on_response  # e.g. the cleanup's note of created objects
        self.silence = silence or Silence(self.base_url)
        self.manual = self._detect_manual_clock()

    def close(self) -> None:
        self.http.close()

    def _detect_manual_clock(self) -> bool:
        try:
            r = self.http.get(f"{self.origin}/_mock/clock/", timeout=5)
            return r.status_code == 200 and r.json().get("mode") == "manual"
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def advance(self, seconds: float) -> None:
        try:
            self.http.post(f"{self.origin}/_mock/clock/advance/", json={"seconds": seconds}).raise_for_status()
        except httpx.HTTPError:
            self.manual = False  # the clock went away: wait instead

    def within(self, url: str) -> bool:
        """Whether ``url`` is under the base URL (links a server hands out must stay on it)."""
        target, base = urlsplit(url), urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc) and target.path.startswith(base.path)

    def call(self, op_id: str, check: str, method: str, url: str, *, key: bool = True, **kwargs: Any) -> httpx.Response | None:
        full = url if url.startswith("http") else self.base_url + url
        headers = {API_KEY_HEADER: self.api_key} if key else {}
        self.report.add_cases(op_id)
        try:
            response = self.http.request(method, full, headers=headers, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # no answer, or an id no URL can carry
            self.report.fail(op_id, check, f"{method} {urlsplit(full).path[:120]}: no answer ({_reason(exc)})")
            no_answer = isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))
            if no_answer and self.silence.unanswered(op_id, _reason(exc)):
                raise self.silence.problem() from None
            return None
        self.silence.answered()
        if self.on_response is not None:
            self.on_response(method, full, response)
        check_rate_headers(self.report, op_id, response)
        check_error_shape(self.report, op_id, response)
        return response

    def json(self, response: httpx.Response, op_id: str, check: str) -> Any:
        """The answer's JSON, or None after reporting that it is not JSON."""
        try:
            return response.json()
        except ValueError:
            self.report.fail(op_id, check, f"{where(response)}: answer is not JSON: {short(response.text)}")
            return None


def check_rate_headers(report: Report, op_id: str, r: httpx.Response) -> None:
    missing = [h for h in RATE_HEADERS if h not in r.headers]
    if missing:
        report.fail(op_id, "rate_limit_headers", f"{where(r)}: missing {', '.join(missing)}")
        return
    try:
        limit, remaining, reset = (int(r.headers[h]) for h in RATE_HEADERS)
    except ValueError:
        report.fail(op_id, "rate_limit_headers", f"{where(r)}: non-integer X-RateLimit-* values")
        return
    if not (0 <= remaining <= limit) or reset < 0 or limit <= 0:
        report.fail(op_id, "rate_limit_headers", f"{where(r)}: incoherent limit={limit} remaining={remaining} reset={reset}")
    if r.status_code == 429 and "Retry-After" not in r.headers:
        report.fail(op_id, "rate_limit_headers", f"{where(r)}: 429 without Retry-After")


def check_error_shape(report: Report, op_id: str, r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
    except ValueError:
        report.fail(op_id, "error_body_shape", f"{where(r)}: error body is not JSON: {short(r.text)}")
        return
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"]:
        report.fail(op_id, "error_body_shape", f'{where(r)}: error body lacks a string "detail": {short(r.text)}')
