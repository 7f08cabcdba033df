"""Organisations, members, invitations and teams (tag ``organizations``). The rules live in
simulators/organizations.py; this module resolves the slug, renders and paginates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avala_mock.mock_server import wire
from avala_mock.mock_server.context import Ctx
from avala_mock.mock_server.errors import ApiError
from avala_mock.simulators import organizations as orgs
from avala_mock.simulators.clock import iso
from avala_mock.simulators.world import User

ORG_PAGE_SIZE = 20


def _org(ctx: Ctx) -> tuple[dict[str, Any], str]:
    return orgs.organization(ctx.world, ctx.store, ctx.path["slug"], ctx.user)


def _user(ctx: Ctx, uid: str) -> User | None:
    return ctx.store.users.get(uid)


def _render_org(ctx: Ctx, org: dict[str, Any]) -> dict[str, Any]:
    m = orgs.membership(ctx.store, org, ctx.user.uid)
    out = wire.record(org)
    out.update(orgs.counts(ctx.store, org))
    out["role"] = m["role"] if m else None
    out["joined_at"] = iso(m["created_at"]) if m else None
    return out


def _person(user: User | None) -> dict[str, Any]:
    if user is None:
        return {"username": None, "email": None, "full_name": None, "picture": None}
    return {
        "username": user.username,
        "email": user.email,
        "full_name": f"{user.first_name} {user.last_name}".strip() or user.username,
        "picture": f"https://avatars.avala.ai/{user.uid}.png",
    }


def _render_member(ctx: Ctx, m: dict[str, Any], manager: bool) -> dict[str, Any]:
    out = {"user_uid": m["user_uid"], **_person(_user(ctx, m["user_uid"])), "role": m["role"], "created_at": iso(m["created_at"])}
    if manager:  # "present only for organization managers" (Python model)
        out["last_active_at"] = iso(m.get("last_active_at"))
    return out


def _render_invitation(ctx: Ctx, org: dict[str, Any], inv: dict[str, Any]) -> dict[str, Any]:
    status = orgs.invitation_status(inv, ctx.now)
    out = wire.record(inv)
    out.pop("organization", None)
    out.pop("last_sent_at", None)
    out.update(organization_name=org["name"], organization_slug=org["slug"], status=status, is_expired=status == "expired")
    return out


def _render_team(ctx: Ctx, org: dict[str, Any], team: dict[str, Any]) -> dict[str, Any]:
    out = wire.record(team)
    out.pop("organization", None)
    out.update(organization_uid=org["uid"], organization_name=org["name"], organization_slug=org["slug"],
               member_count=len(orgs.team_members(ctx.store, team)))
    return out


def _render_team_member(ctx: Ctx, tm: dict[str, Any]) -> dict[str, Any]:
    return {"user_uid": tm["user_uid"], **_person(_user(ctx, tm["user_uid"])), "role": tm["role"],
            "created_at": iso(tm["created_at"])}


def _page(ctx: Ctx, found: list[dict[str, Any]], render: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    return ctx.page([r["seq"] for r in found], lambda i, j: [render(r) for r in found[i:j]])


# ── organisations ────────────────────────────────────────────


def list_organizations(ctx: Ctx) -> dict[str, Any]:
    """Page-number pagination (§1.9): the number comes as ``page`` or as ``cursor``."""
    page, cursor = ctx.query.get("page"), ctx.query.get("cursor")
    if page is not None and cursor is not None and int(cursor) != page:
        raise ApiError(400, "page and cursor name different pages.", errors={"cursor": ["Does not match page."]})
    number = page if page is not None else int(cursor) if cursor is not None else 1
    size = ctx.query.get("limit") or ORG_PAGE_SIZE
    found = orgs.organizations_of(ctx.world, ctx.store, ctx.user)
    start = (number - 1) * size
    results = [_render_org(ctx, o) for o in found[start:start + size]]
    url = ctx.request.url
    base = url.with_query({k: v for k, v in url.query.items() if k not in ("page", "cursor")})

    def link(n: int) -> str:
        return str(base.update_query(page=n))

    last = max(1, -(-len(found) // size))
    return {
        "results": results,
        "next": link(number + 1) if number < last else None,
        "previous": link(min(number - 1, last)) if number > 1 else None,
    }


def create_organization(ctx: Ctx) -> dict[str, Any]:
    return _render_org(ctx, orgs.create_organization(ctx.world, ctx.store, ctx.user, ctx.body))


def get_industry_choices(ctx: Ctx) -> dict[str, Any]:
    return {"choices": [{"value": v, "label": label} for v, label in orgs.INDUSTRIES]}


def get_organization(ctx: Ctx) -> dict[str, Any]:
    return _render_org(ctx, _org(ctx)[0])


def update_organization(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    return _render_org(ctx, orgs.update_organization(ctx.world, ctx.store, org, role, ctx.body))


def delete_organization(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.delete_organization(ctx.world, ctx.store, org, role)


# ── members ──────────────────────────────────────────────────


def list_organization_members(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    found = orgs.members(ctx.store, org, search=ctx.query.get("search"), role=ctx.query.get("role"))
    manager = role in orgs.MANAGERS
    return _page(ctx, found, lambda m: _render_member(ctx, m, manager))


def remove_organization_member(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.remove_member(ctx.store, org, role, ctx.path["user_uid"])


def update_organization_member_role(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.set_member_role(ctx.world, ctx.store, org, role, ctx.path["user_uid"], ctx.body["role"])


def leave_organization(ctx: Ctx) -> None:
    org, _role = _org(ctx)
    orgs.leave(ctx.store, org, ctx.user)


def transfer_organization_ownership(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.transfer_ownership(ctx.world, ctx.store, org, role, ctx.user, ctx.body["new_owner_uid"])


# ── invitations ──────────────────────────────────────────────


def list_organization_invitations(ctx: Ctx) -> dict[str, Any]:
    org, _role = _org(ctx)
    return _page(ctx, orgs.invitations(ctx.store, org), lambda inv: _render_invitation(ctx, org, inv))


def create_organization_invitation(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    inv = orgs.invite(ctx.world, ctx.store, org, role, ctx.user, ctx.body["email"], ctx.body.get("role"))
    return _render_invitation(ctx, org, inv)


def resend_organization_invitation(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.resend(ctx.world, ctx.store, org, role, orgs.invitation(ctx.store, org, ctx.path["invitation_uid"]))


def cancel_organization_invitation(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.cancel(ctx.store, role, orgs.invitation(ctx.store, org, ctx.path["invitation_uid"]))


# ── teams ────────────────────────────────────────────────────


def list_teams(ctx: Ctx) -> dict[str, Any]:
    org, _role = _org(ctx)
    return _page(ctx, orgs.teams(ctx.store, org), lambda t: _render_team(ctx, org, t))


def create_team(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    return _render_team(ctx, org, orgs.create_team(ctx.world, ctx.store, org, role, ctx.body))


def get_team(ctx: Ctx) -> dict[str, Any]:
    org, _role = _org(ctx)
    return _render_team(ctx, org, orgs.team(ctx.store, org, ctx.path["team_slug"]))


def update_team(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    team = orgs.team(ctx.store, org, ctx.path["team_slug"])
    return _render_team(ctx, org, orgs.update_team(ctx.world, ctx.store, org, role, team, ctx.body))


def delete_team(ctx: Ctx) -> None:
    org, role = _org(ctx)
    orgs.delete_team(ctx.store, role, orgs.team(ctx.store, org, ctx.path["team_slug"]))


def list_team_members(ctx: Ctx) -> dict[str, Any]:
    org, _role = _org(ctx)
    team = orgs.team(ctx.store, org, ctx.path["team_slug"])
    return _page(ctx, orgs.team_members(ctx.store, team), lambda tm: _render_team_member(ctx, tm))


def add_team_member(ctx: Ctx) -> dict[str, Any]:
    org, role = _org(ctx)
    team = orgs.team(ctx.store, org, ctx.path["team_slug"])
    tm = orgs.add_team_member(ctx.world, ctx.store, org, role, team, ctx.body["user_uid"], ctx.body.get("role"))
    return _render_team_member(ctx, tm)


def remove_team_member(ctx: Ctx) -> None:
    org, role = _org(ctx)
    team = orgs.team(ctx.store, org, ctx.path["team_slug"])
    orgs.remove_team_member(ctx.store, role, team, ctx.path["user_uid"])


def update_team_member_role(ctx: Ctx) -> None:
    org, role = _org(ctx)
    team = orgs.team(ctx.store, org, ctx.path["team_slug"])
    orgs.set_team_member_role(ctx.world, ctx.store, role, team, ctx.path["user_uid"], ctx.body["role"])
