"""The asyncio side of the event bus: a background task that performs the webhook and callback POSTs.

It wakes every ``POLL_S`` (and at once when kicked, e.g. right after ``POST /_mock/clock/advance/``),
drains what is due by the virtual clock and sends each POST as its own task with a timeout, so a slow
or dead receiver never holds up the request path or the other deliveries. Results go back to the bus,
which records the attempt and schedules any retry on the virtual clock.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from yarl import URL

from avala_mock.mock_server.outbound import OutboundPolicy, PolicyResolver, Refused, literal_address
from avala_mock.mock_server.serving import LISTEN_PORTS
from avala_mock.mock_server.state import MockState
from avala_mock.simulators import events

log = logging.getLogger("avala_mock.events")
POLL_S = 0.05  # wall seconds between looks at the schedule (a heap peek when nothing is due)
SEND_TIMEOUT_S = 5.0
MAX_CONCURRENT_SENDS = 32
# Sends waiting for a slot at most; past this an attempt is recorded as failed at once and retried later
# on the virtual clock, as any failed delivery is, so a burst of events cannot queue without bound.
MAX_QUEUED_SENDS = 1000


class EventWorker:
    def __init__(self, state: MockState) -> None:
        self.state = state
        self.wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sends: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SENDS)

    async def start(self, app: web.Application) -> None:
        self.policy = OutboundPolicy(self.state.config.outbound_allow, app[LISTEN_PORTS])
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(self.policy))
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S), connector=connector)
        self._task = asyncio.create_task(self._run(), name="avala-mock-events")
        if self.state.replicator is not None:
            self.state.replicator.resend = self.resend

    async def stop(self, app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            try:
                replicator = self.state.replicator
                if replicator is None:
                    self.drain_once()
                elif events.bus(self.state.world).ready(self.state.world.clock.now()):
                    async with replicator.exclusive():  # workers sharing a world: one of them drains each event
                        self.drain_once()
            except Exception:  # a bug must not stop deliveries for the rest of the run
                log.exception("event drain failed")

    def drain_once(self) -> int:
        """Emit what is due now and start its sends; returns how many sends started."""
        world = self.state.world
        bus = events.bus(world)
        now = world.clock.now()
        if not bus.ready(now):
            return 0
        durability = self.state.durability
        if durability is not None:
            durability.drained(now)
        with world.clock.pinned(now):
            outgoing = bus.drain(now, durability.worker if durability is not None else None)
        started = 0
        for out in outgoing:
            if len(self._sends) >= MAX_QUEUED_SENDS:
                self._report(bus, out, None, f"Not sent: the mock's outbound queue is full ({MAX_QUEUED_SENDS} sends waiting).")
                continue
            task = asyncio.create_task(self._send(bus, out))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            started += 1
        return started

    def resend(self, outs: list[events.Outgoing]) -> None:
        """Sends another worker drained and died before answering: made again here (at least once)."""
        bus = events.bus(self.state.world)
        for out in outs:
            task = asyncio.create_task(self._send(bus, out))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, bus: events.EventBus, out: events.Outgoing) -> None:
        assert self._session is not None
        status: int | None = None
        async with self._slots:
            try:
                self._check_literal(out.url)
                async with self._session.post(out.url, data=out.body, headers=out.headers, allow_redirects=False) as r:
                    status = r.status
                    text = (await r.content.read(4096)).decode("utf-8", "replace")
            except asyncio.TimeoutError:
                text = f"Timed out after {SEND_TIMEOUT_S:g} s waiting for the receiver."
            except Refused as exc:
                text = f"Not sent: {exc}."
            except aiohttp.ClientConnectorError as exc:
                refused = isinstance(exc.os_error, Refused)
                text = f"Not sent: {exc.os_error}." if refused else f"Connection failed: {type(exc).__name__}."
            except (aiohttp.ClientError, OSError) as exc:  # refused, reset, DNS: the URL itself is not echoed
                text = f"Connection failed: {type(exc).__name__}."
        async with self.state.writing():  # the attempt is a change of the (shared) world
            self._report(bus, out, status, text)
        self.wake.set()  # a retry may already be due (instant clock)

    def _report(self, bus: events.EventBus, out: events.Outgoing, status: int | None, text: str) -> None:
        world = self.state.world
        if bus.world is not world:  # the world was replaced while the POST was out
            if self.state.replicator is None:
                return  # a reset, load or restore: the new world knows nothing of this send, or sends it itself
            bus = events.bus(world)  # a worker rebuilt the same world (a reload): the send is still its own there
            out = bus.current(out, self.state.replicator.worker)
            if out is None:
                return
        now = world.clock.now()
        try:
            with world.clock.pinned(now):
                bus.report(out, status, text)
        except Exception:
            log.exception("recording a delivery attempt failed")
            return
        if self.state.durability is not None:
            self.state.durability.reported(out, status, text, now)


    def _check_literal(self, url: str) -> None:
        """Literal IP targets: the HTTP client connects to those without asking the resolver."""
        parts = URL(url)
        ip = literal_address(parts.host or "")
        if ip is not None:
            self.policy.check_address(parts.host or "", str(ip), parts.port or 0)


WORKER = web.AppKey("event_worker", EventWorker)


def register(app: web.Application, state: MockState) -> None:
    """Start the worker with the app and stop it (pending sends cancelled) on cleanup."""
    worker = EventWorker(state)
    app[WORKER] = worker
    app.on_startup.append(worker.start)
    app.on_cleanup.append(worker.stop)


def kick(app: web.Application) -> None:
    """Drain now, inside the caller's request, instead of at the next poll (the clock just moved): the
    delivery records and executions exist when the request answers; only the POSTs are in flight."""
    worker = app.get(WORKER)
    if worker is not None and worker._session is not None:
        try:
            worker.drain_once()
        except Exception:  # the clock moved regardless; the background loop will log it again
            log.exception("event drain failed")
