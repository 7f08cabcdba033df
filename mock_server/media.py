"""The media plane under ``/_media/``: the images item URLs, thumbnails, sequence frames and avatars
point at (``simulators/media.py`` builds the signed URLs, ``simulators/imaging.py`` draws the bytes).

Rendered on demand, in a worker thread so the event loop keeps serving, and kept in a bounded LRU cache.
A URL whose signature does not match is 403; an unknown dataset, item or frame 404. Answers carry an
``ETag`` (If-None-Match answers 304 without rendering) and ``Cache-Control``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

from aiohttp import web

from avala_mock.mock_server.context import Handler
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.state import MockState
from avala_mock.simulators import imaging, media
from avala_mock.simulators.world import Dataset, World

CACHE_CONTROL = "private, max-age=86400"


def add_routes(app: web.Application, state: MockState, wrap: Callable[[Handler], Handler]) -> None:
    cache = imaging.RenderCache()
    for pattern, resolve in (
        (r"/{dataset}/items/{key:.+}", _item),
        (r"/{dataset}/thumbs/{index:\d{6}}.jpg", _thumb),
        (r"/{dataset}/frames/{sequence}/{camera}/{frame:\d{5}}.jpg", _frame),
        (r"/avatars/{username}.png", _avatar),
    ):
        app.router.add_get(media.PREFIX + "/{sig:[0-9a-f]{32}}" + pattern, wrap(_handler(state, cache, resolve)))


def _handler(state: MockState, cache: imaging.RenderCache, resolve: Callable) -> Callable:
    async def serve(request: web.Request) -> web.StreamResponse:
        world = state.world
        rest = request.rel_url.raw_path.removeprefix(media.PREFIX)[1 + 32:]
        if not hmac.compare_digest(request.match_info["sig"], media.signature(world, rest)):
            raise ApiError(403, "This media URL was not handed out by this server's world (its signature does not match).")
        tag, content_type, render = resolve(world, request.match_info)
        headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
        if tag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = cache.get(tag)
        if body is None:
            body = await asyncio.get_running_loop().run_in_executor(None, render)
            cache.put(tag, body)
        return web.Response(body=body, content_type=content_type, headers=headers)

    return serve


def _dataset(world: World, uid: str) -> Dataset:
    for store in world.stores.values():
        d = store.datasets.get(uid)
        if d is not None:
            return d
    raise ApiError(404, "No such media.")


def _item(world: World, m: dict[str, str]) -> tuple[str, str, Callable[[], bytes]]:
    d = _dataset(world, m["dataset"])
    index = imaging.item_index(d, m["key"])
    if index is None:
        raise ApiError(404, "No such item image.")
    if not m["key"].lower().endswith((".jpg", ".jpeg", ".png")):
        raise ApiError(404, "This item is not an image; its bytes are where it was uploaded.")
    return (imaging.etag("item", d.uid, index, world.seed, *d.image_size), "image/jpeg",
            lambda: imaging.render_item(d, index, world.seed))


def _thumb(world: World, m: dict[str, str]) -> tuple[str, str, Callable[[], bytes]]:
    d = _dataset(world, m["dataset"])
    index = int(m["index"])
    if index >= len(d.item_uids):
        raise ApiError(404, "No such item thumbnail.")
    return (imaging.etag("thumb", d.uid, index, world.seed, *d.image_size), "image/jpeg",
            lambda: imaging.render_item(d, index, world.seed, thumb=True))


def _frame(world: World, m: dict[str, str]) -> tuple[str, str, Callable[[], bytes]]:
    d = _dataset(world, m["dataset"])
    seq = next((s for s in d.sequences if s.key == m["sequence"]), None)
    frame = int(m["frame"])
    cameras = {c["camera_id"]: (int(c["width"]), int(c["height"])) for c in seq.camera_calibration} if seq is not None else {}
    if seq is None or frame >= len(seq.frames) or m["camera"] not in cameras:
        raise ApiError(404, "No such sequence frame.")
    size = cameras[m["camera"]]  # the calibrated image size, so projections land where they should
    return (imaging.etag("frame", d.uid, seq.key, m["camera"], frame), "image/jpeg",
            lambda: imaging.render_frame(seq.key, m["camera"], frame, size))


def _avatar(world: World, m: dict[str, str]) -> tuple[str, str, Callable[[], bytes]]:
    return imaging.etag("avatar", m["username"]), "image/png", lambda: imaging.render_avatar(m["username"])
