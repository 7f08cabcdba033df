"""The event bus: events happen on the virtual clock; subscribers get deliveries and executions.

Work that finishes in the future (an auto-label job's end, its drafts) is a *schedule*: a heap keyed by
virtual due time, one entry per job and kind, never one per item. ``drain(now)`` pops what is due and
emits it; a job's drafts are emitted in bulk for the window of items completed since the last drain
(``searchsorted`` over the job's completion times), then the entry is pushed back for the next item.
Emitting an event creates the webhook delivery records and agent executions at once (state is never
behind the clock) and queues :class:`Outgoing` sends; the HTTP worker performs them and reports back
through :meth:`EventBus.report`, which records the attempt and schedules a retry on the clock.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from avala_mock.simulators import agents as agents_mod
from avala_mock.simulators import dispatch
from avala_mock.simulators import webhooks as webhooks_mod
from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Conflict, Invalid
from avala_mock.simulators.world import ACCEPTED_RESULT, DRAFT_RESULT, REJECTED_RESULT, OrgStore, Project, World

LOG_LIMIT = 10_000  # emitted events kept for GET /_mock/events/
_SUCCESS = 0  # simulators.autolabel.SUCCESS (not imported: autolabel imports this module)
_DRAFTS, _END, _RETRY = 0, 1, 2  # same due time: drafts before the job's end event


@dataclass
class Outgoing:
    """One HTTP POST for the worker: a webhook delivery attempt or an agent callback."""

    kind: str  # "webhook" | "agent"
    url: str
    body: bytes
    headers: dict[str, str]
    store: OrgStore = field(repr=False)
    record: dict[str, Any] = field(repr=False)  # the delivery or the execution


class EventBus:
    """Per world (a reset builds a new one). All methods are thread-safe."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._lock = threading.RLock()
        self._heap: list[tuple[float, int, int, str]] = []
        self._entries: dict[str, tuple[str, Any, Any]] = {}  # key -> (kind, store, target)
        self._n = 0  # tie-breaker of the heap: insertion order
        self._outbox: list[Outgoing] = []
        self._drafts_done: dict[str, int] = {}  # job uid -> items whose result.submitted went out
        self.results: dict[str, tuple[Project, int]] = {}  # result uid -> (project, row)
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.emitted = 0

    # -- scheduling -------------------------------------------------------------------------------
    def _schedule(self, key: str, due: float, prio: int, kind: str, store: OrgStore, target: Any) -> None:
        self._entries[key] = (kind, store, target)
        self._n += 1
        heapq.heappush(self._heap, (due, prio, self._n, key))

    def next_due(self) -> float | None:
        with self._lock:
            while self._heap and self._heap[0][3] not in self._entries:
                heapq.heappop(self._heap)  # a cancelled entry
            return self._heap[0][0] if self._heap else None

    def ready(self, now: float) -> bool:
        """Anything to emit or send: an entry due by ``now`` or sends queued by an immediate event."""
        due = self.next_due()
        return bool(self._outbox) or (due is not None and due <= now)

    def emit_when(self, store: OrgStore, key: str, due: float, fire: str, target: Any) -> None:
        """At ``due``, emit what ``CALLS[fire](target)`` returns then (``(event, payload)``), or nothing if
        it returns None. Scheduled calls are a name and an object, not closures: the schedule is data."""
        with self._lock:
            self._schedule(key, due, _END, "call", store, (fire, target))

    def job_created(self, store: OrgStore, job: Any) -> None:
        """Schedule the job's drafts (from its first item) and its end event (at ``end_at``)."""
        with self._lock:
            if not job.dry_run and job.n_effective:
                self._drafts_done[job.uid] = 0
                self._schedule(f"drafts:{job.uid}", float(job.done_at[0]), _DRAFTS, "drafts", store, job)
            self._schedule(f"end:{job.uid}", job.end_at, _END, "end", store, job)

    def silence_job(self, job: Any) -> None:
        """Drop what is scheduled for the job: a job from the world's past told its events long ago."""
        with self._lock:
            self._entries.pop(f"drafts:{job.uid}", None)
            self._entries.pop(f"end:{job.uid}", None)
            self._drafts_done.pop(job.uid, None)

    def forget_job(self, job: Any, now: float) -> None:
        """Silence a past job and settle it as of ``now``, dropping its per-item arrays if it has no drafts."""
        self.silence_job(job)
        with self._lock:
            job.settle(now)
            job.retire(now)

    def job_cancelled(self, store: OrgStore, job: Any, now: float) -> None:
        """Drafts made before the cancel still go out; nothing else will (no completed/failed event)."""
        with self._lock:
            if f"drafts:{job.uid}" in self._entries:
                self._emit_drafts(store, job, now)
            self._entries.pop(f"drafts:{job.uid}", None)
            self._entries.pop(f"end:{job.uid}", None)
            self._done_with(job, now)

    def _done_with(self, job: Any, now: float) -> None:
        """Everything about the job has been told: a draft-less job may drop its per-item arrays."""
        if job.retire(now):
            self._drafts_done.pop(job.uid, None)

    @property
    def sending(self) -> dict[str, tuple[str, str | None]]:
        """Webhook sends handed out by ``drain`` and not yet reported: delivery uid -> (organisation uid, the
        worker making it; None in one process). Part of the world, so a snapshot taken while a POST is on
        its way still knows it after a crash (a snapshot of an older build has none: made empty here)."""
        found = self.__dict__.get("_sending")
        if found is None:
            found = self.__dict__["_sending"] = {}
        return found

    def drain(self, now: float, sender: str | None = None) -> list[Outgoing]:
        """Emit everything due by ``now``; return the sends to perform (each exactly once). ``sender``: the
        worker that will make them (shared worlds), remembered until each webhook send is reported."""
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due, _, _, key = heapq.heappop(self._heap)
                entry = self._entries.pop(key, None)
                if entry is None:
                    continue
                kind, store, target = entry
                if kind == "drafts":
                    self._emit_drafts(store, target, now)
                elif kind == "end":
                    self._emit_end(store, target)
                elif kind == "call":
                    found = CALLS[target[0]](target[1])
                    if found is not None:
                        self.emit(store, found[0], found[1], at=due)
                else:
                    self._send_delivery(store, target, due)
            out, self._outbox = self._outbox, []
            sending = self.sending
            for o in out:
                if o.kind == "webhook":
                    sending[o.record["uid"]] = (o.store.org.uid, sender)
            return out

    def unanswered(self, senders: set[str | None] | None = None) -> list[Outgoing]:
        """The webhook sends still in flight (of ``senders`` only, when given), rebuilt to be made again —
        after a restart, or by a worker taking over from one that died. A send whose delivery is gone or
        settled meanwhile is forgotten instead."""
        with self._lock:
            outs = []
            for uid, (org, sender) in list(self.sending.items()):
                if senders is not None and sender not in senders:
                    continue
                found = self.delivery(org, uid)
                hook = _hook_of(*found) if found is not None else None
                out = self._delivery_post(*found, hook) if hook is not None and found[1]["status"] == "pending" else None
                if out is None:
                    del self.sending[uid]
                else:
                    outs.append(out)
            return outs

    def requeue_unanswered(self) -> None:
        """Sends this world lists in flight, made by no process now (a restart, a restored snapshot): queued
        to be drained and made again."""
        with self._lock:
            self._outbox.extend(self.unanswered())
            self.sending.clear()

    def current(self, out: Outgoing, sender: str | None) -> Outgoing | None:
        """``out`` as a send of this bus's world (made for an earlier copy of it by ``sender``), if this world
        still waits for it from that sender (not if another worker has taken it over)."""
        uid = out.record["uid"]
        if out.kind != "webhook" or self.sending.get(uid, (None, None))[1] != sender:
            return None
        found = self.delivery(self.sending[uid][0], uid)
        return None if found is None else Outgoing(out.kind, out.url, out.body, out.headers, *found)

    def delivery(self, org: str, uid: str) -> tuple[OrgStore, dict[str, Any]] | None:
        """The organisation's store and its delivery ``uid``, if both still exist."""
        store = self.world.stores.get(org)
        found = webhooks_mod.deliveries(store) if store is not None else None
        return (store, found.get(uid)) if found is not None and uid in found else None

    def taken_over(self, uids: list[str], sender: str) -> None:
        """``sender`` makes these sends now (their worker died)."""
        with self._lock:
            for uid in uids:
                if uid in self.sending:
                    self.sending[uid] = (self.sending[uid][0], sender)

    # -- emitting ---------------------------------------------------------------------------------
    def emit(self, store: OrgStore, event: str, payload: dict[str, Any], at: float | None = None) -> None:
        """An event happened at ``at``: log it, record a delivery per matching webhook (sent now) and an
        execution per matching agent (a callback agent is also POSTed the execution)."""
        at = self.world.clock.now() if at is None else at
        with self._lock:
            self.emitted += 1
            self.log.append({"seq": self.emitted, "event": event, "organization": store.org.uid,
                             "at": iso(at), "payload": payload})
            for hook in webhooks_mod.webhooks(store).values():
                if dispatch.webhook_matches(hook, event):
                    delivery = webhooks_mod.record_delivery(self.world, store, hook, event, payload, created_at=at)
                    self._send_delivery(store, delivery, at)
            for agent in agents_mod.agents(store).values():
                if dispatch.agent_matches(agent, event, payload):
                    execution = agents_mod.record_execution(self.world, store, agent, event, payload, created_at=at)
                    if agent.get("callback_url"):
                        self._send_callback(store, agent, execution, at)

    def _wanted(self, store: OrgStore, event: str, payload: dict[str, Any]) -> bool:
        return any(dispatch.webhook_matches(h, event) for h in webhooks_mod.webhooks(store).values()) or any(
            dispatch.agent_matches(a, event, payload) for a in agents_mod.agents(store).values())

    def _emit_end(self, store: OrgStore, job: Any) -> None:
        state = job.state(job.end_at)
        if state.status not in ("completed", "failed"):
            return
        payload: dict[str, Any] = {
            "job_uid": job.uid, "project_uid": job.project.uid, "status": state.status,
            "total_items": state.total_items, "successful": state.successful_items,
            "failed": state.failed_items, "skipped": state.skipped_items, "dry_run": job.dry_run,
        }
        if state.status == "failed":
            payload["error_message"] = state.error_message
        self.emit(store, f"auto_label.{state.status}", payload, at=job.end_at)
        self._done_with(job, job.end_at)

    def _emit_drafts(self, store: OrgStore, job: Any, now: float) -> None:
        """``result.submitted`` for every draft the job wrote since the last call, in one vectorised step.
        Per-item payloads are built only when someone listens; otherwise the batch is logged as a count."""
        t = now if job.cancelled_at is None else min(now, job.cancelled_at)
        done, k = self._drafts_done.get(job.uid, 0), job.processed_at(t)
        if k > done:
            job.settle(now)  # the drafts exist (result_state) before anyone hears of them
            window = np.arange(done, k)
            positions = window[job.outcome[done:k] == _SUCCESS]
            project: Project = job.project
            probe = {"project_uid": project.uid, "task_type": project.task_type}
            if self._wanted(store, "result.submitted", probe):
                task = next((tk for tk in store.tasks.values() if tk.project == project.uid), None)
                for pos in positions.tolist():
                    self.emit(store, "result.submitted", self._draft_payload(project, job, pos, task),
                              at=float(job.done_at[pos]))
            elif len(positions):
                self.emitted += 1
                self.log.append({"seq": self.emitted, "event": "result.submitted", "organization": store.org.uid,
                                 "at": iso(float(job.done_at[k - 1])), "count": int(len(positions)),
                                 "payload": {"job_uid": job.uid, "project_uid": project.uid, "batched": True}})
            self._drafts_done[job.uid] = k
        cancelled = job.cancelled_at is not None and job.cancelled_at <= now
        if k < job.n_effective and not cancelled:
            self._schedule(f"drafts:{job.uid}", float(job.done_at[k]), _DRAFTS, "drafts", store, job)

    def _draft_payload(self, project: Project, job: Any, pos: int, task: Any) -> dict[str, Any]:
        row = int(job.rows[pos])
        uid = result_uid(project, row)
        self.results[uid] = (project, row)
        objects = job.item_predictions(pos)
        confs = [o["confidence"] for o in objects]
        item = int(project.rows[row])
        return {
            "task_uid": task.uid if task else None, "task_name": task.name if task else None,
            "result_uid": uid, "result_data": objects,
            "result_metadata": {"confidence": round(sum(confs) / len(confs), 4) if confs else 0.0,
                                "min_confidence": round(min(confs), 4) if confs else 0.0,
                                "source": "auto_label", "auto_label_job": job.uid, "model_type": job.model_type},
            "task_type": project.task_type, "project_uid": project.uid,
            "dataset_uid": project.dataset.uid, "item_uid": project.dataset.item_uids[item],
        }

    # -- sending ----------------------------------------------------------------------------------
    def _send_delivery(self, store: OrgStore, delivery: dict[str, Any], at: float) -> None:
        """Queue one attempt of ``delivery`` (or answer it in-process for a reserved host)."""
        hook = _hook_of(store, delivery)
        if hook is None or delivery["status"] != "pending":
            return  # the subscription was deleted, or this delivery is already settled
        simulated = dispatch.simulated_answer(hook["target_url"])
        if simulated is not None:
            self._record(store, delivery, simulated[0], simulated[1], at)
            return
        self._outbox.append(self._delivery_post(store, delivery, hook))

    def _delivery_post(self, store: OrgStore, delivery: dict[str, Any], hook: dict[str, Any]) -> Outgoing:
        """The signed POST of one attempt of a pending ``delivery`` to ``hook``."""
        body = orjson.dumps({"event": delivery["event_type"], "payload": delivery["payload"]})
        hdrs = dispatch.headers(hook["_secret"], body, int(self.world.clock.now()), delivery["event_type"], delivery["uid"])
        return Outgoing("webhook", hook["target_url"], body, hdrs, store, delivery)

    def send_now(self, store: OrgStore, delivery: dict[str, Any]) -> None:
        """Queue a delivery recorded elsewhere (``POST /webhooks/{uid}/test/``), with the same retries."""
        with self._lock:
            self._send_delivery(store, delivery, self.world.clock.now())

    def _send_callback(self, store: OrgStore, agent: dict[str, Any], execution: dict[str, Any], at: float) -> None:
        if dispatch.simulated_answer(agent["callback_url"]) is not None:
            return  # a reserved host: nothing to send (the execution waits for its action either way)
        body = orjson.dumps({"event": execution["event_type"], "payload": execution["event_payload"],
                             "execution": {"uid": execution["uid"], "registration": agent["uid"],
                                           "event_type": execution["event_type"], "task": execution["task"],
                                           "result": execution["result"], "status": execution["status"],
                                           "event_payload": execution["event_payload"], "created_at": iso(at)}})
        hdrs = dispatch.headers(agent["_secret"], body, int(self.world.clock.now()), execution["event_type"], execution["uid"])
        self._outbox.append(Outgoing("agent", agent["callback_url"], body, hdrs, store, execution))

    def report(self, out: Outgoing, status: int | None, body: str | None) -> None:
        """The worker's answer for ``out``: a webhook attempt is recorded (and retried on the clock)."""
        if out.kind != "webhook":
            return  # agent callbacks are best effort: the execution still waits for POST /agent-actions/
        with self._lock:
            self.sending.pop(out.record["uid"], None)
            self._record(out.store, out.record, status, body, self.world.clock.now())

    def _record(self, store: OrgStore, delivery: dict[str, Any], status: int | None, body: str | None, at: float) -> None:
        ok = status is not None and 200 <= status < 300
        delay = None if ok else dispatch.retry_delay(delivery["attempts"] + 1)
        retry_at = at + delay if delay is not None else None
        webhooks_mod.record_attempt(self.world, delivery, response_status=status,
                                    response_body=dispatch.truncate(body), next_retry_at=retry_at, at=at)
        if retry_at is not None:
            self._schedule(f"retry:{delivery['uid']}", retry_at, _RETRY, "retry", store, delivery)

    # -- results ----------------------------------------------------------------------------------
    def apply_action(self, store: OrgStore, execution: dict[str, Any], action: str) -> None:
        """approve/reject on a result execution: the result becomes accepted/rejected (visible in
        ``annotations.results[].status``) and ``result.accepted``/``result.rejected`` goes out."""
        found = self.results.get(execution.get("result") or "")
        if action not in ("approve", "reject") or found is None:
            return
        project, row = found
        with self._lock:
            if int(project.result_state[row]) != DRAFT_RESULT:
                return  # already decided by another execution
            accepted = action == "approve"
            project.result_state[row] = ACCEPTED_RESULT if accepted else REJECTED_RESULT
            payload = dict(execution.get("event_payload") or {})
            payload["result_status"] = "accepted" if accepted else "rejected"
            self.emit(store, "result.accepted" if accepted else "result.rejected", payload)


def act_on_execution(world: World, store: OrgStore, execution_uid: str, action: str, reason: str | None = None) -> dict[str, Any]:
    """Decide a pending execution: it leaves ``pending`` for ``completed`` (409 if already decided)."""
    if action not in agents_mod.ACTIONS:
        raise Invalid(f"action: {action!r} is not one of {', '.join(agents_mod.ACTIONS)}.", field="action")
    execution = agents_mod.executions(store).get(execution_uid)
    now = world.clock.now()
    agents_mod.settle(execution, now)
    if execution["status"] != "pending":
        raise Conflict(f"Execution {execution_uid!r} is already {execution['status']}; only pending executions can be acted on.")
    execution.update(status="completed", action=action, completed_at=now, updated_at=now,
                     response_payload={"action": action, "reason": reason, "decided_at": iso(now)})
    bus(world).apply_action(store, execution, action)  # approve/reject a drafted result
    return execution


def test_webhook(world: World, store: OrgStore, webhook: dict[str, Any]) -> dict[str, Any]:
    """Send (simulated) a ``webhook.test`` event and log it as a delivery; an inactive webhook sends nothing."""
    now = world.clock.now()
    if not webhook["is_active"]:
        return {"success": False, "delivered": False, "status_code": None, "delivery": None,
                "message": "Webhook is inactive; activate it (is_active=true) to receive events.", "tested_at": iso(now)}
    payload = {"webhook_uid": webhook["uid"], "target_url": webhook["target_url"],
               "message": "Test event from Avala.", "sent_at": iso(now)}
    delivery = webhooks_mod.record_delivery(world, store, webhook, webhooks_mod.TEST_EVENT, payload)
    if dispatch.simulated_answer(webhook["target_url"]) is None:  # a real endpoint: a signed POST, off the request path
        bus(world).send_now(store, delivery)
        return {"success": True, "delivered": False, "status_code": None, "delivery": delivery["uid"],
                "message": f"Test event queued for {webhook['target_url']}; the delivery record shows the outcome.",
                "tested_at": iso(now)}
    status, body = dispatch.simulated_receiver(webhook["target_url"])
    webhooks_mod.record_attempt(world, delivery, response_status=status, response_body=body)
    ok = delivery["status"] == "delivered"
    message = f"Test event delivered to {webhook['target_url']} (HTTP {status})." if ok else f"Test event failed: {body}"
    return {"success": ok, "delivered": ok, "status_code": status, "delivery": delivery["uid"],
            "message": message, "tested_at": iso(now)}


def result_uid(project: Project, row: int) -> str:
    """A stable uid for the result a project holds on one of its rows."""
    h = hashlib.sha1(f"{project.uid}:{row}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def export_started(world: World, store: OrgStore, rec: dict[str, Any]) -> None:
    """``export.completed``/``export.failed`` when the export's timeline ends (its outcome is known now)."""
    status, due = rec["_timeline"].steps[-1]
    rec["_announce"] = (status, due)
    bus(world).emit_when(store, f"export:{rec['uid']}", due, "export_ended", rec)


def _export_ended(rec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    status, due = rec["_announce"]
    if status not in ("exported", "failed") or tuple(rec["_timeline"].steps[-1]) != (status, due):
        return None  # stopped early some other way
    return ("export.completed" if status == "exported" else "export.failed", {
        "export_uid": rec["uid"], "project_uid": rec["project"], "dataset_uid": rec["dataset"],
        "status": status, "item_count": rec["item_count"], "error_message": rec.get("_error")})


def dataset_started(world: World, store: OrgStore, ds: Any) -> None:
    """``dataset.created`` once the new dataset's indexing is done (its status becomes ``created``)."""
    due = ds.indexing.steps[-1][1] if ds.indexing is not None else world.clock.now()
    bus(world).emit_when(store, f"dataset:{ds.uid}", due, "dataset_created", ds)


CALLS: dict[str, Any] = {  # what a scheduled "call" entry may run, by name
    "export_ended": _export_ended,
    "dataset_created": lambda ds: ("dataset.created", dataset_payload(ds)),
}


def dataset_payload(ds: Any) -> dict[str, Any]:
    return {"dataset_uid": ds.uid, "name": ds.name, "slug": ds.slug, "owner_name": ds.owner_name,
            "data_type": ds.data_type, "item_count": len(ds.item_uids), "project_uid": None}


def _hook_of(store: OrgStore, delivery: dict[str, Any]) -> dict[str, Any] | None:
    hooks = webhooks_mod.webhooks(store)
    return hooks.get(delivery["subscription"]) if delivery["subscription"] in hooks else None


def bus(world: World) -> EventBus:
    """The world's bus, created on first use."""
    found = world.shared.get("events")
    if found is None:
        found = world.shared["events"] = EventBus(world)
    return found
