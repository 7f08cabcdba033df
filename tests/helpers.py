"""Helpers shared by the test modules (imported as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import functools
import subprocess
import threading
import time
import uuid
from typing import Any

from avala_mock.mock_server.receiver import Received, WebhookReceiver

SECOND_ORG_KEY = "avk_mock_secondary"


def project_named(client: Any, name: str) -> Any:
    """The project of the default world called ``name`` (through the SDK's own list)."""
    for p in client.projects.list(limit=100):
        if p.name == name:
            return p
    raise LookupError(name)


def sdk_world(mock: Any, client: Any) -> dict:
    """Uids the walk starts from, read through the SDK itself."""
    http = mock.http
    key = {"X-Avala-Api-Key": mock.api_key}
    projects = client.projects.list(limit=100).items
    dataset = client.datasets.get_by_slug("acme-robotics", "street-scenes")
    lidar_seq = client.datasets.list_sequences("acme-robotics", "drive-logs").items[0]
    tool = client.annotation_issues.list_tools(dataset_type="lidar")[0]
    me = http.get("/api/v1/users/me/", headers=key).json()
    home = next(o for o in client.organizations.list(limit=100) if o.slug == "acme-robotics")
    members = [m for m in client.organizations.list_members(home.slug, limit=100) if m.user_uid != me["uid"] and m.role != "owner"]
    recordings = client.fleet.recordings.list(limit=100).items
    agents = [a for a in client.agents.list(limit=100) if a.callback_url is None]
    w = {
        "project": projects[0].uid, "task": client.tasks.list(project=projects[0].uid).items[0].uid,
        "owner": dataset.owner_name, "dataset_uid": dataset.uid, "dataset_slug": dataset.slug,
        "item": client.datasets.list_items(dataset.owner_name, dataset.slug, limit=1).items[0].uid,
        "sequence": lidar_seq.uid, "tool": tool.uid, "problem": tool.problems[0].uid,
        "username": me["username"], "user_uid": me["uid"], "home_org": home.slug,
        "member_uid": members[0].user_uid, "heir_uid": members[1].user_uid, "seeded_agent": agents[0].uid,
        "recording": recordings[0].uid, "recording_device": recordings[0].device,
        "upload_recording": recordings[-1].uid,
    }
    w["bulk_edits"] = [{
        "action": "upsert", "object_uuid": str(uuid.UUID(int=7)), "object_type": "cuboid 3d",
        "dataset_item_uid": None, "sequence_uid": lidar_seq.uid, "object_name": "car",
        "object_data": {"label": "car", "position": {"px": 1, "py": 2, "pz": 0}, "dimensions": {"dx": 4, "dy": 2, "dz": 1.5},
                        "rotation": {"qx": 0, "qy": 0, "qz": 0, "qw": 1}},
    }]
    w["batch_events"] = [{"recording": w["recording"], "device": w["recording_device"], "label": f"b{i}", "type": "info",
                          "timestamp": "2026-01-05T09:00:00Z"} for i in range(3)]
    return w


def avala_cli(env: dict[str, str | None], *args: str) -> subprocess.CompletedProcess:
    """Run the official ``avala`` CLI in this process (click's runner) with ``env`` set for the call
    (a None value unsets a variable). Its console is made wide, as COLUMNS=250 would in a shell, so
    tables are not cut. tests/test_sdk_cli.py also runs it once as a real process."""
    from avala.cli import _output, main
    from click.testing import CliRunner

    _output.console.width = 250
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "250", **env}, catch_exceptions=False)
    return subprocess.CompletedProcess(["avala", *args], result.exit_code, result.stdout, result.stderr)


@functools.cache
def spec_operations() -> frozenset[str]:
    """The operationIds of the shipped openapi.yaml (counts in tests come from here, not literals)."""
    from avala_mock.mock_server.spec import Spec, default_spec_path

    return frozenset(Spec(default_spec_path()).operations)


class HangingReceiver(WebhookReceiver):
    """A webhook receiver whose first POST gets no answer (its sender is stopped meanwhile); later ones 200."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.start()

    def _record(self, item: Received) -> None:
        super()._record(item)
        if len(self.received) == 1:
            self.release.wait(30)  # the first POST's handler holds its answer back

    @property
    def deliveries(self) -> list[str | None]:
        """The delivery id of each POST, in order."""
        return [r.delivery for r in self.received]

    def close(self) -> None:
        self.release.set()
        self.stop()


def held_delivery(http: Any, receiver: HangingReceiver) -> str:
    """A webhook (test event) to ``receiver``: the delivery's uid once its POST is on its way, held there."""
    hook = http.post("/webhooks/", json={"target_url": receiver.url, "events": ["task.completed"]}).json()["uid"]
    delivery = http.post(f"/webhooks/{hook}/test/").json()["delivery"]
    receiver.wait_for(timeout=10)
    return delivery


def until_delivered(http: Any, delivery: str, timeout: float = 15.0) -> dict:
    """Poll the delivery until it is ``delivered`` (fails with its last state past ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (d := http.get(f"/webhook-deliveries/{delivery}/").json())["status"] != "delivered":
        assert time.monotonic() < deadline, d
        time.sleep(0.05)
    return d
