"""Slices through the official SDK (sync and async) and raw HTTP, plus the selection rules on a world
built in-process: items are real dataset items matching the query, sampling is seeded, the status
follows the clock, and another organisation sees nothing."""

from __future__ import annotations

import asyncio

import avala
import numpy as np
import pytest
from avala.errors import AvalaError, NotFoundError, ValidationError

from avala_mock.fixtures.world import build_world
from avala_mock.simulators import slices
from avala_mock.simulators.clock import Clock
from avala_mock.simulators.errors import Conflict, Invalid, NotFound
from helpers import SECOND_ORG_KEY

OWNER = "acme-robotics"
OTHER_OWNER = "globex-vision"


def dataset(client: avala.Client, slug: str):
    return next(d for d in client.datasets.list(limit=100) if d.slug == slug)


def all_items(client: avala.Client, owner: str, slug: str, limit: int = 7) -> list:
    out, cursor = [], None
    while True:
        page = client.slices.list_items(owner, slug, limit=limit, cursor=cursor)
        out.extend(page.items)
        if not page.has_more:
            return out
        cursor = page.next_cursor


# --- SDK: seeded state, models populated -------------------------------------------------------------------

def test_seeded_slices_are_listed_with_every_field_populated(client):
    page = client.slices.list(OWNER)
    assert len(page.items) >= 2 and page.has_more is False
    for s in page.items:
        assert s.uid and s.name and s.slug
        assert s.owner_name == OWNER and s.organization["slug"] == OWNER and s.organization["uid"]
        assert s.visibility in ("private", "unlisted") and s.status == "ready"
        assert s.item_count > 0 and len(s.featured_slice_item_urls) == 4
        assert all("/_media/" in u and u.endswith(".jpg") for u in s.featured_slice_item_urls)
        assert s.sub_slices and s.sub_slices[0]["dataset"] and s.source_data["type"] == "dataset_query"
    sample = next(s for s in page.items if s.slug == "street-scenes-truck-sample")
    assert sample.item_count == 40 and sample.sub_slices[0]["query"] == "label=truck"


def test_get_and_items_of_a_seeded_slice(client):
    s = client.slices.get(OWNER, "street-scenes-first-hundred")
    assert s.item_count == 100 and s.name == "Street Scenes: first hundred"
    items = all_items(client, OWNER, s.slug, limit=30)
    assert [i.key for i in items] == [f"images/{k:06d}.jpg" for k in range(100)]
    assert len({i.uid for i in items}) == 100
    one = client.slices.get_item(OWNER, s.slug, items[42].uid)
    assert one.uid == items[42].uid and one.key == "images/000042.jpg"
    assert one.dataset_slug == "street-scenes" and one.dataset_owner_name == OWNER and "/_media/" in one.url
    assert one.metadata["width"] == 1280 and one.created_at is not None and one.thumbnails


# --- SDK: lifecycle ------------------------------------------------------------------------------------------

def test_create_then_list_get_items_and_status_on_the_clock(mock, client):
    ds = dataset(client, "warehouse-shelves")
    created = client.slices.create(name="Forklifts in aisle 7", visibility="public",
                                   sub_slices=[{"dataset": ds.uid, "query": "label=forklift"}],
                                   random_selection_count=25)
    assert created.slug == "forklifts-in-aisle-7" and created.owner_name == OWNER
    assert created.status == "creating" and created.item_count == 25 and created.featured_slice_item_urls == []
    assert created.visibility == "public" and created.sub_slices[0]["dataset"] == ds.uid
    assert created.sub_slices[0]["matched_item_count"] > 25
    assert created.source_data["random_selection_count"] == 25

    assert created.uid in [s.uid for s in client.slices.list(OWNER)]
    got = client.slices.get(OWNER, created.slug)
    assert got.uid == created.uid and got.status == "creating"

    items = all_items(client, OWNER, created.slug)
    assert len(items) == 25 and all(i.dataset == ds.uid for i in items)
    keys = [i.key for i in items]
    assert keys == sorted(keys), "sampled items keep dataset order"
    for it in (items[0], items[-1]):  # real items of the dataset, rendered the same way
        same = client.datasets.get_item(OWNER, ds.slug, it.uid)
        assert same.key == it.key and same.url == it.url

    mock.advance(slices.INDEX_BASE_S + slices.INDEX_PER_ITEM_S * 25 + 0.1)
    ready = client.slices.get(OWNER, created.slug)
    assert ready.status == "ready" and len(ready.featured_slice_item_urls) == 4
    assert ready.featured_slice_item_urls[0] == items[0].thumbnails[0]


def test_key_queries_and_several_sub_slices_union_without_duplicates(client):
    s = client.slices.create(name="Mixed", visibility="private", sub_slices=[
        {"dataset": "street-scenes", "query": "key~images/00001"},        # items 10..19
        {"dataset": f"{OWNER}/street-scenes", "query": "key=images/000012.jpg"},  # already in
        {"dataset": "retail-products", "query": "key=images/000003.jpg"},
    ])
    assert s.item_count == 11
    assert [x["matched_item_count"] for x in s.sub_slices] == [10, 1, 1]
    items = all_items(client, OWNER, s.slug)
    assert [(i.dataset_slug, i.key) for i in items] == (
        [("street-scenes", f"images/{k:06d}.jpg") for k in range(10, 20)] + [("retail-products", "images/000003.jpg")]
    )


def test_empty_query_selects_every_item_and_sampling_is_deterministic(mock, client):
    a = client.slices.create(name="All crops", visibility="private", sub_slices=[{"dataset": "retail-products"}])
    assert a.item_count == 2500
    b = client.slices.create(name="Sampled", visibility="private",
                             sub_slices=[{"dataset": "retail-products", "query": ""}], random_selection_count=12)
    first = [i.uid for i in all_items(client, OWNER, b.slug, limit=100)]
    mock.reset()  # same seed, same requests -> same sample
    client.slices.create(name="All crops", visibility="private", sub_slices=[{"dataset": "retail-products"}])
    client.slices.create(name="Sampled", visibility="private",
                         sub_slices=[{"dataset": "retail-products", "query": ""}], random_selection_count=12)
    assert [i.uid for i in all_items(client, OWNER, "sampled", limit=100)] == first and len(first) == 12


def test_async_client(mock):
    async def go():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            s = await c.slices.create(name="Async cyclists", visibility="private",
                                      sub_slices=[{"dataset": "street-scenes", "query": "label=cyclist"}],
                                      random_selection_count=5)
            listed = await c.slices.list(OWNER, limit=2)
            got = await c.slices.get(OWNER, s.slug)
            items = await c.slices.list_items(OWNER, s.slug, limit=10)
            one = await c.slices.get_item(OWNER, s.slug, items.items[3].uid)
            return s, listed, got, items, one

    s, listed, got, items, one = asyncio.run(go())
    assert s.item_count == 5 and got.uid == s.uid and len(listed.items) == 2 and listed.has_more
    assert len(items.items) == 5 and one.uid == items.items[3].uid and one.key


# --- errors --------------------------------------------------------------------------------------------------

def test_duplicate_slug_conflicts_and_writes_nothing(client, http):
    before = len(client.slices.list(OWNER, limit=100).items)
    client.slices.create(name="Night shots", visibility="private", sub_slices=[{"dataset": "street-scenes"}],
                         random_selection_count=3)
    with pytest.raises(AvalaError) as err:
        client.slices.create(name="night  SHOTS!", visibility="private", sub_slices=[{"dataset": "street-scenes"}])
    assert err.value.status_code == 409 and "night-shots" in err.value.message
    assert len(client.slices.list(OWNER, limit=100).items) == before + 1


@pytest.mark.parametrize(("sub", "needle"), [
    ({"dataset": "no-such-dataset", "query": "label=car"}, "no-such-dataset"),
    ({"dataset": "street-scenes", "query": "label"}, "Malformed"),
    ({"dataset": "street-scenes", "query": "colour=red"}, "unknown field"),
    ({"dataset": "street-scenes", "query": "key!=x"}, "key takes"),
    ({"dataset": "street-scenes", "query": "label="}, "no value"),
    ({"dataset": "street-scenes", "query": "label=giraffe"}, "giraffe"),
    ({"dataset": "street-scenes", "query": 5}, "string"),
    ({"query": "label=car"}, "dataset"),
])
def test_bad_sub_slices_are_400_and_write_nothing(client, http, sub, needle):
    before = len(http.get(f"slices/{OWNER}/list/", params={"limit": 100}).json()["results"])
    r = http.post("slices/", json={"name": "Bad", "visibility": "private", "sub_slices": [sub]})
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"] and "sub_slices" in r.json()["errors"]
    assert len(http.get(f"slices/{OWNER}/list/", params={"limit": 100}).json()["results"]) == before
    with pytest.raises(ValidationError):
        client.slices.create(name="Bad", visibility="private", sub_slices=[sub])


def test_other_bad_bodies_are_400(http):
    good = [{"dataset": "street-scenes"}]
    cases = [
        ({"name": "x", "visibility": "secret", "sub_slices": good}, "visibility"),
        ({"name": "!!!", "visibility": "private", "sub_slices": good}, "name"),
        ({"name": "List", "visibility": "private", "sub_slices": good}, "name"),
        ({"name": "x", "visibility": "private", "sub_slices": good, "organization": OTHER_OWNER}, "organization"),
        ({"name": "x", "visibility": "private", "sub_slices": []}, "sub_slices"),
        ({"name": "x", "visibility": "private"}, "sub_slices"),
        ({"name": "x", "visibility": "private", "sub_slices": good, "random_selection_count": 0}, "random_selection_count"),
    ]
    for body, field in cases:
        r = http.post("slices/", json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["errors"], (body, r.json())
    ok = http.post("slices/", json={"name": "Mine", "visibility": "private", "sub_slices": good, "organization": OWNER})
    assert ok.status_code == 201 and ok.json()["owner_name"] == OWNER


def test_unknown_owner_slug_and_item_are_404(client, http):
    with pytest.raises(NotFoundError):
        client.slices.list("nobody")
    with pytest.raises(NotFoundError):
        client.slices.get(OWNER, "no-such-slice")
    with pytest.raises(NotFoundError):
        client.slices.list_items(OWNER, "no-such-slice")
    s = client.slices.get(OWNER, "street-scenes-first-hundred")
    outside = client.datasets.list_items(OWNER, "street-scenes", limit=200).items[150]  # in the dataset, not the slice
    with pytest.raises(NotFoundError):
        client.slices.get_item(OWNER, s.slug, outside.uid)
    r = http.get(f"slices/{OWNER}/{s.slug}/items/list/", params={"cursor": "garbage"})
    assert r.status_code == 404 and r.json()["detail"] == "Invalid cursor."
    r = http.get(f"slices/{OWNER}/{s.slug}/")
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"].isdigit()
    assert http.get(f"slices/{OWNER}/list/", headers={"X-Avala-Api-Key": ""}).status_code == 401


def test_list_pages_are_disjoint_and_complete(client):
    for k in range(5):
        client.slices.create(name=f"Page test {k}", visibility="private", sub_slices=[{"dataset": "retail-products"}],
                             random_selection_count=1)
    seen, cursor = [], None
    while True:
        page = client.slices.list(OWNER, limit=2, cursor=cursor)
        seen.extend(s.uid for s in page.items)
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == len(client.slices.list(OWNER, limit=100).items) >= 9


# --- tenant isolation ---------------------------------------------------------------------------------------

def test_another_organisation_cannot_see_or_use_the_first_ones_slices(mock, client):
    mine = client.slices.create(name="Secret selection", visibility="private", sub_slices=[{"dataset": "street-scenes"}],
                                random_selection_count=3)
    item = client.slices.list_items(OWNER, mine.slug).items[0]
    other = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    try:
        for call in (lambda: other.slices.list(OWNER), lambda: other.slices.get(OWNER, mine.slug),
                     lambda: other.slices.list_items(OWNER, mine.slug),
                     lambda: other.slices.get_item(OWNER, mine.slug, item.uid)):
            with pytest.raises(NotFoundError):
                call()
        theirs = other.slices.list(OTHER_OWNER).items
        assert theirs and mine.uid not in {s.uid for s in theirs}
        assert all(s.owner_name == OTHER_OWNER for s in theirs)
        # their datasets are theirs: the first org's dataset is unknown to them (400), theirs works
        with pytest.raises(ValidationError):
            other.slices.create(name="Steal", visibility="private", sub_slices=[{"dataset": "street-scenes"}])
        own = other.slices.create(name="Secret selection", visibility="private",
                                  sub_slices=[{"dataset": "crop-fields", "query": "label=weed"}])
        assert own.owner_name == OTHER_OWNER and own.slug == mine.slug  # slugs are unique per owner only
        with pytest.raises(NotFoundError):
            other.slices.get_item(OTHER_OWNER, own.slug, item.uid)
    finally:
        other.close()
    assert client.slices.get(OWNER, mine.slug).uid == mine.uid


# --- backend rules on an in-process world -------------------------------------------------------------------

@pytest.fixture(scope="module")
def world():
    return build_world(seed=3, clock=Clock("manual"))


def _store(world, slug):
    return next(s for s in world.stores.values() if s.org.slug == slug)


def test_label_query_selects_exactly_the_items_with_that_ground_truth_label(world):
    store = _store(world, OWNER)
    ds = store.dataset_by_slug(OWNER, "street-scenes")
    car, bus = ds.labels.index("car"), ds.labels.index("bus")

    def labels_of(i):
        return set(ds.gt.labels[ds.gt.offsets[i]:ds.gt.offsets[i + 1]].tolist())

    got = slices.select(ds, slices.parse_query("label=car"))
    assert got.tolist() == [i for i in range(len(ds.item_uids)) if car in labels_of(i)]
    got = slices.select(ds, slices.parse_query("label=bus & label!=car AND key~images/001"))
    expected = [i for i in range(1000, 2000) if bus in labels_of(i) and car not in labels_of(i)]
    assert got.tolist() == expected and expected
    either = slices.select(ds, slices.parse_query("label=car,bus"))
    assert set(either.tolist()) == {i for i in range(len(ds.item_uids)) if labels_of(i) & {car, bus}}
    assert np.array_equal(slices.select(ds, slices.parse_query("  ")), np.arange(len(ds.item_uids)))


def test_sampled_members_are_a_subset_of_the_matches(world):
    store = _store(world, OWNER)
    ds = store.dataset_by_slug(OWNER, "warehouse-shelves")
    rec = slices.create_slice(world, store, name="Unit sample", visibility="private",
                              sub_slices=[{"dataset": ds.uid, "query": "label=person"}], random_selection_count=30)
    matches = set(slices.select(ds, slices.parse_query("label=person")).tolist())
    picked = [i for _, i in rec["_members"]]
    assert len(picked) == 30 and set(picked) <= matches and picked == sorted(picked)
    assert slices.status(rec, world.clock.now()) == "creating"
    world.clock.advance(slices.INDEX_BASE_S + 30 * slices.INDEX_PER_ITEM_S)
    assert slices.status(rec, world.clock.now()) == "ready"
    with pytest.raises(Conflict):
        slices.create_slice(world, store, name="unit-sample", visibility="private", sub_slices=[{"dataset": ds.uid}])
    with pytest.raises(Invalid):
        slices.parse_query("label=car & ")


def test_members_are_runs_paged_across_their_bounds_and_found_by_uid(world):
    store = _store(world, OWNER)
    shelves, scenes = store.dataset_by_slug(OWNER, "warehouse-shelves"), store.dataset_by_slug(OWNER, "street-scenes")
    pairs = [(shelves, 5), (shelves, 3), (scenes, 9), (scenes, 1), (shelves, 7)]  # slice order, not index order
    members = slices.Members.of_pairs(pairs)
    assert len(members) == 5 and list(members) == pairs and len(members.runs) == 3
    for start, stop in [(0, 5), (1, 4), (2, 3), (4, 9), (5, 6), (0, 0)]:
        assert members.page(start, stop) == pairs[start:stop]
    assert members.find(scenes.item_uids[1]) == (scenes, 1) and members.find(shelves.item_uids[7]) == (shelves, 7)
    assert members.find(shelves.item_uids[4]) is None and members.find(scenes.item_uids[5]) is None
    assert members.find("not-a-uid") is None
    # a slice saved by an older build (a list of pairs and a uid -> position map) is read as runs
    old = {"slug": "old", "_members": list(pairs), "_position": {ds.item_uids[i]: k for k, (ds, i) in enumerate(pairs)}}
    assert slices.member(old, scenes.item_uids[9]) == (scenes, 9) and "_position" not in old
    with pytest.raises(NotFound):
        slices.member(old, scenes.item_uids[2])
