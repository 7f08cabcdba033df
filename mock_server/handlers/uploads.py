"""Manual dataset uploads and fleet recording uploads, default and managed (tag ``uploads``).

The rules live in simulators/uploads.py, simulators/fleet_uploads.py and simulators/managed_uploads.py;
the bytes go to the mock's own data plane (mock_server/storage_plane.py), whose base URL every upload
URL starts with.
"""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.mock_server.state import STATE
from avala_mock.simulators import fleet_uploads, managed_uploads, uploads


def _storage_base(ctx: Ctx) -> str:
    """``--storage-base-url`` when set, else this server's origin + ``/_storage``."""
    configured = ctx.request.app[STATE].config.storage_base_url
    if configured:
        return configured.rstrip("/")
    return f"{ctx.request.scheme}://{ctx.request.host}/_storage"


# -- manual dataset uploads (MU1-MU6) -------------------------------------------------------------


def presign_manual_upload(ctx: Ctx) -> dict[str, Any]:
    return uploads.presign(ctx.world, ctx.store, ctx.user, _storage_base(ctx), ctx.body)


def get_manual_upload_quota(ctx: Ctx) -> dict[str, Any]:
    return uploads.quota(ctx.world, ctx.store, ctx.user, ctx.query.get("organization_uid"))


def get_manual_upload_allowed_mimes(ctx: Ctx) -> dict[str, Any]:
    return uploads.allowed_mimes()


def create_manual_upload_dataset(ctx: Ctx) -> dict[str, Any]:
    return wire.dataset(uploads.finalize(ctx.world, ctx.store, ctx.user, ctx.body).settle(ctx.now))


def presign_manual_upload_parts(ctx: Ctx) -> dict[str, Any]:
    return uploads.presign_parts(ctx.world, ctx.store, _storage_base(ctx), ctx.path["upload_uid"], ctx.body["part_numbers"])


def complete_manual_upload(ctx: Ctx) -> dict[str, Any]:
    return uploads.complete(ctx.world, ctx.store, ctx.path["upload_uid"])


# -- fleet recording uploads, default protocol (FU1-FU5) ------------------------------------------


def get_fleet_recording_upload_status(ctx: Ctx) -> dict[str, Any]:
    return fleet_uploads.status(ctx.world, ctx.store, ctx.path["recording_uid"])


def init_fleet_recording_upload(ctx: Ctx) -> dict[str, Any]:
    return fleet_uploads.init(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


def presign_fleet_recording_upload_urls(ctx: Ctx) -> dict[str, Any]:
    return fleet_uploads.urls(ctx.world, ctx.store, _storage_base(ctx), ctx.path["recording_uid"], ctx.body)


def confirm_fleet_recording_upload(ctx: Ctx) -> dict[str, Any]:
    return fleet_uploads.confirm(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


def finalize_fleet_recording_upload(ctx: Ctx) -> dict[str, Any]:
    return fleet_uploads.finalize(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


# -- fleet managed MCAP uploads (MF1-MF6) ---------------------------------------------------------


def admit_managed_fleet_upload(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.admit(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


def get_managed_fleet_upload_status(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.status(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.query["session_uid"])


def init_managed_fleet_upload_multipart(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.init_multipart(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


def get_managed_fleet_upload_multipart_progress(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.progress(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.query)


def presign_managed_fleet_upload_parts(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.grant_parts(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)


def finalize_managed_fleet_upload(ctx: Ctx) -> dict[str, Any]:
    return managed_uploads.finalize(ctx.world, ctx.store, ctx.path["recording_uid"], ctx.body)
