"""Dataset create / indexing / health / transfer and exports, through the official SDK, its CLI and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess

import avala
import httpx
import pytest
from avala.errors import AvalaError, ForbiddenError, NotFoundError, ValidationError
from avala.importers.cloud import import_cloud

from helpers import SECOND_ORG_KEY, avala_cli, project_named

ORG = "acme-robotics"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9SECRET"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
S3 = {
    "provider": "aws_s3", "s3_bucket_name": "acme-drives", "s3_bucket_prefix": "lidar/2026-01",
    "s3_bucket_region": "us-west-2", "s3_is_accelerated": False, "s3_auth_method": "access_key",
    "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET,
}
GCS_AUTH = json.dumps({"type": "service_account", "client_email": "svc@proj.iam.gserviceaccount.com",
                       "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvgIBADAN\n-----END PRIVATE KEY-----\n"})


def cli(mock, *args: str) -> subprocess.CompletedProcess:
    return avala_cli(mock.env(), *args)


def second(mock) -> avala.Client:
    return avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)


def all_datasets(client) -> list:
    return list(client.datasets.list(limit=100))


def all_items(client, owner: str, slug: str) -> list:
    out, cursor = [], None
    while True:
        page = client.datasets.list_items(owner, slug, limit=100, cursor=cursor)
        out.extend(page)
        if not page.has_more:
            return out
        cursor = page.next_cursor


# ------------------------------------------------------------------------------------------- create

def test_create_indexes_on_the_clock_then_wait_returns_created(mock, client):
    ds = client.datasets.create(name="Night Drives", slug="night-drives", data_type="image")
    assert ds.status == "creating" and ds.owner_name == ORG and ds.item_count == 0
    assert ds.data_type == "image" and ds.is_sequence is False and ds.created_at is not None
    assert [d.uid for d in client.datasets.list(status="creating")] == [ds.uid]
    assert client.datasets.get_by_slug(ORG, "night-drives").uid == ds.uid
    assert client.datasets.get(ds.uid).status == "creating"
    mock.advance(1.0)
    assert client.datasets.get(ds.uid).status == "creating"  # an empty dataset indexes in 2 s
    mock.advance(1.5)
    done = client.datasets.wait(ds.uid, interval=0)
    assert done.status == "created" and done.updated_at > done.created_at
    assert ds.uid in {d.uid for d in client.datasets.list(status="created", limit=100)}
    assert client.datasets.list(status="creating").items == []


def test_create_validation_conflict_and_no_half_written_state(mock, client, http):
    before = len(all_datasets(client))
    body = {"name": "Dup", "slug": "dup-1", "data_type": "video", "visibility": "private", "create_metadata": True}
    assert http.post("datasets/", json=body).status_code == 201
    r = http.post("datasets/", json=body)
    assert r.status_code == 409 and "dup-1" in r.json()["detail"]
    with pytest.raises(AvalaError) as exc:
        client.datasets.create(name="Dup", slug="dup-1", data_type="video")
    assert exc.value.status_code == 409
    for bad in ({**body, "slug": "-bad"}, {**body, "slug": "has space"}, {**body, "visibility": "secret"},
                {**body, "name": ""}, {k: v for k, v in body.items() if k != "data_type"}):
        r = http.post("datasets/", json=bad)
        assert r.status_code == 400, bad
        assert isinstance(r.json()["detail"], str)
    with pytest.raises(ValidationError):
        client.datasets.create(name="Bad", slug="bad/slug", data_type="image")
    assert http.post("datasets/", json={**body, "slug": "org-x", "organization_uid": "not-my-org"}).status_code == 404
    assert http.post("datasets/", json={**body, "slug": "own-x", "owner_name": "nobody-here"}).status_code == 404
    assert len(all_datasets(client)) == before + 1


def test_create_for_the_org_by_uid_or_for_yourself(mock, client, http):
    me = http.get("users/me/").json()
    org_ds = client.datasets.create(name="Org", slug="shared", data_type="image", organization_uid=me["organization_uid"],
                                    organization_id=42, gpu_texture_format="ktx2", industry=3, license=1,
                                    metadata={"camera": "front"})
    assert org_ds.owner_name == ORG
    mine = client.datasets.create(name="Mine", slug="shared", data_type="image", owner_name=me["username"])
    assert mine.owner_name == me["username"] and mine.uid != org_ds.uid  # same slug, other owner: no clash
    assert client.datasets.get_by_slug(me["username"], "shared").uid == mine.uid
    assert client.datasets.get_by_slug(me["email"], "shared").uid == mine.uid  # CLI --owner takes an email
    by_email = client.datasets.create(name="Mine 2", slug="mine-2", data_type="image", owner_name=me["email"])
    assert by_email.owner_name == me["username"]
    other = next(m for m in http.get(f"organizations/{ORG}/members/").json()["results"] if m["username"] != me["username"])
    with pytest.raises(ForbiddenError):
        client.datasets.create(name="Theirs", slug="theirs", data_type="image", owner_name=other["username"])
    r = http.post("datasets/", json={"name": "Both", "slug": "both", "data_type": "image",
                                     "owner_name": me["username"], "organization_uid": me["organization_uid"]})
    assert r.status_code == 400


def test_typescript_body_with_is_sequence_groups_frames_into_sequences(mock, client, http):
    r = http.post("datasets/", json={"name": "TS drives", "slug": "ts-drives", "data_type": "lidar", "is_sequence": True,
                                     "provider_config": {**S3, "s3_bucket_prefix": "ts"}})
    assert r.status_code == 201 and r.json()["is_sequence"] is True
    mock.advance(60)
    sequences = list(client.datasets.list_sequences(ORG, "ts-drives", limit=100))
    items = all_items(client, ORG, "ts-drives")
    assert len(sequences) >= 2 and {s.key for s in sequences} == {i.key.rsplit("/", 1)[0] for i in items}
    detail = client.datasets.get_sequence(ORG, "ts-drives", sequences[0].uid)
    frame_keys = [f["key"] for f in detail.frames]
    assert frame_keys == sorted(i.key for i in items if i.related_sequence_uid == detail.uid)
    assert client.datasets.get_frame(ORG, "ts-drives", detail.uid, 0).key == frame_keys[0]
    health = client.datasets.get_health(ORG, "ts-drives")
    assert health.is_sequence and health.sequence_count == len(sequences) and health.total_frames == len(items)
    assert all(not s.has_camera_calibration for s in health.sequences)
    assert any("no camera calibration" in issue for issue in health.issues)


# ------------------------------------------------------------------------------------- cloud import

def test_s3_import_lists_a_deterministic_bucket_and_never_returns_credentials(mock, client, http):
    ds = import_cloud(client, uri="s3://acme-drives/lidar/2026-01", name="Drives Jan", slug="drives-jan",
                      data_type="lidar", region="us-west-2", access_key_id=KEY_ID, secret_access_key=SECRET)
    assert ds.status == "creating" and ds.item_count > 0
    again = client.datasets.create(name="Drives Jan (copy)", slug="drives-jan-2", data_type="lidar", provider_config=S3)
    assert again.item_count == ds.item_count  # the same bucket lists the same objects
    items = all_items(client, ORG, "drives-jan")
    assert len(items) == ds.item_count and all(i.key.endswith(".pcd") for i in items)
    assert items[0].metadata["mime_type"] == "application/x-pcd"
    mock.advance(2.0 + 0.01 * ds.item_count - 0.2)
    assert client.datasets.get(ds.uid).status == "creating"  # indexing time grows with the item count
    mock.advance(0.3)
    assert client.datasets.get(ds.uid).status == "created"
    health = client.datasets.get_health(ORG, "drives-jan")
    assert health.s3_prefix == "s3://acme-drives/lidar/2026-01/" and health.gc_storage_prefix is None
    assert health.last_updated_at > ds.created_at and health.dataset_status == "created"  # bumped by indexing
    assert health.ingest_ok and any("not indexed" in i for i in health.issues)  # README.md, manifests, ...
    texts = [http.get(p).text for p in (f"datasets/{ds.uid}/", f"datasets/{ORG}/drives-jan/health/",
                                        "datasets/?limit=100", f"datasets/{ORG}/drives-jan/items/")]
    assert not any(SECRET in t or KEY_ID in t for t in texts)


def test_import_filters_and_gcs(mock, client):
    narrowed = client.datasets.create(name="Only scene 0", slug="scene0", data_type="lidar",
                                      provider_config={**S3, "ignored_paths": "scene_001/,scene_002/,scene_003/"})
    full = client.datasets.create(name="All", slug="all-scenes", data_type="lidar", provider_config=S3)
    assert 0 < narrowed.item_count < full.item_count
    keys = {i.key for i in all_items(client, ORG, "scene0")}
    assert all(k.startswith("scene_000/") for k in keys)
    jsons = client.datasets.create(name="Calib", slug="calib", data_type="lidar",
                                   provider_config={**S3, "included_extensions": "json"})
    assert {i.key.rsplit("/", 1)[-1] for i in all_items(client, ORG, "calib")} <= {"calibration.json", "manifest.json"}
    assert jsons.item_count > 0
    gcs = client.datasets.create(name="Fields", slug="gcs-fields", data_type="image", provider_config={
        "provider": "gc_storage", "gc_storage_bucket_name": "acme-fields", "gc_storage_prefix": "2026/",
        "gc_storage_auth_json_content": GCS_AUTH})
    assert gcs.item_count > 0
    health = client.datasets.get_health(ORG, "gcs-fields")
    assert health.gc_storage_prefix == "gs://acme-fields/2026/" and health.s3_prefix is None


@pytest.mark.parametrize("change, field", [
    ({"s3_bucket_region": None}, "s3_bucket_region"),
    ({"s3_bucket_name": "Bad_Bucket"}, "s3_bucket_name"),
    ({"s3_secret_access_key": "short"}, "s3_secret_access_key"),
    ({"s3_access_key_id": "not-a-key-" + SECRET}, "s3_access_key_id"),
    ({"s3_auth_method": "iam_role", "s3_role_arn": "arn:aws:iam::12:role/x"}, "s3_role_arn"),
    ({"provider": "azure"}, "provider"),
])
def test_bad_provider_config_is_400_without_echoing_secrets(mock, http, change, field):
    config = {k: v for k, v in {**S3, **change}.items() if v is not None}
    r = http.post("datasets/", json={"name": "B", "slug": "bad-cloud", "data_type": "lidar", "provider_config": config})
    assert r.status_code == 400
    assert any(field in k for k in r.json().get("errors", {})) or field in r.json()["detail"]
    assert SECRET not in r.text and KEY_ID not in r.text
    assert http.get(f"datasets/{ORG}/bad-cloud/").status_code == 404


def test_keyless_s3_needs_an_org_owned_dataset_and_gcs_needs_a_service_account(mock, http):
    me = http.get("users/me/").json()
    role = {**S3, "s3_auth_method": "iam_role", "s3_role_arn": "arn:aws:iam::123456789012:role/avala-import"}
    for k in ("s3_access_key_id", "s3_secret_access_key"):
        role.pop(k)
    r = http.post("datasets/", json={"name": "K", "slug": "keyless", "data_type": "lidar", "provider_config": role,
                                     "owner_name": me["username"]})
    assert r.status_code == 400 and "s3_external_id" in r.json()["detail"]
    assert "123456789012" not in r.text
    ok = http.post("datasets/", json={"name": "K", "slug": "keyless", "data_type": "lidar", "provider_config": role})
    assert ok.status_code == 201 and "arn:aws" not in ok.text
    leaked = '{"type": "authorized_user", "private_key": "TOPSECRETKEY"}'
    r = http.post("datasets/", json={"name": "G", "slug": "gbad", "data_type": "image", "provider_config": {
        "provider": "gcs", "gc_storage_bucket_name": "acme-fields", "gc_storage_auth_json_content": leaked}})
    assert r.status_code == 400 and "TOPSECRETKEY" not in r.text


# -------------------------------------------------------------------------------------------- health

def test_health_of_seeded_and_new_datasets(mock, client):
    drive = client.datasets.get_health(ORG, "drive-logs")
    assert drive.data_type == "lidar" and drive.is_sequence is True and drive.dataset_status == "created"
    assert drive.sequence_count == 4 and drive.total_frames == 96 and len(drive.sequences) == 4
    assert all(s.has_camera_calibration and s.has_lidar_calibration and s.frame_count == 24 for s in drive.sequences)
    assert drive.ingest_ok and drive.issues == [] and drive.s3_prefix.startswith("s3://avala-mock-datasets/__o__=/")
    street = client.datasets.get_health(ORG, "street-scenes")
    assert street.item_count == 9000 and street.is_sequence is False and street.sequences == [] and street.ingest_ok
    client.datasets.create(name="Empty", slug="empty", data_type="video")
    empty = client.datasets.get_health(ORG, "empty")
    assert empty.dataset_status == "creating" and not empty.ingest_ok
    assert any("still indexing" in i for i in empty.issues) and any("no items" in i for i in empty.issues)
    mock.advance(5)
    empty = client.datasets.get_health(ORG, "empty")
    assert empty.dataset_status == "created" and empty.issues == ["Dataset has no items."] and not empty.ingest_ok
    with pytest.raises(NotFoundError):
        client.datasets.get_health(ORG, "nope")


def test_cli_list_get_create_health(mock, client):
    r = cli(mock, "--output", "json", "datasets", "list", "--data-type", "lidar")
    assert r.returncode == 0, r.stderr
    assert [d["slug"] for d in json.loads(r.stdout)] == ["drive-logs"]
    r = cli(mock, "datasets", "create", "--name", "From CLI", "--slug", "from-cli", "--data-type", "splat")
    assert r.returncode == 0 and "Dataset created:" in r.stdout, r.stderr
    uid = r.stdout.split("Dataset created:")[1].split()[0]
    r = cli(mock, "--output", "json", "datasets", "get", uid)
    assert r.returncode == 0 and json.loads(r.stdout)["slug"] == "from-cli"
    r = cli(mock, "datasets", "health", ORG, "drive-logs")  # (its JSON mode pairs values with shifted keys)
    assert r.returncode == 0, r.stderr
    assert "96" in r.stdout and "lidar" in r.stdout and "seq003: frames=24" in r.stderr
    assert cli(mock, "datasets", "get", "00000000-0000-4000-8000-000000000000").returncode != 0


# ------------------------------------------------------------------------------------------ transfer

def test_transfer_to_yourself_and_back_moves_the_path(mock, client, http):
    me = http.get("users/me/").json()
    ds = client.datasets.create(name="Movable", slug="movable", data_type="image")
    moved = client.datasets.transfer(ORG, "movable", owner_username=me["username"])
    assert moved.uid == ds.uid and moved.owner_name == me["username"]
    assert client.datasets.get_by_slug(me["username"], "movable").uid == ds.uid
    with pytest.raises(NotFoundError):
        client.datasets.get_by_slug(ORG, "movable")
    assert client.datasets.get(ds.uid).owner_name == me["username"]
    assert client.datasets.get_health(me["username"], "movable").dataset_uid == ds.uid
    back = client.datasets.transfer(me["username"], "movable", organization_uid=me["organization_uid"])
    assert back.owner_name == ORG and client.datasets.get_by_slug(ORG, "movable").uid == ds.uid
    same = client.datasets.transfer(ORG, "movable", organization_uid=me["organization_uid"])
    assert same.owner_name == ORG
    r = cli(mock, "--output", "json", "datasets", "transfer", ORG, "movable", "--owner-username", me["username"])
    assert r.returncode == 0 and json.loads(r.stdout)["owner_name"] == me["username"], r.stderr


def test_transfer_errors(mock, client, http):
    me = http.get("users/me/").json()
    client.datasets.create(name="A", slug="clash", data_type="image")
    client.datasets.create(name="B", slug="clash", data_type="image", owner_name=me["username"])
    r = http.post(f"datasets/{me['username']}/clash/transfer/", json={"organization_uid": me["organization_uid"]})
    assert r.status_code == 409
    assert client.datasets.get_by_slug(me["username"], "clash").owner_name == me["username"]  # unchanged
    base = f"datasets/{ORG}/clash/transfer/"
    assert http.post(base, json={}).status_code == 400
    both = {"organization_uid": me["organization_uid"], "owner_username": me["username"]}
    assert http.post(base, json=both).status_code == 400
    globex = second(mock)
    try:
        globex_org = httpx.get(f"{mock.base_url}/users/me/", headers={"X-Avala-Api-Key": SECOND_ORG_KEY}).json()[
            "organization_uid"]
        with pytest.raises(NotFoundError):
            client.datasets.transfer(ORG, "clash", organization_uid=globex_org)
        with pytest.raises(NotFoundError):
            client.datasets.transfer(ORG, "clash", owner_username="grace")  # another organisation's user
        with pytest.raises(NotFoundError):
            client.datasets.transfer(ORG, "clash", owner_username="nobody-at-all")
        other = next(m for m in http.get(f"organizations/{ORG}/members/").json()["results"] if m["username"] != me["username"])
        with pytest.raises(ForbiddenError):
            client.datasets.transfer(ORG, "clash", owner_username=other["username"])
        with pytest.raises(NotFoundError):
            client.datasets.transfer(ORG, "no-such-dataset", owner_username=me["username"])
        with pytest.raises(NotFoundError):  # another organisation's key cannot move it
            globex.datasets.transfer(ORG, "clash", organization_uid=globex_org)
    finally:
        globex.close()
    assert client.datasets.get_by_slug(ORG, "clash").owner_name == ORG


def test_other_organisation_cannot_see_created_datasets(mock, client):
    ds = client.datasets.create(name="Private", slug="private-one", data_type="image", provider_config=S3)
    globex = second(mock)
    try:
        with pytest.raises(NotFoundError):
            globex.datasets.get(ds.uid)
        with pytest.raises(NotFoundError):
            globex.datasets.get_by_slug(ORG, "private-one")
        with pytest.raises(NotFoundError):
            globex.datasets.get_health(ORG, "private-one")
        assert ds.uid not in {d.uid for d in globex.datasets.list(limit=100)}
        assert [d.slug for d in globex.datasets.list(limit=100)] == ["crop-fields"]
        own = globex.datasets.create(name="Private", slug="private-one", data_type="image")  # no clash across orgs
        assert own.owner_name == "globex-vision"
    finally:
        globex.close()


# ------------------------------------------------------------------------------------------- exports

def test_export_of_a_project_runs_on_the_clock_and_downloads_its_content(mock, client, http):
    project = project_named(client, "Pedestrian Safety")
    export = client.exports.create(project=project.uid)
    assert export.status == "pending" and export.download_url is None and export.created_at is not None
    assert client.exports.list().items[0].uid == export.uid  # newest first
    mock.advance(1.5)
    assert client.exports.get(export.uid).status == "processing"
    assert httpx.get(f"{mock.origin}/_downloads/exports/{export.uid}.json").status_code == 404  # not yet
    mock.advance(10)
    done = client.exports.wait(export.uid, interval=0.5, timeout=5)
    assert done.status == "exported" and done.updated_at > done.created_at
    assert done.download_url.startswith(f"{mock.origin}/_downloads/exports/{export.uid}.json?token=")
    raw = http.get(f"exports/{export.uid}/").json()
    assert raw["project"] == project.uid and raw["item_count"] == 600 and raw["error_message"] is None
    file = httpx.get(done.download_url)
    assert file.status_code == 200 and file.headers["content-type"].startswith("application/json")
    body = file.json()
    assert body["project"]["uid"] == project.uid and body["item_count"] == 600 and len(body["items"]) == 600
    labeled = [i for i in body["items"] if i["results"]]
    p = http.get(f"projects/{project.uid}/").json()
    assert len(labeled) == p["labeled_item_count"] > 0
    sample = labeled[0]
    item = client.datasets.get_item(ORG, "street-scenes", sample["uid"])
    seen = next(r for r in item.annotations["results"] if r["project"] == project.uid)
    assert sample["results"][0]["objects"] == seen["objects"] and seen["source"] == "human"
    assert {o["label"] for i in labeled for r in i["results"] for o in r["objects"]} <= {"pedestrian", "cyclist"}
    wrong = done.download_url.rsplit("=", 1)[0] + "=0000"
    assert httpx.get(wrong).status_code == 404


def test_export_of_a_dataset_and_of_an_indexing_dataset(mock, client, http):
    street = next(d for d in client.datasets.list(limit=100) if d.slug == "street-scenes")
    export = client.exports.create(dataset=street.uid)
    mock.advance(30)
    done = client.exports.get(export.uid)
    assert done.status == "exported"
    body = httpx.get(done.download_url).json()
    assert body["project"] is None and body["item_count"] == 9000 and body["dataset"]["slug"] == "street-scenes"
    fresh = client.datasets.create(name="Fresh", slug="fresh", data_type="lidar", provider_config=S3)
    failing = client.exports.create(dataset=fresh.uid)
    mock.advance(5)
    final = client.exports.wait(failing.uid, interval=0.5, timeout=5)
    assert final.status == "failed" and final.download_url is None
    assert "still indexing" in http.get(f"exports/{failing.uid}/").json()["error_message"]
    ok = client.exports.create(dataset=fresh.uid)  # indexed by now
    mock.advance(5)
    assert client.exports.get(ok.uid).status == "exported"
    assert httpx.get(client.exports.get(ok.uid).download_url).json()["item_count"] == fresh.item_count


def test_export_errors_and_no_delete(mock, client, http):
    project = project_named(client, "Pedestrian Safety")
    other = next(d for d in client.datasets.list(limit=100) if d.slug == "warehouse-shelves")
    assert http.post("exports/", json={}).status_code == 400
    r = http.post("exports/", json={"project": project.uid, "dataset": other.uid})
    assert r.status_code == 400 and "does not label" in r.json()["detail"]
    with pytest.raises(NotFoundError):
        client.exports.create(project="00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        client.exports.create(dataset="00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        client.exports.get("00000000-0000-4000-8000-000000000000")
    both = client.exports.create(project=project.uid, dataset=project_dataset(http, project.uid))
    assert both.status == "pending"
    r = http.delete(f"exports/{both.uid}/")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    assert client.exports.get(both.uid).uid == both.uid


def project_dataset(http, project_uid: str) -> str:
    return http.get(f"projects/{project_uid}/").json()["dataset"]


def test_exports_are_per_organisation_and_paginate(mock, client):
    seeded = list(client.exports.list(limit=100))
    assert len(seeded) == 2 and all(e.status == "exported" and e.download_url for e in seeded)
    assert httpx.get(seeded[0].download_url).json()["organization"]["slug"] == ORG
    project = project_named(client, "Transit Vehicles")
    made = [client.exports.create(project=project.uid).uid for _ in range(3)]
    first = client.exports.list(limit=2)
    assert [e.uid for e in first] == made[::-1][:2] and first.has_more
    rest = client.exports.list(limit=2, cursor=first.next_cursor)
    assert [e.uid for e in rest] == [made[0], seeded[0].uid]
    globex = second(mock)
    try:
        theirs = [e.uid for e in globex.exports.list(limit=100)]
        assert len(theirs) == 2 and not set(theirs) & set(made + [e.uid for e in seeded])
        with pytest.raises(NotFoundError):
            globex.exports.get(made[0])
        with pytest.raises(NotFoundError):
            globex.exports.create(project=project.uid)
    finally:
        globex.close()
    r = cli(mock, "--output", "json", "exports", "list", "--limit", "3")
    assert r.returncode == 0 and [e["uid"] for e in json.loads(r.stdout)] == made[::-1], r.stderr
    r = cli(mock, "--output", "json", "exports", "get", seeded[0].uid)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "exported"


def test_async_client_datasets_and_exports(mock):
    async def main() -> None:
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            ds = await c.datasets.create(name="Async", slug="async-ds", data_type="lidar", provider_config=S3)
            assert ds.status == "creating" and ds.item_count > 0
            assert (await c.datasets.get_by_slug(ORG, "async-ds")).uid == ds.uid
            health = await c.datasets.get_health(ORG, "async-ds")
            assert health.dataset_uid == ds.uid and health.item_count == ds.item_count
            mock.advance(30)
            assert (await c.datasets.wait(ds.uid, interval=0)).status == "created"
            export = await c.exports.create(dataset=ds.uid)
            mock.advance(10)
            done = await c.exports.wait(export.uid, interval=0.5, timeout=5)
            assert done.status == "exported" and done.download_url
            assert (await c.exports.list()).items[0].uid == export.uid
            me = await c.datasets.transfer(ORG, "async-ds", owner_username="ada")
            assert me.owner_name == "ada"

    asyncio.run(main())
