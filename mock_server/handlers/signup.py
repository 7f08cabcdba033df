"""Anonymous signup (tag ``signup``): a new user, tenant and API key (simulators/signup.py)."""

from __future__ import annotations

from typing import Any

from avala_mock.mock_server.context import Ctx
from avala_mock.simulators import signup as accounts


def signup(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    user, key = accounts.signup(ctx.world, body["email"], body["password"], body.get("first_name"), body.get("last_name"))
    return {
        "user": {"uid": user.uid, "username": user.username, "email": user.email,
                 "first_name": user.first_name or None, "last_name": user.last_name or None, "in_waitlist": True},
        "api_key": key,
    }
