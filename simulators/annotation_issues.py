"""QC annotation issues on sequences (surface doc §2.13, §3.17) and the catalogue of QC tools.

The tool catalogue is Avala's, not an organisation's: one set of tools per dataset type, each with the
problems a reviewer can flag. Being the product's, its uids are the same in every world and for every
seed (name-derived), so a client or a spec example may hard-code them as it would against Avala. Issues are plain
records in the organisation of the sequence's dataset, so another organisation cannot see them.

A sequence dataset of the mock has frames but no per-frame items, so an issue's ``dataset_item_uid``
may name an item of the sequence's dataset *or* a frame of the sequence by its ``key``
(e.g. ``seq000/frame_00003``, as the sequence detail lists them).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from avala_mock.simulators.errors import Invalid, NotFound
from avala_mock.simulators.records import collection, declare, new_record
from avala_mock.simulators.world import Dataset, OrgStore, Sequence, User, World

KIND = "annotation_issues"
declare(KIND, indexes=("_dataset",))
OPEN = "open"
# MCP vocabulary + seed 004's resolved/closed; the terminal ones close an issue (closed_at).
STATUSES = ("open", "relabeling", "in_review", "awaiting_feedback", "completed", "cant_reproduce", "no_action_taken",
            "resolved", "closed")
TERMINAL = frozenset({"completed", "cant_reproduce", "no_action_taken", "resolved", "closed"})
PRIORITIES = ("lowest", "low", "medium", "high", "highest")
SEVERITIES = ("critical", "major", "moderate", "minor")
DATASET_TYPE_ALIASES = {"pointcloud": "lidar", "point_cloud": "lidar"}
UPDATABLE = ("status", "priority", "severity", "description", "tool_uid", "problem_uid", "wrong_class", "frames_affected")
_FRAMES = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")

_COMMON = ["Wrong class", "Missing annotation", "Extra annotation", "Duplicate annotation"]
_BOX = ["Box not tight", "Occlusion/truncation flag wrong"]
_POLY = ["Inaccurate boundary", "Holes not cut out"]
_CUBOID = ["Wrong orientation", "Wrong dimensions", "Cuboid not fitted to points", "Tracking ID switch",
           "Missing in some frames"]
_CATALOGUE: dict[str, list[tuple[str, bool, list[str]]]] = {
    "image": [("Bounding Box", True, _COMMON + _BOX), ("Polygon", False, _COMMON + _POLY),
              ("Segmentation Mask", False, _COMMON + _POLY), ("Classification", False, ["Wrong class", "Ambiguous image"])],
    "video": [("Bounding Box", True, _COMMON + _BOX + ["Tracking ID switch", "Missing in some frames"]),
              ("Polygon", False, _COMMON + _POLY), ("Classification", False, ["Wrong class", "Wrong time range"])],
    "lidar": [("Cuboid 3D", True, _COMMON + _CUBOID), ("Point Cloud Polyline", False, _COMMON + ["Broken polyline", "Wrong lane topology"]),
              ("Point Cloud Segmentation", False, _COMMON + ["Points leak into neighbour", "Ground points labelled"]),
              ("Camera Bounding Box", False, _COMMON + _BOX + ["Not consistent with cuboid projection"])],
    "mcap": [("Cuboid 3D", True, _COMMON + _CUBOID), ("Camera Bounding Box", False, _COMMON + _BOX)],
    "splat": [("Cuboid 3D", True, _COMMON + ["Wrong orientation", "Wrong dimensions"]),
              ("Gaussian Selection", False, _COMMON + ["Floaters included"])],
}


_CATALOGUE_NS = uuid.UUID("6f1c2a9e-4b1d-5c3e-8a7f-0d2e4b6a8c10")  # fixed: the uids must never change

# ── tools ─────────────────────────────────────────────────────────────────────────────────────────


def catalogue(world: World) -> list[dict[str, Any]]:
    """Every QC tool of every dataset type, with uids derived from the names (see the module note)."""
    tools = world.shared.get("qc_tools")
    if tools is None:
        tools = []
        for dataset_type, entries in _CATALOGUE.items():
            for name, default, problems in entries:
                tool_uid = catalogue_uid(dataset_type, name)
                tools.append({
                    "uid": tool_uid, "name": name, "dataset_type": dataset_type, "default": default,
                    "problems": [{"uid": catalogue_uid(tool_uid, title), "title": title} for title in problems],
                })
        world.shared["qc_tools"] = tools
    return tools


def catalogue_uid(*names: str) -> str:
    return str(uuid.uuid5(_CATALOGUE_NS, "/".join(names)))


def tools_for(world: World, dataset_type: str) -> list[dict[str, Any]]:
    kind = DATASET_TYPE_ALIASES.get(dataset_type, dataset_type)
    if kind not in _CATALOGUE:
        known = ", ".join([*_CATALOGUE, *DATASET_TYPE_ALIASES])
        raise Invalid(f"Unknown dataset_type {dataset_type!r}; expected one of: {known}.", field="dataset_type")
    return [t for t in catalogue(world) if t["dataset_type"] == kind]


def _tool(world: World, uid: str) -> dict[str, Any]:
    for tool in catalogue(world):
        if tool["uid"] == uid:
            return tool
    raise Invalid(f"QC tool {uid!r} does not exist; see GET /qc-available-tools/.", field="tool_uid")


def _problem(tool: dict[str, Any], uid: str) -> dict[str, Any]:
    for problem in tool["problems"]:
        if problem["uid"] == uid:
            return problem
    raise Invalid(f"Problem {uid!r} not found among the problems of the QC tool {tool['name']!r}.", field="problem_uid")


# ── sequences ─────────────────────────────────────────────────────────────────────────────────────


def find_sequence(store: OrgStore, sequence_uid: str) -> tuple[Dataset, Sequence]:
    for dataset in store.datasets.values():
        index = dataset.sequence_index.get(sequence_uid)
        if index is not None:
            return dataset, dataset.sequences[index]
    raise NotFound(f"Sequence {sequence_uid!r} not found.")


def _check_item(dataset: Dataset, sequence: Sequence, item_uid: str) -> None:
    if item_uid in dataset.item_index or any(f.get("key") == item_uid for f in sequence.frames):
        return
    raise Invalid(f"dataset_item_uid {item_uid!r} is neither an item of dataset {dataset.slug!r} nor a frame key of "
                  f"sequence {sequence.key!r}.", field="dataset_item_uid")


def _check_frames(sequence: Sequence, frames: str) -> None:
    if frames == "":
        return
    if not _FRAMES.match(frames):
        raise Invalid(f"frames_affected {frames!r} is not a frame list such as '1-5' or '2,4-6'.", field="frames_affected")
    n = len(sequence.frames)
    for part in frames.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if a > b or b > n:
            raise Invalid(f"frames_affected {frames!r} is outside the sequence's {n} frames.", field="frames_affected")


def reporter(user: User, store: OrgStore) -> dict[str, Any]:
    """Who reported: the key's user (a ``customer``), or the organisation's bot (an ``agent``)."""
    return {
        "username": user.username,
        "full_name": f"{user.first_name} {user.last_name}".strip() or user.username,
        "picture": None,  # on this server's media plane: the URL is made per request (the handler)
        "type": "agent" if user.is_bot else "customer",
        "is_staff": False,
    }


# ── issues ────────────────────────────────────────────────────────────────────────────────────────


def create_issue(world: World, store: OrgStore, user: User, sequence_uid: str, body: dict[str, Any],
                 *, created_at: float | None = None) -> dict[str, Any]:
    """Report an issue (every reference is checked before anything is written)."""
    dataset, sequence = find_sequence(store, sequence_uid)
    if body.get("sequence_uid", sequence_uid) != sequence_uid:
        raise Invalid(f"sequence_uid {body['sequence_uid']!r} does not match the path's sequence {sequence_uid!r}.",
                      field="sequence_uid")
    tool = _tool(world, body["tool_uid"])
    _check_tool_type(tool, dataset)
    problem = _problem(tool, body["problem_uid"])
    project = None
    if body.get("project_uid") is not None:
        try:
            p = store.project(body["project_uid"])
        except NotFound:
            raise Invalid(f"Project {body['project_uid']!r} does not exist.", field="project_uid") from None
        project = {"uid": p.uid, "name": p.name}
    if body.get("dataset_item_uid") is not None:
        _check_item(dataset, sequence, body["dataset_item_uid"])
    if body.get("frames_affected") is not None:
        _check_frames(sequence, body["frames_affected"])
    fields = {
        "dataset_item_uid": body.get("dataset_item_uid"),
        "sequence_uid": sequence.uid,
        "project": project,
        "reporter": reporter(user, store),
        "priority": body.get("priority"),
        "severity": body.get("severity"),
        "description": body.get("description"),
        "status": OPEN,
        "tool": {"uid": tool["uid"], "name": tool["name"], "default": tool["default"]},
        "problem": dict(problem),
        "wrong_class": body.get("wrong_class"),
        "correct_class": body.get("correct_class"),
        "should_re_annotate": body.get("should_re_annotate"),
        "should_delete": body.get("should_delete"),
        "frames_affected": body.get("frames_affected"),
        "coordinates": body.get("coordinates"),
        "query_params": body.get("query_params"),
        "closed_at": None,
        "object_uid": body.get("object_uid"),
        "_dataset": dataset.uid,
    }
    record = new_record(world, store, fields)
    if created_at is not None:
        record["created_at"] = record["updated_at"] = created_at
    return collection(store, KIND).add(record)


def _check_tool_type(tool: dict[str, Any], dataset: Dataset) -> None:
    kind = DATASET_TYPE_ALIASES.get(dataset.data_type, dataset.data_type)
    if tool["dataset_type"] != kind:
        raise Invalid(f"QC tool {tool['name']!r} is for {tool['dataset_type']} datasets, not {dataset.data_type}.",
                      field="tool_uid")


def get_issue(store: OrgStore, sequence_uid: str, issue_uid: str) -> dict[str, Any]:
    find_sequence(store, sequence_uid)
    issue = collection(store, KIND).get(issue_uid)
    if issue["sequence_uid"] != sequence_uid:
        raise NotFound(f"Annotation issue {issue_uid!r} not found in sequence {sequence_uid!r}.")
    return issue


def update_issue(world: World, store: OrgStore, issue: dict[str, Any], body: dict[str, Any],
                 *, at: float | None = None) -> dict[str, Any]:
    """PATCH: validate everything first, then write. Entering a terminal status sets ``closed_at``;
    leaving it (a reopen) clears it."""
    dataset, sequence = find_sequence(store, issue["sequence_uid"])
    changes = {k: v for k, v in body.items() if k in UPDATABLE}
    tool = _tool(world, changes["tool_uid"]) if "tool_uid" in changes else None
    if tool is not None:
        _check_tool_type(tool, dataset)
    problem_uid = changes.get("problem_uid", issue["problem"]["uid"] if issue.get("problem") else None)
    effective_tool = tool or (_tool(world, issue["tool"]["uid"]) if issue.get("tool") else None)
    problem = _problem(effective_tool, problem_uid) if effective_tool is not None and problem_uid else None
    if "frames_affected" in changes:
        _check_frames(sequence, changes["frames_affected"])
    now = world.clock.now() if at is None else at
    if "status" in changes:
        was, becomes = issue["status"] in TERMINAL, changes["status"] in TERMINAL
        if becomes and not was:
            issue["closed_at"] = now
        elif was and not becomes:
            issue["closed_at"] = None
    for key in ("status", "priority", "severity", "description", "wrong_class", "frames_affected"):
        if key in changes:
            issue[key] = changes[key]
    if tool is not None:
        issue["tool"] = {"uid": tool["uid"], "name": tool["name"], "default": tool["default"]}
    if problem is not None:
        issue["problem"] = dict(problem)
    issue["updated_at"] = now
    return issue


def delete_issue(store: OrgStore, issue: dict[str, Any]) -> None:
    collection(store, KIND).remove(issue["uid"])


def sequence_issues(store: OrgStore, sequence_uid: str, *, dataset_item_uid: str | None = None,
                    project_uid: str | None = None) -> list[dict[str, Any]]:
    """Oldest first; 404 for a sequence this organisation does not have."""
    find_sequence(store, sequence_uid)
    return _oldest_first(collection(store, KIND).filter(
        lambda r: project_uid is None or (r["project"] or {}).get("uid") == project_uid,
        sequence_uid=sequence_uid, dataset_item_uid=dataset_item_uid,
    ))


def dataset_issues(store: OrgStore, dataset: Dataset, sequence_uid: str | None = None) -> list[dict[str, Any]]:
    return _oldest_first(collection(store, KIND).filter(_dataset=dataset.uid, sequence_uid=sequence_uid))


def _oldest_first(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(issues, key=lambda r: (r["created_at"], r["seq"]))


def metrics(issues: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Counts by status/priority/severity/problem; mean close time of closed issues and mean age of open
    ones, in integer seconds of virtual time, for everyone and for customer reporters only."""

    def count(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in issues:
            if issue.get(key) is not None:
                out[issue[key]] = out.get(issue[key], 0) + 1
        return out

    def mean(values: list[float]) -> int | None:
        return int(round(sum(values) / len(values))) if values else None

    def customer(issue: dict[str, Any]) -> bool:
        return (issue.get("reporter") or {}).get("type") == "customer"

    closed = [i for i in issues if i["closed_at"] is not None]
    unresolved = [i for i in issues if i["closed_at"] is None]
    by_problem: dict[str, int] = {}
    for issue in issues:
        if issue.get("problem"):
            by_problem[issue["problem"]["uid"]] = by_problem.get(issue["problem"]["uid"], 0) + 1
    return {
        "status_count": count("status"),
        "priority_count": count("priority"),
        "severity_count": count("severity"),
        "mean_seconds_close_time_all": mean([i["closed_at"] - i["created_at"] for i in closed]),
        "mean_seconds_close_time_customer": mean([i["closed_at"] - i["created_at"] for i in closed if customer(i)]),
        "mean_unresolved_issue_age_all": mean([max(now - i["created_at"], 0.0) for i in unresolved]),
        "mean_unresolved_issue_age_customer": mean([max(now - i["created_at"], 0.0) for i in unresolved if customer(i)]),
        "object_count_by_annotation_issue_problem_uid": [
            {"problem_uid": uid, "count": n} for uid, n in sorted(by_problem.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }
