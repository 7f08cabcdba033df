"""Annotations bulk edit (POST /datasets/{owner}/{slug}/bulk-edition/) through the SDK, its CLI and raw HTTP:
objects become visible on items and sequences, edits are idempotent, a bad chunk writes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid

import avala
import httpx
import pytest
from avala.errors import NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli

ORG = "acme-robotics"
S3 = {"provider": "aws_s3", "s3_bucket_name": "acme-drives", "s3_bucket_prefix": "bulk", "s3_bucket_region": "eu-west-1",
      "s3_auth_method": "access_key", "s3_access_key_id": "AKIAIOSFODNN7EXAMPLE",
      "s3_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9SECRET"}


def cuboid(object_uuid: str, *, item: str | None = None, sequence: str | None = None, name: str = "vehicle",
           px: float = 1.0, action: str = "upsert") -> dict:
    edit = {"action": action, "object_uuid": object_uuid, "object_name": name,
            "dataset_item_uid": item, "sequence_uid": sequence}
    if action == "upsert":
        edit["object_type"] = "cuboid" if item else "cuboid 3d"
        edit["object_data"] = {"coordinate_system": "world", "label": name, "object_id": 7,
                               "position": {"px": px, "py": 2.0, "pz": 0.8},
                               "dimensions": {"dx": 4.2, "dy": 1.8, "dz": 1.5},
                               "rotation": {"qx": 0.0, "qy": 0.0, "qz": 0.0, "qw": 1.0}}
    return edit


def uid() -> str:
    return str(uuid.uuid4())


def sequence_objects(http, slug: str, sequence_uid: str) -> dict[str, dict]:
    """The sequence detail's bulk-edited objects by object_uuid (the SDK model drops the extra key)."""
    raw = http.get(f"datasets/{ORG}/{slug}/sequences/{sequence_uid}/").json()
    return {o["object_uuid"]: {**o, "_result": r} for r in raw["annotations"]["results"] for o in r["objects"]}


def item_objects(client, slug: str, item_uid: str) -> dict[str, dict]:
    item = client.datasets.get_item(ORG, slug, item_uid)
    return {o["object_uuid"]: {**o, "_result": r} for r in item.annotations["results"]
            if r["source"] == "bulk_edition" for o in r["objects"]}


def lidar_dataset(client, mock, slug: str = "bulk-lidar"):
    ds = client.datasets.create(name="Bulk lidar", slug=slug, data_type="lidar", provider_config=S3)
    mock.advance(60)
    items = list(client.datasets.list_items(ORG, slug, limit=100))
    return ds, items


def test_sequence_cuboids_upsert_idempotently_and_delete(mock, client, http):
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[1]
    assert sequence_objects(http, "drive-logs", seq.uid) == {}
    a, b = uid(), uid()
    chunks = list(client.annotations.bulk_edit(ORG, "drive-logs", [cuboid(a, sequence=seq.uid),
                                                                    cuboid(b, sequence=seq.uid, name="pedestrian")]))
    assert chunks == [(0, {"updated": 2, "created": 2, "deleted": 0})]
    objs = sequence_objects(http, "drive-logs", seq.uid)
    assert set(objs) == {a, b}
    assert objs[a]["type"] == "cuboid 3d" and objs[a]["label"] == "vehicle" and objs[a]["data"]["position"]["px"] == 1.0
    assert objs[a]["_result"]["source"] == "bulk_edition" and objs[a]["_result"]["created_by"] == "ada"
    assert objs[a]["_result"]["project"] != objs[b]["_result"]["project"]  # one project per (type, name)
    created_at = objs[a]["created_at"]
    mock.advance(10)
    again = list(client.annotations.bulk_edit(ORG, "drive-logs", [cuboid(a, sequence=seq.uid, px=9.5)]))
    assert again == [(0, {"updated": 1, "created": 0, "deleted": 0})]
    objs = sequence_objects(http, "drive-logs", seq.uid)
    assert set(objs) == {a, b} and objs[a]["data"]["position"]["px"] == 9.5
    assert objs[a]["created_at"] == created_at and objs[a]["updated_at"] > created_at
    gone = list(client.annotations.bulk_edit(ORG, "drive-logs", [cuboid(a, sequence=seq.uid, action="delete")]))
    assert gone == [(0, {"updated": 1, "created": 0, "deleted": 1})]
    assert set(sequence_objects(http, "drive-logs", seq.uid)) == {b}
    twice = list(client.annotations.bulk_edit(ORG, "drive-logs", [cuboid(a, sequence=seq.uid, action="delete")]))
    assert twice == [(0, {"updated": 1, "created": 0, "deleted": 0})]


def test_item_cuboids_show_on_items_and_in_exports(mock, client):
    ds, items = lidar_dataset(client, mock)
    first, second_item = items[0].uid, items[1].uid
    track = uid()
    edits = [cuboid(track, item=first), cuboid(track, item=second_item, px=2.0)]  # one track over two frames
    assert list(client.annotations.bulk_edit(ORG, "bulk-lidar", edits)) == [(0, {"updated": 2, "created": 2, "deleted": 0})]
    assert item_objects(client, "bulk-lidar", first)[track]["data"]["position"]["px"] == 1.0
    assert item_objects(client, "bulk-lidar", second_item)[track]["data"]["position"]["px"] == 2.0
    assert item_objects(client, "bulk-lidar", items[2].uid) == {}
    listed = {i.uid: i for i in client.datasets.list_items(ORG, "bulk-lidar", limit=5)}
    assert [o["object_uuid"] for r in listed[first].annotations["results"] for o in r["objects"]] == [track]
    export = client.exports.create(dataset=ds.uid)
    mock.advance(10)
    body = httpx.get(client.exports.get(export.uid).download_url).json()
    exported = {i["uid"]: i for i in body["items"]}
    assert exported[first]["results"][0]["objects"][0]["object_uuid"] == track
    assert body["object_count"] == 2
    # The export is a snapshot: edits after it do not change the file.
    list(client.annotations.bulk_edit(ORG, "bulk-lidar", [cuboid(track, item=first, action="delete")]))
    assert httpx.get(client.exports.get(export.uid).download_url).json()["object_count"] == 2
    assert item_objects(client, "bulk-lidar", first) == {}


def test_drive_logs_export_has_sequence_objects(mock, client, http):
    drive = next(d for d in client.datasets.list(data_type="lidar"))
    seq0 = list(client.datasets.list_sequences(ORG, "drive-logs"))[0]
    seeded = sequence_objects(http, "drive-logs", seq0.uid)
    assert len(seeded) == 3 and {o["label"] for o in seeded.values()} == {"car", "pedestrian", "cyclist"}
    export = client.exports.create(dataset=drive.uid)
    mock.advance(10)
    body = httpx.get(client.exports.get(export.uid).download_url).json()
    assert body["sequence_count"] == 4 and body["object_count"] == 3
    assert {o["object_uuid"] for r in body["sequences"][0]["results"] for o in r["objects"]} == set(seeded)


def test_one_bad_edit_rejects_the_whole_chunk(mock, client, http):
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[2]
    good, bad_seq = uid(), uid()
    r = http.post(f"datasets/{ORG}/drive-logs/bulk-edition/",
                  json=[cuboid(good, sequence=seq.uid), cuboid(uid(), sequence=bad_seq)])
    assert r.status_code == 400 and "edit 1" in r.json()["detail"]
    assert list(r.json()["errors"]) == ["[1].sequence_uid"]
    assert sequence_objects(http, "drive-logs", seq.uid) == {}
    edits = [cuboid(uid(), sequence=seq.uid) for _ in range(4)] + [cuboid(uid(), sequence=bad_seq)]
    posted = []
    with pytest.raises(RuntimeError, match="chunk 2 failed") as exc:
        for index, body in client.annotations.bulk_edit(ORG, "drive-logs", edits, chunk_size=2):
            posted.append((index, body["updated"]))
    assert isinstance(exc.value.__cause__, ValidationError)
    assert posted == [(0, 2), (1, 2)]
    assert len(sequence_objects(http, "drive-logs", seq.uid)) == 4  # chunks 0 and 1 applied, chunk 2 not at all


@pytest.mark.parametrize("edit, field", [
    ({"action": "upsert", "object_uuid": "U", "object_type": "cuboid 3d", "object_data": {}}, "oneOf"),  # schema: no target
    ({"action": "upsert", "object_uuid": "U", "sequence_uid": "S", "object_type": "cuboid"}, "object_type"),
    ({"action": "upsert", "object_uuid": "U", "sequence_uid": "S", "object_type": "cuboid 3d"}, "object_data"),
    ({"action": "upsert", "object_uuid": "not-a-uuid", "sequence_uid": "S", "object_type": "cuboid 3d",
      "object_data": {}}, "object_uuid"),
    ({"action": "upsert", "object_uuid": "U", "sequence_uid": "S", "object_type": "cuboid 3d",
      "object_data": {"dimensions": {"dx": 1, "dy": -1, "dz": 1}}}, "dimensions"),
    ({"action": "upsert", "object_uuid": "U", "sequence_uid": "S", "object_type": "cuboid 3d",
      "object_data": {"position": {"px": "far", "py": 0, "pz": 0}}}, "position"),
    ({"action": "move", "object_uuid": "U", "sequence_uid": "S"}, "action"),
    ({"action": "delete", "object_uuid": "U", "sequence_uid": "S", "dataset_item_uid": "I"}, "sequence_uid"),
])
def test_invalid_edits_are_400(mock, client, http, edit, field):
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[3]
    edit = {k: (seq.uid if v == "S" else uid() if v == "U" else v) for k, v in edit.items()}
    r = http.post(f"datasets/{ORG}/drive-logs/bulk-edition/", json=[edit])
    assert r.status_code == 400, r.text
    assert field in r.text
    assert sequence_objects(http, "drive-logs", seq.uid) == {}


def test_references_and_dataset_rules(mock, client, http):
    ds, items = lidar_dataset(client, mock, "refs-lidar")
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[0]
    # an item of another dataset, a sequence of another dataset: 400, naming the edit
    r = http.post(f"datasets/{ORG}/drive-logs/bulk-edition/", json=[cuboid(uid(), item=items[0].uid)])
    assert r.status_code == 400 and "[0].dataset_item_uid" in r.json()["errors"]
    r = http.post(f"datasets/{ORG}/refs-lidar/bulk-edition/", json=[cuboid(uid(), sequence=seq.uid)])
    assert r.status_code == 400 and "[0].sequence_uid" in r.json()["errors"]
    r = http.post(f"datasets/{ORG}/street-scenes/bulk-edition/", json=[cuboid(uid(), item=items[0].uid)])
    assert r.status_code == 400 and "point-cloud" in r.json()["detail"]
    assert http.post(f"datasets/{ORG}/no-such/bulk-edition/", json=[]).status_code == 404
    assert http.post(f"datasets/{ORG}/drive-logs/bulk-edition/", json={"action": "upsert"}).status_code == 400
    assert http.post(f"datasets/{ORG}/drive-logs/bulk-edition/", json=[]).json() == {"updated": 0, "created": 0, "deleted": 0}
    with pytest.raises(RuntimeError) as exc:
        list(client.annotations.bulk_edit(ORG, "no-such", [cuboid(uid(), sequence=seq.uid)]))
    assert isinstance(exc.value.__cause__, NotFoundError)


def test_other_organisation_cannot_bulk_edit(mock, client, http):
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[1]
    globex = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        with pytest.raises(RuntimeError) as exc:
            list(globex.annotations.bulk_edit(ORG, "drive-logs", [cuboid(uid(), sequence=seq.uid)]))
        assert isinstance(exc.value.__cause__, NotFoundError)
        with pytest.raises(NotFoundError):
            globex.datasets.get_sequence(ORG, "drive-logs", seq.uid)
    finally:
        globex.close()
    assert sequence_objects(http, "drive-logs", seq.uid) == {}


def test_cli_bulk_edit_posts_after_its_preflight(mock, client, http, tmp_path):
    seq = list(client.datasets.list_sequences(ORG, "drive-logs"))[3]
    tracks = [uid() for _ in range(5)]
    path = tmp_path / "edits.jsonl"
    path.write_text("\n".join(json.dumps(cuboid(t, sequence=seq.uid, name="truck")) for t in tracks) + "\n")
    run = ["annotations", "bulk-edit", "--owner", ORG, "--slug", "drive-logs", "--input", str(path), "--chunk-size", "2"]
    r = avala_cli(mock.env(), *run)
    assert r.returncode == 0, r.stderr
    assert "5 edits posted across 3 chunk(s)" in r.stderr
    assert set(sequence_objects(http, "drive-logs", seq.uid)) == set(tracks)
    r = avala_cli(mock.env(), *run[:-8], "--owner", ORG, "--slug", "street-scenes", "--input", str(path))
    assert r.returncode != 0 and "requires 'lidar'" in r.stderr


def test_async_bulk_edit(mock):
    async def main() -> list:
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            seq = (await c.datasets.list_sequences(ORG, "drive-logs")).items[2]
            out = [x async for x in await c.annotations.bulk_edit(ORG, "drive-logs", [cuboid(uid(), sequence=seq.uid)])]
            detail = await c.datasets.get_sequence(ORG, "drive-logs", seq.uid)
            return out, detail

    out, detail = asyncio.run(main())
    assert out == [(0, {"updated": 1, "created": 1, "deleted": 0})] and detail.number_of_frames == 24
