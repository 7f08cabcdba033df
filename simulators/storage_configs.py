"""Customer bucket configurations (surface doc §2.14, §3.18).

A config belongs to one organisation of the key's store (``_organization``: the home organisation,
or one the user created, chosen by the Python SDK's ``organization`` slug). Credentials are write-only:
they are kept under the private ``_credentials`` key, which no renderer emits, and no message here
ever quotes them. ``test`` is a deterministic offline check of the stored values (no network I/O).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from avala_mock.simulators import organizations
from avala_mock.simulators.errors import Conflict, Invalid, NotFound, summarize
from avala_mock.simulators.records import collection, new_record, patch
from avala_mock.simulators.world import OrgStore, User, World

KIND = organizations.STORAGE_CONFIGS
AWS, GCS = "aws_s3", "gc_storage"
PROVIDER_ALIASES = {"aws_s3": AWS, "s3": AWS, "gc_storage": GCS, "gcs": GCS, "google_cloud_storage": GCS}
AVALA_AWS_ACCOUNT_ID = "864270196352"  # the mock's stand-in for Avala's AWS account
_EXTERNAL_ID_NS = uuid.UUID("5d0c1f0e-6a55-4c7e-9d3b-2f4a8f1a7c11")

S3_FIELDS = ("s3_bucket_name", "s3_bucket_region", "s3_bucket_prefix", "s3_auth_method", "s3_is_accelerated")
GCS_FIELDS = ("gc_storage_bucket_name", "gc_storage_prefix")
SECRET_FIELDS = ("s3_access_key_id", "s3_secret_access_key", "s3_role_arn", "gc_storage_auth_json_content")
GCS_JSON_KEYS = ("type", "project_id", "private_key", "client_email")

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
_ACCESS_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+=]{40}$")
_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


class InvalidFields(Invalid):
    """Several fields are wrong at once: ``errors`` maps each to its messages (answered 400)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(summarize(errors, "storage config"), field=next(iter(errors)), errors=errors)


def scope(world: World, store: OrgStore, user: User, slug: str | None) -> dict[str, Any]:
    """The organisation a call is about: the ``organization`` slug (404 unless the user is a member),
    else the organisation the key belongs to."""
    if slug is None:
        return organizations.home(world, store)
    org, _role = organizations.organization(world, store, slug, user)
    return org


def _visible(world: World, store: OrgStore, user: User) -> set[str]:
    return {o["uid"] for o in organizations.organizations_of(world, store, user)} | {store.org.uid}


def list_configs(store: OrgStore, org: dict) -> list[dict[str, Any]]:
    return collection(store, KIND).filter(_organization=org["uid"])


def get_config(world: World, store: OrgStore, user: User, uid: str, org: dict | None = None) -> dict[str, Any]:
    """A config of an organisation the user can see; with ``org``, 404 unless it belongs to that one."""
    rec = collection(store, KIND).get(uid) if uid in collection(store, KIND) else None
    if rec is None or rec["_organization"] not in _visible(world, store, user) or (org and rec["_organization"] != org["uid"]):
        raise NotFound(f"Storage config {uid!r} not found.")
    return rec


def canonical_provider(name: str) -> str:
    try:
        return PROVIDER_ALIASES[name]
    except KeyError:
        raise Invalid(f"Provider must be one of {', '.join(PROVIDER_ALIASES)}.", field="provider") from None


def _check_create(provider: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Public fields and credentials of a create body, or InvalidFields naming every missing field.
    Credentials the provider (or auth method) does not use are dropped, never stored."""
    errors: dict[str, list[str]] = {}
    required = "This field is required."
    public: dict[str, Any] = dict.fromkeys(S3_FIELDS + GCS_FIELDS)
    public["s3_is_accelerated"] = False
    if provider == AWS:
        if not body.get("s3_bucket_name"):
            errors["s3_bucket_name"] = [required]
        method = body.get("s3_auth_method") or ("iam_role" if body.get("s3_role_arn") else "access_key")
        if method == "iam_role":
            if not body.get("s3_role_arn"):
                errors["s3_role_arn"] = ["This field is required when s3_auth_method is iam_role."]
            wanted = ("s3_role_arn",)
        else:
            for key in ("s3_access_key_id", "s3_secret_access_key"):
                if not body.get(key):
                    errors[key] = ["This field is required when s3_auth_method is access_key."]
            wanted = ("s3_access_key_id", "s3_secret_access_key")
        public.update({k: body[k] for k in S3_FIELDS if body.get(k) is not None})
        public["s3_auth_method"] = method
        public["s3_is_accelerated"] = bool(body.get("s3_is_accelerated", False))
    else:
        if not body.get("gc_storage_bucket_name"):
            errors["gc_storage_bucket_name"] = [required]
        if not body.get("gc_storage_auth_json_content"):
            errors["gc_storage_auth_json_content"] = ["This field is required for gc_storage."]
        wanted = ("gc_storage_auth_json_content",)
        public.update({k: body[k] for k in GCS_FIELDS if body.get(k) is not None})
    if errors:
        raise InvalidFields(errors)
    secrets = {k: body[k] for k in wanted}
    return public, secrets


def create_config(world: World, store: OrgStore, org: dict, body: dict[str, Any]) -> dict[str, Any]:
    """A config of ``org``; its name is unique within the organisation (409)."""
    provider = canonical_provider(body["provider"])
    public, secrets = _check_create(provider, body)
    configs = collection(store, KIND)
    if any(c["name"] == body["name"] for c in list_configs(store, org)):
        raise Conflict(f"A storage config named {body['name']!r} already exists in this organization.")
    rec = new_record(world, store, {
        "name": body["name"], "provider": provider, **public,
        "is_verified": False, "last_verified_at": None,
        "_organization": org["uid"], "_credentials": secrets,
    })
    return configs.add(rec)


def delete_config(store: OrgStore, rec: dict[str, Any]) -> None:
    collection(store, KIND).remove(rec["uid"])


def _bucket_errors(name: str, pattern: re.Pattern[str]) -> list[str]:
    out = []
    if not pattern.match(name):
        out.append(f"Bucket name {name!r} is invalid: 3-63 lowercase letters, digits, dots or hyphens, "
                   "starting and ending with a letter or digit.")
    if ".." in name or _IP.match(name):
        out.append(f"Bucket name {name!r} must not contain '..' or look like an IP address.")
    return out


def check(rec: dict[str, Any]) -> dict[str, list[str]]:
    """What a connection test finds wrong with the stored config (empty when it would connect).
    Messages never quote a credential."""
    errors: dict[str, list[str]] = {}
    creds = rec["_credentials"]
    if rec["provider"] == AWS:
        if bad := _bucket_errors(rec["s3_bucket_name"] or "", _S3_BUCKET):
            errors["s3_bucket_name"] = bad
        region = rec.get("s3_bucket_region")
        if region and not _REGION.match(region):
            errors["s3_bucket_region"] = [f"{region!r} is not an AWS region (e.g. us-east-1)."]
        prefix = rec.get("s3_bucket_prefix")
        if prefix and prefix.startswith("/"):
            errors["s3_bucket_prefix"] = ["The prefix must not start with '/'."]
        if rec.get("s3_is_accelerated") and "." in (rec["s3_bucket_name"] or ""):
            errors.setdefault("s3_is_accelerated", []).append("Transfer acceleration needs a bucket name without dots.")
        if rec["s3_auth_method"] == "iam_role":
            if not _ROLE_ARN.match(creds.get("s3_role_arn", "")):
                errors["s3_role_arn"] = ["Not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)."]
        else:
            if not _ACCESS_KEY_ID.match(creds.get("s3_access_key_id", "")):
                errors["s3_access_key_id"] = ["Not an AWS access key id (20 characters starting with AKIA or ASIA)."]
            if not _SECRET_KEY.match(creds.get("s3_secret_access_key", "")):
                errors["s3_secret_access_key"] = ["Not an AWS secret access key (40 characters)."]
    else:
        if bad := _bucket_errors(rec["gc_storage_bucket_name"] or "", _GCS_BUCKET):
            errors["gc_storage_bucket_name"] = bad
        errors.update(_gcs_json_errors(creds.get("gc_storage_auth_json_content", "")))
    return errors


def _gcs_json_errors(text: str) -> dict[str, list[str]]:
    field = "gc_storage_auth_json_content"
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return {field: ["The service-account key is not valid JSON."]}
    if not isinstance(data, dict):
        return {field: ["The service-account key must be a JSON object."]}
    missing = [k for k in GCS_JSON_KEYS if not data.get(k)]
    if missing:
        return {field: [f"The service-account key lacks {', '.join(missing)}."]}
    if data["type"] != "service_account":
        return {field: ["The key's type must be service_account."]}
    return {}


def verify(world: World, rec: dict[str, Any]) -> dict[str, Any]:
    """Run the offline check; a pass sets ``is_verified`` and ``last_verified_at``, a failure clears
    ``is_verified`` (``last_verified_at`` keeps the last successful check)."""
    errors = check(rec)
    now = world.clock.now()
    if errors:
        patch(world, rec, {"is_verified": False}, ("is_verified",))
        return {"verified": False, "errors": errors}
    patch(world, rec, {"is_verified": True, "last_verified_at": now}, ("is_verified", "last_verified_at"))
    return {"verified": True}


def setup_info(org: dict[str, Any]) -> dict[str, str]:
    """Avala's AWS account and the organisation's external id (stable: derived from the org uid)."""
    return {"avala_aws_account_id": AVALA_AWS_ACCOUNT_ID, "external_id": f"avala-{uuid.uuid5(_EXTERNAL_ID_NS, org['uid'])}"}
