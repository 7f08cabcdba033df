"""Fleet managed MCAP uploads, protocol ``fleet-managed-mcap-v1`` (surface doc §2.19). No HTTP here.

A session (record of kind ``managed_fleet_upload``, uid = the client-generated ``session_uid``) admits
1–64 MCAP originals. Each original gets one multipart *generation* (64 MiB parts) whose parts the
client PUTs with short-lived grants; the grants have the exact R2 shape the SDK validates
(``https://<32-hex>.r2.cloudflarestorage.com/<bucket>/__o__%3D/<org>/__cloud__/<session>/<path>`` with a
SigV4-style query). That host is not reachable offline; the data plane serves the same path and query
under ``/_storage/r2/<host>/…`` so a proxy (or a test) can route the bytes to the mock.

Finalize assembles every generation (all parts must be stored), checks each original's sha256 and runs
the publication on the clock: ``pending`` → ``running`` through the stages ``complete`` → ``verify`` →
``attach`` → ``prepare`` → ``publish`` → ``succeeded`` (a dataset of the recording's MCAP files is
created and the recording starts processing), or ``failed`` at ``verify`` with ``content_mismatch``.
The outcome is decided at finalize (the bytes are known then); its timing is a ``Timeline``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from avala_mock.simulators import fleet
from avala_mock.simulators.blobstore import blobstore
from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Conflict, Invalid, NotFound
from avala_mock.simulators.records import Collection, collection, declare, new_record
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import OrgStore, World

KIND = "managed_fleet_upload"
declare(KIND, indexes=("recording",))
PROTOCOL = "fleet-managed-mcap-v1"
PART_SIZE = 64 * 1024**2
GRANT_TTL_S = 300
INIT_DEADLINE_S = 24 * 3600
BUCKET = "avala-fleet-originals"
ACCESS_KEY_ID = "AVALAMOCKR2ACCESSKEY"
STAGE_S = 1.0  # virtual seconds per publication stage
STAGES = ("complete", "verify", "attach", "prepare", "publish")
VERIFIED_FROM = ("attach", "prepare", "publish", "succeeded")


def sessions(store: OrgStore) -> Collection:
    return collection(store, KIND)


def r2_host(world: World) -> str:
    """The world's R2 account endpoint (32 hex digits derived from the seed)."""
    return hashlib.sha256(f"avala-mock-r2:{world.seed}".encode()).hexdigest()[:32] + ".r2.cloudflarestorage.com"


def object_key(org_uid: str, session_uid: str, path: str) -> str:
    return f"__o__=/{org_uid}/__cloud__/{session_uid}/{path}"


def grant_signature(world: World, key: str, upload_id: str, number: int, size: int, amz_date: str, ttl: int) -> str:
    return blobstore(world).sign("R2-PUT", key, upload_id, number, size, amz_date, ttl)


# -- state as a function of the clock -------------------------------------------------------------


def _step(rec: dict[str, Any], now: float) -> str | None:
    final = rec.get("_finalization")
    return None if final is None else final["timeline"].status(now)


def _generation_state(rec: dict[str, Any], step: str | None) -> str:
    if step is None or step == "pending":
        return "active"
    if step == "failed":
        return "abandoned"
    return "completed" if step in VERIFIED_FROM else "completing"


def _render_finalization(rec: dict[str, Any], now: float) -> dict[str, Any] | None:
    final = rec.get("_finalization")
    if final is None:
        return None
    step = final["timeline"].status(now)
    reached = final["timeline"].reached(step, now) or final["submitted_at"]
    out = {"uid": final["uid"], "state": "running", "stage": step, "attempts": 1, "failures": 0, "code": "running",
           "available_at": iso(reached), "publication_uid": None, "dataset_uid": None}
    if step == "pending":
        out.update(state="pending", stage="complete", attempts=0, code="pending")
    elif step == "succeeded":
        out.update(state="succeeded", stage="publish", code="published",
                   publication_uid=final["publication_uid"], dataset_uid=final["dataset_uid"])
    elif step == "failed":
        out.update(state="failed", stage="verify", failures=1, code="content_mismatch")
    return out


def render_status(rec: dict[str, Any], now: float) -> dict[str, Any]:
    """ManagedFleetUploadStatus, exact keys; counters are sums over the files."""
    step = _step(rec, now)
    verified = step in VERIFIED_FROM
    files = []
    for f in rec["files"]:
        gen = f["generation"]
        files.append({
            "file_uid": f["file_uid"], "path": f["path"], "size_bytes": f["size_bytes"],
            "content_sha256": f["content_sha256"], "content_type": "application/octet-stream", "content_encoding": "",
            "part_size": PART_SIZE, "part_count": f["part_count"], "verified": verified,
            "generation": None if gen is None else {
                "generation_uid": gen["generation_uid"], "number": 1, "state": _generation_state(rec, step)},
        })
    if verified:
        status = "completed"
    elif step in ("pending", "complete", "verify"):
        status = "completing"
    else:
        status = "uploading" if any(f["generation"] for f in rec["files"]) else "initiated"
    return {
        "protocol": PROTOCOL, "session_uid": rec["uid"], "recording_uid": rec["recording"], "status": status,
        "total_files": len(files), "total_bytes": sum(f["size_bytes"] for f in files),
        "confirmed_files": sum(f["verified"] for f in files),
        "confirmed_bytes": sum(f["size_bytes"] for f in files if f["verified"]),
        "files": files, "finalization": _render_finalization(rec, now),
    }


def _open(rec: dict[str, Any], now: float) -> bool:
    return _step(rec, now) not in ("succeeded", "failed") and render_status(rec, now)["status"] != "completed"


# -- operations -----------------------------------------------------------------------------------


def _session(store: OrgStore, recording_uid: str, session_uid: str) -> dict[str, Any]:
    fleet.get(store, fleet.RECORDINGS, recording_uid)
    rec = sessions(store).get(session_uid) if session_uid in sessions(store) else None
    if rec is None or rec["recording"] != recording_uid:
        raise NotFound(f"Managed upload session {session_uid!r} not found for this recording.")
    return rec


def _file(rec: dict[str, Any], file_uid: str) -> dict[str, Any]:
    for f in rec["files"]:
        if f["file_uid"] == file_uid:
            return f
    raise NotFound(f"File {file_uid!r} is not part of this session.")


def _generation(rec: dict[str, Any], file_uid: str, generation_uid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    f = _file(rec, file_uid)
    gen = f["generation"]
    if gen is None or gen["generation_uid"] != generation_uid:
        raise NotFound(f"Generation {generation_uid!r} not found for file {file_uid!r}.")
    return f, gen


def admit(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """MF1: admit the manifest under the client's session uid; re-admitting the same one is a no-op."""
    fleet.get(store, fleet.RECORDINGS, recording_uid)
    now = world.clock.now()
    session_uid = body["session_uid"]
    manifest = [(f["path"], f["size_bytes"], f["content_sha256"]) for f in body["files"]]
    if session_uid in sessions(store):
        rec = sessions(store).get(session_uid)
        if rec["recording"] != recording_uid or rec["manifest"] != manifest:
            raise Conflict("This session_uid was admitted with another recording or manifest; use a new session.")
        return render_status(rec, now)
    paths = [m[0] for m in manifest]
    for i, path in enumerate(paths):
        if path in paths[:i]:
            raise Invalid(f"{path!r} is listed twice.", field=f"files[{i}].path")
        if path.startswith("__derived__/") or any(s in ("", ".", "..") for s in path.split("/")) or "\\" in path:
            raise Invalid(f"{path!r} is not a relative path of an original.", field=f"files[{i}].path")
    if sum(m[1] for m in manifest) > 64 * 1024**3:
        raise Invalid("A session holds at most 64 GiB.", field="files")
    for other in sessions(store).filter(recording=recording_uid):
        if _open(other, now):
            raise Conflict(f"Recording already has an open managed upload session ({other['uid']}).")
    files = [
        {"file_uid": uid, "path": path, "size_bytes": size, "content_sha256": sha,
         "part_count": math.ceil(size / PART_SIZE), "generation": None}
        for uid, (path, size, sha) in zip(world.ids.many(len(manifest)), manifest)
    ]
    rec = sessions(store).add(new_record(world, store, {"recording": recording_uid, "manifest": manifest, "files": files},
                                         uid=session_uid))
    return render_status(rec, now)


def status(world: World, store: OrgStore, recording_uid: str, session_uid: str) -> dict[str, Any]:
    """MF2."""
    return render_status(_session(store, recording_uid, session_uid), world.clock.now())


def init_multipart(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """MF3: the file's one generation (409 when it already has one or publication started)."""
    rec = _session(store, recording_uid, body["session_uid"])
    f = _file(rec, body["file_uid"])
    now = world.clock.now()
    if f["generation"] is not None:
        raise Conflict("This file already has a multipart generation.")
    if rec.get("_finalization") is not None:
        raise Conflict("The session was submitted for publication.")
    gen = {"generation_uid": world.ids.uid(), "upload_id": world.ids.hex(48), "created_at": now}
    sizes = [min(PART_SIZE, f["size_bytes"] - i * PART_SIZE) for i in range(f["part_count"])]
    blobstore(world).create_multipart(gen["upload_id"], object_key(store.org.uid, rec["uid"], f["path"]), sizes)
    f["generation"] = gen
    rec["updated_at"] = now
    return {"protocol": PROTOCOL, "session_uid": rec["uid"], "file_uid": f["file_uid"],
            "generation_uid": gen["generation_uid"], "number": 1, "state": "active", "part_size": PART_SIZE,
            "part_count": f["part_count"], "initialization_deadline": iso(now + INIT_DEADLINE_S)}


def progress(world: World, store: OrgStore, recording_uid: str, query: dict[str, Any]) -> dict[str, Any]:
    """MF4: stored parts numbered above ``after``, 100 per page; ``next_cursor`` when more remain."""
    rec = _session(store, recording_uid, query["session_uid"])
    f, gen = _generation(rec, query["file_uid"], query["generation_uid"])
    stored = [(n, s) for n, s in blobstore(world).multipart(gen["upload_id"]).stored() if n > query.get("after", 0)]
    if gen.get("assembled"):
        stored = [(n, min(PART_SIZE, f["size_bytes"] - (n - 1) * PART_SIZE)) for n in range(1, f["part_count"] + 1)
                  if n > query.get("after", 0)]
    page = stored[:100]
    return {"protocol": PROTOCOL, "session_uid": rec["uid"], "file_uid": f["file_uid"],
            "generation_uid": gen["generation_uid"], "parts": [{"part_number": n, "size": s} for n, s in page],
            "next_cursor": page[-1][0] if len(stored) > 100 else None}


def grant_parts(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """MF5: one grant per requested part (400 beyond ``part_count``, 409 unless the generation is active)."""
    rec = _session(store, recording_uid, body["session_uid"])
    f, gen = _generation(rec, body["file_uid"], body["generation_uid"])
    now = world.clock.now()
    if _generation_state(rec, _step(rec, now)) != "active" or rec.get("_finalization") is not None:
        raise Conflict("The generation is no longer active.")
    grants = []
    signed = datetime.fromtimestamp(int(now), tz=timezone.utc)
    amz_date = signed.strftime("%Y%m%dT%H%M%SZ")
    key = object_key(store.org.uid, rec["uid"], f["path"])
    for number in body["numbers"]:
        if number > f["part_count"]:
            raise Invalid(f"Part {int(number)} not found: the file has {f['part_count']} parts.", field="numbers")
        offset = (number - 1) * PART_SIZE
        size = min(PART_SIZE, f["size_bytes"] - offset)
        query = [
            ("uploadId", gen["upload_id"]), ("partNumber", str(number)),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{ACCESS_KEY_ID}/{signed:%Y%m%d}/auto/s3/aws4_request"),
            ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(GRANT_TTL_S)), ("X-Amz-SignedHeaders", "content-length;host"),
            ("X-Amz-Signature", grant_signature(world, key, gen["upload_id"], number, size, amz_date, GRANT_TTL_S)),
        ]
        qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
        grants.append({
            "grant_uid": world.ids.uid(), "part_number": number, "offset": offset, "size_bytes": size,
            "url": f"https://{r2_host(world)}/{BUCKET}/{quote(key, safe='/')}?{qs}",
            "headers": {"Content-Length": str(size)}, "expires_at": iso(int(now) + GRANT_TTL_S),
        })
    return {"protocol": PROTOCOL, "session_uid": rec["uid"], "file_uid": f["file_uid"],
            "generation_uid": gen["generation_uid"], "parts": grants}


def finalize(world: World, store: OrgStore, recording_uid: str, body: dict[str, Any]) -> dict[str, Any]:
    """MF6: assemble and verify every original, then publish on the clock. Idempotent once submitted."""
    rec = _session(store, recording_uid, body["session_uid"])
    now = world.clock.now()
    if rec.get("_finalization") is None:
        _submit(world, store, rec, body["files"], now)
    return {"protocol": PROTOCOL, "session_uid": rec["uid"], "finalization": _render_finalization(rec, now)}


def _submit(world: World, store: OrgStore, rec: dict[str, Any], declared: list[dict[str, Any]], now: float) -> None:
    wanted = {f["file_uid"]: f["generation_uid"] for f in declared}
    if set(wanted) != {f["file_uid"] for f in rec["files"]} or len(wanted) != len(declared):
        raise Invalid("files must name every original of the session exactly once.", field="files")
    bs = blobstore(world)
    for f in rec["files"]:
        gen = f["generation"]
        if gen is None or wanted[f["file_uid"]] != gen["generation_uid"]:
            raise Conflict(f"{f['path']!r} has no multipart generation {wanted[f['file_uid']]!r}.")
        missing = bs.multipart(gen["upload_id"]).missing()
        if missing:
            raise Conflict(f"{f['path']!r} is missing {len(missing)} part(s) (e.g. part {missing[0]}).")
    intact = all(bs.multipart(f["generation"]["upload_id"]).sha256() == f["content_sha256"] for f in rec["files"])
    steps = [(stage, STAGE_S) for stage in STAGES] + [("succeeded", STAGE_S)]
    if not intact:
        steps = [("complete", STAGE_S), ("verify", STAGE_S), ("failed", STAGE_S)]
    final = {"uid": world.ids.uid(), "timeline": Timeline.start(world.clock, "pending", *steps),
             "submitted_at": now, "publication_uid": None, "dataset_uid": None}
    if intact:  # the dataset first: if it cannot be created, nothing else has changed
        final["dataset_uid"] = _publish(world, store, rec)
        final["publication_uid"] = world.ids.uid()
        fleet.recording_uploaded(world, store, rec["recording"], sum(f["size_bytes"] for f in rec["files"]))
    for f in rec["files"]:  # the multipart uploads become the original objects
        bs.complete_multipart(f["generation"]["upload_id"], now)
        f["generation"]["assembled"] = True
    rec["_finalization"] = final
    rec["updated_at"] = now


def _publish(world: World, store: OrgStore, rec: dict[str, Any]) -> str:
    """The dataset the publication attaches the originals to (an ``mcap`` dataset, one item per file)."""
    from avala_mock.simulators import datasets

    short = rec["recording"][:8]
    dataset = datasets.create_dataset(
        world, store, name=f"Recording {short} ({rec['uid'][:8]})", slug=f"fleet-{short}-{rec['uid'][:8]}",
        data_type="mcap", item_keys=[f["path"] for f in rec["files"]], is_sequence=False,
        metadata={"fleet_recording": rec["recording"], "managed_upload_session": rec["uid"]},
    )
    return dataset.uid


def drop_recording(world: World, store: OrgStore, recording_uid: str) -> None:
    sessions(store).remove_where(recording=recording_uid)


if drop_recording not in fleet.ON_RECORDING_DELETED:
    fleet.ON_RECORDING_DELETED.append(drop_recording)
