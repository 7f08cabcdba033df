"""The dashboard: its page and assets (``/_mock/ui/``), the JSON it reads (``/_mock/dashboard/...``, part of
the control API and described in ``control.yaml``) and a server-sent-events stream that pushes the
state about once a second, so the page moves without reloading.

Everything here reads the world; the page changes it only through the control API's own operations
(clock advance, pause, resume, scale). API keys never leave the server: rate-limit buckets are shown by
the organisation that owns the key, webhook targets by host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
from aiohttp import web

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx, Handler
from avala_mock.mock_server.errors import ApiError
from avala_mock.mock_server.state import STATE, MockState
from avala_mock.simulators import autolabel, media, webhooks
from avala_mock.simulators.clock import iso
from avala_mock.simulators.world import World

UI_DIR = Path(__file__).with_name("ui")
UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
STREAM_PERIOD_S = 1.0
MAX_STREAMS = 16  # each open page holds one; more is a misbehaving client
TAIL_FIRST = 50
PR_THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)


# ── control operations (control.yaml) ─────────────────────────────────────────────────────────────


def get_dashboard_state(ctx: Ctx) -> dict[str, Any]:
    return state_of(ctx.request.app[STATE])


def get_job_gallery(ctx: Ctx) -> dict[str, Any]:
    world, now = ctx.world, ctx.now
    job, org = _find_job(world, ctx.path["uid"])
    offset, limit = int(ctx.query.get("offset", 0)), int(ctx.query.get("limit", 12))
    view = job.view(now)
    k = view.state.processed_items
    items = [] if job.retired else [_gallery_item(world, job, pos) for pos in range(offset, min(k, offset + limit))]
    return {"job": _job(job, view, now, org), "total_items": k, "items": items, "pr_curve": [] if job.retired else _pr_curve(job, k)}


def list_dashboard_deliveries(ctx: Ctx) -> dict[str, Any]:
    limit = int(ctx.query.get("limit", 50))
    found = []
    for store in ctx.world.stores.values():
        hooks = {w["uid"]: w for w in webhooks.webhooks(store).values()}
        for d in webhooks.deliveries(store).values():
            hook = hooks.get(d["subscription"])
            found.append({
                "uid": d["uid"], "organization": store.org.slug, "webhook": d["subscription"],
                "target_host": urlsplit(hook["target_url"]).hostname if hook else None,
                "event_type": d["event_type"], "status": d["status"], "attempts": d["attempts"],
                "response_status": d["response_status"], "next_retry_at": iso(d["next_retry_at"]),
                "created_at": iso(d["created_at"]), "_at": d["created_at"],
            })
    found.sort(key=lambda d: -d.pop("_at"))
    return {"deliveries": found[:limit]}


def list_dashboard_buckets(ctx: Ctx) -> dict[str, Any]:
    state = ctx.request.app[STATE]
    out = []
    for key, remaining, limit, full_at in state.limiter.buckets():
        found = None if key.startswith("ip:") else state.world.resolve_key(key)
        org = found[0].org.slug if found else None
        client = key if key.startswith("ip:") else f"key of {org}" if org else "a key no longer known"
        out.append({"organization": org, "client": client, "remaining": remaining, "limit": limit, "reset_at": iso(full_at)})
    return {"limit": state.limiter.limit, "window": state.limiter.window, "buckets": out}


# ── what the page shows ───────────────────────────────────────────────────────────────────────────


def state_of(state: MockState) -> dict[str, Any]:
    world = state.world
    with world.clock.pinned() as now:
        found = [(job, store.org.slug) for store in world.stores.values() for job in autolabel.list_jobs(store, now)]
        found.sort(key=lambda j: -j[0].created_at)
        jobs = [_job(job, job.view(now), now, org) for job, org in found[:200]]  # only the shown ones are viewed
    clock = world.clock.describe()
    scenario = state.scenario.get("name", "inline") if isinstance(state.scenario, dict) else None
    return {"clock": clock, "scenario": scenario,
            "strict": state.config.strict, "journal": state.journal.describe(), "jobs": jobs}


def _job(job: autolabel.AutoLabelJob, view: autolabel.JobView, now: float, org: str) -> dict[str, Any]:
    """The job as the API renders it (without its summary: the page polls it every second), plus the slug of
    the organisation it belongs to and how long it has left on the virtual clock."""
    out = wire.job(view)
    del out["summary"]
    active = view.state.status in ("pending", "running")
    out.update(organization=org, project_uid=job.project.uid, project_name=job.project.name,
               eta_seconds=max(0.0, round(job.end_at - now, 1)) if active else None, eta_at=iso(job.end_at) if active else None)
    return out


def _find_job(world: World, uid: str) -> tuple[autolabel.AutoLabelJob, str]:
    """The job and its organisation's slug (the name the state list uses, not the dataset owner's)."""
    for store in world.stores.values():
        job = store.jobs.get(uid)
        if job is not None:
            return job, store.org.slug
    raise ApiError(404, f"Auto-label job {uid!r} not found.")


def _gallery_item(world: World, job: autolabel.AutoLabelJob, pos: int) -> dict[str, Any]:
    """The job's ``pos``-th item: every prediction (those under the job's threshold too, for the slider)
    and the hidden ground truth, in the item's pixel space."""
    d = job.project.dataset
    index = int(job.project.rows[job.rows[pos]])
    drafts = []
    for obj in job.item_predictions(pos, everything=True):
        box = obj.get("bbox")
        drafts.append({"label": obj["label"], "confidence": round(obj["confidence"], 4), "accepted": obj["accepted"],
                       "kind": "box" if box else "polygon", "points": obj.get("points"),
                       "box": [box["x"], box["y"], box["width"], box["height"]] if box else None})
    ga, gb = int(d.gt.offsets[index]), int(d.gt.offsets[index + 1])
    truth = [{"label": d.labels[int(d.gt.labels[r])], "box": [round(float(v), 1) for v in d.gt.boxes[r]]} for r in range(ga, gb)]
    key = d.item_keys[index] if d.item_keys is not None else f"images/{index:06d}.jpg"
    w, h = d.image_size
    return {"uid": d.item_uids[index], "key": key, "url": media.item_url(world, d, key),
            "thumbnail_url": media.thumbnail_url(world, d, index), "width": w, "height": h,
            "failed": bool(job.outcome[pos] == autolabel.FAILED), "drafts": drafts, "ground_truth": truth}


def _pr_curve(job: autolabel.AutoLabelJob, k: int) -> list[dict[str, Any]]:
    """Precision and recall against the hidden ground truth over the first ``k`` processed items, had
    the job kept the drafts at or above each threshold (the job's own threshold included)."""
    out = []
    for t in sorted({*PR_THRESHOLDS.tolist(), round(float(job.threshold), 2)}):
        tp, fp, fn = job.counts_at(k, t)
        out.append({"threshold": t, "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
                    "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0, "tp": tp, "fp": fp, "fn": fn})
    return out


# ── page, assets, stream ──────────────────────────────────────────────────────────────────────────


def add_routes(app: web.Application, state: MockState, wrap: Callable[[Handler], Handler]) -> None:
    streams: set[web.StreamResponse] = set()
    stopping = asyncio.Event()

    async def index(request: web.Request) -> web.Response:
        base = str(request.url.origin())
        return web.json_response({
            "dashboard": f"{base}/_mock/ui/", "openapi": f"{base}/openapi.yaml", "control_openapi": f"{base}/_mock/openapi.yaml",
            "clock": f"{base}/_mock/clock/", "journal": f"{base}/_mock/journal/", "world": f"{base}/_mock/world/",
            "healthz": f"{base}/healthz", "state": f"{base}/_mock/dashboard/state/", "stream": f"{base}/_mock/dashboard/stream/",
        }, dumps=lambda o: orjson.dumps(o).decode())

    files = {name: (UI_DIR / name).read_bytes() for name in UI_FILES}  # shipped with the package: read once

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        if name not in files:
            raise ApiError(404, f"No dashboard file {name!r}.")
        return web.Response(body=files[name], content_type=UI_FILES[name], headers={"Cache-Control": "no-cache"})

    async def stream(request: web.Request) -> web.StreamResponse:
        if len(streams) >= MAX_STREAMS:
            raise ApiError(429, f"At most {MAX_STREAMS} dashboard streams at once.", headers={"Retry-After": "5"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        streams.add(response)
        last = None
        try:
            while not stopping.is_set():
                st = request.app[STATE]
                tail = st.journal.query(since=last, limit=TAIL_FIRST if last is None else 1000)
                last = tail[-1]["seq"] if tail else (last or 0)
                payload = {**state_of(st), "journal_tail": tail}
                await response.write(b"event: state\ndata: " + orjson.dumps(payload) + b"\n\n")
                try:
                    await asyncio.wait_for(stopping.wait(), STREAM_PERIOD_S)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            streams.discard(response)
        return response

    async def stop_streams(_app: web.Application) -> None:
        stopping.set()

    app.on_shutdown.append(stop_streams)
    app.router.add_get("/_mock/", wrap(index))
    app.router.add_get("/_mock/ui/", wrap(asset))
    app.router.add_get("/_mock/ui/{name}", wrap(asset))
    app.router.add_get("/_mock/dashboard/stream/", wrap(stream))
