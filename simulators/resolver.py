"""The public dataset resolver (surface doc §2.20): anonymous, world-level (not per organisation), so
its state lives in ``world.shared["resolver"]``.

A public dataset has revisions; each revision pins a manifest (objects, origins) and declared rights.
Every digest is real: an object's ``sha256`` is the sha256 of its bytes (synthetic but deterministic,
see :func:`object_bytes`), ``manifest_sha256`` the sha256 of the canonical JSON of the manifest, and
``revision_sha256`` the sha256 of the canonical JSON of the revision (dataset, manifest digest, rights,
parent). So a client can verify identities end to end, exactly as the SDK does.

Download grants point at the Avala edge (``https://data.avala.ai/v1/datasets/...``): the SDK only
accepts https download URLs, so the byte download itself cannot go through a plain-http mock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

from avala_mock.simulators.clock import iso
from avala_mock.simulators.errors import Gone, Invalid, NotFound
from avala_mock.simulators.world import World

SHARED_KEY = "resolver"
GRANT_TTL_S = 300  # the SDK rejects a grant living longer than 300 s past the response's Date
EDGE_ROOT = "https://data.avala.ai/v1/datasets"
MAX_PAGE = 100

# The SDK's own reference grammar (avala/_resolver.py), so that what the SDK builds always parses here.
OWNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,254}$")
DATASET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
SELECTOR_RE = re.compile(r"^(?:[0-9a-f]{64}|[a-z][a-z0-9._-]{0,62})$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Withdrawn(Gone):
    """The revision exists but was withdrawn (410 with the tombstone document as the body)."""

    def __init__(self, revision: Revision) -> None:
        self.revision = revision
        super().__init__(f"Dataset revision {revision.canonical_reference} was withdrawn.", **self.document())

    def document(self) -> dict[str, Any]:
        r = self.revision
        return {
            "schema_version": 1,
            "code": "dataset_revision_withdrawn",
            "canonical_reference": r.canonical_reference,
            "dataset_uid": r.dataset.uid,
            "revision_sha256": r.sha256,
        }


def canonical_json(value: Any) -> bytes:
    """The byte form every digest is taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ManifestObject:
    object_uid: str
    logical_path: str
    role: str
    ordinal: int
    episode_ordinal: int | None
    content_type: str
    origin: str
    size_bytes: int
    sha256: str
    _seed: str  # what object_bytes() derives synthetic bytes from
    _text: str | None = None  # a document object's content

    def entry(self) -> dict[str, Any]:
        """The object as the manifest digest covers it (no access path: that depends on the revision)."""
        return {
            "object_uid": self.object_uid,
            "logical_path": self.logical_path,
            "role": self.role,
            "ordinal": self.ordinal,
            "episode_ordinal": self.episode_ordinal,
            "content_type": self.content_type,
            "origin": self.origin,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }

    @property
    def order_key(self) -> tuple[str, int, str]:
        return (self.role, self.ordinal, self.logical_path)


@dataclass
class PublicDataset:
    uid: str
    owner: str
    name: str
    revisions: list[Revision] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # selector name -> revision sha256 ("main" included)


@dataclass
class Revision:
    uid: str
    dataset: PublicDataset
    sha256: str
    manifest_sha256: str
    origins: list[dict[str, str]]
    objects: list[ManifestObject]  # sorted by (role, ordinal, logical_path), the order pages are served in
    rights: dict[str, Any]
    published_at: float
    state: str = "published"  # or "withdrawn"
    withdrawn_at: float | None = None
    by_uid: dict[str, ManifestObject] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_uid = {o.object_uid: o for o in self.objects}

    @property
    def canonical_reference(self) -> str:
        return f"avala://datasets/{self.dataset.uid}@{self.sha256}"

    @property
    def objects_path(self) -> str:
        return f"/resolve/uid/{self.dataset.uid}/{self.sha256}/objects/"


@dataclass
class Registry:
    """Every public dataset of the world, by (owner, name) and by uid."""

    datasets: dict[tuple[str, str], PublicDataset] = field(default_factory=dict)
    by_uid: dict[str, PublicDataset] = field(default_factory=dict)

    def add(self, ds: PublicDataset) -> None:
        self.datasets[(ds.owner, ds.name)] = ds
        self.by_uid[ds.uid] = ds


def registry(world: World) -> Registry:
    found = world.shared.get(SHARED_KEY)
    if found is None:
        found = world.shared[SHARED_KEY] = Registry()
    return found


# --- building (used by fixtures/seeds/public_datasets.py) ---------------------------------------------

def object_bytes(obj: ManifestObject) -> bytes:
    """The object's bytes, regenerated on demand (never stored): a document's text, or a JPEG-framed
    pseudo-random body derived from the object's seed, so the digest in the manifest is real."""
    return _make_bytes(obj._seed, obj.size_bytes, obj._text)


def _make_bytes(seed: str, size: int, text: str | None) -> bytes:
    if text is not None:
        return text.encode()
    return b"\xff\xd8\xff\xe0" + hashlib.shake_256(seed.encode()).digest(max(0, size - 6)) + b"\xff\xd9"


def new_object(
    world: World,
    *,
    logical_path: str,
    role: str,
    ordinal: int,
    episode_ordinal: int | None,
    content_type: str,
    origin: str,
    text: str | None = None,
    size: int = 0,
) -> ManifestObject:
    """An object with real size and digest: ``text`` for documents, else ``size`` synthetic JPEG bytes."""
    uid = world.ids.uid()
    seed = f"object:{uid}"  # the uid is unique in the world; the bytes follow from it alone
    data = _make_bytes(seed, size, text)
    return ManifestObject(uid, logical_path, role, ordinal, episode_ordinal, content_type, origin, len(data),
                          sha256_hex(data), seed, text)


def add_revision(
    world: World,
    reg: Registry,
    ds: PublicDataset,
    *,
    origins: list[dict[str, str]],
    objects: list[ManifestObject],
    rights_name: str,
    rights_url: str,
    license_text: str,
    published_at: float,
    tags: tuple[str, ...] = (),
) -> Revision:
    """Publish a revision: digests computed over canonical JSON, ``main`` moved to it, tags set."""
    if ds.uid not in reg.by_uid:
        reg.add(ds)
    origins = sorted(origins, key=lambda o: o["name"].encode("ascii"))
    objects = sorted(objects, key=lambda o: o.order_key)
    manifest = {
        "schema_version": 1,
        "dataset_uid": ds.uid,
        "origins": origins,
        "objects": [o.entry() for o in objects],
    }
    manifest_sha = sha256_hex(canonical_json(manifest))
    document_sha = sha256_hex(license_text.encode())
    attestation = {"dataset_uid": ds.uid, "manifest_sha256": manifest_sha, "rights_document_sha256": document_sha,
                   "declared_by": ds.owner}
    rights = {
        "status": "declared",
        "access": "open_download",
        "name": rights_name,
        "url": rights_url,
        "document_sha256": document_sha,
        "attestation_sha256": sha256_hex(canonical_json(attestation)),
    }
    parent = ds.revisions[-1].sha256 if ds.revisions else None
    described = {
        "schema_version": 1,
        "dataset_uid": ds.uid,
        "owner": ds.owner,
        "dataset": ds.name,
        "manifest_sha256": manifest_sha,
        "rights": rights,
        "parent_revision_sha256": parent,
        "published_at": iso(published_at),
    }
    rev = Revision(world.ids.uid(), ds, sha256_hex(canonical_json(described)), manifest_sha, origins, objects, rights,
                   published_at)
    ds.revisions.append(rev)
    ds.tags["main"] = rev.sha256
    for tag in tags:
        ds.tags[tag] = rev.sha256
    return rev


def withdraw(ds: PublicDataset, rev: Revision, now: float) -> None:
    """Withdraw a revision; ``main`` falls back to the newest revision still published."""
    rev.state, rev.withdrawn_at = "withdrawn", now
    published = [r for r in ds.revisions if r.state == "published"]
    if published:
        ds.tags["main"] = published[-1].sha256
    else:
        ds.tags.pop("main", None)


# --- resolving ------------------------------------------------------------------------------------------

def resolve_reference(reg: Registry, owner: str, dataset: str, selector: str) -> Revision:
    """R1: ``owner/dataset@selector`` (selector: ``main``, a tag, or a revision sha256)."""
    for name, value, pattern in (("owner", owner, OWNER_RE), ("dataset", dataset, DATASET_RE), ("selector", selector, SELECTOR_RE)):
        if not pattern.fullmatch(value):
            raise Invalid(f"Invalid dataset reference: {name} {value!r} is not canonical.", field=name)
    ds = reg.datasets.get((owner, dataset))
    if ds is None:
        raise NotFound(f"Public dataset {owner}/{dataset} not found.")
    sha = selector if SHA_RE.fullmatch(selector) else ds.tags.get(selector)
    rev = next((r for r in ds.revisions if r.sha256 == sha), None) if sha else None
    if rev is None:
        raise NotFound(f"Revision {selector!r} of {owner}/{dataset} not found.")
    return _published(rev)


def resolve_exact(reg: Registry, dataset_uid: str, revision_sha256: str) -> Revision:
    """R2-R4: a revision by dataset uid and revision digest (malformed ones are simply unknown)."""
    ds = reg.by_uid.get(dataset_uid)
    rev = next((r for r in ds.revisions if r.sha256 == revision_sha256), None) if ds else None
    if rev is None:
        raise NotFound(f"Dataset revision {dataset_uid}@{revision_sha256} not found.")
    return _published(rev)


def _published(rev: Revision) -> Revision:
    if rev.state != "published":
        raise Withdrawn(rev)
    return rev


def revision_document(rev: Revision, requested_reference: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "requested_reference": requested_reference,
        "display_reference": f"{rev.dataset.owner}/{rev.dataset.name}@{rev.sha256}",
        "canonical_reference": rev.canonical_reference,
        "dataset_uid": rev.dataset.uid,
        "revision_uid": rev.uid,
        "revision_sha256": rev.sha256,
        "state": rev.state,
        "manifest": {
            "schema_version": 1,
            "sha256": rev.manifest_sha256,
            "object_count": len(rev.objects),
            "total_size_bytes": sum(o.size_bytes for o in rev.objects),
            "origins": [dict(o) for o in rev.origins],
            "objects_path": rev.objects_path,
        },
        "rights": dict(rev.rights),
        "published_at": iso(rev.published_at),
    }


def object_document(rev: Revision, obj: ManifestObject) -> dict[str, Any]:
    return {**obj.entry(), "access_path": f"{rev.objects_path}{obj.object_uid}/access/"}


def object_page(
    rev: Revision,
    *,
    role: str | None = None,
    ordinal: int | None = None,
    ordinals: list[int] | None = None,
    cursor: str | None = None,
    limit: int = MAX_PAGE,
) -> dict[str, Any]:
    """R3: a page in manifest order. ``ordinal``/``ordinals`` (with ``role``) are exact lookups without
    cursors; otherwise cursors are opaque tokens holding the offset, the role and the revision."""
    if (ordinal is not None or ordinals is not None) and role is None:
        raise Invalid("An ordinal lookup needs a role.", field="role")
    if ordinal is not None and ordinals is not None:
        raise Invalid("Send either ordinal or ordinals, not both.", field="ordinals")
    if cursor is not None and (ordinal is not None or ordinals is not None):
        raise Invalid("An ordinal lookup takes no cursor.", field="cursor")
    selected = [o for o in rev.objects if role is None or o.role == role]
    head = {"schema_version": 1, "canonical_reference": rev.canonical_reference, "revision_sha256": rev.sha256,
            "manifest_sha256": rev.manifest_sha256}
    if ordinal is not None or ordinals is not None:
        wanted = {ordinal} if ordinal is not None else set(ordinals or ())
        found = [object_document(rev, o) for o in selected if o.ordinal in wanted]
        return {**head, "next_cursor": None, "previous_cursor": None, "results": found}
    limit = max(1, min(int(limit), MAX_PAGE))
    start = 0 if cursor is None else _decode_cursor(cursor, rev, role, len(selected))
    stop = min(len(selected), start + limit)
    return {
        **head,
        "next_cursor": _encode_cursor(rev, role, stop) if stop < len(selected) else None,
        "previous_cursor": _encode_cursor(rev, role, max(0, start - limit)) if start > 0 else None,
        "results": [object_document(rev, o) for o in selected[start:stop]],
    }


def _encode_cursor(rev: Revision, role: str | None, offset: int) -> str:
    raw = canonical_json({"v": 1, "r": rev.sha256[:16], "role": role, "o": offset})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, rev: Revision, role: str | None, total: int) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["o"]
        ok = data["v"] == 1 and data["r"] == rev.sha256[:16] and data["role"] == role and type(offset) is int
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok, offset = False, -1
    if not ok or not 0 <= offset < total:
        raise Invalid("Invalid cursor: not found among the cursors issued for this revision and role.", field="cursor")
    return offset


def access_grant(world: World, rev: Revision, object_uid: str, now: float) -> tuple[dict[str, Any], int]:
    """R4: a grant valid for 300 s, and the epoch second the response's ``Date`` header must carry
    (``expires_at - Date`` is exactly the grant's lifetime, as the SDK checks)."""
    obj = rev.by_uid.get(object_uid)
    if obj is None:
        raise NotFound(f"Object {object_uid!r} not found in {rev.canonical_reference}.")
    issued = int(now)
    expires = issued + GRANT_TTL_S
    key = world.shared.get("resolver_grant_key") or world.shared.setdefault("resolver_grant_key", world.secrets.key())
    token = "v1." + hmac.new(key, f"{rev.sha256}:{obj.object_uid}:{expires}".encode(), hashlib.sha256).hexdigest()
    url = (f"{EDGE_ROOT}/{rev.dataset.uid}/{rev.sha256}/{rev.manifest_sha256}/objects/{obj.object_uid}/"
           f"{obj.sha256}?grant={token}")
    grant = {
        "schema_version": 1,
        "provider": "avala_edge",
        "method": "GET",
        "url": url,
        "expires_at": iso(expires),
        "canonical_reference": rev.canonical_reference,
        "dataset_uid": rev.dataset.uid,
        "revision_sha256": rev.sha256,
        "manifest_sha256": rev.manifest_sha256,
        "object_uid": obj.object_uid,
        "size_bytes": obj.size_bytes,
        "sha256": obj.sha256,
        "range_supported": True,
    }
    return grant, issued

