"""Several workers, one world: the durable-state command log (mock_server/durability.py) kept in a Redis
stream that every worker appends to and applies.

Each worker holds the whole world in memory and stays current by applying the records the others
appended. The rules that make that consistent:

* **writes are serialised** — a state-changing operation takes the world's write lock in Redis, applies
  every record it has not seen yet, runs, appends its record (and what it set off) to the stream and only
  then answers and releases the lock; so records are applied everywhere in one order, seeded draws (uids)
  come out the same on every worker, and of two concurrent auto-label creates on one project exactly one
  answers 202 (the second sees the first's job and answers 409);
* **reads catch up first** — a read applies the stream's new records before answering, so a write that
  one worker acknowledged is seen by the next read on any worker (read-your-writes across workers);
* **one world to start from, one clock** — the first worker builds the world and stores it as the snapshot;
  the others load that snapshot (secrets, uids and the clock's anchor included) and apply the stream;
* **each event dispatched once** — draining due events is a state change like any other: under the lock,
  after catching up, so the worker that drains an event sends it, and the drain record tells the others it
  is gone.

Redis is the only shared component; a worker that dies loses nothing acknowledged (its records are in the
stream) and the others keep serving; the webhook sends it had in flight are made by a survivor once its
heartbeat (``<prefix>:alive:<worker>``) expires. The stream stays bounded: every ``--compact-every``
records the worker holding the lock writes a snapshot and trims what it holds (see ``RedisLog``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from avala_mock.mock_server import snapshot
from avala_mock.simulators import events
from avala_mock.simulators.commandlog import LogStore, frame, pack_snapshot, unframe, unpack_snapshot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from avala_mock.mock_server.durability import Durability

log = logging.getLogger("avala_mock.replication")
LOCK_TTL_MS = 10_000  # a lock holder that died is waited for this long at most
LOCK_POLL_S = 0.001
CATCH_UP_EVERY_S = 0.05  # idle workers stay this current, so due events are drained promptly
HEARTBEAT_S = 1.0  # a worker says it is alive this often ...
ALIVE_TTL_MS = 3_000  # ... and is taken for dead this long after it last did (its sends in flight are made again)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLog(LogStore):
    """The command log as a Redis stream (``<prefix>:log``), a record counter (``:n``), the snapshot
    (``:snapshot``) and the first record number it does not hold (``:upto``).

    A checkpoint trims the stream: every entry before the newest one goes (the snapshot holds them), the
    newest stays so that a worker that had not applied them meets a numbering gap (``last_n``) on its next
    catch-up and reloads from the snapshot instead of missing records."""

    def __init__(self, url: str, prefix: str, worker: str, client: Any = None) -> None:
        if client is None:
            try:
                import redis
            except ImportError:
                raise SystemExit("--redis needs the redis client: pip install 'avala-mock[workers]'") from None
            client = redis.Redis.from_url(url)
        self.redis = client
        self.prefix, self.worker = prefix, worker
        self.stream, self.snapshot_key, self.counter = f"{prefix}:log", f"{prefix}:snapshot", f"{prefix}:n"
        self.upto_key = f"{prefix}:upto"
        self.last_id = "0-0"  # the last stream entry this worker has applied (or written)
        self.last_n = -1  # that entry's record number
        self.upto = 0  # the snapshot's first record number not held, as this worker last saw it

    def append(self, record: dict[str, Any]) -> int:
        n = int(self.redis.incr(self.counter)) - 1
        self.last_id = self.redis.xadd(self.stream, {"n": n, "w": self.worker, "r": frame(record)}).decode()
        self.last_n = n
        return n

    def read(self) -> tuple[bytes | None, list[dict[str, Any]]]:
        # The snapshot and the stream in one MULTI: a checkpoint landing between two separate reads would pair
        # an older snapshot with an already trimmed stream, and the records between them would be skipped.
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.snapshot_key)
        pipe.xrange(self.stream, min="-")
        blob, raw = pipe.execute()
        state, upto = unpack_snapshot(blob) if blob else (None, 0)
        self.upto, self.last_n = upto, upto - 1
        records = []
        for entry_id, record, n, _worker in self._decoded(raw):
            self.last_id, self.last_n = entry_id, max(self.last_n, n)
            if n >= upto:
                records.append(record)
        return state, records

    def new_entries(self) -> list[tuple[str, dict[str, Any], int, str]]:
        """Entries after the last one this worker has seen, oldest first."""
        return self._entries(f"({self.last_id}")

    def _entries(self, start: str) -> list[tuple[str, dict[str, Any], int, str]]:
        return self._decoded(self.redis.xrange(self.stream, min=start))

    @staticmethod
    def _decoded(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, dict[str, Any], int, str]]:
        out = []
        for entry_id, fields in raw:
            records, _ = unframe(fields[b"r"])
            out.append((entry_id.decode(), records[0], int(fields[b"n"]), fields[b"w"].decode()))
        return out

    def missed(self, entries: list[tuple[str, dict[str, Any], int, str]]) -> bool:
        """Whether records between the last one seen and ``entries`` were trimmed away unseen."""
        return bool(entries) and entries[0][2] > self.last_n + 1

    def position(self) -> int:
        return int(self.redis.get(self.counter) or 0)

    def due(self, every: int) -> bool:
        """Whether ``every`` records were appended since the snapshot (asks Redis only when it looks so
        from here: another worker may have checkpointed meanwhile)."""
        if self.last_n + 1 - self.upto < every:
            return False
        self.upto = int(self.redis.get(self.upto_key) or 0)
        return self.last_n + 1 - self.upto >= every

    def checkpoint(self, state: bytes, upto: int) -> None:
        """Called holding the write lock, current with the stream: the snapshot, its number and the trim
        go together (MULTI), so no reader sees a trimmed stream next to an older snapshot."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.snapshot_key, pack_snapshot(state, upto))
        pipe.set(self.upto_key, upto)
        if self.last_id != "0-0":
            pipe.xtrim(self.stream, minid=self.last_id, approximate=False)  # exact (``~`` may keep all); the newest stays
        pipe.execute()
        self.upto = upto

    def close(self) -> None:
        self.redis.close()


class Replicator:
    """One worker's side: start from the shared snapshot, catch up, and serialise writes."""

    def __init__(self, state: Any, durability: Durability, log_store: RedisLog, compact_every: int = 10_000) -> None:
        self.state, self.durability, self.log = state, durability, log_store
        self.worker = log_store.worker
        self.resend: Callable[[list[events.Outgoing]], None] | None = None  # the event worker's, set at its start
        self._beat_at = 0.0
        self.taken_over = 0  # sends of dead workers this worker made again
        self.compact_every = compact_every
        self.reloads = 0  # times this worker fell behind a trim and reloaded the snapshot
        self._held = 0  # nesting depth of this worker's hold on the write lock
        self._catching = asyncio.Lock()  # one catch-up at a time: each record is applied once
        self._local = asyncio.Lock()  # one coroutine of this worker waits for the Redis lock, not all of them
        self._task: asyncio.Task | None = None

    @classmethod
    def for_state(cls, state: Any, url: str, prefix: str, compact_every: int = 10_000) -> Replicator:
        from avala_mock.mock_server.durability import Durability

        worker = f"{os.getpid()}-{secrets.token_hex(4)}"
        store = RedisLog(url, prefix, worker)
        # The log's own compaction is off and there is no snapshot at exit: a worker's state may lag the
        # stream between two catch-ups, so snapshots are written only under the write lock (``exclusive``:
        # every ``compact_every`` records, and when the world is replaced).
        durability = Durability(state, store, compact_every=1 << 62)
        durability.shared, durability.worker = True, worker
        state.durability = durability
        return cls(state, durability, store, compact_every)

    def start(self, build: Any) -> None:
        """Adopt the shared world, or build it and make it the shared one (under a start-up lock, so two
        workers starting together do not both build)."""
        with self.log.redis.lock(f"{self.log.prefix}:startup", timeout=120, blocking_timeout=120):
            if not self.durability.restore():
                build()
                self.durability.checkpoint()
                self.durability._restored = True  # open() applies the (no) records instead of checkpointing

    # -- serving ---------------------------------------------------------------------------------------
    async def catch_up(self) -> int:
        """Apply what other workers appended since this worker last looked; returns how many records."""
        async with self._catching:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        # Blocking calls, not a thread hop: a localhost Redis answers in tens of microseconds, less than
        # handing the call to a thread and back costs.
        entries = self.log.new_entries()
        if self.log.missed(entries):  # the log was trimmed past what this worker applied: start over
            return self._reload(behind=True)
        applied = 0
        for entry_id, record, n, worker in entries:
            self.log.last_id, self.log.last_n = entry_id, n
            if worker == self.worker:
                continue
            if record["k"] == "reload":  # another worker replaced the world: its snapshot and what followed
                return applied + self._reload(behind=False)
            try:
                self.durability._apply(record)
            except Exception:  # it succeeded where it ran; a failure here is a bug, logged, not fatal
                log.exception("applying record %s (%s) from worker %s failed", record.get("n"), record.get("k"), worker)
            applied += 1
        return applied

    def _reload(self, behind: bool) -> int:
        """The shared snapshot and every record after it, this worker's own included (its world is rebuilt);
        ``behind``: because the log was trimmed past what this worker had applied (else: the world was replaced)."""
        saved, records = self.log.read()
        if saved is not None:
            self.state.restore(snapshot.decode_state(saved))
        for record in records:
            try:
                self.durability._apply(record)
            except Exception:
                log.exception("applying record %s (%s) after a reload failed", record.get("n"), record.get("k"))
        if behind:
            self.reloads += 1
            log.info("worker %s reloaded the shared snapshot (the log was trimmed past it)", self.worker)
        return len(records)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the world's write lock (re-entrant within this worker), current with the stream."""
        if self._held:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        token = f"{self.worker}:{secrets.token_hex(4)}"
        key = f"{self.log.prefix}:lock"
        r = self.log.redis
        async with self._local:
            deadline = time.monotonic() + LOCK_TTL_MS / 1000 * 3
            while not r.set(key, token, nx=True, px=LOCK_TTL_MS):
                if time.monotonic() > deadline:
                    raise TimeoutError("the shared world's write lock was not released in time")
                await asyncio.sleep(LOCK_POLL_S)
            self._held = 1
            try:
                await self.catch_up()
                yield
                if self.log.due(self.compact_every):  # current and still holding the lock: a consistent cut
                    try:
                        self.durability.checkpoint()
                    except Exception:  # the stream keeps every record: a failed checkpoint only delays the trim
                        log.exception("checkpointing the shared log failed")
            finally:
                self._held = 0
                r.eval(_RELEASE, 1, key, token)

    def describe(self) -> dict[str, Any]:
        return {"worker": self.worker, "applied_records": self.log.last_n + 1, "snapshot_upto": self.log.upto,
                "reloads": self.reloads, "sends_taken_over": self.taken_over}

    # -- sends of workers that died ------------------------------------------------------------------
    def _alive_key(self, worker: str) -> str:
        return f"{self.log.prefix}:alive:{worker}"

    async def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._beat_at < HEARTBEAT_S:
            return
        self._beat_at = now
        self.log.redis.set(self._alive_key(self.worker), 1, px=ALIVE_TTL_MS)
        if events.bus(self.state.world).sending and self.resend is not None:
            await self._take_over()

    async def _take_over(self) -> None:
        """Make the in-flight sends (the world lists them, ``EventBus.sending``) of workers that stopped
        saying they are alive, or of no known worker (a loaded world's). Under the write lock and recorded
        (``takeover``), so of the survivors exactly one makes each; a send the dead worker did complete but
        had not reported is made twice (at least once, as any webhook sender on a crash)."""
        r = self.log.redis
        senders = {sender for _, sender in events.bus(self.state.world).sending.values()} - {self.worker}
        dead = {w for w in senders if w is None or not r.exists(self._alive_key(w))}
        if not dead:
            return
        async with self.exclusive():  # current: a report or takeover made meanwhile is applied first
            dead = {w for w in dead if w is None or not r.exists(self._alive_key(w))}  # still dead after the wait
            bus = events.bus(self.state.world)
            outs = bus.unanswered(dead)
            if not outs:
                return
            uids = [out.record["uid"] for out in outs]
            self.durability._append({"k": "takeover", "t": self.state.world.clock.now(), "uids": uids, "w": self.worker})
            bus.taken_over(uids, self.worker)
            self.taken_over += len(outs)
            log.warning("worker %s makes %d send(s) in flight on worker(s) that stopped: %s",
                        self.worker, len(outs), ", ".join(sorted(w or "(none known)" for w in dead)))
            assert self.resend is not None
            self.resend(outs)

    def replaced_world(self) -> None:
        """After a reset or a load (already checkpointed): tell the other workers to reload."""
        self.durability._append({"k": "reload", "t": self.state.world.clock.now()})

    async def start_following(self, app: object = None) -> None:
        self.log.redis.set(self._alive_key(self.worker), 1, px=ALIVE_TTL_MS)  # alive before its first send
        self._beat_at = time.monotonic()
        self._task = asyncio.create_task(self.follow(), name="avala-mock-replication")

    async def stop_following(self, app: object = None) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def follow(self) -> None:
        """Keep an idle worker current (so it drains due events promptly and answers reads fast)."""
        while True:
            await asyncio.sleep(CATCH_UP_EVERY_S)
            try:
                if not self._held:
                    await self.catch_up()
                await self._heartbeat()
            except Exception:
                log.exception("catching up with the shared log failed")
