"""Who may use the control API (``/_mock/...``), which can reset every tenant, load files and read
snapshots: a developer convenience on loopback, a locked door anywhere else (design principle 9).

* With a control token (``--control-token``, or one generated when the server is bound to a
  non-loopback address), every control request must carry it: ``Authorization: Bearer <token>`` or
  ``X-Avala-Mock-Token: <token>`` (the dashboard page and its event stream also take ``?token=``, as a
  browser cannot add a header to a page load or an EventSource; the request log never shows queries).
* Without one (loopback), the ``Host`` header must name this machine (``localhost``, a loopback
  address, the bound host or an ``--allowed-host``), so a web page that rebinds its DNS name to
  127.0.0.1 cannot drive the API from a browser.
* Either way, a control ``POST`` must be ``Content-Type: application/json``: HTML forms cannot send
  that, and a script on another origin cannot without a CORS preflight, which this server never grants.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from aiohttp import web

from avala_mock.mock_server.errors import ApiError

TOKEN_HEADER = "X-Avala-Mock-Token"
QUERY_TOKEN_PATHS = ("/_mock/ui/", "/_mock/dashboard/stream/")  # GETs a browser makes without headers
LOCAL_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def control_token_for(host: str, given: str | None) -> tuple[str | None, bool]:
    """The token the control API requires (None: none, loopback only) and whether it was generated."""
    if given:
        return given, False
    if is_loopback(host):
        return None, False
    return secrets.token_urlsafe(24), True


def check_control(request: web.Request, token: str | None, hosts: frozenset[str]) -> None:
    """Raise the 401/403/415 a control request deserves, or return when it may proceed."""
    if token is not None:
        auth = request.headers.get("Authorization", "")
        sent = auth[7:] if auth.startswith("Bearer ") else request.headers.get(TOKEN_HEADER, "")
        if not sent and request.method == "GET" and request.path.startswith(QUERY_TOKEN_PATHS):
            sent = request.query.get("token", "")  # a browser's page load and EventSource cannot set headers
        if not sent:
            raise ApiError(401, f"The control API needs its token: Authorization: Bearer <token> or {TOKEN_HEADER}.")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise ApiError(403, "Wrong control token.")
    else:
        name = (request.url.host or "").lower()
        if name not in hosts and not is_loopback(name):
            raise ApiError(403, "The control API answers only requests addressed to this machine (Host header); "
                                "use --allowed-host to add a name.")
    if request.method == "POST" and request.content_type != "application/json":
        raise ApiError(415, "Control API requests that change state must be sent as application/json.")
