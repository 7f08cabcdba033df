"""Organisations, members, invitations and teams through the official SDK (sync, async, CLI) and raw HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import avala
import pytest
from avala.errors import AvalaError, ForbiddenError, NotFoundError, ValidationError

from helpers import SECOND_ORG_KEY, avala_cli

HOME = "acme-robotics"
OTHER = "globex-vision"


@pytest.fixture
def second(mock):
    c = avala.Client(api_key=SECOND_ORG_KEY, base_url=mock.base_url)
    yield c
    c.close()


def status_of(exc_info) -> int:
    return exc_info.value.status_code


def members_by_role(client, slug=HOME):
    out: dict[str, list] = {}
    for m in client.organizations.list_members(slug, limit=100):
        out.setdefault(m.role, []).append(m)
    return out


# ── organisations ────────────────────────────────────────────


def test_list_and_get_home_organization_with_live_counts(client, http):
    page = client.organizations.list()
    assert [o.slug for o in page.items] == [HOME] and not page.has_more
    org = page.items[0]
    assert org.name == "Acme Robotics" and org.role == "owner" and org.uid
    assert (org.member_count, org.team_count, org.dataset_count, org.project_count) == (5, 3, 4, 11)
    slices = http.get(f"slices/{HOME}/list/", params={"limit": 1000})
    assert org.slice_count == (len(slices.json()["results"]) if slices.status_code == 200 else 0)
    assert org.industry == "robotics" and org.visibility == "private"
    assert org.joined_at is not None and org.created_at is not None and org.updated_at is not None
    assert org.website == "https://www.acme-robotics.example.com" and org.allowed_domains == ["acme-robotics.example.com"]
    assert org.handle == HOME and org.plan and org.is_active is True
    assert client.organizations.get(HOME).model_dump() == org.model_dump()
    # counts follow state: a new team shows at once
    client.organizations.create_team(HOME, name="Night Shift")
    assert client.organizations.get(HOME).team_count == 4
    raw = http.get("organizations/").json()
    assert raw["next"] is None and raw["previous"] is None and len(raw["results"]) == 1


def test_create_update_delete_organization(client, http):
    created = client.organizations.create(name="Ada Labs", description="Side projects", industry="research",
                                          website="https://ada.example", email="hi@ada.example", visibility="public")
    assert created.slug == "ada-labs" and created.role == "owner" and created.member_count == 1
    assert created.team_count == 0 and created.dataset_count == 0 and created.project_count == 0
    assert created.industry == "research" and created.visibility == "public" and created.email == "hi@ada.example"
    assert [o.slug for o in client.organizations.list().items] == [HOME, "ada-labs"]

    updated = client.organizations.update("ada-labs", name="Ada Research Labs", phone="+1 555 0100", handle="adalabs")
    assert updated.name == "Ada Research Labs" and updated.slug == "ada-labs" and updated.handle == "adalabs"
    again = client.organizations.get("ada-labs")
    assert again.name == "Ada Research Labs" and again.phone == "+1 555 0100" and again.description == "Side projects"
    assert again.updated_at > again.created_at or again.updated_at == again.created_at

    with pytest.raises(AvalaError) as e:  # same slug again
        client.organizations.create(name="ADA labs!")
    assert status_of(e) == 409
    with pytest.raises(AvalaError) as e:  # slugs are world-wide: the other tenant's slug is taken too
        client.organizations.create(name="Globex Vision")
    assert status_of(e) == 409
    with pytest.raises(AvalaError) as e:  # handle taken by the home organisation
        client.organizations.update("ada-labs", handle=HOME)
    assert status_of(e) == 409
    with pytest.raises(ValidationError):
        client.organizations.create(name="Bad Industry", industry="basket-weaving")
    with pytest.raises(ValidationError):
        client.organizations.update("ada-labs", visibility="secret")
    r = http.post("organizations/", json={"name": "!!!"})
    assert r.status_code == 400 and "name" in r.json()["errors"]

    client.organizations.delete("ada-labs")
    with pytest.raises(NotFoundError):
        client.organizations.get("ada-labs")
    assert [o.slug for o in client.organizations.list().items] == [HOME]
    # the organisation the key belongs to stays
    r = http.delete(f"organizations/{HOME}/")
    assert r.status_code == 409 and "cannot be deleted" in r.json()["detail"]


def test_page_number_pagination_with_page_and_cursor(client, http, mock):
    for i in range(25):
        client.organizations.create(name=f"Batch Org {i:02d}")
    first = client.organizations.list()
    assert len(first.items) == 20 and first.has_more and first.next_cursor == "2"
    raw = http.get("organizations/").json()
    assert raw["next"].startswith(mock.base_url + "/organizations/") and raw["next"].endswith("?page=2")
    second = client.organizations.list(page=2)
    assert len(second.items) == 6 and not second.has_more and second.previous_cursor == "1"
    assert {o.slug for o in first.items}.isdisjoint({o.slug for o in second.items})
    assert [o.slug for o in client.organizations.list(cursor="2").items] == [o.slug for o in second.items]
    small = client.organizations.list(limit=10, page=3)
    assert len(small.items) == 6 and small.items[0].slug == "batch-org-19"
    assert client.organizations.list(page=9).items == []
    # slug_for_uid walks the pages by `page`
    last = second.items[-1]
    assert client.organizations.slug_for_uid(last.uid.upper()) == last.slug
    assert client.organizations.slug_for_uid("00000000-0000-4000-8000-000000000000") is None
    r = http.get("organizations/", params={"page": 2, "cursor": "3"})
    assert r.status_code == 400
    assert http.get("organizations/", params={"page": 0}).status_code == 400


def test_async_client_lists_pages_by_cursor(mock):
    async def run():
        async with avala.AsyncClient(api_key=mock.api_key, base_url=mock.base_url) as c:
            for i in range(21):
                await c.organizations.create(name=f"Async Org {i}")
            p1 = await c.organizations.list()
            p2 = await c.organizations.list(cursor=p1.next_cursor)
            org = await c.organizations.get(HOME)
            members = await c.organizations.list_members(HOME, role="admin")
            teams = await c.organizations.list_teams(HOME)
            return p1, p2, org, members, teams

    p1, p2, org, members, teams = asyncio.run(run())
    assert len(p1.items) == 20 and len(p2.items) == 2 and p2.next_cursor is None
    assert org.member_count == 5 and [m.role for m in members.items] == ["admin"]
    assert [t.slug for t in teams.items] == ["annotation-ops", "ml-platform", "quality-review"]


def test_industry_choices_is_raw_and_contains_the_seeded_value(client):
    choices = client.organizations.industry_choices()
    values = {c["value"] for c in choices["choices"]}
    assert {"robotics", "automotive", "agriculture"} <= values
    assert all(c["label"] for c in choices["choices"])


def test_cli_status_lists_organizations(client, mock):
    client.organizations.create(name="CLI Visible Org")
    r = avala_cli(mock.env(), "-o", "json", "status")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert {"name": "Acme Robotics", "slug": HOME, "members": 5} in data["organizations"]
    assert any(o["slug"] == "cli-visible-org" and o["members"] == 1 for o in data["organizations"])


def test_other_tenant_cannot_see_or_change_organizations(client, second, http, mock):
    client.organizations.create(name="Acme Secret Lab")
    assert [o.slug for o in second.organizations.list().items] == [OTHER]
    for slug in (HOME, "acme-secret-lab"):
        with pytest.raises(NotFoundError):
            second.organizations.get(slug)
        with pytest.raises(NotFoundError):
            second.organizations.update(slug, name="Pwned")
        with pytest.raises(NotFoundError):
            second.organizations.list_members(slug)
        with pytest.raises(NotFoundError):
            second.organizations.list_teams(slug)
        with pytest.raises(NotFoundError):
            second.organizations.list_invitations(slug)
        with pytest.raises(NotFoundError):
            second.organizations.delete(slug)
    assert client.organizations.get("acme-secret-lab").name == "Acme Secret Lab"
    assert client.organizations.get(HOME).name == "Acme Robotics"
    with pytest.raises(NotFoundError):  # and the other way round
        client.organizations.get(OTHER)
    mine = {m.user_uid for m in client.organizations.list_members(HOME)}
    theirs = {m.user_uid for m in second.organizations.list_members(OTHER)}
    assert mine and theirs and mine.isdisjoint(theirs)
    with pytest.raises(NotFoundError):
        client.organizations.remove_member(HOME, next(iter(theirs)))
    with pytest.raises(NotFoundError):
        client.organizations.get("no-such-org")


# ── members ──────────────────────────────────────────────────


def test_members_filters_role_changes_and_removal(client, http):
    roles = members_by_role(client)
    assert [len(roles[r]) for r in ("owner", "admin", "member")] == [1, 1, 3]
    owner, admin = roles["owner"][0], roles["admin"][0]
    assert owner.username == "ada" and owner.email and owner.full_name and owner.picture and owner.created_at
    assert owner.last_active_at is not None  # the caller is a manager
    target = roles["member"][0]
    found = client.organizations.list_members(HOME, search=target.username[:4].upper())
    assert target.user_uid in {m.user_uid for m in found}
    assert all(target.username[:4] in (m.username + m.email + (m.full_name or "").lower()).lower() for m in found)
    assert [m.user_uid for m in client.organizations.list_members(HOME, role="admin")] == [admin.user_uid]
    page = client.organizations.list_members(HOME, limit=2)
    rest = client.organizations.list_members(HOME, limit=10, cursor=page.next_cursor)
    assert len(page.items) == 2 and len(rest.items) == 3

    client.organizations.update_member_role(HOME, target.user_uid, role="admin")
    assert {m.user_uid for m in client.organizations.list_members(HOME, role="admin")} == {admin.user_uid, target.user_uid}
    with pytest.raises(ValidationError):
        client.organizations.update_member_role(HOME, target.user_uid, role="superuser")
    with pytest.raises(ValidationError):
        client.organizations.update_member_role(HOME, target.user_uid, role="owner")
    with pytest.raises(AvalaError) as e:
        client.organizations.update_member_role(HOME, owner.user_uid, role="member")
    assert status_of(e) == 409
    with pytest.raises(AvalaError) as e:
        client.organizations.remove_member(HOME, owner.user_uid)
    assert status_of(e) == 409
    with pytest.raises(NotFoundError):
        client.organizations.remove_member(HOME, "not-a-user")

    teams_before = {t.slug: t.member_count for t in client.organizations.list_teams(HOME)}
    client.organizations.remove_member(HOME, target.user_uid)
    assert target.user_uid not in {m.user_uid for m in client.organizations.list_members(HOME, limit=100)}
    assert client.organizations.get(HOME).member_count == 4
    teams_after = {t.slug: t.member_count for t in client.organizations.list_teams(HOME)}
    assert sum(teams_before.values()) - sum(teams_after.values()) >= 1  # the removed member left their teams
    with pytest.raises(NotFoundError):
        client.organizations.remove_member(HOME, target.user_uid)
    assert http.patch(f"organizations/{HOME}/members/{admin.user_uid}/role/", json={}).status_code == 400


def test_owner_cannot_leave_until_ownership_is_transferred(client, second, http):
    roles = members_by_role(client)
    admin = roles["admin"][0]
    with pytest.raises(AvalaError) as e:
        client.organizations.leave(HOME)
    assert status_of(e) == 409
    with pytest.raises(ValidationError):
        client.organizations.transfer_ownership(HOME, new_owner_uid="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError):  # a member of the other organisation is not a member here
        client.organizations.transfer_ownership(HOME, new_owner_uid=second.organizations.list_members(OTHER).items[0].user_uid)

    client.organizations.transfer_ownership(HOME, new_owner_uid=admin.user_uid)
    roles = members_by_role(client)
    assert [m.user_uid for m in roles["owner"]] == [admin.user_uid]
    assert "ada" in {m.username for m in roles["admin"]}
    assert client.organizations.get(HOME).role == "admin"
    # an admin may not transfer again nor delete the organisation (403), but still manages members
    with pytest.raises(ForbiddenError):
        client.organizations.transfer_ownership(HOME, new_owner_uid=roles["member"][0].user_uid)
    with pytest.raises(ForbiddenError):
        client.organizations.delete(HOME)
    client.organizations.update_member_role(HOME, roles["member"][0].user_uid, role="admin")

    client.organizations.leave(HOME)
    assert http.post(f"organizations/{HOME}/leave/").status_code == 404  # no longer a member
    with pytest.raises(NotFoundError):
        client.organizations.get(HOME)
    assert client.organizations.list().items == []


def test_member_role_cannot_manage(client):
    """After handing the organisation over and being demoted, the caller is a plain member."""
    created = client.organizations.create(name="Demo Org")
    assert created.role == "owner"
    roles = members_by_role(client)
    new_owner = roles["admin"][0]
    client.organizations.transfer_ownership(HOME, new_owner_uid=new_owner.user_uid)
    ada = next(m for m in client.organizations.list_members(HOME, search="ada") if m.username == "ada")
    client.organizations.update_member_role(HOME, ada.user_uid, role="member")  # admins may demote themselves
    assert client.organizations.get(HOME).role == "member"
    members = client.organizations.list_members(HOME)
    assert all(m.last_active_at is None for m in members)  # only managers see it
    for call in (
        lambda: client.organizations.update(HOME, description="x"),
        lambda: client.organizations.create_invitation(HOME, email="new@example.com"),
        lambda: client.organizations.create_team(HOME, name="Rogue"),
        lambda: client.organizations.remove_member(HOME, new_owner.user_uid),
        lambda: client.organizations.delete_team(HOME, "ml-platform"),
    ):
        with pytest.raises(ForbiddenError):
            call()
    assert client.organizations.get_team(HOME, "ml-platform").name == "ML Platform"
    assert client.organizations.get("demo-org").role == "owner"  # other memberships are unaffected


# ── invitations ──────────────────────────────────────────────


def test_invitation_lifecycle_on_the_clock(client, mock, http):
    seeded = {i.status: i for i in client.organizations.list_invitations(HOME)}
    assert set(seeded) == {"pending", "expired", "accepted"}
    assert seeded["expired"].is_expired is True and seeded["pending"].is_expired is False

    inv = client.organizations.create_invitation(HOME, email="New.Hire@Example.com", role="admin")
    assert inv.status == "pending" and inv.is_expired is False and inv.role == "admin"
    assert inv.invited_email == "new.hire@example.com" and inv.invited_by_username == "ada"
    assert inv.organization_slug == HOME and inv.organization_name == "Acme Robotics"
    assert inv.accept_url.startswith("https://") and inv.copy_link and inv.created_at
    assert inv.expires_at - inv.created_at == timedelta(days=7)
    assert inv.uid in {i.uid for i in client.organizations.list_invitations(HOME)}
    assert client.organizations.create_invitation(HOME, email="plain@example.com").role == "member"

    with pytest.raises(AvalaError) as e:
        client.organizations.create_invitation(HOME, email="new.hire@example.com")
    assert status_of(e) == 409
    member = client.organizations.list_members(HOME).items[1]
    with pytest.raises(AvalaError) as e:
        client.organizations.create_invitation(HOME, email=member.email.upper())
    assert status_of(e) == 409
    with pytest.raises(ValidationError):
        client.organizations.create_invitation(HOME, email="x@example.com", role="owner")

    mock.advance(8 * 86400)
    expired = next(i for i in client.organizations.list_invitations(HOME) if i.uid == inv.uid)
    assert expired.status == "expired" and expired.is_expired is True
    again = client.organizations.create_invitation(HOME, email="new.hire@example.com")  # the old one expired
    assert again.status == "pending"

    client.organizations.resend_invitation(HOME, inv.uid)
    resent = next(i for i in client.organizations.list_invitations(HOME) if i.uid == inv.uid)
    assert resent.status == "pending" and resent.expires_at > expired.expires_at + timedelta(days=7)
    with pytest.raises(AvalaError) as e:
        client.organizations.resend_invitation(HOME, seeded["accepted"].uid)
    assert status_of(e) == 409
    with pytest.raises(AvalaError) as e:
        client.organizations.cancel_invitation(HOME, seeded["accepted"].uid)
    assert status_of(e) == 409

    assert http.post(f"organizations/{HOME}/invitations/{inv.uid}/cancel/", json={}).status_code == 204
    assert inv.uid not in {i.uid for i in client.organizations.list_invitations(HOME, limit=100)}
    with pytest.raises(NotFoundError):
        client.organizations.cancel_invitation(HOME, inv.uid)
    with pytest.raises(NotFoundError):
        client.organizations.resend_invitation(HOME, inv.uid)
    assert http.post(f"organizations/{HOME}/invitations/{again.uid}/resend/", json={"x": 1}).status_code == 400


def test_invitations_are_per_organization(client, second):
    mine = client.organizations.create_invitation(HOME, email="someone@example.com")
    with pytest.raises(NotFoundError):
        second.organizations.cancel_invitation(OTHER, mine.uid)
    with pytest.raises(NotFoundError):
        second.organizations.resend_invitation(HOME, mine.uid)
    assert mine.uid not in {i.uid for i in second.organizations.list_invitations(OTHER)}
    # the same address may be invited to another organisation
    assert second.organizations.create_invitation(OTHER, email="someone@example.com").status == "pending"
    client.organizations.create(name="Second Home")
    with pytest.raises(NotFoundError):  # an invitation of one organisation is not reachable through another
        client.organizations.cancel_invitation("second-home", mine.uid)


# ── teams ────────────────────────────────────────────────────


def test_team_crud_and_membership(client, http):
    team = client.organizations.create_team(HOME, name="Lidar Squad", description="3D boxes", color="#ff0000")
    assert team.slug == "lidar-squad" and team.member_count == 0 and team.organization_slug == HOME
    assert team.organization_uid == client.organizations.get(HOME).uid and team.organization_name == "Acme Robotics"
    assert team.created_at and team.updated_at and team.color == "#ff0000" and team.description == "3D boxes"
    assert "lidar-squad" in {t.slug for t in client.organizations.list_teams(HOME)}
    with pytest.raises(AvalaError) as e:
        client.organizations.create_team(HOME, name="lidar squad")
    assert status_of(e) == 409

    renamed = client.organizations.update_team(HOME, "lidar-squad", name="Point Cloud Squad", color="#00ff00")
    assert renamed.slug == "lidar-squad" and renamed.name == "Point Cloud Squad"
    got = client.organizations.get_team(HOME, "lidar-squad")
    assert got.name == "Point Cloud Squad" and got.color == "#00ff00" and got.description == "3D boxes"
    with pytest.raises(AvalaError) as e:
        client.organizations.update_team(HOME, "lidar-squad", name="ML Platform")
    assert status_of(e) == 409

    members = client.organizations.list_members(HOME).items
    added = client.organizations.add_team_member(HOME, "lidar-squad", user_uid=members[2].user_uid, role="lead")
    assert added.user_uid == members[2].user_uid and added.role == "lead" and added.username == members[2].username
    assert added.email and added.full_name and added.created_at
    client.organizations.add_team_member(HOME, "lidar-squad", user_uid=members[3].user_uid)
    with pytest.raises(AvalaError) as e:
        client.organizations.add_team_member(HOME, "lidar-squad", user_uid=members[3].user_uid)
    assert status_of(e) == 409
    with pytest.raises(ValidationError):
        client.organizations.add_team_member(HOME, "lidar-squad", user_uid="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError):
        client.organizations.add_team_member(HOME, "lidar-squad", user_uid=members[4].user_uid, role="boss")
    assert client.organizations.get_team(HOME, "lidar-squad").member_count == 2

    client.organizations.update_team_member_role(HOME, "lidar-squad", members[3].user_uid, role="lead")
    roster = {m.user_uid: m.role for m in client.organizations.list_team_members(HOME, "lidar-squad")}
    assert roster == {members[2].user_uid: "lead", members[3].user_uid: "lead"}
    client.organizations.remove_team_member(HOME, "lidar-squad", members[2].user_uid)
    assert [m.user_uid for m in client.organizations.list_team_members(HOME, "lidar-squad")] == [members[3].user_uid]
    with pytest.raises(NotFoundError):
        client.organizations.remove_team_member(HOME, "lidar-squad", members[2].user_uid)
    with pytest.raises(NotFoundError):
        client.organizations.update_team_member_role(HOME, "lidar-squad", members[2].user_uid, role="member")

    client.organizations.delete_team(HOME, "lidar-squad")
    with pytest.raises(NotFoundError):
        client.organizations.get_team(HOME, "lidar-squad")
    with pytest.raises(NotFoundError):
        client.organizations.list_team_members(HOME, "lidar-squad")
    assert "lidar-squad" not in {t.slug for t in client.organizations.list_teams(HOME)}
    assert http.post(f"organizations/{HOME}/teams/", json={"name": "--"}).status_code == 400


def test_seeded_teams_and_other_tenant_teams(client, second):
    teams = client.organizations.list_teams(HOME).items
    assert [t.name for t in teams] == ["Annotation Ops", "ML Platform", "Quality Review"]
    assert all(t.member_count and t.color and t.description for t in teams)
    roster = client.organizations.list_team_members(HOME, "annotation-ops").items
    assert roster[0].role == "lead" and all(m.username and m.created_at for m in roster)
    with pytest.raises(NotFoundError):
        second.organizations.get_team(HOME, "annotation-ops")
    with pytest.raises(NotFoundError):
        second.organizations.add_team_member(HOME, "annotation-ops", user_uid=roster[0].user_uid)
    # globex's own teams with the same slug are different objects
    theirs = second.organizations.get_team(OTHER, "annotation-ops")
    assert theirs.uid != teams[0].uid and theirs.organization_slug == OTHER
    with pytest.raises(ValidationError):  # acme's member is not a globex member
        second.organizations.add_team_member(OTHER, "annotation-ops", user_uid=roster[0].user_uid)


def test_deleting_a_created_organization_removes_its_teams_and_invitations(client, http):
    client.organizations.create(name="Temp Org")
    client.organizations.create_team("temp-org", name="Temp Team")
    inv = client.organizations.create_invitation("temp-org", email="temp@example.com")
    assert client.organizations.get("temp-org").team_count == 1
    client.organizations.delete("temp-org")
    assert http.get("organizations/temp-org/teams/").status_code == 404
    client.organizations.create(name="Temp Org")  # the slug is free again, and empty
    assert client.organizations.list_teams("temp-org").items == []
    assert inv.uid not in {i.uid for i in client.organizations.list_invitations("temp-org")}
