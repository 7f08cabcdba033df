"""The mock's storage data plane under ``/_storage/``: where the upload URLs the API hands out point.

It plays the part S3/R2 play for Avala (not part of the Avala contract, so not in openapi.yaml):

* ``POST /_storage/`` — a presigned POST (multipart form: the descriptor's ``fields`` then ``file``).
* ``PUT /_storage/<key>?…`` — a presigned PUT of a whole object, or of one part of a multipart upload
  (``uploadId`` + ``partNumber``); answers ``ETag: "<md5>"``. ``If-None-Match: *`` on an existing
  object → 412 (the SDK reads that as "already uploaded").
* ``PUT /_storage/r2/<account host>/<bucket>/<key>?<SigV4 query>`` — the managed fleet grants' R2 URLs
  re-rooted here (the real host is unreachable offline; a proxy or a test routes the bytes here).
* ``GET /_storage/<key>`` — read an object back, with a signed GET URL or the owning organisation's
  ``X-Avala-Api-Key``.

Refusals: missing/wrong signature or an expired URL (virtual clock) → 403; a body whose size is not the
signed one → 400; a body over 64 MiB → 413; an unknown multipart upload → 404. Bytes live in
simulators/blobstore.py; signatures are checked there too.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from avala_mock.mock_server.context import API_KEY_HEADER, Handler
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.state import STATE, MockState
from avala_mock.simulators import managed_uploads
from avala_mock.simulators.blobstore import MAX_PART_BYTES, Blobstore, SignatureError, blobstore
from avala_mock.simulators.errors import TooLarge
from avala_mock.simulators.world import World

PREFIX = "/_storage"


def add_routes(app: web.Application, state: MockState, wrap: Callable[[Handler], Handler]) -> None:
    """Register the plane's routes; every handler reads ``state.world`` per request (reset swaps it)."""
    app.router.add_route("POST", PREFIX + "/{tail:.*}", wrap(_guard(state, _post_form)))
    app.router.add_route("PUT", PREFIX + "/{tail:.*}", wrap(_guard(state, _put)))
    app.router.add_route("GET", PREFIX + "/{tail:.*}", wrap(_guard(state, _get)))


def _guard(state: MockState, fn: Callable[[web.Request, World], Awaitable[web.StreamResponse]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await fn(request, state.world)

    return handler


def _key_of(request: web.Request) -> str:
    """The object key: the percent-decoded path after ``/_storage/``."""
    return unquote(request.rel_url.raw_path[len(PREFIX) + 1:])


async def _read_body(stream: web.StreamReader | BodyPartReader, declared: int | None) -> bytes:
    """The body (or form part), refused with 413 as soon as it is known to exceed the cap."""
    if declared is not None and declared > MAX_PART_BYTES:
        raise TooLarge(f"A request body may hold at most {MAX_PART_BYTES} bytes.")
    buf = bytearray()
    while True:
        chunk = await (stream.read_chunk(1 << 20) if isinstance(stream, BodyPartReader) else stream.read(1 << 20))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > MAX_PART_BYTES:
            raise TooLarge(f"A request body may hold at most {MAX_PART_BYTES} bytes.")


def _int(value: str | None, name: str) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SignatureError(f"The URL has no valid {name}.") from None


def _check_expiry(world: World, expires: int) -> None:
    if world.clock.now() > expires:
        raise SignatureError("The presigned URL has expired.")


def _etag_response(etag: str, status: int = 200) -> web.Response:
    return web.Response(status=status, headers={"ETag": f'"{etag}"'})


async def _put(request: web.Request, world: World) -> web.StreamResponse:
    key = _key_of(request)
    if (request.content_length or 0) > MAX_PART_BYTES:  # refused before anything is read or checked
        raise TooLarge(f"A request body may hold at most {MAX_PART_BYTES} bytes.")
    if key.startswith("r2/"):
        return await _put_r2(request, world, key[3:])
    bs, q = blobstore(world), request.query
    expires, size = _int(q.get("X-Avala-Expires"), "expiry"), _int(q.get("X-Avala-Size"), "size")
    upload_id, part = q.get("uploadId", ""), _int(q.get("partNumber", "0"), "part number")
    bs.check(q.get("X-Avala-Signature"), "PUT", key, expires, size, upload_id, part)
    _check_expiry(world, expires)
    data = await _read_body(request.content, request.content_length)
    if len(data) != size:
        raise ApiError(400, f"The body holds {len(data)} bytes; this URL was signed for exactly {size}.")
    if upload_id:
        return _etag_response(await _store_part(request, upload_id, part, data))
    if_none_match = request.headers.get("If-None-Match", "").strip() == "*"
    ctype = request.headers.get("Content-Type", "application/octet-stream")
    return _etag_response(await _store(request, key, data, ctype, if_none_match))


async def _put_r2(request: web.Request, world: World, rest: str) -> web.StreamResponse:
    """A managed-upload part, addressed exactly as its R2 grant (host, bucket, key, SigV4 query)."""
    host, _, path = rest.partition("/")
    bucket, _, key = path.partition("/")
    if host != managed_uploads.r2_host(world) or bucket != managed_uploads.BUCKET:
        raise ApiError(404, "No such bucket.")
    bs, q = blobstore(world), request.query
    mp = bs.multipart(q.get("uploadId", ""))
    number = _int(q.get("partNumber"), "part number")
    if mp.key != key or not 1 <= number <= len(mp.part_sizes):
        raise SignatureError("The grant does not name this upload's object and part.")
    amz_date, ttl = q.get("X-Amz-Date", ""), _int(q.get("X-Amz-Expires"), "X-Amz-Expires")
    expected = mp.part_sizes[number - 1]
    sig = managed_uploads.grant_signature(world, key, mp.upload_id, number, expected, amz_date, ttl)
    if not hmac.compare_digest(q.get("X-Amz-Signature") or "", sig):
        raise SignatureError("The grant's signature does not match.")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise SignatureError("The grant has no valid X-Amz-Date.") from None
    _check_expiry(world, int(signed_at) + ttl)
    data = await _read_body(request.content, request.content_length)
    return _etag_response(await _store_part(request, mp.upload_id, number, data))


async def _post_form(request: web.Request, world: World) -> web.StreamResponse:
    """A presigned POST: form fields (``key``, ``policy``, ``x-avala-signature``, ``Content-Type``) then ``file``."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "A presigned POST is a multipart/form-data form.")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    data: bytes | None = None
    while (part := await reader.next()) is not None:
        if part.name == "file":  # type: ignore[union-attr]
            data = await _read_body(part, None)
            break
        fields[part.name or ""] = (await part.read(decode=True)).decode()  # type: ignore[union-attr]
    bs = blobstore(world)
    policy = bs.read_policy(fields.get("policy"), fields.get("x-avala-signature"))
    if fields.get("key") != policy.get("key"):
        raise SignatureError("The form's key is not the one the policy was signed for.")
    _check_expiry(world, int(policy["expires"]))
    if data is None:
        raise ApiError(400, "The form has no file part.")
    if len(data) != policy["size"]:
        raise ApiError(400, f"The file holds {len(data)} bytes; this form was signed for exactly {policy['size']}.")
    ctype = fields.get("Content-Type", "application/octet-stream")
    return _etag_response(await _store(request, policy["key"], data, ctype, False), 204)


async def _store(request: web.Request, key: str, data: bytes, ctype: str, if_none_match: bool) -> str:
    """Keep the bytes (and, with --state-dir or --redis, log them before the answer); returns the ETag."""
    state = request.app[STATE]
    async with state.writing():  # the body was read before: an upload does not hold other workers up
        world = state.world
        now = world.clock.now()
        blob = blobstore(world).put(key, data, now, content_type=ctype, if_none_match=if_none_match)
        if state.durability is not None:
            state.durability.blob_put(key, data, now, ctype, if_none_match)
    return blob.etag


async def _store_part(request: web.Request, upload_id: str, number: int, data: bytes) -> str:
    state = request.app[STATE]
    async with state.writing():  # the body was read before: an upload does not hold other workers up
        world = state.world
        etag = blobstore(world).put_part(upload_id, number, data)
        if state.durability is not None:
            state.durability.blob_part(upload_id, number, data, world.clock.now())
    return etag


async def _get(request: web.Request, world: World) -> web.StreamResponse:
    key, bs, q = _key_of(request), blobstore(world), request.query
    if "X-Avala-Signature" in q:
        expires = _int(q.get("X-Avala-Expires"), "expiry")
        bs.check(q.get("X-Avala-Signature"), "GET", key, expires, _int(q.get("X-Avala-Size", "0"), "size"), "", 0)
        _check_expiry(world, expires)
    else:
        _check_owner(world, bs, request.headers.get(API_KEY_HEADER), key)
    blob = bs.get(key)
    if blob is None:
        raise ApiError(404, "No such object.")
    return web.Response(body=blob.data, content_type=blob.content_type.split(";")[0],
                        headers={"ETag": f'"{blob.etag}"'})


def _check_owner(world: World, bs: Blobstore, api_key: str | None, key: str) -> None:
    """Unsigned reads need the key of the organisation (or user) whose root the object lives under."""
    found = world.resolve_key(api_key) if api_key else None
    if found is None:
        raise SignatureError("Reading an object needs a signed URL or the owner's X-Avala-Api-Key.")
    store, user = found
    segments = key.split("/")
    owners = {f"__o__=/{store.org.uid}", f"__u__=/{user.uid}", f"fleet/{store.org.uid}"}
    configs = store.collections.get("storage_config")
    owners |= {f"fleet/{r['uid']}" for r in (configs.values() if configs is not None else ())}
    if "/".join(segments[:2]) not in owners:
        raise ApiError(404, "No such object.")  # another tenant's objects are simply not there
