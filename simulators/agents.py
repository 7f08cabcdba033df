"""Agents, their executions and agent actions (surface doc §2.8, §3.10, §3.11, §4.2-4.4).

An execution is one event handed to an agent. It is created ``pending``; ``POST /agent-actions/``
decides it (``completed`` with ``action`` set and the reason kept in ``response_payload``), and one
nobody decides becomes ``failed`` when the server-side timeout passes. The timeout is a deadline on
the virtual clock, not work, so it is the same on every clock (the instant clock does not expire
executions at once). ``record_execution`` is the one way to add an execution: the seeder uses it and
the event flow will.
"""

from __future__ import annotations

from typing import Any

from avala_mock.simulators.clock import iso
from avala_mock.simulators.dispatch import check_url, simulated_receiver
from avala_mock.simulators.errors import Invalid
from avala_mock.simulators.records import Collection, collection, declare, new_record, patch
from avala_mock.simulators.world import OrgStore, World

AGENT = "Agent"
EXECUTION = "Agent execution"
STATUSES = ("pending", "running", "completed", "failed")
ACTIONS = ("approve", "reject", "flag", "skip")
EXECUTION_TIMEOUT_S = 24 * 3600.0  # an undecided execution fails after a day of virtual time
TEST_EVENT = "agent.test"
UPDATABLE = ("name", "events", "description", "callback_url", "is_active", "project", "task_types")


def _execution_finished(record: dict[str, Any]) -> bool:
    return record["status"] in ("completed", "failed")


declare(EXECUTION, indexes=("registration",), retained=True, finished=_execution_finished)


def agents(store: OrgStore) -> Collection:
    return collection(store, AGENT)


def executions(store: OrgStore) -> Collection:
    return collection(store, EXECUTION)


def _check(store: OrgStore, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate the writable fields present in ``fields``; 400 names the culprit."""
    clean = dict(fields)
    if "name" in clean and not str(clean["name"]).strip():
        raise Invalid("name: may not be blank.", field="name")
    if clean.get("project") is not None and clean["project"] not in store.projects:
        raise Invalid(f"project: project {clean['project']!r} does not exist in this organisation.", field="project")
    if clean.get("callback_url") is not None:
        check_url(clean["callback_url"], "callback_url")
    for key in ("events", "task_types"):
        if key in clean:
            clean[key] = list(dict.fromkeys(v.strip() for v in clean[key] or [] if v.strip()))
    return clean


def create_agent(world: World, store: OrgStore, fields: dict[str, Any]) -> dict[str, Any]:
    """A new registration (not idempotent: avala-agents registers on every run). Its ``_secret`` is
    returned by the create answer only."""
    clean = _check(store, fields)
    record = new_record(world, store, {
        "name": clean["name"],
        "description": clean.get("description"),
        "events": clean.get("events", []),
        "callback_url": clean.get("callback_url"),
        "is_active": clean.get("is_active", True),
        "project": clean.get("project"),
        "task_types": clean.get("task_types", []),
        "_secret": f"agsec_{world.secrets.hex(40)}",
    })
    return agents(store).add(record)


def update_agent(world: World, store: OrgStore, agent: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return patch(world, agent, _check(store, changes), UPDATABLE)


def delete_agent(store: OrgStore, uid: str) -> None:
    """Remove the agent and its executions (they belong to the registration)."""
    agents(store).remove(uid)
    executions(store).remove_where(registration=uid)


def record_execution(
    world: World,
    store: OrgStore,
    agent: dict[str, Any],
    event_type: str,
    payload: dict[str, Any] | None,
    *,
    created_at: float | None = None,
) -> dict[str, Any]:
    """Hand ``event_type`` with ``payload`` to ``agent``: a ``pending`` execution, started now.

    ``task``/``result`` and the filter keys (project, task type) come from the payload as avala-agents
    reads it (§4.3); the project falls back to the agent's own scope.
    """
    payload = dict(payload or {})
    at = world.clock.now() if created_at is None else created_at
    rec = new_record(world, store, {
        "registration": agent["uid"],
        "event_type": event_type,
        "task": payload.get("task_uid"),
        "result": payload.get("result_uid"),
        "status": "pending",
        "action": None,
        "event_payload": payload,
        "response_payload": None,
        "error_message": None,
        "started_at": at,
        "completed_at": None,
        "_project": payload.get("project_uid") or agent.get("project"),
        "_task_type": payload.get("task_type"),
        "_expires_at": at + EXECUTION_TIMEOUT_S,
    })
    rec["created_at"] = rec["updated_at"] = at
    return executions(store).add(rec)


def settle(execution: dict[str, Any], now: float) -> dict[str, Any]:
    """Apply the timeout: a still-pending execution past its deadline is ``failed`` (idempotent)."""
    if execution["status"] == "pending" and now >= execution["_expires_at"]:
        deadline = execution["_expires_at"]
        execution.update(status="failed", completed_at=deadline, updated_at=deadline,
                         error_message="Timed out: no agent action was received before the server-side timeout.")
    return execution


def list_executions(
    store: OrgStore, agent: dict[str, Any], now: float, *,
    status: str | None = None, project: str | None = None, task_types: str | None = None,
) -> list[dict[str, Any]]:
    """The agent's executions, oldest first, filtered by status, project and any of the comma-joined
    task types (the avala-agents poll)."""
    wanted = {t.strip() for t in task_types.split(",") if t.strip()} if task_types else None
    found = [settle(e, now) for e in executions(store).filter(registration=agent["uid"])]
    return [
        e for e in found
        if (status is None or e["status"] == status)
        and (project is None or e["_project"] == project)
        and (wanted is None or e["_task_type"] in wanted)
    ]


def execution_stats(store: OrgStore, agent: dict[str, Any], now: float) -> dict[str, int]:
    """Executions per status (every status present, zeros included)."""
    stats = dict.fromkeys(STATUSES, 0)
    for e in executions(store).filter(registration=agent["uid"]):
        status = settle(e, now)["status"]
        stats[status] = stats.get(status, 0) + 1
    return stats


def test_agent(world: World, store: OrgStore, agent: dict[str, Any]) -> dict[str, Any]:
    """Send (simulated) an ``agent.test`` event. A callback agent gets it at its URL (a completed
    execution records the outcome); a polling agent gets a pending execution to pick up on its next
    poll; an inactive agent gets nothing."""
    now = world.clock.now()
    result: dict[str, Any] = {"tested_at": iso(now), "status_code": None, "execution": None}
    if not agent["is_active"]:
        return {**result, "success": False, "delivered": False,
                "message": "Agent is inactive; activate it (is_active=true) to receive events."}
    payload = {"test": True, "agent_uid": agent["uid"], "message": "Test event from Avala.",
               "project_uid": agent.get("project"), "task_type": (agent.get("task_types") or [None])[0]}
    execution = record_execution(world, store, agent, TEST_EVENT, payload)
    result["execution"] = execution["uid"]
    if not agent.get("callback_url"):
        return {**result, "success": True, "delivered": False,
                "message": "Agent has no callback_url: a pending test execution was queued for its next poll."}
    status, body = simulated_receiver(agent["callback_url"])
    ok = status is not None
    execution.update(status="completed" if ok else "failed", completed_at=now, updated_at=now,
                     response_payload={"status_code": status, "body": body} if ok else None,
                     error_message=None if ok else body)
    message = f"Test event delivered to {agent['callback_url']} (HTTP {status})." if ok else f"Test event failed: {body}"
    return {**result, "success": ok, "delivered": ok, "status_code": status, "message": message}
