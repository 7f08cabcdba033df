"""Where item images live: URLs on the mock's own media plane (``/_media/...``), signed per world.

Avala hands out signed CDN URLs for item media; the mock hands out URLs on itself, so a pipeline that
downloads images (to train, to display, to check drafts) works offline. The URL carries, as its first
path segment, an HMAC of the rest of its path, so only URLs this world handed out resolve (a guessed or
edited one is 403) and the URL still ends in the file's name and extension. The key follows from the
seed, like the uids, so the same seed gives byte-identical answers; the images are synthetic, so the
signature proves where a URL came from, it does not guard a secret.

The origin (scheme, host and port the client used) is not known to the backend: the HTTP layer sets it
per request (:data:`ORIGIN`); every URL is made while answering a request, so the fallback is only for
direct backend use (tests, scripts).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from contextvars import ContextVar
from urllib.parse import quote

from avala_mock.simulators.world import Dataset, World

PREFIX = "/_media"
# A callable, not the string: most answers hold no media URL, so the origin is worked out only when used.
ORIGIN: ContextVar[Callable[[], str | None] | None] = ContextVar("avala_mock_media_origin", default=None)
FALLBACK_ORIGIN = "http://127.0.0.1:8000"


def origin(world: World) -> str:
    found = ORIGIN.get()
    return (found() if found is not None else None) or FALLBACK_ORIGIN


def signature(world: World, rest: str) -> str:
    """The signature of ``rest``, the quoted path after ``/_media/<signature>``."""
    return hmac.new(_key(world.seed), rest.encode(), hashlib.sha256).hexdigest()[:32]


@functools.lru_cache(maxsize=16)
def _key(seed: int) -> bytes:
    return hashlib.sha256(f"avala-mock-media:{seed}".encode()).digest()


def signed_url(world: World, rest: str) -> str:
    """``rest`` (quoted, starting with ``/``) as an absolute, signed media URL."""
    return f"{origin(world)}{PREFIX}/{signature(world, rest)}{rest}"


def item_url(world: World, d: Dataset, key: str) -> str:
    return signed_url(world, f"/{d.uid}/items/{quote(key)}")


def thumbnail_url(world: World, d: Dataset, index: int) -> str:
    return signed_url(world, f"/{d.uid}/thumbs/{index:06d}.jpg")


def frame_url(world: World, d: Dataset, sequence_key: str, camera: str, frame: int) -> str:
    return signed_url(world, f"/{d.uid}/frames/{quote(sequence_key)}/{quote(camera)}/{frame:05d}.jpg")


def avatar_url(world: World, username: str) -> str:
    return signed_url(world, f"/avatars/{quote(username)}.png")
