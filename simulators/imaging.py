"""Synthetic item images drawn from the hidden ground truth, so drafts line up with what an image shows.

Each object of an item is a filled, outlined box of its label's colour exactly where its ground-truth box
is (pixel coordinates of the item's ``width`` x ``height``), over a road-scene gradient with a few seeded
stripes that make each item look different. Same world seed, same bytes. Encoding uses Pillow (JPEG for
photos, PNG for avatars); drawing the background once per size and copying it keeps a full-size render
to a few milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image, ImageDraw

from avala_mock.simulators.world import Dataset

RENDERER_VERSION = "1"  # part of every ETag: a change to the drawing changes the validators
THUMB_WIDTH = 320
JPEG_QUALITY = 80
# Distinct hues for label indexes (colour-blind friendly first, then the rest of the wheel).
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (160, 82, 45), (148, 103, 189), (127, 127, 127), (188, 189, 34), (23, 190, 207)]

_backgrounds: dict[tuple[int, int], Image.Image] = {}
# dataset uid -> (its key list, key -> index); the list itself is kept and compared by identity, so a
# dataset of a later world with the same uid never gets this one's map
_key_indexes: dict[str, tuple[list[str], dict[str, int]]] = {}
_bg_lock = threading.Lock()


def _background(w: int, h: int) -> Image.Image:
    """Sky to road: a vertical gradient, computed once per size."""
    with _bg_lock:
        bg = _backgrounds.get((w, h))
        if bg is None:
            y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
            sky, road = np.array([176, 196, 214], np.float32), np.array([72, 76, 82], np.float32)
            horizon = 0.45
            t = np.clip((y - horizon) * 8 + 0.5, 0, 1)
            rows = (sky * (1 - t) + road * t).astype(np.uint8)
            bg = _backgrounds[(w, h)] = Image.fromarray(np.broadcast_to(rows, (h, w, 3)).copy())
        return bg


def item_index(d: Dataset, key: str) -> int | None:
    """The index of the item stored under ``key`` (None: no such item)."""
    if d.item_keys is None:
        name = key.removeprefix("images/").removesuffix(".jpg")
        if not key.startswith("images/") or not name.isdigit():
            return None
        index = int(name)
    else:
        cached = _key_indexes.get(d.uid)
        if cached is None or cached[0] is not d.item_keys:
            cached = _key_indexes[d.uid] = (d.item_keys, {k: i for i, k in enumerate(d.item_keys)})
        index = cached[1].get(key, -1)
    return index if 0 <= index < len(d.item_uids) else None


def etag(*parts: object) -> str:
    return '"' + hashlib.sha1("/".join(map(str, (RENDERER_VERSION, *parts))).encode()).hexdigest()[:24] + '"'


def render_item(d: Dataset, index: int, world_seed: int, *, thumb: bool = False) -> bytes:
    """The JPEG of item ``index``: full size (the item's metadata width x height) or a thumbnail, drawn
    at its own size rather than shrunk (four times cheaper)."""
    full_w, full_h = d.image_size
    k = THUMB_WIDTH / full_w if thumb else 1.0
    w, h = (THUMB_WIDTH, max(1, round(full_h * k))) if thumb else (full_w, full_h)
    img = _background(w, h).copy()
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng([world_seed, index, len(d.item_uids)])
    for _ in range(3):  # lane stripes: make neighbouring items differ
        x = float(rng.uniform(0.1, 0.9)) * w
        draw.line([(x, h), (w / 2 + (x - w / 2) * 0.2, h * 0.47)], fill=(225, 225, 210), width=max(2, w // 240))
    gt = d.gt
    a, b = (int(gt.offsets[index]), int(gt.offsets[index + 1])) if index + 1 < len(gt.offsets) else (0, 0)
    stroke = max(1, w // 480)
    for j in range(a, b):
        x, y, bw, bh = (float(v) * k for v in gt.boxes[j])
        colour = PALETTE[int(gt.labels[j]) % len(PALETTE)]
        draw.rectangle([x, y, x + bw, y + bh], fill=colour, outline=(20, 20, 20), width=stroke)
        draw.rectangle([x + bw * 0.2, y + bh * 0.15, x + bw * 0.8, y + bh * 0.45], fill=_shade(colour))
    return _jpeg(img)


def render_frame(sequence_key: str, camera: str, frame: int, size: tuple[int, int]) -> bytes:
    """A camera frame of a sequence: the mock's sequences carry no per-frame ground truth, so a road
    scene whose stripes move with the frame number."""
    w, h = size
    img = _background(w, h).copy()
    draw = ImageDraw.Draw(img)
    shift = (frame * 17) % w
    for k in range(4):
        x = (shift + k * w / 4) % w
        draw.line([(x, h), (w / 2 + (x - w / 2) * 0.2, h * 0.47)], fill=(225, 225, 210), width=3)
    draw.text((8, 8), f"{sequence_key} {camera} #{frame}", fill=(20, 20, 20))
    return _jpeg(img)


def render_avatar(username: str, size: int = 64) -> bytes:
    """A PNG identicon: 5 x 5 mirrored cells coloured from the name's hash."""
    digest = hashlib.sha256(username.encode()).digest()
    colour = PALETTE[digest[0] % len(PALETTE)]
    cells = np.array([[digest[1 + r * 3 + min(c, 4 - c)] & 1 for c in range(5)] for r in range(5)], dtype=bool)
    grid = np.where(cells[..., None], np.array(colour, np.uint8), np.array([240, 240, 240], np.uint8))
    img = Image.fromarray(grid.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _shade(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = colour
    return (int(r * 0.6), int(g * 0.6), int(b * 0.6))


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class RenderCache:
    """Rendered bytes, least recently used dropped first once ``max_bytes`` is held."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.held -= len(old) if old is not None else 0
            self._items[key] = data
            self.held += len(data)
            while self.held > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.held -= len(dropped)
