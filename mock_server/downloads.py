"""The mock's download plane: ``GET /_downloads/exports/{uid}.json?token=...``, the file an exported
export's ``download_url`` points at (as a presigned storage URL would: no API key, the token is the
grant). 404 for an unknown export, a wrong token, or an export that has not finished."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web

from avala_mock.mock_server.context import Handler
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.state import MockState
from avala_mock.simulators import exports


def add_routes(app: web.Application, state: MockState, wrap: Callable[[Handler], Handler]) -> None:
    async def download_export(request: web.Request) -> web.Response:
        world = state.world
        now = world.clock.now()
        uid = request.match_info["uid"]
        found = exports.find_for_download(list(world.stores.values()), uid, request.query.get("token"), now)
        if found is None:
            raise ApiError(404, f"No export file {uid}.json (unknown, not exported yet, or a wrong token).")
        store, rec = found
        body = orjson.dumps(exports.content(state.world, store, rec, now))
        return web.Response(body=body, content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="export-{uid}.json"'})

    app.router.add_get("/_downloads/exports/{uid}.json", wrap(download_export))
