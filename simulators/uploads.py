"""Manual (Avala-managed) dataset uploads (surface doc §2.4): presign, parts, complete, quota and the
finalize that turns the uploaded files into a dataset. No HTTP here.

One record of kind ``manual_upload`` per file being uploaded, in the key's organisation store:

* **v1** (no ``dataset_upload_uid``): a presigned POST. One record per storage key; re-presigning the
  same key (the SDK re-presigns inside its retry loop) replaces its reservation instead of adding one.
  The file is settled once its bytes landed on the data plane with the declared size.
* **v2** (``dataset_upload_uid`` given): a managed session per (batch, path), ``PUT`` for files up to
  ``MULTIPART_THRESHOLD``, ``MULTIPART`` above. Presigning the same (batch, path) again resumes the same
  session (same ``upload_uid``, ``uploaded_parts`` listing what the plane holds, ``complete: true`` once
  done). The file is settled by ``complete``, which checks every byte is there.

Quota: ``used`` = settled bytes + open reservations (presigned, not landed, not expired) of the owner
(the organisation given by ``organization_uid``, else the key's user); a presign that would exceed
``QUOTA_LIMIT_BYTES`` is refused (413 with ``limit``/``used``). Reservations lapse on the clock.
"""

from __future__ import annotations

import heapq
import math
import mimetypes
import uuid
from typing import Any

from avala_mock.simulators.blobstore import blobstore, signed_url
from avala_mock.simulators.errors import Conflict, Invalid, NotFound, TooLarge
from avala_mock.simulators.records import Collection, collection, new_record
from avala_mock.simulators.world import OrgStore, User, World

KIND = "manual_upload"
LEDGER = "manual_upload_quota"  # one record per owner root
INDEX = "manual_upload_index"
QUOTA_LIMIT_BYTES = 10 * 1024**3  # per owner (organisation or user); change here to resize every world
URL_TTL_S = 3600  # presigned URLs, and the reservation of a v1 presign
SESSION_TTL_S = 7 * 86400  # an open v2 session (and its reservation) after its last presign
MULTIPART_THRESHOLD = 8 * 1024**2  # v2 files above this go MULTIPART
MIN_PART, MAX_PART, MAX_PARTS = 5 * 1024**2, 64 * 1024**2, 10_000
ALLOWED_MIMES = (
    "image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif",
    "video/mp4", "video/quicktime", "video/x-matroska", "video/webm", "video/x-msvideo",
    "application/octet-stream", "application/json", "application/x-mcap", "application/vnd.ros1.bag",
    "application/x-pcd", "application/x-ply", "text/csv", "text/plain",
)


class QuotaExceeded(TooLarge):
    """A presign that would take the owner over its quota (413 with ``limit`` and ``used``)."""

    def __init__(self, limit: int, used: int, wanted: int) -> None:
        super().__init__(f"Storage quota exceeded: {used} of {limit} bytes are used and this file needs {wanted} more.",
                         limit=limit, used=used)
        self.limit, self.used = limit, used


def uploads(store: OrgStore) -> Collection:
    return collection(store, KIND)


def allowed_mimes() -> dict[str, Any]:
    return {"mime_types": list(ALLOWED_MIMES), "video_prefix": "video/"}


def canonical_uid(value: str) -> str:
    """The SDK treats upper-case, braced and unhyphenated UUIDs as the same organisation."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return value


def owner_root(world: World, store: OrgStore, user: User, organization_uid: str | None) -> str:
    """The storage root of the upload owner: ``__o__=/<org_uid>`` or ``__u__=/<user_uid>`` (404 for an
    organisation the key's user does not belong to)."""
    if organization_uid is None:
        return f"__u__=/{user.uid}"
    uid = canonical_uid(organization_uid)
    if uid != store.org.uid:
        from avala_mock.simulators import organizations  # only for organisations created through the API

        if uid not in {o["uid"] for o in organizations.organizations_of(world, store, user)}:
            raise NotFound(f"Organization {organization_uid!r} not found.")
    return f"__o__=/{uid}"


def check_path(path: str, field: str) -> None:
    segments = path.split("/")
    if (
        len(path) > 1024
        or path.startswith("/")
        or "\\" in path
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise Invalid(f"{path!r} is not a relative POSIX path inside the dataset.", field=field)


def _settled(world: World, rec: dict[str, Any]) -> bool:
    if rec["protocol"] == 2:
        return rec["status"] == "complete"
    blob = blobstore(world).get(rec["key"])
    return blob is not None and blob.size == rec["size"]


def _index(store: OrgStore) -> dict[str, Any]:
    """Lookups a presign needs in O(1): v1 records by storage key, v2 by (batch, path), batch owners."""
    found = collection(store, INDEX)
    if "index" not in found:
        found.add({"uid": "index", "_v1": {}, "_v2": {}, "_batches": {}})
    return found.get("index")


def _ledger(store: OrgStore, root: str) -> dict[str, Any]:
    """Quota bookkeeping of one owner: settled bytes, reserved bytes of the uploads in flight (uid → size)
    and a heap of their expiries, so a presign costs O(log n) however many files were uploaded."""
    ledgers = collection(store, LEDGER)
    if root not in ledgers:
        ledgers.add({"uid": root, "settled": 0, "reserved": 0, "_open": {}, "_expiries": []})
    return ledgers.get(root)


def register(store: OrgStore, rec: dict[str, Any]) -> None:
    """Index a new upload record and count it in its owner's quota (settled when already complete)."""
    idx = _index(store)
    if rec["protocol"] == 1:
        idx["_v1"][rec["key"]] = rec["uid"]
    else:
        idx["_v2"][(rec["batch"], rec["path"])] = rec["uid"]
        idx["_batches"].setdefault(rec["batch"], (rec["dataset_name"], rec["root"]))
    track(store, rec)
    if rec["protocol"] == 2 and rec["status"] == "complete":
        settle(store, rec)


def track(store: OrgStore, rec: dict[str, Any]) -> None:
    """(Re)reserve an upload in flight until ``reserved_until``."""
    led = _ledger(store, rec["root"])
    led["reserved"] += rec["size"] - led["_open"].get(rec["uid"], 0)
    led["_open"][rec["uid"]] = rec["size"]
    heapq.heappush(led["_expiries"], (rec["reserved_until"], rec["uid"]))


def settle(store: OrgStore, rec: dict[str, Any]) -> None:
    """The upload's bytes are all there: its reservation becomes settled bytes."""
    led = _ledger(store, rec["root"])
    if rec["uid"] in led["_open"]:
        led["reserved"] -= led["_open"].pop(rec["uid"])
        led["settled"] += rec["size"]


def _release(store: OrgStore, rec: dict[str, Any]) -> None:
    led = _ledger(store, rec["root"])
    led["reserved"] -= led["_open"].pop(rec["uid"], 0)


def used_bytes(world: World, store: OrgStore, root: str, *, exclude: str | None = None) -> int:
    """Settled bytes + open reservations. Reservations past their expiry are looked at once: a v1 file
    whose bytes landed settles, anything else lapses."""
    led, now, found = _ledger(store, root), world.clock.now(), uploads(store)
    heap = led["_expiries"]
    while heap and heap[0][0] <= now:
        _, uid = heapq.heappop(heap)
        rec = found.get(uid) if uid in found else None
        if rec is None or uid not in led["_open"] or rec["reserved_until"] > now:
            continue  # gone, already settled, or re-presigned later (a newer heap entry holds it)
        if _settled(world, rec):
            settle(store, rec)
        else:
            _release(store, rec)
    return led["settled"] + led["reserved"] - (led["_open"].get(exclude, 0) if exclude else 0)


def quota(world: World, store: OrgStore, user: User, organization_uid: str | None) -> dict[str, int]:
    root = owner_root(world, store, user, organization_uid)
    return {"used": used_bytes(world, store, root), "limit": QUOTA_LIMIT_BYTES}


def _reserve(world: World, store: OrgStore, root: str, size: int, exclude: str | None = None) -> None:
    used = used_bytes(world, store, root, exclude=exclude)
    if used + size > QUOTA_LIMIT_BYTES:
        raise QuotaExceeded(QUOTA_LIMIT_BYTES, used, size)


def _content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def part_geometry(size: int) -> tuple[int, int]:
    """(part_size, part_count): the smallest whole-MiB part size ≥ 5 MiB that fits in 10,000 parts."""
    part = max(MIN_PART, math.ceil(size / MAX_PARTS / 1024**2) * 1024**2)
    if part > MAX_PART:
        raise Invalid(f"A file of {size} bytes needs parts over {MAX_PART} bytes; the mock stores at most that.",
                      field="content_length")
    return part, max(1, math.ceil(size / part))


def presign(world: World, store: OrgStore, user: User, base: str, body: dict[str, Any]) -> dict[str, Any]:
    """MU1: a v1 presigned POST, or (with ``dataset_upload_uid``) a v2 session descriptor."""
    name, path, size = body["dataset_name"], body["file_path_in_dataset"], body["content_length"]
    if any(ord(c) < 32 for c in name) or name.strip() in (".", ".."):
        raise Invalid(f"{name!r} cannot name a dataset prefix.", field="dataset_name")
    check_path(path, "file_path_in_dataset")
    root = owner_root(world, store, user, body.get("organization_uid"))
    key = f"{root}/{name}/{path}"
    batch = body.get("dataset_upload_uid")
    if batch is None:
        return _presign_v1(world, store, user, base, root, name, path, key, size)
    return _presign_v2(world, store, user, base, root, name, path, key, size, canonical_uid(batch))


def _presign_v1(world: World, store: OrgStore, user: User, base: str, root: str, name: str, path: str,
                key: str, size: int) -> dict[str, Any]:
    now = world.clock.now()
    uid = _index(store)["_v1"].get(key)
    rec = uploads(store).get(uid) if uid else None
    led = _ledger(store, root)
    used = used_bytes(world, store, root, exclude=uid)
    settled = rec is not None and uid not in led["_open"] and _settled(world, rec)
    if used - (rec["size"] if settled else 0) + size > QUOTA_LIMIT_BYTES:  # a re-upload replaces the object
        raise QuotaExceeded(QUOTA_LIMIT_BYTES, used, size)
    expires = int(now) + URL_TTL_S
    if rec is None:
        rec = uploads(store).add(new_record(world, store, {
            "protocol": 1, "method": "POST", "root": root, "dataset_name": name, "path": path, "key": key,
            "batch": None, "user": user.uid, "size": size, "status": "open", "dataset": None,
            "reserved_until": expires,
        }))
        register(store, rec)
    else:
        if settled:
            led["settled"] -= rec["size"]
        rec.update(size=size, reserved_until=expires, updated_at=now)
        track(store, rec)
    ctype = _content_type(path)
    policy, signature = blobstore(world).sign_policy({"key": key, "expires": expires, "size": size})
    return {
        "method": "POST",
        "url": base.rstrip("/") + "/",
        "fields": {"key": key, "Content-Type": ctype, "policy": policy, "x-avala-signature": signature},
        "expires_at": expires,
    }


def _presign_v2(world: World, store: OrgStore, user: User, base: str, root: str, name: str, path: str,
                key: str, size: int, batch: str) -> dict[str, Any]:
    now = world.clock.now()
    idx = _index(store)
    owner = idx["_batches"].get(batch)
    if owner is not None and owner != (name, root):
        raise Conflict(f"Upload batch {batch} belongs to dataset {owner[0]!r} of another owner or name; "
                       "use a new dataset_upload_uid.")
    uid = idx["_v2"].get((batch, path))
    rec = uploads(store).get(uid) if uid else None
    if rec is not None and rec["size"] != size:
        raise Conflict(f"{path!r} was presigned in this batch with {rec['size']} bytes, not {size}; "
                       "a changed file needs a new dataset_upload_uid.")
    if rec is not None and rec["status"] == "complete":
        return {"upload_uid": rec["uid"], "method": rec["method"], "complete": True}
    if rec is not None and now >= rec["reserved_until"]:  # lapsed: its parts are gone, start over
        blobstore(world).abort_multipart(rec["uid"])
        uploads(store).remove(rec["uid"])
        _release(store, rec)
        rec = None
    _reserve(world, store, root, size, exclude=rec["uid"] if rec else None)
    if rec is None:
        method = "MULTIPART" if size > MULTIPART_THRESHOLD else "PUT"
        part_size, part_count = part_geometry(size) if method == "MULTIPART" else (None, None)
        rec = uploads(store).add(new_record(world, store, {
            "protocol": 2, "method": method, "root": root, "dataset_name": name, "path": path, "key": key,
            "batch": batch, "user": user.uid, "size": size, "status": "open", "dataset": None,
            "part_size": part_size, "part_count": part_count, "reserved_until": now + SESSION_TTL_S,
        }))
        if method == "MULTIPART":
            last = size - part_size * (part_count - 1)
            blobstore(world).create_multipart(rec["uid"], key, [part_size] * (part_count - 1) + [last])
        register(store, rec)
    else:
        rec.update(reserved_until=now + SESSION_TTL_S, updated_at=now)
        track(store, rec)
    out: dict[str, Any] = {"upload_uid": rec["uid"], "method": rec["method"], "complete": False}
    if rec["method"] == "PUT":
        out["url"] = signed_url(blobstore(world), base, "PUT", key, expires=int(now) + URL_TTL_S, size=size)
        out["headers"] = {"Content-Type": _content_type(path), "If-None-Match": "*"}
    else:
        mp = blobstore(world).multipart(rec["uid"])
        out["part_size"], out["part_count"] = rec["part_size"], rec["part_count"]
        out["uploaded_parts"] = [{"part_number": n, "size": s} for n, s in mp.stored()]
    return out


def _session(world: World, store: OrgStore, upload_uid: str) -> dict[str, Any]:
    rec = uploads(store).get(upload_uid) if upload_uid in uploads(store) else None
    if rec is None or rec["protocol"] != 2:
        raise NotFound(f"Upload {upload_uid!r} not found.")
    if rec["status"] != "complete" and world.clock.now() >= rec["reserved_until"]:
        raise Conflict("This upload session expired; presign the file again.")
    return rec


def presign_parts(world: World, store: OrgStore, base: str, upload_uid: str, numbers: list[int]) -> dict[str, Any]:
    """MU5: one signed part URL per requested number, in request order."""
    rec = _session(world, store, upload_uid)
    if rec["method"] != "MULTIPART":
        raise Conflict("This upload is a single PUT, not MULTIPART.")
    if rec["status"] == "complete":
        raise Conflict("This upload is already complete.")
    too_big = [n for n in numbers if n > rec["part_count"]]
    if too_big:
        raise Invalid(f"Part {int(too_big[0])} not found: this upload has {rec['part_count']} parts.", field="part_numbers")
    mp = blobstore(world).multipart(rec["uid"])
    expires = int(world.clock.now()) + URL_TTL_S
    return {"parts": [
        {"part_number": n, "headers": {},
         "url": signed_url(blobstore(world), base, "PUT", rec["key"], expires=expires, size=mp.part_sizes[n - 1],
                           upload_id=rec["uid"], part=n)}
        for n in numbers
    ]}


def complete(world: World, store: OrgStore, upload_uid: str) -> dict[str, Any]:
    """MU6: settle the file once every byte is on the plane (400 otherwise; nothing changes then)."""
    rec = _session(world, store, upload_uid)
    if rec["status"] != "complete":
        bs = blobstore(world)
        if rec["method"] == "MULTIPART":
            bs.complete_multipart(rec["uid"], world.clock.now(), _content_type(rec["path"]))
        else:
            blob = bs.get(rec["key"])
            if blob is None:
                raise Invalid(f"{rec['path']!r} not found on the storage plane: it has not been uploaded yet.",
                              field="upload_uid")
            if blob.size != rec["size"]:
                raise Invalid(f"{rec['path']!r} holds {blob.size} bytes, not the {rec['size']} presigned.",
                              field="upload_uid")
        rec.update(status="complete", completed_at=world.clock.now(), updated_at=world.clock.now())
        settle(store, rec)
    return {"upload_uid": rec["uid"], "complete": True, "file_path_in_dataset": rec["path"], "size": rec["size"]}


def settled_files(world: World, store: OrgStore, root: str, name: str, batch: str | None) -> list[dict[str, Any]]:
    """The settled uploads of dataset ``name`` under ``root`` (of one batch when given), by path."""
    found = [
        r for r in uploads(store).filter(root=root, dataset_name=name)
        if (batch is None or r["batch"] == batch) and _settled(world, r)
    ]
    by_path: dict[str, dict[str, Any]] = {}
    for r in found:  # a path uploaded by v1 and v2: the latest record wins
        by_path[r["path"]] = r
    return [by_path[p] for p in sorted(by_path)]


def finalize(world: World, store: OrgStore, user: User, body: dict[str, Any]) -> Any:
    """MU4: create the dataset over the settled files of this name (and batch); 400 when there are none."""
    from avala_mock.simulators import datasets  # the datasets backend owns dataset creation and indexing

    root = owner_root(world, store, user, body.get("organization_uid"))
    batch = body.get("dataset_upload_uid")
    files = settled_files(world, store, root, body["name"], canonical_uid(batch) if batch else None)
    if not files:
        where = f" in batch {batch}" if batch else ""
        raise Invalid(f"Uploaded files for dataset {body['name']!r}{where} not found; upload files first.",
                      field="name")
    org_uid = canonical_uid(body["organization_uid"]) if body.get("organization_uid") else None
    # A personal upload makes a personal dataset; an organisation's, the organisation's.
    wanted_owner = body.get("owner_name") or (None if org_uid else user.username)
    try:
        owner = datasets.resolve_owner(store, user, owner_name=wanted_owner, organization_uid=org_uid)
    except PermissionError as exc:
        raise Invalid(str(exc), field="owner_name") from None
    dataset = datasets.create_dataset(
        world, store,
        name=body["name"], slug=body["slug"], data_type=body["data_type"],
        visibility=body.get("visibility", "private"), owner_name=owner,
        item_keys=[r["path"] for r in files], is_sequence=False, metadata=body.get("metadata"),
    )
    for r in files:
        r["dataset"] = dataset.uid
    return dataset
