"""The media plane: every image URL the API hands out resolves on the mock to a decodable image of the
item's size, drawn from its hidden ground truth; signed, cached, offline. Plus /healthz and the request log."""

from __future__ import annotations

import io
import json
import logging

import httpx
from PIL import Image

from avala_mock.mock_server.state import STATE
from avala_mock.mock_server.testing import ServeProcess
from avala_mock.simulators import imaging


def _image(url: str) -> tuple[httpx.Response, Image.Image]:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, (url, r.status_code, r.text[:200])
    return r, Image.open(io.BytesIO(r.content))


def test_item_urls_from_the_sdk_resolve_to_images_of_the_item_size(client, mock):
    item = client.datasets.list_items("acme-robotics", "street-scenes", limit=3).items[2]
    assert item.url.startswith(mock.origin + "/_media/") and item.url.endswith(".jpg")
    r, img = _image(item.url)
    assert r.headers["Content-Type"] == "image/jpeg" and img.format == "JPEG"
    assert img.size == (item.metadata["width"], item.metadata["height"])
    assert "max-age" in r.headers["Cache-Control"] and r.headers["ETag"]
    assert int(r.headers["Content-Length"]) == len(r.content)
    again = httpx.get(item.url, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and not again.content
    _, thumb = _image(item.thumbnails[0])
    assert thumb.size[0] == imaging.THUMB_WIDTH
    assert httpx.get(item.url, timeout=30).content == r.content  # same world, same bytes


def test_objects_are_drawn_where_the_ground_truth_puts_them(mock, http):
    """Each object is its label's colour at its box centre, so drafts (which are near the truth) line
    up with what the image shows; outside every box the pixel is background."""
    ds_uid = http.get("datasets/acme-robotics/street-scenes/").json()["uid"]
    item = http.get("datasets/acme-robotics/street-scenes/items/", params={"limit": 1}).json()["results"][0]
    _, img = _image(item["url"])
    world = mock.app[STATE].world  # the hidden truth, read from the in-process server's own world
    d = next(dd for s in world.stores.values() for dd in s.datasets.values() if dd.uid == ds_uid)
    a, b = int(d.gt.offsets[0]), int(d.gt.offsets[1])
    boxes = [(int(d.gt.labels[j]), *map(float, d.gt.boxes[j])) for j in range(a, b)]
    checked = 0
    for i, (label, x, y, w, h) in enumerate(boxes):
        cx, cy = x + w / 2, y + h * 0.7  # below the darker inner panel
        if any(bx <= cx <= bx + bw and by <= cy <= by + bh for _, bx, by, bw, bh in boxes[i + 1:]):
            continue  # drawn over by a later object
        pixel = img.getpixel((int(cx), int(cy)))
        assert sum(abs(p - q) for p, q in zip(pixel, imaging.PALETTE[label % len(imaging.PALETTE)])) < 60, (pixel, label)
        checked += 1
    assert checked >= 1
    corner = img.getpixel((2, 2))
    if not any(bx <= 2 <= bx + bw and by <= 2 <= by + bh for _, bx, by, bw, bh in boxes):
        assert corner[2] > corner[0]  # the sky's blue


def test_unsigned_unknown_and_foreign_media_are_refused(client, mock):
    item = client.datasets.list_items("acme-robotics", "street-scenes", limit=1).items[0]
    assert item.url.endswith("/items/images/000000.jpg")  # the file name and extension stay last
    prefix, sig, rest = item.url.partition("/_media/")[0], item.url.split("/_media/")[1][:32], item.url.split("/_media/")[1][32:]
    forged = httpx.get(f"{prefix}/_media/{'0' * 32}{rest}")
    assert forged.status_code == 403 and "signature" in forged.json()["detail"]
    assert httpx.get(f"{prefix}/_media{rest}").status_code == 404  # no signature at all
    edited = httpx.get(item.url.replace("000000.jpg", "000001.jpg"))  # another item under this one's signature
    assert edited.status_code == 403 and sig


def test_sequence_frames_avatars_and_export_files_resolve(client, mock, http):
    seq = client.datasets.list_sequences("acme-robotics", "drive-logs").items[0]
    detail = http.get(f"datasets/acme-robotics/drive-logs/sequences/{seq.uid}/").json()
    image = detail["frames"][1]["images"][0]
    _, frame = _image(image["image_url"])
    assert frame.size == (image["width"], image["height"])
    _, featured = _image(detail["featured_image"])
    issue = http.get("datasets/acme-robotics/drive-logs/annotation-issues/").json()[0]
    r, avatar = _image(issue["reporter"]["picture"])
    assert r.headers["Content-Type"] == "image/png" and avatar.format == "PNG"
    export = client.exports.create(dataset=http.get("datasets/acme-robotics/street-scenes/").json()["uid"])
    mock.control("POST", "clock/advance", {"seconds": 3600})
    done = client.exports.get(export.uid)
    body = httpx.get(done.download_url, timeout=60).json()
    _, img = _image(body["items"][0]["url"])
    assert img.size == (body["items"][0]["width"], body["items"][0]["height"])


def test_healthz_and_the_control_index(mock):
    h = httpx.get(mock.origin + "/healthz").json()
    assert h["status"] == "ok" and h["organizations"] == 2
    index = mock.http.get("/_mock/").json()
    assert index["dashboard"].endswith("/_mock/ui/") and index["healthz"].endswith("/healthz")


def test_request_log_one_line_per_request_without_keys(mock, http, caplog):
    with caplog.at_level(logging.INFO, logger="avala_mock.requests"):
        http.get("projects/", params={"limit": 2})
        http.get("projects/not-a-uid/")
    lines = [r for r in caplog.records if r.name == "avala_mock.requests"]
    assert [(r.http["method"], r.http["status"], r.http["organization"]) for r in lines[-2:]] == [
        ("GET", 200, "acme-robotics"), ("GET", 404, "acme-robotics")]
    assert lines[-2].getMessage().startswith("GET /api/v1/projects/ 200 ") and "org=acme-robotics" in lines[-2].getMessage()
    assert all(mock.api_key not in r.getMessage() and "limit=" not in r.getMessage() for r in lines)


def test_json_request_log_from_the_cli():
    with ServeProcess("--log-level", "info", "--log-format", "json") as server:
        httpx.get(server.base_url + "/projects/", headers={"X-Avala-Api-Key": server.api_key})
    rows = [json.loads(line) for line in server.output if line.startswith("{")]
    hit = [r for r in rows if r.get("http", {}).get("path") == "/api/v1/projects/"]
    assert hit and hit[0]["http"]["status"] == 200 and hit[0]["http"]["organization"] == "acme-robotics"
    assert hit[0]["level"] == "INFO" and hit[0]["logger"] == "avala_mock.requests"
    assert all("avk_mock" not in json.dumps(r) for r in rows)
