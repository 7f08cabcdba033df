"""The byte store behind the mock's storage data plane (``/_storage/``): objects and multipart uploads
kept in memory per world, plus the URL signatures that authorise writing them.

It stands in for S3/R2: upload URLs the API hands out are signed here (HMAC-SHA256 with a secret
derived from the world's seed, so the same seed gives byte-identical URLs) over the method, the object
key, the expected size and an expiry on the virtual clock. The plane (mock_server/storage_plane.py)
checks them and stores bytes here; the upload backends then read what landed (size, ETag, content)
to settle files, so nothing is "uploaded" unless its bytes really arrived.

Sizes are bounded so a stray client cannot exhaust memory: 64 MiB per request body (object or part),
1 GiB in total per world.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from avala_mock.simulators.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed, TooLarge
from avala_mock.simulators.world import World

MAX_PART_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
_SHARED_KEY = "blobstore"


class SignatureError(Forbidden):
    """A missing, wrong or expired signature (403)."""


@dataclass
class Blob:
    key: str
    data: bytes
    etag: str  # without quotes
    content_type: str
    stored_at: float

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Multipart:
    """One multipart upload: the object it will become and the size each part must have."""

    upload_id: str
    key: str
    part_sizes: list[int]
    parts: dict[int, bytes] = field(default_factory=dict)
    etags: dict[int, str] = field(default_factory=dict)
    completed: bool = False

    def stored(self) -> list[tuple[int, int]]:
        """(part number, size) of the parts stored so far, ascending."""
        return [(n, len(self.parts[n])) for n in sorted(self.parts)]

    def sha256(self) -> str:
        """sha256 of the object the parts would assemble into (in part order)."""
        digest = hashlib.sha256()
        for n in sorted(self.parts):
            digest.update(self.parts[n])
        return digest.hexdigest()

    def missing(self) -> list[int]:
        return [n for n, size in enumerate(self.part_sizes, 1) if n not in self.parts or len(self.parts[n]) != size]


class Blobstore:
    """Objects by key and multipart uploads by id, for one world."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.objects: dict[str, Blob] = {}
        self.uploads: dict[str, Multipart] = {}
        self._bytes = 0

    # -- signatures ------------------------------------------------------------------------------

    def sign(self, *parts: Any) -> str:
        message = "\n".join(str(p) for p in parts).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def check(self, signature: str | None, *parts: Any) -> None:
        if not signature or not hmac.compare_digest(signature, self.sign(*parts)):
            raise SignatureError("The request signature does not match (missing, wrong or tampered URL).")

    def sign_policy(self, policy: dict[str, Any]) -> tuple[str, str]:
        """A presigned-POST policy document (base64 JSON) and its signature."""
        encoded = base64.b64encode(orjson.dumps(policy, option=orjson.OPT_SORT_KEYS)).decode()
        return encoded, self.sign("POST-POLICY", encoded)

    def read_policy(self, encoded: str | None, signature: str | None) -> dict[str, Any]:
        if not encoded:
            raise SignatureError("The form has no policy.")
        self.check(signature, "POST-POLICY", encoded)
        try:
            return orjson.loads(base64.b64decode(encoded))
        except (ValueError, orjson.JSONDecodeError):
            raise SignatureError("The policy is not valid.") from None

    # -- objects ---------------------------------------------------------------------------------

    def _reserve(self, n: int) -> None:
        if n > MAX_PART_BYTES:
            raise TooLarge(f"A request body may hold at most {MAX_PART_BYTES} bytes.")
        if self._bytes + n > MAX_TOTAL_BYTES:
            raise TooLarge("The mock's storage plane is full (1 GiB per world); reset the world.")

    def get(self, key: str) -> Blob | None:
        return self.objects.get(key)

    def put(self, key: str, data: bytes, now: float, *, content_type: str = "application/octet-stream",
            if_none_match: bool = False) -> Blob:
        if if_none_match and key in self.objects:
            raise PreconditionFailed("The object already exists.")
        self._reserve(len(data))
        old = self.objects.get(key)
        self._bytes += len(data) - (old.size if old else 0)
        blob = Blob(key, bytes(data), hashlib.md5(data).hexdigest(), content_type, now)  # noqa: S324 - S3's ETag
        self.objects[key] = blob
        return blob

    def delete(self, key: str) -> None:
        old = self.objects.pop(key, None)
        if old is not None:
            self._bytes -= old.size

    def keys_under(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    # -- multipart -------------------------------------------------------------------------------

    def create_multipart(self, upload_id: str, key: str, part_sizes: list[int]) -> Multipart:
        mp = Multipart(upload_id, key, list(part_sizes))
        self.uploads[upload_id] = mp
        return mp

    def multipart(self, upload_id: str) -> Multipart:
        try:
            return self.uploads[upload_id]
        except KeyError:
            raise NotFound("No such multipart upload.") from None

    def put_part(self, upload_id: str, number: int, data: bytes) -> str:
        mp = self.multipart(upload_id)
        if mp.completed:
            raise Conflict("The multipart upload is already complete.")
        if not 1 <= number <= len(mp.part_sizes):
            raise Invalid(f"Part number {number} is outside 1..{len(mp.part_sizes)}.", field="partNumber")
        expected = mp.part_sizes[number - 1]
        if len(data) != expected:
            raise Invalid(f"Part {number} must be exactly {expected} bytes, got {len(data)}.", field="Content-Length")
        self._reserve(len(data))
        self._bytes += len(data) - len(mp.parts.get(number, b""))
        mp.parts[number] = bytes(data)
        mp.etags[number] = hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag
        return mp.etags[number]

    def complete_multipart(self, upload_id: str, now: float, content_type: str = "application/octet-stream") -> Blob:
        """Assemble the parts into the object (S3's multipart ETag: md5 of the part md5s, ``-N``)."""
        mp = self.multipart(upload_id)
        missing = mp.missing()
        if missing:
            raise Invalid(f"Parts {missing[:10]} are missing or have the wrong size.", field="parts")
        data = b"".join(mp.parts[n] for n in range(1, len(mp.part_sizes) + 1))
        digest = hashlib.md5(b"".join(bytes.fromhex(mp.etags[n]) for n in sorted(mp.etags))).hexdigest()  # noqa: S324
        self._bytes -= len(data)  # the parts become the object
        old = self.objects.get(mp.key)
        self._bytes += len(data) - (old.size if old else 0)
        blob = Blob(mp.key, data, f"{digest}-{len(mp.part_sizes)}", content_type, now)
        self.objects[mp.key] = blob
        mp.parts.clear()
        mp.completed = True
        return blob

    def abort_multipart(self, upload_id: str) -> None:
        mp = self.uploads.pop(upload_id, None)
        if mp is not None:
            self._bytes -= sum(len(p) for p in mp.parts.values())


def object_path(key: str) -> str:
    """The URL path of an object under the plane's base URL: ``/`` + the percent-quoted key (S3
    virtual-hosted style, which is what the SDK's fleet check compares against)."""
    return "/" + quote(key, safe="/")


def signed_url(store: Blobstore, base: str, method: str, key: str, *, expires: int, size: int,
               upload_id: str = "", part: int = 0) -> str:
    """A presigned URL on the plane: the key's path plus expiry, expected size and the signature
    (and the multipart upload id / part number for a part)."""
    query = {}
    if upload_id:
        query["uploadId"] = upload_id
        query["partNumber"] = str(part)
    query["X-Avala-Expires"] = str(expires)
    query["X-Avala-Size"] = str(size)
    query["X-Avala-Signature"] = store.sign(method, key, expires, size, upload_id, part)
    return base.rstrip("/") + object_path(key) + "?" + urlencode(query)


def blobstore(world: World) -> Blobstore:
    """The world's byte store (created on first use; a reset builds a new world and so a new store)."""
    found = world.shared.get(_SHARED_KEY)
    if found is None:
        secret = world.secrets.key()
        found = world.shared[_SHARED_KEY] = Blobstore(secret)
    return found
