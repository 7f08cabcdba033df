"""Fleet recording uploads, default protocol (surface doc §2.18), as the 0.10.0 SDK checks them. No HTTP.

A session (record of kind ``fleet_upload_session``) holds the manifest (path → size) a client declared
for a recording, and what it confirmed. Its status is a function of the clock:
``initiated`` → ``uploading`` (first confirm) → ``completing`` (finalize) → ``completed``
(``FINALIZE_S`` later); an unfinished session with no activity for ``SESSION_TTL_S`` is ``abandoned``.
A recording has at most one open session; the status endpoint reports its latest one.

Bytes go to the data plane under ``s3_prefix + path``; confirm checks the object the plane holds (its
size and ETag) against what the client reports, so a file counts only once its exact bytes landed.
Every request is validated in full before anything changes: a failed call leaves no trace.
"""

from __future__ import annotations

from typing import Any

from avala_mock.simulators import fleet
from avala_mock.simulators.blobstore import blobstore, signed_url
from avala_mock.simulators.errors import Conflict, Invalid, NotFound
from avala_mock.simulators.records import Collection, collection, declare, new_record
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.uploads import check_path
from avala_mock.simulators.world import OrgStore, World

KIND = "fleet_upload_session"
declare(KIND, indexes=("recording",))
NO_SESSION = "No upload session found for this recording."
FINALIZE_S = 3.0  # virtual seconds from completing to completed
SESSION_TTL_S = 24 * 3600.0  # inactivity after which an unfinished session is abandoned
MAX_FILES = 50_000
PENDING_CAP = 1000  # pending_paths is capped like the real server's (the SDK detects the cap)
OPEN = ("initiated", "uploading", "completing")


def sessions(store: OrgStore) -> Collection:
    return collection(store, KIND)


def status_of(rec: dict[str, Any], now: float) -> str:
    timeline: Timeline | None = rec.get("_timeline")
    if timeline is not None:
        return timeline.status(now)
    if now - rec["last_activity_at"] >= SESSION_TTL_S:
        return "abandoned"
    return "uploading" if rec["confirmed"] else "initiated"


def _recording(store: OrgStore, recording_uid: str) -> dict[str, Any]:
    return fleet.get(store, fleet.RECORDINGS, recording_uid)


def latest(store: OrgStore, recording_uid: str) -> dict[str, Any] | None:
    found = sessions(store).filter(recording=recording_uid)
    return found[-1] if found else None


def _session(store: OrgStore, recording_uid: str, session_uid: str) -> dict[str, Any]:
    _recording(store, recording_uid)
    rec = sessions(store).get(session_uid) if session_uid in sessions(store) else None
    if rec is None or rec["recording"] != recording_uid:
        raise NotFound(f"Upload session {session_uid!r} not found for this recording.")
    return rec


def _require_open(rec: dict[str, Any], now: float, allowed: tuple[str, ...] = ("initiated", "uploading")) -> str:
    status = status_of(rec, now)
    if status not in allowed:
        raise Conflict(f"The upload session is {status}; it accepts no more files.")
    return status


def _counters(rec: dict[str, Any]) -> dict[str, int]:
    """Kept as running totals, so a 50,000-file session confirms in batches without re-summing."""
    return {"total_files": len(rec["files"]), "total_bytes": rec["_total_bytes"],
            "confirmed_files": len(rec["confirmed"]), "confirmed_bytes": rec["_confirmed_bytes"]}


def status(world: World, store: OrgStore, recording_uid: str) -> dict[str, Any]:
    """FU1: the latest session's seven keys; NotFound with the exact no-session message when none."""
    _recording(store, recording_uid)
    rec = latest(store, recording_uid)
    if rec is None:
        raise NotFound(NO_SESSION)
    pending = [p for p in rec["files"] if p not in rec["confirmed"]][:PENDING_CAP]
    return {"session_uid": rec["uid"], "status": status_of(rec, world.clock.now()), **_counters(rec),
            "pending_paths": pending}


def init(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """FU2: open a session over the manifest (409 while another one of the recording is open)."""
    _recording(store, recording_uid)
    now = world.clock.now()
    current = latest(store, recording_uid)
    if current is not None and status_of(current, now) in OPEN:
        raise Conflict(f"Recording already has an open upload session ({current['uid']}); finish or abandon it first.")
    files: dict[str, int] = {}
    if len(body["files"]) > MAX_FILES:
        raise Invalid(f"At most {MAX_FILES} files per session.", field="files")
    for i, f in enumerate(body["files"]):
        check_path(f["path"], f"files[{i}].path")
        if f["path"] in files:
            raise Invalid(f"{f['path']!r} is listed twice.", field=f"files[{i}].path")
        files[f["path"]] = f["size_bytes"]
    config = body.get("storage_config_uid")
    if config is not None and config not in collection(store, "storage_config"):
        raise Invalid(f"Storage config {config!r} not found.", field="storage_config_uid")
    prefix = f"fleet/{config or store.org.uid}/{recording_uid}/"
    rec = sessions(store).add(new_record(world, store, {
        "recording": recording_uid, "storage_config": config, "s3_prefix": prefix, "files": files,
        "confirmed": {}, "last_activity_at": now, "_total_bytes": sum(files.values()), "_confirmed_bytes": 0,
    }))
    return {"uid": rec["uid"], **_counters(rec), "s3_prefix": prefix, "status": "initiated"}


def urls(world: World, store: OrgStore, base: str, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """FU3: one signed PUT URL per requested manifest path (400 for a path not in the manifest)."""
    rec = _session(store, recording_uid, body["session_uid"])
    now = world.clock.now()
    _require_open(rec, now)
    unknown = [p for p in body["file_paths"] if p not in rec["files"]]
    if unknown:
        raise Invalid(f"{unknown[0]!r} not found in the session's manifest.", field="file_paths")
    expires = int(now) + int(body.get("ttl_seconds", 3600))
    rec["last_activity_at"] = now
    bs = blobstore(world)
    return {"urls": [
        {"path": p, "s3_key": rec["s3_prefix"] + p, "headers": {"Content-Type": "application/octet-stream"},
         "put_url": signed_url(bs, base, "PUT", rec["s3_prefix"] + p, expires=expires, size=rec["files"][p])}
        for p in body["file_paths"]
    ]}


def confirm(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """FU4: accept files whose object on the plane has the reported size and ETag; all or nothing."""
    rec = _session(store, recording_uid, body["session_uid"])
    now = world.clock.now()
    _require_open(rec, now)
    bs = blobstore(world)
    accepted: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(body["files"]):
        path, etag, size = f["path"], f["etag"].strip('"'), f["size_bytes"]
        where = f"files[{i}]"
        if path not in rec["files"]:
            raise Invalid(f"{path!r} not found in the session's manifest.", field=f"{where}.path")
        if size != rec["files"][path]:
            raise Invalid(f"{path!r} was declared with {rec['files'][path]} bytes, not {size}.", field=f"{where}.size_bytes")
        blob = bs.get(rec["s3_prefix"] + path)
        if blob is None:
            raise Invalid(f"{path!r} has not been uploaded.", field=f"{where}.path")
        if blob.size != size:
            raise Invalid(f"The stored {path!r} holds {blob.size} bytes, not {size}.", field=f"{where}.size_bytes")
        if blob.etag != etag:
            raise Invalid(f"The ETag of {path!r} does not match the stored object.", field=f"{where}.etag")
        accepted[path] = {"etag": etag, "size_bytes": size}
    new = [p for p in accepted if p not in rec["confirmed"]]
    rec["confirmed"].update(accepted)
    rec["_confirmed_bytes"] += sum(rec["files"][p] for p in new)
    rec.update(last_activity_at=now, updated_at=now)
    counters = _counters(rec)
    return {"session_uid": rec["uid"], **counters, "confirmed": len(new), "total_confirmed": counters["confirmed_files"]}


def finalize(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """FU5: completing now, completed on the clock; the recording starts processing. Idempotent."""
    rec = _session(store, recording_uid, body["session_uid"])
    now = world.clock.now()
    status = _require_open(rec, now, OPEN + ("completed",))
    if status in ("initiated", "uploading"):
        pending = [p for p in rec["files"] if p not in rec["confirmed"]]
        if pending:
            raise Conflict(f"{len(pending)} file(s) are not confirmed yet (e.g. {pending[0]!r}).")
        rec["_timeline"] = Timeline.start(world.clock, "completing", ("completed", FINALIZE_S))
        rec.update(finalized_at=now, updated_at=now)
        fleet.recording_uploaded(world, store, recording_uid, rec["_total_bytes"])
    return {"detail": "Upload finalized; processing started.", "session_uid": rec["uid"],
            "status": status_of(rec, world.clock.now())}


def drop_recording(world: World, store: OrgStore, recording_uid: str) -> None:
    """A deleted recording takes its sessions with it (its objects stay in the bucket, as on S3)."""
    sessions(store).remove_where(recording=recording_uid)


if drop_recording not in fleet.ON_RECORDING_DELETED:
    fleet.ON_RECORDING_DELETED.append(drop_recording)
