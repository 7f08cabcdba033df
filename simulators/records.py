"""Plain records for the resource groups whose objects are data with a little state (agents,
webhooks, organisations, fleet, ...): one ``Collection`` per kind per organisation, in creation order.

A record is a dict: its wire fields plus ``seq`` (creation order, the pagination key); timestamps are
virtual epoch seconds in keys ending with ``_at``; keys starting with ``_`` are private (secrets,
links to backend objects) and never rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from avala_mock.simulators.errors import Conflict, NotFound
from avala_mock.simulators.world import OrgStore, World


class Collection:
    """The records of one kind in one organisation."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, uid: str) -> bool:
        return uid in self._items

    def values(self) -> list[dict[str, Any]]:
        return list(self._items.values())  # dicts keep insertion (= seq) order

    def filter(self, predicate: Callable[[dict[str, Any]], bool] | None = None, **equal: Any) -> list[dict[str, Any]]:
        """Records whose fields equal ``equal`` (a ``None`` value means "any") and that pass ``predicate``."""
        wanted = {k: v for k, v in equal.items() if v is not None}
        return [
            r for r in self._items.values()
            if all(r.get(k) == v for k, v in wanted.items()) and (predicate is None or predicate(r))
        ]

    def get(self, uid: str) -> dict[str, Any]:
        try:
            return self._items[uid]
        except KeyError:
            raise NotFound(f"{self.kind} {uid!r} not found.") from None

    def find(self, key: str, value: Any) -> dict[str, Any]:
        """The record whose ``key`` equals ``value`` (e.g. a slug), or NotFound."""
        for record in self._items.values():
            if record.get(key) == value:
                return record
        raise NotFound(f"{self.kind} {value!r} not found.")

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        self._items[record["uid"]] = record
        return record

    def remove(self, uid: str) -> dict[str, Any]:
        record = self.get(uid)
        del self._items[uid]
        return record

    def remove_where(self, **equal: Any) -> int:
        """Remove every record whose fields equal ``equal`` (children of a deleted parent); returns how many."""
        if not equal or any(v is None for v in equal.values()):
            raise ValueError("remove_where needs concrete field values (None would match everything)")
        doomed = [r["uid"] for r in self.filter(**equal)]
        for uid in doomed:
            del self._items[uid]
        return len(doomed)

    def unique(self, key: str, value: Any, *, exclude: str | None = None) -> None:
        """409 unless no other record has ``key == value``."""
        for record in self._items.values():
            if record.get(key) == value and record["uid"] != exclude:
                raise Conflict(f"A {self.kind} with {key} {value!r} already exists.")


def collection(store: OrgStore, kind: str) -> Collection:
    """The organisation's collection of ``kind`` (created empty on first use)."""
    found = store.collections.get(kind)
    if found is None:
        found = store.collections[kind] = Collection(kind)
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
