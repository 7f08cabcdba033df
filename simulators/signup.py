"""Anonymous signup (surface doc §2.21): a new user becomes a new tenant.

Signing up creates the user, their own organisation store (with an ``avala-bot`` user, as
fixtures/world.py builds every organisation) and an API key registered with the world, so the key
works at once against every other endpoint. The password is kept only as a salted PBKDF2 hash in
world-level state (``world.shared``); it is never stored in clear, returned or quoted.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from avala_mock.simulators import organizations
from avala_mock.simulators.errors import Conflict, Invalid
from avala_mock.simulators.world import Organization, OrgStore, User, World

MIN_PASSWORD = 8
ACCOUNTS = "signup_accounts"  # world.shared key: email -> {"user_uid", "salt", "hash"}
_ITERATIONS = 1000  # enough to be a real hash, cheap enough for tests that sign up many users


def _accounts(world: World) -> dict[str, dict[str, Any]]:
    return world.shared.setdefault(ACCOUNTS, {})


def email_registered(world: World, email: str) -> bool:
    email = email.lower()
    if email in _accounts(world):
        return True
    return any(u.email.lower() == email for s in world.stores.values() for u in s.users.values())


def _unique(taken: set[str], base: str) -> str:
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def signup(world: World, email: str, password: str, first_name: str | None, last_name: str | None) -> tuple[User, str]:
    """Create the account; returns the user and their API key. 409 for a known email, 400 for a
    password shorter than 8 characters."""
    email = email.strip()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise Invalid("Enter a valid email address.", field="email")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"This password is too short. It must contain at least {MIN_PASSWORD} characters.", field="password")
    if password.lower() == email.lower() or password.lower() == email.split("@")[0].lower():
        raise Invalid("The password is too similar to the email address.", field="password")
    if email_registered(world, email):
        raise Conflict("A user with this email address already exists.")

    usernames = {u.username for s in world.stores.values() for u in s.users.values()}
    base = re.sub(r"[^a-z0-9._-]+", "", email.split("@")[0].lower()) or "user"
    username = _unique(usernames, base)
    slug = _unique(organizations.all_slugs(world), organizations.slugify(username) or "user")
    now = world.clock.now()
    user = User(world.ids.uid(), username, email, first_name or "", last_name or "")
    org_name = f"{first_name}'s workspace" if first_name else f"{username}'s workspace"
    org = Organization(uid=world.ids.uid(), name=org_name, slug=slug, created_at=now, plan="free")
    bot = User(world.ids.uid(), "avala-bot", "bot@avala.ai", "Avala", "Bot", is_bot=True)
    store = OrgStore(org, user, bot)
    world.add_store(store)
    key = f"avk_{world.secrets.hex(32)}"
    world.add_key(key, store, user)
    organizations.home(world, store)
    salt = world.secrets.hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), _ITERATIONS).hex()
    _accounts(world)[email.lower()] = {"user_uid": user.uid, "salt": salt, "hash": digest}
    return user, key


def check_password(world: World, email: str, password: str) -> bool:
    """Whether ``password`` is the one ``email`` signed up with (the hash is all that is kept)."""
    account = _accounts(world).get(email.lower())
    if account is None:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(account["salt"]), _ITERATIONS).hex()
    return digest == account["hash"]
