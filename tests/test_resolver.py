"""The anonymous public dataset resolver (R1-R4) over raw HTTP, through ``avala.load``/``async_load`` and
the ``avala datasets resolve`` CLI. Digests are recomputed here from what the server sends, so they are
checked to be real; the SDK gets as far as the access grant, whose https edge URL it refuses to trust
for a non-production API root (``untrusted_download_host``) — the byte download is not mockable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import warnings
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import avala
import httpx
import pytest
from avala import _resolver
from avala.errors import DatasetIntegrityError, DatasetResolverError, DatasetRevisionWithdrawnError

from avala_mock.fixtures.world import build_world
from avala_mock.simulators import resolver
from avala_mock.simulators.clock import Clock
from helpers import SECOND_ORG_KEY, avala_cli

REF = "avala-public/robot-pick-place"
SIGNS = "avala-public/street-signs"


@pytest.fixture
def anon(mock):
    """Raw HTTP without any key, as the SDK's resolver transport sends it."""
    with httpx.Client(base_url=mock.base_url, headers={"Accept": "application/json"}, timeout=30) as c:
        yield c


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load(reference: str, mock, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", avala.MutableDatasetAliasWarning)
        return avala.load(reference, base_url=mock.base_url, **kwargs)


def all_objects(anon, doc, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        page = anon.get(doc["manifest"]["objects_path"], params={**params, **({"cursor": cursor} if cursor else {})}).json()
        out.extend(page["results"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def withdrawn_sha(anon) -> str:
    body = anon.get(f"/resolve/{REF}@v1/").json()
    return body["revision_sha256"]


# --- R1 / R2 -------------------------------------------------------------------------------------------------

def test_resolve_main_returns_a_published_revision_with_real_digests(anon):
    r = anon.get(f"/resolve/{REF}@main/")
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"].isdigit()
    doc = r.json()
    uid, rev = doc["dataset_uid"], doc["revision_sha256"]
    assert doc["schema_version"] == 1 and doc["state"] == "published"
    assert doc["requested_reference"] == f"{REF}@main"
    assert doc["display_reference"] == f"{REF}@{rev}"
    assert doc["canonical_reference"] == f"avala://datasets/{uid}@{rev}"
    m = doc["manifest"]
    assert m["objects_path"] == f"/resolve/uid/{uid}/{rev}/objects/" and m["object_count"] == 128
    assert [o["name"] for o in m["origins"]] == ["avala-capture", "lerobot"]
    assert doc["rights"]["status"] == "declared" and doc["rights"]["url"].startswith("https://")

    objects = all_objects(anon, doc)
    assert len(objects) == m["object_count"] and sum(o["size_bytes"] for o in objects) == m["total_size_bytes"]
    entries = [{k: v for k, v in o.items() if k != "access_path"} for o in objects]
    manifest = {"schema_version": 1, "dataset_uid": uid, "origins": m["origins"], "objects": entries}
    assert sha(canonical(manifest)) == m["sha256"]
    attestation = {"dataset_uid": uid, "manifest_sha256": m["sha256"],
                   "rights_document_sha256": doc["rights"]["document_sha256"], "declared_by": "avala-public"}
    assert sha(canonical(attestation)) == doc["rights"]["attestation_sha256"]
    described = {"schema_version": 1, "dataset_uid": uid, "owner": "avala-public", "dataset": "robot-pick-place",
                 "manifest_sha256": m["sha256"], "rights": doc["rights"], "parent_revision_sha256": withdrawn_sha(anon),
                 "published_at": doc["published_at"]}
    assert sha(canonical(described)) == rev


def test_selectors_tag_sha_and_canonical_reference_resolve_the_same_revision(anon):
    main = anon.get(f"/resolve/{REF}@main/").json()
    rev = main["revision_sha256"]
    by_tag = anon.get(f"/resolve/{REF}@v2/").json()
    by_sha = anon.get(f"/resolve/{REF}@{rev}/").json()
    by_uid = anon.get(f"/resolve/uid/{main['dataset_uid']}/{rev}/").json()
    assert by_tag["requested_reference"] == f"{REF}@v2" and by_sha["requested_reference"] == f"{REF}@{rev}"
    assert by_uid["requested_reference"] == main["canonical_reference"]
    for doc in (by_tag, by_sha, by_uid):
        assert {k: v for k, v in doc.items() if k != "requested_reference"} == \
               {k: v for k, v in main.items() if k != "requested_reference"}
    signs = anon.get(f"/resolve/{SIGNS}@main/").json()
    assert signs["manifest"]["object_count"] == 41 and signs["dataset_uid"] != main["dataset_uid"]


def test_withdrawn_revision_is_410_with_the_tombstone_everywhere(anon):
    r = anon.get(f"/resolve/{REF}@v1/")
    assert r.status_code == 410
    body = r.json()
    uid, rev = body["dataset_uid"], body["revision_sha256"]
    assert body["schema_version"] == 1 and body["code"] == "dataset_revision_withdrawn"
    assert body["canonical_reference"] == f"avala://datasets/{uid}@{rev}" and body["detail"]
    base = f"/resolve/uid/{uid}/{rev}/"
    some_object = "00000000-0000-4000-8000-000000000000"
    for method, path in (("GET", f"/resolve/{REF}@{rev}/"), ("GET", base), ("GET", base + "objects/"),
                         ("GET", f"{base}objects/{some_object}/access/"), ("POST", f"{base}objects/{some_object}/access/")):
        again = anon.request(method, path)
        assert again.status_code == 410 and again.json()["revision_sha256"] == rev, path
    assert anon.get(f"/resolve/{REF}@main/").json()["revision_sha256"] != rev


def test_unknown_and_malformed_references(anon):
    main = anon.get(f"/resolve/{REF}@main/").json()
    for path in ("/resolve/avala-public/nope@main/", "/resolve/nobody/robot-pick-place@main/",
                 f"/resolve/{REF}@v9/", f"/resolve/{REF}@{'0' * 64}/",
                 f"/resolve/uid/{main['dataset_uid']}/{'0' * 64}/", f"/resolve/uid/not-a-uid/{'0' * 64}/",
                 f"/resolve/uid/{main['dataset_uid']}/{main['revision_sha256']}/objects/"
                 "00000000-0000-4000-8000-000000000000/access/",
                 f"/resolve/{REF}/"):
        r = anon.get(path)
        assert r.status_code == 404 and r.json()["detail"], path
    for path in ("/resolve/Avala-Public/robot-pick-place@main/", f"/resolve/{REF}@Main/", "/resolve/a/b@c@d/"):
        r = anon.get(path)
        assert r.status_code == 400 and r.json()["detail"].startswith("Invalid dataset reference"), path


def test_no_key_is_needed_and_any_key_sees_the_same_world_level_state(mock, anon):
    plain = anon.get(f"/resolve/{REF}@main/").json()
    for key in (mock.api_key, SECOND_ORG_KEY, "not-a-key"):
        r = anon.get(f"/resolve/{REF}@main/", headers={"X-Avala-Api-Key": key})
        assert r.status_code == 200 and r.json() == plain


# --- R3 ------------------------------------------------------------------------------------------------------

def test_object_pages_carry_cursor_tokens_and_never_overlap(anon):
    doc = anon.get(f"/resolve/{REF}@main/").json()
    path = doc["manifest"]["objects_path"]
    first = anon.get(path, params={"limit": 50}).json()
    assert first["previous_cursor"] is None and len(first["results"]) == 50
    assert first["next_cursor"] and "://" not in first["next_cursor"] and "?" not in first["next_cursor"]
    assert first["manifest_sha256"] == doc["manifest"]["sha256"] and first["canonical_reference"] == doc["canonical_reference"]
    second = anon.get(path, params={"limit": 50, "cursor": first["next_cursor"]}).json()
    assert second["previous_cursor"] and len(second["results"]) == 50
    back = anon.get(path, params={"limit": 50, "cursor": second["previous_cursor"]}).json()
    assert back["results"] == first["results"]
    everything = all_objects(anon, doc, limit=50)
    keys = [(o["role"], o["ordinal"], o["logical_path"]) for o in everything]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 128
    o = everything[0]
    assert o["access_path"] == f"{path}{o['object_uid']}/access/"
    default = anon.get(path).json()
    assert len(default["results"]) == 100 and default["next_cursor"]


def test_role_ordinal_and_ordinals_filters(anon):
    doc = anon.get(f"/resolve/{REF}@main/").json()
    path = doc["manifest"]["objects_path"]
    frames = all_objects(anon, doc, role="frame", limit=40)
    assert len(frames) == 120 and {f["role"] for f in frames} == {"frame"}
    assert all(f["episode_ordinal"] == f["ordinal"] // 20 for f in frames)
    episodes = anon.get(path, params={"role": "episode"}).json()["results"]
    assert [e["ordinal"] for e in episodes] == list(range(6)) and all(e["episode_ordinal"] is None for e in episodes)
    one = anon.get(path, params={"role": "frame", "ordinal": 41}).json()
    assert [f["logical_path"] for f in one["results"]] == ["episodes/episode_000002/frames/frame_0001.jpg"]
    assert one["next_cursor"] is None and one["previous_cursor"] is None
    assert anon.get(path, params={"role": "frame", "ordinal": 9999}).json()["results"] == []
    some = anon.get(path, params=[("role", "episode"), ("ordinals", "4"), ("ordinals", "1"), ("ordinals", "77")]).json()
    assert [e["ordinal"] for e in some["results"]] == [1, 4] and some["next_cursor"] is None


def test_object_page_errors(anon):
    doc = anon.get(f"/resolve/{REF}@main/").json()
    path = doc["manifest"]["objects_path"]
    first = anon.get(path, params={"limit": 10}).json()
    bad = [
        {"ordinals": "1"},                                            # needs a role
        {"ordinal": "1"},                                             # needs a role
        {"role": "frame", "ordinal": "1", "ordinals": "2"},
        {"role": "frame", "ordinal": "1", "cursor": first["next_cursor"]},
        {"cursor": "not-a-token"},
        {"role": "frame", "cursor": first["next_cursor"]},            # a token of another listing
        {"limit": "101"},
        {"limit": "0"},
        {"role": "Frame"},
        [("role", "episode"), ("ordinals", "1"), ("ordinals", "1")],  # not unique
        [("role", "episode"), ("ordinals", "-1")],
    ]
    for params in bad:
        r = anon.get(path, params=params)
        assert r.status_code == 400 and r.json()["detail"], (params, r.text)


# --- R4 ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_access_grant_lives_at_most_300_s_past_the_date_header(mock, anon, method):
    doc = anon.get(f"/resolve/{REF}@main/").json()
    obj = anon.get(doc["manifest"]["objects_path"], params={"role": "frame", "ordinal": 7}).json()["results"][0]
    r = anon.request(method, obj["access_path"], params={"transport": "avala-edge-v1"})
    assert r.status_code == 200, r.text
    grant = r.json()
    date = parsedate_to_datetime(r.headers["Date"])
    expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))
    assert 0 < (expires - date).total_seconds() <= 300
    assert date.timestamp() == int(mock.clock()["epoch"]), "Date comes from the virtual clock"
    assert grant["provider"] == "avala_edge" and grant["method"] == "GET" and grant["range_supported"] is True
    for key in ("canonical_reference", "dataset_uid", "revision_sha256"):
        assert grant[key] == doc[key]
    assert grant["manifest_sha256"] == doc["manifest"]["sha256"]
    assert (grant["object_uid"], grant["size_bytes"], grant["sha256"]) == (obj["object_uid"], obj["size_bytes"], obj["sha256"])
    assert grant["url"].startswith(
        f"https://data.avala.ai/v1/datasets/{doc['dataset_uid']}/{doc['revision_sha256']}/{doc['manifest']['sha256']}"
        f"/objects/{obj['object_uid']}/{obj['sha256']}?grant=")
    mock.advance(120)
    later = anon.request(method, obj["access_path"], params={"transport": "avala-edge-v1"})
    assert parsedate_to_datetime(later.headers["Date"]) - date == timedelta(seconds=120)
    assert later.json()["expires_at"] != grant["expires_at"]


def test_access_grant_errors(anon):
    doc = anon.get(f"/resolve/{REF}@main/").json()
    obj = anon.get(doc["manifest"]["objects_path"], params={"limit": 1}).json()["results"][0]
    assert anon.get(obj["access_path"], params={"transport": "s3-direct"}).status_code == 400
    assert anon.post(obj["access_path"], json={"x": 1}).status_code == 400
    other = anon.get(f"/resolve/{SIGNS}@main/").json()
    wrong = f"{other['manifest']['objects_path']}{obj['object_uid']}/access/"  # object of another revision
    assert anon.get(wrong).status_code == 404


# --- the SDK -------------------------------------------------------------------------------------------------

def test_sdk_load_resolves_iterates_and_stops_at_the_https_download(mock):
    with load(REF, mock) as ds:
        assert ds.requested_reference == f"{REF}@main" and ds.object_count == 128
        assert ds.display_reference == f"{REF}@{ds.revision_sha256}"
        assert ds.canonical_reference == f"avala://datasets/{ds.dataset_uid}@{ds.revision_sha256}"
        assert ds.rights["name"] == "CC-BY-4.0" and len(ds.manifest_sha256) == 64 and ds.revision_uid
        objects = list(ds.objects)  # two pages; the SDK checks order, counts, sizes and episode references
        assert len(objects) == 128 and sum(o.size_bytes for o in objects) == ds.total_size_bytes
        frames = list(ds.for_role("frame"))  # triggers the repeated-`ordinals` episode lookups
        assert len(frames) == 120 and frames[25].episode_ordinal == 1
        assert ds.episodes[3].logical_path == "episodes/episode_000003.json"
        with pytest.raises(IndexError):
            ds.episodes[6]
        with pytest.raises(DatasetIntegrityError) as err:
            frames[0].read()  # POST grant -> https://data.avala.ai is not trusted for a non-production root
        assert err.value.reason == "untrusted_download_host"
        canonical_ref = ds.canonical_reference
        grant_data = httpx.get(mock.base_url + frames[0]._document.access_path).json()
        date = httpx.get(mock.base_url + frames[0]._document.access_path).headers["Date"]
    # The same grant passes every other check of the SDK against the production API root:
    grant = _resolver._parse_access_grant(grant_data, date_header=date, revision=ds._revision,
                                          manifest_object=frames[0]._document, base_url="https://api.avala.ai/api/v1")
    assert grant.provider == "avala_edge" and grant.sha256 == frames[0].sha256

    with avala.load(canonical_ref, base_url=mock.base_url) as exact:  # R2, no alias warning
        assert exact.requested_reference == canonical_ref and exact.object_count == 128
    with load("avala-public/street-signs", mock, revision="v1") as signs:
        assert [o.role for o in signs.for_role("image")][:2] == ["image", "image"] and signs.object_count == 41


def test_sdk_errors_for_withdrawn_and_unknown(mock, anon):
    rev = withdrawn_sha(anon)
    uid = anon.get(f"/resolve/{REF}@v1/").json()["dataset_uid"]
    with pytest.raises(DatasetRevisionWithdrawnError) as err:
        avala.load(f"{REF}@{rev}", base_url=mock.base_url)
    assert err.value.status_code == 410 and err.value.revision_sha256 == rev and err.value.dataset_uid == uid
    with pytest.raises(DatasetRevisionWithdrawnError):
        avala.load(f"avala://datasets/{uid}@{rev}", base_url=mock.base_url)
    with pytest.raises(DatasetIntegrityError) as err:  # by alias the SDK cannot bind the tombstone to a digest
        load(f"{REF}@v1", mock)
    assert err.value.reason == "withdrawal_identity_mismatch"
    with pytest.raises(DatasetResolverError) as err:
        load("avala-public/unknown", mock)
    assert err.value.reason == "not_found" and err.value.status_code == 404


def test_sdk_async_load(mock):
    async def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", avala.MutableDatasetAliasWarning)
            ds = await avala.async_load(SIGNS, base_url=mock.base_url)
        async with ds:
            paths = [o.logical_path async for o in ds.objects]
            second = await ds.for_role("image").get(2)
            return ds.object_count, paths, second.logical_path

    count, paths, second = asyncio.run(go())
    assert count == len(paths) == 41 and paths[0] == "images/000000.jpg" and paths[-1] == "labels.json"
    assert second == "images/000002.jpg"


def test_cli_datasets_resolve_without_a_key(mock):
    env = {**mock.env(), "AVALA_API_KEY": None}
    out = avala_cli(env, "-o", "json", "datasets", "resolve", REF, "--revision", "v2")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["requested_reference"] == f"{REF}@v2" and data["object_count"] == 128
    assert data["rights"]["access"] == "open_download"
    gone = avala_cli(env, "datasets", "resolve", "avala-public/nothing-here")
    assert gone.returncode != 0 and "not_found" in gone.stderr


# --- backend: bytes behind the digests -----------------------------------------------------------------------

def test_every_object_digest_is_the_sha256_of_its_bytes():
    world = build_world(seed=11, clock=Clock("manual"))
    reg = resolver.registry(world)
    assert {name for _, name in reg.datasets} == {"robot-pick-place", "street-signs"}
    for ds in reg.by_uid.values():
        for rev in ds.revisions:
            for obj in rev.objects:
                data = resolver.object_bytes(obj)
                assert len(data) == obj.size_bytes and sha(data) == obj.sha256
                if obj.content_type == "application/json":
                    json.loads(data)
                elif obj.content_type == "image/jpeg":
                    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
    again = resolver.registry(build_world(seed=11, clock=Clock("manual")))
    assert [r.sha256 for d in again.by_uid.values() for r in d.revisions] == \
           [r.sha256 for d in reg.by_uid.values() for r in d.revisions], "same seed, same digests"
