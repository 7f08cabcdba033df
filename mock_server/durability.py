"""``--state-dir``: every state change goes to the command log (simulators/commandlog.py) before the
request that made it is answered, and a restart rebuilds the same state from the last snapshot plus the
records after it.

What is logged, and when:
* an operation that changes state (any method but GET/HEAD, control operations included) and answered
  2xx: appended after it ran, before its answer goes out; what it set off while running (an event drain
  after a clock advance) is appended right after it, in the order it happened;
* an operation that replaces the world (reset, world or scenario load, snapshot restore): no record, a
  checkpoint instead (a new snapshot), also before its answer;
* event drains, webhook send results and bytes stored through the storage plane, as they happen.

Not persisted (it describes this process's traffic, not the simulated service): the request journal,
strict mode's violations and coverage, rate-limit bucket levels. A webhook delivery that was being sent
when the process stopped or died (drained, never answered) is sent again after the restart: the world
lists such sends, so a snapshot taken while one was on its way keeps it too.

A checkpoint every ``compact_every`` records keeps the log short: the state is copied on the event loop
(an in-process copy takes ~15 ms for the default world) and encoded and written in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from multidict import MultiDict
from yarl import URL

from avala_mock.mock_server import snapshot
from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import events
from avala_mock.simulators.blobstore import blobstore
from avala_mock.simulators.commandlog import LogStore
from avala_mock.simulators.errors import AvalaError
from avala_mock.simulators.world import key_digest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from aiohttp import web

    from avala_mock.simulators.world import World


class StateHolder(Protocol):
    """What durability needs of the server's state (mock_server/state.py's MockState)."""

    world: World

    def parts(self) -> dict[str, Any]: ...

    def restore(self, saved: dict) -> None: ...

log = logging.getLogger("avala_mock.durability")
UNLOGGED = frozenset({"GET", "HEAD"})


class ReplayRequest:
    """What a handler may read of its request, rebuilt from a log record (the world, the URL root)."""

    def __init__(self, app: web.Application, origin: str, path: str, query: dict[str, Any]) -> None:
        self.app = app
        self.url = URL(origin + path)
        self.scheme, self.host = self.url.scheme, self.url.raw_authority
        self.query = MultiDict({k: str(v) for k, v in query.items() if not isinstance(v, list)})
        self.headers: dict[str, str] = {}


class Durability:
    def __init__(self, state: StateHolder, store: LogStore, compact_every: int = 10_000) -> None:
        self.state = state
        self.store = store
        self.compact_every = compact_every
        self.app: web.Application | None = None
        self.handlers: dict[str, Callable] = {}
        self._nested: list[dict[str, Any]] | None = None  # records set off by the operation running now
        self._since_checkpoint = 0
        self._compacting: asyncio.Task | None = None
        self.replayed = 0
        self._records: list[dict[str, Any]] = []
        self._restored = False
        self.shared = False  # the log is shared with other workers (mock_server/replication.py)
        self.worker: str | None = None  # then: this worker's name, on its drain records (who sends what)

    # -- start-up ---------------------------------------------------------------------------------------
    def restore(self) -> bool:
        """Adopt the store's snapshot, if it has one (the server then builds no world of its own)."""
        saved, self._records = self.store.read()
        if saved is not None:
            self.state.restore(snapshot.decode_state(saved))  # the clock keeps its anchor: time ran while down
            self._restored = True
        return self._restored

    def open(self, app: web.Application, handlers: dict[str, Callable]) -> None:
        """Replay the records after the snapshot (or make the fresh world the first snapshot)."""
        self.app, self.handlers = app, handlers
        if not self._restored:
            self.checkpoint()
            return
        records, self._records = self._records, []
        for record in records:
            try:
                self._apply(record)
            except AvalaError as exc:  # it succeeded when it ran: a replay that fails is a bug; go on
                log.error("replaying record %s (%s) failed: %s", record.get("n"), record.get("k"), exc.detail)
            self.replayed += 1
        if not self.shared:  # drained, never answered before the stop: send again (workers: see replication.py)
            events.bus(self.state.world).requeue_unanswered()
        self._since_checkpoint = len(records)

    def _apply(self, record: dict[str, Any]) -> None:
        """Re-run one record. Webhook sends drained and not yet answered stay listed in the world's event
        bus with the worker making each (``EventBus.sending``); agent callbacks are best effort, never listed."""
        world = self.state.world
        kind = record["k"]
        with world.clock.pinned(record["t"]):
            if kind == "op":
                found = world.resolve_digest(record["key"]) if record.get("key") else None
                store, user = found if found is not None else (None, None)
                request = ReplayRequest(self.app, record["origin"], record["url"], record["query"])  # type: ignore[arg-type]
                ctx = Ctx(request, world, store, user, record["path"], record["query"], record["body"])  # type: ignore[arg-type]
                with world.secrets.replaying(record["draws"]):
                    self.handlers[record["op"]](ctx)
            elif kind == "drain":
                events.bus(world).drain(record["t"], record.get("w"))
            elif kind == "takeover":
                events.bus(world).taken_over(record["uids"], record["w"])
            elif kind == "report":
                bus = events.bus(world)
                found = bus.delivery(record["org"], record["uid"])
                if found is None:  # the delivery is gone: nothing to record
                    bus.sending.pop(record["uid"], None)
                else:  # what EventBus.report reads of a send: its organisation and its delivery
                    bus.report(events.Outgoing("webhook", "", b"", {}, *found), record["status"], record["text"])
            elif kind == "blob":
                bs = blobstore(world)
                if record["op"] == "put":
                    bs.put(record["key"], record["data"], record["t"], content_type=record["ct"], if_none_match=record["inm"])
                else:
                    bs.put_part(record["upload"], record["part"], record["data"])

    # -- while serving ------------------------------------------------------------------------------------
    @contextmanager
    def operation(self, op_id: str, request: web.Request, key: str | None, path: dict[str, str],
                  query: dict[str, Any], body: Any) -> Iterator[None]:
        """Run an operation with its draws captured; on success, append it (and what it set off)."""
        world = self.state.world
        self._nested = []
        try:
            with world.secrets.capturing() as draws:
                yield
            self._append({"k": "op", "op": op_id, "t": world.clock.now(), "key": key_digest(key) if key else None,
                          "path": path, "query": query, "body": body, "origin": str(request.url.origin()),
                          "url": request.path, "draws": draws})
        finally:
            nested, self._nested = self._nested, None
            for record in nested:
                self._append(record)

    def drained(self, now: float) -> None:
        self._append({"k": "drain", "t": now, **({"w": self.worker} if self.worker else {})})

    def reported(self, out: events.Outgoing, status: int | None, text: str, now: float) -> None:
        if out.kind == "webhook":
            self._append({"k": "report", "t": now, "org": out.store.org.uid, "uid": out.record["uid"],
                          "status": status, "text": text})

    def blob_put(self, key: str, data: bytes, now: float, content_type: str, if_none_match: str | None) -> None:
        self._append({"k": "blob", "op": "put", "t": now, "key": key, "data": data, "ct": content_type, "inm": if_none_match})

    def blob_part(self, upload: str, part: int, data: bytes, now: float) -> None:
        self._append({"k": "blob", "op": "part", "t": now, "upload": upload, "part": part, "data": data})

    def _append(self, record: dict[str, Any]) -> None:
        if self._nested is not None and record["k"] != "op":
            self._nested.append(record)
            return
        self.store.append(record)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.compact_every and self._compacting is None:
            self._since_checkpoint = 0
            try:
                self._compacting = asyncio.get_running_loop().create_task(self._compact())
            except RuntimeError:  # no loop (replay, tests): compact now
                self.checkpoint()

    # -- checkpoints --------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Make the state now the store's starting point (after a reset or a load: before it answers)."""
        upto = self.store.position()
        self.store.checkpoint(snapshot.encode_state(self.state.parts(), redact=False), upto)
        self._since_checkpoint = 0

    async def _compact(self) -> None:
        try:
            upto = self.store.position()
            copy = snapshot.freeze(self.state.parts())  # consistent: nothing runs on the loop meanwhile
            await asyncio.to_thread(lambda: self.store.checkpoint(snapshot.encode_state(snapshot.thaw(copy), redact=False), upto))
        except Exception:  # the log keeps every record: a failed compaction only makes the next start slower
            log.exception("compacting the command log failed")
        finally:
            self._compacting = None

    async def close(self, app: web.Application | None = None) -> None:
        if self._compacting is not None:
            await self._compacting
        if not self.shared:  # a shared log's snapshot is written only under the write lock
            self.checkpoint()
        self.store.close()

