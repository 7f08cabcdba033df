"""Plain records for the resource groups whose objects are data with a little state (agents,
webhooks, organisations, fleet, ...): one ``Collection`` per kind per organisation, in creation order.

A record is a dict: its wire fields plus ``seq`` (creation order, the pagination key); timestamps are
virtual epoch seconds in keys ending with ``_at``; keys starting with ``_`` are private (secrets,
links to backend objects) and never rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from avala_mock.simulators.errors import Conflict, NotFound
from avala_mock.simulators.world import OrgStore, World


@dataclass(frozen=True)
class Kind:
    """How a kind of record is kept: fields to index (immutable links to a parent, so listing a parent's
    children costs the children, not the whole collection) and, for long-lived logs, which records are
    finished (dropped first when the organisation's retention limit is passed)."""

    indexes: tuple[str, ...] = ()
    retained: bool = False
    finished: Callable[[dict[str, Any]], bool] | None = None


KINDS: dict[str, Kind] = {}


def declare(kind: str, *, indexes: tuple[str, ...] = (), retained: bool = False,
            finished: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Say how records of ``kind`` are kept; modules declare their kinds when imported."""
    KINDS[kind] = Kind(indexes, retained, finished)


class Collection:
    """The records of one kind in one organisation, in creation order, with the kind's indexes."""

    def __init__(self, kind: str, limit: int | None = None) -> None:
        self.kind = kind
        spec = KINDS.get(kind, Kind())
        self.indexes = spec.indexes
        self.limit = limit if spec.retained else None
        self.dropped = 0  # records let go by retention
        self._items: dict[str, dict[str, Any]] = {}
        self._index: dict[str, dict[Any, dict[str, dict[str, Any]]]] = {f: {} for f in self.indexes}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, uid: str) -> bool:
        return uid in self._items

    def values(self) -> list[dict[str, Any]]:
        return list(self._items.values())  # dicts keep insertion (= seq) order

    def filter(self, predicate: Callable[[dict[str, Any]], bool] | None = None, **equal: Any) -> list[dict[str, Any]]:
        """Records whose fields equal ``equal`` (a ``None`` value means "any") and that pass ``predicate``.
        An indexed field among ``equal`` narrows the scan to its records."""
        wanted = {k: v for k, v in equal.items() if v is not None}
        pool: Iterable[dict[str, Any]] = self._items.values()
        for name in self.indexes:
            if name in wanted:
                pool = self._index[name].get(wanted.pop(name), {}).values()
                break
        return [
            r for r in pool
            if all(r.get(k) == v for k, v in wanted.items()) and (predicate is None or predicate(r))
        ]

    def get(self, uid: str) -> dict[str, Any]:
        try:
            return self._items[uid]
        except KeyError:
            raise NotFound(f"{self.kind} {uid!r} not found.") from None

    def find(self, key: str, value: Any) -> dict[str, Any]:
        """The record whose ``key`` equals ``value`` (e.g. a slug), or NotFound."""
        for record in self.filter(**{key: value}):
            return record
        raise NotFound(f"{self.kind} {value!r} not found.")

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        uid = record["uid"]
        if uid in self._items:
            self._unindex(self._items[uid])
        self._items[uid] = record
        for name in self.indexes:
            self._index[name].setdefault(record.get(name), {})[uid] = record
        if self.limit is not None and len(self._items) > self.limit + max(1, self.limit // 10):
            self._prune()
        return record

    def remove(self, uid: str) -> dict[str, Any]:
        record = self.get(uid)
        del self._items[uid]
        self._unindex(record)
        return record

    def remove_where(self, **equal: Any) -> int:
        """Remove every record whose fields equal ``equal`` (children of a deleted parent); returns how many."""
        if not equal or any(v is None for v in equal.values()):
            raise ValueError("remove_where needs concrete field values (None would match everything)")
        doomed = [r["uid"] for r in self.filter(**equal)]
        for uid in doomed:
            self.remove(uid)
        return len(doomed)

    def unlink(self, field: str, value: Any) -> int:
        """Set ``field`` to None on every record where it equals ``value`` (its parent was deleted; the
        records stay, as history), keeping the index true. Returns how many changed."""
        found = self.filter(**{field: value})
        for record in found:
            self._unindex(record)
            record[field] = None
            for name in self.indexes:
                self._index[name].setdefault(record.get(name), {})[record["uid"]] = record
        return len(found)

    def unique(self, key: str, value: Any, *, exclude: str | None = None) -> None:
        """409 unless no other record has ``key == value``."""
        for record in self.filter(**{key: value}):
            if record["uid"] != exclude:
                raise Conflict(f"A {self.kind} with {key} {value!r} already exists.")

    def _unindex(self, record: dict[str, Any]) -> None:
        for name in self.indexes:
            bucket = self._index[name].get(record.get(name))
            if bucket is not None:
                bucket.pop(record["uid"], None)
                if not bucket:
                    del self._index[name][record.get(name)]

    def _prune(self) -> None:
        """Back to ``limit`` records: the oldest finished ones go first, then the oldest of any state.
        Runs once per ``limit // 10`` additions, so its scan costs O(1) per record added."""
        assert self.limit is not None
        excess = len(self._items) - self.limit
        finished = KINDS[self.kind].finished or (lambda r: True)
        doomed = [uid for uid, r in self._items.items() if finished(r)][:excess]
        if len(doomed) < excess:
            chosen = set(doomed)
            doomed += [uid for uid in self._items if uid not in chosen][: excess - len(doomed)]
        for uid in doomed:
            self.remove(uid)
        self.dropped += len(doomed)


def collection(store: OrgStore, kind: str) -> Collection:
    """The organisation's collection of ``kind`` (created empty on first use, kept as the kind declares)."""
    found = store.collections.get(kind)
    if found is None:
        found = store.collections[kind] = Collection(kind, store.retention)
    return found


def new_record(world: World, store: OrgStore, fields: dict[str, Any], *, uid: str | None = None) -> dict[str, Any]:
    """A record with a fresh seeded uid, the next ``seq`` and created/updated stamps from the clock."""
    now = world.clock.now()
    return {"uid": uid or world.ids.uid(), "seq": store.next_seq(), "created_at": now, "updated_at": now, **fields}


def patch(world: World, record: dict[str, Any], changes: dict[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Merge the allowed keys of a PATCH body into the record and bump ``updated_at``."""
    allowed = set(allowed)
    record.update({k: v for k, v in changes.items() if k in allowed})
    record["updated_at"] = world.clock.now()
    return record
