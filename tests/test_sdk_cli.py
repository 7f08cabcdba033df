"""The official SDK's CLI: every list/get-style command of every resource group, against the mock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from helpers import avala_cli, sdk_world

COMMANDS = [
    ["status"],
    ["projects", "list"], ["projects", "get", "@project"],
    ["tasks", "list"], ["tasks", "get", "@task"],
    ["datasets", "list"], ["datasets", "get", "@dataset_uid"],
    ["datasets", "health", "@owner", "@dataset_slug"],
    ["datasets", "get-sequence", "@owner", "drive-logs", "@sequence"],
    ["datasets", "get-frame", "@owner", "drive-logs", "@sequence", "0"],
    ["datasets", "get-calibration", "@owner", "drive-logs", "@sequence"],
    ["auto-label", "list"], ["auto-label", "get", "@job"],
    ["exports", "list"], ["exports", "get", "@export"],
    ["agents", "list"], ["agents", "get", "@seeded_agent"], ["agents", "executions", "@seeded_agent"],
    ["webhooks", "list"], ["webhooks", "get", "@webhook"], ["webhooks", "deliveries"],
    ["inference-providers", "list"], ["inference-providers", "get", "@provider"],
    ["quality-targets", "list", "--project", "@project"], ["quality-targets", "get", "--project", "@project", "@target"],
    ["consensus", "summary", "--project", "@project"], ["consensus", "scores", "--project", "@project"],
    ["consensus", "config", "--project", "@project"],
    ["storage-configs", "list"], ["storage-configs", "get", "@storage"],
    ["fleet", "devices", "list"], ["fleet", "devices", "get", "@recording_device"],
    ["fleet", "recordings", "list"], ["fleet", "recordings", "get", "@recording"],
    ["fleet", "events", "list"], ["fleet", "events", "get", "@event"],
    ["fleet", "rules", "list"], ["fleet", "rules", "get", "@rule"],
    ["fleet", "alerts", "list"], ["fleet", "alerts", "get", "@alert"],
]


@pytest.fixture(scope="module")
def cli_world(live):
    import avala

    live.reset()
    client = avala.Client(api_key=live.api_key, base_url=live.base_url)
    w = sdk_world(live, client)
    project = w["project"]
    w["job"] = client.auto_label_jobs.create(project, dry_run=True).uid
    w["export"] = client.exports.list().items[0].uid
    w["webhook"] = client.webhooks.list().items[0].uid
    w["provider"] = client.inference_providers.list().items[0].uid
    w["target"] = client.quality_targets.list(project).items[0].uid
    w["storage"] = client.storage_configs.list().items[0].uid
    w["event"] = client.fleet.events.list().items[0].uid
    w["rule"] = client.fleet.rules.list().items[0].uid
    w["alert"] = client.fleet.alerts.list().items[0].uid
    return w


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(x for x in c if not x.startswith("@")))
def test_sdk_cli_command_exits_0(live, cli_world, command):
    args = [str(cli_world[a[1:]]) if a.startswith("@") else a for a in command]
    r = avala_cli(live.env(), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip(), "printed nothing"
    assert "API error" not in r.stdout + r.stderr


def test_the_installed_avala_script_reaches_the_mock_as_a_process(live):
    """The other CLI tests run the SDK's click app in this process; this one runs the console script a
    user types, with only the environment the banner prints."""
    script = shutil.which("avala", path=os.path.dirname(sys.executable)) or shutil.which("avala")
    assert script, "the avala SDK's console script is not installed"
    r = subprocess.run([script, "-o", "json", "projects", "list"], env={**os.environ, **live.env()},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Urban Detection" in r.stdout
