"""Slices (surface doc §2.16): a saved selection of real dataset items, chosen by a small query language
over the items' ground truth and keys, optionally sampled down (seeded) to ``random_selection_count``.

A slice is a plain record (``simulators/records.py``, kind ``slice``) in its organisation's store; its
members are fixed at creation (the selection is computed up front), and its ``status`` goes
``creating`` -> ``ready`` on the clock (a :class:`Timeline`: indexing takes 2 s + 1 ms per item).

Query language of a sub-slice (clauses joined by ``&`` or `` and ``; empty = every item):
``label=car`` (items with a ground-truth object of that label; ``label=car,truck`` any of them),
``label!=car`` (no such object), ``key=images/000001.jpg`` (exact key), ``key~0001`` (key contains).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from avala_mock.simulators.errors import Invalid, NotFound
from avala_mock.simulators.records import collection, new_record
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import Dataset, OrgStore, World

KIND = "slice"
VISIBILITIES = ("private", "unlisted", "public")
RESERVED_SLUGS = ("list",)
# The key an image item carries; mirrors mock_server/wire.py dataset_item (the backend has no key field).
ITEM_KEY = "images/{:06d}.jpg"
KEY_CHUNK = 65_536  # item keys formatted at once by a key query (a million would be ~70 MB of text)
INDEX_BASE_S, INDEX_PER_ITEM_S = 2.0, 0.001
_CLAUSE = re.compile(r"^\s*(?P<field>[a-z_]+)\s*(?P<op>!=|=|~)\s*(?P<value>.*?)\s*$")
_SPLIT = re.compile(r"\s*&\s*|\s+and\s+", re.IGNORECASE)
_OPS = {"label": ("=", "!="), "key": ("=", "~")}


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    values: tuple[str, ...]


def parse_query(text: str) -> list[Clause]:
    """Clauses of a sub-slice query; a malformed query is a 400 naming what is wrong."""
    if not text.strip():
        return []
    clauses = []
    for part in _SPLIT.split(text.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise Invalid(f"Malformed slice query {text!r}: {part!r} is not <field><op><value>.", field="sub_slices")
        name, op, value = m["field"], m["op"], m["value"]
        if name not in _OPS:
            raise Invalid(f"Malformed slice query {text!r}: unknown field {name!r} (use label or key).", field="sub_slices")
        if op not in _OPS[name]:
            raise Invalid(f"Malformed slice query {text!r}: {name} takes {' or '.join(_OPS[name])}, not {op!r}.",
                          field="sub_slices")
        values = tuple(v.strip() for v in value.split(",")) if name == "label" else (value,)
        if not all(values):
            raise Invalid(f"Malformed slice query {text!r}: {part!r} has no value.", field="sub_slices")
        clauses.append(Clause(name, op, values))
    return clauses


def select(ds: Dataset, clauses: list[Clause]) -> np.ndarray:
    """Indices (ascending) of the dataset's items matching every clause."""
    n = len(ds.item_uids)
    mask = np.ones(n, dtype=bool)
    for c in clauses:
        if c.field == "label":
            unknown = [v for v in c.values if v not in ds.labels]
            if unknown:
                raise Invalid(f"Label {unknown[0]!r} not found in {ds.owner_name}/{ds.slug} (labels: {', '.join(ds.labels)}).",
                              field="sub_slices")
            wanted = [ds.labels.index(v) for v in c.values]
            owner = np.repeat(np.arange(n), np.diff(ds.gt.offsets))
            has = np.zeros(n, dtype=bool)
            has[owner[np.isin(ds.gt.labels, wanted)]] = True
            mask &= has if c.op == "=" else ~has
        else:
            candidates = np.flatnonzero(mask)
            value = c.values[0]
            hit = np.zeros(len(candidates), dtype=bool)
            for a in range(0, len(candidates), KEY_CHUNK):  # in C, a chunk at a time: bounded memory
                keys = np.char.mod(ITEM_KEY.replace("{:06d}", "%06d"), candidates[a:a + KEY_CHUNK])
                hit[a:a + KEY_CHUNK] = keys == value if c.op == "=" else np.char.find(keys, value) >= 0
            mask[:] = False
            mask[candidates[hit]] = True
    return np.flatnonzero(mask)


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]


def find_dataset(store: OrgStore, ref: str) -> Dataset:
    """A sub-slice's dataset by uid, slug or ``owner/slug`` within the organisation; unknown -> 400."""
    if ref in store.datasets:
        return store.datasets[ref]
    owner, _, slug = ref.rpartition("/")
    for ds in store.datasets.values():
        if ds.slug == slug and owner in ("", ds.owner_name):
            return ds
    raise Invalid(f"Dataset {ref!r} not found.", field="sub_slices")


def create_slice(
    world: World,
    store: OrgStore,
    *,
    name: str,
    visibility: str,
    sub_slices: list[dict[str, Any]],
    organization: str | None = None,
    random_selection_count: int | None = None,
    ready: bool = False,
) -> dict[str, Any]:
    """Validate everything, then select and store the slice (nothing is written on a 4xx).
    ``ready`` makes a slice that finished indexing already (seeding)."""
    org = store.org
    if organization is not None and organization not in (org.uid, org.slug):
        raise Invalid(f"Organization {organization!r} not found among yours.", field="organization")
    if visibility not in VISIBILITIES:
        raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility")
    slug = slugify(name)
    if not slug:
        raise Invalid("The name must contain at least one letter or digit.", field="name")
    if slug in RESERVED_SLUGS:  # /slices/{owner}/list/ is the list route, so such a slice could never be read
        raise Invalid(f"The slug {slug!r} is reserved; choose another name.", field="name")
    collection(store, KIND).unique("slug", slug)  # one owner per store: the organisation
    plan = []
    for i, sub in enumerate(sub_slices):
        ref, query = sub.get("dataset"), sub.get("query", "")
        if not isinstance(ref, str) or not ref:
            raise Invalid(f"sub_slices[{i}].dataset must be a dataset uid or slug.", field="sub_slices")
        if query is None:
            query = ""
        if not isinstance(query, str):
            raise Invalid(f"sub_slices[{i}].query must be a string.", field="sub_slices")
        ds = find_dataset(store, ref)
        plan.append((ds, query, select(ds, parse_query(query))))

    # Members as (dataset, index array) runs, each item once in query order; a random selection picks
    # positions in that order before any per-item object is made (a query can match a million items).
    runs: list[tuple[Dataset, np.ndarray]] = []
    seen: dict[str, np.ndarray] = {}
    described = []
    for ds, query, indices in plan:
        taken = seen.setdefault(ds.uid, np.zeros(len(ds.item_uids), dtype=bool))
        indices = np.asarray(indices, dtype=np.int64)
        fresh = indices[~taken[indices]]
        taken[fresh] = True
        runs.append((ds, fresh))
        described.append({"dataset": ds.uid, "dataset_slug": ds.slug, "dataset_owner_name": ds.owner_name,
                          "query": query, "matched_item_count": len(indices)})
    uid = world.ids.uid()
    total = sum(len(fresh) for _, fresh in runs)
    if random_selection_count is not None and random_selection_count < total:
        rng = np.random.default_rng([world.seed, uuid.UUID(uid).int & 0xFFFFFFFF])
        chosen = np.sort(rng.choice(total, size=random_selection_count, replace=False))
        starts = np.cumsum([0] + [len(fresh) for _, fresh in runs])
        runs = [(ds, fresh[chosen[(chosen >= a) & (chosen < b)] - a]) for (ds, fresh), a, b in zip(runs, starts, starts[1:])]
    members = Members(runs)
    now = world.clock.now()
    if ready:
        timeline = Timeline([("creating", now - 60.0), ("ready", now - 30.0)])
    else:
        timeline = Timeline.start(world.clock, "creating", ("ready", INDEX_BASE_S + INDEX_PER_ITEM_S * len(members)))
    record = new_record(world, store, {
        "name": name,
        "slug": slug,
        "visibility": visibility,
        "item_count": len(members),
        "sub_slices": described,
        "source_data": {"type": "dataset_query", "random_selection_count": random_selection_count,
                        "datasets": sorted({d["dataset"] for d in described})},
        "_members": members,
        "_timeline": timeline,
    }, uid=uid)
    return collection(store, KIND).add(record)


def list_slices(store: OrgStore, owner: str) -> list[dict[str, Any]]:
    """The owner's slices in creation order. The only owner a key can see is its organisation, which
    owns every slice of the store (so ``owner_name`` is rendered from the organisation's current slug)."""
    _check_owner(store, owner)
    return collection(store, KIND).values()


def get_slice(store: OrgStore, owner: str, slug: str) -> dict[str, Any]:
    _check_owner(store, owner)
    found = collection(store, KIND).filter(slug=slug)
    if not found:
        raise NotFound(f"Slice {owner}/{slug} not found.")
    return found[0]


def member(record: dict[str, Any], item_uid: str) -> tuple[Dataset, int]:
    """The slice's item with this uid (an item of the dataset that is not in the slice -> 404)."""
    found = members(record).find(item_uid)
    if found is None:
        raise NotFound(f"Item {item_uid!r} not found in slice {record['slug']!r}.")
    return found


def members(record: dict[str, Any]) -> Members:
    """The slice's members (a state saved by an older build kept a list of pairs and a uid map: converted once)."""
    found = record["_members"]
    if isinstance(found, list):
        found = record["_members"] = Members.of_pairs(found)
        record.pop("_position", None)
    return found


class Members:
    """A slice's items in slice order as runs of (dataset, item indices): arrays, not an object and a uid
    string per item — a query can match a million items, and the slice is part of every snapshot."""

    def __init__(self, runs: list[tuple[Dataset, np.ndarray]]) -> None:
        self.runs = [(ds, np.asarray(ix, dtype=np.int64)) for ds, ix in runs if len(ix)]
        self.starts = np.cumsum([0] + [len(ix) for _, ix in self.runs]).astype(np.int64)
        # membership by binary search; a run in index order (a query's, always) is its own sorted copy
        self.sorted = [ix if bool(np.all(ix[1:] >= ix[:-1])) else np.sort(ix) for _, ix in self.runs]

    @classmethod
    def of_pairs(cls, pairs: list[tuple[Dataset, int]]) -> Members:
        runs: list[tuple[Dataset, list[int]]] = []
        for ds, index in pairs:
            if runs and runs[-1][0] is ds:
                runs[-1][1].append(index)
            else:
                runs.append((ds, [index]))
        return cls([(ds, np.asarray(ix, dtype=np.int64)) for ds, ix in runs])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __iter__(self) -> Iterator[tuple[Dataset, int]]:
        for ds, ix in self.runs:
            for k in ix.tolist():
                yield ds, k

    def page(self, start: int, stop: int) -> list[tuple[Dataset, int]]:
        """Members ``start:stop`` (slice positions), as (dataset, item index) pairs."""
        out: list[tuple[Dataset, int]] = []
        for (ds, ix), a, b in zip(self.runs, self.starts.tolist(), self.starts[1:].tolist()):
            lo, hi = max(start, a), min(stop, b)
            if lo < hi:
                out += [(ds, k) for k in ix[lo - a:hi - a].tolist()]
        return out

    def find(self, item_uid: str) -> tuple[Dataset, int] | None:
        for (ds, _), ordered in zip(self.runs, self.sorted):
            index = ds.item_index.get(item_uid)
            if index is not None:
                at = int(np.searchsorted(ordered, index))
                if at < len(ordered) and int(ordered[at]) == index:
                    return ds, int(index)
        return None


def status(record: dict[str, Any], now: float) -> str:
    return record["_timeline"].status(now)


def _check_owner(store: OrgStore, owner: str) -> None:
    if owner != store.org.slug:
        raise NotFound(f"Owner {owner!r} not found.")
