"""Manual dataset uploads (MU1-MU6) and the storage data plane, through the official SDK where it goes
and raw HTTP where it cannot: the SDK only sends bytes to https URLs on allow-listed hosts, so its
upload helpers are driven up to that refusal and the byte flows run over httpx against ``/_storage/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

import avala
import httpx
import pytest
from avala._uploads import validate_presigned_url
from avala.errors import NotFoundError, QuotaExceededError, ValidationError

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from helpers import SECOND_ORG_KEY, avala_cli

GIB = 1024**3
MIB = 1024**2
LIMIT = 10 * GIB


@pytest.fixture(scope="module")
def https_mock():
    """A server whose upload URLs are https on data.avala.ai (``--storage-base-url``), on the instant clock
    so indexing is done at once: the SDK's own checks accept these URLs."""
    config = ServerConfig(time_scale="instant", seed=3, rate_limit=10**9, storage_base_url="https://data.avala.ai")
    with LiveServer(config) as server:
        yield server


class Routed:
    """``httpx`` for the SDK's transfer module, with data.avala.ai routed to the mock's plane (what a DNS
    override or proxy would do); everything else is plain httpx."""

    def __init__(self, origin: str) -> None:
        self.origin, self.sent = origin, []

    def __getattr__(self, name: str):
        return getattr(httpx, name)

    def put(self, url: str, **kwargs):
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname == "data.avala.ai"
        self.sent.append(parts.path)
        return httpx.put(f"{self.origin}/_storage{parts.path}?{parts.query}", **kwargs)


@pytest.fixture(autouse=True)
def _private_state(tmp_path, monkeypatch):
    """The SDK keeps resume checkpoints under ~/.avala; keep them in the test's directory."""
    monkeypatch.setattr("avala.resources.datasets._STATE_DIR", tmp_path / ".avala" / "uploads")


def org_uid(http) -> str:
    return http.get("users/me/").json()["organization_uid"]


def presign(http, name: str, path: str, size: int, **extra):
    return http.post("datasets/manual-upload/file-upload-url/",
                     json={"dataset_name": name, "file_path_in_dataset": path, "content_length": size, **extra})


def presign_v2(http, name: str, path: str, size: int, batch: str, **extra):
    return presign(http, name, path, size, upload_protocol_version=2, dataset_upload_uid=batch, **extra)


def post_form(descriptor: dict, data: bytes, name: str = "f.bin") -> httpx.Response:
    return httpx.post(descriptor["url"], data=descriptor["fields"], files={"file": (name, data, "application/octet-stream")})


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def payload(n: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 64
    return (block * (n // len(block) + 1))[:n]


# -- quota, mimes, 413 -----------------------------------------------------------------------------


def test_quota_and_allowed_mimes_are_populated(client, mock):
    quota = client.datasets.manual_upload_quota()
    assert quota.limit == LIMIT
    assert quota.used > 0  # the seeded batch, personal file and open MULTIPART reservation
    mimes = client.datasets.manual_upload_allowed_mimes()
    assert "image/jpeg" in mimes.mime_types and "video/mp4" in mimes.mime_types
    assert mimes.video_prefix == "video/"


def test_org_quota_counts_settled_bytes_and_open_reservations(client, http, mock):
    org = org_uid(http)
    before = client.datasets.manual_upload_quota(organization_uid=org).used
    assert before >= 20 * MIB  # the seeded open MULTIPART session reserves 20+ MiB
    d = client.datasets.create_manual_upload_url(dataset_name="Q", file_path_in_dataset="a.bin",
                                                 content_length=1000, organization_uid=org)
    assert client.datasets.manual_upload_quota(organization_uid=org).used == before + 1000  # reserved
    assert post_form(d, payload(1000)).status_code == 204
    mock.advance(7200)  # the presign expired, but the bytes landed: settled, still counted
    assert client.datasets.manual_upload_quota(organization_uid=org).used == before + 1000
    d2 = client.datasets.create_manual_upload_url(dataset_name="Q", file_path_in_dataset="b.bin",
                                                  content_length=500, organization_uid=org)
    assert d2["method"] == "POST"
    assert client.datasets.manual_upload_quota(organization_uid=org).used == before + 1500
    mock.advance(3601)  # never uploaded: the reservation lapses
    assert client.datasets.manual_upload_quota(organization_uid=org).used == before + 1000


def test_quota_exceeded_is_413_with_limit_and_used(client, http, mock):
    used = client.datasets.manual_upload_quota().used
    with pytest.raises(QuotaExceededError) as err:
        client.datasets.create_manual_upload_url(dataset_name="Huge", file_path_in_dataset="x.bin",
                                                 content_length=LIMIT - used + 1)
    assert err.value.status_code == 413 and err.value.limit == LIMIT and err.value.used == used
    assert client.datasets.manual_upload_quota().used == used  # nothing reserved by the refusal
    ok = client.datasets.create_manual_upload_url(dataset_name="Huge", file_path_in_dataset="x.bin",
                                                  content_length=LIMIT - used)
    assert ok["method"] == "POST"
    with pytest.raises(QuotaExceededError) as err:  # full now
        client.datasets.create_manual_upload_url(dataset_name="Huge", file_path_in_dataset="y.bin", content_length=1)
    assert err.value.used == LIMIT
    # re-presigning the same file replaces its reservation instead of adding a second one
    again = client.datasets.create_manual_upload_url(dataset_name="Huge", file_path_in_dataset="x.bin",
                                                     content_length=LIMIT - used)
    assert again["fields"]["key"] == ok["fields"]["key"]
    raw = presign(http, "Huge", "z.bin", 5)
    assert raw.status_code == 413 and set(raw.json()) == {"detail", "limit", "used"}


def test_async_client_quota_presign_and_finalize(mock):
    async def run():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as ac:
            quota = await ac.datasets.manual_upload_quota()
            mimes = await ac.datasets.manual_upload_allowed_mimes()
            d = await ac.datasets.create_manual_upload_url(dataset_name="Async Set", file_path_in_dataset="i/1.jpg",
                                                           content_length=3)
            assert post_form(d, b"abc").status_code == 204
            ds = await ac.datasets.create_from_manual_upload(name="Async Set", slug="async-set", data_type="image")
            return quota, mimes, ds

    quota, mimes, ds = asyncio.run(run())
    assert quota.limit == LIMIT and mimes.mime_types
    assert ds.slug == "async-set" and ds.item_count == 1 and ds.data_type == "image"


# -- v1 presigned POST, end to end ------------------------------------------------------------------


def test_v1_post_flow_creates_the_dataset_with_those_items(client, http, mock):
    files = {"img/0001.jpg": payload(2048, 1), "img/0002.jpg": payload(4096, 2), "meta/info.json": b'{"a": 1}'}
    for path, data in files.items():
        d = client.datasets.create_manual_upload_url(dataset_name="Street Run", file_path_in_dataset=path,
                                                     content_length=len(data))
        assert d["method"] == "POST" and d["url"].endswith("/_storage/")
        assert d["fields"]["key"].endswith(f"/Street Run/{path}")
        r = post_form(d, data, os.path.basename(path))
        assert r.status_code == 204 and r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = httpx.get(mock.origin + "/_storage/" + d["fields"]["key"], headers={"X-Avala-Api-Key": mock.api_key})
        assert got.status_code == 200 and got.content == data
    ds = client.datasets.create_from_manual_upload(name="Street Run", slug="street-run", data_type="image",
                                                   metadata={"source": "test"})
    assert ds.uid and ds.name == "Street Run" and ds.status == "creating" and ds.item_count == 3
    assert ds.owner_name == http.get("users/me/").json()["username"]  # a personal upload → a personal dataset
    mock.advance(60)
    assert client.datasets.get(ds.uid).status == "created"
    keys = sorted(item.key for item in client.datasets.list_items(ds.owner_name, ds.slug, limit=10))
    assert keys == sorted(files)
    # the same slug again is a conflict and changes nothing; another slug over the same files works
    conflict = http.post("datasets/manual-upload/", json={"name": "Street Run", "slug": "street-run", "data_type": "image"})
    assert conflict.status_code == 409
    assert client.datasets.create_from_manual_upload(name="Street Run", slug="street-run-2", data_type="image").item_count == 3


def test_v1_only_landed_files_count(client, http, mock):
    landed = client.datasets.create_manual_upload_url(dataset_name="Half", file_path_in_dataset="a.jpg", content_length=3)
    client.datasets.create_manual_upload_url(dataset_name="Half", file_path_in_dataset="b.jpg", content_length=3)
    assert post_form(landed, b"abc").status_code == 204
    ds = client.datasets.create_from_manual_upload(name="Half", slug="half", data_type="image")
    assert ds.item_count == 1
    assert [i.key for i in client.datasets.list_items(ds.owner_name, "half")] == ["a.jpg"]


def test_finalize_with_nothing_uploaded_is_400(client, http, mock):
    with pytest.raises(ValidationError):
        client.datasets.create_from_manual_upload(name="Never Uploaded", slug="never", data_type="image")
    client.datasets.create_manual_upload_url(dataset_name="Presigned Only", file_path_in_dataset="a.jpg", content_length=3)
    r = http.post("datasets/manual-upload/", json={"name": "Presigned Only", "slug": "p-only", "data_type": "image"})
    assert r.status_code == 400 and "Uploaded files for dataset" in r.json()["detail"]
    assert all(d.slug != "p-only" for d in client.datasets.list(limit=100))


def test_sdk_upload_files_stops_at_its_https_host_check(client, http, mock, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"jpeg-bytes")
    before = client.datasets.manual_upload_quota().used
    with pytest.raises(ValueError, match="Upload URL must use HTTPS"):
        client.datasets.upload_files(dataset_name="SDK Set", files=[(str(src / "a.jpg"), "a.jpg")], workers=1)
    # the presign reached the mock (a reservation is open) and its URL is what the SDK refused
    assert client.datasets.manual_upload_quota().used == before + len(b"jpeg-bytes")
    d = client.datasets.create_manual_upload_url(dataset_name="SDK Set", file_path_in_dataset="a.jpg", content_length=10)
    with pytest.raises(ValueError, match="HTTPS"):
        validate_presigned_url(d["url"])
    # v2 (managed session): the SDK refuses the PUT URL the same way
    batch = client.datasets.prepare_manual_upload_batch("SDK Set 2")
    with pytest.raises(ValueError, match="Upload URL must use HTTPS"):
        client.datasets.upload_files(dataset_name="SDK Set 2", files=[(str(src / "a.jpg"), "a.jpg")], workers=1,
                                     dataset_upload_uid=batch)


def test_sdk_create_from_local_runs_end_to_end_when_urls_are_https(https_mock, tmp_path, monkeypatch):
    src = tmp_path / "frames"
    (src / "cam").mkdir(parents=True)
    small = {"cam/0001.jpg": payload(1500, 1), "cam/0002.jpg": payload(2500, 2)}
    for rel, data in small.items():
        (src / rel).write_bytes(data)
    big = payload(9 * MIB + 7, 3)  # over 8 MiB: MULTIPART, two 5 MiB-ish parts
    (src / "clip.mp4").write_bytes(big)
    routed = Routed(https_mock.origin)
    monkeypatch.setattr("avala._managed_upload.httpx", routed)
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")  # the API itself is still plain-http localhost
    with avala.Client(api_key=https_mock.api_key, base_url=https_mock.base_url) as c:
        org = c._transport.request("GET", "/users/me/")["organization_uid"]
        before = c.datasets.manual_upload_quota(organization_uid=org).used
        ds = c.datasets.create_from_local(source=str(src), name="Local Set", slug="local-set", data_type="image",
                                          organization_uid=org, workers=2)
        assert ds.item_count == 3 and ds.owner_name == "acme-robotics"
        assert c.datasets.get(ds.uid).status == "created"  # instant clock: indexed at once
        keys = sorted(i.key for i in c.datasets.list_items(ds.owner_name, ds.slug))
        assert keys == ["cam/0001.jpg", "cam/0002.jpg", "clip.mp4"]
        assert c.datasets.manual_upload_quota(organization_uid=org).used == before + 1500 + 2500 + len(big)
    assert len(routed.sent) == 4  # two PUTs and two parts, all through the SDK's own transfer code
    key = f"__o__=/{org}/Local Set/clip.mp4"
    got = httpx.get(https_mock.origin + "/_storage/" + key, headers={"X-Avala-Api-Key": https_mock.api_key})
    assert got.content == big


def test_cli_datasets_upload_reports_quota_and_the_url_refusal(mock, tmp_path):
    env = {**mock.env(), "HOME": str(tmp_path)}
    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir()
    small.mkdir()
    with open(big / "huge.bin", "wb") as fh:  # sparse: 11 GiB on paper, nothing on disk
        fh.truncate(11 * GIB)
    (small / "a.jpg").write_bytes(b"abc")
    cli = ["datasets", "upload", "--data-type", "image"]
    r = avala_cli(env, *cli, "--source", str(big), "--name", "Big", "--slug", "big")
    assert r.returncode != 0 and "Storage quota exceeded" in r.stderr and "of 10.0 GB already used" in r.stderr
    r = avala_cli(env, *cli, "--source", str(small), "--name", "Small", "--slug", "small")
    assert r.returncode != 0 and "Upload URL must use HTTPS" in r.stderr


# -- v2 managed sessions -----------------------------------------------------------------------------


def test_v2_put_flow_with_412_and_resumable_complete(client, http, mock):
    batch, data = str(uuid.uuid4()), payload(3000, 5)
    d = client.datasets.create_manual_upload_url(dataset_name="V2 Set", file_path_in_dataset="x/1.png",
                                                 content_length=len(data), dataset_upload_uid=batch)
    assert d["method"] == "PUT" and d["complete"] is False and d["headers"]["If-None-Match"] == "*"
    assert str(uuid.UUID(d["upload_uid"])) == d["upload_uid"]
    early = http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/complete/", json={})
    assert early.status_code == 400  # nothing uploaded yet
    r = httpx.put(d["url"], content=data, headers=d["headers"])
    assert r.status_code == 200 and r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert httpx.put(d["url"], content=data, headers=d["headers"]).status_code == 412  # already there
    again = client.datasets.create_manual_upload_url(dataset_name="V2 Set", file_path_in_dataset="x/1.png",
                                                     content_length=len(data), dataset_upload_uid=batch)
    assert again["upload_uid"] == d["upload_uid"] and again["complete"] is False  # not completed yet
    done = http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/complete/")  # no body, as §1.11 allows
    assert done.status_code == 200 and done.json()["complete"] is True and done.json()["size"] == len(data)
    assert http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/complete/", json={}).status_code == 200
    resumed = client.datasets.create_manual_upload_url(dataset_name="V2 Set", file_path_in_dataset="x/1.png",
                                                       content_length=len(data), dataset_upload_uid=batch)
    assert resumed == {"upload_uid": d["upload_uid"], "method": "PUT", "complete": True}
    changed = presign_v2(http, "V2 Set", "x/1.png", len(data) + 1, batch)
    assert changed.status_code == 409
    other_name = presign_v2(http, "Another Name", "y.png", 3, batch)
    assert other_name.status_code == 409
    # a file of another batch under the same name is not part of this batch's dataset
    d2 = client.datasets.create_manual_upload_url(dataset_name="V2 Set", file_path_in_dataset="x/2.png",
                                                  content_length=2, dataset_upload_uid=str(uuid.uuid4()))
    assert httpx.put(d2["url"], content=b"zz", headers=d2["headers"]).status_code == 200
    http.post(f"datasets/manual-upload/uploads/{d2['upload_uid']}/complete/", json={})
    ds = client.datasets.create_from_manual_upload(name="V2 Set", slug="v2-set", data_type="image",
                                                   dataset_upload_uid=batch)
    assert ds.item_count == 1


def test_v2_multipart_parts_resume_and_complete(client, http, mock):
    batch, size = str(uuid.uuid4()), 12 * MIB + 12345
    data = payload(size, 9)
    d = client.datasets.create_manual_upload_url(dataset_name="Videos", file_path_in_dataset="drive.mp4",
                                                 content_length=size, dataset_upload_uid=batch)
    assert d["method"] == "MULTIPART" and d["part_size"] == 5 * MIB and d["part_count"] == 3
    assert d["uploaded_parts"] == []
    uid, ps = d["upload_uid"], d["part_size"]

    def part_url(n: int) -> dict:
        out = client._transport.request("POST", f"/datasets/manual-upload/uploads/{uid}/parts/", json={"part_numbers": [n]})
        assert [p["part_number"] for p in out["parts"]] == [n]
        return out["parts"][0]

    p1 = part_url(1)
    assert httpx.put(p1["url"], content=data[: ps - 1]).status_code == 400  # wrong part size
    assert httpx.put(p1["url"], content=data[:ps]).status_code == 200
    resumed = presign_v2(http, "Videos", "drive.mp4", size, batch).json()
    assert resumed["upload_uid"] == uid and resumed["uploaded_parts"] == [{"part_number": 1, "size": ps}]
    incomplete = http.post(f"datasets/manual-upload/uploads/{uid}/complete/", json={})
    assert incomplete.status_code == 400 and "missing" in incomplete.json()["detail"]
    assert presign_v2(http, "Videos", "drive.mp4", size, batch).json()["complete"] is False  # nothing settled
    assert http.post(f"datasets/manual-upload/uploads/{uid}/parts/", json={"part_numbers": [4]}).status_code == 400
    for n in (2, 3):
        assert httpx.put(part_url(n)["url"], content=data[(n - 1) * ps: n * ps]).status_code == 200
    assert http.post(f"datasets/manual-upload/uploads/{uid}/complete/", json={}).status_code == 200
    assert http.post(f"datasets/manual-upload/uploads/{uid}/parts/", json={"part_numbers": [1]}).status_code == 409
    key = f"__u__=/{http.get('users/me/').json()['uid']}/Videos/drive.mp4"
    got = httpx.get(mock.origin + "/_storage/" + key, headers={"X-Avala-Api-Key": mock.api_key})
    assert got.status_code == 200 and got.content == data and got.headers["ETag"].endswith('-3"')
    ds = client.datasets.create_from_manual_upload(name="Videos", slug="videos", data_type="video", dataset_upload_uid=batch)
    assert ds.item_count == 1 and ds.data_type == "video"


def test_v2_parts_and_complete_errors(client, http, mock):
    assert http.post("datasets/manual-upload/uploads/nope/parts/", json={"part_numbers": [1]}).status_code == 404
    assert http.post("datasets/manual-upload/uploads/nope/complete/", json={}).status_code == 404
    d = presign_v2(http, "Errs", "a.jpg", 10, str(uuid.uuid4())).json()
    assert d["method"] == "PUT"
    assert http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/parts/", json={"part_numbers": [1]}).status_code == 409
    wrong = httpx.put(d["url"], content=b"123", headers=d["headers"])
    assert wrong.status_code == 400  # signed for 10 bytes
    assert http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/complete/", json={}).status_code == 400
    mock.advance(8 * 86400)  # the v2 session lapses
    assert http.post(f"datasets/manual-upload/uploads/{d['upload_uid']}/complete/", json={}).status_code == 409


def test_bad_paths_and_unknown_organization(http, mock):
    for bad in ("../x.jpg", "/abs.jpg", "a//b.jpg", "a\\b.jpg"):
        r = presign(http, "P", bad, 1)
        assert r.status_code == 400 and "file_path_in_dataset" in r.json()["errors"]
    other = str(uuid.uuid4())
    assert presign(http, "P", "a.jpg", 1, organization_uid=other).status_code == 404
    assert http.get("datasets/manual-upload/quota/", params={"organization_uid": other}).status_code == 404
    r = http.post("datasets/manual-upload/", json={"name": "P", "slug": "p", "data_type": "image", "organization_uid": other})
    assert r.status_code == 404
    assert presign(http, "P", "a.jpg", -1).status_code == 400


# -- the data plane --------------------------------------------------------------------------------


def test_plane_refuses_bad_signatures_expired_urls_and_oversize_bodies(client, http, mock):
    d = presign_v2(http, "Plane", "a.bin", 4, str(uuid.uuid4())).json()
    url = d["url"]
    assert httpx.put(tamper(url, **{"X-Avala-Signature": "0" * 64}), content=b"abcd").status_code == 403
    no_sig = urlsplit(url)._replace(query="").geturl()
    assert httpx.put(no_sig, content=b"abcd").status_code == 403
    bigger = tamper(url, **{"X-Avala-Size": "5"})  # a re-signed size needs the secret
    assert httpx.put(bigger, content=b"abcde").status_code == 403
    form = presign(http, "Plane", "b.bin", 4).json()
    forged = dict(form["fields"], key=form["fields"]["key"].replace("b.bin", "c.bin"))
    assert httpx.post(form["url"], data=forged, files={"file": ("b", b"abcd")}).status_code == 403
    assert post_form(form, b"abc").status_code == 400  # the policy says 4 bytes
    mock.advance(3601)  # both URLs are past their expiry on the virtual clock
    assert httpx.put(url, content=b"abcd").status_code == 403
    assert post_form(form, b"abcd").status_code == 403
    r = httpx.put(mock.origin + "/_storage/anything", content=b"\0" * (64 * MIB + 1))
    assert r.status_code == 413
    assert httpx.get(mock.origin + "/_storage/" + form["fields"]["key"]).status_code == 403  # no key, no signature


def test_second_organisation_sees_none_of_it(client, http, mock):
    second = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        second_before = second.datasets.manual_upload_quota().used
        d = client.datasets.create_manual_upload_url(dataset_name="Private", file_path_in_dataset="a.jpg",
                                                     content_length=3, dataset_upload_uid=str(uuid.uuid4()))
        assert httpx.put(d["url"], content=b"abc", headers=d["headers"]).status_code == 200
        assert second.datasets.manual_upload_quota().used == second_before
        with pytest.raises(NotFoundError):
            second._transport.request("POST", f"/datasets/manual-upload/uploads/{d['upload_uid']}/complete/", json={})
        with pytest.raises(NotFoundError):
            second._transport.request("POST", f"/datasets/manual-upload/uploads/{d['upload_uid']}/parts/",
                                      json={"part_numbers": [1]})
        with pytest.raises(ValidationError):  # its own store has nothing uploaded under that name
            second.datasets.create_from_manual_upload(name="Private", slug="private", data_type="image")
        with pytest.raises(NotFoundError):  # the first org's uid is not an organisation of the second key
            second.datasets.manual_upload_quota(organization_uid=org_uid(http))
        key = urlsplit(d["url"]).path[len("/_storage/"):]
        assert httpx.get(mock.origin + "/_storage/" + key, headers={"X-Avala-Api-Key": SECOND_ORG_KEY}).status_code == 404
        assert httpx.get(mock.origin + "/_storage/" + key, headers={"X-Avala-Api-Key": mock.api_key}).content == b"abc"
    finally:
        second.close()
