"""Dataset rules beyond reading: create (with a simulated cloud-bucket import), indexing on the clock,
ownership transfer and the ingest health report.

A created dataset is ``creating`` until its indexing timeline ends (longer for more items), then
``created``. Status is a function of the clock: nothing is scheduled (design principle 5).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from avala_mock.simulators import events
from avala_mock.simulators.errors import Conflict, Forbidden, Invalid, NotFound
from avala_mock.simulators.model import GroundTruth
from avala_mock.simulators.timeline import Timeline
from avala_mock.simulators.world import Dataset, OrgStore, Sequence, User, World

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
VISIBILITIES = ("private", "unlisted", "public")
INDEX_BASE_S = 2.0  # indexing start-up, virtual seconds
INDEX_PER_ITEM_S = 0.01  # per item: 1,000 items index in ~12 s
MANAGED_BUCKET = "avala-mock-datasets"

# Which object extensions an import indexes for each data type (the importer docs: "the server only
# indexes objects whose extension matches it").
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": ("jpg", "jpeg", "png", "webp", "bmp"),
    "video": ("mp4", "mov", "mkv", "avi"),
    "lidar": ("pcd", "bin", "ply", "las", "laz"),
    "pointcloud": ("pcd", "bin", "ply", "las", "laz"),
    "mcap": ("mcap",),
    "splat": ("ply", "splat", "spz"),
}
PROVIDER_ALIASES = {"aws_s3": "aws_s3", "s3": "aws_s3", "gc_storage": "gc_storage", "gcs": "gc_storage",
                    "google_cloud_storage": "gc_storage"}
# provider_config keys that are credentials: validated, never stored, never echoed.
SECRET_KEYS = ("s3_access_key_id", "s3_secret_access_key", "s3_role_arn", "gc_storage_auth_json_content")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ACCESS_KEY_RE = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,}$")
_S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


# ---------------------------------------------------------------------------------------------- create

def create_dataset(
    world: World,
    store: OrgStore,
    *,
    name: str,
    slug: str,
    data_type: str,
    visibility: str = "private",
    owner_name: str | None = None,
    item_keys: list[str] | None = None,
    is_sequence: bool = False,
    metadata: dict | None = None,
) -> Dataset:
    """Validate and add a dataset whose items are ``item_keys`` (no ground truth), indexing on the clock.

    ``owner_name`` is the organisation's slug (default) or a member's username. With ``is_sequence``
    the items are grouped into one sequence per folder (their frames).
    """
    name = (name or "").strip()
    if not name or len(name) > 255:
        raise Invalid("name must be 1 to 255 characters.", field="name")
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or len(slug) > 100:
        raise Invalid("slug must start with a letter or digit and contain only letters, digits, '.', '_' or '-' "
                      "(at most 100 characters).", field="slug")
    if not isinstance(data_type, str) or not data_type.strip():
        raise Invalid("data_type is required.", field="data_type")
    if visibility not in VISIBILITIES:
        raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility")
    if metadata is not None and not isinstance(metadata, dict):
        raise Invalid("metadata must be an object.", field="metadata")
    owner = owner_name or store.org.slug
    if owner != store.org.slug:
        member = _member(store, owner)  # a username or, as the CLI's --owner allows, an email
        if member is None:
            raise NotFound(f"Owner {owner!r} not found.")
        owner = member.username
    keys = _check_keys(item_keys or [])
    with store.lock:
        if any(d.slug == slug and d.owner_name == owner for d in store.datasets.values()):
            raise Conflict(f"{owner} already has a dataset with slug {slug!r}.")
        now = world.clock.now()
        n = len(keys)
        uids = world.ids.many(n)
        sequences, item_sequence = _sequences_from_keys(world, keys, uids) if is_sequence else ([], {})
        ds = Dataset(
            uid=world.ids.uid(),
            name=name,
            slug=slug,
            owner_name=owner,
            data_type=data_type,
            visibility=visibility,
            created_at=now,
            updated_at=now,
            seq=store.next_seq(),
            labels=[],
            item_uids=uids,
            gt=_empty_ground_truth(n),
            status="creating",
            sequences=sequences,
            indexing=Timeline.start(world.clock, "creating", ("created", INDEX_BASE_S + INDEX_PER_ITEM_S * n)),
            item_keys=keys,
            item_sequence=item_sequence,
            declared_sequence=bool(is_sequence),
            metadata=dict(metadata or {}),
        )
        store.datasets[ds.uid] = ds
        events.dataset_started(world, store, ds)  # dataset.created once indexing is done
    return ds


_MIME = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "bmp": "image/bmp",
         "mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska", "avi": "video/x-msvideo",
         "pcd": "application/x-pcd", "ply": "application/x-ply", "bin": "application/octet-stream",
         "las": "application/vnd.las", "laz": "application/vnd.laszip", "mcap": "application/x-mcap"}


def mime_type(key: str) -> str:
    """The media type an item's key implies (seeded image items are JPEGs)."""
    return _MIME.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def indexed_at(ds: Dataset) -> float | None:
    """When indexing ends (None for a dataset that was never indexed on this clock)."""
    return ds.indexing.steps[-1][1] if ds.indexing is not None else None


def resolve_owner(store: OrgStore, user: User, *, owner_name: str | None, organization_uid: str | None) -> str:
    """The owner a create body asks for: the key's organisation (by slug or uid) or the key's own user
    (by username or email). Another member's account is refused (403 by the handler: ``PermissionError``)."""
    if organization_uid is not None and organization_uid != store.org.uid:
        raise NotFound(f"Organization {organization_uid!r} not found.")
    if owner_name is None or owner_name == store.org.slug:
        return store.org.slug
    found = _member(store, owner_name)
    if found is None:
        raise NotFound(f"Owner {owner_name!r} not found.")
    if organization_uid is not None:
        raise Invalid("A dataset is owned by a user or by an organization, not both: "
                      "pass owner_name or organization_uid.", field="owner_name")
    if found.uid != user.uid:
        raise Forbidden("A personal dataset can only be created for your own account.")
    return found.username


def _member(store: OrgStore, name: str) -> User | None:
    """A human member of the organisation by username or email (the CLI's --owner takes either)."""
    for u in store.users.values():
        if not u.is_bot and name in (u.username, u.email):
            return u
    return None


def owner_alias(store: OrgStore, owner: str) -> str:
    """Map an owner path segment given as a member's email to the username datasets are filed under."""
    if "@" in owner:
        found = _member(store, owner)
        if found is not None:
            return found.username
    return owner


def _check_keys(keys: Iterable[Any]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not key or key.startswith("/") or ".." in key.split("/"):
            raise Invalid(f"item key #{i} must be a non-empty relative path.", field="item_keys")
        if key in seen:
            raise Invalid(f"item key {key!r} appears twice.", field="item_keys")
        seen.add(key)
        out.append(key)
    return out


def _empty_ground_truth(n: int) -> GroundTruth:
    return GroundTruth(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int16), np.zeros((0, 4), dtype=np.float32))


def _sequences_from_keys(world: World, keys: list[str], uids: list[str]) -> tuple[list[Sequence], dict[int, str]]:
    """One sequence per folder, its frames the folder's items in key order."""
    folders: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        folders.setdefault(key.rsplit("/", 1)[0] if "/" in key else "", []).append(i)
    sequences, item_sequence = [], {}
    for n, (folder, members) in enumerate(folders.items()):
        members.sort(key=lambda i: keys[i])
        seq = Sequence(uid=world.ids.uid(), key=folder or "root", seq=n, status="new",
                       frames=[{"key": keys[i], "item_uid": uids[i], "images": []} for i in members],
                       camera_calibration=[])
        sequences.append(seq)
        item_sequence.update({i: seq.uid for i in members})
    return sequences, item_sequence


# ------------------------------------------------------------------------------------ cloud import

def cloud_import(world: World, data_type: str, config: dict[str, Any], personal: bool) -> tuple[dict[str, Any], list[str]]:
    """Validate a create body's ``provider_config`` and list the bucket (a deterministic synthetic listing).

    Returns the storage description kept on the dataset (no credentials) and the keys to index. Error
    messages name the offending key, never its value.
    """
    if not isinstance(config, dict):
        raise Invalid("provider_config must be an object.", field="provider_config")
    provider = PROVIDER_ALIASES.get(config.get("provider") or "")
    if provider is None:
        raise Invalid("provider_config.provider must be aws_s3 or gc_storage.", field="provider_config.provider")
    if provider == "aws_s3":
        storage = _check_s3(config, personal)
    else:
        storage = _check_gcs(config)
    included = _csv(config.get("included_extensions"), "included_extensions")
    ignored = _csv(config.get("ignored_paths"), "ignored_paths")
    extensions = tuple(e.lower().lstrip(".") for e in included) if included else EXTENSIONS.get(data_type, ())
    listing = synthetic_listing(world.seed, provider, storage["bucket"], storage["prefix"], data_type)
    keys, skipped_ext, skipped_path = [], 0, 0
    for key in listing:
        if any(key.startswith(p.lstrip("/")) for p in ignored):
            skipped_path += 1
        elif extensions and key.rsplit(".", 1)[-1].lower() not in extensions:
            skipped_ext += 1
        else:
            keys.append(key)
    storage.update(listed_objects=len(listing), skipped_extension=skipped_ext, skipped_ignored_path=skipped_path,
                   included_extensions=list(extensions), ignored_paths=ignored)
    return storage, keys


def _check_s3(config: dict[str, Any], personal: bool) -> dict[str, Any]:
    bucket = config.get("s3_bucket_name")
    if not isinstance(bucket, str) or not _S3_BUCKET_RE.match(bucket):
        raise Invalid("provider_config.s3_bucket_name must be a valid S3 bucket name.", field="provider_config.s3_bucket_name")
    region = config.get("s3_bucket_region")
    if not isinstance(region, str) or not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", region):
        raise Invalid("provider_config.s3_bucket_region is required (e.g. us-west-2).", field="provider_config.s3_bucket_region")
    method = config.get("s3_auth_method") or ("iam_role" if config.get("s3_role_arn") else "access_key")
    if method == "iam_role":
        if not isinstance(config.get("s3_role_arn"), str) or not _ROLE_ARN_RE.match(config["s3_role_arn"]):
            raise Invalid("provider_config.s3_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>).",
                          field="provider_config.s3_role_arn")
        if personal:
            # What Avala answers: the cross-account external id is read from the owning organisation.
            raise Invalid("s3_external_id is required: keyless (iam_role) imports need an organization-owned dataset.",
                          field="provider_config.s3_auth_method")
    elif method == "access_key":
        key_id, secret = config.get("s3_access_key_id"), config.get("s3_secret_access_key")
        if not isinstance(key_id, str) or not _ACCESS_KEY_RE.match(key_id):
            raise Invalid("provider_config.s3_access_key_id is missing or malformed.", field="provider_config.s3_access_key_id")
        if not isinstance(secret, str) or len(secret) < 16:
            raise Invalid("provider_config.s3_secret_access_key is missing or malformed.",
                          field="provider_config.s3_secret_access_key")
    else:
        raise Invalid("provider_config.s3_auth_method must be access_key or iam_role.", field="provider_config.s3_auth_method")
    prefix = _prefix(config.get("s3_bucket_prefix"), "s3_bucket_prefix")
    return {"provider": "aws_s3", "bucket": bucket, "prefix": prefix, "region": region, "auth_method": method,
            "is_accelerated": bool(config.get("s3_is_accelerated", False)),
            "cloudfront_domain": config.get("s3_cloudfront_domain")}


def _check_gcs(config: dict[str, Any]) -> dict[str, Any]:
    bucket = config.get("gc_storage_bucket_name")
    if not isinstance(bucket, str) or not _GCS_BUCKET_RE.match(bucket):
        raise Invalid("provider_config.gc_storage_bucket_name must be a valid bucket name.",
                      field="provider_config.gc_storage_bucket_name")
    raw = config.get("gc_storage_auth_json_content")
    try:
        auth = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        auth = None
    if not isinstance(auth, dict) or auth.get("type") != "service_account" or not auth.get("client_email"):
        raise Invalid("provider_config.gc_storage_auth_json_content must be a service-account JSON key "
                      "(type service_account, with client_email).", field="provider_config.gc_storage_auth_json_content")
    prefix = _prefix(config.get("gc_storage_prefix"), "gc_storage_prefix")
    return {"provider": "gc_storage", "bucket": bucket, "prefix": prefix, "auth_method": "service_account"}


def _prefix(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"provider_config.{key} must be a string.", field=f"provider_config.{key}")
    value = value.strip("/")
    return f"{value}/" if value else ""


def _csv(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise Invalid(f"provider_config.{key} must be a comma-separated string.", field=f"provider_config.{key}")
    return [v.strip() for v in value.split(",") if v.strip()]


def synthetic_listing(seed: int, provider: str, bucket: str, prefix: str, data_type: str) -> list[str]:
    """The keys under ``prefix`` (relative to it): a deterministic function of the seed and the location,
    with the sidecar files a real bucket has (manifests, READMEs, previews) mixed in."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{provider}:{bucket}/{prefix}".encode())])
    ext = (EXTENSIONS.get(data_type) or ("bin",))[0]
    folders = int(rng.integers(2, 5))
    keys = ["README.md", "manifest.json"]
    for f in range(folders):
        folder = f"scene_{f:03d}" if data_type in ("lidar", "pointcloud", "mcap") else f"batch_{f + 1:02d}"
        for i in range(int(rng.integers(6, 16))):
            keys.append(f"{folder}/{'frame' if ext in ('pcd', 'bin') else 'sample'}_{i:05d}.{ext}")
        keys.append(f"{folder}/calibration.json")
        if data_type in ("image", "video"):
            keys.append(f"{folder}/previews/cover.gif")
    keys.append("tmp/upload_in_progress.part")
    return sorted(keys)


def storage_prefixes(ds: Dataset, store: OrgStore) -> tuple[str | None, str | None]:
    """(s3_prefix, gc_storage_prefix): the customer bucket for a cloud import, else Avala-managed storage
    rooted at the owner (``__o__=/<org uid>`` or ``__u__=/<user uid>``, surface doc §2.4)."""
    s = ds.storage
    if s.get("provider") == "gc_storage":
        return None, f"gs://{s['bucket']}/{s['prefix']}"
    if s.get("provider") == "aws_s3":
        return f"s3://{s['bucket']}/{s['prefix']}", None
    if ds.owner_name == store.org.slug:
        root = f"__o__=/{store.org.uid}"
    else:
        user = _member(store, ds.owner_name)
        root = f"__u__=/{user.uid}" if user else f"__o__=/{store.org.uid}"
    return f"s3://{MANAGED_BUCKET}/{root}/{ds.slug}/", None


# ------------------------------------------------------------------------------------------ transfer

def transfer_dataset(
    world: World, store: OrgStore, user: User, ds: Dataset, *,
    organization_uid: str | None = None, owner_username: str | None = None,
) -> Dataset:
    """Move ``ds`` to the key's organisation or to the key's own account; ``owner_name`` changes, so the
    dataset is then found only at its new ``/{owner}/{slug}/`` path."""
    if (organization_uid is None) == (owner_username is None):
        raise Invalid("Pass exactly one of organization_uid or owner_username.", field="organization_uid")
    if organization_uid is not None:
        if organization_uid != store.org.uid:
            raise NotFound(f"Organization {organization_uid!r} not found.")
        target = store.org.slug
    else:
        found = _member(store, owner_username or "")
        if found is None:
            raise NotFound(f"User {owner_username!r} not found.")
        if found.uid != user.uid:
            raise Forbidden("owner_username may only name yourself: a dataset cannot be handed to another account.")
        target = found.username
    with store.lock:
        if target == ds.owner_name:
            return ds
        if any(d is not ds and d.slug == ds.slug and d.owner_name == target for d in store.datasets.values()):
            raise Conflict(f"{target} already has a dataset with slug {ds.slug!r}.")
        ds.owner_name = target
        ds.updated_at = world.clock.now()
        events.bus(world).emit(store, "dataset.updated", {**events.dataset_payload(ds), "change": "transfer"})
    return ds


# -------------------------------------------------------------------------------------------- health

def health(ds: Dataset, store: OrgStore, now: float) -> dict[str, Any]:
    """The ingest report: counts, per-sequence calibration flags and the real findings about this dataset."""
    status = ds.settle(now).status
    issues: list[str] = []
    sequences = []
    total_frames = 0
    lidar = ds.data_type in ("lidar", "pointcloud", "mcap")
    for s in ds.sequences:
        frames = len(s.frames)
        total_frames += frames
        has_cam = bool(s.camera_calibration)
        has_lidar = bool(s.frames) and all(isinstance(f.get("device_position"), dict) for f in s.frames)
        sequences.append({"uid": s.uid, "key": s.key, "status": s.status, "frame_count": frames,
                          "has_lidar_calibration": has_lidar, "has_camera_calibration": has_cam})
        if not frames:
            issues.append(f"Sequence {s.key} has no frames.")
        if not has_cam:
            issues.append(f"Sequence {s.key} has no camera calibration.")
        if lidar and frames and not has_lidar:
            issues.append(f"Sequence {s.key} has no lidar calibration (device pose missing on some frames).")
    indexing = status == "creating"
    if indexing:
        end = indexed_at(ds)
        left = f" (about {max(0.0, end - now):.0f} s left)" if end is not None else ""
        issues.append(f"Dataset is still indexing{left}.")
    empty = not ds.item_uids and total_frames == 0
    if empty:
        issues.append("Dataset has no items.")
    storage = ds.storage
    if storage.get("listed_objects") is not None:
        skipped = storage["skipped_extension"]
        if skipped:
            exts = ", ".join(storage["included_extensions"]) or "any"
            issues.append(f"{skipped} of {storage['listed_objects']} objects in the bucket were not indexed: "
                          f"extension not in [{exts}].")
        if storage["skipped_ignored_path"]:
            issues.append(f"{storage['skipped_ignored_path']} objects were skipped by ignored_paths.")
    s3_prefix, gc_prefix = storage_prefixes(ds, store)
    return {
        "dataset_uid": ds.uid,
        "dataset_slug": ds.slug,
        "dataset_status": status,
        "data_type": ds.data_type,
        "is_sequence": ds.is_sequence,
        "item_count": len(ds.item_uids),
        "sequence_count": len(ds.sequences),
        "total_frames": total_frames,
        "s3_prefix": s3_prefix,
        "gc_storage_prefix": gc_prefix,
        "last_updated_at": ds.updated_at,
        "sequences": sequences,
        "ingest_ok": not indexing and not empty and all(s["frame_count"] for s in sequences),
        "issues": issues,
    }


def create_from_body(world: World, store: OrgStore, user: User, body: dict[str, Any]) -> Dataset:
    """``POST /datasets/`` with every client's variant: the owner (slug, username, email or organisation
    uid), an optional cloud import, and the Python-only options (kept, not interpreted)."""
    owner = resolve_owner(store, user, owner_name=body.get("owner_name"), organization_uid=body.get("organization_uid"))
    storage, keys = {}, []
    if body.get("provider_config") is not None:
        storage, keys = cloud_import(world, body["data_type"], body["provider_config"], personal=owner != store.org.slug)
    ds = create_dataset(
        world, store, name=body["name"], slug=body["slug"], data_type=body["data_type"],
        visibility=body.get("visibility", "private"), owner_name=owner, item_keys=keys,
        is_sequence=bool(body.get("is_sequence", False)), metadata=body.get("metadata"),
    )
    ds.storage = storage
    ds.options = {k: body[k] for k in ("create_metadata", "gpu_texture_format", "industry", "license", "organization_id")
                  if k in body}
    return ds
