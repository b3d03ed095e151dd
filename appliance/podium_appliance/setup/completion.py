"""Completing setup: the server's configuration written atomically, the server started with the admin, the
first pool added through the server's own API, the proxy switched to the server, the wizard locked for good.

The same path serves the wizard and the unattended first boot. Until the last step nothing is locked, so a
failure (the server does not start, the pool refuses) leaves the wizard open to try again.
"""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import time
from dataclasses import dataclass

from ..box.proxy import Proxy
from ..box.server import ServerApi, reset_password, wait_healthy
from ..box.system import run_async
from ..errors import ApplianceError
from ..layout import Layout, Settings, write_atomic
from .setup_code import SetupCode, write_issue

# argon2 is imported where it is used: the first-boot service imports this module at every boot and needs it
# only when the deploy keys complete the setup.

log = logging.getLogger(__name__)


@dataclass
class Answers:
    """What setup decided; the pool part is optional (pools can be added later)."""

    admin_email: str
    admin_password: str
    channel: str = "stable"
    update_proxy: str = ""
    pool_host: str = ""
    pool_username: str = ""
    pool_password: str = ""
    pool_fingerprint: str = ""


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_server_config(layout: Layout, settings: Settings, answers: Answers) -> None:
    """The server's podium.toml: loopback listen address, data folder, the admin (argon2 hash only)."""
    from argon2 import PasswordHasher

    digest = PasswordHasher().hash(answers.admin_password)
    text = (
        "# Written by the Podium setup wizard.\n"
        f"listen = {_toml_string(settings.server_listen)}\n"
        f"data_dir = {_toml_string(str(layout.server_data))}\n"
        f"updater_socket = {_toml_string(str(layout.update_socket))}\n\n"
        "[admin]  # used at the server's first start only\n"
        f"email = {_toml_string(answers.admin_email)}\n"
        f"password_hash = {_toml_string(digest)}\n"
    )
    write_atomic(layout.server_toml, text, mode=0o640)
    try:  # the server runs as its own user, of group podium, on the appliance
        os.chown(layout.server_toml, -1, grp.getgrnam("podium").gr_gid)
    except (KeyError, PermissionError):
        pass
    updates = f"channel = {_toml_string(answers.channel)}\nproxy = {_toml_string(answers.update_proxy)}\n"
    write_atomic(layout.updates_toml, "# The update channel chosen at setup.\n" + updates)


async def add_pool(settings: Settings, answers: Answers, seconds: float = 60.0) -> None:
    """Sign in as the new admin and add the pool with its confirmed fingerprint; wait until connected."""
    async with ServerApi(settings) as api:
        await api.call("session.signIn", {"email": answers.admin_email, "password": answers.admin_password})
        known = {s["host"]: s["id"] for s in await api.call("server.getAll", {})}
        server_id = known.get(answers.pool_host) or await api.call(
            "server.add",
            {
                "host": answers.pool_host,
                "username": answers.pool_username,
                "password": answers.pool_password,
                "fingerprint": answers.pool_fingerprint,
            },
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            (info,) = [s for s in await api.call("server.getAll", {}) if s["id"] == server_id]
            if info.get("status") == "connected":
                return
            await asyncio.sleep(0.3)
    error = info.get("error") or info.get("status")
    raise ApplianceError(f"the server could not connect to the pool: {error}")


def _set_admin_password(layout: Layout, settings: Settings, answers: Answers) -> None:
    """The server creates its admin at its first start only: after an earlier attempt, give that admin
    the password chosen now (the e-mail must be the same)."""
    try:
        reset_password(layout, settings, answers.admin_email, answers.admin_password)
    except ApplianceError as e:
        raise ApplianceError(
            "the server was already started by an earlier attempt with another administrator "
            f"({e.message}): use the same e-mail"
        ) from None


def set_up_admin(layout: Layout) -> str | None:
    """The e-mail of the admin setup created, as its lock records it; None before setup is complete."""
    try:
        admin = json.loads(layout.setup_complete.read_text())["admin"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return admin if isinstance(admin, str) else None


async def complete(layout: Layout, settings: Settings, answers: Answers) -> None:
    """Everything setup does at the end, in an order where a failure locks nothing."""
    if layout.setup_is_complete():
        raise ApplianceError("setup is complete already")
    started_before = (layout.server_data / "podium.db").exists()  # an earlier attempt failed later on
    write_server_config(layout, settings, answers)
    await run_async(settings.command("server_start"), "starting the Podium server")
    await wait_healthy(settings)
    if started_before:
        await asyncio.to_thread(_set_admin_password, layout, settings, answers)
    if answers.pool_host:
        await add_pool(settings, answers)
    Proxy(layout, settings).apply("ready")
    write_atomic(
        layout.setup_complete,
        json.dumps({"completed": time.time(), "admin": answers.admin_email}) + "\n",
        mode=0o644,
    )
    SetupCode(layout).erase()
    write_issue(layout, None)
    log.info("setup complete: admin %s, the wizard is locked", answers.admin_email)
