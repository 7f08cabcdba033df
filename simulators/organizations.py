"""Organisations, their members, invitations and teams (surface doc §2.15, §3.19).

A key's user belongs to their own organisation (``store.org``, the "home" organisation) and to any
organisation they created through the API. Both kinds are records of kind ``organization`` in the
user's ``OrgStore`` (the home one carries ``_home`` and the store's org uid), so another tenant's key
cannot reach them by construction. Membership, teams, team membership and invitations are records
too, linked by the organisation's uid. Organisation routes are addressed by slug and answer 404 unless
the caller is a member, so a slug the caller cannot see is indistinguishable from one that does not
exist. Slugs and handles are unique world-wide (they address organisations in URLs).
"""

from __future__ import annotations

import re
from typing import Any

from avala_mock.simulators.errors import Conflict, Forbidden, Invalid, NotFound
from avala_mock.simulators.records import Collection, collection, declare, new_record, patch
from avala_mock.simulators.world import OrgStore, User, World

ORGS, MEMBERS, TEAMS, TEAM_MEMBERS, INVITATIONS = "organization", "organization_member", "team", "team_member", "invitation"
declare(MEMBERS, indexes=("organization", "user_uid"))
declare(TEAMS, indexes=("organization",))
declare(TEAM_MEMBERS, indexes=("team", "organization"))
declare(INVITATIONS, indexes=("organization",))
STORAGE_CONFIGS = "storage_config"  # removed with their organisation (simulators/storage_configs.py)
SLICES = "slice"  # simulators/slices.py: every slice of a store belongs to the store's own organisation

OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ORG_ROLES = (OWNER, ADMIN, MEMBER)
MANAGERS = (OWNER, ADMIN)
ASSIGNABLE_ROLES = (ADMIN, MEMBER)  # owner only by transfer
TEAM_ROLES = ("lead", "member")
VISIBILITIES = ("private", "public")
INVITATION_TTL = 7 * 86400.0
APP_ROOT = "https://app.avala.ai"

INDUSTRIES = (
    ("aerospace", "Aerospace & Defense"),
    ("agriculture", "Agriculture"),
    ("automotive", "Automotive"),
    ("construction", "Construction"),
    ("energy", "Energy & Utilities"),
    ("healthcare", "Healthcare & Life Sciences"),
    ("logistics", "Logistics & Warehousing"),
    ("manufacturing", "Manufacturing"),
    ("media", "Media & Entertainment"),
    ("research", "Research & Academia"),
    ("retail", "Retail & E-commerce"),
    ("robotics", "Robotics"),
    ("security", "Security & Surveillance"),
    ("other", "Other"),
)
INDUSTRY_VALUES = frozenset(v for v, _ in INDUSTRIES)
_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")

ORG_FIELDS = ("name", "description", "logo", "website", "handle", "industry", "email", "phone", "visibility")
TEAM_FIELDS = ("name", "description", "color")


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by hyphens, at most 50 characters (Django's slugify, roughly)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:50].strip("-")


# ── organisations ────────────────────────────────────────────


def home(world: World, store: OrgStore) -> dict[str, Any]:
    """The record of the store's own organisation, created (with its members) on first use."""
    orgs = collection(store, ORGS)
    if store.org.uid in orgs:
        return orgs.get(store.org.uid)
    org = store.org
    record = new_record(world, store, {
        "name": org.name, "slug": org.slug, "handle": org.slug, "description": org.description or None,
        "readme": None, "logo": None, "website": None, "industry": org.industry, "organization_type": "company",
        "x_url": None, "hugging_face_url": None, "github_url": None, "linkedin_url": None,
        "email": None, "phone": None, "visibility": org.visibility, "plan": org.plan,
        "is_verified": False, "is_active": True, "slug_edits_remaining": 3, "allowed_domains": [],
        "billing_status": "active", "public_slug": org.slug, "_home": True,
    }, uid=org.uid)
    record["created_at"] = record["updated_at"] = org.created_at
    orgs.add(record)
    for user in store.users.values():
        if not user.is_bot:
            role = OWNER if user.uid == store.owner.uid else MEMBER
            _add_member(world, store, record, user, role, joined=org.created_at)
    return record


def _orgs(world: World, store: OrgStore) -> Collection:
    home(world, store)
    return collection(store, ORGS)


def _add_member(world: World, store: OrgStore, org: dict, user: User, role: str, joined: float | None = None) -> dict:
    rec = new_record(world, store, {"organization": org["uid"], "user_uid": user.uid, "role": role, "last_active_at": None})
    if joined is not None:
        rec["created_at"] = rec["updated_at"] = joined
    return collection(store, MEMBERS).add(rec)


def membership(store: OrgStore, org: dict, user_uid: str) -> dict[str, Any] | None:
    found = collection(store, MEMBERS).filter(organization=org["uid"], user_uid=user_uid)
    return found[0] if found else None


def role_of(store: OrgStore, org: dict, user: User) -> str | None:
    m = membership(store, org, user.uid)
    return m["role"] if m else None


def organizations_of(world: World, store: OrgStore, user: User) -> list[dict[str, Any]]:
    """The organisations ``user`` belongs to, in creation order (their own one first)."""
    orgs = _orgs(world, store).values()
    mine = {m["organization"] for m in collection(store, MEMBERS).filter(user_uid=user.uid)}
    return sorted((o for o in orgs if o["uid"] in mine), key=lambda o: (not o.get("_home"), o["seq"]))


def organization(world: World, store: OrgStore, slug: str, user: User) -> tuple[dict[str, Any], str]:
    """The organisation with ``slug`` and the caller's role in it; NotFound unless the caller is a member."""
    for org in _orgs(world, store).values():
        if org["slug"] == slug:
            role = role_of(store, org, user)
            if role is not None:
                return org, role
            break
    raise NotFound(f"Organization {slug!r} not found.")


def require(role: str, allowed: tuple[str, ...], action: str) -> None:
    if role not in allowed:
        raise Forbidden(f"Only an organization {' or '.join(allowed)} can {action}.")


def _all_org_records(world: World) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in list(world.stores.values()):
        out.extend(collection(s, ORGS).values())
    return out


def all_slugs(world: World) -> set[str]:
    """World-wide: slugs address organisations (and own datasets) in every URL."""
    return {s.org.slug for s in world.stores.values()} | {o["slug"] for o in _all_org_records(world)}


def slug_taken(world: World, slug: str) -> bool:
    return slug in all_slugs(world)


def _check_fields(world: World, fields: dict[str, Any], exclude: str | None = None) -> None:
    industry = fields.get("industry")
    if industry is not None and industry not in INDUSTRY_VALUES:
        raise Invalid(f"Unknown industry {industry!r}; see /organizations/industry-choices/.", field="industry")
    visibility = fields.get("visibility")
    if visibility is not None and visibility not in VISIBILITIES:
        raise Invalid(f"Visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility")
    handle = fields.get("handle")
    if handle is not None:
        if not _HANDLE.match(handle):
            raise Invalid("A handle is 1-50 letters, digits, '-' or '_', starting with a letter or digit.", field="handle")
        taken = any((o.get("handle") or "").lower() == handle.lower() and o["uid"] != exclude for o in _all_org_records(world))
        if taken:
            raise Conflict(f"The handle {handle!r} is already taken.")


def create_organization(world: World, store: OrgStore, user: User, fields: dict[str, Any]) -> dict[str, Any]:
    """A new organisation owned by ``user`` (kept in the user's store); its slug comes from the name."""
    slug = slugify(fields["name"])
    if not slug:
        raise Invalid("The name must contain at least one letter or digit.", field="name")
    _check_fields(world, fields)
    if slug_taken(world, slug):
        raise Conflict(f"An organization with slug {slug!r} already exists.")
    record = new_record(world, store, {
        "name": fields["name"], "slug": slug, "handle": slug, "description": fields.get("description"),
        "readme": None, "logo": fields.get("logo"), "website": fields.get("website"), "industry": fields.get("industry"),
        "organization_type": "company", "x_url": None, "hugging_face_url": None, "github_url": None, "linkedin_url": None,
        "email": fields.get("email"), "phone": fields.get("phone"), "visibility": fields.get("visibility", "private"),
        "plan": "free", "is_verified": False, "is_active": True, "slug_edits_remaining": 3, "allowed_domains": [],
        "billing_status": "trial", "public_slug": slug,
    })
    _orgs(world, store).add(record)
    _add_member(world, store, record, user, OWNER)
    return record


def update_organization(world: World, store: OrgStore, org: dict, role: str, changes: dict[str, Any]) -> dict[str, Any]:
    require(role, MANAGERS, "update it")
    _check_fields(world, changes, exclude=org["uid"])
    patch(world, org, changes, ORG_FIELDS)
    if org.get("_home"):  # keep the store's own view (used by other groups) in step
        for key in ("name", "description", "industry", "visibility"):
            if key in changes:
                setattr(store.org, key, changes[key])
    return org


def delete_organization(world: World, store: OrgStore, org: dict, role: str) -> None:
    """Owner only; removes its members, teams, invitations and storage configs. The organisation the
    API key belongs to cannot be deleted (the key would be left without a tenant)."""
    require(role, (OWNER,), "delete it")
    if org.get("_home"):
        raise Conflict("The organization this API key belongs to cannot be deleted through the API.")
    for kind in (MEMBERS, TEAMS, TEAM_MEMBERS, INVITATIONS):
        collection(store, kind).remove_where(organization=org["uid"])
    collection(store, STORAGE_CONFIGS).remove_where(_organization=org["uid"])
    collection(store, ORGS).remove(org["uid"])


def counts(store: OrgStore, org: dict) -> dict[str, int]:
    """Live counts: members, teams, datasets owned by the slug, projects (own organisation), slices."""
    own = bool(org.get("_home"))
    return {
        "member_count": len(collection(store, MEMBERS).filter(organization=org["uid"])),
        "team_count": len(collection(store, TEAMS).filter(organization=org["uid"])),
        "dataset_count": sum(1 for d in store.datasets.values() if d.owner_name == org["slug"]),
        "project_count": len(store.projects) if own else 0,
        "slice_count": len(collection(store, SLICES)) if own else 0,
    }


# ── members ──────────────────────────────────────────────────


def members(store: OrgStore, org: dict, search: str | None = None, role: str | None = None) -> list[dict[str, Any]]:
    found = collection(store, MEMBERS).filter(organization=org["uid"], role=role)
    if search:
        needle = search.lower()
        found = [m for m in found if needle in _haystack(store.users.get(m["user_uid"]))]
    return found


def _haystack(user: User | None) -> str:
    if user is None:
        return ""
    return " ".join((user.username, user.email, f"{user.first_name} {user.last_name}")).lower()


def _member(store: OrgStore, org: dict, user_uid: str) -> dict[str, Any]:
    m = membership(store, org, user_uid)
    if m is None:
        raise NotFound(f"User {user_uid!r} is not a member of {org['slug']!r}.")
    return m


def remove_member(store: OrgStore, org: dict, role: str, user_uid: str) -> None:
    require(role, MANAGERS, "remove members")
    m = _member(store, org, user_uid)
    if m["role"] == OWNER:
        raise Conflict("The owner cannot be removed; transfer ownership first.")
    _drop_member(store, org, m)  # admins may remove admins; the owner is the only protected member


def _drop_member(store: OrgStore, org: dict, m: dict) -> None:
    collection(store, MEMBERS).remove(m["uid"])
    collection(store, TEAM_MEMBERS).remove_where(organization=org["uid"], user_uid=m["user_uid"])


def set_member_role(world: World, store: OrgStore, org: dict, role: str, user_uid: str, new_role: str) -> None:
    require(role, MANAGERS, "change roles")
    if new_role == OWNER:
        raise Invalid("Ownership changes only through transfer-ownership.", field="role")
    if new_role not in ASSIGNABLE_ROLES:
        raise Invalid(f"Role must be one of {', '.join(ASSIGNABLE_ROLES)}.", field="role")
    m = _member(store, org, user_uid)
    if m["role"] == OWNER:
        raise Conflict("The owner's role changes only by transferring ownership.")
    patch(world, m, {"role": new_role}, ("role",))


def leave(store: OrgStore, org: dict, user: User) -> None:
    m = _member(store, org, user.uid)
    if m["role"] == OWNER:
        raise Conflict("The owner cannot leave the organization; transfer ownership first.")
    _drop_member(store, org, m)


def transfer_ownership(world: World, store: OrgStore, org: dict, role: str, user: User, new_owner_uid: str) -> None:
    """The new owner must already be a member (400 otherwise); the previous owner becomes admin."""
    require(role, (OWNER,), "transfer ownership")
    target = membership(store, org, new_owner_uid)
    if target is None:
        raise Invalid(f"User {new_owner_uid!r} not found among this organization's members.", field="new_owner_uid")
    if target["role"] == OWNER:
        raise Invalid("That user already owns this organization.", field="new_owner_uid")
    patch(world, _member(store, org, user.uid), {"role": ADMIN}, ("role",))
    patch(world, target, {"role": OWNER}, ("role",))


# ── invitations ──────────────────────────────────────────────


def invitation_status(inv: dict[str, Any], now: float) -> str:
    if inv["_status"] == "pending" and now >= inv["expires_at"]:
        return "expired"
    return inv["_status"]


def invitations(store: OrgStore, org: dict) -> list[dict[str, Any]]:
    return collection(store, INVITATIONS).filter(organization=org["uid"])


def invitation(store: OrgStore, org: dict, uid: str) -> dict[str, Any]:
    inv = collection(store, INVITATIONS).get(uid)
    if inv["organization"] != org["uid"]:
        raise NotFound(f"invitation {uid!r} not found.")
    return inv


def invite(world: World, store: OrgStore, org: dict, role: str, user: User, email: str, new_role: str | None) -> dict[str, Any]:
    """A pending invitation expiring in 7 days; 409 for a member's address or a pending duplicate."""
    require(role, MANAGERS, "invite")
    new_role = new_role or MEMBER
    if new_role not in ASSIGNABLE_ROLES:
        raise Invalid(f"Role must be one of {', '.join(ASSIGNABLE_ROLES)}.", field="role")
    email = email.strip().lower()
    for m in collection(store, MEMBERS).filter(organization=org["uid"]):
        u = store.users.get(m["user_uid"])
        if u is not None and u.email.lower() == email:
            raise Conflict(f"{email} is already a member of this organization.")
    now = world.clock.now()
    for inv in invitations(store, org):
        if inv["invited_email"] == email and invitation_status(inv, now) == "pending":
            raise Conflict(f"{email} already has a pending invitation.")
    token = world.secrets.hex(32)
    rec = new_record(world, store, {
        "organization": org["uid"], "invited_email": email, "invited_by_username": user.username, "role": new_role,
        "_status": "pending", "expires_at": now + INVITATION_TTL, "last_sent_at": now,
        "accept_url": f"{APP_ROOT}/invitations/{token}/accept", "copy_link": f"{APP_ROOT}/join/{token}",
    })
    return collection(store, INVITATIONS).add(rec)


def resend(world: World, store: OrgStore, org: dict, role: str, inv: dict) -> None:
    """Extends ``expires_at`` by 7 days from now (also revives an expired one); 409 once accepted."""
    require(role, MANAGERS, "resend invitations")
    if inv["_status"] == "accepted":
        raise Conflict("This invitation was already accepted.")
    now = world.clock.now()
    patch(world, inv, {"expires_at": now + INVITATION_TTL, "last_sent_at": now}, ("expires_at", "last_sent_at"))


def cancel(store: OrgStore, role: str, inv: dict) -> None:
    """A cancelled invitation is removed (it no longer appears in the list; its links stop working)."""
    require(role, MANAGERS, "cancel invitations")
    if inv["_status"] == "accepted":
        raise Conflict("This invitation was already accepted.")
    collection(store, INVITATIONS).remove(inv["uid"])


# ── teams ────────────────────────────────────────────────────


def teams(store: OrgStore, org: dict) -> list[dict[str, Any]]:
    return collection(store, TEAMS).filter(organization=org["uid"])


def team(store: OrgStore, org: dict, team_slug: str) -> dict[str, Any]:
    found = collection(store, TEAMS).filter(organization=org["uid"], slug=team_slug)
    if not found:
        raise NotFound(f"Team {team_slug!r} not found.")
    return found[0]


def _name_taken(store: OrgStore, org: dict, name: str, exclude: str | None = None) -> bool:
    return any(t["name"].lower() == name.lower() and t["uid"] != exclude for t in teams(store, org))


def create_team(world: World, store: OrgStore, org: dict, role: str, fields: dict[str, Any]) -> dict[str, Any]:
    require(role, MANAGERS, "create teams")
    slug = slugify(fields["name"])
    if not slug:
        raise Invalid("The name must contain at least one letter or digit.", field="name")
    if _name_taken(store, org, fields["name"]) or any(t["slug"] == slug for t in teams(store, org)):
        raise Conflict(f"A team with slug {slug!r} already exists in this organization.")
    rec = new_record(world, store, {
        "organization": org["uid"], "name": fields["name"], "slug": slug,
        "description": fields.get("description"), "color": fields.get("color"),
    })
    return collection(store, TEAMS).add(rec)


def update_team(world: World, store: OrgStore, org: dict, role: str, t: dict, changes: dict[str, Any]) -> dict[str, Any]:
    """Renaming keeps the slug (it addresses the team); another team with the new name → 409."""
    require(role, MANAGERS, "update teams")
    if "name" in changes and _name_taken(store, org, changes["name"], exclude=t["uid"]):
        raise Conflict(f"A team named {changes['name']!r} already exists in this organization.")
    return patch(world, t, changes, TEAM_FIELDS)


def delete_team(store: OrgStore, role: str, t: dict) -> None:
    require(role, MANAGERS, "delete teams")
    collection(store, TEAM_MEMBERS).remove_where(team=t["uid"])
    collection(store, TEAMS).remove(t["uid"])


def team_members(store: OrgStore, t: dict) -> list[dict[str, Any]]:
    return collection(store, TEAM_MEMBERS).filter(team=t["uid"])


def team_member(store: OrgStore, t: dict, user_uid: str) -> dict[str, Any]:
    found = collection(store, TEAM_MEMBERS).filter(team=t["uid"], user_uid=user_uid)
    if not found:
        raise NotFound(f"User {user_uid!r} is not in team {t['slug']!r}.")
    return found[0]


def _team_role(value: str | None) -> str:
    value = value or MEMBER
    if value not in TEAM_ROLES:
        raise Invalid(f"Team role must be one of {', '.join(TEAM_ROLES)}.", field="role")
    return value


def add_team_member(world: World, store: OrgStore, org: dict, role: str, t: dict, user_uid: str, new_role: str | None) -> dict:
    """Only members of the organisation can join its teams (400 otherwise); twice → 409."""
    require(role, MANAGERS, "manage teams")
    new_role = _team_role(new_role)
    if membership(store, org, user_uid) is None:
        raise Invalid(f"User {user_uid!r} not found among this organization's members.", field="user_uid")
    if collection(store, TEAM_MEMBERS).filter(team=t["uid"], user_uid=user_uid):
        raise Conflict("This user is already in the team.")
    rec = new_record(world, store, {"organization": org["uid"], "team": t["uid"], "user_uid": user_uid, "role": new_role})
    return collection(store, TEAM_MEMBERS).add(rec)


def remove_team_member(store: OrgStore, role: str, t: dict, user_uid: str) -> None:
    require(role, MANAGERS, "manage teams")
    collection(store, TEAM_MEMBERS).remove(team_member(store, t, user_uid)["uid"])


def set_team_member_role(world: World, store: OrgStore, role: str, t: dict, user_uid: str, new_role: str) -> None:
    require(role, MANAGERS, "manage teams")
    new_role = _team_role(new_role)
    patch(world, team_member(store, t, user_uid), {"role": new_role}, ("role",))
