"""The media plane: how fast item images are drawn and served.

    python bench/media.py [--items 400]

1. Rendering on one core (one thread, in process): full-size item images (the default world's 1280 x 720)
   and thumbnails, images/s and p50/p99 ms; baseline in the same run: JPEG-encoding the bare background of
   the same size (Pillow's floor: no drawing at all), so the ratio is what the drawing costs.
2. Over HTTP against ``avala-mock serve``: item URLs as the API hands them out, fetched one after another
   (cold: each rendered on demand) and again (warm: from the bounded cache), images/s and p99 latency.
"""

from __future__ import annotations

import argparse
import io
import time

import httpx
import numpy as np
from _common import HEADERS, mock_server

from avala_mock.fixtures.world import build_world
from avala_mock.simulators import imaging


def _stats(seconds: list[float]) -> tuple[float, float, float]:
    ms = np.array(seconds) * 1000.0
    return 1000.0 / ms.mean(), float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def render_on_one_core(n: int) -> None:
    world = build_world(seed=0)
    store = next(s for s in world.stores.values() if s.org.slug == "acme-robotics")
    d = next(x for x in store.datasets.values() if x.slug == "street-scenes")
    imaging.render_item(d, 0, 0)  # the background is drawn once per size
    for label, thumb in (("full size", False), ("thumbnail", True)):
        times = []
        for i in range(n):
            t = time.perf_counter()
            imaging.render_item(d, i, world.seed, thumb=thumb)
            times.append(time.perf_counter() - t)
        rate, p50, p99 = _stats(times)
        print(f"render {label} {d.image_size if not thumb else imaging.THUMB_WIDTH}: {rate:,.0f} images/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        if not thumb:
            ours = rate
    bg = imaging._background(*d.image_size)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = io.BytesIO()
        bg.save(out, "JPEG", quality=imaging.JPEG_QUALITY)
        times.append(time.perf_counter() - t)
    base, _, _ = _stats(times)
    print(f"baseline (JPEG of the bare background, same size): {base:,.0f} images/s; ours/baseline {ours / base:.2f}x")


def over_http(n: int) -> None:
    with mock_server() as (_proc, base_url, _ready):
        with httpx.Client(headers=HEADERS, timeout=60) as c:
            urls, cursor = [], f"{base_url}/datasets/acme-robotics/street-scenes/items/?limit=100"
            while cursor and len(urls) < n:
                page = c.get(cursor).json()
                urls += [i["url"] for i in page["results"]]
                cursor = page["next"]
            urls = urls[:n]
            for label in ("cold (rendered on demand)", "warm (from the cache)"):
                times, size = [], 0
                for url in urls:
                    t = time.perf_counter()
                    r = c.get(url)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200
                    size += len(r.content)
                rate, p50, p99 = _stats(times)
                print(f"HTTP {label}: {rate:,.0f} images/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, {size / len(urls) / 1024:.0f} KiB each")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=400)
    args = ap.parse_args()
    render_on_one_core(args.items)
    over_http(args.items)


if __name__ == "__main__":
    main()
