"""What a handler gets: the resolved organisation store, the validated query and body, and helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from avala_mock.mock_server.pagination import paginate
from avala_mock.simulators.world import OrgStore, User, World

API_KEY_HEADER = "X-Avala-Api-Key"  # the spec's ApiKeyAuth scheme
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]  # an aiohttp route handler


@dataclass(slots=True)
class Ctx:
    request: web.Request
    world: World
    store: OrgStore  # the key's organisation (unset only on anonymous operations)
    user: User | None
    path: dict[str, str]
    query: dict[str, Any]
    body: Any

    @property
    def now(self) -> float:
        return self.world.clock.now()

    def page(self, keys: Sequence[int], fetch: Callable[[int, int], list[Any]]) -> dict[str, Any]:
        return paginate(self.request, self.query, keys, fetch)

    def page_of(self, objects: Sequence[Any], render: Callable[[Any], dict], descending: bool = False) -> dict[str, Any]:
        """Page over objects that carry a ``seq`` (creation order); newest first when ``descending``."""
        keys = [-o.seq for o in objects] if descending else [o.seq for o in objects]
        return self.page(keys, lambda i, j: [render(o) for o in objects[i:j]])
