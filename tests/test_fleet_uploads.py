"""Fleet recording uploads: the default protocol (FU1-FU5, 0.10.0's strict contract) and managed MCAP
uploads (MF1-MF6), through the official SDK and raw HTTP against the mock's data plane.

The SDK sends bytes only to https URLs on allow-listed hosts; against the plain-http session server it
stops at that check. A second server (instant clock, https ``--storage-base-url``) lets the SDK's own
uploaders run end to end, with the storage host routed to the mock's plane as a DNS override would.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from urllib.parse import parse_qsl, urlsplit

import avala
import httpx
import pytest
from avala._fleet_uploads import SourceFile
from avala._uploads import validate_presigned_url
from avala.errors import AvalaError, NotFoundError, UploadStateError, ValidationError
from avala.resources.fleet import _managed_consumer
from avala.resources.fleet._managed_protocol import validate_grant
from avala.resources.fleet._upload_guard import _grants
from avala.types.fleet_managed_upload import ManagedFleetUploadStatus

from avala_mock.mock_server.state import ServerConfig
from avala_mock.mock_server.testing import LiveServer
from helpers import SECOND_ORG_KEY, avala_cli

NO_SESSION = {"detail": "No upload session found for this recording."}
P = "fleet-managed-mcap-v1"
S3_HOST = "avala-mock.s3.us-east-1.amazonaws.com"


@pytest.fixture(autouse=True)
def _private_state(tmp_path, monkeypatch):
    monkeypatch.setattr("avala.resources.fleet.uploads._STATE_DIR", tmp_path / ".avala" / "uploads")


@pytest.fixture(scope="module")
def https_mock():
    config = ServerConfig(time_scale="instant", seed=5, rate_limit=10**9, storage_base_url=f"https://{S3_HOST}")
    with LiveServer(config) as server:
        yield server


def free_recording(client, status: str = "uploading") -> str:
    """A seeded recording without an upload session (the seed leaves the one awaiting its upload free)."""
    for rec in client.fleet.recordings.list(limit=50):
        if rec.status == status:
            try:
                client.fleet.uploads.get_upload_status(rec.uid)
            except NotFoundError as exc:
                if exc.body == NO_SESSION:
                    return rec.uid
    raise LookupError(status)


def source(tmp_path, files: dict[str, bytes], name: str = "src"):
    root = tmp_path / name
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def put_all(urls, files: dict[str, bytes]) -> list[dict]:
    out = []
    for entry in urls.urls:
        r = httpx.put(entry.put_url, content=files[entry.path], headers=entry.headers)
        assert r.status_code == 200
        out.append({"path": entry.path, "etag": r.headers["ETag"].strip('"'), "size_bytes": len(files[entry.path])})
    return out


# -- default protocol -----------------------------------------------------------------------------------


def test_default_protocol_full_flow_over_raw_bytes(client, http, mock):
    rec = free_recording(client)
    with pytest.raises(NotFoundError) as err:
        client.fleet.uploads.get_upload_status(rec)
    assert err.value.body == NO_SESSION
    files = {"bags/a.mcap": b"A" * 4000, "meta/info.yaml": b"robot: arm-1\n", "b.bin": os.urandom(777)}
    session = client.fleet.uploads.init_upload(rec, [{"path": p, "size_bytes": len(b)} for p, b in files.items()])
    assert session.status == "initiated" and session.total_files == 3 and session.total_bytes == 4000 + 13 + 777
    assert session.s3_prefix.startswith("fleet/") and session.s3_prefix.endswith(f"/{rec}/")
    status = client.fleet.uploads.get_upload_status(rec)
    assert status.session_uid == session.uid and sorted(status.pending_paths) == sorted(files)
    urls = client.fleet.uploads.get_upload_urls(rec, session.uid, list(files))
    assert [u.path for u in urls.urls] == list(files)
    assert all(u.s3_key == session.s3_prefix + u.path for u in urls.urls)
    assert all(u.headers == {"Content-Type": "application/octet-stream"} for u in urls.urls)
    confirmed = put_all(urls, files)
    first = client.fleet.uploads.confirm_upload(rec, session.uid, confirmed[:1])
    assert first["session_uid"] == session.uid and first["confirmed_files"] == 1 and first["total_files"] == 3
    assert first["confirmed_bytes"] == len(files[confirmed[0]["path"]])
    status = client.fleet.uploads.get_upload_status(rec)
    assert status.status == "uploading" and len(status.pending_paths) == 2
    with pytest.raises(AvalaError) as err:  # two files still pending
        client.fleet.uploads.finalize_upload(rec, session.uid)
    assert err.value.status_code == 409
    rest = client.fleet.uploads.confirm_upload(rec, session.uid, confirmed)  # idempotent for the first one
    assert rest["confirmed_files"] == 3 and rest["confirmed_bytes"] == session.total_bytes and rest["confirmed"] == 2
    done = client.fleet.uploads.finalize_upload(rec, session.uid)
    assert isinstance(done["detail"], str) and done["session_uid"] == session.uid
    status = client.fleet.uploads.get_upload_status(rec)
    assert status.status == "completing" and status.pending_paths == [] and status.confirmed_files == 3
    assert client.fleet.recordings.get(rec).status == "processing"
    assert client.fleet.uploads.finalize_upload(rec, session.uid)["status"] == "completing"  # idempotent
    mock.advance(5)
    assert client.fleet.uploads.get_upload_status(rec).status == "completed"
    mock.advance(60)
    recording = client.fleet.recordings.get(rec)
    assert recording.status == "ready" and recording.size_bytes == session.total_bytes
    # the bytes are on the plane under s3_key
    got = httpx.get(f"{mock.origin}/_storage/{session.s3_prefix}bags/a.mcap", headers={"X-Avala-Api-Key": mock.api_key})
    assert got.content == files["bags/a.mcap"]
    # a finished session is reported, and a new one may be opened
    assert client.fleet.uploads.init_upload(rec, [{"path": "again.bin", "size_bytes": 1}]).status == "initiated"


def test_confirm_checks_the_stored_object_and_is_all_or_nothing(client, http, mock):
    rec = free_recording(client)
    files = {"a.bin": b"a" * 100, "b.bin": b"b" * 200}
    s = client.fleet.uploads.init_upload(rec, [{"path": p, "size_bytes": len(b)} for p, b in files.items()])
    urls = client.fleet.uploads.get_upload_urls(rec, s.uid, ["a.bin", "b.bin"])
    a_url = next(u for u in urls.urls if u.path == "a.bin")
    good = put_all(type(urls)(urls=[a_url]), files)[0]

    def confirm(entries):
        return http.post(f"fleet/recordings/{rec}/upload/confirm/", json={"session_uid": s.uid, "files": entries})

    not_uploaded = {"path": "b.bin", "etag": good["etag"], "size_bytes": 200}
    cases = [
        [good, not_uploaded],
        [dict(good, etag="0" * 32)],
        [dict(good, size_bytes=99)],
        [{"path": "c.bin", "etag": good["etag"], "size_bytes": 1}],
    ]
    for entries in cases:
        r = confirm(entries)
        assert r.status_code == 400, entries
        assert client.fleet.uploads.get_upload_status(rec).confirmed_files == 0  # nothing half-written
    assert client.fleet.uploads.get_upload_status(rec).status == "initiated"
    wrong_size = httpx.put(next(u for u in urls.urls if u.path == "b.bin").put_url, content=b"b" * 10)
    assert wrong_size.status_code == 400  # the plane refuses a body that is not the signed size
    assert confirm([dict(good, etag=f'"{good["etag"]}"')]).json()["confirmed_files"] == 1  # quotes tolerated


def test_init_urls_and_finalize_errors(client, http, mock):
    rec = free_recording(client)
    assert http.post("fleet/recordings/no-such-recording/upload/init/", json={"files": [{"path": "a", "size_bytes": 1}]}).status_code == 404
    assert http.get("fleet/recordings/no-such-recording/upload/status/").json() != NO_SESSION
    dup = http.post(f"fleet/recordings/{rec}/upload/init/", json={"files": [{"path": "a", "size_bytes": 1}] * 2})
    assert dup.status_code == 400
    bad = http.post(f"fleet/recordings/{rec}/upload/init/", json={"files": [{"path": "../a", "size_bytes": 1}]})
    assert bad.status_code == 400
    config = http.post(f"fleet/recordings/{rec}/upload/init/",
                       json={"files": [{"path": "a", "size_bytes": 1}], "storage_config_uid": "nope"})
    assert config.status_code == 400 and "storage_config_uid" in config.json()["errors"]
    with pytest.raises(NotFoundError):  # failed inits left no session behind
        client.fleet.uploads.get_upload_status(rec)
    s = client.fleet.uploads.init_upload(rec, [{"path": "a", "size_bytes": 1}])
    again = http.post(f"fleet/recordings/{rec}/upload/init/", json={"files": [{"path": "b", "size_bytes": 1}]})
    assert again.status_code == 409
    outside = http.post(f"fleet/recordings/{rec}/upload/urls/", json={"session_uid": s.uid, "file_paths": ["zzz"], "ttl_seconds": 60})
    assert outside.status_code == 400
    wrong = http.post(f"fleet/recordings/{rec}/upload/urls/", json={"session_uid": "other", "file_paths": ["a"], "ttl_seconds": 60})
    assert wrong.status_code == 404
    url = client.fleet.uploads.get_upload_urls(rec, s.uid, ["a"], ttl_seconds=60).urls[0].put_url
    mock.advance(61)
    assert httpx.put(url, content=b"x").status_code == 403  # the URL expired on the virtual clock
    mock.advance(24 * 3600)  # idle for a day: abandoned
    assert client.fleet.uploads.get_upload_status(rec).status == "abandoned"
    assert http.post(f"fleet/recordings/{rec}/upload/urls/", json={"session_uid": s.uid, "file_paths": ["a"], "ttl_seconds": 60}).status_code == 409
    assert http.post(f"fleet/recordings/{rec}/upload/finalize/", json={"session_uid": s.uid}).status_code == 409
    assert client.fleet.uploads.init_upload(rec, [{"path": "a", "size_bytes": 1}]).uid != s.uid


def test_pending_paths_are_capped_at_1000(client, mock):
    rec = free_recording(client)
    files = [{"path": f"f/{i:05d}.bin", "size_bytes": i} for i in range(1200)]
    s = client.fleet.uploads.init_upload(rec, files)
    status = client.fleet.uploads.get_upload_status(rec)
    assert len(status.pending_paths) == 1000 and status.total_files == 1200
    assert status.total_bytes == s.total_bytes == sum(range(1200))


def test_sdk_upload_recording_stops_at_its_host_check(client, http, mock, tmp_path):
    rec = free_recording(client)
    src = source(tmp_path, {"a.mcap": b"x" * 100})
    with pytest.raises(UploadStateError):
        client.fleet.uploads.upload_recording(rec, src)
    status = client.fleet.uploads.get_upload_status(rec)  # the SDK got as far as a session...
    assert status.status == "initiated" and status.pending_paths == ["a.mcap"] and status.total_bytes == 100
    urls = client.fleet.uploads.get_upload_urls(rec, status.session_uid, ["a.mcap"])
    with pytest.raises(ValueError, match="Upload URL must use HTTPS"):  # ...and refused our http put_url
        validate_presigned_url(urls.urls[0].put_url)
    inventory = client.fleet.uploads.collect_files(src)
    with pytest.raises(ValueError, match="HTTPS"):
        _grants(urls, list(inventory.files), urls.urls[0].s3_key[: -len("a.mcap")])


def test_cli_upload_refuses_http_and_dry_run_lists(mock, client, tmp_path):
    rec = free_recording(client)
    src = source(tmp_path, {"a.mcap": b"x" * 10, "b/c.mcap": b"y" * 20})
    env = {**mock.env(), "HOME": str(tmp_path)}
    cli = ["fleet", "recordings", "upload"]
    dry = avala_cli(env, *cli, "--recording", rec, "--source", str(src), "--dry-run")
    assert dry.returncode == 0 and "a.mcap" in dry.stderr and "b/c.mcap" in dry.stderr
    run = avala_cli(env, *cli, "--recording", rec, "--source", str(src))
    assert run.returncode != 0 and "Fleet upload evidence unavailable" in run.stderr
    assert client.fleet.uploads.get_upload_status(rec).total_files == 2


def test_sdk_upload_recording_end_to_end_with_https_urls(https_mock, tmp_path, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    routed = []

    class Routed:  # httpx for the SDK's fleet consumer, with the S3 host routed to the plane
        def __getattr__(self, name):
            return getattr(httpx, name)

        def put(self, url, **kwargs):
            parts = urlsplit(url)
            assert parts.hostname == S3_HOST
            routed.append(parts.path)
            return httpx.put(f"{https_mock.origin}/_storage{parts.path}?{parts.query}", **kwargs)

    monkeypatch.setattr("avala.resources.fleet._upload_guard.httpx", Routed())
    files = {"bags/run_000.mcap": os.urandom(3000), "bags/run_001.mcap": os.urandom(5000), "calib.yaml": b"fx: 1\n"}
    src = source(tmp_path, files)
    with avala.Client(api_key=https_mock.api_key, base_url=https_mock.base_url) as c:
        rec = free_recording(c)
        progress = []
        session = c.fleet.uploads.upload_recording(rec, src, max_workers=2, on_progress=progress.append)
        assert session.status in ("completing", "completed") and session.total_files == 3
        assert session.confirmed_bytes == session.total_bytes == 8006
        assert progress[-1].uploaded_files == 3 and progress[-1].failed_files == 0
        assert c.fleet.uploads.get_upload_status(rec).status == "completed"  # instant clock
        assert c.fleet.recordings.get(rec).status == "ready"
    assert len(routed) == 3 and all(path.startswith("/fleet/") for path in routed)


# -- managed MCAP uploads ---------------------------------------------------------------------------


def admit(http, rec: str, session: str, files: dict[str, bytes]):
    return http.post(f"fleet/recordings/{rec}/managed-upload/admit/", json={"protocol": P, "session_uid": session, "files": [
        {"path": p, "size_bytes": len(b), "content_sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()]})


def r2_put(mock, grant: dict, data: bytes) -> httpx.Response:
    """PUT a part to the plane's R2 path (httpx sets Content-Length from the body)."""
    return httpx.put(grant["url"].replace("https://", f"{mock.origin}/_storage/r2/", 1), content=data)


def managed_status(http, rec: str, session: str) -> dict:
    return http.get(f"fleet/recordings/{rec}/managed-upload/status/", params={"protocol": P, "session_uid": session}).json()


def test_managed_flow_over_raw_http_publishes_a_dataset(client, http, mock):
    rec, session = free_recording(client, "ready"), str(uuid.uuid4())
    data = os.urandom(20_000)
    admitted = admit(http, rec, session, {"logs/run.mcap": data})
    assert admitted.status_code == 200
    status = ManagedFleetUploadStatus.model_validate(admitted.json())  # the SDK's exact, strict model
    assert status.status == "initiated" and status.total_bytes == 20_000 and status.finalization is None
    assert admit(http, rec, session, {"logs/run.mcap": data}).json() == admitted.json()  # idempotent
    assert admit(http, rec, session, {"logs/other.mcap": data}).status_code == 409
    assert admit(http, rec, str(uuid.uuid4()), {"x.mcap": data}).status_code == 409  # one open session
    file_uid = status.files[0].file_uid
    body = {"protocol": P, "session_uid": session, "file_uid": file_uid}
    init = http.post(f"fleet/recordings/{rec}/managed-upload/multipart/init/", json=body).json()
    assert init["number"] == 1 and init["state"] == "active" and init["part_count"] == 1 and init["part_size"] == 64 * 1024**2
    assert http.post(f"fleet/recordings/{rec}/managed-upload/multipart/init/", json=body).status_code == 409
    gen = {**body, "generation_uid": init["generation_uid"]}
    progress_q = {k: v for k, v in gen.items()}
    assert http.get(f"fleet/recordings/{rec}/managed-upload/multipart/progress/", params=progress_q).json()["parts"] == []
    early = http.post(f"fleet/recordings/{rec}/managed-upload/finalize/",
                      json={"protocol": P, "session_uid": session, "files": [{"file_uid": file_uid, "generation_uid": init["generation_uid"]}]})
    assert early.status_code == 409  # the part is not stored yet
    assert http.post(f"fleet/recordings/{rec}/managed-upload/multipart/parts/", json={**gen, "numbers": [2]}).status_code == 400
    grant = http.post(f"fleet/recordings/{rec}/managed-upload/multipart/parts/", json={**gen, "numbers": [1]}).json()["parts"][0]
    assert grant["headers"] == {"Content-Length": "20000"} and grant["offset"] == 0 and grant["size_bytes"] == 20_000
    url = urlsplit(grant["url"])
    assert url.scheme == "https" and url.hostname.endswith(".r2.cloudflarestorage.com")
    assert f"/__o__%3D/{http.get('users/me/').json()['organization_uid']}/__cloud__/{session}/logs/run.mcap" in url.path
    query = dict(parse_qsl(url.query))
    forged = grant["url"].replace(query["X-Amz-Signature"], "0" * 64)
    assert r2_put(mock, dict(grant, url=forged), data).status_code == 403
    assert r2_put(mock, grant, data[:-1]).status_code == 400  # not the part's size
    assert r2_put(mock, grant, data).status_code == 200
    parts = http.get(f"fleet/recordings/{rec}/managed-upload/multipart/progress/", params=progress_q).json()
    assert parts["parts"] == [{"part_number": 1, "size": 20_000}] and parts["next_cursor"] is None
    assert managed_status(http, rec, session)["status"] == "uploading"
    fin = http.post(f"fleet/recordings/{rec}/managed-upload/finalize/",
                    json={"protocol": P, "session_uid": session, "files": [{"file_uid": file_uid, "generation_uid": init["generation_uid"]}]})
    assert fin.status_code == 200 and set(fin.json()) == {"protocol", "session_uid", "finalization"}
    assert fin.json()["finalization"]["state"] == "pending"
    mock.advance(2.5)
    mid = ManagedFleetUploadStatus.model_validate(managed_status(http, rec, session))
    assert mid.status == "completing" and mid.finalization.state == "running" and mid.finalization.stage == "verify"
    mock.advance(10)
    done = ManagedFleetUploadStatus.model_validate(managed_status(http, rec, session))
    assert done.status == "completed" and done.confirmed_files == 1 and done.files[0].verified
    assert done.finalization.state == "succeeded" and done.finalization.code == "published"
    dataset = client.datasets.get(done.finalization.dataset_uid)
    assert dataset.data_type == "mcap" and dataset.item_count == 1
    assert client.fleet.recordings.get(rec).status in ("processing", "ready")
    again = http.post(f"fleet/recordings/{rec}/managed-upload/finalize/",
                      json={"protocol": P, "session_uid": session, "files": [{"file_uid": file_uid, "generation_uid": init["generation_uid"]}]})
    assert again.json()["finalization"]["uid"] == fin.json()["finalization"]["uid"]  # idempotent


def test_managed_content_mismatch_fails_at_verify(client, http, mock):
    rec, session = free_recording(client, "ready"), str(uuid.uuid4())
    data = b"M" * 5000
    st = admit(http, rec, session, {"a.mcap": data}).json()
    body = {"protocol": P, "session_uid": session, "file_uid": st["files"][0]["file_uid"]}
    gen = {**body, "generation_uid": http.post(f"fleet/recordings/{rec}/managed-upload/multipart/init/", json=body).json()["generation_uid"]}
    grant = http.post(f"fleet/recordings/{rec}/managed-upload/multipart/parts/", json={**gen, "numbers": [1]}).json()["parts"][0]
    assert r2_put(mock, grant, b"N" * 5000).status_code == 200  # right size, wrong bytes
    datasets_before = len(list(client.datasets.list(limit=100)))
    http.post(f"fleet/recordings/{rec}/managed-upload/finalize/", json={
        "protocol": P, "session_uid": session, "files": [{"file_uid": gen["file_uid"], "generation_uid": gen["generation_uid"]}]})
    mock.advance(10)
    final = ManagedFleetUploadStatus.model_validate(managed_status(http, rec, session))
    assert final.finalization.state == "failed" and final.finalization.code == "content_mismatch"
    assert final.confirmed_files == 0 and final.files[0].generation.state == "abandoned"
    assert len(list(client.datasets.list(limit=100))) == datasets_before  # nothing published


def test_managed_grant_expires_and_errors(client, http, mock):
    rec, session = free_recording(client, "ready"), str(uuid.uuid4())
    st = admit(http, rec, session, {"a.mcap": b"z" * 10}).json()
    assert http.get(f"fleet/recordings/{rec}/managed-upload/status/", params={"protocol": P, "session_uid": str(uuid.uuid4())}).status_code == 404
    assert http.get(f"fleet/recordings/{rec}/managed-upload/status/", params={"protocol": "v0", "session_uid": session}).status_code == 400
    body = {"protocol": P, "session_uid": session, "file_uid": st["files"][0]["file_uid"]}
    gen = {**body, "generation_uid": http.post(f"fleet/recordings/{rec}/managed-upload/multipart/init/", json=body).json()["generation_uid"]}
    grant = http.post(f"fleet/recordings/{rec}/managed-upload/multipart/parts/", json={**gen, "numbers": [1]}).json()["parts"][0]
    mock.advance(301)
    assert r2_put(mock, grant, b"z" * 10).status_code == 403  # past X-Amz-Date + X-Amz-Expires
    wrong_files = http.post(f"fleet/recordings/{rec}/managed-upload/finalize/", json={
        "protocol": P, "session_uid": session, "files": [{"file_uid": str(uuid.uuid4()), "generation_uid": None}]})
    assert wrong_files.status_code == 400
    assert managed_status(http, rec, session)["finalization"] is None


def test_managed_sdk_upload_end_to_end(https_mock, tmp_path, monkeypatch):
    """The SDK's managed uploader, unchanged except that its part PUT is routed to the plane's R2 path."""
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    seen = []

    def routed_put(grant, part: bytes) -> None:
        seen.append(urlsplit(grant.url).hostname)
        r = httpx.put(grant.url.replace("https://", f"{https_mock.origin}/_storage/r2/", 1), headers=grant.headers, content=part)
        assert r.status_code == 200

    monkeypatch.setattr(_managed_consumer, "_put", routed_put)
    data = os.urandom(70_000)
    src = source(tmp_path, {"drive/run_a.mcap": data, "drive/run_b.mcap": data[:1000]}, "mcap")
    with avala.Client(api_key=https_mock.api_key, base_url=https_mock.base_url) as c:
        rec = free_recording(c, "ready")
        status = c.fleet.uploads.upload_managed_recording(rec, src, wait_timeout=0)
        assert status.recording_uid == rec and status.total_files == 2 and status.total_bytes == 71_000
        assert status.status == "completed" and status.confirmed_files == 2
        assert status.finalization.state == "succeeded" and status.finalization.dataset_uid
        ds = c.datasets.get(status.finalization.dataset_uid)
        assert ds.data_type == "mcap" and ds.item_count == 2
    assert len(seen) == 2 and all(h.endswith(".r2.cloudflarestorage.com") for h in seen)


def test_managed_grants_pass_the_sdk_validator_on_a_wall_clock(https_mock, monkeypatch):
    monkeypatch.setenv("AVALA_ALLOW_INSECURE_BASE_URL", "true")
    with httpx.Client(base_url=https_mock.base_url + "/", headers={"X-Avala-Api-Key": https_mock.api_key}) as h, \
            avala.Client(api_key=https_mock.api_key, base_url=https_mock.base_url) as c:
        rec, session, data = free_recording(c, "ready"), str(uuid.uuid4()), b"q" * 100
        st = admit(h, rec, session, {"v.mcap": data}).json()
        body = {"protocol": P, "session_uid": session, "file_uid": st["files"][0]["file_uid"]}
        gen = {**body, "generation_uid": h.post(f"fleet/recordings/{rec}/managed-upload/multipart/init/", json=body).json()["generation_uid"]}
        grant = h.post(f"fleet/recordings/{rec}/managed-upload/multipart/parts/", json={**gen, "numbers": [1]}).json()["parts"][0]
        validated = validate_grant(grant, session_uid=session, file=SourceFile("v.mcap", 100, hashlib.sha256(data).hexdigest()), number=1)
        assert validated.headers == {"Content-Length": "100"}
        with pytest.raises(UploadStateError):  # a tampered grant is refused by the same validator
            validate_grant(dict(grant, offset=1), session_uid=session, file=SourceFile("v.mcap", 100, "0" * 64), number=1)


def test_second_organisation_cannot_reach_uploads(client, http, mock):
    rec = free_recording(client)
    s = client.fleet.uploads.init_upload(rec, [{"path": "a", "size_bytes": 1}])
    managed_rec, session = free_recording(client, "ready"), str(uuid.uuid4())
    assert admit(http, managed_rec, session, {"a.mcap": b"1"}).status_code == 200
    second = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        with pytest.raises(NotFoundError) as err:
            second.fleet.uploads.get_upload_status(rec)
        assert err.value.body != NO_SESSION  # the recording itself is not there
        with pytest.raises(NotFoundError):
            second.fleet.uploads.init_upload(rec, [{"path": "b", "size_bytes": 1}])
        with pytest.raises(NotFoundError):
            second.fleet.uploads.confirm_upload(rec, s.uid, [{"path": "a", "etag": "x", "size_bytes": 1}])
        with pytest.raises(NotFoundError):
            second.fleet.uploads.finalize_upload(rec, s.uid)
        with pytest.raises(NotFoundError):
            second._transport.request("GET", f"/fleet/recordings/{managed_rec}/managed-upload/status/",
                                      params={"protocol": P, "session_uid": session})
        assert rec not in {r.uid for r in second.fleet.recordings.list(limit=50)}
    finally:
        second.close()
    assert client.fleet.uploads.get_upload_status(rec).status == "initiated"


def test_seeded_sessions_and_recording_delete(client, http, mock):
    sessions = []
    for recording in client.fleet.recordings.list(limit=50):
        try:
            sessions.append((recording.uid, client.fleet.uploads.get_upload_status(recording.uid)))
        except NotFoundError:
            pass
    # the seeded default-protocol sessions: one half confirmed, one completed a day ago
    assert sorted(s.status for _, s in sessions) == ["completed", "uploading"]
    rec, status = next((r, s) for r, s in sessions if s.status == "completed")
    assert status.confirmed_files == status.total_files > 0 and status.pending_paths == []
    client.fleet.recordings.delete(rec)
    with pytest.raises(NotFoundError):
        client.fleet.uploads.get_upload_status(rec)
    with pytest.raises(ValidationError):
        client.fleet.uploads.init_upload(free_recording(client), [{"path": "a", "size_bytes": -1}])
