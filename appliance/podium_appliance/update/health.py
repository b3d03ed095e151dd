"""A release's health, as the updater checks it before keeping it: the server answers ``/api/health`` within
``health_seconds``, as the version expected, and an admin signed in reads the database and the objects.

The admin is a short-lived token the running release issues before the upgrade (``podium-server
issue-token``), deleted once the new release passed; without one (no server set up yet, or putting an old
release back) the check stops at the version.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..box.server import ServerApi, admin_command, wait_healthy
from ..box.system import run
from ..errors import ApplianceError
from ..layout import Layout, Settings

#: The description of the health check's token, by which it is deleted afterwards.
TOKEN_DESCRIPTION = "podium-updater health check"


def issue_token(layout: Layout, settings: Settings, release: Path) -> str:
    """A short-lived token of an admin, from ``release`` (the running one), for the check's sign-in."""
    argv = [
        *admin_command(layout, settings, release),
        "issue-token",
        "--ttl",
        "900",
        "--description",
        TOKEN_DESCRIPTION,
    ]
    said = run(argv, "getting a credential for the health check", timeout=120)
    token = said.strip().splitlines()[-1] if said.strip() else ""
    if not token:
        raise ApplianceError("getting a credential for the health check: the server printed no token")
    return token


async def check(settings: Settings, seconds: float, target: str, token: str) -> None:
    """The health check: ``/api/health``, the version that answers, a signed-in call that reads the
    database and the objects."""
    await wait_healthy(settings, seconds)
    async with ServerApi(settings) as api:
        version = await api.call("system.getServerVersion", {})
        if version != target:
            raise ApplianceError(f"the server answers as version {version}, not {target}")
        if token:
            await api.call("session.signIn", {"token": token})
            user = await api.call("session.getUser", {})
            if user.get("permission") != "admin":
                raise ApplianceError("the health check's sign-in is not an admin's")
            await api.call("user.getAll", {})
            await api.call("xo.getAllObjects", {"filter": {"type": "pool"}})


async def forget_token(settings: Settings, token: str) -> None:
    """Delete the check's token (best effort: it expires by itself)."""
    with contextlib.suppress(ApplianceError, OSError, TimeoutError):
        async with ServerApi(settings) as api:
            await api.call("session.signIn", {"token": token})
            await api.call("token.deleteOwn", {"pattern": TOKEN_DESCRIPTION})
